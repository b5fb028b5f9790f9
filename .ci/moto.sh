#!/usr/bin/env bash
# The S3 API emulator for Weir's object-store checkpoint tests: moto's
# server mode, from PyPI, pinned below, in a virtualenv under ~/.cache.
#
#   bash .ci/moto.sh install   create the venv and pip install (only when
#                              moto_server is missing)
#   bash .ci/moto.sh path      print the moto_server path
#
# The tests (engine/tests/checkpoint_s3.rs, tests/checkpoint_crash.rs) start
# moto_server themselves on a free loopback port; they find it through
# $WEIR_MOTO_SERVER, else at the venv below. $WEIR_S3_ENDPOINT names an
# already running emulator instead.
set -euo pipefail
MOTO_VERSION=5.2.5
venv="${WEIR_MOTO_VENV:-$HOME/.cache/weir-moto-venv}"

install() {
  if [ -x "$venv/bin/moto_server" ]; then
    return 0
  fi
  command -v python3 >/dev/null || { echo "moto.sh: python3 is needed" >&2; exit 1; }
  if ! python3 -m venv "$venv" >&2; then
    # Debian's python3 keeps venv (ensurepip) in its own package.
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
  fi
  "$venv/bin/pip" install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION" >&2
}

case "${1:-}" in
  install) install ;;
  path) echo "$venv/bin/moto_server" ;;
  *) echo "usage: $0 install|path" >&2; exit 2 ;;
esac
