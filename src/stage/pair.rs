//! Pair stage: joins a source batch and a target batch of the same epoch into one
//! [`PairBatch`], the input of every adapting method's iteration.
//!
//! The two domains arrive merged on one input, each in its own order. The i-th source
//! batch of an epoch is paired with the i-th target batch of that epoch, however the two
//! streams interleave, so pairing is deterministic. An epoch has as many pairs as the
//! shorter domain has batches (the reference protocol's "stop at the first short
//! batch"); the other domain's leftover batches are dropped when both have ended the
//! epoch, and only then does the epoch marker pass on.

use super::unexpected;
use crate::graph::{BoxError, Stage};
use crate::item::{Batch, Domain, Item, PairBatch};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// Pairs source and target batches.
#[derive(Default)]
pub struct Pair {
    source: VecDeque<Arc<Batch>>,
    target: VecDeque<Arc<Batch>>,
    /// Epochs that one domain has ended, waiting for the other.
    ended: BTreeMap<usize, Domain>,
}

impl Pair {
    /// An empty pairer.
    pub fn new() -> Self {
        Self::default()
    }

    fn emit_pairs(&mut self, out: &mut Vec<Item>) {
        loop {
            let (Some(s), Some(t)) = (self.source.front(), self.target.front()) else {
                return;
            };
            if s.epoch == t.epoch {
                let pair = PairBatch {
                    source: self.source.pop_front().expect("front exists"),
                    target: self.target.pop_front().expect("front exists"),
                };
                out.push(Item::Pair(Arc::new(pair)));
            } else if s.epoch < t.epoch {
                // the target has moved past this epoch: this source batch has no partner
                self.source.pop_front();
            } else {
                self.target.pop_front();
            }
        }
    }
}

impl Stage<Item> for Pair {
    fn process(&mut self, item: Item, out: &mut Vec<Item>) -> Result<(), BoxError> {
        match item {
            Item::Batch(b) => {
                match b.domain {
                    Domain::Source => self.source.push_back(b),
                    Domain::Target => self.target.push_back(b),
                }
                self.emit_pairs(out);
            }
            Item::EpochEnd(epoch, domain) => match self.ended.get(&epoch) {
                Some(&d) if d != domain => {
                    self.ended.remove(&epoch);
                    self.source.retain(|b| b.epoch > epoch);
                    self.target.retain(|b| b.epoch > epoch);
                    out.push(Item::EpochEnd(epoch, Domain::Source));
                    self.emit_pairs(out);
                }
                _ => {
                    self.ended.insert(epoch, domain);
                }
            },
            other => return Err(unexpected("pair", &other)),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(domain: Domain, epoch: usize, tag: u8) -> Item {
        Item::Batch(Arc::new(Batch {
            pixels: vec![0.0; 4],
            labels: vec![tag],
            height: 2,
            width: 2,
            epoch,
            domain,
            mix: Vec::new(),
        }))
    }

    fn summary(out: &[Item]) -> Vec<String> {
        out.iter()
            .map(|i| match i {
                Item::Pair(p) => format!("{}+{}", p.source.labels[0], p.target.labels[0]),
                Item::EpochEnd(e, _) => format!("end{e}"),
                _ => "?".into(),
            })
            .collect()
    }

    #[test]
    fn pairs_in_order_and_stops_at_the_shorter_domain() {
        use Domain::*;
        let mut p = Pair::new();
        let mut out = Vec::new();
        // source: 3 batches in epoch 1, target: 2; the source runs ahead into epoch 2
        for item in [
            batch(Source, 1, 1),
            batch(Source, 1, 2),
            batch(Source, 1, 3),
            Item::EpochEnd(1, Source),
            batch(Source, 2, 4),
            batch(Target, 1, 11),
            batch(Target, 1, 12),
            Item::EpochEnd(1, Target),
            batch(Target, 2, 13),
        ] {
            p.process(item, &mut out).unwrap();
        }
        assert_eq!(summary(&out), vec!["1+11", "2+12", "end1", "4+13"]);
    }

    #[test]
    fn interleaving_does_not_change_the_pairs() {
        use Domain::*;
        let mut a = Pair::new();
        let mut b = Pair::new();
        let (mut oa, mut ob) = (Vec::new(), Vec::new());
        for item in [
            batch(Target, 1, 10),
            batch(Target, 1, 11),
            batch(Source, 1, 1),
            batch(Source, 1, 2),
        ] {
            a.process(item, &mut oa).unwrap();
        }
        for item in [
            batch(Source, 1, 1),
            batch(Target, 1, 10),
            batch(Source, 1, 2),
            batch(Target, 1, 11),
        ] {
            b.process(item, &mut ob).unwrap();
        }
        assert_eq!(summary(&oa), summary(&ob));
        assert_eq!(summary(&oa), vec!["1+10", "2+11"]);
    }
}
