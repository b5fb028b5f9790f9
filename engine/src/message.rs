//! What travels on the edges of a dataflow: data and in-band control.

use arrow::record_batch::RecordBatch;

/// Event time in milliseconds since the Unix epoch (Flink's `TIMESTAMP(3)`).
pub type EventTime = i64;

/// The state of an input's watermark.
///
/// A watermark `w` promises that no more rows with event time `<= w` are
/// expected (Flink's convention: a window `[start, end)` fires when the
/// watermark reaches `end - 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watermark {
    /// Event time has progressed to this point.
    EventTime(EventTime),
    /// The input is idle: it produces no data for now and must not hold the
    /// watermark of downstream operators back.
    Idle,
}

/// A checkpoint barrier: everything before it belongs to checkpoint `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Barrier {
    /// The checkpoint this barrier delimits.
    pub checkpoint_id: u64,
}

/// One message on a dataflow edge.
#[derive(Debug, Clone)]
pub enum Message {
    /// A batch of rows.
    Batch(RecordBatch),
    /// Watermark progress (or idleness) of the sending subtask.
    Watermark(Watermark),
    /// A checkpoint barrier.
    Barrier(Barrier),
    /// The sending subtask will send nothing more.
    EndOfStream,
}

impl Message {
    /// The number of rows this message counts for in a row-bounded channel
    /// (control messages count as one).
    pub fn weight(&self) -> usize {
        match self {
            Message::Batch(b) => b.num_rows().max(1),
            _ => 1,
        }
    }
}
