//! Test input for the fraud rules: `(ts TIMESTAMP(3), k BIGINT, amount
//! DOUBLE, lat DOUBLE, lon DOUBLE, card BIGINT, id BIGINT)`.

use std::sync::Arc;

use arrow::array::{Float64Array, Int64Array, RecordBatch, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

pub(crate) const TS: usize = 0;
pub(crate) const KEY: usize = 1;
pub(crate) const AMOUNT: usize = 2;
pub(crate) const LAT: usize = 3;
pub(crate) const LON: usize = 4;
pub(crate) const CARD: usize = 5;
pub(crate) const ID: usize = 6;

pub(crate) fn tx_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        Field::new("k", DataType::Int64, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("lat", DataType::Float64, true),
        Field::new("lon", DataType::Float64, true),
        Field::new("card", DataType::Int64, true),
        Field::new("id", DataType::Int64, true),
    ]))
}

/// One input row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tx {
    ts: i64,
    key: i64,
    amount: Option<f64>,
    lat: Option<f64>,
    lon: Option<f64>,
    card: i64,
    id: i64,
}

impl Tx {
    pub(crate) fn new(ts: i64, key: i64) -> Self {
        Self {
            ts,
            key,
            amount: Some(10.0),
            lat: None,
            lon: None,
            card: key,
            id: 0,
        }
    }
    pub(crate) fn amount(mut self, a: f64) -> Self {
        self.amount = Some(a);
        self
    }
    pub(crate) fn null_amount(mut self) -> Self {
        self.amount = None;
        self
    }
    pub(crate) fn at(mut self, lat: f64, lon: f64) -> Self {
        self.lat = Some(lat);
        self.lon = Some(lon);
        self
    }
    pub(crate) fn card(mut self, c: i64) -> Self {
        self.card = c;
        self
    }
    pub(crate) fn id(mut self, id: i64) -> Self {
        self.id = id;
        self
    }
}

pub(crate) fn tx(rows: &[Tx]) -> RecordBatch {
    RecordBatch::try_new(
        tx_schema(),
        vec![
            Arc::new(TimestampMillisecondArray::from_iter_values(
                rows.iter().map(|r| r.ts),
            )),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.key))),
            Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.amount))),
            Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.lat))),
            Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.lon))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.card))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.id))),
        ],
    )
    .expect("tx batch")
}
