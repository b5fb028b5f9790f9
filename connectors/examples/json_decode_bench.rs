//! Micro-benchmark of the JSON decoder on Nexmark bids (as the Kafka
//! benchmark's producer writes them): rows per CPU-second of decoding.
//!
//! ```text
//! cargo run --release -p weir-connectors --example json_decode_bench -- [rows]
//! ```

use std::time::Duration;

use weir_connectors::format::json::JsonDecoder;
use weir_connectors::format::JsonOptions;
use weir_connectors::kafka::produce::bid_schema;
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
    let lines: Vec<String> = (0..1000u64)
        .map(|i| {
            format!(
                r#"{{"auction":{},"bidder":{},"price":{},"channel":"channel-{}","url":"https://www.nexmark.com/item.htm?query=1&channel_id={}","dateTime":"2026-01-01 00:00:{:02}.{:03}","extra":""}}"#,
                1000 + i * 7 % 100,
                2000 + i * 13 % 1000,
                100 + i * 31 % 10_000,
                i % 5,
                i * 1_000_003 % 100_000,
                i % 60,
                i % 1000
            )
        })
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
