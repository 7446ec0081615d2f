#!/usr/bin/env bash
# The bid storm on Surge's distributed backend, side by side with the embedded server and with
# the peer's hot path in Redis, in one run on one machine, printed as one markdown table:
#
#   1. the bid storm against REPLICAS `surge serve` replicas on PostgreSQL + one Redis (its
#      connections spread round-robin over the replicas), next to the /healthz ceiling of one
#      replica; then the invariants (every accepted bid stored, in order, no gaps) read back
#      through one replica at once, the time until the shard streams have drained into
#      PostgreSQL, and the invariants again;
#   2. the same storm against the embedded server (`surge-bench bid-storm` starts its own);
#   3. redis-benchmark running the peer's bid script (GET the auction key, compare, SET … EX
#      259200, XADD to the stream) with as many connections, on the same Redis.
#
# With --deals it runs the deals scenario instead (`surge-bench deals`: orders on deals with
# ample stock, cached and uncached nearby searches and the stock rush, next to one replica's
# /healthz ceiling), its connections spread over the replicas, on the demo city seeded through
# the first replica (`serve --demo`).
#
# With --cinema it runs the cinema scenario instead (`surge-bench cinema`: cached and uncached
# "now showing" next to one replica's /healthz ceiling, then the 2,000-user seat rush spread over
# the replicas), on the demo catalog seeded into PostgreSQL with `surge seed cinema`.
#
# With --ratings it runs the ratings scenario instead (`surge-bench ratings`: 500 connections on
# 20 cached problems next to one replica's /healthz ceiling, then the cold storm of 200 problems
# with 5 clients each spread over the replicas), against a stand-in LeetCode (`surge
# mock-leetcode`, answering after 50 ms) that every replica uses as its upstream.
#
# Everything listens on loopback, starts fresh (PostgreSQL and Redis from scripts/services.sh,
# in a temporary directory) and is stopped at the end, whatever happens.
#
# Usage: scripts/bench-distributed.sh [--connections N] [--auctions N] [--duration-secs N]
#                                     [--warmup-secs N] [--replicas N] [--shards N] [--cinema]
#                                     [--deals] [--ratings]
# Exit status: 0 every check passed, 1 a check failed, 2 the run could not be carried out.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh

CONNECTIONS=256
AUCTIONS=10
DURATION=10
WARMUP=2
REPLICAS=2
SHARDS=16
CINEMA=0
DEALS=0
RATINGS=0
while [ $# -gt 0 ]; do
  case "$1" in
    --connections) CONNECTIONS=$2; shift 2 ;;
    --auctions) AUCTIONS=$2; shift 2 ;;
    --duration-secs) DURATION=$2; shift 2 ;;
    --warmup-secs) WARMUP=$2; shift 2 ;;
    --replicas) REPLICAS=$2; shift 2 ;;
    --shards) SHARDS=$2; shift 2 ;;
    --cinema) CINEMA=1; shift ;;
    --deals) DEALS=1; shift ;;
    --ratings) RATINGS=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

SURGE=target/release/surge
BENCH=target/release/surge-bench
# The peer's bid script: the auction's current amount and its event stream, one write each.
PEER_LUA="local current = redis.call('GET', KEYS[1])
if current and tonumber(current) >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', 259200)
redis.call('XADD', KEYS[2], '*', 'data', ARGV[2])
return 1"
# An event about the size of Surge's own bid entry (ids, nickname, amount, times).
PEER_PAYLOAD='{"type":"bid","auction_id":"0193a1f2-7c1e-7a4b-9d2e-5f6a7b8c9d0e","event_id":"0193a1f2-7c1f-7b5c-8e3f-6a7b8c9d0e1f","seq":1234,"bidder":"0193a1f2-7c20-7c6d-9f40-7b8c9d0e1f20","nickname":"b1a2b3","amount":123456,"placed_at":1795240000000000,"ends_at":1795243600000000}'
# Distinct auction keys the peer's bids pick from at random.
PEER_KEYSPACE=1000000

WORK=""
REPLICA_PIDS=()
STAND_IN_PID=""


say() { printf '==> %s %s\n' "$(date -u +%T)" "$*" >&2; }

# SIGTERM every replica still running, SIGKILL what is left after 15 s.
stop_replicas() {
  local pid tries
  for pid in "${REPLICA_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${REPLICA_PIDS[@]}"; do
    tries=0
    while kill -0 "$pid" 2>/dev/null && [ $tries -lt 300 ]; do
      sleep 0.05
      tries=$((tries + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "warning: replica $pid ignored SIGTERM for 15 s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  REPLICA_PIDS=()
}

cleanup() {
  stop_replicas
  [ -n "$STAND_IN_PID" ] && { kill "$STAND_IN_PID" 2>/dev/null; wait "$STAND_IN_PID" 2>/dev/null || true; }
  stop_services
  [ -n "$WORK" ] && rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 2' INT TERM

# Polls /healthz until 200; fails (with the log tail) if the replica exits or 60 s pass.
wait_healthy() {
  local url=$1 pid=$2 log=$3 tries=0
  until curl -fsS -o /dev/null --max-time 1 "$url/healthz" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "error: replica at $url exited during start-up; log tail:" >&2
      tail -n 30 "$log" >&2
      return 1
    fi
    tries=$((tries + 1))
    if [ $tries -gt 600 ]; then
      echo "error: replica at $url not healthy after 60 s; log tail:" >&2
      tail -n 30 "$log" >&2
      return 1
    fi
    sleep 0.1
  done
}

# `INFO commandstats` figures of EVALSHA: "calls failed_calls rejected_calls".
evalsha_stats() {
  redis-cli -p "$REDIS_PORT" INFO commandstats | tr -d '\r' | awk -F'[:,=]' '
    $1 == "cmdstat_evalsha" {
      for (i = 2; i < NF; i += 2) v[$i] = $(i + 1)
    }
    END { printf "%d %d %d\n", v["calls"], v["failed_calls"], v["rejected_calls"] }'
}

# Runs redis-benchmark with the peer's script: `peer_benchmark KEY_TAG REQUESTS` prints its CSV.
peer_benchmark() {
  local tag=$1 requests=$2
  timeout $((DURATION * 6 + 60)) redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" \
    -c "$CONNECTIONS" -n "$requests" -r "$PEER_KEYSPACE" --csv \
    EVALSHA "$PEER_SHA" 2 "$PREFIX:$tag:auction:__rand_int__" "$PREFIX:$tag:events" \
    __rand_int__ "$PEER_PAYLOAD"
}

# redis-benchmark's CSV as one JSON object of its figures ({"rps": …, "p50_latency_ms": …}).
# The test name (the whole command, payload included) is not escaped, so the figures are read
# from the end of the line.
csv_figures() {
  python3 -c '
import json, sys
lines = [l.strip() for l in sys.stdin if l.strip()]
names = [f.strip("\"") for f in lines[0].split(",")][1:]
values = [float(f.strip("\"")) for f in lines[-1].split(",")[-len(names):]]
print(json.dumps(dict(zip(names, values))))'
}

say "building (release)"
cargo build --release --quiet -p surge -p surge-bench

WORK=$(mktemp -d -t surge-bench-distributed-XXXXXX)
RUN_TAG="$(date -u +%H%M%S)-$$"
PREFIX="bench-$RUN_TAG"
STARTED_AT=$(date -u '+%Y-%m-%d %H:%M UTC')

say "services"
start_postgres >&2
start_redis >&2
REDIS_URL=$SURGE_TEST_REDIS_URL
REDIS_PORT=${REDIS_URL##*:}

DB="surge_bench_${RUN_TAG//-/_}"
psql "$SURGE_TEST_DATABASE_URL" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE $DB" >/dev/null
DATABASE_URL="${SURGE_TEST_DATABASE_URL%/*}/$DB"
openssl genpkey -algorithm ed25519 -out "$WORK/jwt.pem" 2>/dev/null
mkdir -p "$WORK/data"

if [ "$CINEMA" = 1 ]; then
  say "seeding the cinema demo catalog into PostgreSQL"
  SURGE_DATABASE_URL="$DATABASE_URL" SURGE_REDIS_URL="$REDIS_URL" \
  SURGE_JWT_SIGNING_KEY_FILE="$WORK/jwt.pem" SURGE_DISTRIBUTED__KEY_PREFIX="$PREFIX" \
  SURGE_DISTRIBUTED__SHARDS="$SHARDS" SURGE_LOG_FORMAT=json RUST_LOG=warn \
    "$SURGE" seed cinema --data-dir "$WORK/data" >&2
fi

RATINGS_ENV=()
if [ "$RATINGS" = 1 ]; then
  STAND_IN_ADDR="127.0.0.1:$(free_port)"
  "$SURGE" mock-leetcode --addr "$STAND_IN_ADDR" --latency-ms 50 >"$WORK/stand-in.log" 2>&1 &
  STAND_IN_PID=$!
  RATINGS_ENV=(SURGE_RATINGS__UPSTREAM_URL="http://$STAND_IN_ADDR/graphql"
    SURGE_RATINGS__UPSTREAM_PER_SECOND=1000)
  say "stand-in LeetCode (pid $STAND_IN_PID) on $STAND_IN_ADDR"
fi

# One after the other: the first runs the migrations, the others find them done.
URLS=()
for i in $(seq 0 $((REPLICAS - 1))); do
  port=$(free_port)
  demo=()
  [ "$DEALS" = 1 ] && [ "$i" = 0 ] && demo=(--demo)
  env "${RATINGS_ENV[@]}" \
  SURGE_DATABASE_URL="$DATABASE_URL" \
  SURGE_REDIS_URL="$REDIS_URL" \
  SURGE_JWT_SIGNING_KEY_FILE="$WORK/jwt.pem" \
  SURGE_DISTRIBUTED__KEY_PREFIX="$PREFIX" \
  SURGE_DISTRIBUTED__REPLICA_NAME="r$i" \
  SURGE_CINEMA__READ_LIMIT=0 \
  SURGE_LIMITS__SIGNUPS_PER_IP_PER_HOUR=0 \
  SURGE_DISTRIBUTED__SHARDS="$SHARDS" \
  SURGE_LOG_FORMAT=json \
  RUST_LOG=warn \
    "$SURGE" serve "${demo[@]}" --listen "127.0.0.1:$port" --data-dir "$WORK/data" \
    >"$WORK/r$i.log" 2>&1 &
  REPLICA_PIDS+=($!)
  URLS+=("http://127.0.0.1:$port")
  wait_healthy "http://127.0.0.1:$port" "$!" "$WORK/r$i.log" || exit 2
  say "replica r$i (pid $!) on 127.0.0.1:$port"
done

if [ "$CINEMA" = 1 ]; then
  say "cinema: ${#URLS[@]} replicas on PostgreSQL + Redis (seat rush spread over all of them)"
  echo "### Cinema, distributed (${#URLS[@]} replicas, PostgreSQL + Redis) — $STARTED_AT"
  echo
  cinema_rc=0
  # The bench grants its admin with `surge admin grant`, which finds PostgreSQL here.
  SURGE_DATABASE_URL="$DATABASE_URL" "$BENCH" --server-bin "$SURGE" --url "$(IFS=,; echo "${URLS[*]}")" cinema --connections "$CONNECTIONS" \
    --duration-secs "$DURATION" --warmup-secs "$WARMUP" || cinema_rc=$?
  exit "$cinema_rc"
fi

if [ "$RATINGS" = 1 ]; then
  say "ratings: ${#URLS[@]} replicas on PostgreSQL + Redis"
  echo "### Ratings, distributed (${#URLS[@]} replicas, PostgreSQL + Redis) — $STARTED_AT"
  echo
  ratings_rc=0
  "$BENCH" --url "$(IFS=,; echo "${URLS[*]}")" ratings --stand-in "$STAND_IN_ADDR" \
    --connections "$CONNECTIONS" --duration-secs "$DURATION" --warmup-secs "$WARMUP" \
    || ratings_rc=$?
  exit "$ratings_rc"
fi

if [ "$DEALS" = 1 ]; then
  say "deals: ${#URLS[@]} replicas on PostgreSQL + Redis"
  echo "### Deals, distributed (${#URLS[@]} replicas, PostgreSQL + Redis) — $STARTED_AT"
  echo
  deals_rc=0
  "$BENCH" --url "$(IFS=,; echo "${URLS[*]}")" deals --connections "$CONNECTIONS" \
    --duration-secs "$DURATION" --warmup-secs "$WARMUP" || deals_rc=$?
  exit "$deals_rc"
fi

STORM_ARGS=(--connections "$CONNECTIONS" --auctions "$AUCTIONS" --duration-secs "$DURATION"
  --warmup-secs "$WARMUP")

say "bid storm, distributed: ${#URLS[@]} replicas on PostgreSQL + Redis"
dist_rc=0
"$BENCH" --json --url "$(IFS=,; echo "${URLS[*]}")" bid-storm "${STORM_ARGS[@]}" \
  --redis-url "$REDIS_URL" --key-prefix "$PREFIX" --shards "$SHARDS" \
  >"$WORK/distributed.json" || dist_rc=$?
[ "$dist_rc" -ge 2 ] && { echo "error: the distributed storm could not be run" >&2; tail -n 20 "$WORK"/r*.log >&2; exit 2; }
stop_replicas

say "bid storm, embedded (surge-bench starts its own server)"
emb_rc=0
env -u SURGE_TEST_DATABASE_URL -u SURGE_TEST_REDIS_URL -u SURGE_TEST_REDIS_CLUSTER_URLS \
  "$BENCH" --json --server-bin "$SURGE" bid-storm "${STORM_ARGS[@]}" \
  >"$WORK/embedded.json" || emb_rc=$?
[ "$emb_rc" -ge 2 ] && { echo "error: the embedded storm could not be run" >&2; exit 2; }

say "peer hot path: redis-benchmark, EVALSHA of the peer's bid script"
PEER_SHA=$(redis-cli -p "$REDIS_PORT" SCRIPT LOAD "$PEER_LUA")
first=$(redis-cli -p "$REDIS_PORT" EVALSHA "$PEER_SHA" 2 "$PREFIX:check:auction" "$PREFIX:check:events" 100 "$PEER_PAYLOAD")
again=$(redis-cli -p "$REDIS_PORT" EVALSHA "$PEER_SHA" 2 "$PREFIX:check:auction" "$PREFIX:check:events" 100 "$PEER_PAYLOAD")
if [ "$first" != 1 ] || [ "$again" != 0 ]; then
  echo "error: the peer script answered $first then $again to the same bid (want 1 then 0)" >&2
  exit 2
fi
# The warm-up (on keys of its own) also sizes the measured run to about DURATION seconds.
warm_requests=$((CONNECTIONS * 200))
warm_rps=$(peer_benchmark warm "$warm_requests" | csv_figures | python3 -c 'import json, sys; print(int(json.load(sys.stdin)["rps"]))')
peer_requests=$((warm_rps * DURATION))
[ "$peer_requests" -lt 10000 ] && peer_requests=10000
read -r calls0 failed0 rejected0 < <(evalsha_stats)
peer_rc=0
peer_benchmark peer "$peer_requests" >"$WORK/peer.csv" || peer_rc=$?
csv_figures <"$WORK/peer.csv" >"$WORK/peer.json" || echo '{}' >"$WORK/peer.json"
read -r calls1 failed1 rejected1 < <(evalsha_stats)
peer_accepted=$(redis-cli -p "$REDIS_PORT" XLEN "$PREFIX:peer:events")
REDIS_AOF=$(redis-cli -p "$REDIS_PORT" CONFIG GET appendfsync | tail -n 1)

say "report"
export WORK CONNECTIONS AUCTIONS DURATION WARMUP REPLICAS SHARDS STARTED_AT PREFIX REDIS_AOF \
  PEER_KEYSPACE peer_rc peer_requests peer_accepted dist_rc emb_rc
export peer_calls=$((calls1 - calls0)) peer_failed=$((failed1 - failed0 + rejected1 - rejected0))
python3 - <<'PY'
import json, os

env = os.environ
work = env["WORK"]
dist = json.load(open(f"{work}/distributed.json"))
emb = json.load(open(f"{work}/embedded.json"))
peer = json.load(open(f"{work}/peer.json")) or None

def n(v):
    return f"{v:,.0f}"

def ms(v):
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"

def pct(v):
    return f"{v * 100:.1f}%"

def row(label, servers, r, ratio):
    acc = n(r["accepted_per_sec"]) if r.get("accepted_per_sec") is not None else "—"
    lat = r["latency"]
    return (f"| {label} | {servers} | {r['connections']} | {n(r['requests_per_sec'])} | {acc} "
            f"| {ms(lat['p50_ms'])} | {ms(lat['p99_ms'])} | {r['errors']} | {ratio} |")

replicas = len(dist["servers"])
peer_calls = int(env["peer_calls"])
peer_requests = int(env["peer_requests"])
peer_failed = int(env["peer_failed"]) + (peer_requests - peer_calls if peer_calls < peer_requests else 0)
lines = [
    f"### Bid storm, distributed vs embedded vs the peer's hot path — {env['STARTED_AT']}",
    "",
    f"{env['CONNECTIONS']} keep-alive connections, {env['AUCTIONS']} live auctions, "
    f"{env['WARMUP']} s warm-up + {env['DURATION']} s measured per phase; one machine, loopback.",
    "",
    "| scenario | served by | connections | requests/s | accepted bids/s | p50 ms | p99 ms | errors | req/s ÷ its ceiling |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    row("/healthz ceiling, one distributed replica", "replica r0", dist["ceiling"], "—"),
    row(f"**bid storm, distributed** ({replicas} replicas, PostgreSQL + Redis)",
        " + ".join(f"r{i}" for i in range(replicas)), dist["storm"],
        f"**{pct(dist['bid_requests_vs_ceiling'])}**"),
    row("/healthz ceiling, embedded server", "embedded", emb["ceiling"], "—"),
    row("bid storm, embedded (SQLite)", "embedded", emb["storm"], pct(emb["bid_requests_vs_ceiling"])),
]
if peer:
    rps = float(peer["rps"])
    seconds = peer_requests / rps if rps > 0 else 0
    accepted = int(env["peer_accepted"]) / seconds if seconds > 0 else 0
    lines.append(
        f"| peer hot path: redis-benchmark EVALSHA (GET, compare, SET EX, XADD) | Redis | "
        f"{env['CONNECTIONS']} | {n(rps)} | {n(accepted)} | {ms(float(peer['p50_latency_ms']))} "
        f"| {ms(float(peer['p99_latency_ms']))} | {peer_failed} | — |")
else:
    lines.append("| peer hot path: redis-benchmark | Redis | — | failed | — | — | — | — | — |")
lines.append("")

ratio = dist["bid_requests_vs_ceiling"]
lines.append(f"- distributed bid req/s ÷ one replica's /healthz ceiling: **{pct(ratio)}** "
             f"(target ≥ 30%: {'met' if ratio >= 0.30 else 'NOT met'}); "
             f"accepted bids/s ÷ ceiling {pct(dist['accepted_vs_ceiling'])}.")
if emb["storm"]["requests_per_sec"] > 0:
    lines.append(f"- distributed ÷ embedded bid req/s: {pct(dist['storm']['requests_per_sec'] / emb['storm']['requests_per_sec'])}.")
if peer and float(peer["rps"]) > 0:
    lines.append(f"- distributed bid req/s ÷ peer script calls/s: {pct(dist['storm']['requests_per_sec'] / float(peer['rps']))}.")
lag = dist.get("stream_lag") or {}
at_end = lag.get("at_storm_end")
zero = lag.get("zero_after_ms")
peak = lag.get("max_during_storm")
lines.append(
    f"- stream lag ({lag.get('shards', '?')} shards; entries in Redis not yet in PostgreSQL): at most "
    f"{'unknown' if peak is None else n(peak)} during the storm (read every 100 ms), "
    f"{'unknown' if at_end is None else n(at_end)} when it ended; "
    + (f"**back to zero within {zero:.0f} ms** after the storm (read every {lag.get('poll_ms', 0):.0f} ms)." if zero is not None
       else f"**not back to zero after {lag.get('give_up_ms', 0) / 1000:.0f} s** (last reading: {lag.get('last')}).")
    + (f" A reading failed: {lag['first_error']}." if lag.get("first_error") else ""))

def verdict(doc):
    failed = [c for c in doc["checks"] if not c["passed"]]
    if not failed:
        return f"PASS ({len(doc['checks'])} checks)"
    return f"FAIL ({len(failed)} of {len(doc['checks'])}: " + "; ".join(c["name"] + " — " + c["detail"] for c in failed[:5]) + ")"

lines.append(f"- invariants, distributed (read through r0 right after the storm, and again once the lag was zero): {verdict(dist)}.")
lines.append(f"- invariants, embedded: {verdict(emb)}.")
lines.append(f"- lost races (409 `bid_too_low`, not errors): distributed {n(dist['storm']['lost'])} of "
             f"{n(dist['storm']['requests'])}, embedded {n(emb['storm']['lost'])} of {n(emb['storm']['requests'])}.")
lines.append(
    f"- peer: {n(peer_requests)} calls sized from a warm-up to last ~{env['DURATION']} s, auction keys random over "
    f"{n(int(env['PEER_KEYSPACE']))} (`-r`), amounts `__rand_int__`; {n(int(env['peer_accepted']))} calls took the write path "
    f"(SET + XADD), the rest only read; errors = failed + rejected EVALSHA calls in `INFO commandstats`"
    + (f"; redis-benchmark exited with {env['peer_rc']}" if env["peer_rc"] != "0" else "") + ".")
lines.append(
    f"- Redis (scripts/services.sh): AOF on, `appendfsync {env['REDIS_AOF']}`, and the peer runs on that same Redis; "
    "PostgreSQL runs with `fsync=off`; the embedded server uses SQLite with `synchronous=FULL`. "
    "Load generators, servers, PostgreSQL and Redis all share the machine's cores.")
print("\n".join(lines))
PY

if [ "$dist_rc" -ne 0 ] || [ "$emb_rc" -ne 0 ] || [ "$peer_rc" -ne 0 ]; then
  exit 1
fi
