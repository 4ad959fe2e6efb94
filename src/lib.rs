//! scarce: learning from limited data as a dataflow pipeline.
//!
//! A pipeline file (`pipelines/*.toml`) declares a graph of typed stages (sources,
//! preprocessing, batching, a model stage, sinks) joined by bounded channels. The same
//! graph trains offline and streams live. This crate is the library behind the `scarce`
//! binary: [`graph`] runs stages on threads, [`pipeline`] parses and validates pipeline
//! files and assembles graphs, [`data`] reads data sets, [`model`] and [`method`] hold
//! the networks and training objectives, [`train`] drives training runs and run folders.

pub mod audio;
pub mod data;
pub mod embed;
pub mod eval;
pub mod fetch;
pub mod fsutil;
pub mod graph;
pub mod item;
pub mod kernels;
pub mod method;
pub mod model;
pub mod openset;
pub mod pipeline;
pub mod results;
pub mod sink;
pub mod stage;
pub mod stream;
pub mod train;
