#!/usr/bin/env bash
# Runs every Skiff test on a fresh machine: installs what the tests need (Debian packages, a Python
# venv with Kafka clients), then formatting, lints, and the whole test suite. `.ci/run` calls this.
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '\n==> %s\n' "$*"; }

# Debian packages the tests use; installed only when missing.
APT_PACKAGES=()
# replication: raft 0.7's prost-codec generates its protobuf types with protoc at build time
APT_PACKAGES+=(protobuf-compiler)
# --- e2e (tests/e2e): Debian packages the real-client tests use ---
APT_PACKAGES+=(kcat)
# --- end e2e ---
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

# --- e2e (tests/e2e): the clusters listen on <n>9092/<n>9093; from 39092 up those ports lie in Linux's ephemeral
# range, where a client connection that took one made a starting broker fail with EADDRINUSE. Reserved where allowed.
E2E_PORTS=39092-39093,49092-49093,59092-59093
RESERVED_PORTS=/proc/sys/net/ipv4/ip_local_reserved_ports
if [ -w "$RESERVED_PORTS" ] && ! grep -q 39092 "$RESERVED_PORTS"; then
  current=$(cat "$RESERVED_PORTS")
  echo "${current:+$current,}$E2E_PORTS" >"$RESERVED_PORTS" 2>/dev/null || true
fi
# --- end e2e ---

# --- e2e (tests/e2e): Python venv with the real Kafka clients; pip runs only when requirements changed ---
E2E_REQ=tests/e2e/requirements.txt
E2E_STAMP=.venv/.e2e-requirements.sha256
[ -x .venv/bin/python ] || { step "creating .venv"; python3 -m venv .venv; }
if [ "$(cat "$E2E_STAMP" 2>/dev/null)" != "$(sha256sum "$E2E_REQ" | cut -d' ' -f1)" ]; then
  step "pip install -r $E2E_REQ"
  .venv/bin/pip install -q --disable-pip-version-check -r "$E2E_REQ"
  sha256sum "$E2E_REQ" | cut -d' ' -f1 >"$E2E_STAMP"
fi
# --- end e2e ---

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
cargo nextest run --workspace --locked --no-fail-fast

# --- e2e (tests/e2e): the broker binary against real Kafka clients (confluent-kafka, kafka-python, kcat) ---
step "e2e: cargo build -p skiff-broker -p skiff-ctl"
cargo build -q -p skiff-broker -p skiff-ctl --locked
step "e2e: pytest tests/e2e"
.venv/bin/python -m pytest -q -rs tests/e2e
# --- end e2e ---
