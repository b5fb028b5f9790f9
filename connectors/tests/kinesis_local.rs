//! The Kinesis source against kinesis-local (kinesis-mock), which has what
//! kinesalite lacks: `UpdateShardCount`, and `ChildShards` in the last
//! GetRecords page of a closed shard. Small record counts: kinesis-mock
//! slows down as shards fill.

mod kinesis_support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::AsArray;
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use async_trait::async_trait;
use aws_sdk_kinesis::types::ScalingType;
use kinesis_support::{
    client, create_stream, emulator, options, put, run_subtasks, unique_stream, wait_active, Kind,
};
use weir_connectors::kinesis::client::{
    ApiResult, IteratorStart, KinesisApi, PutEntry, PutOutcome, RecordsPage, ShardDescription,
};
use weir_connectors::kinesis::KinesisConnector;
use weir_connectors::{MetadataColumn, TableDescriptor};
use weir_engine::{Result, WeirError};

/// Counts the GetRecords pages that announced child shards.
struct CountChildren {
    inner: Arc<dyn KinesisApi>,
    announced: Arc<AtomicU64>,
}

#[async_trait]
impl KinesisApi for CountChildren {
    async fn list_shards(&self, stream: &str) -> ApiResult<Vec<ShardDescription>> {
        self.inner.list_shards(stream).await
    }
    async fn get_shard_iterator(
        &self,
        stream: &str,
        shard_id: &str,
        start: &IteratorStart,
    ) -> ApiResult<String> {
        self.inner.get_shard_iterator(stream, shard_id, start).await
    }
    async fn get_records(&self, iterator: &str, limit: u32) -> ApiResult<RecordsPage> {
        let page = self.inner.get_records(iterator, limit).await?;
        if !page.child_shards.is_empty() {
            self.announced.fetch_add(1, Ordering::SeqCst);
        }
        Ok(page)
    }
    async fn put_records(&self, stream: &str, entries: &[PutEntry]) -> ApiResult<Vec<PutOutcome>> {
        self.inner.put_records(stream, entries).await
    }
}

fn events(keys: usize, from: usize, to: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for i in from..to {
        for k in 0..keys {
            out.push((format!("key-{k}"), format!(r#"{{"k":"key-{k}","n":{i}}}"#)));
        }
    }
    out
}

async fn update_shard_count(c: &aws_sdk_kinesis::Client, stream: &str, n: i32) -> Result<()> {
    c.update_shard_count()
        .stream_name(stream)
        .target_shard_count(n)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
        .map_err(|e| WeirError::external("UpdateShardCount", e))?;
    // The stream reports UPDATING first, then ACTIVE.
    tokio::time::sleep(Duration::from_millis(100)).await;
    wait_active(c, stream).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_shard_count_children_read_after_their_parents() -> Result<()> {
    let Some(emu) = emulator(Kind::KinesisLocal) else {
        return Ok(());
    };
    let c = client(&emu.endpoint).await?;
    let stream = unique_stream("resize");
    create_stream(&c, &stream, 1).await?;
    let keys = 8;
    put(&c, &stream, &events(keys, 0, 5)).await?;

    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, true),
        Field::new("n", DataType::Int64, true),
    ]));
    let mut table = TableDescriptor::new(
        "t",
        schema,
        options(
            &emu.endpoint,
            &stream,
            &[
                ("format", "json"),
                ("scan.shard.getrecords.intervalmillis", "20"),
                ("scan.shard.discovery.intervalmillis", "60000"),
            ],
        ),
    );
    table.metadata = vec![MetadataColumn {
        name: "shard".into(),
        key: "shard_id".into(),
        data_type: DataType::Utf8,
    }];
    let announced = Arc::new(AtomicU64::new(0));
    let counter = announced.clone();
    let factory = KinesisConnector::source_factory(&table)?.with_api_wrapper(Arc::new(
        move |inner: Arc<dyn KinesisApi>| -> Arc<dyn KinesisApi> {
            Arc::new(CountChildren {
                inner,
                announced: counter.clone(),
            })
        },
    ));
    let total = keys * 15;
    let runner = tokio::spawn(run_subtasks(
        Arc::new(factory),
        1,
        Some(total),
        Duration::from_secs(90),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    update_shard_count(&c, &stream, 2).await?;
    put(&c, &stream, &events(keys, 5, 10)).await?;
    update_shard_count(&c, &stream, 1).await?;
    put(&c, &stream, &events(keys, 10, 15)).await?;

    let runs = runner
        .await
        .map_err(|e| WeirError::Internal(e.to_string()))??;
    if let Err(e) = &runs[0].result {
        return Err(WeirError::Internal(format!("source failed: {e}")));
    }
    let mut got: Vec<(String, i64, String)> = Vec::new();
    for (split, b) in &runs[0].batches {
        assert!(*split < runs[0].split_count);
        let (k, n, s) = (
            b.column(0).as_string::<i32>(),
            b.column(1).as_primitive::<Int64Type>(),
            b.column(2).as_string::<i32>(),
        );
        for r in 0..b.num_rows() {
            got.push((k.value(r).to_string(), n.value(r), s.value(r).to_string()));
        }
    }
    assert_eq!(got.len(), total, "every record exactly once");
    let mut next: HashMap<&str, i64> = HashMap::new();
    for (k, n, _) in &got {
        let want = next.entry(k.as_str()).or_insert(0);
        assert_eq!(*n, *want, "key {k} out of order");
        *want += 1;
    }
    let mut shards: Vec<&str> = got.iter().map(|(_, _, s)| s.as_str()).collect();
    shards.sort();
    shards.dedup();
    // 1 → 2 (two children of shard 0) → 1 (their merge): four shards read.
    assert_eq!(shards.len(), 4, "{shards:?}");
    // The children were announced by GetRecords (discovery was set to a
    // minute, so they came from ChildShards or the listing made at a
    // shard's end).
    assert!(announced.load(Ordering::SeqCst) >= 1);
    // Positions: every shard read, the closed ones at SHARD_END.
    let ends = runs[0]
        .positions
        .iter()
        .filter(|p| p.position.starts_with("SHARD_END:"))
        .count();
    assert_eq!(ends, 3, "{:?}", runs[0].positions);
    Ok(())
}
