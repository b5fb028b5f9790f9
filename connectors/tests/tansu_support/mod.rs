//! Test support for a real Kafka-protocol broker, tansu: starting one on a
//! free loopback port, and reading a topic's **committed view** without
//! trusting the broker's transaction bookkeeping.
//!
//! # Why a reader of its own
//!
//! tansu 0.6.0 routes no EndTxn request (transactional producers can
//! neither commit nor abort); `.ci/tansu.sh install` builds it with
//! `.ci/tansu/end-txn.patch`, which routes EndTxn to tansu's own
//! `Storage::txn_end`. That writes real COMMIT/ABORT control batches, and
//! `read_committed` fetches stop at the last stable offset, but tansu's
//! Fetch responses always carry an empty `aborted_transactions` list, so
//! librdkafka's `read_committed` consumer shows the records of aborted
//! transactions. [`committed_view`] fetches the raw record batches with
//! `read_uncommitted` over the Kafka protocol (the `kafka-protocol` crate,
//! independent of tansu's and librdkafka's codecs), decodes RecordBatch v2
//! including control batches, and decides visibility from the log alone:
//!
//! - a record of a transactional batch is held per producer id until that
//!   producer's next control record: COMMIT makes it visible, ABORT drops it;
//! - records of a transaction still open at the end of the log are not
//!   visible;
//! - records of non-transactional batches are visible.
//!
//! Visible records are returned in offset order (the order a
//! `read_committed` consumer delivers them in).
//!
//! Used by `connectors/tests` and, through `#[path]`, by the workspace's
//! crash test (`tests/checkpoint_crash.rs`).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use kafka_protocol::records::RecordBatchDecoder;
use weir_engine::{Result, WeirError};

/// A broker to test against; stops the one it started when dropped.
pub struct Broker {
    /// `host:port` to bootstrap from.
    pub bootstrap: String,
    child: Option<Child>,
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The tansu binary: `$TANSU`, on `PATH`, or `~/.cargo/bin/tansu`.
pub fn tansu_binary() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("TANSU").map(std::path::PathBuf::from) {
        if p.is_file() {
            return Some(p);
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            let p = d.join("tansu");
            if p.is_file() {
                return Some(p);
            }
        }
    }
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from)?;
    let p = home.join(".cargo/bin/tansu");
    p.is_file().then_some(p)
}

/// `$WEIR_TANSU_BOOTSTRAP`, or a tansu started here (memory storage, a free
/// loopback port), or `None` (the test skips; an error instead when
/// `$WEIR_REQUIRE_BROKERS` is set).
pub fn broker(test: &str) -> Result<Option<Broker>> {
    if let Ok(b) = std::env::var("WEIR_TANSU_BOOTSTRAP") {
        if !b.trim().is_empty() {
            return Ok(Some(Broker {
                bootstrap: b.trim().to_string(),
                child: None,
            }));
        }
    }
    let Some(bin) = tansu_binary() else {
        if std::env::var_os("WEIR_REQUIRE_BROKERS").is_some() {
            return Err(WeirError::Config(format!(
                "{test}: WEIR_REQUIRE_BROKERS is set but no tansu broker was found \
                 (set WEIR_TANSU_BOOTSTRAP, or run .ci/tansu.sh install)"
            )));
        }
        println!(
            "SKIPPED {test}: no tansu broker (set WEIR_TANSU_BOOTSTRAP, or run .ci/tansu.sh install: \
             tansu 0.6.0 with its EndTxn patch)"
        );
        return Ok(None);
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| WeirError::io("finding a free port", e))?
        .port();
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new(&bin)
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "memory://tansu/",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| WeirError::io(format!("starting {}", bin.display()), e))?;
    let broker = Broker {
        bootstrap: format!("127.0.0.1:{port}"),
        child: Some(child),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(WeirError::Internal(format!(
                "tansu did not listen on {port} within 30 s"
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(Some(broker))
}

/// A topic name no earlier run used (the broker may be long-lived).
pub fn unique(name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("weir-{name}-{nanos}")
}

/// A record visible to a `read_committed` reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedRecord {
    /// Its offset in the partition.
    pub offset: i64,
    /// Its key.
    pub key: Option<Vec<u8>>,
    /// Its value.
    pub value: Option<Vec<u8>>,
}

impl CommittedRecord {
    /// The value as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(self.value.as_deref().unwrap_or_default()).into_owned()
    }
    /// The key as text.
    pub fn key_text(&self) -> String {
        String::from_utf8_lossy(self.key.as_deref().unwrap_or_default()).into_owned()
    }
}

/// One partition's log as the reader saw it.
#[derive(Debug, Default, Clone)]
pub struct PartitionLog {
    /// Records visible to `read_committed` readers, in offset order.
    pub committed: Vec<CommittedRecord>,
    /// Transactions that ended in ABORT (count of control records).
    pub aborted_transactions: usize,
    /// Transactions that ended in COMMIT.
    pub committed_transactions: usize,
    /// Records still in an open transaction at the end of the log.
    pub open_records: usize,
    /// Records dropped because their transaction aborted.
    pub aborted_records: usize,
}

/// A pending (not yet ended) transactional record.
struct Held {
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
}

/// The type of a control record (its key: version i16, type i16).
fn control_type(key: Option<&Bytes>) -> Result<i16> {
    let mut k = key
        .cloned()
        .ok_or_else(|| WeirError::Internal("a control record without a key".into()))?;
    if k.remaining() < 4 {
        return Err(WeirError::Internal(format!(
            "a control record key of {} bytes",
            k.remaining()
        )));
    }
    let _version = k.get_i16();
    Ok(k.get_i16())
}

/// The committed view of each partition `0..partitions` of `topic`.
pub fn committed_view(bootstrap: &str, topic: &str, partitions: i32) -> Result<Vec<PartitionLog>> {
    let mut conn = Connection::open(bootstrap)?;
    (0..partitions)
        .map(|p| conn.partition_log(topic, p))
        .collect()
}

/// A Kafka protocol connection to one broker.
struct Connection {
    stream: TcpStream,
    correlation: i32,
}

/// Fetch v11: the last version naming topics (v13+ use topic ids), with
/// `isolation_level` and record batches v2.
const FETCH_VERSION: i16 = 11;

fn proto(what: &str, e: impl std::fmt::Display) -> WeirError {
    WeirError::Internal(format!("kafka protocol: {what}: {e}"))
}

impl Connection {
    fn open(bootstrap: &str) -> Result<Self> {
        let addr = bootstrap.split(',').next().unwrap_or(bootstrap).trim();
        let stream = TcpStream::connect(addr)
            .map_err(|e| WeirError::io(format!("connecting to {addr}"), e))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| WeirError::io("socket timeout", e))?;
        Ok(Self {
            stream,
            correlation: 0,
        })
    }

    /// Fetches `partition` from `offset` (read_uncommitted): the raw
    /// records bytes, or `None` when there is nothing at `offset`.
    fn fetch(&mut self, topic: &str, partition: i32, offset: i64) -> Result<Option<Bytes>> {
        use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::Fetch as i16)
            .with_request_api_version(FETCH_VERSION)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("weir-committed-reader")));
        let request = FetchRequest::default()
            .with_replica_id((-1).into())
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(8 << 20)
            .with_isolation_level(0)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(8 << 20)])]);
        let mut body = BytesMut::new();
        header
            .encode(&mut body, FetchRequest::header_version(FETCH_VERSION))
            .map_err(|e| proto("encoding the request header", e))?;
        request
            .encode(&mut body, FETCH_VERSION)
            .map_err(|e| proto("encoding Fetch", e))?;
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.put_slice(&body);
        self.stream
            .write_all(&frame)
            .map_err(|e| WeirError::io("sending Fetch", e))?;

        let mut len = [0u8; 4];
        self.stream
            .read_exact(&mut len)
            .map_err(|e| WeirError::io("reading the Fetch response size", e))?;
        let len = i32::from_be_bytes(len);
        let len = usize::try_from(len).map_err(|_| proto("response size", len))?;
        let mut buf = vec![0u8; len];
        self.stream
            .read_exact(&mut buf)
            .map_err(|e| WeirError::io("reading the Fetch response", e))?;
        let mut buf = Bytes::from(buf);
        let rh = ResponseHeader::decode(&mut buf, FetchResponse::header_version(FETCH_VERSION))
            .map_err(|e| proto("decoding the response header", e))?;
        if rh.correlation_id != self.correlation {
            return Err(proto(
                "correlation id",
                format!("{} != {}", rh.correlation_id, self.correlation),
            ));
        }
        let response = FetchResponse::decode(&mut buf, FETCH_VERSION)
            .map_err(|e| proto("decoding Fetch", e))?;
        if response.error_code != 0 {
            return Err(proto(
                "Fetch",
                format!("error code {}", response.error_code),
            ));
        }
        let part = response
            .responses
            .into_iter()
            .flat_map(|t| t.partitions)
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| proto("Fetch", format!("no answer for partition {partition}")))?;
        if part.error_code != 0 {
            return Err(proto(
                "Fetch",
                format!("{topic}/{partition}: error code {}", part.error_code),
            ));
        }
        Ok(part.records.filter(|r| !r.is_empty()))
    }

    /// Reads `partition` from offset 0 to its end and computes its
    /// committed view.
    fn partition_log(&mut self, topic: &str, partition: i32) -> Result<PartitionLog> {
        let mut log = PartitionLog::default();
        // Held records per producer id.
        let mut held: BTreeMap<i64, Vec<Held>> = BTreeMap::new();
        // Visible records by offset (committed transactions are released
        // when their marker is read, later than their records' offsets).
        let mut visible: BTreeMap<i64, CommittedRecord> = BTreeMap::new();
        let mut next = 0i64;
        while let Some(mut records) = self.fetch(topic, partition, next)? {
            let sets = RecordBatchDecoder::decode_all(&mut records)
                .map_err(|e| proto("record batch", e))?;
            let before = next;
            for set in sets {
                for r in set.records {
                    // A fetch may start inside a batch: skip what was read.
                    if r.offset < next {
                        continue;
                    }
                    next = r.offset + 1;
                    if r.control {
                        let ended = held.remove(&r.producer_id).unwrap_or_default();
                        match control_type(r.key.as_ref())? {
                            1 => {
                                log.committed_transactions += 1;
                                for h in ended {
                                    visible.insert(
                                        h.offset,
                                        CommittedRecord {
                                            offset: h.offset,
                                            key: h.key,
                                            value: h.value,
                                        },
                                    );
                                }
                            }
                            0 => {
                                log.aborted_transactions += 1;
                                log.aborted_records += ended.len();
                            }
                            t => return Err(proto("control record", format!("unknown type {t}"))),
                        }
                        continue;
                    }
                    let key = r.key.map(|b| b.to_vec());
                    let value = r.value.map(|b| b.to_vec());
                    if r.transactional {
                        held.entry(r.producer_id).or_default().push(Held {
                            offset: r.offset,
                            key,
                            value,
                        });
                    } else {
                        visible.insert(
                            r.offset,
                            CommittedRecord {
                                offset: r.offset,
                                key,
                                value,
                            },
                        );
                    }
                }
            }
            if next == before {
                // Only records before `next` came back: the end.
                break;
            }
        }
        log.open_records = held.values().map(Vec::len).sum();
        log.committed = visible.into_values().collect();
        Ok(log)
    }
}
