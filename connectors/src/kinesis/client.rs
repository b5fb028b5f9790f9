//! The four Kinesis calls the connector makes, behind a small trait.
//!
//! [`KinesisApi`] is implemented by [`AwsKinesis`] (the `aws-sdk-kinesis`
//! client) and can be wrapped, e.g. by tests that inject throttling or
//! expired iterators. Its types are the connector's own, so the reading and
//! writing logic does not depend on the SDK's, and failures arrive
//! classified ([`ApiError`]): what to retry, what to resume, what is fatal.
//!
//! The SDK's own retries are switched off: the connector retries with its
//! own backoff, counts retries against its limits and reports them in the
//! progress line.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_kinesis::config::retry::RetryConfig;
use aws_sdk_kinesis::config::timeout::TimeoutConfig;
use aws_sdk_kinesis::config::{BehaviorVersion, Region};
use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::primitives::{Blob, DateTime};
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use weir_engine::{Result, WeirError};

use super::options::{AwsOptions, Credentials};

/// A shard as listed by ListShards (or announced as a child by GetRecords).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardDescription {
    /// `shardId-000000000001`.
    pub shard_id: String,
    /// The shard this one was split from, or the first of two merged.
    pub parent: Option<String>,
    /// The second parent of a merge.
    pub adjacent_parent: Option<String>,
    /// The last sequence number of a closed shard (`None`: open).
    pub ending_sequence: Option<String>,
}

impl ShardDescription {
    /// The parents that are set.
    pub fn parents(&self) -> impl Iterator<Item = &str> {
        self.parent
            .iter()
            .chain(self.adjacent_parent.iter())
            .map(String::as_str)
    }
}

/// One record read from a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KinesisRecord {
    /// The record's data.
    pub data: Vec<u8>,
    /// Its sequence number, exactly as Kinesis sent it.
    pub sequence_number: String,
    /// Its partition key.
    pub partition_key: String,
    /// When Kinesis accepted it, epoch milliseconds.
    pub arrival_ms: Option<i64>,
}

/// What one GetRecords call returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordsPage {
    /// The records, in sequence order.
    pub records: Vec<KinesisRecord>,
    /// Where to continue; `None` once a closed shard is read to its end.
    pub next_iterator: Option<String>,
    /// How far behind the tip of the shard this page is (0: caught up).
    pub millis_behind: Option<i64>,
    /// Shards that replaced this one, sent with its last page.
    pub child_shards: Vec<ShardDescription>,
}

/// Where a shard iterator starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IteratorStart {
    /// The oldest retained record.
    TrimHorizon,
    /// After the newest record.
    Latest,
    /// The first record that arrived at or after this epoch millisecond.
    AtTimestamp(i64),
    /// Just after this sequence number.
    AfterSequenceNumber(String),
}

/// One record to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutEntry {
    /// The data.
    pub data: Vec<u8>,
    /// The partition key (1 to 256 characters).
    pub partition_key: String,
}

impl PutEntry {
    /// Bytes this entry counts for in PutRecords' 5 MiB limit.
    pub fn size(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }
}

/// The outcome of one entry of a PutRecords call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// Written with this sequence number.
    Written {
        /// The shard it went to.
        shard_id: String,
        /// Its sequence number.
        sequence_number: String,
    },
    /// Not written.
    Failed {
        /// `ProvisionedThroughputExceededException`, `InternalFailure`, …
        code: String,
        /// Kinesis' message.
        message: String,
    },
}

/// A failed call, classified by what the caller should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// Throttled (`ProvisionedThroughputExceededException`,
    /// `LimitExceededException`, KMS throttling): back off and retry.
    Throttled(String),
    /// The shard iterator expired (`ExpiredIteratorException`): get a new
    /// one from the last sequence number read and continue.
    ExpiredIterator(String),
    /// The stream or shard does not exist (`ResourceNotFoundException`).
    NotFound(String),
    /// A failure that may pass (network, timeout, 5xx, `InternalFailure`):
    /// back off and retry.
    Transient(String),
    /// A failure that will not pass by retrying (access denied, invalid
    /// argument, …).
    Fatal(String),
}

impl ApiError {
    /// Whether retrying after a backoff can help.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ApiError::Throttled(_) | ApiError::Transient(_))
    }

    /// The message.
    pub fn message(&self) -> &str {
        match self {
            ApiError::Throttled(m)
            | ApiError::ExpiredIterator(m)
            | ApiError::NotFound(m)
            | ApiError::Transient(m)
            | ApiError::Fatal(m) => m,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            ApiError::Throttled(_) => "throttled",
            ApiError::ExpiredIterator(_) => "expired iterator",
            ApiError::NotFound(_) => "not found",
            ApiError::Transient(_) => "transient failure",
            ApiError::Fatal(_) => "failed",
        };
        write!(f, "{kind}: {}", self.message())
    }
}

impl std::error::Error for ApiError {}

/// Result of a Kinesis call.
pub type ApiResult<T> = std::result::Result<T, ApiError>;

/// The Kinesis calls the connector makes.
#[async_trait]
pub trait KinesisApi: Send + Sync {
    /// Every shard of `stream` that ListShards returns (all pages): open
    /// shards and closed ones still within the retention period.
    async fn list_shards(&self, stream: &str) -> ApiResult<Vec<ShardDescription>>;

    /// A shard iterator for `shard_id` starting at `start`.
    async fn get_shard_iterator(
        &self,
        stream: &str,
        shard_id: &str,
        start: &IteratorStart,
    ) -> ApiResult<String>;

    /// Up to `limit` records from `iterator`.
    async fn get_records(&self, iterator: &str, limit: u32) -> ApiResult<RecordsPage>;

    /// Writes `entries` in one PutRecords call; one outcome per entry, in
    /// order. An `Err` means the call as a whole failed (nothing written).
    async fn put_records(&self, stream: &str, entries: &[PutEntry]) -> ApiResult<Vec<PutOutcome>>;
}

/// [`KinesisApi`] over the `aws-sdk-kinesis` client.
#[derive(Debug, Clone)]
pub struct AwsKinesis {
    client: aws_sdk_kinesis::Client,
}

impl AwsKinesis {
    /// Wraps an SDK client.
    pub fn new(client: aws_sdk_kinesis::Client) -> Self {
        Self { client }
    }

    /// The SDK client.
    pub fn client(&self) -> &aws_sdk_kinesis::Client {
        &self.client
    }
}

/// Builds an SDK client for `aws`: region, endpoint, credentials (static
/// for `BASIC`, AWS' default chain for `AUTO`), no SDK retries (the
/// connector retries itself), 30 s per attempt.
pub async fn connect(aws: &AwsOptions) -> Result<aws_sdk_kinesis::Client> {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(10))
        .operation_attempt_timeout(Duration::from_secs(30))
        .build();
    let mut builder = match &aws.credentials {
        Credentials::Basic {
            access_key_id,
            secret_key,
        } => {
            let creds = aws_credential_types::Credentials::new(
                access_key_id,
                secret_key,
                None,
                None,
                "weir-basic",
            );
            let region = aws.region.clone().ok_or_else(|| {
                WeirError::Config(
                    "connector 'kinesis': 'aws.region' is required with 'aws.credentials.provider' = 'BASIC'"
                        .into(),
                )
            })?;
            aws_sdk_kinesis::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .credentials_provider(creds)
                .region(Region::new(region))
        }
        Credentials::Auto => {
            let mut loader = aws_config::defaults(BehaviorVersion::latest());
            if let Some(r) = &aws.region {
                loader = loader.region(Region::new(r.clone()));
            }
            let shared = loader.load().await;
            if shared.region().is_none() {
                return Err(WeirError::Config(
                    "connector 'kinesis': no AWS region: set 'aws.region' (or AWS_REGION)".into(),
                ));
            }
            aws_sdk_kinesis::config::Builder::from(&shared)
        }
    };
    builder = builder
        .retry_config(RetryConfig::disabled())
        .timeout_config(timeouts);
    if let Some(e) = &aws.endpoint {
        builder = builder.endpoint_url(e.clone());
    }
    Ok(aws_sdk_kinesis::Client::from_conf(builder.build()))
}

/// Classifies an SDK error by its error code and kind.
fn classify<E, R>(what: &str, err: SdkError<E, R>) -> ApiError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    let code = err.code().map(str::to_string);
    let message = match (&code, err.message()) {
        (Some(c), Some(m)) => format!("{what}: {c}: {m}"),
        (Some(c), None) => format!("{what}: {c}"),
        _ => format!(
            "{what}: {}",
            aws_sdk_kinesis::error::DisplayErrorContext(&err)
        ),
    };
    match code.as_deref() {
        Some(
            "ProvisionedThroughputExceededException"
            | "LimitExceededException"
            | "KMSThrottlingException"
            | "ThrottlingException",
        ) => ApiError::Throttled(message),
        Some("ExpiredIteratorException") => ApiError::ExpiredIterator(message),
        Some("ResourceNotFoundException") => ApiError::NotFound(message),
        Some("InternalFailure" | "InternalFailureException" | "ServiceUnavailable") => {
            ApiError::Transient(message)
        }
        Some(_) => ApiError::Fatal(message),
        None => match &err {
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => ApiError::Transient(message),
            SdkError::ServiceError(e) if format!("{:?}", e.raw()).contains("status: 5") => {
                ApiError::Transient(message)
            }
            _ => ApiError::Fatal(message),
        },
    }
}

fn shard_description(s: &aws_sdk_kinesis::types::Shard) -> ShardDescription {
    ShardDescription {
        shard_id: s.shard_id().to_string(),
        parent: s.parent_shard_id().map(str::to_string),
        adjacent_parent: s.adjacent_parent_shard_id().map(str::to_string),
        ending_sequence: s
            .sequence_number_range()
            .and_then(|r| r.ending_sequence_number())
            .map(str::to_string),
    }
}

#[async_trait]
impl KinesisApi for AwsKinesis {
    async fn list_shards(&self, stream: &str) -> ApiResult<Vec<ShardDescription>> {
        let mut shards = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let req = match &next {
                // ListShards takes either the stream name or a token.
                Some(token) => self.client.list_shards().next_token(token),
                None => self.client.list_shards().stream_name(stream),
            };
            let out = req
                .send()
                .await
                .map_err(|e| classify(&format!("ListShards of stream {stream}"), e))?;
            shards.extend(out.shards().iter().map(shard_description));
            match out.next_token() {
                Some(t) if !t.is_empty() && !out.shards().is_empty() => next = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(shards)
    }

    async fn get_shard_iterator(
        &self,
        stream: &str,
        shard_id: &str,
        start: &IteratorStart,
    ) -> ApiResult<String> {
        let mut req = self
            .client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard_id);
        req = match start {
            IteratorStart::TrimHorizon => req.shard_iterator_type(ShardIteratorType::TrimHorizon),
            IteratorStart::Latest => req.shard_iterator_type(ShardIteratorType::Latest),
            IteratorStart::AtTimestamp(ms) => req
                .shard_iterator_type(ShardIteratorType::AtTimestamp)
                .timestamp(DateTime::from_millis(*ms)),
            IteratorStart::AfterSequenceNumber(seq) => req
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(seq),
        };
        let out = req
            .send()
            .await
            .map_err(|e| classify(&format!("GetShardIterator of {stream}/{shard_id}"), e))?;
        out.shard_iterator().map(str::to_string).ok_or_else(|| {
            ApiError::Fatal(format!(
                "GetShardIterator of {stream}/{shard_id}: the response has no iterator"
            ))
        })
    }

    async fn get_records(&self, iterator: &str, limit: u32) -> ApiResult<RecordsPage> {
        let out = self
            .client
            .get_records()
            .shard_iterator(iterator)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| classify("GetRecords", e))?;
        let records = out
            .records()
            .iter()
            .map(|r| KinesisRecord {
                data: r.data().as_ref().to_vec(),
                sequence_number: r.sequence_number().to_string(),
                partition_key: r.partition_key().unwrap_or_default().to_string(),
                arrival_ms: r
                    .approximate_arrival_timestamp()
                    .and_then(|t| t.to_millis().ok()),
            })
            .collect();
        let child_shards = out
            .child_shards()
            .iter()
            .map(|c| {
                let mut parents = c.parent_shards().iter();
                ShardDescription {
                    shard_id: c.shard_id().to_string(),
                    parent: parents.next().cloned(),
                    adjacent_parent: parents.next().cloned(),
                    ending_sequence: None,
                }
            })
            .collect();
        Ok(RecordsPage {
            records,
            next_iterator: out.next_shard_iterator().map(str::to_string),
            millis_behind: out.millis_behind_latest(),
            child_shards,
        })
    }

    async fn put_records(&self, stream: &str, entries: &[PutEntry]) -> ApiResult<Vec<PutOutcome>> {
        let mut req = self.client.put_records().stream_name(stream);
        for e in entries {
            let entry = PutRecordsRequestEntry::builder()
                .data(Blob::new(e.data.clone()))
                .partition_key(e.partition_key.clone())
                .build()
                .map_err(|err| ApiError::Fatal(format!("PutRecords entry: {err}")))?;
            req = req.records(entry);
        }
        let out = req
            .send()
            .await
            .map_err(|e| classify(&format!("PutRecords to stream {stream}"), e))?;
        if out.records().len() != entries.len() {
            return Err(ApiError::Fatal(format!(
                "PutRecords to stream {stream}: {} results for {} records",
                out.records().len(),
                entries.len()
            )));
        }
        Ok(out
            .records()
            .iter()
            .map(|r| match (r.error_code(), r.sequence_number()) {
                (None, Some(seq)) => PutOutcome::Written {
                    shard_id: r.shard_id().unwrap_or_default().to_string(),
                    sequence_number: seq.to_string(),
                },
                (code, _) => PutOutcome::Failed {
                    code: code.unwrap_or("Unknown").to_string(),
                    message: r.error_message().unwrap_or_default().to_string(),
                },
            })
            .collect())
    }
}

/// Turns a Kinesis client into the one the connector uses (tests wrap the
/// real client to inject faults).
pub type ApiWrapper = Arc<dyn Fn(Arc<dyn KinesisApi>) -> Arc<dyn KinesisApi> + Send + Sync>;

/// Builds the connector's client for `aws` (see [`connect`]), wrapped by
/// `wrapper` when given.
pub async fn connect_api(
    aws: &AwsOptions,
    wrapper: Option<&ApiWrapper>,
) -> Result<Arc<dyn KinesisApi>> {
    let api: Arc<dyn KinesisApi> = Arc::new(AwsKinesis::new(connect(aws).await?));
    Ok(match wrapper {
        Some(w) => w(api),
        None => api,
    })
}
