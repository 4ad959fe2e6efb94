//! Integration tests of the `scarce` binary: one test binary, topic modules, shared
//! helpers in [`common`].

mod common;
mod data_errors;
mod pipelines;
mod training;
