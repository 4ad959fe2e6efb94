//! Per-example preprocessing: `(x - mean) / std` on every pixel.
//!
//! The same [`Normalize`] value is used by the training graph and by evaluation, so a
//! model is always measured with the preprocessing it was trained with.

use super::unexpected;
use crate::graph::{BoxError, Stage};
use crate::item::{Example, Item};
use std::sync::Arc;

/// Maps pixel values `x` to `(x - mean) / std`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalize {
    /// Subtracted from every pixel.
    pub mean: f32,
    /// Divides every pixel after the mean is removed.
    pub std: f32,
}

impl Normalize {
    /// Applies the transform in place.
    pub fn apply(&self, pixels: &mut [f32]) {
        let inv = 1.0 / self.std;
        for p in pixels {
            *p = (*p - self.mean) * inv;
        }
    }
}

impl Stage<Item> for Normalize {
    fn process(&mut self, item: Item, out: &mut Vec<Item>) -> Result<(), BoxError> {
        match item {
            Item::Example(ex) => {
                let mut ex: Example = Arc::unwrap_or_clone(ex);
                self.apply(&mut ex.pixels);
                out.push(Item::Example(Arc::new(ex)));
            }
            Item::EpochEnd(..) => out.push(item),
            other => return Err(unexpected("normalize", &other)),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_unit_range_to_symmetric_range() {
        let mut v = vec![0.0, 0.5, 1.0];
        Normalize {
            mean: 0.5,
            std: 0.5,
        }
        .apply(&mut v);
        assert_eq!(v, vec![-1.0, 0.0, 1.0]);
    }
}
