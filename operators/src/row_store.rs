//! [`RowStore`]: input rows held by an operator until it emits them (not an
//! operator).
//!
//! The ordering operators (sequence ordering, deduplication, temporal sort,
//! OVER aggregation) hold rows across batches. They keep them here, in the
//! Arrow batches they arrived in, and refer to each row by a [`RowRef`]. A
//! stored batch is dropped when its last row is released. When only a few
//! rows of a batch are kept, they are copied out (`take`) so that one held
//! row does not pin a whole batch.
//!
//! Emitting gathers rows from any number of stored batches (and the batch
//! being processed) into one output batch with arrow's `interleave`.

use arrow::array::{RecordBatch, UInt32Array};
use arrow::compute::{interleave_record_batch, take_record_batch};
use arrow::datatypes::SchemaRef;
use weir_engine::{Result, WeirError};

/// A row held in a [`RowStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct RowRef {
    slot: u32,
    row: u32,
}

/// Where a row to emit is: in the batch being processed or in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loc {
    /// Row `n` of the batch being processed.
    Current(u32),
    /// A stored row.
    Stored(RowRef),
}

#[derive(Debug)]
struct Stored {
    batch: RecordBatch,
    live: u32,
}

/// Batches holding rows an operator has not emitted yet.
#[derive(Debug)]
pub(crate) struct RowStore {
    schema: SchemaRef,
    slots: Vec<Option<Stored>>,
    free: Vec<u32>,
    live_rows: usize,
}

impl RowStore {
    /// An empty store for rows of `schema`.
    pub(crate) fn new(schema: SchemaRef) -> Self {
        Self {
            schema,
            slots: Vec::new(),
            free: Vec::new(),
            live_rows: 0,
        }
    }

    /// Number of rows held.
    pub(crate) fn len(&self) -> usize {
        self.live_rows
    }

    /// Stores rows `rows` of `batch` (in that order) and returns their refs.
    /// The whole batch is kept when at least half of it is stored, else the
    /// rows are copied out.
    pub(crate) fn insert(&mut self, batch: &RecordBatch, rows: &[u32]) -> Result<Vec<RowRef>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let whole = rows.len() * 2 >= batch.num_rows();
        let stored = if whole {
            batch.clone()
        } else {
            take_record_batch(batch, &UInt32Array::from(rows.to_vec()))?
        };
        let stored = if stored.schema() == self.schema {
            stored
        } else {
            stored.with_schema(self.schema.clone()).map_err(|e| {
                WeirError::Execution(format!("input batch does not match the input schema: {e}"))
            })?
        };
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        self.slots[slot as usize] = Some(Stored {
            batch: stored,
            live: rows.len() as u32,
        });
        self.live_rows += rows.len();
        Ok(if whole {
            rows.iter().map(|&row| RowRef { slot, row }).collect()
        } else {
            (0..rows.len() as u32)
                .map(|row| RowRef { slot, row })
                .collect()
        })
    }

    /// Releases a row (after it was emitted or dropped). Releasing a row twice
    /// is a bug and reported as such.
    pub(crate) fn release(&mut self, r: RowRef) -> Result<()> {
        let entry = self.slots.get_mut(r.slot as usize).and_then(Option::as_mut);
        let Some(stored) = entry else {
            return Err(WeirError::Internal(format!(
                "row store: release of a row in empty slot {}",
                r.slot
            )));
        };
        stored.live = stored.live.saturating_sub(1);
        self.live_rows = self.live_rows.saturating_sub(1);
        if stored.live == 0 {
            self.slots[r.slot as usize] = None;
            self.free.push(r.slot);
        }
        Ok(())
    }

    /// Gathers rows into one batch, in the order of `locs`. `current` is the
    /// batch being processed (needed when a loc is [`Loc::Current`]).
    pub(crate) fn gather(
        &self,
        current: Option<&RecordBatch>,
        locs: &[Loc],
    ) -> Result<RecordBatch> {
        if locs.is_empty() {
            return Ok(RecordBatch::new_empty(self.schema.clone()));
        }
        // Dense source numbering: 0 = current batch, then slots in order of use.
        let mut sources: Vec<&RecordBatch> = Vec::new();
        let mut slot_source: Vec<u32> = vec![u32::MAX; self.slots.len()];
        let mut current_source = None;
        let mut indices = Vec::with_capacity(locs.len());
        for loc in locs {
            match *loc {
                Loc::Current(row) => {
                    let src = match current_source {
                        Some(s) => s,
                        None => {
                            let batch = current.ok_or_else(|| {
                                WeirError::Internal("row store: no current batch to gather".into())
                            })?;
                            sources.push(batch);
                            current_source = Some(sources.len() - 1);
                            sources.len() - 1
                        }
                    };
                    indices.push((src, row as usize));
                }
                Loc::Stored(r) => {
                    let s = r.slot as usize;
                    let src = match slot_source.get(s).copied() {
                        Some(u32::MAX) => {
                            let stored = self.slots[s].as_ref().ok_or_else(|| {
                                WeirError::Internal(format!(
                                    "row store: gather from empty slot {s}"
                                ))
                            })?;
                            sources.push(&stored.batch);
                            slot_source[s] = (sources.len() - 1) as u32;
                            sources.len() - 1
                        }
                        Some(src) => src as usize,
                        None => {
                            return Err(WeirError::Internal(format!(
                                "row store: gather from unknown slot {s}"
                            )))
                        }
                    };
                    indices.push((src, r.row as usize));
                }
            }
        }
        if sources.len() == 1 && indices.iter().enumerate().all(|(i, &(_, r))| i == r) {
            let b = sources[0];
            if b.num_rows() == indices.len() {
                return Ok(b.clone());
            }
            return Ok(b.slice(0, indices.len()));
        }
        let out = interleave_record_batch(&sources, &indices)?;
        if out.schema() == self.schema {
            Ok(out)
        } else {
            Ok(out.with_schema(self.schema.clone())?)
        }
    }

    /// Gathers stored rows into one batch, in the order of `refs`.
    pub(crate) fn gather_stored(&self, refs: impl Iterator<Item = RowRef>) -> Result<RecordBatch> {
        let locs: Vec<Loc> = refs.map(Loc::Stored).collect();
        self.gather(None, &locs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::rows_of;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch(values: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))])
            .expect("batch")
    }

    #[test]
    fn keeps_few_rows_compactly_and_frees_slots() {
        let b = batch(&[10, 11, 12, 13, 14]);
        let mut store = RowStore::new(b.schema());
        let refs = store.insert(&b, &[3]).expect("insert");
        assert_eq!(refs, vec![RowRef { slot: 0, row: 0 }]);
        let whole = store.insert(&b, &[0, 2, 4]).expect("insert");
        assert_eq!(whole[1], RowRef { slot: 1, row: 2 });
        assert_eq!(store.len(), 4);
        let out = store
            .gather(
                Some(&batch(&[99, 98])),
                &[
                    Loc::Stored(whole[2]),
                    Loc::Current(1),
                    Loc::Stored(refs[0]),
                    Loc::Stored(whole[0]),
                ],
            )
            .expect("gather");
        assert_eq!(rows_of(&[out]), vec!["14", "98", "13", "10"]);
        store.release(refs[0]).expect("release");
        assert!(store.slots[0].is_none());
        assert!(store.release(refs[0]).is_err());
        let again = store.insert(&b, &[1]).expect("insert");
        assert_eq!(again[0].slot, 0, "free slots are reused");
        assert_eq!(store.len(), 4);
    }
}
