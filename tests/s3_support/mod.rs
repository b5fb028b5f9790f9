//! An S3 API emulator for the object-store checkpoint tests: moto's server
//! mode (PyPI `moto[server]`, pinned and installed by `.ci/moto.sh`).
//!
//! Found, in order: `WEIR_S3_ENDPOINT` (an emulator already running), else
//! `moto_server` from `WEIR_MOTO_SERVER` or the venv `.ci/moto.sh` installs
//! (`$WEIR_MOTO_VENV`, default `~/.cache/weir-moto-venv`), started here on a
//! free loopback port once per test binary, under a shell watchdog that
//! stops it when the test process exits. When it is unavailable the tests
//! print why and pass without running, unless `WEIR_REQUIRE_BROKERS` is set
//! (as `.ci/run` does): then they fail.
//!
//! Shared by `tests/checkpoint_crash.rs` and `engine/tests/checkpoint_s3.rs`.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A running emulator.
pub struct S3Emulator {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// Keeps the watchdog's stdin open while the tests run.
    _child: Option<Mutex<Child>>,
}

fn free_port() -> Option<u16> {
    TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()
        .map(|a| a.port())
}

fn moto_server() -> PathBuf {
    if let Some(p) = std::env::var_os("WEIR_MOTO_SERVER") {
        return PathBuf::from(p);
    }
    let venv = std::env::var_os("WEIR_MOTO_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/weir-moto-venv")
        });
    venv.join("bin/moto_server")
}

fn start() -> Result<S3Emulator, String> {
    if let Ok(e) = std::env::var("WEIR_S3_ENDPOINT") {
        if !e.trim().is_empty() {
            return Ok(S3Emulator {
                endpoint: e.trim().trim_end_matches('/').to_string(),
                _child: None,
            });
        }
    }
    let server = moto_server();
    if !server.is_file() {
        return Err(format!(
            "moto_server not installed ({} missing; run `bash .ci/moto.sh install`, \
             or set WEIR_MOTO_SERVER or WEIR_S3_ENDPOINT)",
            server.display()
        ));
    }
    let port = free_port().ok_or("no free port")?;
    let cmd = format!(
        "'{}' -H 127.0.0.1 -p {port} >/dev/null 2>&1 & p=$!; cat >/dev/null; kill $p 2>/dev/null",
        server.display()
    );
    let child = Command::new("bash")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting moto_server: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(format!(
                "moto_server did not listen on port {port} within 60 s"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(S3Emulator {
        endpoint: format!("http://127.0.0.1:{port}"),
        _child: Some(Mutex::new(child)),
    })
}

static EMULATOR: OnceLock<Result<S3Emulator, String>> = OnceLock::new();

/// The emulator, started on first use; `None` (with a printed reason) when
/// unavailable, or a failed test when `WEIR_REQUIRE_BROKERS` is set.
pub fn emulator() -> Option<&'static S3Emulator> {
    match EMULATOR.get_or_init(start) {
        Ok(e) => Some(e),
        Err(why) => {
            assert!(
                std::env::var_os("WEIR_REQUIRE_BROKERS").is_none(),
                "WEIR_REQUIRE_BROKERS is set but the S3 emulator is unavailable: {why}"
            );
            println!("SKIPPED: {why}");
            None
        }
    }
}

static BUCKETS: AtomicUsize = AtomicUsize::new(0);

impl S3Emulator {
    /// Creates a bucket no other test of this run uses and returns its name.
    /// (moto does not check signatures, so a plain PUT does.)
    pub fn new_bucket(&self, prefix: &str) -> String {
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            BUCKETS.fetch_add(1, Ordering::Relaxed)
        );
        let addr = self
            .endpoint
            .strip_prefix("http://")
            .expect("an http:// endpoint");
        let mut s = TcpStream::connect(addr).expect("connect to the S3 emulator");
        write!(
            s,
            "PUT /{name} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .expect("send CreateBucket");
        let mut reply = String::new();
        s.read_to_string(&mut reply).expect("CreateBucket reply");
        assert!(
            reply.starts_with("HTTP/1.1 200"),
            "CreateBucket {name}: {}",
            reply.lines().next().unwrap_or_default()
        );
        name
    }

    /// Storage options for `open_storage_with_options`.
    pub fn options(&self) -> Vec<(String, String)> {
        [
            ("aws_endpoint", self.endpoint.as_str()),
            ("aws_allow_http", "true"),
            ("aws_region", "us-east-1"),
            ("aws_access_key_id", "weir"),
            ("aws_secret_access_key", "weir"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// The same settings as environment variables, for a `weir` process.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "weir".into()),
            ("AWS_SECRET_ACCESS_KEY", "weir".into()),
        ]
    }
}
