//! Operator state: named Arrow tables that snapshot to and restore from
//! Arrow IPC bytes.
//!
//! Every stateful operator writes its state as one or more named
//! [`RecordBatch`]es. The encoding is a sequence of Arrow IPC streams, each
//! prefixed by its length, so a snapshot is self-describing and can be
//! written to any byte store by the checkpoint layer.

use std::io::Cursor;
use std::sync::Arc;

use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;

use crate::error::{Result, WeirError};

const NAME_KEY: &str = "weir.state.name";
const MAGIC: &[u8; 8] = b"WEIRST01";

/// The snapshot of one operator subtask: a list of named tables.
#[derive(Debug, Clone, Default)]
pub struct OperatorState {
    tables: Vec<(String, RecordBatch)>,
}

impl OperatorState {
    /// An empty state (what stateless operators snapshot).
    pub fn empty() -> Self {
        Self::default()
    }

    /// True if no table was written.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// Adds a named table. Names must be unique within a snapshot.
    pub fn put(&mut self, name: impl Into<String>, table: RecordBatch) -> Result<()> {
        let name = name.into();
        if self.tables.iter().any(|(n, _)| *n == name) {
            return Err(WeirError::State(format!(
                "state table '{name}' written twice"
            )));
        }
        self.tables.push((name, table));
        Ok(())
    }

    /// Returns the named table, if present.
    pub fn get(&self, name: &str) -> Option<&RecordBatch> {
        self.tables.iter().find(|(n, _)| n == name).map(|(_, b)| b)
    }

    /// Returns the named table or a state error naming it.
    pub fn require(&self, name: &str) -> Result<&RecordBatch> {
        self.get(name)
            .ok_or_else(|| WeirError::State(format!("state table '{name}' is missing")))
    }

    /// Names of the tables, in the order they were written.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tables.iter().map(|(n, _)| n.as_str())
    }

    /// Encodes the state as bytes (Arrow IPC streams).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.tables.len() as u64).to_le_bytes());
        for (name, batch) in &self.tables {
            let mut metadata = batch.schema().metadata().clone();
            metadata.insert(NAME_KEY.to_string(), name.clone());
            let schema = Arc::new(batch.schema().as_ref().clone().with_metadata(metadata));
            let batch = batch.clone().with_schema(schema.clone())?;
            let mut buf = Vec::new();
            {
                let mut writer = StreamWriter::try_new(&mut buf, &schema)?;
                writer.write(&batch)?;
                writer.finish()?;
            }
            out.extend_from_slice(&(buf.len() as u64).to_le_bytes());
            out.extend_from_slice(&buf);
        }
        Ok(out)
    }

    /// Decodes state written by [`OperatorState::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let corrupt = |what: &str| WeirError::State(format!("corrupt state snapshot: {what}"));
        if bytes.len() < 16 || &bytes[..8] != MAGIC {
            return Err(corrupt("bad header"));
        }
        let mut pos = 8;
        let read_u64 = |pos: &mut usize| -> Result<u64> {
            let end = *pos + 8;
            let slice = bytes.get(*pos..end).ok_or_else(|| corrupt("truncated"))?;
            let mut arr = [0u8; 8];
            arr.copy_from_slice(slice);
            *pos = end;
            Ok(u64::from_le_bytes(arr))
        };
        let count = read_u64(&mut pos)?;
        let mut state = OperatorState::default();
        for _ in 0..count {
            let len = read_u64(&mut pos)? as usize;
            let end = pos
                .checked_add(len)
                .filter(|e| *e <= bytes.len())
                .ok_or_else(|| corrupt("truncated table"))?;
            let reader = StreamReader::try_new(Cursor::new(&bytes[pos..end]), None)?;
            let schema = reader.schema();
            let name = schema
                .metadata()
                .get(NAME_KEY)
                .cloned()
                .ok_or_else(|| corrupt("table without a name"))?;
            let mut batches = Vec::new();
            for b in reader {
                batches.push(b?);
            }
            let mut metadata = schema.metadata().clone();
            metadata.remove(NAME_KEY);
            let clean = Arc::new(schema.as_ref().clone().with_metadata(metadata));
            let batch = arrow::compute::concat_batches(&schema, &batches)?;
            let batch = RecordBatch::try_new(clean, batch.columns().to_vec())?;
            state.put(name, batch)?;
            pos = end;
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    #[test]
    fn round_trip_keeps_names_and_rows() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("v", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![Some("a"), None])),
                Arc::new(Int64Array::from(vec![1, 2])),
            ],
        )
        .expect("batch");
        let mut state = OperatorState::empty();
        state.put("windows", batch.clone()).expect("put");
        state.put("meta", batch.slice(1, 1)).expect("put");
        let bytes = state.to_bytes().expect("encode");
        let back = OperatorState::from_bytes(&bytes).expect("decode");
        assert_eq!(back.names().collect::<Vec<_>>(), vec!["windows", "meta"]);
        assert_eq!(back.require("windows").expect("windows"), &batch);
        assert_eq!(back.require("meta").expect("meta"), &batch.slice(1, 1));
    }

    #[test]
    fn corrupt_bytes_are_an_error_not_a_panic() {
        assert!(OperatorState::from_bytes(b"nonsense").is_err());
        let mut bytes = OperatorState::empty().to_bytes().expect("encode");
        bytes[8] = 5; // claims five tables, has none
        assert!(OperatorState::from_bytes(&bytes).is_err());
    }
}
