# Throwaway PostgreSQL (and, with the distributed engine, Redis) for Surge's tests: installed
# from the OS packages when missing, started on loopback in a temporary directory, stopped by
# `stop_services` (test.sh runs it on exit, whatever happened).
#
# Source this file; it defines functions and changes nothing until they are called.

SERVICES_DIR=""
PG_BIN=""
PG_DATA=""
REDIS_PORTS=()

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Runs a command as the postgres user when we are root (initdb refuses to run as root).
as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

find_pg_bin() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$dir" ] && [ -x "$dir/initdb" ] && PG_BIN="$dir"
}

ensure_postgres() {
  find_pg_bin && return 0
  echo "PostgreSQL is not installed; installing it from the OS packages"
  if [ "$(id -u)" != 0 ]; then
    echo "error: installing PostgreSQL needs root; install the postgresql package and retry" >&2
    return 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  find_pg_bin || { echo "error: PostgreSQL installed but initdb not found" >&2; return 1; }
}

# Starts a cluster and exports SURGE_TEST_DATABASE_URL (an admin URL; each test creates its own
# database through it).
start_postgres() {
  ensure_postgres || return 1
  # The server runs as the postgres user, which must be able to reach its directory.
  services_dir
  local dir="$SERVICES_DIR/postgres" port password
  mkdir -p "$dir"
  port=$(free_port)
  password="surge-test-$(date +%s)"
  printf '%s\n' "$password" > "$dir/pwfile"
  [ "$(id -u)" = 0 ] && chown -R postgres "$dir"
  PG_DATA="$dir/data"
  as_postgres "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --pwfile="$dir/pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; return 1; }
  # fsync=off: throwaway data, and the durability tests that need fsync use SQLite or restart
  # PostgreSQL deliberately with their own settings.
  as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$dir/server.log" -w -t 60 start \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=300" \
    >/dev/null || { cat "$dir/server.log" >&2; return 1; }
  export SURGE_TEST_DATABASE_URL="postgres://postgres:$password@127.0.0.1:$port/postgres"
  echo "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port ($dir)"
}

ensure_redis() {
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null && return 0
  echo "Redis is not installed; installing it from the OS packages"
  if [ "$(id -u)" != 0 ]; then
    echo "error: installing Redis needs root; install the redis-server package and retry" >&2
    return 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  # The package starts a system instance on 6379; the tests use their own on other ports.
}

# libfaketime (Debian's faketime package), for the tests that run a replica with a skewed clock.
ensure_faketime() {
  local lib=/usr/lib/$(uname -m)-linux-gnu/faketime/libfaketimeMT.so.1
  if [ ! -e "$lib" ]; then
    echo "libfaketime is not installed; installing it from the OS packages"
    if [ "$(id -u)" != 0 ]; then
      echo "error: installing libfaketime needs root; install the faketime package and retry" >&2
      return 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime >/dev/null
  fi
  export SURGE_TEST_FAKETIME_LIB="$lib"
}

# Chromium and its WebDriver (Debian's chromium and chromium-driver), for the browser tests.
ensure_chromium() {
  if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    echo "Chromium is not installed; installing chromium and chromium-driver from the OS packages"
    if [ "$(id -u)" != 0 ]; then
      echo "error: installing Chromium needs root; install chromium and chromium-driver and retry" >&2
      return 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  fi
  export SURGE_TEST_CHROMEDRIVER="$(command -v chromedriver)"
  export SURGE_TEST_CHROMIUM="$(command -v chromium)"
}

# moto's S3-compatible server (PyPI moto[server], pinned), for the images-on-S3 tests.
MOTO_VERSION=5.2.1
ensure_moto() {
  local scripts
  scripts="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
  if ! command -v moto_server >/dev/null && [ ! -x "$scripts/moto_server" ]; then
    echo "moto is not installed; installing moto[server]==$MOTO_VERSION from PyPI"
    python3 -m pip install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION"
  fi
  export SURGE_TEST_MOTO="$(command -v moto_server || echo "$scripts/moto_server")"
}

services_dir() {
  SERVICES_DIR=${SERVICES_DIR:-$(mktemp -d -t surge-services-XXXXXX)}
  chmod 755 "$SERVICES_DIR"
}

# One redis-server on a free loopback port, AOF on with fsync per write (no acknowledged loss),
# no eviction; prints its port (the caller records it for stop_services: this runs in a
# command substitution, whose variables do not reach the caller).
start_redis_server() {
  local name=$1; shift
  local port dir
  port=$(free_port)
  dir="$SERVICES_DIR/$name-$port"
  mkdir -p "$dir"
  redis-server --bind 127.0.0.1 --port "$port" --daemonize yes --save '' \
    --appendonly yes --appendfsync always --maxmemory-policy noeviction \
    --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" "$@" >/dev/null
  local tries=0
  until redis-cli -p "$port" ping >/dev/null 2>&1; do
    tries=$((tries + 1))
    [ $tries -gt 100 ] && { cat "$dir/redis.log" >&2; return 1; }
    sleep 0.05
  done
  echo "$port"
}

# Exports SURGE_TEST_REDIS_URL (one node) and SURGE_TEST_REDIS_CLUSTER_URLS (three masters).
start_redis() {
  ensure_redis || return 1
  services_dir
  local single ports=() nodes=() urls=()
  single=$(start_redis_server redis) || return 1
  REDIS_PORTS+=("$single")
  export SURGE_TEST_REDIS_URL="redis://127.0.0.1:$single"
  for _ in 1 2 3; do
    local port
    # The cluster bus port defaults to port + 10000, which overflows for high ports: pick one.
    port=$(start_redis_server cluster --cluster-enabled yes --cluster-config-file nodes.conf \
      --cluster-node-timeout 5000 --cluster-port "$(free_port)") || return 1
    REDIS_PORTS+=("$port")
    ports+=("$port")
    nodes+=("127.0.0.1:$port")
    urls+=("redis://127.0.0.1:$port")
  done
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >"$SERVICES_DIR/cluster-create.log" 2>&1 \
    || { cat "$SERVICES_DIR/cluster-create.log" >&2; return 1; }
  local port tries
  for port in "${ports[@]}"; do
    tries=0
    until redis-cli -p "$port" cluster info 2>/dev/null | grep -q 'cluster_state:ok'; do
      tries=$((tries + 1))
      [ $tries -gt 200 ] && { echo "error: Redis Cluster did not become ready" >&2; return 1; }
      sleep 0.05
    done
  done
  SURGE_TEST_REDIS_CLUSTER_URLS=$(IFS=,; echo "${urls[*]}")
  export SURGE_TEST_REDIS_CLUSTER_URLS
  echo "Redis $(redis-server --version | awk '{print $3}' | cut -d= -f2) on 127.0.0.1:$single; Redis Cluster on ${nodes[*]}"
}

stop_services() {
  local port
  for port in "${REDIS_PORTS[@]}"; do
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  done
  if [ -n "$PG_DATA" ] && [ -d "$PG_DATA" ]; then
    as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  if [ -n "$SERVICES_DIR" ] && [ -d "$SERVICES_DIR" ]; then
    rm -rf "$SERVICES_DIR"
  fi
}
