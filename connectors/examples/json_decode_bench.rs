//! Micro-benchmark of the JSON decoder on Nexmark bids (10,000 generated
//! and encoded as the Kafka benchmark's producer writes them): rows per CPU-second of decoding.
//!
//! ```text
//! cargo run --release -p weir-connectors --example json_decode_bench -- [rows]
//! ```

use std::time::Duration;

use weir_connectors::format::encode::JsonEncoder;
use weir_connectors::format::json::JsonDecoder;
use weir_connectors::format::JsonOptions;
use weir_connectors::kafka::produce::bid_schema;
use weir_connectors::{generate_batches, NexmarkOptions, NexmarkTable};
use weir_engine::Result;

/// CPU time of this thread (nanosecond precision, from schedstat).
fn cpu_time() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map(Duration::from_nanos)
        .unwrap_or_default()
}

fn main() -> Result<()> {
    let rows: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000_000);
    // The first bids of the Kafka benchmark's input, encoded as its
    // producer encodes them.
    let mut options = NexmarkOptions::new(NexmarkTable::Bid);
    options.events_num = Some(100_000);
    let mut encoded = Vec::new();
    let encoder = JsonEncoder::new(&bid_schema(), &JsonOptions::default());
    for batch in generate_batches(&options, &bid_schema(), 0, 1, 10_000)? {
        encoder.encode(&batch, &mut encoded)?;
    }
    let lines: Vec<String> = String::from_utf8_lossy(&encoded)
        .lines()
        .map(str::to_string)
        .collect();
    println!("sample: {}", lines[1]);
    for _ in 0..3 {
        let mut d = JsonDecoder::new(bid_schema(), JsonOptions::default(), 8192)?;
        let start = cpu_time();
        let mut n = 0usize;
        for i in 0..rows {
            d.decode(lines[i % lines.len()].as_bytes())
                .map_err(weir_engine::WeirError::Internal)?;
            if d.len() >= 8192 {
                n += d.flush()?.map_or(0, |b| b.num_rows());
            }
        }
        n += d.flush()?.map_or(0, |b| b.num_rows());
        let cpu = cpu_time() - start;
        println!(
            "{n} rows in {:.3} s CPU: {:.0} ns/row, {:.2}M rows per CPU-second",
            cpu.as_secs_f64(),
            cpu.as_nanos() as f64 / n as f64,
            n as f64 / cpu.as_secs_f64() / 1e6
        );
    }
    Ok(())
}
