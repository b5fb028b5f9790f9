//! The `print` connector: writes every row to standard output the way
//! Flink's print connector does.
//!
//! Each row is a line `+I[v1, v2, …]` (values as Flink prints them:
//! timestamps `2026-01-01 00:00:10.000`, NULL `null`). The line is
//! prefixed, as in Flink, by `<print-identifier>:<subtask+1>> ` when the
//! sink has an identifier and runs with more than one subtask,
//! `<print-identifier>> ` with an identifier and one subtask, `<subtask+1>> `
//! without an identifier and several subtasks, and nothing otherwise.
//!
//! Options: `'print-identifier'` (none by default), `'standard-error'` =
//! `'true'` to print to standard error (default false).

use std::io::Write;
use std::sync::{Arc, Mutex};

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use weir_engine::sink::{Sink, SinkFactory};
use weir_engine::{Result, WeirError};

use crate::format::encode::encode_print_rows;
use crate::options::ConnectorOptions;
use crate::{Connector, TableDescriptor};

/// Typed options of a `print` table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrintOptions {
    /// `'print-identifier'`: a prefix identifying the sink's lines.
    pub identifier: Option<String>,
    /// `'standard-error'`: print to standard error instead of standard output.
    pub standard_error: bool,
}

impl PrintOptions {
    /// Parses the options of `table`.
    pub fn parse(table: &TableDescriptor) -> Result<Self> {
        let o =
            ConnectorOptions::new(table, "print", &["print-identifier", "standard-error"], &[])?;
        Ok(Self {
            identifier: o
                .get("print-identifier")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            standard_error: o.bool("standard-error")?.unwrap_or(false),
        })
    }

    /// The prefix of subtask `subtask`'s lines (Flink's rule).
    pub fn prefix(&self, subtask: usize, parallelism: usize) -> String {
        match (&self.identifier, parallelism > 1) {
            (Some(id), true) => format!("{id}:{}> ", subtask + 1),
            (Some(id), false) => format!("{id}> "),
            (None, true) => format!("{}> ", subtask + 1),
            (None, false) => String::new(),
        }
    }
}

/// The `print` connector (sink only).
#[derive(Debug, Clone, Copy, Default)]
pub struct PrintConnector;

impl Connector for PrintConnector {
    fn name(&self) -> &str {
        "print"
    }

    fn sink(&self, table: &TableDescriptor) -> Result<Arc<dyn SinkFactory>> {
        Ok(Arc::new(PrintSinkFactory::new(PrintOptions::parse(table)?)))
    }
}

/// Where printed lines go.
#[derive(Debug, Clone)]
enum Target {
    Stdout,
    Stderr,
    Buffer(Arc<Mutex<Vec<u8>>>),
}

/// Creates print sink subtasks.
#[derive(Debug, Clone)]
pub struct PrintSinkFactory {
    options: PrintOptions,
    target: Target,
}

impl PrintSinkFactory {
    /// A factory printing to standard output (or error, per the options).
    pub fn new(options: PrintOptions) -> Self {
        let target = if options.standard_error {
            Target::Stderr
        } else {
            Target::Stdout
        };
        Self { options, target }
    }

    /// A factory whose sinks append their lines to the returned buffer
    /// instead of printing (for tests).
    pub fn to_buffer(options: PrintOptions) -> (Self, Arc<Mutex<Vec<u8>>>) {
        let buf = Arc::new(Mutex::new(Vec::new()));
        (
            Self {
                options,
                target: Target::Buffer(buf.clone()),
            },
            buf,
        )
    }
}

impl SinkFactory for PrintSinkFactory {
    fn create(&self, subtask: usize, parallelism: usize) -> Result<Box<dyn Sink>> {
        Ok(Box::new(PrintSink {
            prefix: self.options.prefix(subtask, parallelism),
            target: self.target.clone(),
            text: String::new(),
        }))
    }

    fn describe(&self) -> String {
        let to = if self.options.standard_error {
            "stderr"
        } else {
            "stdout"
        };
        match &self.options.identifier {
            Some(id) => format!("print to {to} ({id})"),
            None => format!("print to {to}"),
        }
    }
}

/// One subtask of a print sink.
struct PrintSink {
    prefix: String,
    target: Target,
    text: String,
}

#[async_trait]
impl Sink for PrintSink {
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<()> {
        self.text.clear();
        encode_print_rows(&batch, &self.prefix, &mut self.text)?;
        let bytes = self.text.as_bytes();
        let result = match &self.target {
            Target::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(bytes).and_then(|_| out.flush())
            }
            Target::Stderr => {
                let mut out = std::io::stderr().lock();
                out.write_all(bytes).and_then(|_| out.flush())
            }
            Target::Buffer(buf) => {
                let mut b = buf
                    .lock()
                    .map_err(|_| WeirError::Sink("print buffer poisoned".into()))?;
                b.extend_from_slice(bytes);
                Ok(())
            }
        };
        result.map_err(|e| WeirError::io("printing rows", e))
    }

    async fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_follow_flink() {
        let with = PrintOptions {
            identifier: Some("out".into()),
            standard_error: false,
        };
        assert_eq!(with.prefix(1, 4), "out:2> ");
        assert_eq!(with.prefix(0, 1), "out> ");
        let without = PrintOptions::default();
        assert_eq!(without.prefix(2, 3), "3> ");
        assert_eq!(without.prefix(0, 1), "");
    }
}
