#!/usr/bin/env bash
# Kinesis emulators for Weir's tests and benchmarks, from the npm packages
# pinned in .ci/kinesis/package.json (kinesalite, kinesis-local).
#
#   bash .ci/kinesis.sh install   npm ci (only when node_modules is missing)
#   bash .ci/kinesis.sh start     install, start both on free loopback ports,
#                                 print `export WEIR_…_ENDPOINT=…` lines
#   bash .ci/kinesis.sh stop      stop what `start` started
#
# Typical use:  eval "$(bash .ci/kinesis.sh start)"; …; bash .ci/kinesis.sh stop
# The tests also start the emulators themselves when node_modules exists
# and the variables are not set.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="$here/kinesis"
state="${WEIR_KINESIS_STATE:-${TMPDIR:-/tmp}/weir-kinesis-$(id -u)}"

install() {
  if [ ! -d "$dir/node_modules/kinesalite" ] || [ ! -d "$dir/node_modules/kinesis-local" ]; then
    command -v npm >/dev/null || { echo "kinesis.sh: npm is needed (Node 18+)" >&2; exit 1; }
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
  fi
}

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

wait_port() {
  for _ in $(seq 1 600); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "kinesis.sh: nothing listens on port $1 after 60 s" >&2
  return 1
}

start() {
  install
  stop >/dev/null 2>&1 || true
  mkdir -p "$state"
  local p1 p2 p3
  p1="$(free_port)"
  node "$dir/node_modules/kinesalite/cli.js" --port "$p1" --createStreamMs 0 \
    --deleteStreamMs 0 --updateStreamMs 0 --shardLimit 100 >"$state/kinesalite.log" 2>&1 &
  echo $! >"$state/kinesalite.pid"
  p2="$(free_port)"; p3="$(free_port)"
  (
    export KINESIS_MOCK_CERT_PATH="$dir/node_modules/kinesis-local/server.json"
    export KINESIS_MOCK_PLAIN_PORT="$p2" KINESIS_MOCK_TLS_PORT="$p3" LOG_LEVEL=WARN
    for d in CREATE_STREAM DELETE_STREAM MERGE_SHARDS SPLIT_SHARD UPDATE_SHARD_COUNT \
             START_STREAM_ENCRYPTION STOP_STREAM_ENCRYPTION REGISTER_STREAM_CONSUMER \
             DEREGISTER_STREAM_CONSUMER UPDATE_STREAM_MODE; do
      export "${d}_DURATION=0ms"
    done
    exec node "$dir/node_modules/kinesis-local/main.js" >"$state/kinesis-local.log" 2>&1
  ) &
  echo $! >"$state/kinesis-local.pid"
  wait_port "$p1"
  wait_port "$p2"
  echo "export WEIR_KINESALITE_ENDPOINT=http://127.0.0.1:$p1"
  echo "export WEIR_KINESIS_LOCAL_ENDPOINT=http://127.0.0.1:$p2"
}

stop() {
  for name in kinesalite kinesis-local; do
    if [ -f "$state/$name.pid" ]; then
      kill "$(cat "$state/$name.pid")" 2>/dev/null || true
      rm -f "$state/$name.pid"
    fi
  done
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
