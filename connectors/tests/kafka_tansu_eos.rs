//! Exactly-once Kafka output against a real broker, tansu, read through a
//! committed-view reader that does not trust the broker's aborted list
//! (`tansu_support::committed_view`; tansu 0.6 sends none, so librdkafka's
//! `read_committed` consumer would show aborted records).
//!
//! First the reader itself, against tansu with librdkafka transactional
//! producers (commit, abort, open, interleaved producers on one
//! partition); then the exactly-once sink: visibility only after the
//! checkpoint completes, recovery after a crash between pre-commit and
//! commit (and after the commit), fencing of a previous incarnation, and
//! the transaction-timeout check.
//!
//! The broker is `$WEIR_TANSU_BOOTSTRAP` or a tansu started per test; the
//! tests skip without one, or fail when `$WEIR_REQUIRE_BROKERS` is set.

mod common;
mod kafka_support;
mod tansu_support;

use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use weir_connectors::kafka::produce::ensure_topic;
use weir_connectors::ConnectorRegistry;
use weir_engine::sink::{SinkFactory, SinkRecovery};
use weir_engine::{Result, WeirError};

use common::table;
use kafka_support::{init_log, kafka_options};
use tansu_support::{broker, committed_view, unique, PartitionLog};

fn ext(what: &str) -> impl FnOnce(rdkafka::error::KafkaError) -> WeirError + '_ {
    move |e| WeirError::external(what, e)
}

/// A librdkafka producer, transactional when `txn_id` is given.
fn producer(bootstrap: &str, txn_id: Option<&str>) -> Result<BaseProducer> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap).set("linger.ms", "0");
    if let Some(id) = txn_id {
        c.set("transactional.id", id);
    }
    let p: BaseProducer = c.create().map_err(ext("producer"))?;
    if txn_id.is_some() {
        p.init_transactions(Duration::from_secs(30))
            .map_err(ext("init_transactions"))?;
    }
    Ok(p)
}

/// Sends `value` to partition 0 of `topic` and waits for its delivery, so
/// that records of several producers land in the order of the calls.
fn send(p: &BaseProducer, topic: &str, value: &str) -> Result<()> {
    p.send(
        BaseRecord::<'_, str, str>::to(topic)
            .partition(0)
            .key(value)
            .payload(value),
    )
    .map_err(|(e, _)| WeirError::external("send", e))?;
    p.flush(Duration::from_secs(30)).map_err(ext("flush"))
}

fn begin(p: &BaseProducer) -> Result<()> {
    p.begin_transaction().map_err(ext("begin"))
}

fn commit(p: &BaseProducer) -> Result<()> {
    p.commit_transaction(Duration::from_secs(30))
        .map_err(ext("commit"))
}

fn abort(p: &BaseProducer) -> Result<()> {
    p.abort_transaction(Duration::from_secs(30))
        .map_err(ext("abort"))
}

/// Partition 0's log of `topic`.
fn log0(bootstrap: &str, topic: &str) -> Result<PartitionLog> {
    committed_view(bootstrap, topic, 1)?
        .into_iter()
        .next()
        .ok_or_else(|| WeirError::Internal("no partition 0".into()))
}

fn values(log: &PartitionLog) -> Vec<String> {
    log.committed.iter().map(|r| r.text()).collect()
}

/// The reader on tansu: committed, aborted, open and non-transactional
/// records, two transactional producers interleaved on one partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_view_reader_on_tansu() -> Result<()> {
    init_log();
    let Some(b) = broker("committed_view_reader_on_tansu")? else {
        return Ok(());
    };
    let topic = unique("view");
    ensure_topic(&b.bootstrap, &topic, Some(1)).await?;
    let bs = b.bootstrap.clone();
    let t = topic.clone();
    tokio::task::spawn_blocking(move || -> Result<()> {
        let plain = producer(&bs, None)?;
        let a = producer(&bs, Some(&format!("{t}-a")))?;
        let bb = producer(&bs, Some(&format!("{t}-b")))?;

        // Committed transaction of A; a non-transactional record.
        begin(&a)?;
        send(&a, &t, "a1")?;
        send(&a, &t, "a2")?;
        commit(&a)?;
        send(&plain, &t, "n1")?;
        let log = log0(&bs, &t)?;
        assert_eq!(values(&log), ["a1", "a2", "n1"]);
        assert_eq!(
            (log.committed_transactions, log.aborted_transactions),
            (1, 0)
        );

        // Aborted transaction of B.
        begin(&bb)?;
        send(&bb, &t, "b1")?;
        abort(&bb)?;
        let log = log0(&bs, &t)?;
        assert_eq!(values(&log), ["a1", "a2", "n1"]);
        assert_eq!((log.aborted_transactions, log.aborted_records), (1, 1));

        // Interleaved: A and B open at once, a plain record between them;
        // A commits, B stays open: B's records are invisible, A's visible.
        begin(&a)?;
        begin(&bb)?;
        send(&a, &t, "a3")?;
        send(&bb, &t, "b2")?;
        send(&plain, &t, "n2")?;
        send(&a, &t, "a4")?;
        send(&bb, &t, "b3")?;
        let log = log0(&bs, &t)?;
        assert_eq!(values(&log), ["a1", "a2", "n1", "n2"], "both open");
        assert_eq!(log.open_records, 4);
        commit(&a)?;
        let log = log0(&bs, &t)?;
        assert_eq!(values(&log), ["a1", "a2", "n1", "a3", "n2", "a4"]);
        assert_eq!(log.open_records, 2, "B's b2, b3");
        // B aborts: nothing of B ever shows.
        abort(&bb)?;
        let log = log0(&bs, &t)?;
        assert_eq!(values(&log), ["a1", "a2", "n1", "a3", "n2", "a4"]);
        assert_eq!(
            (
                log.committed_transactions,
                log.aborted_transactions,
                log.aborted_records,
                log.open_records
            ),
            (2, 2, 3, 0)
        );
        // Offsets are the log's: strictly increasing.
        let offsets: Vec<i64> = log.committed.iter().map(|r| r.offset).collect();
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
        assert_eq!(log.committed[0].key_text(), "a1");

        // Why this reader: librdkafka's read_committed consumer (its
        // default isolation level) shows the aborted records on tansu,
        // whose Fetch responses list no aborted transactions.
        let got = kafka_support::consume(&bs, &t, 1, 9, Duration::from_secs(10))?;
        let mut seen: Vec<String> = got.iter().map(|g| g.text()).collect();
        seen.sort();
        assert_eq!(
            seen,
            ["a1", "a2", "a3", "a4", "b1", "b2", "b3", "n1", "n2"],
            "librdkafka's read_committed view on tansu"
        );
        Ok(())
    })
    .await
    .map_err(|e| WeirError::Internal(e.to_string()))??;
    Ok(())
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]))
}

fn ids_batch(ids: std::ops::Range<i64>) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        schema(),
        vec![Arc::new(arrow::array::Int64Array::from_iter_values(ids))],
    )?)
}

fn exactly_once_sink(
    bootstrap: &str,
    topic: &str,
    prefix: &str,
    extra: &[(&str, &str)],
) -> Result<Arc<dyn SinkFactory>> {
    let mut o = kafka_options(
        bootstrap,
        topic,
        &[
            ("format", "json"),
            ("sink.delivery-guarantee", "exactly-once"),
            ("sink.transactional-id-prefix", prefix),
        ],
    );
    o.extend_from_slice(extra);
    ConnectorRegistry::with_defaults().sink(&table("out", schema(), &o))
}

/// The ids of the committed view of partition 0, in offset order.
async fn committed_ids(bootstrap: &str, topic: &str) -> Result<(Vec<i64>, PartitionLog)> {
    let (b, t) = (bootstrap.to_string(), topic.to_string());
    let log = tokio::task::spawn_blocking(move || log0(&b, &t))
        .await
        .map_err(|e| WeirError::Internal(e.to_string()))??;
    let ids = log
        .committed
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap_or(b""))
                .map_err(|e| WeirError::Internal(format!("not JSON: {e}")))?;
            v["id"]
                .as_i64()
                .ok_or_else(|| WeirError::Internal(format!("no id in {}", r.text())))
        })
        .collect::<Result<Vec<i64>>>()?;
    Ok((ids, log))
}

/// Rows written by the exactly-once sink are invisible until their
/// checkpoint completes; epoch 2, written while checkpoint 1 awaits
/// completion, stays invisible until checkpoint 2 completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_sink_is_invisible_until_the_checkpoint_completes() -> Result<()> {
    init_log();
    let Some(b) = broker("exactly_once_sink_is_invisible_until_the_checkpoint_completes")? else {
        return Ok(());
    };
    let topic = unique("eos-vis");
    ensure_topic(&b.bootstrap, &topic, Some(1)).await?;
    let f = exactly_once_sink(&b.bootstrap, &topic, &unique("vis"), &[])?;
    let mut sink = f.create_checkpointed(0, 1, None)?;
    sink.write_batch(ids_batch(0..3)?).await?;
    sink.pre_commit(1).await?;
    let (ids, log) = committed_ids(&b.bootstrap, &topic).await?;
    assert_eq!(ids, Vec::<i64>::new(), "pre-committed, not committed");
    assert_eq!(log.open_records, 3);
    sink.write_batch(ids_batch(3..5)?).await?;
    sink.commit(1).await?;
    let (ids, log) = committed_ids(&b.bootstrap, &topic).await?;
    assert_eq!(ids, vec![0, 1, 2], "checkpoint 1 completed");
    assert_eq!(log.committed_transactions, 1);
    sink.pre_commit(2).await?;
    assert_eq!(committed_ids(&b.bootstrap, &topic).await?.0, vec![0, 1, 2]);
    sink.commit(2).await?;
    sink.finish().await?;
    let (ids, log) = committed_ids(&b.bootstrap, &topic).await?;
    assert_eq!(ids, vec![0, 1, 2, 3, 4]);
    assert_eq!(
        (
            log.committed_transactions,
            log.aborted_transactions,
            log.open_records
        ),
        (2, 0, 0)
    );
    Ok(())
}

/// A job dropped after checkpoint 1's pre-commit but before its commit
/// (with epoch 2 open): the restarted sink fences and aborts both old
/// transactions and commits checkpoint 1's records again, so each row is
/// in the committed view exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_between_pre_commit_and_commit_gives_each_row_once() -> Result<()> {
    init_log();
    let Some(b) = broker("crash_between_pre_commit_and_commit_gives_each_row_once")? else {
        return Ok(());
    };
    let topic = unique("eos-crash");
    ensure_topic(&b.bootstrap, &topic, Some(1)).await?;
    let f = exactly_once_sink(&b.bootstrap, &topic, &unique("crash"), &[])?;
    let mut old = f.create_checkpointed(0, 1, None)?;
    old.write_batch(ids_batch(0..3)?).await?;
    let state = old.pre_commit(1).await?;
    old.write_batch(ids_batch(3..5)?).await?; // epoch 2, never checkpointed
    drop(old);
    assert_eq!(
        committed_ids(&b.bootstrap, &topic).await?.0,
        Vec::<i64>::new()
    );

    let recovery = SinkRecovery {
        checkpoint_id: 1,
        state,
    };
    let mut new = f.create_checkpointed(0, 1, Some(recovery))?;
    let (ids, log) = committed_ids(&b.bootstrap, &topic).await?;
    assert_eq!(
        ids,
        vec![0, 1, 2],
        "checkpoint 1's records, committed again"
    );
    assert_eq!(
        log.aborted_records, 5,
        "the old incarnation's epochs 1 and 2"
    );
    assert_eq!(log.open_records, 0);
    new.write_batch(ids_batch(5..7)?).await?;
    new.pre_commit(2).await?;
    new.commit(2).await?;
    new.finish().await?;
    let (ids, log) = committed_ids(&b.bootstrap, &topic).await?;
    assert_eq!(ids, vec![0, 1, 2, 5, 6]);
    assert_eq!(log.open_records, 0);
    Ok(())
}

/// A job that crashed after checkpoint 1's commit and restarts from
/// checkpoint 1 (whose snapshot still lists its records) does not commit
/// them a second time: the commit marker committed with the transaction
/// says epoch 1 is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_after_the_commit_does_not_duplicate() -> Result<()> {
    init_log();
    let Some(b) = broker("restart_after_the_commit_does_not_duplicate")? else {
        return Ok(());
    };
    let topic = unique("eos-after");
    ensure_topic(&b.bootstrap, &topic, Some(1)).await?;
    let f = exactly_once_sink(&b.bootstrap, &topic, &unique("after"), &[])?;
    let mut old = f.create_checkpointed(0, 1, None)?;
    old.write_batch(ids_batch(0..3)?).await?;
    let state = old.pre_commit(1).await?;
    assert_eq!(state.get("kafka_pending").map(|b| b.num_rows()), Some(3));
    old.commit(1).await?;
    old.write_batch(ids_batch(3..5)?).await?; // epoch 2, lost in the crash
    drop(old);
    assert_eq!(committed_ids(&b.bootstrap, &topic).await?.0, vec![0, 1, 2]);

    let recovery = SinkRecovery {
        checkpoint_id: 1,
        state,
    };
    let mut new = f.create_checkpointed(0, 1, Some(recovery))?;
    new.write_batch(ids_batch(3..5)?).await?; // the replayed epoch 2
    new.pre_commit(2).await?;
    new.commit(2).await?;
    new.finish().await?;
    let (ids, log) = committed_ids(&b.bootstrap, &topic).await?;
    assert_eq!(ids, vec![0, 1, 2, 3, 4]);
    assert_eq!(log.aborted_records, 2, "the lost epoch 2");
    Ok(())
}

/// Lets librdkafka send what was written (and add its partition to the
/// transaction), as time passes between rows and checkpoints in a job.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// One subtask in steady state: its two transactional producers alternate
/// (epoch `n + 1` is written while epoch `n` awaits its checkpoint), then
/// the process dies with epoch 3 pre-committed and epoch 4 open, and
/// restarts from checkpoint 2. Epoch 2 committed before the crash, so its
/// marker must say so and nothing is committed twice.
///
/// On stock tansu 0.6 this failed: its transaction state is kept per
/// producer epoch, so the next transaction of the same producer turned a
/// commit whose offsets were deferred (another transaction overlapped it)
/// back into an open one, and fencing then aborted it with its marker;
/// epoch 2 was committed again. `.ci/tansu/txn-offsets.patch` commits a
/// transaction's offsets with the transaction, as Kafka does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alternating_transactions_then_a_restart_commit_each_epoch_once() -> Result<()> {
    init_log();
    let Some(b) = broker("alternating_transactions_then_a_restart_commit_each_epoch_once")? else {
        return Ok(());
    };
    let topic = unique("eos-alternate");
    ensure_topic(&b.bootstrap, &topic, Some(1)).await?;
    let f = exactly_once_sink(&b.bootstrap, &topic, &unique("alternate"), &[])?;
    let mut old = f.create_checkpointed(0, 1, None)?;
    old.write_batch(ids_batch(0..2)?).await?; // epoch 1
    settle().await;
    old.pre_commit(1).await?;
    old.write_batch(ids_batch(2..4)?).await?; // epoch 2
    settle().await;
    old.commit(1).await?;
    let state = old.pre_commit(2).await?;
    old.write_batch(ids_batch(4..6)?).await?; // epoch 3
    settle().await;
    old.commit(2).await?;
    old.pre_commit(3).await?;
    old.write_batch(ids_batch(6..8)?).await?; // epoch 4
    settle().await;
    drop(old); // checkpoint 3 never completes
    assert_eq!(
        committed_ids(&b.bootstrap, &topic).await?.0,
        vec![0, 1, 2, 3]
    );

    let recovery = SinkRecovery {
        checkpoint_id: 2,
        state,
    };
    let mut new = f.create_checkpointed(0, 1, Some(recovery))?;
    new.write_batch(ids_batch(4..8)?).await?; // epochs 3 and 4, replayed
    new.pre_commit(3).await?;
    new.commit(3).await?;
    new.finish().await?;
    let (ids, _) = committed_ids(&b.bootstrap, &topic).await?;
    assert_eq!(ids, (0..8).collect::<Vec<_>>());
    Ok(())
}

/// A new incarnation with the same transactional ids fences the old one:
/// the old incarnation's commit fails, and its records never become
/// visible.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_sink_fences_the_previous_incarnation() -> Result<()> {
    init_log();
    let Some(b) = broker("a_restarted_sink_fences_the_previous_incarnation")? else {
        return Ok(());
    };
    let topic = unique("eos-fence");
    ensure_topic(&b.bootstrap, &topic, Some(1)).await?;
    let f = exactly_once_sink(&b.bootstrap, &topic, &unique("fence"), &[])?;
    let mut old = f.create_checkpointed(0, 1, None)?;
    old.write_batch(ids_batch(0..3)?).await?;
    old.pre_commit(1).await?;
    let mut new = f.create_checkpointed(0, 1, None)?;
    let err = old
        .commit(1)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    eprintln!("the fenced incarnation's commit: {err}");
    assert!(
        err.contains("committing the transaction") && err.contains("fenced"),
        "old commit: {err:?}"
    );
    new.write_batch(ids_batch(10..12)?).await?;
    new.pre_commit(1).await?;
    new.commit(1).await?;
    new.finish().await?;
    let (ids, log) = committed_ids(&b.bootstrap, &topic).await?;
    assert_eq!(ids, vec![10, 11], "only the new incarnation's rows");
    assert_eq!(log.aborted_records, 3);
    Ok(())
}

/// The sink checks its `transaction.timeout.ms` against the broker's
/// `transaction.max.timeout.ms` at start, from DescribeConfigs: above the
/// limit it does not start and says why, naming both; at the limit it
/// starts. (tansu 0.6 reported no broker configuration;
/// `.ci/tansu/broker-configs.patch` makes it report Kafka's default limit,
/// 900000 ms.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_timeout_check_on_tansu() -> Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    use rdkafka::client::DefaultClientContext;
    init_log();
    let Some(b) = broker("transaction_timeout_check_on_tansu")? else {
        return Ok(());
    };
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &b.bootstrap)
        .create()
        .map_err(ext("admin"))?;
    let md = admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(10))
        .map_err(ext("metadata"))?;
    let id = md
        .brokers()
        .first()
        .map(|b| b.id())
        .ok_or_else(|| WeirError::Internal("no broker in the metadata".into()))?;
    let described = admin
        .describe_configs(
            &[ResourceSpecifier::Broker(id)],
            &AdminOptions::new().request_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .map_err(ext("describe_configs"))?;
    let mut limit = Vec::new();
    for r in described {
        let r = r.map_err(|e| WeirError::Internal(format!("describe_configs: {e:?}")))?;
        limit.extend(
            r.entries
                .iter()
                .filter(|e| e.name == "transaction.max.timeout.ms")
                .map(|e| e.value.clone()),
        );
    }
    assert_eq!(
        limit,
        vec![Some("900000".to_string())],
        "the broker's limit"
    );

    let topic = unique("eos-timeout");
    ensure_topic(&b.bootstrap, &topic, Some(1)).await?;
    let f = exactly_once_sink(
        &b.bootstrap,
        &topic,
        &unique("timeout"),
        &[("properties.transaction.timeout.ms", "3600000")],
    )?;
    let message = match f.create_checkpointed(0, 1, None) {
        Err(WeirError::Config(m)) => m,
        Err(e) => panic!("not a configuration error: {e}"),
        Ok(_) => panic!("a sink whose transaction timeout is above the broker's limit started"),
    };
    assert!(
        message.contains("transaction.timeout.ms (3600000)")
            && message.contains("transaction.max.timeout.ms (900000)"),
        "{message}"
    );

    let f = exactly_once_sink(
        &b.bootstrap,
        &topic,
        &unique("timeout"),
        &[("properties.transaction.timeout.ms", "900000")],
    )?;
    let mut sink = f.create_checkpointed(0, 1, None)?;
    sink.write_batch(ids_batch(0..2)?).await?;
    sink.pre_commit(1).await?;
    sink.commit(1).await?;
    sink.finish().await?;
    assert_eq!(committed_ids(&b.bootstrap, &topic).await?.0, vec![0, 1]);
    Ok(())
}

/// Two sink subtasks writing the same partition: subtask 1's transaction
/// is open while subtask 0 commits checkpoint 1, then subtask 0 restarts
/// from checkpoint 1. Its commit marker (the transaction's offset commit)
/// must say epoch 1 committed, so nothing is committed twice.
///
/// Stock tansu 0.6 failed this: it materialized a transaction's offset
/// commit only once every transaction overlapping it on the same
/// partitions had ended, so the restarted subtask read a stale marker and
/// committed epoch 1 again. `.ci/tansu/txn-offsets.patch` fixes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_another_subtasks_transaction_open_does_not_duplicate() -> Result<()> {
    init_log();
    let Some(b) = broker("restart_with_another_subtasks_transaction_open_does_not_duplicate")?
    else {
        return Ok(());
    };
    let topic = unique("eos-overlap");
    ensure_topic(&b.bootstrap, &topic, Some(1)).await?;
    let f = exactly_once_sink(&b.bootstrap, &topic, &unique("overlap"), &[])?;
    let mut other = f.create_checkpointed(1, 2, None)?;
    other.write_batch(ids_batch(100..101)?).await?; // open on partition 0
    let mut old = f.create_checkpointed(0, 2, None)?;
    old.write_batch(ids_batch(0..3)?).await?;
    let state = old.pre_commit(1).await?;
    old.commit(1).await?;
    drop(old);
    assert_eq!(committed_ids(&b.bootstrap, &topic).await?.0, vec![0, 1, 2]);
    let recovery = SinkRecovery {
        checkpoint_id: 1,
        state,
    };
    let mut new = f.create_checkpointed(0, 2, Some(recovery))?;
    new.finish().await?;
    other.pre_commit(1).await?;
    other.commit(1).await?;
    other.finish().await?;
    // In offset order: subtask 1's row was written first.
    let (ids, _) = committed_ids(&b.bootstrap, &topic).await?;
    assert_eq!(ids, vec![100, 0, 1, 2]);
    Ok(())
}
