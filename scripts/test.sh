#!/usr/bin/env bash
# Runs every check Surge's CI runs: formatting, lints, and the whole test suite (unit, API,
# race, crash, SSE and pagination tests against the real server, and the store contract suite
# on SQLite and PostgreSQL).
#
# The embedded backend needs nothing installed. PostgreSQL and Redis are installed from the OS
# packages when missing, started on loopback in a temporary directory for this run (PostgreSQL,
# one Redis, and a 3-master Redis Cluster), and stopped at the end, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
trap stop_services EXIT

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "services"
start_postgres
start_redis

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast --failure-output final
else
  cargo test --workspace --no-fail-fast
fi
