//! Kinesis tables in SQL scripts planned by `weir_queries::plan_script` and
//! run by the engine: a TUMBLE window over a 4-shard stream gives exactly
//! the rows it gives over the same events in a JSON file; a query keeps
//! every key's order while the stream is split and merged under it.

mod kinesis_support;

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use kinesis_support::{client, create_stream, emulator, put, unique_stream, wait_active, Kind};
use weir_engine::runtime::{Job, JobConfig};
use weir_engine::{Result, WeirError};
use weir_queries::collect::{format_rows, CollectSink};
use weir_queries::{plan_script, PlanOptions};

const BASE_MS: i64 = 1_767_225_600_000;

/// Events of `keys` keys, `per_key` each; record i of a key has n = i and
/// event time BASE + i × 700 ms (so windows of 10 s hold ~14 per key).
fn events(keys: usize, from: usize, to: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for i in from..to {
        for k in 0..keys {
            let key = format!("key-{k}");
            let ts = BASE_MS + (i as i64) * 700 + k as i64;
            out.push((key.clone(), format!(r#"{{"k":"{key}","n":{i},"ts":{ts}}}"#)));
        }
    }
    out
}

fn kinesis_with(endpoint: &str, stream: &str, extra: &str) -> String {
    format!(
        "'connector' = 'kinesis', 'stream' = '{stream}', 'aws.region' = 'us-east-1', \
         'aws.endpoint' = '{endpoint}', 'aws.credentials.provider' = 'BASIC', \
         'aws.credentials.basic.accesskeyid' = 'weir', 'aws.credentials.basic.secretkey' = 'weir', \
         'format' = 'json', 'scan.shard.getrecords.intervalmillis' = '10'{extra}"
    )
}

async fn run_script(sql: &str, parallelism: usize) -> Result<Vec<Vec<String>>> {
    let sink = CollectSink::new();
    let options = PlanOptions {
        parallelism,
        select_sink: Some(Arc::new(sink.clone())),
        ..PlanOptions::new()
    };
    let planned = plan_script(sql, &options)?;
    Job::new(planned.graph, JobConfig::default())?.run().await?;
    let mut rows = format_rows(&sink.batches())?;
    rows.sort();
    Ok(rows)
}

const WINDOW_QUERY: &str =
    "SELECT k, window_start, window_end, COUNT(*) AS c, SUM(n) AS s, MAX(ts) AS last_ts \
     FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '10' SECOND)) \
     GROUP BY k, window_start, window_end";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tumble_over_kinesis_gives_the_rows_of_the_same_events_in_a_json_file() -> Result<()> {
    let Some(emu) = emulator(Kind::Kinesalite) else {
        return Ok(());
    };
    let c = client(&emu.endpoint).await?;
    let stream = unique_stream("sql-tumble");
    create_stream(&c, &stream, 4).await?;
    let data = events(16, 0, 60);
    put(&c, &stream, &data).await?;

    let dir = tempfile::tempdir().map_err(|e| WeirError::io("tempdir", e))?;
    let file = dir.path().join("events.json");
    let mut f = std::fs::File::create(&file).map_err(|e| WeirError::io("create", e))?;
    for (_, line) in &data {
        writeln!(f, "{line}").map_err(|e| WeirError::io("write", e))?;
    }
    drop(f);

    let columns =
        "k STRING, n BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND";
    let kinesis_sql = format!(
        "CREATE TABLE events ({columns}) WITH ({});\n{WINDOW_QUERY};",
        kinesis_with(&emu.endpoint, &stream, ", 'scan.bounded' = 'true'")
    );
    let file_sql = format!(
        "CREATE TABLE events ({columns}) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');\n{WINDOW_QUERY};",
        file.display()
    );
    let from_kinesis = run_script(&kinesis_sql, 2).await?;
    let from_file = run_script(&file_sql, 1).await?;
    // 16 keys, 60 events each over 42 s: 5 windows per key.
    assert_eq!(from_file.len(), 16 * 5, "{from_file:?}");
    assert_eq!(from_kinesis, from_file);
    Ok(())
}

/// The rows of a collect sink as (k, n, shard), in arrival order.
fn collected(batches: &[RecordBatch]) -> Result<Vec<(String, i64, String)>> {
    let mut out = Vec::new();
    for b in batches {
        let col = |i: usize| {
            b.columns()
                .get(i)
                .cloned()
                .ok_or_else(|| WeirError::Internal("column".into()))
        };
        let (k, n, s) = (col(0)?, col(1)?, col(2)?);
        let (k, n, s) = (
            k.as_string::<i32>(),
            n.as_primitive::<Int64Type>(),
            s.as_string::<i32>(),
        );
        for r in 0..b.num_rows() {
            out.push((k.value(r).to_string(), n.value(r), s.value(r).to_string()));
        }
    }
    Ok(out)
}

async fn shard_ids(
    c: &aws_sdk_kinesis::Client,
    stream: &str,
) -> Result<Vec<(String, bool, Option<u128>, Option<u128>)>> {
    let out = c
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .map_err(|e| WeirError::external("ListShards", e))?;
    Ok(out
        .shards()
        .iter()
        .map(|s| {
            let open = s
                .sequence_number_range()
                .and_then(|r| r.ending_sequence_number())
                .is_none();
            let range = s.hash_key_range();
            (
                s.shard_id().to_string(),
                open,
                range.and_then(|r| r.starting_hash_key().parse().ok()),
                range.and_then(|r| r.ending_hash_key().parse().ok()),
            )
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_and_merge_while_a_query_runs_keep_every_key_in_order() -> Result<()> {
    let Some(emu) = emulator(Kind::Kinesalite) else {
        return Ok(());
    };
    let c = client(&emu.endpoint).await?;
    let stream = unique_stream("sql-reshard");
    create_stream(&c, &stream, 2).await?;
    let keys = 24;
    put(&c, &stream, &events(keys, 0, 20)).await?;

    let sql = format!(
        "SET 'parallelism.default' = '2';\n\
         CREATE TABLE events (k STRING, n BIGINT, ts TIMESTAMP(3), \
           shard STRING METADATA FROM 'shard_id' VIRTUAL, \
           WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH ({});\n\
         SELECT k, n, shard FROM events;",
        kinesis_with(
            &emu.endpoint,
            &stream,
            ", 'scan.shard.discovery.intervalmillis' = '200', 'scan.watermark.idle-timeout' = '500 ms'"
        )
    );
    let sink = CollectSink::new();
    let options = PlanOptions {
        parallelism: 2,
        select_sink: Some(Arc::new(sink.clone())),
        ..PlanOptions::new()
    };
    let planned = plan_script(&sql, &options)?;
    let job = Job::new(planned.graph, JobConfig::default())?;
    let cancel = job.cancel_handle();
    let running = tokio::spawn(job.run());

    let rows = |sink: &CollectSink| sink.batches().iter().map(|b| b.num_rows()).sum::<usize>();
    let wait_rows = |n: usize| {
        let sink = sink.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while rows(&sink) < n {
                if Instant::now() > deadline {
                    return Err(WeirError::Internal(format!(
                        "only {} of {n} rows arrived",
                        rows(&sink)
                    )));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(())
        }
    };
    wait_rows(1).await?;

    // Split shard 0 at the middle of its hash range while the query reads.
    let shards = shard_ids(&c, &stream).await?;
    let (first, _, lo, hi) = shards
        .first()
        .cloned()
        .ok_or_else(|| WeirError::Internal("no shard".into()))?;
    let (lo, hi) = (lo.unwrap_or(0), hi.unwrap_or(u128::MAX));
    let middle = lo + (hi - lo) / 2;
    c.split_shard()
        .stream_name(&stream)
        .shard_to_split(&first)
        .new_starting_hash_key(middle.to_string())
        .send()
        .await
        .map_err(|e| WeirError::external("SplitShard", e))?;
    wait_active(&c, &stream).await?;
    put(&c, &stream, &events(keys, 20, 40)).await?;

    // Merge the two children back.
    let children: Vec<String> = shard_ids(&c, &stream)
        .await?
        .into_iter()
        .filter(|(id, open, _, _)| *open && *id != "shardId-000000000001")
        .map(|(id, ..)| id)
        .collect();
    assert_eq!(children.len(), 2, "{children:?}");
    c.merge_shards()
        .stream_name(&stream)
        .shard_to_merge(&children[0])
        .adjacent_shard_to_merge(&children[1])
        .send()
        .await
        .map_err(|e| WeirError::external("MergeShards", e))?;
    wait_active(&c, &stream).await?;
    put(&c, &stream, &events(keys, 40, 60)).await?;

    let total = keys * 60;
    let waited = wait_rows(total).await;
    cancel.cancel();
    running
        .await
        .map_err(|e| WeirError::Internal(e.to_string()))??;
    waited?;

    let got = collected(&sink.batches())?;
    assert_eq!(got.len(), total, "every record exactly once");
    let mut next: HashMap<&str, i64> = HashMap::new();
    for (k, n, _) in &got {
        let want = next.entry(k.as_str()).or_insert(0);
        assert_eq!(*n, *want, "key {k} out of order");
        *want += 1;
    }
    // Records were read from the parents, the split's children and the merge's child.
    let mut seen: Vec<&str> = got.iter().map(|(_, _, s)| s.as_str()).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen,
        vec![
            "shardId-000000000000",
            "shardId-000000000001",
            "shardId-000000000002",
            "shardId-000000000003",
            "shardId-000000000004",
        ]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_script_runs_and_writes_its_windows_to_kinesis() -> Result<()> {
    let Some(emu) = emulator(Kind::Kinesalite) else {
        return Ok(());
    };
    let path =
        kinesis_support::manifest_dir().join("../queries/examples/kinesis/orders_per_minute.sql");
    let script =
        std::fs::read_to_string(&path).map_err(|e| WeirError::io("reading the example", e))?;
    let c = client(&emu.endpoint).await?;
    let (orders, out) = (unique_stream("orders"), unique_stream("customer-minutes"));
    create_stream(&c, &orders, 4).await?;
    create_stream(&c, &out, 1).await?;
    let customers = ["ada", "bo", "cy", "di", "ed"];
    let data: Vec<(String, String)> = (0..10_000u64)
        .map(|i| {
            let customer = customers[(i % 5) as usize];
            let secs = i * 3 / 100;
            (
                customer.to_string(),
                format!(
                    r#"{{"order_id":{i},"customer":"{customer}","amount":{}.5,"ts":"2026-01-01 00:{:02}:{:02}.000"}}"#,
                    i % 50,
                    secs / 60,
                    secs % 60
                ),
            )
        })
        .collect();
    put(&c, &orders, &data).await?;
    let sql = script
        .replace("http://127.0.0.1:4567", &emu.endpoint)
        .replace("'stream' = 'orders'", &format!("'stream' = '{orders}'"))
        .replace(
            "'stream' = 'customer-minutes'",
            &format!("'stream' = '{out}'"),
        );
    let planned = plan_script(&sql, &PlanOptions::new())?;
    Job::new(planned.graph, JobConfig::default())?.run().await?;
    let mut rows: Vec<String> = kinesis_support::read_all(&c, &out)
        .await?
        .into_iter()
        .map(|(_, key, data)| format!("{key} {data}"))
        .collect();
    rows.sort();
    // 5 customers × 5 one-minute windows, 400 orders each.
    assert_eq!(rows.len(), 25, "{rows:?}");
    assert!(
        rows.iter().all(|r| r.contains(r#""orders":400"#)),
        "{rows:?}"
    );
    assert_eq!(
        rows[0],
        r#"ada {"customer":"ada","window_start":"2026-01-01 00:00:00.000","window_end":"2026-01-01 00:01:00.000","orders":400,"total":9200.0}"#
    );
    Ok(())
}
