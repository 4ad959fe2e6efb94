//! Crop: turns whole sound clips into network inputs for training: level normalisation,
//! optional random time scaling, padding of half an input on each side, a random window
//! of the input length, optional random gain (see [`CropConfig`]).
//!
//! The crops of epoch `e` depend only on the seed and `e`, so a resumed run sees the
//! crops an uninterrupted one would have.

use super::unexpected;
use crate::audio::CropConfig;
use crate::graph::{BoxError, Stage};
use crate::item::{Example, Item};
use crate::stage::dataset::epoch_seed;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

/// Random training crops of the configured length.
pub struct Crop {
    cfg: CropConfig,
    seed: u64,
    epoch: usize,
    rng: ChaCha8Rng,
}

impl Crop {
    /// A crop stage with `cfg`, its randomness derived from `seed`.
    pub fn new(cfg: CropConfig, seed: u64) -> Self {
        Self {
            cfg,
            seed,
            epoch: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }
}

impl Stage<Item> for Crop {
    fn process(&mut self, item: Item, out: &mut Vec<Item>) -> Result<(), BoxError> {
        match item {
            Item::Example(ex) => {
                if ex.epoch != self.epoch {
                    self.epoch = ex.epoch;
                    self.rng = ChaCha8Rng::seed_from_u64(epoch_seed(self.seed, ex.epoch) ^ 0xC407);
                }
                let crop = self.cfg.train_crop(&ex.pixels, &mut self.rng);
                let len = crop.len();
                out.push(Item::Example(Arc::new(Example {
                    pixels: crop,
                    height: 1,
                    width: len,
                    ..(*ex).clone()
                })));
            }
            Item::EpochEnd(..) => out.push(item),
            other => return Err(unexpected("crop", &other)),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::Level;
    use crate::item::Domain;

    #[test]
    fn crops_have_the_input_length_and_repeat_per_epoch() {
        let cfg = CropConfig {
            length: 8,
            level: Level::None,
            max_scale: 1.0,
            gain_db: 0.0,
        };
        let clip: Vec<f32> = (0..30).map(|v| v as f32).collect();
        let run = |epochs: std::ops::RangeInclusive<usize>| {
            let mut c = Crop::new(cfg, 5);
            let mut out = Vec::new();
            for e in epochs {
                for _ in 0..4 {
                    let ex = Example::new(clip.clone(), 1, 30, 3, e, Domain::Source);
                    c.process(Item::Example(Arc::new(ex)), &mut out).unwrap();
                }
            }
            out.into_iter()
                .map(|i| match i {
                    Item::Example(x) => {
                        assert_eq!((x.height, x.width, x.label), (1, 8, 3));
                        x.pixels.clone()
                    }
                    _ => panic!("expected examples"),
                })
                .collect::<Vec<_>>()
        };
        let full = run(1..=2);
        assert_eq!(
            run(2..=2),
            full[4..].to_vec(),
            "a resumed epoch repeats its crops"
        );
        assert_ne!(full[..4], full[4..], "epochs differ");
    }
}
