#!/usr/bin/env bash
# Runs every check Surge's CI runs: formatting, lints, and the whole test suite (unit, API,
# race, crash, SSE and pagination tests against the real server).
#
# The embedded backend needs nothing installed. (The distributed backend's PostgreSQL and Redis
# set-ups are started here too once that backend exists.)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast --failure-output final
else
  cargo test --workspace --no-fail-fast
fi
