//! Splitting a batch among downstream subtasks.

use std::hash::{BuildHasher, Hasher};

use arrow::array::{RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::row::{RowConverter, SortField};

use crate::error::Result;

/// Splits batches by a hash of key columns. The hash is deterministic
/// (fixed seeds), so the same key always goes to the same subtask, across
/// runs and restarts.
pub struct HashPartitioner {
    keys: Vec<usize>,
    partitions: usize,
    converter: Option<RowConverter>,
    hasher: ahash::RandomState,
}

impl std::fmt::Debug for HashPartitioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashPartitioner")
            .field("keys", &self.keys)
            .field("partitions", &self.partitions)
            .finish()
    }
}

impl HashPartitioner {
    /// Partitions by columns `keys` into `partitions` parts.
    pub fn new(keys: Vec<usize>, partitions: usize) -> Self {
        Self {
            keys,
            partitions: partitions.max(1),
            converter: None,
            hasher: ahash::RandomState::with_seeds(
                0x5745_4952_0000_0001,
                0x5745_4952_0000_0002,
                0x5745_4952_0000_0003,
                0x5745_4952_0000_0004,
            ),
        }
    }

    /// The partition of each row.
    pub fn assign(&mut self, batch: &RecordBatch) -> Result<Vec<u32>> {
        let n = self.partitions as u64;
        if n == 1 || self.keys.is_empty() {
            return Ok(vec![0; batch.num_rows()]);
        }
        let columns: Vec<_> = self.keys.iter().map(|&i| batch.column(i).clone()).collect();
        if self.converter.is_none() {
            let fields = columns
                .iter()
                .map(|c| SortField::new(c.data_type().clone()))
                .collect();
            self.converter = Some(RowConverter::new(fields)?);
        }
        let converter = self
            .converter
            .as_mut()
            .ok_or_else(|| crate::WeirError::Internal("row converter missing".into()))?;
        let rows = converter.convert_columns(&columns)?;
        Ok(rows
            .iter()
            .map(|row| {
                let mut h = self.hasher.build_hasher();
                h.write(row.as_ref());
                (h.finish() % n) as u32
            })
            .collect())
    }

    /// Splits `batch` into at most `partitions` non-empty parts.
    pub fn partition(&mut self, batch: &RecordBatch) -> Result<Vec<(usize, RecordBatch)>> {
        if self.partitions == 1 || self.keys.is_empty() {
            return Ok(vec![(0, batch.clone())]);
        }
        let assignment = self.assign(batch)?;
        let mut indices: Vec<Vec<u32>> = vec![Vec::new(); self.partitions];
        for (row, p) in assignment.into_iter().enumerate() {
            indices[p as usize].push(row as u32);
        }
        let mut out = Vec::new();
        for (p, idx) in indices.into_iter().enumerate() {
            if idx.is_empty() {
                continue;
            }
            if idx.len() == batch.num_rows() {
                out.push((p, batch.clone()));
            } else {
                out.push((p, take_record_batch(batch, &UInt32Array::from(idx))?));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn same_key_same_partition_and_no_row_lost() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("v", DataType::Int64, false),
        ]));
        let keys: Vec<String> = (0..1000).map(|i| format!("key{}", i % 37)).collect();
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(keys.clone())),
                Arc::new(Int64Array::from_iter_values(0..1000)),
            ],
        )
        .expect("batch");
        let mut p = HashPartitioner::new(vec![0], 4);
        let parts = p.partition(&batch).expect("partition");
        let total: usize = parts.iter().map(|(_, b)| b.num_rows()).sum();
        assert_eq!(total, 1000);
        assert!(
            parts.len() > 1,
            "37 keys over 4 partitions use more than one"
        );
        let mut seen = std::collections::HashMap::new();
        for (part, b) in &parts {
            let ks = b
                .column(0)
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("strings");
            for k in ks.iter().flatten() {
                let prev = seen.insert(k.to_string(), *part);
                assert!(prev.is_none() || prev == Some(*part), "key {k} split");
            }
        }
        // Deterministic across instances.
        let again = HashPartitioner::new(vec![0], 4)
            .assign(&batch)
            .expect("assign");
        assert_eq!(again, p.assign(&batch).expect("assign"));
    }
}
