//! Row storage shared by the partitions of a matcher.
//!
//! Input batches are kept as they arrived, in *chunks*, together with the
//! per-row expressions evaluated on them once (vectorized, with DataFusion):
//! the arguments of navigation functions and the conditions that read only
//! the current row. Partitions refer to their rows by [`RowLoc`] (chunk and
//! row index), so a match references row positions, never copies. A chunk
//! is dropped when no partition references any of its rows;
//! [`RowStore::compact`] copies the referenced rows of sparse chunks into
//! fresh ones.

use std::collections::VecDeque;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::compute::interleave;
use weir_engine::{Result, WeirError};

/// Where a stored row lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RowLoc {
    /// Chunk id.
    pub(crate) chunk: u32,
    /// Row index within the chunk.
    pub(crate) row: u32,
}

/// One stored input batch and its per-row expressions.
#[derive(Debug)]
pub(crate) struct Chunk {
    /// The input columns.
    pub(crate) batch: RecordBatch,
    /// One column per registered row expression.
    pub(crate) derived: Vec<ArrayRef>,
    /// Number of references to rows of this chunk.
    live: usize,
}

/// The chunks of a matcher.
#[derive(Debug, Default)]
pub(crate) struct RowStore {
    chunks: Vec<Option<Chunk>>,
    free: Vec<u32>,
    /// Rows held by all chunks.
    allocated_rows: usize,
    /// Row references.
    live_rows: usize,
}

impl RowStore {
    /// Adds a chunk with no references yet; call [`RowStore::seal`] after
    /// taking references to its rows.
    pub(crate) fn insert(&mut self, batch: RecordBatch, derived: Vec<ArrayRef>) -> u32 {
        self.allocated_rows += batch.num_rows();
        let chunk = Chunk {
            batch,
            derived,
            live: 0,
        };
        match self.free.pop() {
            Some(id) => {
                if let Some(slot) = self.chunks.get_mut(id as usize) {
                    *slot = Some(chunk);
                }
                id
            }
            None => {
                self.chunks.push(Some(chunk));
                (self.chunks.len() - 1) as u32
            }
        }
    }

    /// Drops chunk `id` if nothing references it.
    pub(crate) fn seal(&mut self, id: u32) {
        let dead = self
            .chunks
            .get(id as usize)
            .and_then(Option::as_ref)
            .is_some_and(|c| c.live == 0);
        if dead {
            self.drop_chunk(id);
        }
    }

    fn drop_chunk(&mut self, id: u32) {
        if let Some(slot) = self.chunks.get_mut(id as usize) {
            if let Some(c) = slot.take() {
                self.allocated_rows -= c.batch.num_rows();
                self.free.push(id);
            }
        }
    }

    /// Takes a reference to a row.
    pub(crate) fn retain(&mut self, loc: RowLoc) {
        if let Some(Some(c)) = self.chunks.get_mut(loc.chunk as usize) {
            c.live += 1;
            self.live_rows += 1;
        }
    }

    /// Drops a reference to a row (and the chunk with the last one).
    pub(crate) fn release(&mut self, loc: RowLoc) {
        let mut dead = false;
        if let Some(Some(c)) = self.chunks.get_mut(loc.chunk as usize) {
            c.live = c.live.saturating_sub(1);
            self.live_rows = self.live_rows.saturating_sub(1);
            dead = c.live == 0;
        }
        if dead {
            self.drop_chunk(loc.chunk);
        }
    }

    /// The chunk `id`.
    pub(crate) fn chunk(&self, id: u32) -> Result<&Chunk> {
        self.chunks
            .get(id as usize)
            .and_then(Option::as_ref)
            .ok_or_else(|| WeirError::Internal(format!("row chunk {id} is gone")))
    }

    /// Number of row references.
    pub(crate) fn live_rows(&self) -> usize {
        self.live_rows
    }

    /// Number of rows held by chunks (referenced or not).
    pub(crate) fn allocated_rows(&self) -> usize {
        self.allocated_rows
    }

    /// Copies the rows at `locs` (in that order) into one batch and its
    /// derived columns.
    pub(crate) fn gather(&self, locs: &[RowLoc]) -> Result<(RecordBatch, Vec<ArrayRef>)> {
        let mut ids: Vec<u32> = Vec::new();
        let mut indices = Vec::with_capacity(locs.len());
        for loc in locs {
            let src = match ids.iter().position(|&c| c == loc.chunk) {
                Some(i) => i,
                None => {
                    ids.push(loc.chunk);
                    ids.len() - 1
                }
            };
            indices.push((src, loc.row as usize));
        }
        let chunks = ids
            .iter()
            .map(|&id| self.chunk(id))
            .collect::<Result<Vec<_>>>()?;
        let Some(first) = chunks.first() else {
            return Err(WeirError::Internal("gathering no rows".into()));
        };
        let schema = first.batch.schema();
        let pick = |col: &dyn Fn(&Chunk) -> Option<&ArrayRef>| -> Result<ArrayRef> {
            let arrays = chunks
                .iter()
                .map(|c| {
                    col(c)
                        .map(|a| a.as_ref())
                        .ok_or_else(|| WeirError::Internal("row chunk column missing".into()))
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(interleave(&arrays, &indices)?)
        };
        let columns = (0..schema.fields().len())
            .map(|i| pick(&|c: &Chunk| c.batch.columns().get(i)))
            .collect::<Result<Vec<_>>>()?;
        let derived = (0..first.derived.len())
            .map(|i| pick(&|c: &Chunk| c.derived.get(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok((RecordBatch::try_new(schema, columns)?, derived))
    }

    /// Copies the rows referenced through `locs` into new chunks of at most
    /// `chunk_rows` rows and rewrites the references. Every reference must
    /// be listed exactly once.
    pub(crate) fn compact(&mut self, locs: &mut [&mut RowLoc], chunk_rows: usize) -> Result<()> {
        let mut fresh = RowStore::default();
        for part in locs.chunks_mut(chunk_rows.max(1)) {
            let old: Vec<RowLoc> = part.iter().map(|l| **l).collect();
            let (batch, derived) = self.gather(&old)?;
            let id = fresh.insert(batch, derived);
            for (i, l) in part.iter_mut().enumerate() {
                **l = RowLoc {
                    chunk: id,
                    row: i as u32,
                };
                fresh.retain(**l);
            }
        }
        *self = fresh;
        Ok(())
    }
}

/// A stored row of a partition: where it is and its event time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoredRow {
    pub(crate) loc: RowLoc,
    pub(crate) ts: i64,
}

/// The rows of one partition that went through the NFA and are still
/// needed, by sequence number (0 = the partition's first row).
#[derive(Debug, Default, Clone)]
pub(crate) struct History {
    /// Sequence number of `rows[0]`.
    base: u64,
    rows: VecDeque<StoredRow>,
}

impl History {
    /// A history whose next row gets sequence number `base` (restore).
    pub(crate) fn starting_at(base: u64) -> Self {
        Self {
            base,
            rows: VecDeque::new(),
        }
    }

    /// Releases every row and starts over at sequence number 0, keeping
    /// the allocation (for reuse by another partition).
    pub(crate) fn reset(&mut self, store: &mut RowStore) {
        for r in self.rows.drain(..) {
            store.release(r.loc);
        }
        self.base = 0;
    }

    /// Sequence number of the next row.
    pub(crate) fn next_seq(&self) -> u64 {
        self.base + self.rows.len() as u64
    }

    /// Sequence number of the oldest kept row.
    pub(crate) fn base(&self) -> u64 {
        self.base
    }

    /// Number of kept rows.
    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// Appends a row; returns its sequence number.
    pub(crate) fn push(&mut self, row: StoredRow) -> u64 {
        self.rows.push_back(row);
        self.next_seq() - 1
    }

    /// The row with sequence number `seq`, if kept.
    pub(crate) fn get(&self, seq: u64) -> Option<&StoredRow> {
        let i = seq.checked_sub(self.base)?;
        self.rows.get(usize::try_from(i).ok()?)
    }

    /// Forgets the rows before `seq` (at most all of them), releasing them
    /// in `store`. Sequence numbers are never skipped.
    pub(crate) fn trim_before(&mut self, seq: u64, store: &mut RowStore) {
        while self.base < seq {
            let Some(r) = self.rows.pop_front() else {
                break;
            };
            store.release(r.loc);
            self.base += 1;
        }
    }

    /// The kept rows, oldest first, with their sequence numbers.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &StoredRow)> {
        self.rows
            .iter()
            .enumerate()
            .map(move |(i, r)| (self.base + i as u64, r))
    }

    /// Mutable references to the kept rows' locations (for compaction).
    pub(crate) fn locs_mut(&mut self) -> impl Iterator<Item = &mut RowLoc> {
        self.rows.iter_mut().map(|r| &mut r.loc)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Array, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn batch(values: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))])
            .expect("batch")
    }

    #[test]
    fn chunks_live_while_referenced_and_compact() -> Result<()> {
        let mut store = RowStore::default();
        let b = batch(&[1, 2, 3]);
        let derived: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(vec![10, 20, 30]))];
        let a = store.insert(b.clone(), derived);
        let mut h = History::default();
        for r in [0u32, 2] {
            let loc = RowLoc { chunk: a, row: r };
            store.retain(loc);
            h.push(StoredRow {
                loc,
                ts: i64::from(r),
            });
        }
        store.seal(a);
        let unused = store.insert(b, vec![]);
        store.seal(unused);
        assert_eq!(store.allocated_rows(), 3);
        assert_eq!(store.live_rows(), 2);

        let mut locs: Vec<&mut RowLoc> = h.locs_mut().collect();
        store.compact(&mut locs, 1)?;
        assert_eq!(store.allocated_rows(), 2);
        let (rows, derived) = store.gather(&h.iter().map(|(_, r)| r.loc).collect::<Vec<_>>())?;
        let v = rows
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("i64");
        assert_eq!(v.values().to_vec(), vec![1, 3]);
        assert_eq!(derived[0].len(), 2);

        h.trim_before(1, &mut store);
        assert_eq!((h.base(), h.len(), store.live_rows()), (1, 1, 1));
        h.trim_before(5, &mut store);
        assert_eq!((h.base(), h.len(), store.allocated_rows()), (2, 0, 0));
        assert_eq!(h.next_seq(), 2);
        Ok(())
    }
}
