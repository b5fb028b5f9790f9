//! Test helpers: driving an operator like the runtime does and printing rows.

use arrow::array::{Array, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use arrow::util::display::array_value_to_string;
use weir_engine::message::Watermark;
use weir_engine::operator::{Collector, Operator, OperatorContext, Output};
use weir_engine::state::OperatorState;
use weir_engine::Result;

/// What came out of an operator, in order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Event {
    /// A batch, printed row by row.
    Rows(Vec<String>),
    /// A watermark.
    Watermark(i64),
    /// Idleness.
    Idle,
}

/// Drives one operator.
pub(crate) struct Harness<O: Operator> {
    pub(crate) op: O,
    pub(crate) ctx: OperatorContext,
    out: Vec<Output>,
}

impl<O: Operator> Harness<O> {
    pub(crate) fn new(op: O) -> Self {
        Self {
            op,
            ctx: OperatorContext::standalone("test"),
            out: Vec::new(),
        }
    }

    pub(crate) fn batch(&mut self, batch: RecordBatch) -> Result<()> {
        let mut c = Collector::new();
        self.op.process_batch(batch, &mut self.ctx, &mut c)?;
        self.out.extend(c.take());
        Ok(())
    }

    /// Sets `ctx.watermark` then calls `on_watermark`, as the runtime does.
    pub(crate) fn watermark(&mut self, w: i64) -> Result<()> {
        if self.ctx.watermark.is_none_or(|c| w > c) {
            self.ctx.watermark = Some(w);
            let mut c = Collector::new();
            self.op.on_watermark(w, &mut self.ctx, &mut c)?;
            self.out.extend(c.take());
        }
        Ok(())
    }

    pub(crate) fn end(&mut self) -> Result<()> {
        let mut c = Collector::new();
        self.op.on_end(&mut self.ctx, &mut c)?;
        self.out.extend(c.take());
        Ok(())
    }

    pub(crate) fn take_batches(&mut self) -> Vec<RecordBatch> {
        self.out
            .drain(..)
            .filter_map(|o| match o {
                Output::Batch(b) => Some(b),
                Output::Watermark(_) => None,
            })
            .collect()
    }

    pub(crate) fn take_events(&mut self) -> Vec<Event> {
        self.out
            .drain(..)
            .map(|o| match o {
                Output::Batch(b) => Event::Rows(rows_of(&[b])),
                Output::Watermark(Watermark::EventTime(w)) => Event::Watermark(w),
                Output::Watermark(Watermark::Idle) => Event::Idle,
            })
            .collect()
    }

    pub(crate) fn late_dropped(&self) -> u64 {
        self.ctx
            .metrics
            .late_rows_dropped
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// One input step of [`replay`]: a batch, or `Err(w)` for watermark `w`.
pub(crate) type Step = std::result::Result<RecordBatch, i64>;

/// Runs `steps` through an operator from `make`, then ends it, and returns
/// every event it emitted and the harness (for its stats and late-row
/// count). With `cut = Some(i)`, the operator is snapshotted to bytes before
/// step `i` and a fresh one from `make` restores that state and takes over,
/// keeping the current watermark and late-row count as the runtime does
/// after a recovery.
pub(crate) fn replay<O: Operator>(
    make: impl Fn() -> O,
    steps: &[Step],
    cut: Option<usize>,
) -> (Vec<Event>, Harness<O>) {
    let mut h = Harness::new(make());
    let mut events = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        if Some(i) == cut {
            let bytes =
                h.op.snapshot()
                    .expect("snapshot")
                    .to_bytes()
                    .expect("bytes");
            let mut fresh = make();
            fresh
                .restore(OperatorState::from_bytes(&bytes).expect("decode"))
                .expect("restore");
            events.extend(h.take_events());
            let (wm, late) = (h.ctx.watermark, h.late_dropped());
            h = Harness::new(fresh);
            h.ctx.watermark = wm;
            h.ctx.metrics.add_late_dropped(late);
        }
        match step {
            Ok(b) => h.batch(b.clone()).expect("batch"),
            Err(w) => h.watermark(*w).expect("watermark"),
        }
    }
    h.end().expect("end");
    events.extend(h.take_events());
    (events, h)
}

/// Rows as comma-separated values; timestamps as epoch milliseconds, nulls
/// as `null`.
pub(crate) fn rows_of(batches: &[RecordBatch]) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        let cols: Vec<_> = b
            .columns()
            .iter()
            .map(|c| match c.data_type() {
                DataType::Timestamp(_, _) => cast(c, &DataType::Int64).expect("ts to i64"),
                _ => c.clone(),
            })
            .collect();
        for r in 0..b.num_rows() {
            let fields: Vec<String> = cols
                .iter()
                .map(|c| {
                    if c.is_null(r) {
                        "null".to_string()
                    } else {
                        array_value_to_string(c, r).expect("display")
                    }
                })
                .collect();
            out.push(fields.join(","));
        }
    }
    out
}

pub(crate) mod agg {
    //! Builders for window aggregation tests over the input
    //! `(ts TIMESTAMP(3), k VARCHAR, v BIGINT)`.

    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
    use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
    use datafusion_expr::AggregateUDF;
    use datafusion_physical_expr::aggregate::{AggregateExprBuilder, AggregateFunctionExpr};
    use datafusion_physical_expr::expressions::{cast, col};
    use datafusion_physical_expr::PhysicalExpr;

    use crate::window::{FilteredAggregate, OutputColumn, WindowAggregateConfig, WindowSpec};

    pub(crate) fn input_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("k", DataType::Utf8, true),
            Field::new("v", DataType::Int64, true),
        ]))
    }

    pub(crate) fn input(rows: &[(i64, &str, i64)]) -> RecordBatch {
        RecordBatch::try_new(
            input_schema(),
            vec![
                Arc::new(TimestampMillisecondArray::from(
                    rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                )),
            ],
        )
        .expect("input batch")
    }

    pub(crate) fn column(name: &str) -> Arc<dyn PhysicalExpr> {
        col(name, &input_schema()).expect("column")
    }

    pub(crate) fn aggregate(
        udaf: Arc<AggregateUDF>,
        arg: &str,
        alias: &str,
        distinct: bool,
    ) -> Arc<AggregateFunctionExpr> {
        // AVG takes DOUBLE: cast as DataFusion's type coercion would.
        let arg = if udaf.name() == "avg" {
            cast(column(arg), &input_schema(), DataType::Float64).expect("cast")
        } else {
            column(arg)
        };
        Arc::new(
            AggregateExprBuilder::new(udaf, vec![arg])
                .schema(input_schema())
                .alias(alias)
                .with_distinct(distinct)
                .build()
                .expect("aggregate"),
        )
    }

    /// `window_start, window_end, k, <aggregates>` grouped by `k` (or no key
    /// when `by_key` is false: `window_start, window_end, <aggregates>`).
    pub(crate) fn config(
        window: WindowSpec,
        by_key: bool,
        aggregates: Vec<FilteredAggregate>,
    ) -> WindowAggregateConfig {
        let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
        let mut fields = vec![
            Field::new("window_start", ts.clone(), false),
            Field::new("window_end", ts, false),
        ];
        let mut output = vec![OutputColumn::WindowStart, OutputColumn::WindowEnd];
        if by_key {
            fields.push(Field::new("k", DataType::Utf8, true));
            output.push(OutputColumn::Key(0));
        }
        for (i, (a, _)) in aggregates.iter().enumerate() {
            fields.push(a.field().as_ref().clone());
            output.push(OutputColumn::Aggregate(i));
        }
        WindowAggregateConfig {
            window,
            time_column: 0,
            keys: if by_key { vec![column("k")] } else { vec![] },
            session_keys: if by_key { vec![0] } else { vec![] },
            aggregates,
            output,
            output_schema: Arc::new(Schema::new(fields)),
        }
    }
}
