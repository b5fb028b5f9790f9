//! Helpers shared by the crash tests (`checkpoint_crash.rs`,
//! `kafka_crash.rs`, `kinesis_crash.rs`): the `weir` binary and runs of it
//! asserted to succeed, kill settings from the environment, a small
//! deterministic generator for kill moments, the committed rows of the
//! exactly-once filesystem sink, and the check that a `SEQUENCE_ORDER` job
//! counted every account's sequence exactly once.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

/// The `weir` binary of this build.
pub fn weir() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weir"))
}

/// Runs `cmd` to its end and asserts that it succeeded (its stderr in
/// the failure message).
pub fn run_to_success(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run weir");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The reference of a crash test: `weir run --quiet -p 2 SQL`, without
/// checkpoints and never killed, asserted to succeed.
pub fn uninterrupted_run(sql: &Path) {
    run_to_success(weir().args(["run", "--quiet", "-p", "2"]).arg(sql));
}

/// Kill count (`WEIR_CRASH_KILLS`, default 20) and seed of the kill
/// moments (`WEIR_CRASH_SEED`, default: the clock); both are printed.
pub fn kill_settings(test: &str) -> (u64, u64) {
    kill_settings_from("WEIR_CRASH_KILLS", 20, test)
}

/// [`kill_settings`] with the kill count read from `var` (default
/// `default_kills`).
pub fn kill_settings_from(var: &str, default_kills: u64, test: &str) -> (u64, u64) {
    let kills: u64 = std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_kills);
    let seed: u64 = std::env::var("WEIR_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(7)
        });
    eprintln!("{test}: {kills} kills, WEIR_CRASH_SEED={seed}");
    (kills, seed)
}

/// A small deterministic generator for the kill moments.
pub struct Lcg(pub u64);

impl Lcg {
    /// A number in `lo..hi`.
    pub fn next_in(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        lo + (self.0 >> 33) % (hi - lo)
    }
}

/// Writes `text` to `path` and returns the path.
pub fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).expect("write sql");
    path.to_path_buf()
}

/// All rows of the published files (`part-*`; in-progress files are
/// hidden), sorted.
pub fn committed_rows(dir: &Path) -> Vec<String> {
    let mut rows = Vec::new();
    for entry in std::fs::read_dir(dir).expect("list output") {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("part-") {
            let text = std::fs::read_to_string(entry.path()).expect("read part");
            rows.extend(text.lines().map(str::to_string));
        }
    }
    rows.sort();
    rows
}

/// Per account of the windows of a `SEQUENCE_ORDER` job (columns
/// `account_id`, `num`, `last_seq`, `seq_total`): rows counted, the last
/// sequence number, the sum of sequence numbers.
pub fn per_account(rows: &[String]) -> BTreeMap<i64, (i64, i64, i64)> {
    let mut per_account: BTreeMap<i64, (i64, i64, i64)> = BTreeMap::new();
    for row in rows {
        let v: serde_json::Value = serde_json::from_str(row).expect("a JSON row");
        let field = |name: &str| {
            v[name]
                .as_i64()
                .unwrap_or_else(|| panic!("{name} in {row}"))
        };
        let e = per_account.entry(field("account_id")).or_default();
        e.0 += field("num");
        e.1 = e.1.max(field("last_seq"));
        e.2 += field("seq_total");
    }
    per_account
}

/// The windows, summed per account, count each of the account's sequence
/// numbers 1..n exactly once: duplicates were dropped and nothing was lost
/// before the windows.
pub fn every_sequence_number_once(rows: &[String]) {
    let per_account = per_account(rows);
    assert!(per_account.len() > 100, "{} accounts", per_account.len());
    for (account, (num, last, total)) in per_account {
        assert_eq!(
            num, last,
            "account {account}: rows counted vs last sequence"
        );
        assert_eq!(
            total,
            last * (last + 1) / 2,
            "account {account}: sum of sequences"
        );
    }
}

/// Sends `signal` (`STOP`, `CONT`) to a child process.
pub fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {} failed", child.id());
}

/// The output of `weir checkpoints DIR` (empty when there is none yet).
pub fn checkpoints(dir: &Path) -> String {
    if !dir.is_dir() {
        return String::new();
    }
    let out = weir()
        .arg("checkpoints")
        .arg(dir)
        .output()
        .expect("run weir checkpoints");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The id of the latest complete checkpoint in a `weir checkpoints`
/// listing.
pub fn latest_checkpoint(listing: &str) -> Option<u64> {
    listing
        .lines()
        .filter_map(|l| l.strip_prefix("checkpoint "))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .max()
}

/// The id of the newest complete checkpoint in `dir` (its manifest is
/// written last, atomically).
pub fn newest_checkpoint(dir: &Path) -> Option<u64> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let id = e.file_name().to_str()?.strip_prefix("chk-")?.parse().ok()?;
            e.path().join("manifest.json").is_file().then_some(id)
        })
        .max()
}

/// One life of a crash run: `child` resumed from checkpoint `latest` (in
/// `ckpt`). Every fourth life (`life % 4 == 3`) is killed at a random
/// moment of its first 0.4 s (often while it restores); the others at a
/// random moment `after_ms` after their own first checkpoint, so that the
/// progress of a life does not depend on how long the binary takes to
/// start. Returns `true` when the child was killed, `false` when it had
/// ended by itself (successfully: a failure fails the test with its
/// stderr).
pub fn kill_one_life(
    mut child: Child,
    ckpt: &Path,
    latest: u64,
    life: u64,
    rng: &mut Lcg,
    after_ms: (u64, u64),
) -> bool {
    if life % 4 == 3 {
        std::thread::sleep(std::time::Duration::from_millis(rng.next_in(20, 400)));
    } else {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while newest_checkpoint(ckpt).unwrap_or(0) <= latest
            && child.try_wait().expect("try_wait").is_none()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "no checkpoint within 60 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        std::thread::sleep(std::time::Duration::from_millis(
            rng.next_in(after_ms.0, after_ms.1),
        ));
    }
    match child.try_wait().expect("try_wait") {
        None => {
            child.kill().expect("SIGKILL");
            let _ = child.wait();
            true
        }
        Some(status) => {
            let out = child.wait_with_output().expect("output");
            assert!(
                status.success(),
                "weir failed after {life} kills: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            false
        }
    }
}

/// `weir run --quiet -p 2` of `sql` with checkpoints every `interval`
/// (e.g. `200ms`) in `ckpt`: one run of a crash test.
pub fn checkpointed_run(ckpt: &Path, sql: &Path, interval: &str) -> Command {
    let mut c = weir();
    c.args([
        "run",
        "--quiet",
        "-p",
        "2",
        "--checkpoint-interval",
        interval,
    ])
    .arg("--checkpoint-dir")
    .arg(ckpt)
    .arg(sql);
    c
}

/// Prints, when `got` (sorted rows) differs from `expected`, up to five
/// rows on each side that the other has fewer times: what a failed
/// comparison needs to be looked into.
pub fn report_row_diff(what: &str, got: &[String], expected: &[String]) {
    if got == expected {
        return;
    }
    fn count(rows: &[String]) -> BTreeMap<&str, i64> {
        let mut m: BTreeMap<&str, i64> = BTreeMap::new();
        for r in rows {
            *m.entry(r.as_str()).or_default() += 1;
        }
        m
    }
    let (g, e) = (count(got), count(expected));
    let short = |a: &BTreeMap<&str, i64>, b: &BTreeMap<&str, i64>| -> Vec<String> {
        a.iter()
            .filter_map(|(r, n)| {
                let more = n - b.get(r).copied().unwrap_or(0);
                (more > 0).then(|| format!("{more}× {r}"))
            })
            .take(5)
            .collect()
    };
    eprintln!(
        "{what}: missing {:?}; extra {:?}",
        short(&e, &g),
        short(&g, &e)
    );
}
