//! A source that replays pre-generated batches, and a sink that counts rows
//! and measures latency.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{SchemaRef, TimestampMillisecondType};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use weir_connectors::{Connector, TableDescriptor};
use weir_engine::sink::{Sink, SinkFactory};
use weir_engine::source::{Source, SourceContext, SourceFactory};
use weir_engine::{Result, WeirError};

/// When each replayed batch was released and the largest event time in it.
#[derive(Debug, Default)]
pub struct ReleaseLog {
    /// (max event time in the batch, release instant), in release order.
    pub entries: Mutex<Vec<(i64, Instant)>>,
}

impl ReleaseLog {
    /// The release instant of the first batch whose max event time is >= `t`.
    pub fn first_at_or_after(&self, t: i64) -> Option<Instant> {
        let e = self.entries.lock();
        let i = e.partition_point(|(ts, _)| *ts < t);
        e.get(i).map(|(_, at)| *at)
    }
}

/// Replays batches as a source connector of a bench run (`nexmark`,
/// `transactions`).
pub struct ReplayConnector {
    /// The connector name it stands in for.
    pub name: &'static str,
    /// The batches to replay (one split).
    pub batches: Arc<Vec<RecordBatch>>,
    /// Rows per second, or unthrottled.
    pub rate: Option<f64>,
    /// Where releases are logged (throttled runs).
    pub log: Arc<ReleaseLog>,
    /// Index of the event-time column in the batches.
    pub time_column: usize,
}

impl Connector for ReplayConnector {
    fn name(&self) -> &str {
        self.name
    }
    fn source(&self, table: &TableDescriptor) -> Result<Arc<dyn SourceFactory>> {
        let schema = self
            .batches
            .first()
            .map(|b| b.schema())
            .ok_or_else(|| WeirError::Config("nothing to replay".into()))?;
        if schema.fields().len() != table.schema.fields().len() {
            return Err(WeirError::Config(format!(
                "replay: table {} has {} columns, the replayed batches {}",
                table.name,
                table.schema.fields().len(),
                schema.fields().len()
            )));
        }
        Ok(Arc::new(ReplayFactory {
            batches: self.batches.clone(),
            rate: self.rate,
            log: self.log.clone(),
            schema,
            time_column: self.time_column,
        }))
    }
    fn sink(&self, table: &TableDescriptor) -> Result<Arc<dyn SinkFactory>> {
        Err(WeirError::Config(format!(
            "replay: {} is not a sink",
            table.name
        )))
    }
}

struct ReplayFactory {
    batches: Arc<Vec<RecordBatch>>,
    rate: Option<f64>,
    log: Arc<ReleaseLog>,
    schema: SchemaRef,
    time_column: usize,
}

impl SourceFactory for ReplayFactory {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn create(&self, subtask: usize, parallelism: usize) -> Result<Box<dyn Source>> {
        let mine: Vec<RecordBatch> = self
            .batches
            .iter()
            .enumerate()
            .filter(|(i, _)| i % parallelism == subtask)
            .map(|(_, b)| b.clone())
            .collect();
        Ok(Box::new(ReplaySource {
            batches: mine,
            rate: self.rate.map(|r| r / parallelism as f64),
            log: self.log.clone(),
            time_column: self.time_column,
        }))
    }
    fn describe(&self) -> String {
        format!("replay of {} pre-generated batches", self.batches.len())
    }
}

struct ReplaySource {
    batches: Vec<RecordBatch>,
    rate: Option<f64>,
    log: Arc<ReleaseLog>,
    time_column: usize,
}

#[async_trait]
impl Source for ReplaySource {
    fn split_count(&self) -> usize {
        1
    }
    async fn run(&mut self, ctx: &mut SourceContext) -> Result<()> {
        let start = Instant::now();
        let mut sent = 0usize;
        for b in std::mem::take(&mut self.batches) {
            if ctx.is_cancelled() {
                break;
            }
            if let Some(rate) = self.rate {
                let due = start + Duration::from_secs_f64(sent as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
                let max = arrow::compute::max(
                    b.column(self.time_column)
                        .as_primitive::<TimestampMillisecondType>(),
                )
                .unwrap_or(i64::MIN);
                self.log.entries.lock().push((max, Instant::now()));
            }
            sent += b.num_rows();
            ctx.emit(0, b).await?;
        }
        Ok(())
    }
}

/// What the bench sink measures.
#[derive(Debug)]
pub struct SinkStats {
    /// Rows received.
    pub rows: AtomicU64,
    /// Latency per row (microseconds), when measuring.
    pub latency_us: Mutex<Histogram<u64>>,
}

impl SinkStats {
    /// Empty stats.
    pub fn new() -> Self {
        Self {
            rows: AtomicU64::new(0),
            latency_us: Mutex::new(
                Histogram::new_with_bounds(1, 3_600_000_000, 3)
                    .or_else(|_| Histogram::new(3))
                    .unwrap_or_else(|_| unreachable_hist()),
            ),
        }
    }
}

impl Default for SinkStats {
    fn default() -> Self {
        Self::new()
    }
}

#[allow(clippy::panic)]
fn unreachable_hist() -> Histogram<u64> {
    panic!("hdrhistogram rejected constant bounds")
}

/// How a sink finds the moment a row became possible.
#[derive(Debug, Clone, Copy)]
pub struct LatencyKey {
    /// Output column holding the window end (windowed queries). `None` for
    /// stateless queries, which run chained in the source's task: their rows
    /// come from the batch released last.
    pub column: Option<usize>,
    /// Added to that time before looking up the release: the watermark
    /// delay minus one millisecond for windows, 0 for stateless rows.
    pub offset_ms: i64,
}

/// A counting sink for every sink table of a bench run.
pub struct BenchSinkConnector {
    /// Shared stats.
    pub stats: Arc<SinkStats>,
    /// Release log of the source (latency runs).
    pub log: Arc<ReleaseLog>,
    /// How to compute latency, or None for throughput runs.
    pub key: Option<LatencyKey>,
    /// Which connector name this stands in for.
    pub name: String,
}

impl Connector for BenchSinkConnector {
    fn name(&self) -> &str {
        &self.name
    }
    fn source(&self, table: &TableDescriptor) -> Result<Arc<dyn SourceFactory>> {
        Err(WeirError::Config(format!(
            "bench sink: {} is not a source",
            table.name
        )))
    }
    fn sink(&self, _table: &TableDescriptor) -> Result<Arc<dyn SinkFactory>> {
        Ok(Arc::new(BenchSinkFactory {
            stats: self.stats.clone(),
            log: self.log.clone(),
            key: self.key,
        }))
    }
}

struct BenchSinkFactory {
    stats: Arc<SinkStats>,
    log: Arc<ReleaseLog>,
    key: Option<LatencyKey>,
}

impl SinkFactory for BenchSinkFactory {
    fn create(&self, _subtask: usize, _parallelism: usize) -> Result<Box<dyn Sink>> {
        Ok(Box::new(BenchSink {
            stats: self.stats.clone(),
            log: self.log.clone(),
            key: self.key,
        }))
    }
    fn describe(&self) -> String {
        "bench sink (counts rows, measures latency)".into()
    }
}

struct BenchSink {
    stats: Arc<SinkStats>,
    log: Arc<ReleaseLog>,
    key: Option<LatencyKey>,
}

#[async_trait]
impl Sink for BenchSink {
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<()> {
        let now = Instant::now();
        self.stats
            .rows
            .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
        if let Some(LatencyKey { column: None, .. }) = self.key {
            let released = self.log.entries.lock().last().map(|e| e.1);
            if let Some(released) = released {
                let us = now.saturating_duration_since(released).as_micros() as u64;
                self.stats
                    .latency_us
                    .lock()
                    .saturating_record_n(us.max(1), batch.num_rows() as u64);
            }
        } else if let Some(LatencyKey {
            column: Some(column),
            offset_ms,
        }) = self.key
        {
            let key = LatencyKey {
                column: Some(column),
                offset_ms,
            };
            let col = batch.column(column);
            let col = arrow::compute::cast(
                col,
                &arrow::datatypes::DataType::Timestamp(
                    arrow::datatypes::TimeUnit::Millisecond,
                    None,
                ),
            )?;
            let times = col.as_primitive::<TimestampMillisecondType>();
            let mut h = self.stats.latency_us.lock();
            for i in 0..times.len() {
                if times.is_null(i) {
                    continue;
                }
                if let Some(released) = self.log.first_at_or_after(times.value(i) + key.offset_ms) {
                    let us = now.saturating_duration_since(released).as_micros() as u64;
                    h.saturating_record(us.max(1));
                }
            }
        }
        Ok(())
    }
    async fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}
