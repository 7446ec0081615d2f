#!/usr/bin/env bash
# Runs every check Surge's CI runs: formatting, lints, and the whole test suite (unit, API,
# race, crash, SSE and pagination tests against the real server, the store contract suite on
# SQLite and PostgreSQL, the engine property tests, and the distributed fault tests), then the
# API suite again on PostgreSQL + Redis and on PostgreSQL + a Redis Cluster. In between,
# Schemathesis fuzzes the API from its OpenAPI document (scripts/fuzz-api.sh).
#
# The embedded backend needs nothing installed. PostgreSQL and Redis are installed from the OS
# packages when missing, started on loopback in a temporary directory for this run (PostgreSQL,
# one Redis, and a 3-master Redis Cluster), and stopped at the end, whatever happens. The web
# UI's browser tests drive headless Chromium through chromedriver (the chromium and
# chromium-driver packages, installed the same way); their screenshots land in
# target/browser-screenshots/. Images on S3 are tested against moto's S3-compatible server
# (PyPI moto[server], installed when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
trap stop_services EXIT

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "deployment files: Dockerfile (hadolint), Kubernetes overlays (kustomize + kubernetes-validate)"
scripts/check-deploy.sh

step "services"
start_postgres
start_redis
ensure_faketime
ensure_chromium
ensure_moto

# The crash and distributed tests start their own processes and pick their own backend: they
# run once, in the first pass.
api_suite_on() {
  step "API suite on $1"
  if cargo nextest --version >/dev/null 2>&1; then
    SURGE_TEST_BACKEND="$1" cargo nextest run -p surge --test api --no-fail-fast \
      --failure-output final -E 'not test(/^(crash|distributed)::/)'
  else
    SURGE_TEST_BACKEND="$1" cargo test -p surge --test api --no-fail-fast -- --skip crash:: --skip distributed::
  fi
}

step "tests (every crate; the API suite on the embedded backend)"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast --failure-output final
else
  cargo test --workspace --no-fail-fast
fi

step "API fuzzing: Schemathesis, every check, from the OpenAPI document (embedded server)"
scripts/fuzz-api.sh "${CARGO_TARGET_DIR:-target}/debug/surge"

api_suite_on redis
api_suite_on redis-cluster
