//! The data-side stages of a pipeline: the dataset source, per-example preprocessing,
//! batching, and the pairing of source and target batches. Each is a [`crate::graph`] node over [`Item`]s and can be driven by a
//! test on plain vectors without a graph.

pub mod batcher;
pub mod crop;
pub mod dataset;
pub mod mix;
pub mod normalize;
pub mod pair;

use crate::item::Item;

/// The error for an item a stage does not take. Validation rules this out in an
/// assembled pipeline; it guards stages driven by hand.
pub(crate) fn unexpected(stage: &str, item: &Item) -> anyhow::Error {
    anyhow::anyhow!(
        "{stage} stage received an item of type {}",
        item.item_type()
            .map(|t| t.to_string())
            .unwrap_or_else(|| "marker".into())
    )
}
