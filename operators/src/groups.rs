//! Keyed aggregation state shared by the window aggregation operators.
//!
//! - [`KeyCodec`] turns grouping-key columns into byte keys with arrow's
//!   [`RowConverter`] and back.
//! - [`GroupTable`] maps byte keys to dense group indices (first seen = 0).
//! - [`Aggregates`] evaluates the aggregate arguments and filters of a batch
//!   and creates DataFusion accumulators.
//! - [`WindowGroups`] is the state of one window or session: a group table
//!   plus one accumulator per aggregate (a [`GroupsAccumulator`] where
//!   DataFusion has one, per-group [`Accumulator`]s otherwise).

use std::sync::Arc;

use arrow::array::{
    new_empty_array, Array, ArrayRef, BooleanArray, RecordBatch, TimestampMillisecondArray,
    UInt32Array,
};
use arrow::compute::{concat, take};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::row::{RowConverter, Rows, SortField};
use datafusion_common::ScalarValue;
use datafusion_expr::{Accumulator, EmitTo, GroupsAccumulator};
use datafusion_physical_expr::aggregate::AggregateFunctionExpr;
use datafusion_physical_expr::PhysicalExpr;
use weir_engine::{Result, WeirError};

use weir_engine::operator::Collector;

use crate::util::{build_batch, cast_to_field, df_err, evaluate, evaluate_predicate};
use crate::window::{FilteredAggregate, OutputColumn, TimeWindow, WindowAggregateConfig};

/// Fixed seeds: hashes only need to be stable within a process.
fn hasher() -> ahash::RandomState {
    ahash::RandomState::with_seeds(
        0x9e37_79b9_7f4a_7c15,
        0xbf58_476d_1ce4_e5b9,
        0x94d0_49bb_1331_11eb,
        0x2545_f491_4f6c_dd1d,
    )
}

/// The byte keys of one batch's rows.
pub(crate) enum BatchKeys {
    /// No key columns: every row has the empty key.
    Empty,
    /// One row-format key per row.
    Rows(Rows),
}

impl BatchKeys {
    /// The key of row `i`.
    pub(crate) fn key(&self, i: usize) -> &[u8] {
        match self {
            BatchKeys::Empty => &[],
            BatchKeys::Rows(rows) => rows.row(i).data(),
        }
    }
}

/// Encodes key columns as comparable byte strings and decodes them back.
/// The key types are learned from the first batch (or from restored state).
pub(crate) struct KeyCodec {
    num_keys: usize,
    types: Vec<DataType>,
    converter: Option<RowConverter>,
    hasher: ahash::RandomState,
}

impl KeyCodec {
    /// A codec for `num_keys` key columns.
    pub(crate) fn new(num_keys: usize) -> Self {
        Self {
            num_keys,
            types: Vec::new(),
            converter: None,
            hasher: hasher(),
        }
    }

    /// The key types (empty until known).
    pub(crate) fn types(&self) -> &[DataType] {
        &self.types
    }

    /// Fixes the key types (first batch or restore).
    pub(crate) fn init(&mut self, types: Vec<DataType>) -> Result<()> {
        if types.len() != self.num_keys {
            return Err(WeirError::Internal(format!(
                "{} key types for {} keys",
                types.len(),
                self.num_keys
            )));
        }
        if self.num_keys > 0 {
            let fields = types.iter().map(|t| SortField::new(t.clone())).collect();
            self.converter = Some(RowConverter::new(fields)?);
        }
        self.types = types;
        Ok(())
    }

    /// Encodes `columns` (one per key).
    pub(crate) fn encode(&mut self, columns: &[ArrayRef]) -> Result<BatchKeys> {
        if self.num_keys == 0 {
            return Ok(BatchKeys::Empty);
        }
        if self.converter.is_none() {
            self.init(columns.iter().map(|c| c.data_type().clone()).collect())?;
        }
        let columns = columns
            .iter()
            .zip(&self.types)
            .enumerate()
            .map(|(i, (c, t))| {
                if c.data_type() == t {
                    Ok(c.clone())
                } else {
                    cast_to_field(c.clone(), &Field::new(format!("key {i}"), t.clone(), true))
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let converter = self
            .converter
            .as_ref()
            .ok_or_else(|| WeirError::Internal("key converter missing".into()))?;
        Ok(BatchKeys::Rows(converter.convert_columns(&columns)?))
    }

    /// Hashes the first `n` keys of `keys` into `out` (cleared first).
    pub(crate) fn hash_all(&self, keys: &BatchKeys, n: usize, out: &mut Vec<u64>) {
        out.clear();
        match keys {
            BatchKeys::Empty => out.resize(n, self.hash(&[])),
            BatchKeys::Rows(rows) => out.extend(rows.iter().take(n).map(|r| self.hash(r.data()))),
        }
    }

    /// Hash of one key.
    pub(crate) fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Decodes byte keys into key columns.
    pub(crate) fn decode<'a>(&self, keys: impl Iterator<Item = &'a [u8]>) -> Result<Vec<ArrayRef>> {
        let Some(converter) = &self.converter else {
            return Ok(Vec::new());
        };
        let parser = converter.parser();
        Ok(converter.convert_rows(keys.map(|k| parser.parse(k)))?)
    }
}

/// An open-addressing hash table from byte keys to dense group indices.
/// Keys are stored contiguously; groups are numbered in insertion order.
#[derive(Debug, Default)]
pub(crate) struct GroupTable {
    data: Vec<u8>,
    offsets: Vec<usize>,
    hashes: Vec<u64>,
    /// `0` = empty, else group index + 1. Length is a power of two (or 0).
    slots: Vec<u32>,
}

impl GroupTable {
    /// Number of groups.
    pub(crate) fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Key of group `g`.
    pub(crate) fn key(&self, g: usize) -> &[u8] {
        let start = self.offsets.get(g).copied().unwrap_or(0);
        let end = self.offsets.get(g + 1).copied().unwrap_or(start);
        self.data.get(start..end).unwrap_or(&[])
    }

    /// Hash of group `g`'s key.
    pub(crate) fn hash(&self, g: usize) -> u64 {
        self.hashes.get(g).copied().unwrap_or(0)
    }

    /// Keys of all groups, in group order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.len()).map(|g| self.key(g))
    }

    /// The group of `key`, inserted if new.
    #[inline]
    pub(crate) fn find_or_insert(&mut self, key: &[u8], hash: u64) -> usize {
        if (self.len() + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = (hash as usize) & mask;
        loop {
            let slot = self.slots[i];
            if slot == 0 {
                let g = self.len();
                if self.offsets.is_empty() {
                    self.offsets.push(0);
                }
                self.data.extend_from_slice(key);
                self.offsets.push(self.data.len());
                self.hashes.push(hash);
                self.slots[i] = (g + 1) as u32;
                return g;
            }
            let g = (slot - 1) as usize;
            if self.hashes[g] == hash && self.key(g) == key {
                return g;
            }
            i = (i + 1) & mask;
        }
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(16);
        let mask = size - 1;
        let mut slots = vec![0u32; size];
        for (g, &h) in self.hashes.iter().enumerate() {
            let mut i = (h as usize) & mask;
            while slots[i] != 0 {
                i = (i + 1) & mask;
            }
            slots[i] = (g + 1) as u32;
        }
        self.slots = slots;
    }
}

/// The aggregate arguments and filters of a batch (or of some of its rows).
#[derive(Debug, Clone)]
pub(crate) struct AggInputs {
    /// Per aggregate, its argument columns.
    args: Vec<Vec<ArrayRef>>,
    /// Per aggregate, its `FILTER` mask (nulls already false).
    filters: Vec<Option<BooleanArray>>,
}

impl AggInputs {
    /// The rows at `indices`, in that order.
    pub(crate) fn take(&self, indices: &UInt32Array) -> Result<Self> {
        let args = self
            .args
            .iter()
            .map(|cols| {
                cols.iter()
                    .map(|c| take(c.as_ref(), indices, None))
                    .collect::<std::result::Result<Vec<_>, _>>()
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let filters = self
            .filters
            .iter()
            .map(|f| match f {
                Some(f) => {
                    let t = take(f, indices, None)?;
                    Ok(t.as_any().downcast_ref::<BooleanArray>().cloned())
                }
                None => Ok(None),
            })
            .collect::<std::result::Result<Vec<_>, arrow::error::ArrowError>>()?;
        Ok(Self { args, filters })
    }

    /// `len` rows from `offset` (zero-copy).
    pub(crate) fn slice(&self, offset: usize, len: usize) -> Self {
        Self {
            args: self
                .args
                .iter()
                .map(|cols| cols.iter().map(|c| c.slice(offset, len)).collect())
                .collect(),
            filters: self
                .filters
                .iter()
                .map(|f| f.as_ref().map(|f| f.slice(offset, len)))
                .collect(),
        }
    }
}

/// The aggregates of a window aggregation.
pub(crate) struct Aggregates {
    exprs: Vec<Arc<AggregateFunctionExpr>>,
    args: Vec<Vec<Arc<dyn PhysicalExpr>>>,
    filters: Vec<Option<Arc<dyn PhysicalExpr>>>,
    grouped: Vec<bool>,
    state_fields: Vec<Vec<Arc<Field>>>,
}

impl Aggregates {
    /// Prepares `list`; checks that accumulators can be created.
    pub(crate) fn try_new(list: &[FilteredAggregate]) -> Result<Self> {
        let mut this = Self {
            exprs: Vec::new(),
            args: Vec::new(),
            filters: Vec::new(),
            grouped: Vec::new(),
            state_fields: Vec::new(),
        };
        for (expr, filter) in list {
            let grouped = expr.groups_accumulator_supported();
            let ctx = format!("creating accumulator for {}", expr.name());
            if grouped {
                expr.create_groups_accumulator()
                    .map_err(df_err(|| ctx.clone()))?;
            } else {
                expr.create_accumulator().map_err(df_err(|| ctx.clone()))?;
            }
            this.state_fields.push(
                expr.state_fields()
                    .map_err(df_err(|| format!("state fields of {}", expr.name())))?,
            );
            this.args.push(expr.expressions());
            this.exprs.push(expr.clone());
            this.filters.push(filter.clone());
            this.grouped.push(grouped);
        }
        Ok(this)
    }

    /// Number of aggregates.
    pub(crate) fn len(&self) -> usize {
        self.exprs.len()
    }

    /// Whether aggregate `i` uses a [`GroupsAccumulator`].
    #[cfg(test)]
    pub(crate) fn is_grouped(&self, i: usize) -> bool {
        self.grouped.get(i).copied().unwrap_or(false)
    }

    /// Evaluates the arguments and filters of every aggregate on `batch`.
    pub(crate) fn evaluate(&self, batch: &RecordBatch) -> Result<AggInputs> {
        let mut args = Vec::with_capacity(self.len());
        let mut filters = Vec::with_capacity(self.len());
        for ((expr, arg_exprs), filter) in self.exprs.iter().zip(&self.args).zip(&self.filters) {
            let what = format!("argument of {}", expr.name());
            args.push(
                arg_exprs
                    .iter()
                    .map(|a| evaluate(a, batch, &what))
                    .collect::<Result<Vec<_>>>()?,
            );
            filters.push(match filter {
                Some(f) => Some(evaluate_predicate(
                    f,
                    batch,
                    &format!("FILTER of {}", expr.name()),
                )?),
                None => None,
            });
        }
        Ok(AggInputs { args, filters })
    }

    fn new_accumulators(&self) -> Result<Vec<Acc>> {
        self.exprs
            .iter()
            .zip(&self.grouped)
            .map(|(e, grouped)| {
                Ok(if *grouped {
                    Acc::Grouped(
                        e.create_groups_accumulator()
                            .map_err(df_err(|| format!("creating accumulator for {}", e.name())))?,
                    )
                } else {
                    Acc::PerGroup(Vec::new())
                })
            })
            .collect()
    }

    fn new_accumulator(&self, i: usize) -> Result<Box<dyn Accumulator>> {
        let e = self
            .exprs
            .get(i)
            .ok_or_else(|| WeirError::Internal(format!("no aggregate {i}")))?;
        e.create_accumulator()
            .map_err(df_err(|| format!("creating accumulator for {}", e.name())))
    }

    /// The names of the state columns of aggregate `i` in a snapshot.
    fn state_names(&self, i: usize) -> impl Iterator<Item = String> + '_ {
        let n = self.state_fields.get(i).map_or(0, Vec::len);
        (0..n).map(move |j| format!("agg{i}_{j}"))
    }
}

/// One aggregate's accumulator(s) for the groups of one window.
enum Acc {
    /// DataFusion's vectorised accumulator for all groups.
    Grouped(Box<dyn GroupsAccumulator>),
    /// One accumulator per group (for aggregates without a groups accumulator).
    PerGroup(Vec<Box<dyn Accumulator>>),
}

/// The groups of one window or session and their accumulators.
pub(crate) struct WindowGroups {
    table: GroupTable,
    accs: Vec<Acc>,
}

impl WindowGroups {
    /// An empty window.
    pub(crate) fn try_new(aggs: &Aggregates) -> Result<Self> {
        Ok(Self {
            table: GroupTable::default(),
            accs: aggs.new_accumulators()?,
        })
    }

    /// Number of groups.
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// Keys of the groups in group order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.table.keys()
    }

    /// Adds rows: `rows` are the batch row numbers (for `keys`/`hashes`) of
    /// the rows in `inputs`, in the same order.
    pub(crate) fn update(
        &mut self,
        aggs: &Aggregates,
        keys: &BatchKeys,
        hashes: &[u64],
        rows: impl Iterator<Item = usize>,
        inputs: &AggInputs,
        group_indices: &mut Vec<usize>,
    ) -> Result<()> {
        group_indices.clear();
        for r in rows {
            let g = self.table.find_or_insert(keys.key(r), hashes[r]);
            group_indices.push(g);
        }
        let total = self.table.len();
        for (i, acc) in self.accs.iter_mut().enumerate() {
            let values = inputs.args.get(i).map(Vec::as_slice).unwrap_or(&[]);
            let filter = inputs.filters.get(i).and_then(Option::as_ref);
            match acc {
                Acc::Grouped(a) => a
                    .update_batch(values, group_indices, filter, total)
                    .map_err(df_err(|| format!("updating {}", aggs.exprs[i].name())))?,
                Acc::PerGroup(list) => {
                    ensure_accumulators(aggs, i, list, total)?;
                    update_per_group(aggs, i, list, values, group_indices, filter)?;
                }
            }
        }
        Ok(())
    }

    /// Takes the intermediate state of every aggregate (resetting it).
    fn take_state(&mut self, aggs: &Aggregates) -> Result<Vec<Vec<ArrayRef>>> {
        let n = self.len();
        let mut out = Vec::with_capacity(self.accs.len());
        for (i, acc) in self.accs.iter_mut().enumerate() {
            let name = aggs.exprs[i].name();
            match acc {
                Acc::Grouped(a) => {
                    let state = a
                        .state(EmitTo::All)
                        .map_err(df_err(|| format!("state of {name}")))?;
                    *a = aggs.exprs[i]
                        .create_groups_accumulator()
                        .map_err(df_err(|| format!("creating accumulator for {name}")))?;
                    out.push(state);
                }
                Acc::PerGroup(list) => {
                    ensure_accumulators(aggs, i, list, n)?;
                    let fields = &aggs.state_fields[i];
                    let mut columns: Vec<Vec<ScalarValue>> =
                        (0..fields.len()).map(|_| Vec::with_capacity(n)).collect();
                    for a in list.iter_mut() {
                        let values = a.state().map_err(df_err(|| format!("state of {name}")))?;
                        for (col, v) in columns.iter_mut().zip(values) {
                            col.push(v);
                        }
                    }
                    let arrays = columns
                        .into_iter()
                        .zip(fields)
                        .map(|(col, f)| scalars_to_array(col, f.data_type()))
                        .collect::<Result<Vec<_>>>()?;
                    list.clear();
                    out.push(arrays);
                }
            }
        }
        Ok(out)
    }

    /// Merges intermediate states: row `j` of `states` goes to group
    /// `group_indices[j]`.
    fn merge_states(
        &mut self,
        aggs: &Aggregates,
        states: &[Vec<ArrayRef>],
        group_indices: &[usize],
    ) -> Result<()> {
        let total = self.len();
        for (i, (acc, state)) in self.accs.iter_mut().zip(states).enumerate() {
            let name = aggs.exprs[i].name();
            match acc {
                Acc::Grouped(a) => a
                    .merge_batch(state, group_indices, total)
                    .map_err(df_err(|| format!("merging state of {name}")))?,
                Acc::PerGroup(list) => {
                    ensure_accumulators(aggs, i, list, total)?;
                    for (j, &g) in group_indices.iter().enumerate() {
                        let row: Vec<ArrayRef> = state.iter().map(|a| a.slice(j, 1)).collect();
                        if let Some(a) = list.get_mut(g) {
                            a.merge_batch(&row)
                                .map_err(df_err(|| format!("merging state of {name}")))?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Merges `other` (a window of the same aggregation) into this one.
    pub(crate) fn merge_from(&mut self, aggs: &Aggregates, mut other: WindowGroups) -> Result<()> {
        if other.len() == 0 {
            return Ok(());
        }
        let states = other.take_state(aggs)?;
        let mut mapping = Vec::with_capacity(other.len());
        for g in 0..other.len() {
            mapping.push(
                self.table
                    .find_or_insert(other.table.key(g), other.table.hash(g)),
            );
        }
        self.merge_states(aggs, &states, &mapping)
    }

    /// The final value of every aggregate, one row per group (consumes the state).
    pub(crate) fn evaluate(&mut self, aggs: &Aggregates) -> Result<Vec<ArrayRef>> {
        let n = self.len();
        let mut out = Vec::with_capacity(self.accs.len());
        for (i, acc) in self.accs.iter_mut().enumerate() {
            let expr = &aggs.exprs[i];
            match acc {
                Acc::Grouped(a) => out.push(
                    a.evaluate(EmitTo::All)
                        .map_err(df_err(|| format!("evaluating {}", expr.name())))?,
                ),
                Acc::PerGroup(list) => {
                    ensure_accumulators(aggs, i, list, n)?;
                    let values = list
                        .iter_mut()
                        .map(|a| a.evaluate())
                        .collect::<datafusion_common::Result<Vec<_>>>()
                        .map_err(df_err(|| format!("evaluating {}", expr.name())))?;
                    out.push(scalars_to_array(values, expr.field().data_type())?);
                }
            }
        }
        Ok(out)
    }

    /// The intermediate states of every aggregate, leaving this window
    /// unchanged.
    fn state_kept(&mut self, aggs: &Aggregates) -> Result<Vec<Vec<ArrayRef>>> {
        let states = self.take_state(aggs)?;
        let identity: Vec<usize> = (0..self.len()).collect();
        self.merge_states(aggs, &states, &identity)?;
        Ok(states)
    }

    /// One window made of `slices` (Flink's slice-shared window
    /// aggregation): every group of every slice, merged, with the groups
    /// in order of `first_seen` (per slice and group, the arrival number of
    /// its first row), so that keys come in order of first appearance in
    /// the window as if its rows had been added to it directly. A slice
    /// marked `true` is used for the last time: its state is taken instead
    /// of copied (it is left empty).
    pub(crate) fn merge_slices(
        aggs: &Aggregates,
        slices: &mut [(&mut WindowGroups, &[u64], bool)],
    ) -> Result<Self> {
        let mut order: Vec<(u64, u32, u32)> = Vec::new();
        for (i, (groups, first_seen, _)) in slices.iter().enumerate() {
            if first_seen.len() != groups.len() {
                return Err(WeirError::Internal(format!(
                    "slice with {} groups and {} arrival numbers",
                    groups.len(),
                    first_seen.len()
                )));
            }
            order.extend(
                first_seen
                    .iter()
                    .enumerate()
                    .map(|(g, &seq)| (seq, i as u32, g as u32)),
            );
        }
        order.sort_unstable();
        let mut merged = Self::try_new(aggs)?;
        let mut mapping: Vec<Vec<usize>> =
            slices.iter().map(|(g, _, _)| vec![0; g.len()]).collect();
        for &(_, i, g) in &order {
            let (i, g) = (i as usize, g as usize);
            let table = &slices[i].0.table;
            mapping[i][g] = merged.table.find_or_insert(table.key(g), table.hash(g));
        }
        // One merge of all slices' states: DataFusion's accumulators expect
        // every group up to the total to occur in the batch merged.
        let mut parts: Vec<Vec<ArrayRef>> = Vec::with_capacity(slices.len());
        let mut indices: Vec<usize> = Vec::with_capacity(order.len());
        for ((groups, _, last), mapping) in slices.iter_mut().zip(&mapping) {
            if groups.len() == 0 {
                continue;
            }
            let states = if *last {
                groups.take_state(aggs)?
            } else {
                groups.state_kept(aggs)?
            };
            parts.push(states.into_iter().flatten().collect());
            indices.extend_from_slice(mapping);
        }
        if parts.is_empty() {
            return Ok(merged);
        }
        let mut columns = Vec::new();
        for c in 0..parts[0].len() {
            let refs: Vec<&dyn Array> = parts
                .iter()
                .filter_map(|p| p.get(c))
                .map(|a| a.as_ref())
                .collect();
            columns.push(if refs.len() == 1 {
                parts[0][c].clone()
            } else {
                concat(&refs)?
            });
        }
        let mut columns = columns.into_iter();
        let states: Vec<Vec<ArrayRef>> = (0..aggs.len())
            .map(|i| columns.by_ref().take(aggs.state_fields[i].len()).collect())
            .collect();
        merged.merge_states(aggs, &states, &indices)?;
        Ok(merged)
    }

    /// The keys (decoded) and intermediate states of this window, leaving it
    /// unchanged.
    pub(crate) fn snapshot(
        &mut self,
        aggs: &Aggregates,
        codec: &KeyCodec,
    ) -> Result<(Vec<ArrayRef>, Vec<Vec<ArrayRef>>)> {
        let keys = codec.decode(self.table.keys())?;
        let states = self.take_state(aggs)?;
        let identity: Vec<usize> = (0..self.len()).collect();
        self.merge_states(aggs, &states, &identity)?;
        Ok((keys, states))
    }

    /// Rebuilds a window from snapshotted keys and states (`n` groups).
    pub(crate) fn restore(
        aggs: &Aggregates,
        codec: &mut KeyCodec,
        keys: &[ArrayRef],
        states: &[Vec<ArrayRef>],
        n: usize,
    ) -> Result<Self> {
        let mut this = Self::try_new(aggs)?;
        let encoded = codec.encode(keys)?;
        for r in 0..n {
            let key = encoded.key(r);
            this.table.find_or_insert(key, codec.hash(key));
        }
        if this.len() != n {
            return Err(WeirError::State(format!(
                "restored window has {} distinct keys, expected {n}",
                this.len()
            )));
        }
        let identity: Vec<usize> = (0..n).collect();
        this.merge_states(aggs, states, &identity)?;
        Ok(this)
    }
}

fn ensure_accumulators(
    aggs: &Aggregates,
    i: usize,
    list: &mut Vec<Box<dyn Accumulator>>,
    n: usize,
) -> Result<()> {
    while list.len() < n {
        list.push(aggs.new_accumulator(i)?);
    }
    Ok(())
}

/// Updates per-group accumulators: rows are sorted by group and each group's
/// run is passed in one `update_batch`.
fn update_per_group(
    aggs: &Aggregates,
    i: usize,
    list: &mut [Box<dyn Accumulator>],
    values: &[ArrayRef],
    group_indices: &[usize],
    filter: Option<&BooleanArray>,
) -> Result<()> {
    let mut pairs: Vec<(usize, u32)> = group_indices
        .iter()
        .enumerate()
        .filter(|(row, _)| filter.is_none_or(|f| f.value(*row)))
        .map(|(row, &g)| (g, row as u32))
        .collect();
    pairs.sort_by_key(|p| p.0);
    let indices = UInt32Array::from_iter_values(pairs.iter().map(|p| p.1));
    let taken = values
        .iter()
        .map(|v| take(v.as_ref(), &indices, None))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let name = aggs.exprs[i].name();
    let mut start = 0;
    while start < pairs.len() {
        let g = pairs[start].0;
        let mut end = start + 1;
        while end < pairs.len() && pairs[end].0 == g {
            end += 1;
        }
        let run: Vec<ArrayRef> = taken.iter().map(|a| a.slice(start, end - start)).collect();
        if let Some(acc) = list.get_mut(g) {
            acc.update_batch(&run)
                .map_err(df_err(|| format!("updating {name}")))?;
        }
        start = end;
    }
    Ok(())
}

fn scalars_to_array(values: Vec<ScalarValue>, data_type: &DataType) -> Result<ArrayRef> {
    if values.is_empty() {
        return Ok(new_empty_array(data_type));
    }
    ScalarValue::iter_to_array(values).map_err(df_err(|| {
        "building an array of aggregate values".to_string()
    }))
}

/// Writes the groups of `windows` (in order) as one table: a `window`
/// column (index into `windows`), the key columns `key0..`, and the state
/// columns `agg{i}_{j}`. `None` when there are no windows.
pub(crate) fn groups_table<'a>(
    aggs: &Aggregates,
    codec: &KeyCodec,
    windows: impl Iterator<Item = &'a mut WindowGroups>,
) -> Result<Option<RecordBatch>> {
    let mut window_ids: Vec<u32> = Vec::new();
    let mut key_parts: Vec<Vec<ArrayRef>> = Vec::new();
    let mut state_parts: Vec<Vec<Vec<ArrayRef>>> = Vec::new();
    for (w, groups) in windows.enumerate() {
        window_ids.extend(std::iter::repeat_n(w as u32, groups.len()));
        let (keys, states) = groups.snapshot(aggs, codec)?;
        key_parts.push(keys);
        state_parts.push(states);
    }
    if key_parts.is_empty() {
        return Ok(None);
    }
    let mut fields = vec![Field::new("window", DataType::UInt32, false)];
    let mut columns: Vec<ArrayRef> = vec![Arc::new(UInt32Array::from(window_ids))];
    let concat_col = |parts: Vec<&ArrayRef>| -> Result<ArrayRef> {
        let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
        Ok(concat(&refs)?)
    };
    for k in 0..codec.types().len() {
        let parts: Vec<&ArrayRef> = key_parts.iter().filter_map(|p| p.get(k)).collect();
        let col = concat_col(parts)?;
        fields.push(Field::new(format!("key{k}"), col.data_type().clone(), true));
        columns.push(col);
    }
    for i in 0..aggs.len() {
        for (j, name) in aggs.state_names(i).enumerate() {
            let parts: Vec<&ArrayRef> = state_parts
                .iter()
                .filter_map(|p| p.get(i).and_then(|s| s.get(j)))
                .collect();
            let col = concat_col(parts)?;
            fields.push(Field::new(name, col.data_type().clone(), true));
            columns.push(col);
        }
    }
    Ok(Some(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?))
}

/// Rebuilds windows from a table written by [`groups_table`]; `counts[w]`
/// is the number of groups of window `w`.
pub(crate) fn restore_groups(
    aggs: &Aggregates,
    codec: &mut KeyCodec,
    table: Option<&RecordBatch>,
    counts: &[usize],
) -> Result<Vec<WindowGroups>> {
    let total: usize = counts.iter().sum();
    let Some(table) = table else {
        if total == 0 {
            return counts.iter().map(|_| WindowGroups::try_new(aggs)).collect();
        }
        return Err(WeirError::State("state table 'groups' is missing".into()));
    };
    if table.num_rows() != total {
        return Err(WeirError::State(format!(
            "state table 'groups' has {} rows, the windows list {total}",
            table.num_rows()
        )));
    }
    let column = |name: &str| -> Result<ArrayRef> {
        table
            .column_by_name(name)
            .cloned()
            .ok_or_else(|| WeirError::State(format!("state column '{name}' is missing")))
    };
    let mut keys = Vec::new();
    let mut types = Vec::new();
    for k in 0..codec.num_keys {
        let c = column(&format!("key{k}"))?;
        types.push(c.data_type().clone());
        keys.push(c);
    }
    if codec.types().is_empty() {
        codec.init(types)?;
    }
    let mut states = Vec::new();
    for i in 0..aggs.len() {
        states.push(
            aggs.state_names(i)
                .map(|n| column(&n))
                .collect::<Result<Vec<_>>>()?,
        );
    }
    let mut out = Vec::with_capacity(counts.len());
    let mut offset = 0;
    for &n in counts {
        let k: Vec<ArrayRef> = keys.iter().map(|c| c.slice(offset, n)).collect();
        let s: Vec<Vec<ArrayRef>> = states
            .iter()
            .map(|cols| cols.iter().map(|c| c.slice(offset, n)).collect())
            .collect();
        out.push(WindowGroups::restore(aggs, codec, &k, &s, n)?);
        offset += n;
    }
    Ok(out)
}

/// Emits the final rows of `fired` windows (in order) as one batch of the
/// configured output: keys decoded in one pass, aggregate values
/// concatenated per column.
pub(crate) fn emit_fired(
    config: &WindowAggregateConfig,
    aggs: &Aggregates,
    codec: &KeyCodec,
    fired: &mut [(TimeWindow, WindowGroups)],
    out: &mut Collector,
) -> Result<()> {
    if fired.is_empty() {
        return Ok(());
    }
    let total: usize = fired.iter().map(|(_, g)| g.len()).sum();
    let needs = |f: fn(&OutputColumn) -> bool| config.output.iter().any(f);
    let keys = if needs(|o| matches!(o, OutputColumn::Key(_))) {
        codec.decode(fired.iter().flat_map(|(_, g)| g.keys()))?
    } else {
        Vec::new()
    };
    let mut values: Vec<Vec<ArrayRef>> = (0..aggs.len())
        .map(|_| Vec::with_capacity(fired.len()))
        .collect();
    for (_, groups) in fired.iter_mut() {
        for (i, v) in groups.evaluate(aggs)?.into_iter().enumerate() {
            if let Some(parts) = values.get_mut(i) {
                parts.push(v);
            }
        }
    }
    let values = values
        .into_iter()
        .map(|parts| {
            if parts.len() == 1 {
                return Ok(parts.into_iter().next());
            }
            let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
            Ok(Some(concat(&refs)?))
        })
        .collect::<Result<Vec<_>>>()?;
    let times = |f: fn(&TimeWindow) -> i64| -> ArrayRef {
        let mut v = Vec::with_capacity(total);
        for (w, g) in fired.iter() {
            v.extend(std::iter::repeat_n(f(w), g.len()));
        }
        Arc::new(TimestampMillisecondArray::from(v))
    };
    let columns = config
        .output
        .iter()
        .map(|o| {
            Ok(match *o {
                OutputColumn::WindowStart => times(|w| w.start),
                OutputColumn::WindowEnd => times(|w| w.end),
                OutputColumn::WindowTime => times(|w| w.max_timestamp()),
                OutputColumn::Key(i) => keys
                    .get(i)
                    .cloned()
                    .ok_or_else(|| WeirError::Internal(format!("no key column {i}")))?,
                OutputColumn::Aggregate(i) => values
                    .get(i)
                    .cloned()
                    .flatten()
                    .ok_or_else(|| WeirError::Internal(format!("no aggregate column {i}")))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    out.collect(build_batch(&config.output_schema, columns, total)?);
    Ok(())
}
