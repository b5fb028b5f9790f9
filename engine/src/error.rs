//! Errors of the runtime, by phase.
//!
//! Callers match on the variant to learn *when* something went wrong (while
//! planning, configuring a connector, running, restoring state) and read the
//! message to learn *what*. Messages name the offending thing.

use arrow::error::ArrowError;

/// Result type used throughout Weir.
pub type Result<T, E = WeirError> = std::result::Result<T, E>;

/// An error of Weir, classified by the phase in which it happened.
#[derive(Debug, thiserror::Error)]
pub enum WeirError {
    /// The query or graph cannot be planned (unsupported construct, unknown table, type error).
    #[error("plan error: {0}")]
    Plan(String),
    /// A connector or job option is missing, unknown or malformed.
    #[error("config error: {0}")]
    Config(String),
    /// A source failed to read (after its own retries).
    #[error("source error: {0}")]
    Source(String),
    /// A sink failed to write (after its own retries).
    #[error("sink error: {0}")]
    Sink(String),
    /// An operator failed while processing data.
    #[error("execution error: {0}")]
    Execution(String),
    /// State could not be snapshotted or restored.
    #[error("state error: {0}")]
    State(String),
    /// The job was cancelled.
    #[error("job cancelled")]
    Cancelled,
    /// An I/O error, with what was being done.
    #[error("io error while {context}: {source}")]
    Io {
        /// What was being done (e.g. "opening /data/bids.json").
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An Arrow error.
    #[error("arrow error: {0}")]
    Arrow(#[from] ArrowError),
    /// An error from a library outside Weir (DataFusion, a client library).
    #[error("{context}: {source}")]
    External {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A broken invariant: likely a bug in Weir.
    #[error("internal error (likely a bug in Weir): {0}")]
    Internal(String),
}

impl WeirError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        WeirError::Io {
            context: context.into(),
            source,
        }
    }

    /// Wraps an external error with what was being done.
    pub fn external(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        WeirError::External {
            context: context.into(),
            source: Box::new(source),
        }
    }

    /// Adds context in front of the message, keeping the phase.
    pub fn context(self, context: impl std::fmt::Display) -> Self {
        match self {
            WeirError::Plan(m) => WeirError::Plan(format!("{context}: {m}")),
            WeirError::Config(m) => WeirError::Config(format!("{context}: {m}")),
            WeirError::Source(m) => WeirError::Source(format!("{context}: {m}")),
            WeirError::Sink(m) => WeirError::Sink(format!("{context}: {m}")),
            WeirError::Execution(m) => WeirError::Execution(format!("{context}: {m}")),
            WeirError::State(m) => WeirError::State(format!("{context}: {m}")),
            WeirError::Internal(m) => WeirError::Internal(format!("{context}: {m}")),
            WeirError::Io { context: c, source } => WeirError::Io {
                context: format!("{context}: {c}"),
                source,
            },
            WeirError::External { context: c, source } => WeirError::External {
                context: format!("{context}: {c}"),
                source,
            },
            other => other,
        }
    }
}
