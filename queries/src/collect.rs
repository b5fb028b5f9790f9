//! A sink that keeps what it receives in memory: for tests, golden files
//! and embedding Weir in a program.

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use parking_lot::Mutex;
use weir_engine::sink::{Sink, SinkFactory};
use weir_engine::Result;

/// Collects every batch written by all of its subtasks.
#[derive(Debug, Clone, Default)]
pub struct CollectSink {
    batches: Arc<Mutex<Vec<RecordBatch>>>,
}

impl CollectSink {
    /// A new, empty collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything collected so far.
    pub fn batches(&self) -> Vec<RecordBatch> {
        self.batches.lock().clone()
    }
}

struct CollectSubtask {
    batches: Arc<Mutex<Vec<RecordBatch>>>,
}

#[async_trait]
impl Sink for CollectSubtask {
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<()> {
        self.batches.lock().push(batch);
        Ok(())
    }
    async fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

impl SinkFactory for CollectSink {
    fn create(&self, _subtask: usize, _parallelism: usize) -> Result<Box<dyn Sink>> {
        Ok(Box::new(CollectSubtask {
            batches: self.batches.clone(),
        }))
    }
    fn describe(&self) -> String {
        "collect (in memory)".into()
    }
}

/// Formats rows for golden files: one `Vec<String>` per row. NULL is
/// `NULL`, timestamps `YYYY-MM-DD HH:MM:SS.mmm` (UTC), floats in their
/// shortest round-trip form (`2.0`, `12.5`), decimals with their scale.
pub fn format_rows(batches: &[RecordBatch]) -> weir_engine::Result<Vec<Vec<String>>> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{DataType, Float32Type, Float64Type, TimeUnit};
    let mut rows = Vec::new();
    for batch in batches {
        let columns: Vec<_> = batch.columns().to_vec();
        for r in 0..batch.num_rows() {
            let mut row = Vec::with_capacity(columns.len());
            for c in &columns {
                if c.is_null(r) {
                    row.push("NULL".to_string());
                    continue;
                }
                let v = match c.data_type() {
                    DataType::Timestamp(unit, _) => {
                        let raw = arrow::compute::cast(
                            &c.slice(r, 1),
                            &DataType::Timestamp(TimeUnit::Millisecond, None),
                        )?;
                        let ms = raw
                            .as_primitive::<arrow::datatypes::TimestampMillisecondType>()
                            .value(0);
                        let _ = unit;
                        weir_engine::time::format_millis(ms)
                    }
                    DataType::Float64 => format!("{:?}", c.as_primitive::<Float64Type>().value(r)),
                    DataType::Float32 => format!("{:?}", c.as_primitive::<Float32Type>().value(r)),
                    _ => arrow::util::display::array_value_to_string(c, r)?,
                };
                row.push(v);
            }
            rows.push(row);
        }
    }
    Ok(rows)
}
