//! Batcher: groups examples into batches of a fixed size. At the end of an epoch the
//! incomplete batch is emitted (or dropped with `drop_last`) before the marker passes on,
//! so no batch ever mixes two epochs; examples of the two domains are batched apart, so
//! no batch mixes domains either.

use super::unexpected;
use crate::graph::{BoxError, Stage};
use crate::item::{Batch, Domain, Item};
use std::sync::Arc;

/// Groups [`Item::Example`]s into [`Item::Batch`]es.
pub struct Batcher {
    batch_size: usize,
    drop_last: bool,
    /// The batch being filled, per domain (source, target).
    pending: [Option<Batch>; 2],
}

fn slot(d: Domain) -> usize {
    match d {
        Domain::Source => 0,
        Domain::Target => 1,
    }
}

impl Batcher {
    /// A batcher of `batch_size` (at least 1) examples per batch.
    pub fn new(batch_size: usize, drop_last: bool) -> Self {
        Self {
            batch_size: batch_size.max(1),
            drop_last,
            pending: [None, None],
        }
    }

    fn flush(&mut self, domain: Domain, out: &mut Vec<Item>) {
        if let Some(b) = self.pending[slot(domain)].take() {
            let partial = b.len() < self.batch_size;
            if !(b.is_empty() || self.drop_last && partial) {
                out.push(Item::Batch(Arc::new(b)));
            }
        }
    }
}

impl Stage<Item> for Batcher {
    fn process(&mut self, item: Item, out: &mut Vec<Item>) -> Result<(), BoxError> {
        match item {
            Item::Example(ex) => {
                let n = ex.pixels.len();
                let b = self.pending[slot(ex.domain)].get_or_insert_with(|| Batch {
                    pixels: Vec::with_capacity(n * self.batch_size),
                    labels: Vec::with_capacity(self.batch_size),
                    height: ex.height,
                    width: ex.width,
                    epoch: ex.epoch,
                    domain: ex.domain,
                    mix: Vec::new(),
                });
                b.pixels.extend_from_slice(&ex.pixels);
                b.labels.push(ex.label);
                b.mix.push(ex.mix.unwrap_or((ex.label, 1.0)));
                if b.len() == self.batch_size {
                    self.flush(ex.domain, out);
                }
            }
            Item::EpochEnd(_, domain) => {
                self.flush(domain, out);
                out.push(item);
            }
            other => return Err(unexpected("batcher", &other)),
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Item>) -> Result<(), BoxError> {
        self.flush(Domain::Source, out);
        self.flush(Domain::Target, out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::{Domain, Example};

    fn ex(v: f32) -> Item {
        Item::Example(Arc::new(Example::new(
            vec![v; 4],
            2,
            2,
            v as u8,
            1,
            Domain::Source,
        )))
    }

    fn sizes(drop_last: bool) -> Vec<usize> {
        let mut b = Batcher::new(3, drop_last);
        let mut out = Vec::new();
        for i in 0..7 {
            b.process(ex(i as f32), &mut out).unwrap();
        }
        b.process(Item::EpochEnd(1, Domain::Source), &mut out)
            .unwrap();
        out.iter()
            .map(|i| match i {
                Item::Batch(b) => b.len(),
                _ => 0,
            })
            .collect()
    }

    #[test]
    fn partial_batch_is_flushed_at_epoch_end() {
        assert_eq!(sizes(false), vec![3, 3, 1, 0]);
    }

    #[test]
    fn drop_last_discards_the_partial_batch() {
        assert_eq!(sizes(true), vec![3, 3, 0]);
    }

    #[test]
    fn batch_keeps_images_and_labels_in_order() {
        let mut b = Batcher::new(2, false);
        let mut out = Vec::new();
        b.process(ex(1.0), &mut out).unwrap();
        b.process(ex(2.0), &mut out).unwrap();
        let Item::Batch(batch) = &out[0] else {
            panic!("expected a batch")
        };
        assert_eq!(batch.labels, vec![1, 2]);
        assert_eq!(batch.pixels, vec![1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0]);
        assert_eq!((batch.height, batch.width), (2, 2));
    }
}
