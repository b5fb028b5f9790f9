//! Shards: discovery, assignment to subtasks, lineage (parents before
//! children) and the watermark lanes of a subtask.
//!
//! # Assignment
//! All subtasks of one source share a [`ShardCoordinator`] (Weir runs a job
//! in one process; the coordinator plays the part of Flink's split
//! enumerator). It lists the stream's shards once when the first subtask is
//! created and then every `'scan.shard.discovery.intervalmillis'` (and at
//! once when a shard ends). Each shard gets an owner subtask,
//! deterministically from the listing:
//!
//! - a shard with a parent that is read goes to the owner of that parent
//!   (`ParentShardId` first, else `AdjacentParentShardId`): a key's whole
//!   history is read by one subtask, so its records leave that subtask in
//!   order whatever the edge after the source;
//! - other shards ("roots": the stream's first shards, or shards whose
//!   parents are past retention or skipped by `LATEST`) go round-robin, in
//!   shard id order, over the subtasks.
//!
//! # Order
//! A shard is read only once every parent it has is *finished*: read to
//! its end (`SHARD_END`), skipped (closed before a `LATEST` start), or past
//! retention (not listed). A merge whose two parents have different owners
//! waits for the other subtask through the coordinator.
//!
//! # Watermark lanes
//! Weir's runtime fixes a source subtask's split count when the subtask is
//! created, and the watermark assigner keeps one watermark per split index.
//! Shards come and go, so a subtask reads its shards through a fixed number
//! of *lanes* (split indices): [`LANES_PER_SHARD`] per shard it owns at the
//! start. Every lane belongs to a shard being read; a shard with several
//! lanes spreads each batch over them (consecutive slices, in order), so
//! every lane's watermark follows that shard and the minimum over lanes is
//! the minimum over shards. When a shard ends its lanes pass to its
//! children first. Only when a subtask reads more shards at once than it
//! has lanes do two shards share one (then that lane's watermark is the
//! larger of the two: see [`Lanes`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weir_engine::{Result, WeirError};

use super::client::{ApiError, ApiWrapper, IteratorStart, KinesisApi, ShardDescription};
use super::options::{AwsOptions, Backoff, InitialPosition};

/// Lanes a subtask gets per shard it owns when it starts: one split of each
/// shard can take over a lane of its own without sharing.
pub const LANES_PER_SHARD: usize = 2;

/// How a shard's first iterator is requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardStart {
    /// From `'scan.stream.initpos'` (shards listed when the source started).
    Initial(InitialPosition),
    /// From the shard's first record (shards created while running).
    TrimHorizon,
    /// Not read: closed before a `LATEST` start.
    Skip,
}

/// Where a checkpoint left a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoredShard {
    /// Finished: read to its end (with the sequence number of its last
    /// record, if it had any), or not to be read (closed before a `LATEST`
    /// start). It stays finished; its children are readable.
    Finished(Option<String>),
    /// Being read: a new iterator starts here (`AfterSequenceNumber` of the
    /// last record read, or the start not used yet).
    From(IteratorStart),
}

/// A shard known to the coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardAssignment {
    /// What ListShards said about it.
    pub shard: ShardDescription,
    /// The subtask that reads it.
    pub owner: usize,
    /// Where reading starts.
    pub start: ShardStart,
}

#[derive(Debug, Default)]
struct CoordinatorState {
    /// Parallelism the assignment was made for (`None`: not yet).
    parallelism: Option<usize>,
    /// Every shard seen, by id.
    shards: BTreeMap<String, ShardAssignment>,
    /// Lanes per subtask, fixed when the source starts.
    lanes: Vec<usize>,
    /// Round-robin position for the next root shard.
    next_root: usize,
    /// Finished shards: read to their end, or not to be read.
    finished: HashMap<String, Option<String>>,
    /// When shards were last listed.
    last_listed: Option<Instant>,
    /// Shards as a restored checkpoint left them (`None`: not resumed).
    restored: Option<HashMap<String, RestoredShard>>,
}

/// Shared by the subtasks of one Kinesis source: shard listing, owners,
/// which shards are finished.
pub struct ShardCoordinator {
    stream: String,
    initial: InitialPosition,
    state: Mutex<CoordinatorState>,
    /// Serializes ListShards calls of the subtasks.
    listing: tokio::sync::Mutex<()>,
    /// The client the subtasks share (made in the job's runtime).
    api: tokio::sync::OnceCell<Arc<dyn KinesisApi>>,
}

impl std::fmt::Debug for ShardCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardCoordinator")
            .field("stream", &self.stream)
            .field("initial", &self.initial)
            .finish()
    }
}

impl ShardCoordinator {
    /// A coordinator for `stream`, starting shards listed first at `initial`.
    pub fn new(stream: impl Into<String>, initial: InitialPosition) -> Self {
        Self {
            stream: stream.into(),
            initial,
            state: Mutex::new(CoordinatorState::default()),
            listing: tokio::sync::Mutex::new(()),
            api: tokio::sync::OnceCell::new(),
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, CoordinatorState>> {
        self.state
            .lock()
            .map_err(|_| WeirError::Internal("kinesis shard coordinator lock poisoned".into()))
    }

    /// Whether the first listing was made (for `parallelism`).
    pub fn is_initialized(&self, parallelism: usize) -> Result<bool> {
        Ok(self.lock()?.parallelism == Some(parallelism))
    }

    /// Makes the first assignment from a listing: owners, starts, lanes.
    /// Calling it again with another parallelism starts over (a new job).
    pub fn initialize(&self, parallelism: usize, listing: Vec<ShardDescription>) -> Result<()> {
        let mut st = self.lock()?;
        *st = CoordinatorState {
            parallelism: Some(parallelism.max(1)),
            lanes: vec![0; parallelism.max(1)],
            last_listed: Some(Instant::now()),
            ..CoordinatorState::default()
        };
        add_shards(&mut st, listing, Some(self.initial));
        let mut open_per_owner = vec![0usize; st.lanes.len()];
        let mut any_per_owner = vec![false; st.lanes.len()];
        for a in st.shards.values() {
            if a.start == ShardStart::Skip {
                continue;
            }
            any_per_owner[a.owner] = true;
            if a.shard.ending_sequence.is_none() {
                open_per_owner[a.owner] += 1;
            }
        }
        for (s, lanes) in st.lanes.iter_mut().enumerate() {
            *lanes = if any_per_owner[s] {
                LANES_PER_SHARD * open_per_owner[s].max(1)
            } else {
                0
            };
        }
        Ok(())
    }

    /// Resumes from a checkpoint: `shards` are the positions `subtask`
    /// stored. Called for every subtask that stored positions before any
    /// subtask runs. A resumed source reads every shard the checkpoint
    /// does not know (created after it) from its first record, skipping
    /// none; finished shards stay finished; a restored shard keeps the
    /// subtask that read it (when that subtask has lanes), and shards the
    /// checkpoint does not know follow the owner of their parent.
    pub fn restore(&self, subtask: usize, shards: Vec<(String, RestoredShard)>) -> Result<()> {
        let mut st = self.lock()?;
        let st = &mut *st;
        if st.restored.is_none() {
            for a in st.shards.values_mut() {
                a.start = ShardStart::TrimHorizon;
            }
            st.finished.clear();
            st.restored = Some(HashMap::new());
        }
        let has_lanes = st.lanes.get(subtask).copied().unwrap_or(0) > 0;
        let restored = st.restored.get_or_insert_with(HashMap::new);
        for (id, r) in shards {
            if let RestoredShard::Finished(last) = &r {
                st.finished.insert(id.clone(), last.clone());
            }
            if has_lanes {
                if let Some(a) = st.shards.get_mut(&id) {
                    a.owner = subtask;
                }
            }
            restored.insert(id, r);
        }
        // Parents have smaller shard ids than their children.
        let ids: Vec<String> = st.shards.keys().cloned().collect();
        for id in ids {
            if restored.contains_key(&id) {
                continue;
            }
            let parent_owner = st.shards.get(&id).and_then(|a| {
                a.shard
                    .parents()
                    .find_map(|p| st.shards.get(p))
                    .map(|p| p.owner)
            });
            if let (Some(o), Some(a)) = (parent_owner, st.shards.get_mut(&id)) {
                a.owner = o;
            }
        }
        Ok(())
    }

    /// Where the restored checkpoint left `shard_id` (`None`: not resumed,
    /// or a shard the checkpoint does not know).
    pub fn restored(&self, shard_id: &str) -> Result<Option<RestoredShard>> {
        Ok(self
            .lock()?
            .restored
            .as_ref()
            .and_then(|r| r.get(shard_id).cloned()))
    }

    /// The number of lanes (split indices) of `subtask`.
    pub fn lanes(&self, subtask: usize) -> Result<usize> {
        Ok(self.lock()?.lanes.get(subtask).copied().unwrap_or(0))
    }

    /// The shards `subtask` reads, in shard id order.
    pub fn owned(&self, subtask: usize) -> Result<Vec<ShardAssignment>> {
        Ok(self
            .lock()?
            .shards
            .values()
            .filter(|a| a.owner == subtask && a.start != ShardStart::Skip)
            .cloned()
            .collect())
    }

    /// The shards `subtask` answers for in checkpoints, in shard id order:
    /// those it reads and the skipped ones it owns (they are stored as
    /// finished, so that a resumed job does not read them).
    pub fn accountable(&self, subtask: usize) -> Result<Vec<ShardAssignment>> {
        Ok(self
            .lock()?
            .shards
            .values()
            .filter(|a| a.owner == subtask)
            .cloned()
            .collect())
    }

    /// Every shard known, in shard id order.
    pub fn all(&self) -> Result<Vec<ShardAssignment>> {
        Ok(self.lock()?.shards.values().cloned().collect())
    }

    /// Adds shards announced while running (a later listing, or the child
    /// shards of GetRecords); shards already known are kept as they are.
    pub fn add_discovered(&self, shards: Vec<ShardDescription>) -> Result<()> {
        let mut st = self.lock()?;
        add_shards(&mut st, shards, None);
        Ok(())
    }

    /// Whether every parent of `shard_id` is finished (read to its end,
    /// skipped, or not listed: past retention).
    pub fn parents_finished(&self, shard_id: &str) -> Result<bool> {
        let st = self.lock()?;
        let Some(a) = st.shards.get(shard_id) else {
            return Ok(true);
        };
        let done = a
            .shard
            .parents()
            .all(|p| !st.shards.contains_key(p) || st.finished.contains_key(p));
        Ok(done)
    }

    /// Records that `shard_id` was read to its end; `last` is the sequence
    /// number of its last record, if it had any.
    pub fn mark_finished(&self, shard_id: &str, last: Option<String>) -> Result<()> {
        self.lock()?.finished.insert(shard_id.to_string(), last);
        Ok(())
    }

    /// Whether every shard known is finished (read to its end, caught up by
    /// a bounded source, skipped, or left finished by a checkpoint): a
    /// bounded source's subtasks end only then, together.
    pub fn all_finished(&self) -> Result<bool> {
        let st = self.lock()?;
        Ok(st.shards.keys().all(|id| st.finished.contains_key(id)))
    }

    /// Whether `shard_id` is finished.
    pub fn is_finished(&self, shard_id: &str) -> Result<bool> {
        Ok(self.lock()?.finished.contains_key(shard_id))
    }

    /// The client shared by the subtasks, made on first use.
    pub async fn api(
        &self,
        aws: &AwsOptions,
        wrapper: Option<&ApiWrapper>,
    ) -> Result<Arc<dyn KinesisApi>> {
        self.api
            .get_or_try_init(|| super::client::connect_api(aws, wrapper))
            .await
            .cloned()
    }

    /// Lists the shards again when the last listing is older than
    /// `interval` (or `force`), adding new ones. Several subtasks calling
    /// at once list once.
    pub async fn discover(
        &self,
        api: &dyn KinesisApi,
        interval: Duration,
        force: bool,
        backoff: &Backoff,
    ) -> Result<()> {
        let _guard = self.listing.lock().await;
        let due = {
            let st = self.lock()?;
            force || st.last_listed.is_none_or(|t| t.elapsed() >= interval)
        };
        if !due {
            return Ok(());
        }
        let listing = list_with_retries(api, &self.stream, backoff, 8).await?;
        let mut st = self.lock()?;
        st.last_listed = Some(Instant::now());
        add_shards(&mut st, listing, None);
        Ok(())
    }
}

/// ListShards with retries of throttling and transient failures.
pub async fn list_with_retries(
    api: &dyn KinesisApi,
    stream: &str,
    backoff: &Backoff,
    attempts: u32,
) -> Result<Vec<ShardDescription>> {
    let mut attempt = 0;
    loop {
        match api.list_shards(stream).await {
            Ok(l) => return Ok(l),
            Err(e) if e.is_retryable() && attempt + 1 < attempts => {
                tracing::warn!(stream, attempt, error = %e, "ListShards failed, retrying");
                tokio::time::sleep(backoff.delay(attempt)).await;
                attempt += 1;
            }
            Err(ApiError::NotFound(m)) => {
                return Err(WeirError::Source(format!(
                    "kinesis stream '{stream}' does not exist ({m})"
                )))
            }
            Err(e) => {
                return Err(WeirError::Source(format!(
                    "listing the shards of kinesis stream '{stream}': {e}"
                )))
            }
        }
    }
}

/// Adds shards not yet known, parents before children; `initial` is set
/// for the first listing (shards then start at the initial position).
fn add_shards(
    st: &mut CoordinatorState,
    listing: Vec<ShardDescription>,
    initial: Option<InitialPosition>,
) {
    let parallelism = st.parallelism.unwrap_or(1).max(1);
    let mut pending: BTreeMap<String, ShardDescription> = listing
        .into_iter()
        .filter(|s| !st.shards.contains_key(&s.shard_id))
        .map(|s| (s.shard_id.clone(), s))
        .collect();
    // Parents first: a shard waits while one of its parents is still pending.
    while !pending.is_empty() {
        let ready: Vec<String> = pending
            .values()
            .filter(|s| s.parents().all(|p| !pending.contains_key(p)))
            .map(|s| s.shard_id.clone())
            .collect();
        // A cycle cannot happen in Kinesis; take the smallest id to be safe.
        let ready = if ready.is_empty() {
            pending.keys().next().cloned().into_iter().collect()
        } else {
            ready
        };
        for id in ready {
            let Some(shard) = pending.remove(&id) else {
                continue;
            };
            let start = match initial {
                Some(InitialPosition::Latest) if shard.ending_sequence.is_some() => {
                    ShardStart::Skip
                }
                Some(p) => ShardStart::Initial(p),
                None => ShardStart::TrimHorizon,
            };
            if start == ShardStart::Skip {
                st.finished.insert(shard.shard_id.clone(), None);
            }
            let read_parent = shard
                .parents()
                .filter_map(|p| st.shards.get(p))
                .find(|a| a.start != ShardStart::Skip)
                .map(|a| a.owner);
            let owner = match read_parent {
                Some(o) => o,
                None if start == ShardStart::Skip => 0,
                None => {
                    let o = st.next_root % parallelism;
                    st.next_root += 1;
                    // Later roots go to a subtask that has lanes to read them.
                    if initial.is_none() && st.lanes.get(o).copied().unwrap_or(0) == 0 {
                        st.lanes.iter().position(|l| *l > 0).unwrap_or(o)
                    } else {
                        o
                    }
                }
            };
            st.shards.insert(
                shard.shard_id.clone(),
                ShardAssignment {
                    shard,
                    owner,
                    start,
                },
            );
        }
    }
}

/// The watermark lanes (split indices) of one subtask and the shards they
/// belong to. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct Lanes {
    count: usize,
    /// Lanes of each shard being read.
    by_shard: BTreeMap<String, Vec<usize>>,
    /// The last shard each lane belonged to.
    history: Vec<Option<String>>,
}

impl Lanes {
    /// `count` lanes, none assigned.
    pub fn new(count: usize) -> Self {
        Self {
            count,
            by_shard: BTreeMap::new(),
            history: vec![None; count],
        }
    }

    /// The number of lanes.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The lanes of `shard_id` (empty when it is not being read).
    pub fn of(&self, shard_id: &str) -> &[usize] {
        self.by_shard.get(shard_id).map_or(&[], Vec::as_slice)
    }

    /// Lanes shared by more than one shard.
    pub fn shared(&self) -> usize {
        let mut owners = vec![0usize; self.count];
        for lanes in self.by_shard.values() {
            for &l in lanes {
                owners[l] += 1;
            }
        }
        owners.iter().filter(|&&n| n > 1).count()
    }

    /// Gives every lane to the shards being read (`active`: id and
    /// parents): shards no longer active lose their lanes; a shard without
    /// a lane takes a free one (one its parent had, if any), else one from
    /// the shard with the most lanes, else shares the least shared lane;
    /// free lanes then go to the shards with the fewest (children of the
    /// lane's last shard first).
    pub fn assign(&mut self, active: &[(String, Vec<String>)]) {
        if self.count == 0 {
            return;
        }
        let active_ids: BTreeSet<&str> = active.iter().map(|(id, _)| id.as_str()).collect();
        self.by_shard
            .retain(|id, _| active_ids.contains(id.as_str()));
        let mut taken = vec![0usize; self.count];
        for lanes in self.by_shard.values() {
            for &l in lanes {
                taken[l] += 1;
            }
        }
        let mut free: Vec<usize> = (0..self.count).filter(|&l| taken[l] == 0).collect();
        for (id, parents) in active {
            if self.by_shard.get(id).is_some_and(|l| !l.is_empty()) {
                continue;
            }
            let from_parent = free.iter().position(|&l| {
                self.history[l]
                    .as_ref()
                    .is_some_and(|h| parents.iter().any(|p| p == h))
            });
            let lane = if let Some(i) = from_parent.or((!free.is_empty()).then_some(0)) {
                free.remove(i)
            } else if let Some(donor) = self
                .by_shard
                .iter()
                .filter(|(_, l)| l.len() > 1)
                .max_by_key(|(_, l)| l.len())
                .map(|(d, _)| d.clone())
            {
                match self.by_shard.get_mut(&donor).and_then(Vec::pop) {
                    Some(l) => {
                        taken[l] -= 1;
                        l
                    }
                    None => 0,
                }
            } else {
                (0..self.count).min_by_key(|&l| (taken[l], l)).unwrap_or(0)
            };
            taken[lane] += 1;
            self.history[lane] = Some(id.clone());
            self.by_shard.insert(id.clone(), vec![lane]);
        }
        // Spread the remaining free lanes.
        while let Some(lane) = free.pop() {
            let heir = self.history[lane].clone();
            let target = active
                .iter()
                .map(|(id, parents)| {
                    let n = self.of(id).len();
                    let child = heir
                        .as_ref()
                        .is_some_and(|h| parents.iter().any(|p| p == h) || h == id);
                    (n, !child, id.clone())
                })
                .min();
            let Some((_, _, id)) = target else {
                break;
            };
            taken[lane] += 1;
            self.history[lane] = Some(id.clone());
            self.by_shard.entry(id).or_default().push(lane);
        }
        for lanes in self.by_shard.values_mut() {
            lanes.sort_unstable();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(
        id: &str,
        parent: Option<&str>,
        adjacent: Option<&str>,
        closed: bool,
    ) -> ShardDescription {
        ShardDescription {
            shard_id: id.to_string(),
            parent: parent.map(str::to_string),
            adjacent_parent: adjacent.map(str::to_string),
            ending_sequence: closed.then(|| "100".to_string()),
        }
    }

    #[test]
    fn children_follow_their_parent_and_roots_go_round_robin() -> Result<()> {
        let c = ShardCoordinator::new("s", InitialPosition::TrimHorizon);
        c.initialize(
            2,
            vec![
                shard("shardId-000000000000", None, None, true),
                shard("shardId-000000000001", None, None, false),
                shard("shardId-000000000002", None, None, false),
                // split of 0
                shard(
                    "shardId-000000000003",
                    Some("shardId-000000000000"),
                    None,
                    false,
                ),
                shard(
                    "shardId-000000000004",
                    Some("shardId-000000000000"),
                    None,
                    false,
                ),
            ],
        )?;
        let owners: Vec<(String, usize)> = c
            .all()?
            .into_iter()
            .map(|a| (a.shard.shard_id, a.owner))
            .collect();
        assert_eq!(
            owners.iter().map(|(_, o)| *o).collect::<Vec<_>>(),
            vec![0, 1, 0, 0, 0]
        );
        // Subtask 0 owns 3 open shards (2, 3, 4), subtask 1 one.
        assert_eq!((c.lanes(0)?, c.lanes(1)?), (6, 2));
        assert!(!c.parents_finished("shardId-000000000003")?);
        assert!(c.parents_finished("shardId-000000000001")?);
        c.mark_finished("shardId-000000000000", Some("42".into()))?;
        assert!(c.parents_finished("shardId-000000000003")?);

        // A merge of 1 (owner 1) and 2 (owner 0) goes to the owner of the
        // first parent, and waits for both.
        c.add_discovered(vec![shard(
            "shardId-000000000005",
            Some("shardId-000000000001"),
            Some("shardId-000000000002"),
            false,
        )])?;
        let merged = c
            .all()?
            .into_iter()
            .find(|a| a.shard.shard_id == "shardId-000000000005")
            .map(|a| (a.owner, a.start));
        assert_eq!(merged, Some((1, ShardStart::TrimHorizon)));
        c.mark_finished("shardId-000000000001", None)?;
        assert!(!c.parents_finished("shardId-000000000005")?);
        c.mark_finished("shardId-000000000002", None)?;
        assert!(c.parents_finished("shardId-000000000005")?);
        // Bounded subtasks end together: not while a shard is unfinished.
        assert!(!c.all_finished()?);
        for id in [3, 4, 5] {
            c.mark_finished(&format!("shardId-{id:012}"), None)?;
        }
        assert!(c.all_finished()?);
        Ok(())
    }

    #[test]
    fn latest_skips_closed_shards_and_treats_their_children_as_roots() -> Result<()> {
        let c = ShardCoordinator::new("s", InitialPosition::Latest);
        c.initialize(
            2,
            vec![
                shard("shardId-000000000000", None, None, true),
                shard(
                    "shardId-000000000001",
                    Some("shardId-000000000000"),
                    None,
                    false,
                ),
                shard(
                    "shardId-000000000002",
                    Some("shardId-000000000000"),
                    None,
                    false,
                ),
            ],
        )?;
        let a = c.all()?;
        assert_eq!(a[0].start, ShardStart::Skip);
        assert_eq!((a[1].owner, a[2].owner), (0, 1));
        assert!(c.parents_finished("shardId-000000000001")?);
        assert_eq!(c.owned(0)?.len(), 1);
        Ok(())
    }

    fn active(ids: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        ids.iter()
            .map(|(id, p)| (id.to_string(), p.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn lanes_pass_from_parents_to_children() {
        let mut l = Lanes::new(4);
        l.assign(&active(&[("a", &[]), ("b", &[])]));
        assert_eq!(l.of("a").len() + l.of("b").len(), 4);
        assert_eq!((l.of("a").len(), l.of("b").len()), (2, 2));
        let a_lanes = l.of("a").to_vec();
        // a is split into c and d: each takes one of a's lanes.
        l.assign(&active(&[("b", &[]), ("c", &["a"]), ("d", &["a"])]));
        assert_eq!(l.of("c").len(), 1);
        assert_eq!(l.of("d").len(), 1);
        assert!(a_lanes.contains(&l.of("c")[0]) && a_lanes.contains(&l.of("d")[0]));
        assert_eq!(l.shared(), 0);
        // c and d merge into e: e takes both lanes.
        l.assign(&active(&[("b", &[]), ("e", &["c", "d"])]));
        assert_eq!(l.of("e"), a_lanes.as_slice());
        // Five shards on four lanes: one lane is shared.
        l.assign(&active(&[
            ("b", &[]),
            ("f", &["e"]),
            ("g", &["e"]),
            ("h", &["b"]),
            ("i", &["b"]),
        ]));
        for id in ["b", "f", "g", "h", "i"] {
            assert!(!l.of(id).is_empty(), "{id} has no lane");
        }
        assert_eq!(l.shared(), 1);
        // Nothing active: nothing assigned, nothing breaks.
        l.assign(&[]);
        assert!(l.of("b").is_empty());
    }
}
