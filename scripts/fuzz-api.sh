#!/usr/bin/env bash
# Fuzzes Surge's HTTP API from its own OpenAPI document with Schemathesis (every check, a
# bounded number of examples per operation) against a fresh embedded server, signed in as an
# admin so every operation is reached. Passes only with 0 failures: no 5xx, no status or
# shape the document does not list, no request the document calls valid refused.
#
#   scripts/fuzz-api.sh [path/to/surge]     (default: the debug build, built if missing)
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
EXAMPLES=${SURGE_FUZZ_EXAMPLES:-25}
surge=${1:-${CARGO_TARGET_DIR:-target}/debug/surge}
[ -x "$surge" ] || cargo build -q -p surge

# The CLI from Python's own scripts directory: a freshly installed console script need not be
# on PATH yet (pyenv, for one, only finds it after a rehash).
st="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/st"
if ! "$st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "installing schemathesis $SCHEMATHESIS_VERSION from PyPI"
  python3 -m pip install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
command -v curl >/dev/null || {
  echo "error: curl is needed to set up the fuzzing run; install the curl package" >&2
  exit 1
}

dir=$(mktemp -d -t surge-fuzz-XXXXXX)
server=
stand_in=
cleanup() {
  for pid in $server $stand_in; do
    kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  done
  rm -rf "$dir"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
base="http://127.0.0.1:$port"
# The ratings' upstream: the stand-in LeetCode, on loopback (this run never leaves the machine).
upstream_port=$(free_port)
"$surge" mock-leetcode --addr "127.0.0.1:$upstream_port" >"$dir/stand-in.log" 2>&1 &
stand_in=$!
# Sign-ups from one address are not limited here: the fuzzer signs up many accounts.
SURGE_LIMITS__SIGNUPS_PER_IP_PER_HOUR=0 \
  SURGE_RATINGS__UPSTREAM_URL="http://127.0.0.1:$upstream_port/graphql" \
  SURGE_RATINGS__UPSTREAM_PER_SECOND=1000 \
  "$surge" serve --listen "127.0.0.1:$port" --data-dir "$dir/data" >"$dir/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do
  curl -sf "$base/healthz" >/dev/null && break
  sleep 0.1
done

json() { python3 -c "import json, sys; print(json.load(sys.stdin)[\"$1\"])"; }
post() { # path token body → the created record's id
  curl -sf -X POST "$base/api/v1$1" -H "authorization: Bearer $2" \
    -H 'content-type: application/json' -d "$3" | json id
}
account='{"email": "fuzz@surge.test", "password": "fuzz-password", "nickname": "fuzz"}'
curl -sf -X POST "$base/api/v1/auth/signup" -H 'content-type: application/json' \
  -d "$account" >/dev/null
"$surge" admin grant fuzz@surge.test --data-dir "$dir/data" >/dev/null
token=$(curl -sf -X POST "$base/api/v1/auth/login" -H 'content-type: application/json' \
  -d "$account" | json access_token)

# Records for valid requests to reach: another account's auction (the fuzzer may bid on it),
# and a screening two days ahead in an 8 x 10 hall.
seller=$(curl -sf -X POST "$base/api/v1/auth/signup" -H 'content-type: application/json' \
  -d '{"email": "seller@surge.test", "password": "fuzz-password", "nickname": "seller"}' \
  | json access_token)
in_days() { python3 -c "import datetime as d; print((d.datetime.now(d.timezone.utc) + d.timedelta(days=$1)).strftime('%Y-%m-%dT%H:%M:%SZ'))"; }
SURGE_FUZZ_AUCTION=$(post /auctions "$seller" \
  "{\"title\": \"Fuzz\", \"starting_price\": 100, \"ends_at\": \"$(in_days 1)\"}")
SURGE_FUZZ_THEATER=$(post /admin/theaters "$token" '{"name": "Fuzz hall", "rows": 8, "cols": 10}')
SURGE_FUZZ_MOVIE=$(post /admin/movies "$token" '{"title": "Fuzz", "grade": "ALL",
  "genre": "DRAMA", "release_date": "2026-01-01", "thumbnail_url": "https://img.test/f.png",
  "running_minutes": 90}')
SURGE_FUZZ_SCREENING=$(post /admin/screenings "$token" "{\"movie_id\": \"$SURGE_FUZZ_MOVIE\",
  \"theater_id\": \"$SURGE_FUZZ_THEATER\", \"starts_at\": \"$(in_days 2)\"}")
# A store of the fuzzing account's own, with a live deal.
SURGE_FUZZ_STORE=$(post /stores "$token" '{"name": "Fuzz bakery", "category": "dessert",
  "lat": 37.5558, "lng": 126.9014, "address": "Mangwon-ro 1"}')
SURGE_FUZZ_DEAL=$(post "/stores/$SURGE_FUZZ_STORE/deals" "$token" "{\"title\": \"Boxes\",
  \"original_price\": 12000, \"deal_price\": 6000, \"quantity\": 10, \"ends_at\": \"$(in_days 1)\"}")
# Points for the fuzzer's orders (its deal's whole stock costs 60,000).
curl -sf -X POST "$base/api/v1/me/points/top-up" -H "authorization: Bearer $token" \
  -H 'content-type: application/json' -d '{"amount": 1000000}' >/dev/null
export SURGE_FUZZ_AUCTION SURGE_FUZZ_THEATER SURGE_FUZZ_MOVIE SURGE_FUZZ_SCREENING \
  SURGE_FUZZ_STORE SURGE_FUZZ_DEAL

status=0
# Run from the scratch dir: Schemathesis keeps its cache in the working directory.
# The event streams (`…/events`) are left out: a valid request to one never ends, so each would
# only wait for the request timeout (minutes per stream); their refusals, frames and replay are
# covered by the API tests (sse.rs, deal_events.rs).
hooks_dir=$(pwd)/scripts/fuzz
# One worker: with two threads, CPython 3.11's `ast.parse` (used by Hypothesis to describe its
# strategies) now and then fails with "SystemError: AST constructor recursion depth mismatch"
# (python/cpython#106905), a Schemathesis runtime error that says nothing about Surge.
(cd "$dir" && SCHEMATHESIS_HOOKS=hooks PYTHONPATH="$hooks_dir" \
  "$st" --config-file "$hooks_dir/schemathesis.toml" run "$base/api/openapi.json" \
  --checks all \
  --header "Authorization: Bearer $token" \
  --max-examples "$EXAMPLES" \
  --seed 20261202 \
  --workers 1 \
  --request-timeout 5 \
  --exclude-path-regex '/events$' \
  --no-color ${SURGE_FUZZ_ARGS:-}) || status=$?
if [ "$status" != 0 ]; then
  echo "--- server log (tail) ---"
  tail -n 40 "$dir/server.log"
fi
exit "$status"
