#!/usr/bin/env bash
# Property-based API test: run Schemathesis against a real engine and the OpenAPI document it
# serves. Every check is on (zero server errors, every response conforms to the document,
# invalid input refused and valid input accepted, 405 with `Allow`, ...); the exceptions the
# server cannot avoid are in .ci/schemathesis.toml, each with its reason.
#
# Starts the built binary (FAULTLINE_BIN, else target/debug/faultline built with
# `cargo build --locked`) on a free loopback port with a temporary SQLite database and WAL,
# waits for /readyz, runs Schemathesis, stops the engine, and exits non-zero on any failure.
#
# Environment:
#   FAULTLINE_BIN          the engine binary to test
#   FAULTLINE_ST_TOKEN     a bearer token, sent as `Authorization: Bearer <token>` once the API
#                          enforces auth; then `ignored_auth` runs too and requests without or
#                          with a broken `Authorization` are generated (unset: auth is not
#                          enforced, so those checks cannot pass and are left out)
#   FAULTLINE_ST_EXAMPLES  test cases per operation and phase (default 50)
#   FAULTLINE_ST_SEED      Schemathesis seed (default 1: reproducible; any number explores more)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[schemathesis] %s\n' "$*"; }

SCHEMATHESIS_VERSION=4.32.5
if ! command -v schemathesis >/dev/null 2>&1 ||
    [ "$(schemathesis --version 2>/dev/null | awk '{print $NF}')" != "$SCHEMATHESIS_VERSION" ]; then
    log "installing schemathesis $SCHEMATHESIS_VERSION"
    python3 -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

bin="${FAULTLINE_BIN:-}"
if [ -z "$bin" ]; then
    cargo build --locked --quiet
    bin="${CARGO_TARGET_DIR:-target}/debug/faultline"
fi
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
[ -x "$bin" ] || { log "no engine binary at $bin"; exit 1; }

work="$(mktemp -d)"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
base="http://127.0.0.1:$port"
engine_pid=""
cleanup() {
    if [ -n "$engine_pid" ] && kill -0 "$engine_pid" 2>/dev/null; then
        kill "$engine_pid" 2>/dev/null || true
        wait "$engine_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# The engine runs in its own directory: relative paths (rule drafts, ...) land there.
log "starting $bin on $base"
(
    cd "$work"
    exec env FAULTLINE_LISTEN="127.0.0.1:$port" \
        FAULTLINE_DATABASE_URL="sqlite://$work/st.db" \
        FAULTLINE_INGEST__WAL_DIR="$work/wal" \
        "$bin" serve >"$work/engine.log" 2>&1
) &
engine_pid=$!
for _ in $(seq 1 120); do
    curl -fsS "$base/readyz" >/dev/null 2>&1 && break
    kill -0 "$engine_pid" 2>/dev/null || { log "the engine exited"; cat "$work/engine.log"; exit 1; }
    sleep 0.5
done
curl -fsS "$base/readyz" >/dev/null || { log "the engine is not ready"; cat "$work/engine.log"; exit 1; }

# Some data, so that lists and fault records are answered with real bodies to check: a fault a
# rule knows (DataNode lost) and one nothing explains (an unknown fault waiting for the LLM).
upload() {
    curl -fsS -X POST "$base/api/log/auto-upload?cluster=st&host=$1&service=$2" \
        ${FAULTLINE_ST_TOKEN:+-H "Authorization: Bearer $FAULTLINE_ST_TOKEN"} \
        --data-binary "$3" >/dev/null
}
upload nn1 namenode '2024-05-12 10:41:07,219 INFO org.apache.hadoop.hdfs.StateChange: BLOCK* removeDeadDatanode: lost heartbeat from 192.168.10.13:9866'
upload worker1 datanode '2024-05-12 10:42:00,001 ERROR org.apache.hadoop.hdfs.server.datanode.DataNode: Unexpected flux capacitor failure on volume /data/3'
sleep 3

flags=(
    --checks all
    --max-examples "${FAULTLINE_ST_EXAMPLES:-50}"
    --seed "${FAULTLINE_ST_SEED:-1}"
    --request-timeout 30
    --generation-database none
    --no-color
)
if [ -n "${FAULTLINE_ST_TOKEN:-}" ]; then
    flags+=(-H "Authorization: Bearer $FAULTLINE_ST_TOKEN")
else
    # Auth is not enforced by this engine: a request without a token is served.
    flags+=(--exclude-checks ignored_auth --generation-with-security-parameters false)
fi

log "schemathesis $(schemathesis --version | awk '{print $NF}') ${flags[*]/#Authorization: */Authorization: ***}"
# Run from the temporary directory: Schemathesis keeps its state (.schemathesis/) there.
status=0
repo="$PWD"
(
    cd "$work"
    SCHEMATHESIS_HOOKS="$repo/.ci/schemathesis_hooks.py" \
        schemathesis --config-file "$repo/.ci/schemathesis.toml" run "$base/api/openapi.json" "${flags[@]}"
) || status=$?
if [ "$status" -ne 0 ]; then
    log "FAILED (exit $status); engine log:"
    tail -n 50 "$work/engine.log"
fi
exit "$status"
