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
