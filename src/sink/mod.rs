//! Sinks of a training graph: [`metrics`] writes the run's metrics, summary and learning
//! curve; [`progress`] shows a progress bar and one line per epoch.

pub mod metrics;
pub mod plot;
pub mod progress;
