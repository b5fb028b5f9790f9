//! Channels bounded by rows.
//!
//! Every subtask that is not chained to its producer reads one channel into
//! which all of its upstream subtasks send. The channel's capacity counts
//! rows, not messages (a batch of 8 192 rows weighs 8 192; a control
//! message weighs 1), so memory stays bounded whatever the batch size, and a
//! slow consumer slows its producers instead of growing a queue.
//!
//! Each input of the channel (one upstream subtask on one edge) also has a
//! credit of the same capacity, taken by every message it sends and given
//! back only when the receiver drops the message's [`Envelope`]: the queue
//! gives back the shared capacity as soon as a message is received, the
//! credit when the message is processed. A receiver that holds messages of
//! one input back (barrier alignment keeps the messages that follow a
//! barrier until every input delivered it) therefore holds at most that
//! input's credit, and the input's sender then waits: the held input is
//! back-pressured instead of growing memory, while the other inputs flow.

use std::sync::Arc;

use tokio::sync::{mpsc, Semaphore};

use crate::error::{Result, WeirError};
use crate::message::Message;

/// A message with the input channel it came in on. It carries its input's
/// credit: dropping the envelope (after processing the message) gives the
/// credit back to that input's sender.
#[derive(Debug)]
pub struct Envelope {
    /// Index of the sending input channel at the receiver.
    pub from: usize,
    /// The message.
    pub message: Message,
    weight: usize,
    /// Given back to the input when the envelope is dropped.
    _credit: Option<Credit>,
}

impl Envelope {
    /// The rows this message weighs (1 for a control message).
    pub fn weight(&self) -> usize {
        self.weight
    }
}

/// Credit taken from one input; given back on drop.
#[derive(Debug)]
struct Credit {
    permits: Arc<Semaphore>,
    n: usize,
}

impl Drop for Credit {
    fn drop(&mut self) {
        self.permits.add_permits(self.n);
    }
}

/// The sending half of a row-bounded channel, tagged with its input index.
#[derive(Debug, Clone)]
pub struct Sender {
    tx: mpsc::UnboundedSender<Envelope>,
    permits: Arc<Semaphore>,
    inputs: Arc<Vec<Arc<Semaphore>>>,
    capacity: usize,
    from: usize,
}

/// The receiving half of a row-bounded channel.
#[derive(Debug)]
pub struct Receiver {
    rx: mpsc::UnboundedReceiver<Envelope>,
    permits: Arc<Semaphore>,
    capacity: usize,
}

/// Creates a channel with one input holding at most `capacity_rows` rows
/// in flight. The returned sender has input index 0.
pub fn channel(capacity_rows: usize) -> (Sender, Receiver) {
    channel_with_inputs(capacity_rows, 1)
}

/// Creates a channel with `inputs` inputs: at most `capacity_rows` rows
/// queued in all, and (with more than one input) at most `capacity_rows`
/// rows of one input queued or not yet processed. The returned sender has input index 0; use
/// [`Sender::with_input`] for the others.
pub fn channel_with_inputs(capacity_rows: usize, inputs: usize) -> (Sender, Receiver) {
    let capacity = capacity_rows.max(1);
    let (tx, rx) = mpsc::unbounded_channel();
    let permits = Arc::new(Semaphore::new(capacity));
    // With one input nothing is ever held back (a barrier aligns at once):
    // no credit to take.
    let inputs = if inputs > 1 {
        (0..inputs)
            .map(|_| Arc::new(Semaphore::new(capacity)))
            .collect()
    } else {
        Vec::new()
    };
    (
        Sender {
            tx,
            permits: permits.clone(),
            inputs: Arc::new(inputs),
            capacity,
            from: 0,
        },
        Receiver {
            rx,
            permits,
            capacity,
        },
    )
}

impl Sender {
    /// A sender into the same channel that tags its messages with input `from`.
    pub fn with_input(&self, from: usize) -> Sender {
        Sender {
            from,
            ..self.clone()
        }
    }

    /// Sends a message, waiting while the channel is full or this input's
    /// credit is used up. A batch larger than the whole capacity waits
    /// until the channel is empty.
    pub async fn send(&self, message: Message) -> Result<()> {
        let weight = message.weight().min(self.capacity);
        let credit = match self.inputs.get(self.from) {
            Some(input) => {
                input
                    .acquire_many(weight as u32)
                    .await
                    .map_err(|_| WeirError::Internal("channel semaphore closed".into()))?
                    .forget();
                Some(Credit {
                    permits: input.clone(),
                    n: weight,
                })
            }
            None => None,
        };
        let permit = self
            .permits
            .acquire_many(weight as u32)
            .await
            .map_err(|_| WeirError::Internal("channel semaphore closed".into()))?;
        permit.forget();
        self.tx
            .send(Envelope {
                from: self.from,
                message,
                weight,
                _credit: credit,
            })
            .map_err(|_| closed())
    }
}

/// The error a sender gets when its receiver is gone (the consumer failed
/// or the job is being torn down).
pub fn closed() -> WeirError {
    WeirError::Execution("downstream channel closed".into())
}

impl Receiver {
    /// Receives the next message; `None` when every sender is dropped. The
    /// channel's shared capacity is given back now, the input's credit when
    /// the envelope is dropped.
    pub async fn recv(&mut self) -> Option<Envelope> {
        let env = self.rx.recv().await?;
        self.permits.add_permits(env.weight);
        Some(env)
    }

    /// Rows currently queued in the channel.
    pub fn queued_rows(&self) -> usize {
        self.capacity - self.permits.available_permits()
    }

    /// The capacity in rows.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;
    use std::time::Duration;

    fn batch(rows: usize) -> Message {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let arr = Int64Array::from_iter_values(0..rows as i64);
        Message::Batch(RecordBatch::try_new(schema, vec![Arc::new(arr)]).expect("batch"))
    }

    #[tokio::test]
    async fn sender_blocks_when_rows_exceed_capacity() {
        let (tx, mut rx) = channel(100);
        tx.send(batch(60)).await.expect("send");
        // 60 + 60 > 100: the second send must wait for the receiver.
        let tx2 = tx.clone();
        let pending = tokio::spawn(async move { tx2.send(batch(60)).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!pending.is_finished());
        let first = rx.recv().await.expect("first");
        assert!(matches!(first.message, Message::Batch(ref b) if b.num_rows() == 60));
        pending.await.expect("join").expect("send");
        assert_eq!(rx.queued_rows(), 60);
    }

    #[tokio::test]
    async fn a_held_input_waits_for_its_credit_while_others_flow() {
        let (tx, mut rx) = channel_with_inputs(100, 2);
        let (a, b) = (tx.with_input(0), tx.with_input(1));
        a.send(batch(60)).await.expect("send");
        // Received but not processed: the queue is free again, input 0's
        // credit is not.
        let held = rx.recv().await.expect("held");
        assert_eq!(rx.queued_rows(), 0);
        let a2 = a.clone();
        let pending = tokio::spawn(async move { a2.send(batch(60)).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!pending.is_finished(), "input 0 is over its credit");
        // Input 1 is not held back.
        b.send(batch(90)).await.expect("send on input 1");
        let other = rx.recv().await.expect("input 1");
        assert_eq!((other.from, other.weight()), (1, 90));
        drop(other);
        assert!(!pending.is_finished());
        // Processing the held message gives input 0 its credit back.
        drop(held);
        pending.await.expect("join").expect("send");
        let next = rx.recv().await.expect("second of input 0");
        assert_eq!((next.from, next.weight()), (0, 60));
    }

    #[tokio::test]
    async fn oversized_batch_still_passes_alone() {
        let (tx, mut rx) = channel(10);
        tx.with_input(3).send(batch(50)).await.expect("send");
        let env = rx.recv().await.expect("recv");
        assert_eq!(env.from, 3);
        assert_eq!(rx.queued_rows(), 0);
    }
}
