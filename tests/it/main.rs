//! Integration tests of the `scarce` binary: one test binary, topic modules, shared
//! helpers in [`common`].

mod cli;
mod common;
mod data_errors;
mod device;
mod fetch;
mod live;
mod live_images;
mod pipelines;
mod sound;
mod training;
