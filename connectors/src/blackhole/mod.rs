//! The `blackhole` connector: a sink that discards every row (the runtime
//! still counts them). It takes no options besides `'connector'`.

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use weir_engine::sink::{Sink, SinkFactory};
use weir_engine::Result;

use crate::options::ConnectorOptions;
use crate::{Connector, TableDescriptor};

/// The `blackhole` connector (sink only).
#[derive(Debug, Clone, Copy, Default)]
pub struct BlackholeConnector;

impl Connector for BlackholeConnector {
    fn name(&self) -> &str {
        "blackhole"
    }

    fn sink(&self, table: &TableDescriptor) -> Result<Arc<dyn SinkFactory>> {
        ConnectorOptions::new(table, "blackhole", &[], &[])?;
        Ok(Arc::new(BlackholeSinkFactory))
    }
}

/// Creates sinks that discard their input.
#[derive(Debug, Clone, Copy, Default)]
pub struct BlackholeSinkFactory;

impl SinkFactory for BlackholeSinkFactory {
    fn create(&self, _subtask: usize, _parallelism: usize) -> Result<Box<dyn Sink>> {
        Ok(Box::new(BlackholeSink))
    }

    fn describe(&self) -> String {
        "blackhole (discards rows)".into()
    }
}

/// A sink that discards its input.
#[derive(Debug, Clone, Copy, Default)]
pub struct BlackholeSink;

#[async_trait]
impl Sink for BlackholeSink {
    async fn write_batch(&mut self, _batch: RecordBatch) -> Result<()> {
        Ok(())
    }

    async fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}
