//! [`KeyMap`]: per-key state of the ordering operators (not an operator).
//!
//! Keys are the values of some input columns (`PARTITION BY`, the sequence
//! key), encoded by [`KeyCodec`] in arrow's row format. Each key present gets
//! a dense id (reused after the key is removed) and a value `V`. With no key
//! columns every row has the same, empty key.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{Field, SchemaRef};
use weir_engine::{Result, WeirError};

use crate::groups::{BatchKeys, KeyCodec};

/// Per-key values, by encoded key, with dense reusable ids.
pub(crate) struct KeyMap<V> {
    /// Input column index of each key column.
    columns: Vec<usize>,
    codec: KeyCodec,
    /// Key bytes (shared with `entries`: one allocation per key) to id.
    ids: HashMap<Arc<[u8]>, u32, ahash::RandomState>,
    entries: Vec<Option<(Arc<[u8]>, V)>>,
    free: Vec<u32>,
}

impl<V> KeyMap<V> {
    /// A map keyed by the input columns `columns` of `schema` (checked).
    pub(crate) fn try_new(schema: &SchemaRef, columns: Vec<usize>, what: &str) -> Result<Self> {
        let mut types = Vec::with_capacity(columns.len());
        for &c in &columns {
            let field = schema.fields().get(c).ok_or_else(|| {
                WeirError::Plan(format!(
                    "{what}: key column {c} is out of range: the input has {} columns",
                    schema.fields().len()
                ))
            })?;
            types.push(field.data_type().clone());
        }
        let mut codec = KeyCodec::new(columns.len());
        codec.init(types)?;
        Ok(Self {
            columns,
            codec,
            ids: HashMap::with_hasher(ahash::RandomState::with_seeds(1, 2, 3, 4)),
            entries: Vec::new(),
            free: Vec::new(),
        })
    }

    /// Number of keys present.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// The encoded keys of every row of `batch`.
    pub(crate) fn encode(&mut self, batch: &RecordBatch) -> Result<BatchKeys> {
        let columns: Vec<ArrayRef> = self
            .columns
            .iter()
            .map(|&c| {
                batch.columns().get(c).cloned().ok_or_else(|| {
                    WeirError::Execution(format!(
                        "key column {c} is out of range: the input has {} columns",
                        batch.num_columns()
                    ))
                })
            })
            .collect::<Result<_>>()?;
        self.codec.encode(&columns)
    }

    /// The id of `key`, if present.
    #[inline]
    pub(crate) fn get_id(&self, key: &[u8]) -> Option<u32> {
        self.ids.get(key).copied()
    }

    /// The id of `key`, inserting `make()` if absent. Returns (id, inserted).
    #[inline]
    pub(crate) fn get_or_insert(&mut self, key: &[u8], make: impl FnOnce() -> V) -> (u32, bool) {
        if let Some(&id) = self.ids.get(key) {
            return (id, false);
        }
        let shared: Arc<[u8]> = key.into();
        let entry = Some((shared.clone(), make()));
        let id = match self.free.pop() {
            Some(id) => {
                self.entries[id as usize] = entry;
                id
            }
            None => {
                self.entries.push(entry);
                (self.entries.len() - 1) as u32
            }
        };
        self.ids.insert(shared, id);
        (id, true)
    }

    /// The value of key `id`.
    #[inline]
    pub(crate) fn get(&self, id: u32) -> Option<&V> {
        self.entries
            .get(id as usize)
            .and_then(|e| e.as_ref())
            .map(|(_, v)| v)
    }

    /// The value of key `id`, mutably.
    #[inline]
    pub(crate) fn get_mut(&mut self, id: u32) -> Option<&mut V> {
        self.entries
            .get_mut(id as usize)
            .and_then(|e| e.as_mut())
            .map(|(_, v)| v)
    }

    /// The value of key `id`, or an internal error.
    #[inline]
    pub(crate) fn value_mut(&mut self, id: u32) -> Result<&mut V> {
        self.get_mut(id)
            .ok_or_else(|| WeirError::Internal(format!("no state for key id {id}")))
    }

    /// Removes key `id` and returns its value.
    pub(crate) fn remove(&mut self, id: u32) -> Option<V> {
        let (key, value) = self.entries.get_mut(id as usize)?.take()?;
        self.ids.remove(&key);
        self.free.push(id);
        Some(value)
    }

    /// Present keys as (id, value), in id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &V)> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().map(|(_, v)| (i as u32, v)))
    }

    /// Decodes the keys of `ids` into key columns (one array per key column).
    pub(crate) fn decode(&self, ids: &[u32]) -> Result<Vec<ArrayRef>> {
        let keys = ids
            .iter()
            .map(|&id| {
                self.entries
                    .get(id as usize)
                    .and_then(|e| e.as_ref())
                    .map(|(k, _)| k.as_ref())
                    .ok_or_else(|| WeirError::Internal(format!("no key for id {id}")))
            })
            .collect::<Result<Vec<_>>>()?;
        self.codec.decode(keys.into_iter())
    }

    /// Fields `key0..` for the key columns in a state table.
    pub(crate) fn state_fields(&self) -> Vec<Field> {
        self.codec
            .types()
            .iter()
            .enumerate()
            .map(|(i, t)| Field::new(format!("key{i}"), t.clone(), true))
            .collect()
    }

    /// Encodes the key columns `key0..` of a state table.
    pub(crate) fn encode_state(&mut self, table: &RecordBatch) -> Result<BatchKeys> {
        let columns = (0..self.columns.len())
            .map(|i| {
                table
                    .column_by_name(&format!("key{i}"))
                    .cloned()
                    .ok_or_else(|| WeirError::State(format!("state column 'key{i}' is missing")))
            })
            .collect::<Result<Vec<_>>>()?;
        self.codec.encode(&columns)
    }
}
