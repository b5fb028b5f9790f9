//! Prepares and inspects the streams of `queries/examples/kinesis/` on an
//! emulator (`WEIR_KINESALITE_ENDPOINT`, e.g. from `.ci/kinesis.sh start`).
//!
//! ```sh
//! cargo run -p weir-connectors --example kinesis_demo -- setup   # streams + 10 000 orders
//! cargo run -p weir-connectors --example kinesis_demo -- show    # what the query wrote
//! ```

use std::sync::Arc;
use std::time::Duration;

use weir_connectors::kinesis::client::{connect, PutEntry};
use weir_connectors::kinesis::options::{AwsOptions, Backoff, Credentials};
use weir_connectors::kinesis::sink::RecordWriter;
use weir_connectors::kinesis::{AwsKinesis, KinesisApi};
use weir_engine::{Result, WeirError};

const CUSTOMERS: [&str; 5] = ["ada", "bo", "cy", "di", "ed"];

async fn setup(client: aws_sdk_kinesis::Client) -> Result<()> {
    for (name, shards) in [("orders", 4), ("customer-minutes", 1)] {
        client
            .create_stream()
            .stream_name(name)
            .shard_count(shards)
            .send()
            .await
            .map_err(|e| WeirError::external(format!("creating stream {name}"), e))?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let api: Arc<dyn KinesisApi> = Arc::new(AwsKinesis::new(client));
    let writer = RecordWriter::new(
        api,
        "orders",
        500,
        5 << 20,
        10,
        Backoff {
            base: Duration::from_millis(50),
            max: Duration::from_secs(2),
            exp: 2.0,
        },
        false,
    );
    // 10 000 orders over ~5 minutes of event time from 2026-01-01 00:00.
    let entries: Vec<PutEntry> = (0..10_000u64)
        .map(|i| {
            let customer = CUSTOMERS[(i % 5) as usize];
            let secs = i * 3 / 100;
            let data = format!(
                r#"{{"order_id":{i},"customer":"{customer}","amount":{}.5,"ts":"2026-01-01 00:{:02}:{:02}.000"}}"#,
                i % 50,
                secs / 60,
                secs % 60
            );
            PutEntry {
                data: data.into_bytes(),
                partition_key: customer.to_string(),
            }
        })
        .collect();
    writer.write_all(entries).await?;
    println!("streams 'orders' (4 shards, 10000 orders) and 'customer-minutes' ready");
    Ok(())
}

async fn show(client: aws_sdk_kinesis::Client) -> Result<()> {
    let shards = client
        .list_shards()
        .stream_name("customer-minutes")
        .send()
        .await
        .map_err(|e| WeirError::external("ListShards", e))?;
    for s in shards.shards() {
        let mut it = client
            .get_shard_iterator()
            .stream_name("customer-minutes")
            .shard_id(s.shard_id())
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .map_err(|e| WeirError::external("GetShardIterator", e))?
            .shard_iterator()
            .map(str::to_string);
        while let Some(i) = it {
            let r = client
                .get_records()
                .shard_iterator(i)
                .send()
                .await
                .map_err(|e| WeirError::external("GetRecords", e))?;
            for rec in r.records() {
                println!("{}", String::from_utf8_lossy(rec.data().as_ref()));
            }
            if r.records().is_empty() {
                break;
            }
            it = r.next_shard_iterator().map(str::to_string);
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    let endpoint = std::env::var("WEIR_KINESALITE_ENDPOINT").map_err(|_| {
        WeirError::Config(
            "set WEIR_KINESALITE_ENDPOINT (eval \"$(bash .ci/kinesis.sh start)\")".into(),
        )
    })?;
    let aws = AwsOptions {
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint),
        credentials: Credentials::Basic {
            access_key_id: "local".into(),
            secret_key: "local".into(),
        },
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| WeirError::io("runtime", e))?;
    rt.block_on(async {
        let client = connect(&aws).await?;
        match std::env::args().nth(1).as_deref() {
            Some("setup") => setup(client).await,
            Some("show") => show(client).await,
            _ => Err(WeirError::Config("usage: kinesis_demo setup | show".into())),
        }
    })
}
