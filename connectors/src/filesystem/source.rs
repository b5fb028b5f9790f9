//! The filesystem source: one split per file; reading and decoding run on
//! tokio's blocking pool, a batch at a time.
//!
//! Positions (checkpoints): one per file, split the file's path, position
//! `<byte offset>:<line>` for JSON lines and CSV (where the next record
//! starts, and the number of lines before it) or the number of rows read
//! for Parquet. A restored file is reopened and read from there (CSV
//! without its header line again); a file not in the checkpoint is read
//! from its start.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use async_trait::async_trait;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;
use weir_engine::source::{MalformedRecord, Source, SourceContext, SourceFactory, SplitPosition};
use weir_engine::{Result, WeirError};

use super::options::{FileFormat, FilesystemOptions};
use crate::format::columns::RowBuilder;
use crate::format::csv::CsvDecoder;
use crate::format::json::JsonDecoder;
use crate::format::OnError;
use crate::TableDescriptor;

/// At most this many files of one subtask are open at a time; they are
/// read in turn, a batch each, so their watermarks advance together.
const MAX_OPEN_FILES: usize = 64;

/// Creates filesystem source subtasks for one table.
pub struct FileSourceFactory {
    options: Arc<FilesystemOptions>,
    schema: SchemaRef,
    files: Arc<Vec<PathBuf>>,
}

impl FileSourceFactory {
    /// Checks the declared columns against the format and lists the files
    /// (once, so every subtask sees the same list).
    pub(crate) fn new(table: &TableDescriptor, options: FilesystemOptions) -> Result<Self> {
        let ctx = |e: WeirError| e.context(format!("table {}", table.name));
        if options.format != FileFormat::Parquet {
            RowBuilder::new(table.schema.clone(), options.format.name(), 0).map_err(ctx)?;
        }
        let files = list_files(&options.path).map_err(|m| {
            WeirError::Config(format!(
                "table {}: 'path' = '{}': {m}",
                table.name,
                options.path.display()
            ))
        })?;
        Ok(Self {
            options: Arc::new(options),
            schema: table.schema.clone(),
            files: Arc::new(files),
        })
    }

    /// The files read, in split order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

/// The files of `path`: itself if a file; else the directory's regular
/// files in name order, skipping names starting with `.` or `_`.
fn list_files(path: &Path) -> std::result::Result<Vec<PathBuf>, String> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "does not exist".to_string(),
        _ => e.to_string(),
    })?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        let p = entry.path();
        if std::fs::metadata(&p).map(|m| m.is_file()).unwrap_or(false) {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

impl SourceFactory for FileSourceFactory {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn create(&self, subtask: usize, parallelism: usize) -> Result<Box<dyn Source>> {
        let parallelism = parallelism.max(1);
        let splits = self
            .files
            .iter()
            .enumerate()
            .filter(|(i, _)| i % parallelism == subtask)
            .map(|(_, p)| FileSplit {
                path: p.clone(),
                name: p.display().to_string(),
                reading: None,
                position: 0,
                line: 0,
                done: false,
            })
            .collect();
        Ok(Box::new(FileSource {
            options: self.options.clone(),
            schema: self.schema.clone(),
            splits,
        }))
    }

    fn describe(&self) -> String {
        format!(
            "filesystem {} {} ({} file{})",
            self.options.format.name(),
            self.options.path.display(),
            self.files.len(),
            if self.files.len() == 1 { "" } else { "s" }
        )
    }
}

/// One file being read.
struct FileSplit {
    path: PathBuf,
    name: String,
    /// The open reader (`None` before the first read and after the end).
    reading: Option<Reading>,
    /// Bytes consumed (rows for Parquet).
    position: u64,
    /// Lines consumed (JSON lines and CSV).
    line: u64,
    done: bool,
}

impl FileSplit {
    /// The position as stored in a checkpoint (see the module docs).
    fn checkpoint_position(&self, format: FileFormat) -> String {
        match format {
            FileFormat::Parquet => self.position.to_string(),
            _ => format!("{}:{}", self.position, self.line),
        }
    }
}

/// One subtask of a filesystem source.
struct FileSource {
    options: Arc<FilesystemOptions>,
    schema: SchemaRef,
    splits: Vec<FileSplit>,
}

#[async_trait]
impl Source for FileSource {
    fn split_count(&self) -> usize {
        self.splits.len()
    }

    async fn run(&mut self, ctx: &mut SourceContext) -> Result<()> {
        let mut pending: VecDeque<usize> = (0..self.splits.len()).collect();
        while !pending.is_empty() {
            let round: Vec<usize> = pending.iter().take(MAX_OPEN_FILES).copied().collect();
            for local in round {
                if ctx.is_cancelled() {
                    return Ok(());
                }
                self.step(local, ctx).await?;
            }
            pending.retain(|&i| !self.splits[i].done);
        }
        Ok(())
    }

    fn positions(&self) -> Vec<SplitPosition> {
        self.splits
            .iter()
            .map(|s| SplitPosition {
                split: s.name.clone(),
                position: s.checkpoint_position(self.options.format),
            })
            .collect()
    }

    fn supports_checkpoints(&self) -> bool {
        true
    }

    fn restore_positions(&mut self, positions: &[SplitPosition]) -> Result<()> {
        let format = self.options.format;
        for p in positions {
            let Some(split) = self.splits.iter_mut().find(|s| s.name == p.split) else {
                return Err(WeirError::State(format!(
                    "checkpointed file {} is not read by this subtask (were files removed, \
                     or the parallelism changed?)",
                    p.split
                )));
            };
            let bad = || {
                WeirError::State(format!(
                    "checkpointed position '{}' of file {} is not {}",
                    p.position,
                    p.split,
                    if format == FileFormat::Parquet {
                        "a row count"
                    } else {
                        "<byte offset>:<line>"
                    }
                ))
            };
            let (position, line) = match format {
                FileFormat::Parquet => (p.position.parse().map_err(|_| bad())?, 0),
                _ => {
                    let (b, l) = p.position.split_once(':').ok_or_else(bad)?;
                    (b.parse().map_err(|_| bad())?, l.parse().map_err(|_| bad())?)
                }
            };
            split.position = position;
            split.line = line;
            split.reading = None;
            split.done = false;
        }
        Ok(())
    }
}

impl FileSource {
    /// Reads one batch of split `local` on the blocking pool, reports its
    /// malformed records and emits it.
    async fn step(&mut self, local: usize, ctx: &mut SourceContext) -> Result<()> {
        let split = &mut self.splits[local];
        let reading = split.reading.take();
        let path = split.path.clone();
        let name = split.name.clone();
        let options = self.options.clone();
        let schema = self.schema.clone();
        let resume = (split.position, split.line);
        let (reading, result) = tokio::task::spawn_blocking(move || {
            let mut reading = match reading {
                Some(r) => r,
                None => match Reading::open(&path, &name, &options, schema, resume) {
                    Ok(r) => r,
                    Err(e) => return (None, Err(e)),
                },
            };
            let result = reading.read_batch(&name, &options);
            (Some(reading), result)
        })
        .await
        .map_err(|e| WeirError::Internal(format!("file reader task failed: {e}")))?;
        let step = result?;
        split.position = step.position;
        split.line = step.line;
        for (line, reason) in step.malformed {
            ctx.report_malformed(MalformedRecord {
                location: format!("{}:{line}", split.name),
                reason,
            });
        }
        if step.eof {
            split.done = true;
        } else {
            split.reading = reading;
        }
        let position = split.checkpoint_position(self.options.format);
        // An empty batch still moves the checkpointed position (past
        // malformed records, or to the end of the file).
        let batch = step
            .batch
            .unwrap_or_else(|| RecordBatch::new_empty(self.schema.clone()));
        ctx.emit_at(local, batch, position).await
    }
}

/// What one read produced.
struct Step {
    batch: Option<RecordBatch>,
    /// (line, reason) of each malformed record skipped.
    malformed: Vec<(u64, String)>,
    eof: bool,
    position: u64,
    line: u64,
}

enum Reader {
    Lines {
        reader: BufReader<File>,
        buf: Vec<u8>,
        decoder: JsonDecoder,
    },
    Csv {
        reader: ::csv::Reader<File>,
        record: ::csv::ByteRecord,
        decoder: CsvDecoder,
    },
    Parquet {
        reader: ParquetRecordBatchReader,
        /// For each declared column, its index in the projected batches.
        mapping: Vec<usize>,
        schema: SchemaRef,
    },
}

/// An open file with its decoder and position.
struct Reading {
    reader: Reader,
    line: u64,
    position: u64,
}

fn io_err<'a>(name: &'a str, what: &'static str) -> impl Fn(std::io::Error) -> WeirError + 'a {
    move |e| WeirError::io(format!("{what} {name}"), e)
}

impl Reading {
    /// Opens `path` at `(position, line)` (`(0, 0)`: its start; else a
    /// position of a previous reading of the file).
    fn open(
        path: &Path,
        name: &str,
        options: &FilesystemOptions,
        schema: SchemaRef,
        (position, line): (u64, u64),
    ) -> Result<Self> {
        let mut file = File::open(path).map_err(io_err(name, "opening"))?;
        let reader = match options.format {
            FileFormat::Json => {
                if position > 0 {
                    file.seek(SeekFrom::Start(position))
                        .map_err(io_err(name, "seeking in"))?;
                }
                Reader::Lines {
                    reader: BufReader::with_capacity(1 << 16, file),
                    buf: Vec::new(),
                    decoder: JsonDecoder::new(schema, options.json.clone(), options.batch_size)?,
                }
            }
            FileFormat::Csv => {
                let decoder = CsvDecoder::new(schema, options.csv.clone(), options.batch_size)?;
                let mut builder = decoder.reader_builder();
                builder.has_headers(options.csv.ignore_first_line);
                let mut reader = builder.from_reader(file);
                if position > 0 {
                    let mut at = ::csv::Position::new();
                    at.set_byte(position).set_line(line + 1);
                    reader
                        .seek(at)
                        .map_err(|e| WeirError::Source(format!("seeking in {name}: {e}")))?;
                }
                Reader::Csv {
                    reader,
                    record: ::csv::ByteRecord::new(),
                    decoder,
                }
            }
            FileFormat::Parquet => {
                let builder = ParquetRecordBatchReaderBuilder::try_new(file)
                    .map_err(|e| WeirError::Source(format!("{name}: not a Parquet file: {e}")))?;
                let file_schema = builder.schema().clone();
                let mut roots = Vec::with_capacity(schema.fields().len());
                for f in schema.fields() {
                    let i = file_schema.index_of(f.name()).map_err(|_| {
                        WeirError::Source(format!("{name}: the file has no column '{}'", f.name()))
                    })?;
                    roots.push(i);
                }
                let mut sorted = roots.clone();
                sorted.sort_unstable();
                sorted.dedup();
                let mapping = roots
                    .iter()
                    .map(|r| sorted.iter().position(|s| s == r).unwrap_or(0))
                    .collect();
                let mask = ProjectionMask::roots(builder.parquet_schema(), sorted);
                let reader = builder
                    .with_projection(mask)
                    .with_batch_size(options.batch_size)
                    .with_offset(usize::try_from(position).unwrap_or(usize::MAX))
                    .build()
                    .map_err(|e| WeirError::Source(format!("{name}: {e}")))?;
                Reader::Parquet {
                    reader,
                    mapping,
                    schema,
                }
            }
        };
        Ok(Self {
            reader,
            line,
            position,
        })
    }

    /// Reads up to `batch_size` records (valid or not).
    fn read_batch(&mut self, name: &str, options: &FilesystemOptions) -> Result<Step> {
        let fail = options.on_error == OnError::Fail;
        let mut malformed = Vec::new();
        let mut eof = false;
        let batch = match &mut self.reader {
            Reader::Lines {
                reader,
                buf,
                decoder,
            } => {
                let mut records = 0;
                while records < options.batch_size {
                    buf.clear();
                    let n = reader
                        .read_until(b'\n', buf)
                        .map_err(io_err(name, "reading"))?;
                    if n == 0 {
                        eof = true;
                        break;
                    }
                    self.line += 1;
                    self.position += n as u64;
                    let mut rec: &[u8] = buf;
                    while let Some((b'\n' | b'\r', rest)) = rec.split_last() {
                        rec = rest;
                    }
                    match decoder.decode(rec) {
                        Ok(true) => records += 1,
                        Ok(false) => {}
                        Err(reason) => {
                            if fail {
                                return Err(WeirError::Source(format!(
                                    "{name}:{}: malformed record: {reason}",
                                    self.line
                                )));
                            }
                            records += 1;
                            malformed.push((self.line, reason));
                        }
                    }
                }
                decoder.flush()?
            }
            Reader::Csv {
                reader,
                record,
                decoder,
            } => {
                let mut records = 0;
                while records < options.batch_size {
                    match reader.read_byte_record(record) {
                        Ok(false) => {
                            eof = true;
                            break;
                        }
                        Ok(true) => {
                            records += 1;
                            let line = record.position().map_or(self.line + 1, |p| p.line());
                            self.line = line;
                            if let Err(reason) = decoder.decode_record(record) {
                                if fail {
                                    return Err(WeirError::Source(format!(
                                        "{name}:{line}: malformed record: {reason}"
                                    )));
                                }
                                malformed.push((line, reason));
                            }
                        }
                        Err(e) => {
                            let line = e.position().map_or(self.line + 1, |p| p.line());
                            if let ::csv::ErrorKind::Io(_) = e.kind() {
                                return Err(WeirError::Source(format!("{name}:{line}: {e}")));
                            }
                            if fail {
                                return Err(WeirError::Source(format!(
                                    "{name}:{line}: malformed record: {e}"
                                )));
                            }
                            records += 1;
                            malformed.push((line, e.to_string()));
                        }
                    }
                }
                self.position = reader.position().byte();
                self.line = reader.position().line().saturating_sub(1);
                decoder.flush()?
            }
            Reader::Parquet {
                reader,
                mapping,
                schema,
            } => match reader.next() {
                None => {
                    eof = true;
                    None
                }
                Some(Err(e)) => return Err(WeirError::Source(format!("{name}: {e}"))),
                Some(Ok(b)) => {
                    let mut columns: Vec<ArrayRef> = Vec::with_capacity(mapping.len());
                    for (field, &i) in schema.fields().iter().zip(mapping.iter()) {
                        let col = b.column(i);
                        if col.data_type() == field.data_type() {
                            columns.push(col.clone());
                        } else {
                            columns.push(arrow::compute::cast(col, field.data_type()).map_err(
                                |e| {
                                    WeirError::Source(format!(
                                        "{name}: column '{}' ({}) cannot be read as {}: {e}",
                                        field.name(),
                                        col.data_type(),
                                        field.data_type()
                                    ))
                                },
                            )?);
                        }
                    }
                    self.position += b.num_rows() as u64;
                    let opts = RecordBatchOptions::new().with_row_count(Some(b.num_rows()));
                    Some(
                        RecordBatch::try_new_with_options(schema.clone(), columns, &opts)
                            .map_err(|e| WeirError::Source(format!("{name}: {e}")))?,
                    )
                }
            },
        };
        Ok(Step {
            batch,
            malformed,
            eof,
            position: self.position,
            line: self.line,
        })
    }
}
