//! Kinesis benchmark: the connector's own cost per record, and Kinesis →
//! windowed query throughput against kinesalite.
//!
//! ```sh
//! cargo run --release -p weir-connectors --example kinesis_bench -- overhead
//! eval "$(bash .ci/kinesis.sh start)"
//! cargo run --release -p weir-connectors --example kinesis_bench -- e2e 200000
//! bash .ci/kinesis.sh stop
//! ```
//!
//! `overhead` needs no emulator: it decodes pre-built GetRecords pages
//! (10 000 JSON records each, as Kinesis returns them) into batches with
//! metadata columns and slices them over watermark lanes, exactly as the
//! source does after a GetRecords call; and it encodes batches into
//! PutRecords entries as the sink does. `e2e` loads N records into a
//! 4-shard kinesalite stream, then measures (1) how fast the emulator
//! alone serves them (GetRecords over all shards, no decoding) and (2) a
//! bounded TUMBLE query over the stream, end to end. The emulator is the
//! ceiling of (2); (1) shows where it is.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use weir_connectors::kinesis::client::{KinesisRecord, PutEntry};
use weir_connectors::kinesis::decode::PageDecoder;
use weir_connectors::kinesis::options::{KinesisSinkOptions, RecordFormat};
use weir_connectors::kinesis::shards::Lanes;
use weir_connectors::kinesis::sink::{RecordWriter, RowEncoder};
use weir_connectors::{MetadataColumn, TableDescriptor};
use weir_engine::runtime::{Job, JobConfig};
use weir_engine::{Result, WeirError};
use weir_queries::collect::CollectSink;
use weir_queries::{plan_script, PlanOptions};

const BASE_MS: i64 = 1_767_225_600_000;

fn event(i: usize) -> (String, String) {
    let key = format!("key-{}", i % 1000);
    let ts = BASE_MS + (i as i64) / 10;
    (
        key.clone(),
        format!(
            r#"{{"k":"{key}","n":{i},"price":{}.25,"ts":{ts}}}"#,
            i % 977
        ),
    )
}

fn table(options: BTreeMap<String, String>) -> TableDescriptor {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, true),
        Field::new("n", DataType::Int64, true),
        Field::new("price", DataType::Float64, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
    ]));
    let mut t = TableDescriptor::new("events", schema, options);
    t.metadata = vec![
        MetadataColumn {
            name: "shard".into(),
            key: "shard_id".into(),
            data_type: DataType::Utf8,
        },
        MetadataColumn {
            name: "seq".into(),
            key: "sequence_number".into(),
            data_type: DataType::Utf8,
        },
    ];
    t
}

/// Decode + batch + lane slicing of pre-fetched pages; sink encoding.
fn overhead() -> Result<()> {
    let pages: Vec<Vec<KinesisRecord>> = (0..20)
        .map(|p| {
            (0..10_000)
                .map(|i| {
                    let n = p * 10_000 + i;
                    let (k, d) = event(n);
                    KinesisRecord {
                        data: d.into_bytes(),
                        sequence_number: format!(
                            "4959033827149025660855969253836157109592157598913{n:07}"
                        ),
                        partition_key: k,
                        arrival_ms: Some(BASE_MS + n as i64),
                    }
                })
                .collect()
        })
        .collect();
    let records: usize = pages.iter().map(Vec::len).sum();
    let bytes: usize = pages.iter().flatten().map(|r| r.data.len()).sum();
    let t = table(BTreeMap::new());
    let mut decoder = PageDecoder::new(&t, &RecordFormat::Json(Default::default()))?;
    let mut lanes = Lanes::new(2);
    lanes.assign(&[("shardId-000000000000".to_string(), Vec::new())]);
    // Warm up once, then measure 5 rounds.
    let mut best = f64::MAX;
    let mut rows = 0;
    for round in 0..6 {
        let start = Instant::now();
        rows = 0;
        for page in &pages {
            let decoded = decoder.decode("shardId-000000000000", page)?;
            if let Some(b) = decoded.batch {
                let l = lanes.of("shardId-000000000000").len();
                let half = b.num_rows() / l;
                for j in 0..l {
                    let s = b.slice(
                        j * half,
                        if j + 1 == l {
                            b.num_rows() - j * half
                        } else {
                            half
                        },
                    );
                    rows += s.num_rows();
                }
            }
        }
        let secs = start.elapsed().as_secs_f64();
        if round > 0 {
            best = best.min(secs);
        }
    }
    assert_eq!(rows, records);
    println!(
        "source overhead: {records} records ({:.1} MB JSON) decoded + metadata + lane slices: \
         {:.0} ns/record, {:.2} M records/s on one core",
        bytes as f64 / 1e6,
        best * 1e9 / records as f64,
        records as f64 / best / 1e6
    );

    // Sink: rows → PutRecords entries (JSON data + partition key column).
    let batch = decoder
        .decode("shardId-000000000000", &pages[0])?
        .batch
        .ok_or_else(|| WeirError::Internal("no batch".into()))?;
    let batch = batch.project(&[0, 1, 2, 3])?;
    let mut sink_table = table(BTreeMap::new());
    sink_table.metadata.clear();
    sink_table.options = [
        ("connector", "kinesis"),
        ("stream", "out"),
        ("format", "json"),
        ("sink.partition-key", "k"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let opts = KinesisSinkOptions::parse(&sink_table)?;
    let encoder = RowEncoder::new(&sink_table.schema, &opts)?;
    let mut best = f64::MAX;
    let mut entries: Vec<PutEntry> = Vec::new();
    for round in 0..6 {
        let start = Instant::now();
        for _ in 0..10 {
            entries = encoder.encode(&batch)?;
        }
        let secs = start.elapsed().as_secs_f64() / 10.0;
        if round > 0 {
            best = best.min(secs);
        }
    }
    println!(
        "sink overhead: {} rows encoded to PutRecords entries (JSON + key): {:.0} ns/record, {:.2} M records/s",
        entries.len(),
        best * 1e9 / entries.len() as f64,
        entries.len() as f64 / best / 1e6
    );
    Ok(())
}

async fn e2e(endpoint: &str, n: usize) -> Result<()> {
    let aws = weir_connectors::kinesis::options::AwsOptions {
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint.to_string()),
        credentials: weir_connectors::kinesis::options::Credentials::Basic {
            access_key_id: "weir".into(),
            secret_key: "weir".into(),
        },
    };
    let client = weir_connectors::kinesis::client::connect(&aws).await?;
    let stream = format!("bench-{}", std::process::id());
    client
        .create_stream()
        .stream_name(&stream)
        .shard_count(4)
        .send()
        .await
        .map_err(|e| WeirError::external("CreateStream", e))?;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    // Load with the connector's own writer (4 writers in parallel).
    let api: Arc<dyn weir_connectors::kinesis::KinesisApi> =
        Arc::new(weir_connectors::kinesis::AwsKinesis::new(client.clone()));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..4 {
        let writer = RecordWriter::new(
            api.clone(),
            stream.clone(),
            500,
            5 << 20,
            20,
            weir_connectors::kinesis::options::Backoff {
                base: std::time::Duration::from_millis(50),
                max: std::time::Duration::from_secs(2),
                exp: 2.0,
            },
            false,
        );
        let entries: Vec<PutEntry> = (0..n)
            .filter(|i| i % 4 == w)
            .map(|i| {
                let (k, d) = event(i);
                PutEntry {
                    data: d.into_bytes(),
                    partition_key: k,
                }
            })
            .collect();
        tasks.push(tokio::spawn(async move { writer.write_all(entries).await }));
    }
    for t in tasks {
        t.await.map_err(|e| WeirError::Internal(e.to_string()))??;
    }
    let load = start.elapsed().as_secs_f64();
    println!(
        "load: {n} records put into 4 shards in {load:.2} s ({:.0} records/s, kinesalite PutRecords)",
        n as f64 / load
    );

    // (1) The emulator alone: GetRecords over every shard, no decoding.
    let start = Instant::now();
    let mut read = 0usize;
    let shards = client
        .list_shards()
        .stream_name(&stream)
        .send()
        .await
        .map_err(|e| WeirError::external("ListShards", e))?;
    let mut handles = Vec::new();
    for s in shards.shards() {
        let c = client.clone();
        let stream = stream.clone();
        let id = s.shard_id().to_string();
        handles.push(tokio::spawn(async move {
            let mut count = 0usize;
            let mut it = c
                .get_shard_iterator()
                .stream_name(&stream)
                .shard_id(&id)
                .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
                .send()
                .await
                .map_err(|e| WeirError::external("GetShardIterator", e))?
                .shard_iterator()
                .map(str::to_string);
            while let Some(i) = it {
                let r = c
                    .get_records()
                    .shard_iterator(i)
                    .limit(10_000)
                    .send()
                    .await
                    .map_err(|e| WeirError::external("GetRecords", e))?;
                count += r.records().len();
                if r.records().is_empty() {
                    break;
                }
                it = r.next_shard_iterator().map(str::to_string);
            }
            Ok::<usize, WeirError>(count)
        }));
    }
    for h in handles {
        read += h.await.map_err(|e| WeirError::Internal(e.to_string()))??;
    }
    let raw = start.elapsed().as_secs_f64();
    println!(
        "emulator ceiling: {read} records read with bare GetRecords (4 shards in parallel) in {raw:.2} s = {:.0} records/s",
        read as f64 / raw
    );

    // (2) Kinesis → TUMBLE query, bounded, parallelism 1 and 2.
    for parallelism in [1usize, 2] {
        let sql = format!(
            "CREATE TABLE events (k STRING, n BIGINT, price DOUBLE, ts TIMESTAMP(3), \
               WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH ( \
               'connector' = 'kinesis', 'stream' = '{stream}', 'aws.region' = 'us-east-1', \
               'aws.endpoint' = '{endpoint}', 'aws.credentials.provider' = 'BASIC', \
               'aws.credentials.basic.accesskeyid' = 'weir', 'aws.credentials.basic.secretkey' = 'weir', \
               'format' = 'json', 'scan.bounded' = 'true', 'scan.shard.getrecords.intervalmillis' = '0');\n\
             SELECT k, window_start, window_end, COUNT(*) AS c, SUM(price) AS total \
             FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '10' SECOND)) \
             GROUP BY k, window_start, window_end;"
        );
        let sink = CollectSink::new();
        let options = PlanOptions {
            parallelism,
            select_sink: Some(Arc::new(sink.clone())),
            ..PlanOptions::new()
        };
        let planned = plan_script(&sql, &options)?;
        let job = Job::new(planned.graph, JobConfig::default())?;
        let start = Instant::now();
        job.run().await?;
        let secs = start.elapsed().as_secs_f64();
        let out: usize = sink.batches().iter().map(|b| b.num_rows()).sum();
        println!(
            "query (parallelism {parallelism}): {n} records → {out} window rows in {secs:.2} s = {:.0} records/s end to end",
            n as f64 / secs
        );
    }
    client
        .delete_stream()
        .stream_name(&stream)
        .send()
        .await
        .map_err(|e| WeirError::external("DeleteStream", e))?;
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("overhead");
    match mode {
        "overhead" => overhead(),
        "e2e" => {
            let n = args
                .get(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(200_000usize);
            let endpoint = std::env::var("WEIR_KINESALITE_ENDPOINT").map_err(|_| {
                WeirError::Config(
                    "set WEIR_KINESALITE_ENDPOINT (eval \"$(bash .ci/kinesis.sh start)\")".into(),
                )
            })?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| WeirError::io("runtime", e))?;
            rt.block_on(e2e(&endpoint, n))
        }
        other => Err(WeirError::Config(format!(
            "unknown mode '{other}' (overhead | e2e [N])"
        ))),
    }
}
