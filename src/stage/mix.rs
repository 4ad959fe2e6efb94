//! Between-class mixer for sound: each incoming example is mixed with an earlier one of
//! a *different* class, drawn at random from a small pool, with a random ratio
//! `r ~ U(0, 1)` (or `Beta(alpha, alpha)`, a setting), using the A-weighted gains of
//! both crops ([`crate::audio::bc_mix`]). The output carries the soft label
//! `r * t1 + (1 - r) * t2` ([`crate::item::Example::mix`]).
//!
//! Which examples may be partners is a setting ([`Partners`]): any of another class
//! (the paper's rule), or only those of the same or of another recording group (for
//! FSDD the group is the speaker).
//!
//! Mixing may stop before training does ([`BcMix::mixing_until`]): later epochs pass
//! their crops through plain, with their own labels. It may also mix only a share of the
//! crops ([`BcMix::with_prob`]): the others pass plain, in the same batches as the mixes.
//!
//! A random gain may follow the mixing ([`BcMix::with_gain`]), as in the EnvNet-v2
//! reference. Gains given to the crops before mixing do not change what a mix is made
//! of (the A-weighted ratio makes up for them), only its level, by a weighted mean of
//! the two gains.
//!
//! An epoch emits as many examples (mixes, and plain crops where some pass plain) as it
//! received: a crop to be mixed that finds no partner yet (such as the first of an
//! epoch) is made up for at the epoch's end with a mix of two pooled examples. The pool never spans epochs, and its randomness depends only on
//! the seed and the epoch, so resumed runs repeat it.

use super::unexpected;
use crate::audio::{bc_mix, random_gain, GainMeter};
use crate::graph::{BoxError, Stage};
use crate::item::{Example, Item};
use crate::stage::dataset::epoch_seed;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Distribution};
use std::sync::Arc;

/// Examples kept as partners.
pub const POOL: usize = 64;

/// Which pooled examples may be mixed with an incoming one (always of another class).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Partners {
    /// Any example of another class (the paper's rule).
    #[default]
    Any,
    /// Only examples of the same recording group (fold; FSDD: the same speaker).
    SameGroup,
    /// Only examples of another recording group.
    OtherGroup,
}

impl Partners {
    /// Whether `b` may be mixed with `a`: another class, and a group the rule allows.
    fn may_mix(self, a: &Example, b: &Example) -> bool {
        a.label != b.label
            && match self {
                Partners::Any => true,
                Partners::SameGroup => a.group == b.group,
                Partners::OtherGroup => a.group != b.group,
            }
    }
}

/// The BC mixing stage.
pub struct BcMix {
    meter: GainMeter,
    partners: Partners,
    /// `r ~ Beta(alpha, alpha)`; `None`: the paper's `U(0, 1)`.
    ratio: Option<Beta<f64>>,
    /// The last epoch (1-based) that is mixed; later ones pass plain.
    last_mixed: usize,
    /// The probability that an incoming crop is mixed (1: every crop).
    prob: f64,
    /// Random gain in `[-gain_db, gain_db]` dB of every output (0: none).
    gain_db: f64,
    /// Draws the gains, apart from `rng` so that the mixes do not depend on the setting.
    gain_rng: ChaCha8Rng,
    seed: u64,
    epoch: usize,
    rng: ChaCha8Rng,
    /// Candidate partners with their gains in dB.
    pool: Vec<(Arc<Example>, f64)>,
    /// Examples of this epoch not yet matched by an output.
    owed: usize,
}

impl BcMix {
    /// A mixer for sounds at `rate` Hz that mixes any two examples of different classes.
    pub fn new(rate: u32, seed: u64) -> Self {
        Self::with_partners(rate, seed, Partners::Any)
    }

    /// A mixer for sounds at `rate` Hz that draws partners by `partners`.
    pub fn with_partners(rate: u32, seed: u64, partners: Partners) -> Self {
        Self {
            meter: GainMeter::new(rate),
            partners,
            ratio: None,
            last_mixed: usize::MAX,
            prob: 1.0,
            gain_db: 0.0,
            seed,
            epoch: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
            gain_rng: ChaCha8Rng::seed_from_u64(seed),
            pool: Vec::with_capacity(POOL),
            owed: 0,
        }
    }

    /// Draws the ratio from `Beta(alpha, alpha)`. `alpha = 1` is `U(0, 1)`, drawn exactly
    /// as by [`BcMix::new`]; smaller values keep most mixes close to one of the two crops.
    ///
    /// # Panics
    /// If `alpha` is not a positive finite number (the pipeline checks it first).
    pub fn with_alpha(mut self, alpha: f64) -> Self {
        self.ratio = (alpha != 1.0)
            .then(|| Beta::new(alpha, alpha).expect("alpha is a positive finite number"));
        self
    }

    /// Mixes epochs `1..=last` only; the crops of later epochs pass through plain, with
    /// their own labels (a plain finish after mixed training).
    pub fn mixing_until(mut self, last: usize) -> Self {
        self.last_mixed = last;
        self
    }

    /// Mixes each crop with probability `prob` (0 to 1); the others pass through plain,
    /// with their own labels, and still serve as partners. `prob = 1` mixes every crop,
    /// drawn exactly as without this setting.
    pub fn with_prob(mut self, prob: f64) -> Self {
        self.prob = prob;
        self
    }

    /// Scales every example it puts out (mixes and plain crops) by a random gain in
    /// `[-db, db]` dB, drawn apart from the mixing: the mixes are the same as without it.
    /// 0 turns it off.
    pub fn with_gain(mut self, db: f64) -> Self {
        self.gain_db = db;
        self
    }

    /// `ex` with this stage's random gain (itself when the gain is off).
    fn gained(&mut self, ex: Arc<Example>) -> Item {
        if self.gain_db <= 0.0 {
            return Item::Example(ex);
        }
        let mut ex = Arc::unwrap_or_clone(ex);
        random_gain(&mut ex.pixels, self.gain_db, &mut self.gain_rng);
        Item::Example(Arc::new(ex))
    }

    fn partner(&mut self, of: &Example, skip: Option<usize>) -> Option<usize> {
        let partners = self.partners;
        let fits = |(i, (e, _)): &(usize, &(Arc<Example>, f64))| {
            Some(*i) != skip && partners.may_mix(of, e)
        };
        let n = self.pool.iter().enumerate().filter(fits).count();
        if n == 0 {
            return None;
        }
        let k = self.rng.random_range(0..n);
        self.pool
            .iter()
            .enumerate()
            .filter(fits)
            .nth(k)
            .map(|(i, _)| i)
    }

    fn mix(&mut self, a: &Example, ga: f64, b: &Example, gb: f64) -> Arc<Example> {
        // r in (0, 1]: the share of the first example's class
        let r = match &self.ratio {
            None => 1.0 - self.rng.random::<f64>(),
            // a mix of nothing of the first crop would carry its label for nothing
            Some(beta) => beta.sample(&mut self.rng).max(f64::MIN_POSITIVE),
        };
        let pixels = bc_mix(&a.pixels, &b.pixels, ga, gb, r);
        Arc::new(Example {
            pixels,
            mix: Some((b.label, r as f32)),
            ..a.clone()
        })
    }

    fn remember(&mut self, ex: Arc<Example>, gain: f64) {
        if self.pool.len() < POOL {
            self.pool.push((ex, gain));
        } else {
            let i = self.rng.random_range(0..POOL);
            self.pool[i] = (ex, gain);
        }
    }
}

impl Stage<Item> for BcMix {
    fn process(&mut self, item: Item, out: &mut Vec<Item>) -> Result<(), BoxError> {
        match item {
            Item::Example(ex) => {
                if ex.epoch != self.epoch {
                    self.epoch = ex.epoch;
                    let seed = epoch_seed(self.seed, ex.epoch);
                    self.rng = ChaCha8Rng::seed_from_u64(seed ^ 0xBC);
                    self.gain_rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6A1);
                    self.pool.clear();
                    self.owed = 0;
                }
                if ex.epoch > self.last_mixed {
                    let plain = self.gained(ex);
                    out.push(plain);
                    return Ok(());
                }
                let gain = self.meter.gain(&ex.pixels);
                if self.prob < 1.0 && self.rng.random::<f64>() >= self.prob {
                    let plain = self.gained(ex.clone());
                    out.push(plain);
                    self.remember(ex, gain);
                    return Ok(());
                }
                match self.partner(&ex, None) {
                    Some(j) => {
                        let (other, g2) = self.pool[j].clone();
                        let mixed = self.mix(&ex, gain, &other, g2);
                        let mixed = self.gained(mixed);
                        out.push(mixed);
                    }
                    None => self.owed += 1,
                }
                self.remember(ex, gain);
            }
            Item::EpochEnd(..) => {
                // pooled examples that have a partner (all of them, unless the pool holds
                // a single class, or with a group rule a single class per group)
                let mixable: Vec<usize> = (0..self.pool.len())
                    .filter(|&i| {
                        let a = &self.pool[i].0;
                        self.pool
                            .iter()
                            .enumerate()
                            .any(|(j, (e, _))| j != i && self.partners.may_mix(a, e))
                    })
                    .collect();
                while self.owed > 0 && !mixable.is_empty() {
                    let i = mixable[self.rng.random_range(0..mixable.len())];
                    let (a, ga) = self.pool[i].clone();
                    let Some(j) = self.partner(&a, Some(i)) else {
                        break; // not reached: `mixable` holds only examples with a partner
                    };
                    let (b, gb) = self.pool[j].clone();
                    let mixed = self.mix(&a, ga, &b, gb);
                    let mixed = self.gained(mixed);
                    out.push(mixed);
                    self.owed -= 1;
                }
                self.pool.clear();
                self.owed = 0;
                out.push(item);
            }
            other => return Err(unexpected("bc_mix", &other)),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::Domain;

    fn examples_in(out: &[Item]) -> Vec<Arc<Example>> {
        out.iter()
            .filter_map(|i| match i {
                Item::Example(e) => Some(e.clone()),
                _ => None,
            })
            .collect()
    }

    fn tone(freq: f32, amp: f32) -> Vec<f32> {
        (0..2048).map(|i| amp * (i as f32 * freq).sin()).collect()
    }

    /// One epoch of `n` tones of 4 classes through `m`: everything it put out.
    fn one_epoch(mut m: BcMix, n: usize) -> Vec<Item> {
        epoch_through(&mut m, 1, n)
    }

    /// Epoch `epoch` of `n` tones of 4 classes through `m`: everything it put out.
    fn epoch_through(m: &mut BcMix, epoch: usize, n: usize) -> Vec<Item> {
        let mut out = Vec::new();
        for i in 0..n {
            let label = (i % 4) as u8;
            let ex = Example::new(
                tone(0.01 * (label + 1) as f32, 0.5),
                1,
                2048,
                label,
                epoch,
                Domain::Source,
            );
            m.process(Item::Example(Arc::new(ex)), &mut out).unwrap();
        }
        m.process(Item::EpochEnd(epoch, Domain::Source), &mut out)
            .unwrap();
        out
    }

    #[test]
    fn epochs_after_the_last_mixed_one_pass_plain() {
        let n = 12;
        let mut m = BcMix::new(16_000, 3).mixing_until(2);
        for epoch in 1..=2 {
            let out = epoch_through(&mut m, epoch, n);
            let mixes = examples_in(&out);
            assert_eq!(mixes.len(), n);
            assert!(
                mixes.iter().all(|e| e.mix.is_some()),
                "epoch {epoch} is mixed"
            );
        }
        let out = epoch_through(&mut m, 3, n);
        assert!(matches!(out.last(), Some(Item::EpochEnd(3, _))));
        let plain = examples_in(&out);
        assert_eq!(plain.len(), n);
        for (i, e) in plain.iter().enumerate() {
            let label = (i % 4) as u8;
            assert_eq!(e.mix, None);
            assert_eq!(e.label, label, "plain crops keep their order and label");
            assert_eq!(e.pixels, tone(0.01 * (label + 1) as f32, 0.5));
        }
    }

    #[test]
    fn every_example_yields_one_mix_of_two_different_classes() {
        let n = 40;
        let out = one_epoch(BcMix::new(16_000, 1), n);
        assert!(matches!(out.last(), Some(Item::EpochEnd(1, _))));
        let mixes = examples_in(&out);
        assert_eq!(mixes.len(), n);
        let mut rs = Vec::new();
        for e in &mixes {
            let (second, r) = e.mix.expect("every output is a mix");
            assert_ne!(second, e.label);
            assert!(r > 0.0 && r <= 1.0);
            assert_eq!(e.pixels.len(), 2048);
            rs.push(r);
        }
        let mean = rs.iter().sum::<f32>() / rs.len() as f32;
        assert!((0.3..0.7).contains(&mean), "r ~ U(0, 1): mean {mean}");
    }

    #[test]
    fn equal_gains_mix_with_the_ratio() {
        let mut m = BcMix::new(16_000, 2);
        let a = Arc::new(Example::new(tone(0.05, 0.5), 1, 2048, 0, 1, Domain::Source));
        let b = Arc::new(Example::new(tone(0.05, 0.5), 1, 2048, 1, 1, Domain::Source));
        let mut out = Vec::new();
        m.process(Item::Example(a.clone()), &mut out).unwrap();
        m.process(Item::Example(b.clone()), &mut out).unwrap();
        let Item::Example(e) = &out[0] else {
            panic!("expected a mix")
        };
        // b mixed with a (same sound, same gain): p = r, output = x / sqrt(r^2 + (1-r)^2)
        let (second, r) = e.mix.unwrap();
        assert_eq!((e.label, second), (1, 0));
        let r = r as f64;
        let want = 1.0 / (r * r + (1.0 - r) * (1.0 - r)).sqrt();
        let got = e.pixels[100] as f64 / a.pixels[100] as f64;
        assert!((got - want).abs() < 1e-3, "{got} {want}");
    }

    #[test]
    fn group_rules_choose_the_partners() {
        // 3 classes x 2 groups; group 1 sounds only in the first half of the clip,
        // group 2 only in the second, so a mix shows which groups it holds
        let examples: Vec<Arc<Example>> = (0..60)
            .map(|i| {
                let (label, group) = ((i % 3) as u8, (i / 3 % 2) as u32 + 1);
                let mut x = tone(0.01 * (label + 1) as f32, 0.5);
                let silent = if group == 1 { 1024..2048 } else { 0..1024 };
                x[silent].iter_mut().for_each(|v| *v = 0.0);
                Arc::new(Example::new(x, 1, 2048, label, 1, Domain::Source).with_group(group))
            })
            .collect();
        let sounds = |x: &[f32]| x.iter().any(|v| *v != 0.0);
        for partners in [Partners::SameGroup, Partners::OtherGroup, Partners::Any] {
            let mut m = BcMix::with_partners(16_000, 3, partners);
            let mut out = Vec::new();
            for e in &examples {
                m.process(Item::Example(e.clone()), &mut out).unwrap();
            }
            m.process(Item::EpochEnd(1, Domain::Source), &mut out)
                .unwrap();
            let mixes = examples_in(&out);
            assert_eq!(
                mixes.len(),
                examples.len(),
                "{partners:?}: one mix per example"
            );
            let (mut within, mut across) = (0, 0);
            for mx in &mixes {
                assert_ne!(mx.mix.unwrap().0, mx.label);
                match (sounds(&mx.pixels[..1024]), sounds(&mx.pixels[1024..])) {
                    (true, true) => across += 1,
                    (true, false) | (false, true) => within += 1,
                    (false, false) => panic!("a silent mix"),
                }
            }
            match partners {
                Partners::SameGroup => assert_eq!((within, across), (60, 0)),
                Partners::OtherGroup => assert_eq!((within, across), (0, 60)),
                Partners::Any => assert!(within > 0 && across > 0, "{within} {across}"),
            }
        }
    }

    fn ratios(m: BcMix, n: usize) -> Vec<f32> {
        let out = one_epoch(m, n);
        examples_in(&out).iter().map(|e| e.mix.unwrap().1).collect()
    }

    #[test]
    fn alpha_shapes_the_ratio_and_one_keeps_the_uniform_draws() {
        let n = 400;
        let uniform = ratios(BcMix::new(16_000, 5), n);
        assert_eq!(ratios(BcMix::new(16_000, 5).with_alpha(1.0), n), uniform);
        // share of ratios within 0.1 of a pure crop: 20% for U(0, 1), about 60% for
        // Beta(0.2, 0.2), about 3% for Beta(4, 4)
        let near_ends = |rs: &[f32]| {
            rs.iter().filter(|r| **r < 0.1 || **r > 0.9).count() as f64 / rs.len() as f64
        };
        let small = ratios(BcMix::new(16_000, 5).with_alpha(0.2), n);
        let large = ratios(BcMix::new(16_000, 5).with_alpha(4.0), n);
        for rs in [&uniform, &small, &large] {
            assert_eq!(rs.len(), n);
            assert!(rs.iter().all(|r| *r > 0.0 && *r <= 1.0));
        }
        assert!(
            (0.12..0.28).contains(&near_ends(&uniform)),
            "{}",
            near_ends(&uniform)
        );
        assert!(near_ends(&small) > 0.5, "{}", near_ends(&small));
        assert!(near_ends(&large) < 0.08, "{}", near_ends(&large));
    }

    #[test]
    fn prob_mixes_a_share_and_passes_the_rest_plain() {
        let n = 400;
        type Mix = (Vec<f32>, Option<(u8, f32)>);
        let mixes = |out: &[Item]| -> Vec<Mix> {
            examples_in(out)
                .iter()
                .map(|e| (e.pixels.clone(), e.mix))
                .collect()
        };
        assert_eq!(
            mixes(&one_epoch(BcMix::new(16_000, 7).with_prob(1.0), n)),
            mixes(&one_epoch(BcMix::new(16_000, 7), n)),
            "prob = 1 draws as without it"
        );
        let out = one_epoch(BcMix::new(16_000, 7).with_prob(0.25), n);
        let examples = examples_in(&out);
        assert_eq!(examples.len(), n, "one output per crop");
        let mixed = examples.iter().filter(|e| e.mix.is_some()).count();
        assert!((60..140).contains(&mixed), "about a quarter mixed: {mixed}");
        for e in examples.iter().filter(|e| e.mix.is_none()) {
            assert_eq!(
                e.pixels,
                tone(0.01 * (e.label + 1) as f32, 0.5),
                "plain crops pass untouched"
            );
        }
        // plain crops are partners too: with nothing mixed, the pool still fills
        let mut m = BcMix::new(16_000, 7).with_prob(0.0);
        let mut out = Vec::new();
        for i in 0..10u8 {
            let ex = Example::new(tone(0.01, 0.5), 1, 2048, i % 4, 1, Domain::Source);
            m.process(Item::Example(Arc::new(ex)), &mut out).unwrap();
        }
        assert_eq!(m.pool.len(), 10);
        assert!(examples_in(&out).iter().all(|e| e.mix.is_none()));
    }

    #[test]
    fn a_gain_after_mixing_scales_each_output_and_leaves_the_mixes_alone() {
        let n = 40;
        let plain = examples_in(&one_epoch(BcMix::new(16_000, 4), n));
        let gained = examples_in(&one_epoch(BcMix::new(16_000, 4).with_gain(6.0), n));
        assert_eq!(plain.len(), gained.len());
        let (lo, hi) = (10f32.powf(-6.0 / 20.0), 10f32.powf(6.0 / 20.0));
        let mut factors = Vec::new();
        for (p, g) in plain.iter().zip(&gained) {
            assert_eq!(
                (p.label, p.mix),
                (g.label, g.mix),
                "same partners and ratios"
            );
            let (i, peak) = p.pixels.iter().enumerate().fold((0, 0f32), |m, (i, v)| {
                if v.abs() > m.1 {
                    (i, v.abs())
                } else {
                    m
                }
            });
            let f = g.pixels[i] / p.pixels[i];
            assert!(
                peak > 0.0 && (lo * 0.999..=hi * 1.001).contains(&f),
                "factor {f}"
            );
            for (a, b) in p.pixels.iter().zip(&g.pixels) {
                assert!(
                    (a * f - b).abs() <= 1e-5,
                    "one factor for the whole example"
                );
            }
            factors.push(f);
        }
        let (min, max) = factors
            .iter()
            .fold((f32::MAX, f32::MIN), |(a, b), f| (a.min(*f), b.max(*f)));
        assert!(
            min < 0.8 && max > 1.25,
            "gains spread over +-6 dB: {min}..{max}"
        );
        // plain crops (after the last mixed epoch) get the gain as well
        let mut m = BcMix::new(16_000, 4).mixing_until(0).with_gain(6.0);
        let out = examples_in(&epoch_through(&mut m, 1, 8));
        assert!(out.iter().all(|e| e.mix.is_none()));
        assert!(out
            .iter()
            .any(|e| e.pixels != tone(0.01 * (e.label + 1) as f32, 0.5)));
    }

    #[test]
    fn an_epoch_mixes_the_same_after_a_resume() {
        // epoch 2 after epoch 1, and epoch 2 alone (a run resumed there), draw alike
        let mixes = |out: &[Item]| -> Vec<Option<(u8, f32)>> {
            examples_in(out).iter().map(|e| e.mix).collect()
        };
        let mut whole = BcMix::new(16_000, 9).with_prob(0.5);
        epoch_through(&mut whole, 1, 40);
        let after = epoch_through(&mut whole, 2, 40);
        let mut resumed = BcMix::new(16_000, 9).with_prob(0.5);
        let alone = epoch_through(&mut resumed, 2, 40);
        assert_eq!(mixes(&after), mixes(&alone));
        assert!(mixes(&after).iter().any(|m| m.is_some()));
        assert!(mixes(&after).iter().any(|m| m.is_none()));
    }

    #[test]
    fn pipeline_keys_set_the_mixer() {
        let stage = |text: &str| -> crate::pipeline::StageSpec {
            toml::from_str(&format!("kind = \"bc_mix\"\n{text}")).unwrap()
        };
        let mixed = |m: &mut BcMix, epoch: usize| {
            examples_in(&epoch_through(m, epoch, 40))
                .iter()
                .filter(|e| e.mix.is_some())
                .count()
        };
        let build =
            |text: &str| crate::pipeline::assemble::bc_mix_stage(&stage(text), 16_000, 1, 4);
        let mut m = build("");
        assert_eq!((mixed(&mut m, 1), mixed(&mut m, 4)), (40, 40));
        let mut m = build("prob = 0.0");
        assert_eq!(mixed(&mut m, 1), 0);
        let mut m = build("until = 0.5");
        assert_eq!((mixed(&mut m, 2), mixed(&mut m, 3)), (40, 0));
        let mut m = build("prob = 0.5");
        assert!((5..35).contains(&mixed(&mut m, 1)));
        let near_ends = |m: &mut BcMix| {
            examples_in(&epoch_through(m, 1, 400))
                .iter()
                .filter(|e| e.mix.is_some_and(|(_, r)| !(0.1..=0.9).contains(&r)))
                .count()
        };
        assert!(near_ends(&mut build("alpha = 0.2")) > 200);
        assert!(near_ends(&mut build("")) < 140);
        let m = build("partners = \"same_group\"");
        assert_eq!(m.partners, Partners::SameGroup);
        assert_eq!(build("gain_db = 6").gain_db, 6.0);
        assert_eq!(build("").gain_db, 0.0);
    }
}
