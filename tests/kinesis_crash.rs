//! Crash test with a Kinesis source that is resharded during the run: a
//! `weir run` with checkpoints is killed with SIGKILL at random moments and
//! restarted; its committed output must equal, row for row, the output of
//! an uninterrupted run over the same records, and the records the test
//! wrote (every account's sequence 1..n exactly once).
//!
//! Pipeline: Kinesis stream (kinesalite, 2 shards, read by 2 subtasks,
//! `'scan.bounded'`) → watermark → hash shuffle on `account_id` →
//! `SEQUENCE_ORDER` per account (duplicates dropped, swapped pairs put
//! back in order) → one-second tumbling-window aggregation → exactly-once
//! filesystem sink.
//!
//! The stream (kinesalite: it implements SplitShard and MergeShards;
//! kinesis-local, which has UpdateShardCount, takes seconds per 500
//! records once a shard holds ~10K): records of phase A (a tenth) go to
//! shards 0 and 1; then shard 0 is split (children 2 and 3) and phase B
//! (three tenths) goes to 1, 2, 3; then 3 and 1 are merged (child 4) and
//! phase C (the rest) goes to 2 and 4. Every shard holds data; a key's
//! records are spread over its parent and child shards, read in lineage
//! order. 40,000 + 6,000 × kills records.
//!
//! Kills: the first run after the reshard (above); then every fourth run at
//! a random moment of its first 0.4 s (often while it restores), the
//! others within 0.4 s after their own first checkpoint. A Kinesis source
//! has no pacing (unlike the generators), so that the job outlives the
//! kills rests on the data set: the killed runs read a small part of it
//! (a fifth or less on a 2-core machine, debug build) and must have read
//! some of the child shards and committed windows.
//!
//! How the job ends deterministically: `'scan.bounded'` ends an open shard
//! where the reader caught up, so no run may be allowed to end while the
//! stream is incomplete. Phase A is written before the first run. The
//! reshard and phases B and C are made while the first run is stopped
//! (SIGSTOP) right after its first checkpoint with a read position, so
//! that no run ever reads the stream while it is being written; the
//! stopped run then continues (SIGCONT: it finds the new shards while
//! running) and is killed. A run that started before the stream was
//! complete and ends by itself fails the test; every later run sees the
//! complete stream, so the one allowed to finish reads all of it.
//!
//! Event times rise with the order records are written (phase C within a
//! span shorter than the watermark delay), so no row is late whatever the
//! order in which the shards are read: the window results do not depend
//! on timing, and an uninterrupted run gives exactly the known counts.
//!
//! `WEIR_CRASH_KILLS` sets the number of kills (default 20);
//! `WEIR_CRASH_SEED` the seed of the kill moments (default: the clock; the
//! seed is printed).

mod crash_support;
#[path = "../connectors/tests/kinesis_support/mod.rs"]
mod kinesis_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::types::ShardIteratorType;
use crash_support::{
    checkpointed_run, checkpoints, committed_rows, every_sequence_number_once, kill_one_life,
    kill_settings, latest_checkpoint, newest_checkpoint, per_account, run_to_success, signal,
    uninterrupted_run, write, Lcg,
};
use kinesis_support::{client, create_stream, emulator, put, unique_stream, wait_active, Kind};

/// 2026-01-01T00:00:00Z.
const BASE_MS: i64 = 1_767_225_600_000;
/// Accounts (partition keys).
const ACCOUNTS: usize = 128;
/// Event time between consecutive records of phases A and B, in µs.
const STEP_AB_US: i64 = 400;
/// The event time span of phase C, in µs: below the watermark delay.
const SPAN_C_US: i64 = 2_000_000;

/// One record the test writes.
#[derive(Debug, Clone, Copy)]
struct Tx {
    account: usize,
    seq: i64,
    time_ms: i64,
}

impl Tx {
    fn entry(&self) -> (String, String) {
        (
            format!("account-{}", self.account),
            format!(
                r#"{{"account_id":{},"seq":{},"event_time":{}}}"#,
                self.account, self.seq, self.time_ms
            ),
        )
    }
}

/// The data set, in the order it is written, split in phases A, B, C of
/// `sizes` records: accounts round-robin, each account's sequence 1..n,
/// event times rising; every 50th sequence number swapped with the next
/// one of its account (out of order by less than 0.1 s).
fn data_set(sizes: [usize; 3]) -> [Vec<Tx>; 3] {
    let total: usize = sizes.iter().sum();
    let ab = (sizes[0] + sizes[1]) as i64;
    let c = sizes[2].max(1) as i64;
    let mut all: Vec<Tx> = (0..total)
        .map(|i| {
            let at = i as i64;
            let us = if at < ab {
                at * STEP_AB_US
            } else {
                ab * STEP_AB_US + (at - ab) * SPAN_C_US / c
            };
            Tx {
                account: i % ACCOUNTS,
                seq: (i / ACCOUNTS) as i64 + 1,
                time_ms: BASE_MS + us / 1000,
            }
        })
        .collect();
    // Swap each pair once (the moved record is not swapped again).
    for i in 0..total.saturating_sub(ACCOUNTS) {
        if all[i].seq % 50 == 0 && all[i + ACCOUNTS].seq == all[i].seq + 1 {
            all.swap(i, i + ACCOUNTS);
        }
    }
    let c = all.split_off(sizes[0] + sizes[1]);
    let b = all.split_off(sizes[0]);
    [all, b, c]
}

/// The entries of `records` as written: every 97th twice (a duplicate).
fn entries(records: &[Tx]) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(records.len() + records.len() / 97 + 1);
    for (i, r) in records.iter().enumerate() {
        out.push(r.entry());
        if i % 97 == 0 {
            out.push(r.entry());
        }
    }
    out
}

/// Writes `records` with four writers at once (accounts split between
/// them, so every account's records keep their order).
async fn produce(c: &aws_sdk_kinesis::Client, stream: &str, records: &[Tx]) {
    let writers = 4;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let part: Vec<Tx> = records
            .iter()
            .filter(|r| r.account % writers == w)
            .copied()
            .collect();
        let (c, stream) = (c.clone(), stream.to_string());
        tasks.push(tokio::spawn(async move {
            put(&c, &stream, &entries(&part)).await
        }));
    }
    for t in tasks {
        t.await.expect("writer task").expect("PutRecords");
    }
}

/// The expected windows from the data set: per (account, second), rows,
/// last sequence number and sum of sequence numbers, as sorted tuples
/// (rows, last, sum) per account.
fn expected_windows(data: &[Vec<Tx>; 3]) -> BTreeMap<i64, Vec<(i64, i64, i64)>> {
    let mut windows: BTreeMap<(i64, i64), (i64, i64, i64)> = BTreeMap::new();
    for r in data.iter().flatten() {
        let w = windows
            .entry((r.account as i64, r.time_ms.div_euclid(1000)))
            .or_default();
        w.0 += 1;
        w.1 = w.1.max(r.seq);
        w.2 += r.seq;
    }
    let mut out: BTreeMap<i64, Vec<(i64, i64, i64)>> = BTreeMap::new();
    for ((account, _), w) in windows {
        out.entry(account).or_default().push(w);
    }
    for v in out.values_mut() {
        v.sort_unstable();
    }
    out
}

/// The same from committed rows.
fn windows_of(rows: &[String]) -> BTreeMap<i64, Vec<(i64, i64, i64)>> {
    let mut out: BTreeMap<i64, Vec<(i64, i64, i64)>> = BTreeMap::new();
    for row in rows {
        let v: serde_json::Value = serde_json::from_str(row).expect("a JSON row");
        let field = |name: &str| {
            v[name]
                .as_i64()
                .unwrap_or_else(|| panic!("{name} in {row}"))
        };
        out.entry(field("account_id")).or_default().push((
            field("num"),
            field("last_seq"),
            field("seq_total"),
        ));
    }
    for v in out.values_mut() {
        v.sort_unstable();
    }
    out
}

fn job_sql(endpoint: &str, stream: &str, out: &Path) -> String {
    format!(
        "CREATE TABLE tx (
  account_id BIGINT,
  seq        BIGINT,
  event_time TIMESTAMP(3),
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH (
  'connector' = 'kinesis',
  'stream' = '{stream}',
  'aws.region' = 'us-east-1',
  'aws.endpoint' = '{endpoint}',
  'aws.credentials.provider' = 'BASIC',
  'aws.credentials.basic.accesskeyid' = 'weir',
  'aws.credentials.basic.secretkey' = 'weir',
  'scan.stream.initpos' = 'TRIM_HORIZON',
  'scan.shard.getrecords.maxrecordcount' = '100',
  'scan.shard.getrecords.intervalmillis' = '20',
  'scan.shard.discovery.intervalmillis' = '200',
  'scan.bounded' = 'true',
  'format' = 'json'
);
CREATE TABLE results (
  account_id BIGINT,
  num BIGINT,
  last_seq BIGINT,
  seq_total BIGINT,
  window_start TIMESTAMP(3),
  window_end TIMESTAMP(3)
) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
CREATE VIEW ordered AS
SELECT * FROM TABLE(SEQUENCE_ORDER(TABLE tx, DESCRIPTOR(account_id), DESCRIPTOR(seq),
                                   INTERVAL '5' SECOND, 100000, 1));
INSERT INTO results
SELECT account_id, count(*) AS num, max(seq) AS last_seq, sum(seq) AS seq_total,
       window_start, window_end
FROM TABLE(TUMBLE(TABLE ordered, DESCRIPTOR(event_time), INTERVAL '1' SECOND))
GROUP BY account_id, window_start, window_end;
",
        out.display()
    )
}

/// A shard as ListShards shows it: id, parent, adjacent parent, open.
type ShardInfo = (String, Option<String>, Option<String>, bool);

async fn shards(c: &aws_sdk_kinesis::Client, stream: &str) -> Vec<ShardInfo> {
    let out = c
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .expect("ListShards");
    out.shards()
        .iter()
        .map(|s| {
            let open = s
                .sequence_number_range()
                .is_none_or(|r| r.ending_sequence_number().is_none());
            (
                s.shard_id().to_string(),
                s.parent_shard_id().map(str::to_string),
                s.adjacent_parent_shard_id().map(str::to_string),
                open,
            )
        })
        .collect()
}

/// Whether a shard holds at least one record.
async fn holds_data(c: &aws_sdk_kinesis::Client, stream: &str, shard: &str) -> bool {
    let it = c
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .expect("GetShardIterator");
    let mut iterator = it.shard_iterator().map(str::to_string);
    // An empty page may come before the first record.
    for _ in 0..3 {
        let Some(i) = iterator else { return false };
        let page = c
            .get_records()
            .shard_iterator(i)
            .limit(1)
            .send()
            .await
            .expect("GetRecords");
        if !page.records().is_empty() {
            return true;
        }
        iterator = page.next_shard_iterator().map(str::to_string);
    }
    false
}

/// Splits shard 0 at the middle of its hash range, writes phase B, merges
/// shard 3 (the split's upper child) with shard 1, writes phase C.
async fn reshard_and_produce(c: &aws_sdk_kinesis::Client, stream: &str, b: &[Tx], cc: &[Tx]) {
    c.split_shard()
        .stream_name(stream)
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key((1u128 << 126).to_string())
        .send()
        .await
        .expect("SplitShard");
    wait_active(c, stream).await.expect("active after split");
    produce(c, stream, b).await;
    c.merge_shards()
        .stream_name(stream)
        .shard_to_merge("shardId-000000000003")
        .adjacent_shard_to_merge("shardId-000000000001")
        .send()
        .await
        .expect("MergeShards");
    wait_active(c, stream).await.expect("active after merge");
    produce(c, stream, cc).await;
}

/// Waits until a complete checkpoint holds a read position (a sequence
/// number) of a shard; fails when the run ends first.
fn wait_for_read_position(ckpt: &Path, child: &mut Child) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listing = checkpoints(ckpt);
        let read = listing.split_whitespace().any(|t| {
            t.contains("/shardId-")
                && t.rsplit('@')
                    .next()
                    .is_some_and(|p| p.starts_with(|c: char| c.is_ascii_digit()))
        });
        if read {
            return latest_checkpoint(&listing).unwrap_or(0);
        }
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!("the first run ended ({status}) before a checkpoint with a read position");
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint with a read position within 60 s:\n{listing}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Kills a run that must still be running; a run that ended by itself
/// fails the test with its stderr.
fn kill_running(mut child: Child, what: &str) {
    match child.try_wait().expect("try_wait") {
        None => {
            child.kill().expect("SIGKILL");
            let _ = child.wait();
        }
        Some(status) => {
            let out = child.wait_with_output().expect("output");
            panic!(
                "{what} ended by itself ({status}) before the stream was complete: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

#[test]
fn killed_and_restarted_kinesis_job_across_a_split_and_a_merge_matches_an_uninterrupted_run() {
    let Some(emu) = emulator(Kind::Kinesalite) else {
        return;
    };
    let (kills, seed) = kill_settings("kinesis crash test");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let c = rt.block_on(client(&emu.endpoint)).expect("client");
    let stream = unique_stream("crash");
    rt.block_on(create_stream(&c, &stream, 2))
        .expect("CreateStream");

    // Enough records that the job outlives the kills.
    let per_kill = 6_000;
    let n = 40_000 + kills as usize * per_kill;
    // Most records are read from the children (shard 0 holds a twentieth:
    // the killed runs get past it).
    let sizes = [n / 10, n * 3 / 10, n - n / 10 - n * 3 / 10];
    let data = data_set(sizes);
    let started = Instant::now();
    rt.block_on(produce(&c, &stream, &data[0]));
    eprintln!(
        "kinesis crash test: phase A, {} records, written in {:.1}s",
        sizes[0],
        started.elapsed().as_secs_f64()
    );

    let tmp = tempfile::tempdir().expect("tempdir");
    let crash_out = tmp.path().join("crash");
    let ckpt = tmp.path().join("checkpoints");
    let sql = write(
        &tmp.path().join("crash.sql"),
        &job_sql(&emu.endpoint, &stream, &crash_out),
    );
    let run = || checkpointed_run(&ckpt, &sql, "100ms");
    let spawn = |c: &mut Command| {
        c.stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn weir")
    };
    let mut rng = Lcg(seed);

    // The first run: stopped once it has a checkpoint with a read
    // position, the stream resharded and completed meanwhile, continued,
    // killed.
    let crash_started = Instant::now();
    let mut child = spawn(&mut run());
    let before_reshard = wait_for_read_position(&ckpt, &mut child);
    assert_eq!(newest_checkpoint(&ckpt), Some(before_reshard));
    signal(&child, "STOP");
    let started = Instant::now();
    rt.block_on(reshard_and_produce(&c, &stream, &data[1], &data[2]));
    eprintln!(
        "kinesis crash test: split, phase B ({}), merge, phase C ({}) in {:.1}s while run 1 was \
         stopped after checkpoint {before_reshard}",
        sizes[1],
        sizes[2],
        started.elapsed().as_secs_f64()
    );
    signal(&child, "CONT");
    std::thread::sleep(Duration::from_millis(rng.next_in(50, 600)));
    kill_running(child, "the run stopped across the reshard");
    let mut killed = 1;

    // The stream now: 0, 1, 3 closed; 2, 4 open; every shard has records.
    let listed = rt.block_on(shards(&c, &stream));
    let id = |n: u32| format!("shardId-{n:012}");
    let expected: Vec<ShardInfo> = vec![
        (id(0), None, None, false),
        (id(1), None, None, false),
        (id(2), Some(id(0)), None, true),
        (id(3), Some(id(0)), None, false),
        (id(4), Some(id(3)), Some(id(1)), true),
    ];
    assert_eq!(listed, expected, "the reshard");
    for (shard, ..) in &listed {
        assert!(
            rt.block_on(holds_data(&c, &stream, shard)),
            "{shard} holds no record"
        );
    }

    // Runs killed at random moments, each resuming from the latest
    // checkpoint: every fourth at any moment of its first 0.4 s (often
    // while it restores), the others at a random moment within 0.4 s after their
    // own first checkpoint, so that the progress of a run does not depend
    // on how long the binary takes to start.
    let mut resumed_from = vec![before_reshard];
    let mut early = 0;
    while killed < kills {
        let latest = newest_checkpoint(&ckpt);
        resumed_from.push(latest.unwrap_or(0));
        let child = spawn(&mut run());
        if killed % 4 == 3 {
            early += 1;
        }
        if !kill_one_life(
            child,
            &ckpt,
            latest.unwrap_or(0),
            killed,
            &mut rng,
            (0, 400),
        ) {
            break;
        }
        killed += 1;
    }
    eprintln!(
        "kinesis crash test: {killed} kills ({early} early) in {:.1}s; runs resumed from \
         checkpoints {resumed_from:?}",
        crash_started.elapsed().as_secs_f64()
    );
    assert!(
        killed >= kills.min(20),
        "only {killed} kills: the job ended too soon (the data set is too small for how fast \
         this machine reads)"
    );
    // The runs killed after a checkpoint of their own made progress: the
    // next one resumed from a newer checkpoint (the first run and the ones
    // killed early may have not).
    let advanced = resumed_from.windows(2).filter(|w| w[1] > w[0]).count() as u64;
    assert!(
        advanced + early + 1 >= killed,
        "only {advanced} runs resumed from a newer checkpoint: {resumed_from:?}"
    );

    // The killed runs got as far as the children, and committed windows.
    let before_last = committed_rows(&crash_out).len();
    let listing = checkpoints(&ckpt);
    let read_children = [id(2), id(4)].iter().any(|child| {
        listing.split_whitespace().any(|t| {
            t.strip_prefix(&format!("{stream}/{child}@"))
                .is_some_and(|p| p.starts_with(|c: char| c.is_ascii_digit()))
        })
    });
    assert!(
        read_children,
        "no checkpoint of the killed runs has read a child shard:\n{listing}"
    );
    assert!(before_last > 0, "the killed runs committed nothing");

    // Let it finish.
    let started = Instant::now();
    run_to_success(&mut run());
    eprintln!(
        "kinesis crash test: the last run took {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let got = committed_rows(&crash_out);
    eprintln!(
        "kinesis crash test: {before_last} of {} rows were committed before the last run",
        got.len()
    );

    // The uninterrupted run over the same records.
    let reference_out = tmp.path().join("reference");
    let reference_sql = write(
        &tmp.path().join("reference.sql"),
        &job_sql(&emu.endpoint, &stream, &reference_out),
    );
    let started = Instant::now();
    uninterrupted_run(&reference_sql);
    eprintln!(
        "kinesis crash test: the uninterrupted run took {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let expected = committed_rows(&reference_out);
    // It counted every record the test wrote exactly once, in the windows
    // the data set gives.
    every_sequence_number_once(&expected);
    assert_eq!(
        per_account(&expected).values().map(|a| a.0).sum::<i64>(),
        n as i64
    );
    assert_eq!(windows_of(&expected), expected_windows(&data));

    assert_eq!(got.len(), expected.len(), "row counts differ");
    assert!(got == expected, "rows differ from the uninterrupted run");

    // The final checkpoint: the job finished, positions on the children.
    let text = checkpoints(&ckpt);
    assert!(text.contains("(final: job finished)"), "{text}");
    assert!(text.contains(&format!("{stream}/{}@", id(4))), "{text}");
}
