//! The filesystem connector on real files: round trips through sink and
//! source, malformed records, Parquet, directories and option errors.

mod common;

use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int32Array, Int64Array,
    StringArray, TimestampMillisecondArray,
};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use common::{
    err_text, rows, rows_by_split, run_restored, run_source, run_until_checkpoint, table,
};
use weir_connectors::ConnectorRegistry;
use weir_engine::{Result, WeirError};

const T0: i64 = 1_767_225_600_000; // 2026-01-01 00:00:00 UTC

fn all_types_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("b", DataType::Boolean, true),
        Field::new("i", DataType::Int32, true),
        Field::new("l", DataType::Int64, true),
        Field::new("d", DataType::Float64, true),
        Field::new("s", DataType::Utf8, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        Field::new("day", DataType::Date32, true),
        Field::new("amount", DataType::Decimal128(10, 2), true),
    ]))
}

/// Three rows covering every supported type, with a NULL in every column.
fn all_types_batch() -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
        Arc::new(Int32Array::from(vec![Some(-7), None, Some(i32::MAX)])),
        Arc::new(Int64Array::from(vec![None, Some(i64::MIN), Some(42)])),
        Arc::new(Float64Array::from(vec![Some(1.5), Some(-0.001), None])),
        Arc::new(StringArray::from(vec![
            Some("plain"),
            None,
            Some("with \"quotes\", commas\nand a newline"),
        ])),
        Arc::new(TimestampMillisecondArray::from(vec![
            Some(T0 + 10_123),
            Some(-1),
            None,
        ])),
        Arc::new(Date32Array::from(vec![None, Some(20454), Some(-1)])),
        Arc::new(
            Decimal128Array::from(vec![Some(12345), None, Some(-5)])
                .with_precision_and_scale(10, 2)?,
        ),
    ];
    Ok(RecordBatch::try_new(all_types_schema(), columns)?)
}

/// Writes `batches` through a sink subtask (0 of 1) and finishes it.
async fn write(
    registry: &ConnectorRegistry,
    t: &weir_connectors::TableDescriptor,
    batches: &[RecordBatch],
) -> Result<()> {
    let factory = registry.sink(t)?;
    let mut sink = factory.create(0, 1)?;
    for b in batches {
        sink.write_batch(b.clone()).await?;
        sink.on_barrier(1).await?;
    }
    sink.finish().await
}

/// Reads a table back (one subtask) as one batch.
async fn read_back(
    registry: &ConnectorRegistry,
    t: &weir_connectors::TableDescriptor,
) -> Result<RecordBatch> {
    let factory = registry.source(t)?;
    let run = run_source(factory.as_ref(), 0, 1).await?;
    run.result?;
    assert_eq!(
        run.metrics
            .malformed_records
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    let batches: Vec<RecordBatch> = run.batches.into_iter().map(|(_, b)| b).collect();
    Ok(concat_batches(&factory.schema(), &batches)?)
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

#[tokio::test]
async fn json_round_trip_of_every_type() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| WeirError::io("tempdir", e))?;
    let out = path_str(&dir.path().join("out"));
    let registry = ConnectorRegistry::with_defaults();
    let t = table(
        "t",
        all_types_schema(),
        &[
            ("connector", "filesystem"),
            ("path", &out),
            ("format", "json"),
        ],
    );
    let batch = all_types_batch()?;
    write(&registry, &t, &[batch.slice(0, 2), batch.slice(2, 1)]).await?;
    let text = std::fs::read_to_string(dir.path().join("out/part-0.jsonl"))
        .map_err(|e| WeirError::io("read", e))?;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        r#"{"b":true,"i":-7,"l":null,"d":1.5,"s":"plain","ts":"2026-01-01 00:00:10.123","day":null,"amount":123.45}"#
    );
    assert_eq!(
        lines[1],
        r#"{"b":false,"i":null,"l":-9223372036854775808,"d":-0.001,"s":null,"ts":"1969-12-31 23:59:59.999","day":"2026-01-01","amount":null}"#
    );
    assert_eq!(lines.len(), 3);
    let back = read_back(&registry, &t).await?;
    assert_eq!(back, batch);
    Ok(())
}

#[tokio::test]
async fn csv_round_trip_of_every_type() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| WeirError::io("tempdir", e))?;
    let out = path_str(&dir.path().join("out"));
    let registry = ConnectorRegistry::with_defaults();
    let t = table(
        "t",
        all_types_schema(),
        &[
            ("connector", "filesystem"),
            ("path", &out),
            ("format", "csv"),
        ],
    );
    let batch = all_types_batch()?;
    write(&registry, &t, std::slice::from_ref(&batch)).await?;
    let text = std::fs::read_to_string(dir.path().join("out/part-0.csv"))
        .map_err(|e| WeirError::io("read", e))?;
    assert!(
        text.starts_with("true,-7,,1.5,plain,2026-01-01 00:00:10.123,,123.45\n"),
        "{text}"
    );
    assert_eq!(read_back(&registry, &t).await?, batch);

    // Other delimiter, a header line, a null literal.
    let out2 = path_str(&dir.path().join("out2"));
    let t2 = table(
        "t",
        all_types_schema(),
        &[
            ("connector", "filesystem"),
            ("path", &out2),
            ("format", "csv"),
            ("csv.field-delimiter", "\\t"),
            ("csv.ignore-first-line", "true"),
            ("csv.null-literal", "NULL"),
        ],
    );
    write(&registry, &t2, std::slice::from_ref(&batch)).await?;
    let text = std::fs::read_to_string(dir.path().join("out2/part-0.csv"))
        .map_err(|e| WeirError::io("read", e))?;
    assert!(
        text.starts_with("b\ti\tl\td\ts\tts\tday\tamount\ntrue\t-7\tNULL\t"),
        "{text}"
    );
    assert_eq!(read_back(&registry, &t2).await?, batch);
    Ok(())
}

#[tokio::test]
async fn parquet_files_read_back_with_the_parquet_reader() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| WeirError::io("tempdir", e))?;
    let out = path_str(&dir.path().join("out"));
    let registry = ConnectorRegistry::with_defaults();
    let t = table(
        "t",
        all_types_schema(),
        &[
            ("connector", "filesystem"),
            ("path", &out),
            ("format", "parquet"),
        ],
    );
    let batch = all_types_batch()?;
    write(&registry, &t, &[batch.slice(0, 1), batch.slice(1, 2)]).await?;

    let file = std::fs::File::open(dir.path().join("out/part-0.parquet"))
        .map_err(|e| WeirError::io("open", e))?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| WeirError::external("parquet", e))?
        .build()
        .map_err(|e| WeirError::external("parquet", e))?;
    let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
    let read = concat_batches(&all_types_schema(), &batches)?;
    assert_eq!(read, batch);

    // The source reads Parquet too, projecting and reordering columns.
    let some = Arc::new(Schema::new(vec![
        Field::new("s", DataType::Utf8, true),
        Field::new("l", DataType::Int64, true),
    ]));
    let t = table(
        "t",
        some.clone(),
        &[
            ("connector", "filesystem"),
            ("path", &out),
            ("format", "parquet"),
        ],
    );
    let back = read_back(&registry, &t).await?;
    assert_eq!(back, batch.project(&[4, 2])?.with_schema(some)?);
    Ok(())
}

/// Captures what the tracing subscriber prints.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs (once) a global subscriber printing into a buffer. Global, as
/// tracing's per-callsite interest cache does not mix well with scoped
/// subscribers while other test threads log.
fn log_capture() -> Captured {
    static CAPTURED: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let captured = Captured::default();
            let writer = captured.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .finish();
            let _ = tracing::subscriber::set_global_default(subscriber);
            captured
        })
        .clone()
}

#[test]
fn malformed_lines_are_counted_located_and_skipped() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| WeirError::io("tempdir", e))?;
    let file = dir.path().join("bids.json");
    let mut lines: Vec<String> = (0..10)
        .map(|i| format!(r#"{{"auction": {i}, "dateTime": "2026-01-01 00:00:0{i}"}}"#))
        .collect();
    lines[2] = r#"{"auction": 2, "dateTime": "#.into(); // line 3: invalid JSON
    lines[6] = r#"{"auction": "six", "dateTime": "2026-01-01 00:00:06"}"#.into(); // line 7: type mismatch
    std::fs::write(&file, lines.join("\n") + "\n").map_err(|e| WeirError::io("write", e))?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("auction", DataType::Int64, true),
        Field::new(
            "dateTime",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        ),
    ]));
    let path = path_str(&file);
    let registry = ConnectorRegistry::with_defaults();
    let t = table(
        "bids",
        schema.clone(),
        &[
            ("connector", "filesystem"),
            ("path", &path),
            ("format", "json"),
        ],
    );
    let factory = registry.source(&t)?;

    let captured = log_capture();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| WeirError::io("runtime", e))?;
    let run = runtime.block_on(run_source(factory.as_ref(), 0, 1))?;
    run.result?;
    let n: usize = run.batches.iter().map(|(_, b)| b.num_rows()).sum();
    assert_eq!(n, 8);
    assert_eq!(
        run.metrics
            .malformed_records
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    assert_eq!(
        run.metrics
            .rows_out
            .load(std::sync::atomic::Ordering::Relaxed),
        8
    );
    let got = rows(run.batches.iter().map(|(_, b)| b))?;
    assert_eq!(got[2], "3|2026-01-01T00:00:03");
    let log = String::from_utf8_lossy(
        &captured
            .0
            .lock()
            .map_err(|_| WeirError::Internal("poisoned".into()))?,
    )
    .to_string();
    assert!(log.contains(&format!("location={path}:3")), "{log}");
    assert!(log.contains(&format!("location={path}:7")), "{log}");
    assert!(
        log.contains("field 'auction': expected BIGINT, found 'six'"),
        "{log}"
    );
    let ours = log
        .lines()
        .filter(|l| l.contains(&format!("location={path}:")))
        .count();
    assert_eq!(ours, 2, "{log}");

    // With 'format.on-error' = 'fail' the first bad line fails the job.
    let t = table(
        "bids",
        schema,
        &[
            ("connector", "filesystem"),
            ("path", &path),
            ("format", "json"),
            ("format.on-error", "fail"),
        ],
    );
    let factory = registry.source(&t)?;
    let run = runtime.block_on(run_source(factory.as_ref(), 0, 1))?;
    let e = err_text(run.result);
    assert!(
        e.starts_with(&format!("source error: {path}:3: malformed record: ")),
        "{e}"
    );
    Ok(())
}

#[tokio::test]
async fn malformed_csv_records_and_timestamp_forms() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| WeirError::io("tempdir", e))?;
    let file = dir.path().join("t.csv");
    std::fs::write(
        &file,
        "id,ts\n1,2026-01-01 00:00:00.123\n2,2026-01-01 00:00:00\n3,2026-01-01T00:00:00.123Z\n\
         x,2026-01-01 00:00:00\n4,1767225600000\n5\n6,\"2026-01-01 00:00:01\"\n",
    )
    .map_err(|e| WeirError::io("write", e))?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
    ]));
    let registry = ConnectorRegistry::with_defaults();
    let t = table(
        "t",
        schema,
        &[
            ("connector", "filesystem"),
            ("path", &path_str(&file)),
            ("format", "csv"),
            ("csv.ignore-first-line", "true"),
        ],
    );
    let run = run_source(registry.source(&t)?.as_ref(), 0, 1).await?;
    run.result?;
    assert_eq!(
        rows(run.batches.iter().map(|(_, b)| b))?,
        vec![
            "1|2026-01-01T00:00:00.123",
            "2|2026-01-01T00:00:00",
            "3|2026-01-01T00:00:00.123",
            "4|2026-01-01T00:00:00",
            "6|2026-01-01T00:00:01",
        ]
    );
    assert_eq!(
        run.metrics
            .malformed_records
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    Ok(())
}

#[tokio::test]
async fn directories_are_split_by_file_in_name_order() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| WeirError::io("tempdir", e))?;
    let write = |name: &str, ids: &[i64]| -> Result<()> {
        let mut f =
            std::fs::File::create(dir.path().join(name)).map_err(|e| WeirError::io("create", e))?;
        for id in ids {
            writeln!(f, r#"{{"id": {id}}}"#).map_err(|e| WeirError::io("write", e))?;
        }
        Ok(())
    };
    write("b.json", &[3, 4])?;
    write("a.json", &[1, 2])?;
    write("c.json", &[5])?;
    write(".hidden.json", &[100])?;
    write("_SUCCESS", &[200])?;
    std::fs::create_dir(dir.path().join("sub")).map_err(|e| WeirError::io("mkdir", e))?;
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
    let registry = ConnectorRegistry::with_defaults();
    let t = table(
        "t",
        schema,
        &[
            ("connector", "filesystem"),
            ("path", &path_str(dir.path())),
            ("format", "json"),
            ("batch.size", "1"),
        ],
    );
    let factory = registry.source(&t)?;
    assert!(
        factory.describe().contains("(3 files)"),
        "{}",
        factory.describe()
    );

    let one = run_source(factory.as_ref(), 0, 1).await?;
    one.result?;
    assert_eq!(one.split_count, 3);
    let mut all = rows(one.batches.iter().map(|(_, b)| b))?;
    all.sort();
    assert_eq!(all, vec!["1", "2", "3", "4", "5"]);
    // Round-robin over open files: a batch from each in turn.
    let splits: Vec<usize> = one.batches.iter().map(|(s, _)| *s).collect();
    assert_eq!(splits, vec![0, 1, 2, 0, 1]);

    // Parallelism 2: files a, c to subtask 0 and b to subtask 1.
    let s0 = run_source(factory.as_ref(), 0, 2).await?;
    let s1 = run_source(factory.as_ref(), 1, 2).await?;
    s0.result?;
    s1.result?;
    assert_eq!(
        rows(s0.batches.iter().map(|(_, b)| b))?,
        vec!["1", "5", "2"]
    );
    assert_eq!(rows(s1.batches.iter().map(|(_, b)| b))?, vec!["3", "4"]);
    Ok(())
}

#[tokio::test]
async fn sinks_replace_earlier_output() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| WeirError::io("tempdir", e))?;
    let out = dir.path().join("out");
    std::fs::create_dir(&out).map_err(|e| WeirError::io("mkdir", e))?;
    std::fs::write(out.join("part-0.jsonl"), "old\nold\nold\n")
        .map_err(|e| WeirError::io("write", e))?;
    std::fs::write(out.join("part-5.jsonl"), "stale\n").map_err(|e| WeirError::io("write", e))?;
    std::fs::write(out.join("keep.txt"), "mine\n").map_err(|e| WeirError::io("write", e))?;
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
    let registry = ConnectorRegistry::with_defaults();
    let t = table(
        "t",
        schema.clone(),
        &[
            ("connector", "filesystem"),
            ("path", &path_str(&out)),
            ("format", "json"),
        ],
    );
    let factory = registry.sink(&t)?;
    let mut s0 = factory.create(0, 2)?;
    let mut s1 = factory.create(1, 2)?;
    let b = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2]))])?;
    s0.write_batch(b.clone()).await?;
    s1.write_batch(b.slice(1, 1)).await?;
    s0.finish().await?;
    s1.finish().await?;
    let read = |n: &str| std::fs::read_to_string(out.join(n)).map_err(|e| WeirError::io("read", e));
    assert_eq!(read("part-0.jsonl")?, "{\"id\":1}\n{\"id\":2}\n");
    assert_eq!(read("part-1.jsonl")?, "{\"id\":2}\n");
    assert_eq!(read("keep.txt")?, "mine\n");
    assert!(!out.join("part-5.jsonl").exists());
    Ok(())
}

#[tokio::test]
async fn iso_timestamps_on_request() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| WeirError::io("tempdir", e))?;
    let out = dir.path().join("out");
    let schema = Arc::new(Schema::new(vec![Field::new(
        "ts",
        DataType::Timestamp(TimeUnit::Millisecond, None),
        true,
    )]));
    let registry = ConnectorRegistry::with_defaults();
    let t = table(
        "t",
        schema.clone(),
        &[
            ("connector", "filesystem"),
            ("path", &path_str(&out)),
            ("format", "json"),
            ("json.timestamp-format.standard", "ISO-8601"),
        ],
    );
    let b = RecordBatch::try_new(
        schema,
        vec![Arc::new(TimestampMillisecondArray::from(vec![T0 + 10_000]))],
    )?;
    write(&registry, &t, std::slice::from_ref(&b)).await?;
    let text =
        std::fs::read_to_string(out.join("part-0.jsonl")).map_err(|e| WeirError::io("read", e))?;
    assert_eq!(text, "{\"ts\":\"2026-01-01T00:00:10.000\"}\n");
    assert_eq!(read_back(&registry, &t).await?, b);
    Ok(())
}

#[test]
fn filesystem_option_errors() {
    let registry = ConnectorRegistry::with_defaults();
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
    let err = |options: &[(&str, &str)]| {
        let mut all = vec![("connector", "filesystem")];
        all.extend_from_slice(options);
        err_text(registry.source(&table("t", schema.clone(), &all)))
    };
    assert_eq!(
        err(&[("format", "json")]),
        "config error: table t: option 'path' is required for connector 'filesystem'"
    );
    assert_eq!(
        err(&[("path", "/nonexistent/weir"), ("format", "json")]),
        "config error: table t: 'path' = '/nonexistent/weir': does not exist"
    );
    assert_eq!(
        err(&[("path", "x"), ("format", "avro")]),
        "config error: table t: option 'format' = 'avro' is not valid for connector 'filesystem': expected one of 'json', 'csv', 'parquet'"
    );
    assert_eq!(
        err(&[("path", "x"), ("format", "json"), ("csv.field-delimiter", ";")]),
        "config error: table t: option 'csv.field-delimiter' applies to format 'csv', but 'format' is 'json'"
    );
    assert_eq!(
        err(&[("path", "x"), ("format", "csv"), ("csv.field-delimiter", ";;")]),
        "config error: table t: option 'csv.field-delimiter' = ';;' is not valid for connector 'filesystem': expected a single ASCII character (or \\t)"
    );
    assert_eq!(
        err(&[("path", "x"), ("format", "json"), ("format.on-error", "ignore")]),
        "config error: table t: option 'format.on-error' = 'ignore' is not valid for connector 'filesystem': expected one of 'skip', 'fail'"
    );
    assert!(err(&[("path", "x"), ("format", "json"), ("pth", "y")])
        .starts_with("config error: table t: unknown option 'pth' for connector 'filesystem' (did you mean 'path'? known: "));
    let list = Arc::new(Schema::new(vec![Field::new(
        "xs",
        DataType::List(Arc::new(Field::new("item", DataType::Int64, true))),
        true,
    )]));
    let e = err_text(registry.source(&table(
        "t",
        list,
        &[
            ("connector", "filesystem"),
            ("path", "."),
            ("format", "json"),
        ],
    )));
    assert!(
        e.starts_with("config error: table t: column 'xs' has type List("),
        "{e}"
    );
}

/// Cuts a run of every subtask of `t` at a checkpoint after 1, 2, … batches,
/// restores a new source from the barrier's positions and checks that the
/// rows before plus the rows after equal, file by file, an uninterrupted run.
async fn check_restores(t: &weir_connectors::TableDescriptor, parallelism: usize) -> Result<()> {
    let registry = ConnectorRegistry::with_defaults();
    let factory = registry.source(t)?;
    for subtask in 0..parallelism {
        let whole = run_source(factory.as_ref(), subtask, parallelism).await?;
        whole.result?;
        let expected = rows_by_split(&whole.batches)?;
        let mut cuts = 0;
        for after in 1..=whole.batches.len() {
            let Some(cut) =
                run_until_checkpoint(factory.as_ref(), subtask, parallelism, None, after).await?
            else {
                continue;
            };
            cuts += 1;
            let rest = run_restored(factory.as_ref(), subtask, parallelism, &cut.positions).await?;
            let mut joined = cut.batches;
            joined.extend(rest);
            assert_eq!(
                rows_by_split(&joined)?,
                expected,
                "subtask {subtask}, cut after {after} batches at {:?}",
                cut.positions
            );
        }
        assert!(cuts > 0, "subtask {subtask} never reached a checkpoint");
    }
    Ok(())
}

#[tokio::test]
async fn restored_json_and_csv_files_continue_at_the_checkpointed_byte() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| WeirError::io("tempdir", e))?;
    let json = dir.path().join("json");
    std::fs::create_dir(&json).map_err(|e| WeirError::io("mkdir", e))?;
    let files: [(&str, Vec<String>); 3] = [
        (
            "a.json",
            ["{\"id\": 1}", "{\"id\": 2}", "oops", "", "{\"id\": 3}\r"]
                .map(String::from)
                .to_vec(),
        ),
        (
            "b.json",
            vec!["{\"id\": 10}".to_string(), "{\"id\": 11}".to_string()],
        ),
        (
            "c.json",
            (20..33).map(|i| format!("{{\"id\": {i}}}")).collect(),
        ),
    ];
    for (name, lines) in files {
        std::fs::write(json.join(name), lines.join("\n")).map_err(|e| WeirError::io("write", e))?;
    }
    let id = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
    for parallelism in [1, 2] {
        let t = table(
            "t",
            id.clone(),
            &[
                ("connector", "filesystem"),
                ("path", &path_str(&json)),
                ("format", "json"),
                ("batch.size", "2"),
            ],
        );
        check_restores(&t, parallelism).await?;
    }

    let csv = dir.path().join("t.csv");
    std::fs::write(
        &csv,
        "id,s\n1,a\n2,\"two\nlines\"\nx,bad\n3,c\n4,\"d,e\"\n5,f\n6,g\n7\n8,h\n",
    )
    .map_err(|e| WeirError::io("write", e))?;
    let two = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("s", DataType::Utf8, true),
    ]));
    for header in ["true", "false"] {
        let t = table(
            "t",
            two.clone(),
            &[
                ("connector", "filesystem"),
                ("path", &path_str(&csv)),
                ("format", "csv"),
                ("csv.ignore-first-line", header),
                ("batch.size", "2"),
            ],
        );
        check_restores(&t, 1).await?;
    }
    Ok(())
}

#[tokio::test]
async fn restored_parquet_files_skip_the_rows_already_read() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| WeirError::io("tempdir", e))?;
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    let file = std::fs::File::create(dir.path().join("t.parquet"))
        .map_err(|e| WeirError::io("create", e))?;
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(7))
        .build();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema.clone(), Some(props))
        .map_err(|e| WeirError::Internal(e.to_string()))?;
    w.write(&RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(Int64Array::from_iter_values(0..30))],
    )?)
    .map_err(|e| WeirError::Internal(e.to_string()))?;
    w.close().map_err(|e| WeirError::Internal(e.to_string()))?;
    let t = table(
        "t",
        schema,
        &[
            ("connector", "filesystem"),
            ("path", &path_str(dir.path())),
            ("format", "parquet"),
            ("batch.size", "4"),
        ],
    );
    check_restores(&t, 1).await
}

#[tokio::test]
async fn bad_checkpointed_file_positions_are_state_errors() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| WeirError::io("tempdir", e))?;
    let file = dir.path().join("t.json");
    std::fs::write(&file, "{\"id\": 1}\n").map_err(|e| WeirError::io("write", e))?;
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
    let t = table(
        "t",
        schema,
        &[
            ("connector", "filesystem"),
            ("path", &path_str(&file)),
            ("format", "json"),
        ],
    );
    let factory = ConnectorRegistry::with_defaults().source(&t)?;
    let mut s = factory.create(0, 1)?;
    let at = |split: &str, position: &str| weir_engine::source::SplitPosition {
        split: split.into(),
        position: position.into(),
    };
    let e = err_text(s.restore_positions(&[at(&path_str(&file), "12")]));
    assert!(e.contains("is not <byte offset>:<line>"), "{e}");
    let e = err_text(s.restore_positions(&[at("/elsewhere.json", "0:0")]));
    assert!(e.contains("not read by this subtask"), "{e}");
    Ok(())
}
