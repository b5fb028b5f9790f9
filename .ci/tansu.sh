#!/usr/bin/env bash
# A tansu broker (a Kafka-protocol broker, in-memory storage) for Weir's
# end-to-end Kafka tests.
#
#   .ci/tansu.sh install   install ~/.cargo/bin/tansu when missing or not
#                          yet patched: tansu 0.6.0 (--features dynostore)
#                          from crates.io sources with two patches:
#                          .ci/tansu/end-txn.patch (tansu 0.6.0 has no EndTxn
#                          route, so transactional producers could neither
#                          commit nor abort; the patch routes EndTxn to
#                          tansu's own Storage::txn_end) and
#                          .ci/tansu/storage-offsets.patch (a Fetch at an
#                          offset inside a record batch skipped the rest of
#                          that batch, and ListOffsets' latest offset was the
#                          last batch's base offset + 1; and a Fetch could
#                          skip a batch still being stored while a later one
#                          was, or repeat one ending before the offset asked
#                          for; all now as Kafka)
#                          and .ci/tansu/txn-offsets.patch (a transaction's
#                          offset commits take effect when it commits, as
#                          in Kafka; tansu deferred them while another
#                          transaction overlapped it, and lost them when the
#                          same producer began its next transaction) and
#                          .ci/tansu/broker-configs.patch (a broker reports
#                          transaction.max.timeout.ms, Kafka's default).
#                          10-15 min cold on 2 cores.
#   .ci/tansu.sh start     start one on a free loopback port; prints
#                          WEIR_TANSU_BOOTSTRAP=127.0.0.1:<port>
#   .ci/tansu.sh env       prints that line again for the running broker
#   .ci/tansu.sh stop      stop the broker this script started
#
# Use from a CI script:
#   .ci/tansu.sh install
#   eval "export $(.ci/tansu.sh start)"
#   trap '.ci/tansu.sh stop' EXIT
#
# State (pid, port, log) lives in $WEIR_TANSU_DIR (default
# ${TMPDIR:-/tmp}/weir-tansu-$UID). Only the process recorded there is
# ever stopped.
set -euo pipefail

dir="${WEIR_TANSU_DIR:-${TMPDIR:-/tmp}/weir-tansu-$(id -u)}"
mkdir -p "$dir"
pidfile="$dir/tansu.pid"
portfile="$dir/tansu.port"
logfile="$dir/tansu.log"

tansu_bin() {
  if [ -n "${TANSU:-}" ] && [ -x "$TANSU" ]; then echo "$TANSU"; return 0; fi
  if command -v tansu >/dev/null 2>&1; then command -v tansu; return 0; fi
  if [ -x "$HOME/.cargo/bin/tansu" ]; then echo "$HOME/.cargo/bin/tansu"; return 0; fi
  return 1
}

running() {
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

free_port() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
    return
  fi
  local p
  for _ in $(seq 1 100); do
    p=$(( 20000 + RANDOM % 40000 ))
    if ! port_open "$p"; then echo "$p"; return; fi
  done
  echo "tansu.sh: no free port found" >&2
  return 1
}

case "${1:-}" in
  install)
    here="$(cd "$(dirname "$0")" && pwd)"
    stamp="$HOME/.cargo/bin/.tansu-0.6.0-end-txn-storage-offsets-txn-offsets-2-broker-configs"
    if bin=$(tansu_bin) && { [ -n "${TANSU:-}" ] || [ -f "$stamp" ]; }; then
      echo "tansu.sh: $bin present ($("$bin" --version 2>/dev/null || echo unknown version))"
    else
      echo "tansu.sh: building tansu 0.6.0 with the patches in .ci/tansu/ (10-15 min cold)"
      work="$(mktemp -d)"
      # A throwaway package depending on tansu 0.6.0: `cargo fetch` brings
      # every crate of the build into cargo's cache, tansu's and
      # tansu-broker's sources among them.
      mkdir -p "$work/fetch/src"
      printf '[package]\nname = "fetch-tansu"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\ntansu = { version = "=0.6.0", features = ["dynostore"] }\n' >"$work/fetch/Cargo.toml"
      : >"$work/fetch/src/lib.rs"
      (cd "$work/fetch" && cargo fetch -q)
      cache="${CARGO_HOME:-$HOME/.cargo}/registry/cache"
      for c in tansu-0.6.0 tansu-broker-0.6.0 tansu-storage-0.6.0; do
        crate=$(ls "$cache"/*/"$c.crate" | head -1)
        tar xzf "$crate" -C "$work"
      done
      patch -p1 -d "$work/tansu-broker-0.6.0" <"$here/tansu/end-txn.patch"
      patch -p1 -d "$work/tansu-storage-0.6.0" <"$here/tansu/storage-offsets.patch"
      patch -p1 -d "$work/tansu-storage-0.6.0" <"$here/tansu/txn-offsets.patch"
      patch -p1 -d "$work/tansu-storage-0.6.0" <"$here/tansu/broker-configs.patch"
      printf '\n[patch.crates-io]\ntansu-broker = { path = "../tansu-broker-0.6.0" }\ntansu-storage = { path = "../tansu-storage-0.6.0" }\n' >>"$work/tansu-0.6.0/Cargo.toml"
      # tansu's own Cargo.lock pins the build; only the patched crate is re-locked.
      # $WEIR_TANSU_TARGET keeps the build's target dir for a later rebuild.
      target="${WEIR_TANSU_TARGET:-$work/target}"
      (cd "$work/tansu-0.6.0" && CARGO_TARGET_DIR="$target" cargo build --release --features dynostore --bin tansu)
      mkdir -p "$HOME/.cargo/bin"
      cp "$target/release/tansu" "$HOME/.cargo/bin/.tansu.new"
      mv -f "$HOME/.cargo/bin/.tansu.new" "$HOME/.cargo/bin/tansu"
      touch "$stamp"
      rm -rf "$work"
      echo "tansu.sh: installed $HOME/.cargo/bin/tansu (0.6.0 + EndTxn + log offsets + transactional offsets + broker configs)"
    fi
    ;;
  start)
    if running; then
      echo "WEIR_TANSU_BOOTSTRAP=127.0.0.1:$(cat "$portfile")"
      exit 0
    fi
    bin=$(tansu_bin) || { echo "tansu.sh: tansu not installed (run: $0 install)" >&2; exit 1; }
    port=$(free_port)
    url="tcp://127.0.0.1:$port"
    nohup "$bin" broker \
      --listener-url "$url" \
      --advertised-listener-url "$url" \
      --storage-engine memory://tansu/ \
      >"$logfile" 2>&1 </dev/null &
    echo $! >"$pidfile"
    echo "$port" >"$portfile"
    for _ in $(seq 1 150); do
      if port_open "$port"; then
        echo "WEIR_TANSU_BOOTSTRAP=127.0.0.1:$port"
        exit 0
      fi
      if ! running; then break; fi
      sleep 0.2
    done
    echo "tansu.sh: tansu did not start listening on $port; log $logfile:" >&2
    tail -20 "$logfile" >&2 || true
    "$0" stop >/dev/null 2>&1 || true
    exit 1
    ;;
  env)
    running || { echo "tansu.sh: not running" >&2; exit 1; }
    echo "WEIR_TANSU_BOOTSTRAP=127.0.0.1:$(cat "$portfile")"
    ;;
  stop)
    if running; then
      pid=$(cat "$pidfile")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      kill -9 "$pid" 2>/dev/null || true
      echo "tansu.sh: stopped tansu (pid $pid)"
    fi
    rm -f "$pidfile" "$portfile"
    ;;
  *)
    echo "usage: $0 install|start|env|stop" >&2
    exit 2
    ;;
esac
