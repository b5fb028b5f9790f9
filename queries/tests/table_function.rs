//! A table function written in Rust, registered with the planner and called
//! from SQL: exact rows, partitioning by key, and plan errors.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use weir_engine::operator::{Collector, Operator, OperatorContext};
use weir_engine::runtime::{Job, JobConfig};
use weir_queries::collect::{format_rows, CollectSink};
use weir_queries::table_function::{TableFunction, TableFunctionCall, TableFunctionPlan};
use weir_queries::{plan_script, PlanOptions};

/// Appends the running total of a BIGINT column per BIGINT key.
struct RunningTotal {
    key: usize,
    value: usize,
    schema: SchemaRef,
    totals: HashMap<i64, i64>,
}

impl Operator for RunningTotal {
    fn process_batch(
        &mut self,
        batch: RecordBatch,
        _ctx: &mut OperatorContext,
        out: &mut Collector,
    ) -> weir_engine::Result<()> {
        let keys = batch.column(self.key).as_primitive::<Int64Type>();
        let values = batch.column(self.value).as_primitive::<Int64Type>();
        let mut running = Vec::with_capacity(batch.num_rows());
        for i in 0..batch.num_rows() {
            if keys.is_null(i) || values.is_null(i) {
                running.push(None);
                continue;
            }
            let t = self.totals.entry(keys.value(i)).or_insert(0);
            *t += values.value(i);
            running.push(Some(*t));
        }
        let mut columns = batch.columns().to_vec();
        columns.push(Arc::new(Int64Array::from(running)));
        out.collect(RecordBatch::try_new(self.schema.clone(), columns)?);
        Ok(())
    }
}

struct RunningTotalFunction;

impl TableFunction for RunningTotalFunction {
    fn name(&self) -> &str {
        "RUNNING_TOTAL"
    }

    fn plan(&self, call: &TableFunctionCall) -> weir_engine::Result<TableFunctionPlan> {
        call.expect_args(2, 2)?;
        let key = call.column(0)?;
        let value = call.column(1)?;
        for c in [key, value] {
            if call.input_schema.field(c).data_type() != &DataType::Int64 {
                return Err(call.error(format!(
                    "column {} must be BIGINT",
                    call.input_schema.field(c).name()
                )));
            }
        }
        let mut fields: Vec<Field> = call
            .input_schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new("running_total", DataType::Int64, true));
        let schema: SchemaRef = Arc::new(Schema::new(fields));
        let out = schema.clone();
        Ok(TableFunctionPlan {
            schema,
            keys: vec![key],
            operator: Arc::new(move |_s: usize, _p: usize| {
                Ok(Box::new(RunningTotal {
                    key,
                    value,
                    schema: out.clone(),
                    totals: HashMap::new(),
                }) as Box<dyn Operator>)
            }),
            description: format!("running total per column {key}"),
        })
    }
}

const BIDS: &str = "CREATE TABLE bid (
  auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, dateTime TIMESTAMP(3),
  WATERMARK FOR dateTime AS dateTime - INTERVAL '2' SECOND
) WITH ('connector' = 'filesystem', 'path' = 'tests/data/bids.json', 'format' = 'json');
";

fn options(sink: &CollectSink) -> PlanOptions {
    let mut options = PlanOptions {
        parallelism: 2,
        select_sink: Some(Arc::new(sink.clone())),
        ..PlanOptions::new()
    };
    options.register_table_function(Arc::new(RunningTotalFunction));
    options
}

#[tokio::test]
async fn a_rust_operator_called_from_sql_gives_exact_rows() {
    let sink = CollectSink::new();
    let sql = format!(
        "{BIDS}SELECT auction, price, running_total
FROM TABLE(running_total(TABLE bid, DESCRIPTOR(auction), DESCRIPTOR(price)))
WHERE running_total > 0;"
    );
    let planned = plan_script(&sql, &options(&sink)).expect("plan");
    let explain = planned.explain().expect("explain");
    assert!(explain.contains("RUNNING_TOTAL"), "{explain}");
    assert!(explain.contains("hash"), "keyed by auction: {explain}");
    Job::new(planned.graph, JobConfig::default())
        .expect("job")
        .run()
        .await
        .expect("run");
    let mut rows = format_rows(&sink.batches()).expect("rows");
    rows.sort_by_key(|r| {
        (
            r[0].parse::<i64>().unwrap_or(0),
            r[2].parse::<i64>().unwrap_or(0),
        )
    });
    let expected: Vec<Vec<String>> = [
        (1, 10, 10),
        (1, 30, 40),
        (1, 40, 80),
        (1, 60, 140),
        (1, 5, 145),
        (1, 65, 210),
        (2, 20, 20),
        (2, 50, 70),
        (2, 80, 150),
        (2, 90, 240),
        (3, 70, 70),
        (3, 55, 125),
    ]
    .iter()
    .map(|(a, p, t)| vec![a.to_string(), p.to_string(), t.to_string()])
    .collect();
    assert_eq!(rows, expected);
}

#[test]
fn table_function_plan_errors_name_function_argument_and_line() {
    let sink = CollectSink::new();
    let err = |q: &str| match plan_script(&format!("{BIDS}{q}"), &options(&sink)) {
        Ok(_) => panic!("{q}: planned"),
        Err(e) => e.to_string(),
    };
    let e = err("SELECT * FROM TABLE(no_such(TABLE bid, DESCRIPTOR(auction)));");
    assert!(
        e.contains("line 5")
            && e.contains("unknown table function 'no_such' (known: ")
            && e.contains("RUNNING_TOTAL")
            && e.contains("VELOCITY"),
        "{e}"
    );
    let e =
        err("SELECT * FROM TABLE(running_total(TABLE bid, DESCRIPTOR(nope), DESCRIPTOR(price)));");
    assert!(
        e.contains("DESCRIPTOR(nope): the input has no such column"),
        "{e}"
    );
    let e = err("SELECT * FROM TABLE(running_total(TABLE bid, DESCRIPTOR(auction)));");
    assert!(
        e.contains("expected 2 arguments after TABLE t, got 1"),
        "{e}"
    );
    let e = err(
        "SELECT * FROM TABLE(running_total(TABLE bid, DESCRIPTOR(channel), DESCRIPTOR(price)));",
    );
    assert!(e.contains("column channel must be BIGINT"), "{e}");
}
