//! Dataset source: emits the examples of an in-memory [`Dataset`] (images, or whole
//! sound clips as `1 x len` examples) epoch after epoch,
//! reshuffled each epoch, followed by an [`Item::EpochEnd`] marker.
//!
//! The order of epoch `e` depends only on the seed and `e`, so a resumed run sees the
//! same data order as an uninterrupted one.

use crate::data::Dataset;
use crate::graph::{BoxError, Source};
use crate::item::{Domain, Example, Item};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

/// Emits `epochs` passes over a data set, from `first_epoch` on.
pub struct DatasetSource {
    set: Dataset,
    domain: Domain,
    shuffle: bool,
    seed: u64,
    epoch: usize,
    last_epoch: usize,
    order: Vec<usize>,
    pos: usize,
}

impl DatasetSource {
    /// A source over `set` for epochs `first_epoch..=last_epoch` (1-based), tagging its
    /// examples with `domain`. A target-domain source's data order has its own seed, so
    /// that source and target batches are not drawn in lockstep.
    pub fn new(
        set: impl Into<Dataset>,
        domain: Domain,
        shuffle: bool,
        seed: u64,
        first_epoch: usize,
        last_epoch: usize,
    ) -> Self {
        let seed = match domain {
            Domain::Source => seed,
            Domain::Target => seed ^ 0x5EED_7A26_E700_0000,
        };
        let mut s = Self {
            set: set.into(),
            domain,
            shuffle,
            seed,
            epoch: first_epoch,
            last_epoch,
            order: Vec::new(),
            pos: 0,
        };
        s.reorder();
        s
    }

    fn reorder(&mut self) {
        self.order = (0..self.set.len()).collect();
        if self.shuffle {
            let mut rng = ChaCha8Rng::seed_from_u64(epoch_seed(self.seed, self.epoch));
            self.order.shuffle(&mut rng);
        }
        self.pos = 0;
    }
}

/// The data-order seed of one epoch.
pub fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (epoch as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)
}

impl Source<Item> for DatasetSource {
    fn next(&mut self) -> Result<Option<Item>, BoxError> {
        if self.epoch > self.last_epoch {
            return Ok(None);
        }
        if self.pos == self.order.len() {
            let done = self.epoch;
            self.epoch += 1;
            if self.epoch <= self.last_epoch {
                self.reorder();
            }
            return Ok(Some(Item::EpochEnd(done, self.domain)));
        }
        let i = self.order[self.pos];
        self.pos += 1;
        let (pixels, height, width, label) = self.set.example(i);
        let ex = Example::new(pixels, height, width, label, self.epoch, self.domain);
        Ok(Some(Item::Example(Arc::new(
            ex.with_group(self.set.group(i)),
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ImageSet;

    fn set(n: usize) -> Arc<ImageSet> {
        Arc::new(ImageSet {
            name: "t".into(),
            height: 1,
            width: 2,
            pixels: (0..n * 2).map(|v| v as f32).collect(),
            labels: (0..n).map(|v| (v % 10) as u8).collect(),
            num_classes: 10,
        })
    }

    fn drain(mut s: DatasetSource) -> Vec<Item> {
        let mut v = Vec::new();
        while let Some(i) = s.next().unwrap() {
            v.push(i);
        }
        v
    }

    #[test]
    fn emits_every_example_once_per_epoch_with_markers() {
        let items = drain(DatasetSource::new(set(5), Domain::Source, true, 7, 1, 3));
        assert_eq!(items.len(), 3 * 6);
        for (e, chunk) in items.chunks(6).enumerate() {
            assert!(matches!(chunk[5], Item::EpochEnd(x, Domain::Source) if x == e + 1));
            let mut firsts: Vec<u32> = chunk[..5]
                .iter()
                .map(|i| match i {
                    Item::Example(x) => x.pixels[0] as u32,
                    _ => panic!("expected an example"),
                })
                .collect();
            firsts.sort();
            assert_eq!(firsts, vec![0, 2, 4, 6, 8]);
        }
    }

    #[test]
    fn resumed_epochs_see_the_same_order() {
        let full = drain(DatasetSource::new(set(50), Domain::Source, true, 3, 1, 3));
        let resumed = drain(DatasetSource::new(set(50), Domain::Source, true, 3, 3, 3));
        let key = |i: &Item| match i {
            Item::Example(x) => x.pixels[0] as i64,
            _ => -1,
        };
        let a: Vec<i64> = full[102..].iter().map(key).collect();
        let b: Vec<i64> = resumed.iter().map(key).collect();
        assert_eq!(a, b);
        let e1: Vec<i64> = full[..51].iter().map(key).collect();
        assert_ne!(e1, b, "epochs must be shuffled differently");
    }
}
