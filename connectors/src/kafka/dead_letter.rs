//! Copies malformed messages to `'dead-letter.topic'`: the original key,
//! value, timestamp and headers, plus headers saying where the message came
//! from and why it was rejected (`weir.error.reason`, `weir.error.topic`,
//! `weir.error.partition`, `weir.error.offset`).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use weir_engine::{Result, WeirError};

use super::client::{is_set, sleep_unless_stopped};
use super::options::KafkaOptions;
use super::producer::{create_producer, flush_timeout, DeliveryContext, DeliveryState};

/// A dead-letter producer of one source subtask (created at the first
/// malformed message).
pub(crate) struct DeadLetter {
    producer: ThreadedProducer<DeliveryContext>,
    state: Arc<DeliveryState>,
    topic: String,
    table: String,
    flush_timeout: Duration,
}

impl DeadLetter {
    pub(crate) fn new(
        options: &KafkaOptions,
        table: &str,
        subtask: usize,
        topic: &str,
    ) -> Result<Self> {
        let (producer, state) = create_producer(
            options,
            table,
            &format!("weir-{table}-{subtask}-dead-letter"),
        )?;
        Ok(Self {
            producer,
            state,
            topic: topic.to_string(),
            table: table.to_string(),
            flush_timeout: flush_timeout(options),
        })
    }

    /// Queues a copy of `m` (waiting while librdkafka's queue is full).
    pub(crate) fn send<M: Message>(
        &mut self,
        m: &M,
        reason: &str,
        stop: &AtomicBool,
    ) -> Result<()> {
        self.check()?;
        let partition = m.partition().to_string();
        let offset = m.offset().to_string();
        let mut headers = OwnedHeaders::new();
        if let Some(h) = m.headers() {
            for header in h.iter() {
                headers = headers.insert(Header {
                    key: header.key,
                    value: header.value,
                });
            }
        }
        headers = headers
            .insert(Header {
                key: "weir.error.reason",
                value: Some(reason),
            })
            .insert(Header {
                key: "weir.error.topic",
                value: Some(m.topic()),
            })
            .insert(Header {
                key: "weir.error.partition",
                value: Some(&partition),
            })
            .insert(Header {
                key: "weir.error.offset",
                value: Some(&offset),
            });
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&self.topic).headers(headers);
        if let Some(k) = m.key() {
            record = record.key(k);
        }
        if let Some(p) = m.payload() {
            record = record.payload(p);
        }
        if let Some(ts) = m.timestamp().to_millis() {
            record = record.timestamp(ts);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    if is_set(stop) {
                        return Ok(());
                    }
                    record = r;
                    sleep_unless_stopped(Duration::from_millis(2), Some(stop));
                }
                Err((e, _)) => {
                    return Err(WeirError::Source(format!(
                    "kafka table {}: copying a malformed message to dead-letter topic '{}': {e}",
                    self.table, self.topic
                )))
                }
            }
        }
    }

    /// Fails when a copy could not be delivered.
    pub(crate) fn check(&self) -> Result<()> {
        match self.state.failure() {
            Some((m, n)) => Err(WeirError::Source(format!(
                "kafka table {}: {n} malformed message(s) could not be copied to dead-letter topic '{}': {m}",
                self.table, self.topic
            ))),
            None => Ok(()),
        }
    }

    /// Waits until every copy is delivered (or failed).
    pub(crate) fn flush(&mut self, stop: &AtomicBool) -> Result<()> {
        let deadline = Instant::now() + self.flush_timeout;
        while self.producer.in_flight_count() > 0 {
            self.check()?;
            if Instant::now() >= deadline {
                return Err(WeirError::Source(format!(
                    "kafka table {}: {} copies to dead-letter topic '{}' still undelivered after {} s",
                    self.table,
                    self.producer.in_flight_count(),
                    self.topic,
                    self.flush_timeout.as_secs()
                )));
            }
            if is_set(stop) && self.state.failure().is_none() {
                // Cancelled: give librdkafka a moment, but do not hang.
                let _ = self.producer.flush(Duration::from_secs(1));
                return self.check();
            }
            sleep_unless_stopped(Duration::from_millis(5), None);
        }
        self.check()
    }
}
