#!/usr/bin/env bash
# Ingest benchmark with persistence on SQLite (release build, loopback, wrk).
#
# Prints, for 1000-line text batches and for 1-line POSTs (Flume's HttpSink shape):
#   - acknowledged rate: requests/s and lines/s answered 2xx (lines durable in the WAL);
#   - stored rate: lines/s that reached system_logs, measured until the pipeline drained;
#   - latency p50/p99 (wrk) and the server's peak RSS.
# Usage: benches/ingest.sh            (DURATION=10 CONNS=16 by default; needs wrk:
#                                      apt-get install -y wrk)
# The server and wrk share this machine's cores, as they do in the issue's targets.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
CONNS=${CONNS:-16}
SAMPLE=${SAMPLE:-../shared/data/loghub/Hadoop/Hadoop_2k.log}
command -v wrk >/dev/null || { echo "benches/ingest.sh needs wrk (apt-get install -y wrk)" >&2; exit 1; }
[ -f "$SAMPLE" ] || { echo "sample log $SAMPLE not found (set SAMPLE=...)" >&2; exit 1; }

cargo build --release --quiet
work=$(mktemp -d)
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
head -n 1000 "$SAMPLE" > "$work/body1000.txt"
head -n 1 "$SAMPLE" | tr -d '\n' > "$work/body1.txt"
cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "text/plain"
wrk.headers["Authorization"] = "Bearer bench-admin-token-0123456789"
local f = io.open(os.getenv("BODY"), "rb")
wrk.body = f:read("*a")
f:close()
LUA

FAULTLINE_LISTEN="127.0.0.1:$port" \
FAULTLINE_DATABASE_URL="sqlite://$work/bench.db" \
FAULTLINE_INGEST__WAL_DIR="$work/wal" \
FAULTLINE_INGEST__MAX_PENDING_LINES=${MAX_PENDING:-200000000} \
FAULTLINE_ADMIN_TOKEN=bench-admin-token-0123456789 \
RUST_LOG=warn ./target/release/faultline serve &
server_pid=$!
for _ in $(seq 1 100); do curl -fs "$base/healthz" >/dev/null && break; sleep 0.1; done

metric() { curl -fs "$base/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
stored() { metric faultline_lines_stored_total; }
pending() { metric faultline_pipeline_pending_lines; }

# run NAME BODY LINES_PER_REQUEST CONNS
run() {
    local name=$1 body=$2 per=$3 conns=$4
    local before t0 out reqs non2xx secs ok acked_lps drained_at t1 after
    before=$(stored)
    t0=$(date +%s.%N)
    out=$(BODY="$body" wrk -t1 -c"$conns" -d"${DURATION}s" --latency -s "$work/post.lua" "$base/api/log/auto-upload?host=bench&service=datanode")
    reqs=$(awk '/requests in/ { print $1 }' <<<"$out")
    secs=$(awk '/requests in/ { sub("s,", "", $4); print $4 }' <<<"$out")
    non2xx=$(awk '/Non-2xx/ { print $NF }' <<<"$out"); non2xx=${non2xx:-0}
    ok=$((reqs - non2xx))
    # Wait for the pipeline to store everything that was acknowledged.
    while [ "$(pending)" != "0" ]; do sleep 0.05; done
    t1=$(date +%s.%N)
    after=$(stored)
    python3 - "$name" "$ok" "$non2xx" "$secs" "$per" "$before" "$after" "$t0" "$t1" "$out" <<'PY'
import re, sys
name, ok, non2xx, secs, per, before, after, t0, t1, out = sys.argv[1:]
ok, non2xx, secs, per = int(ok), int(non2xx), float(secs), int(per)
stored = float(after) - float(before)
span = float(t1) - float(t0)
lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
print(f"{name:<26} {ok/secs:>11,.0f} req/s {ok*per/secs:>12,.0f} lines/s acked  "
      f"{stored/span:>11,.0f} lines/s stored  p50 {lat.get('50','?'):>8} p99 {lat.get('99','?'):>8}  non-2xx {non2xx}")
PY
}

echo "faultline ingest benchmark: SQLite, ${DURATION}s per case, wrk -t1, $(nproc) cores"
run "1000-line batches c=$CONNS" "$work/body1000.txt" 1000 "$CONNS"
run "1-line POSTs c=$CONNS" "$work/body1.txt" 1 "$CONNS"
run "1-line POSTs c=1" "$work/body1.txt" 1 1
# Sustained end-to-end: 300 distinct 1000-line bodies with increasing timestamps (as real
# logs have; the wrk phases repeat one body, which scatters inserts across the time indexes),
# sent over one keep-alive connection, timed until every line is stored.
python3 - "$SAMPLE" "$port" <<'PY'
import datetime, http.client, sys, time, urllib.request
lines = [l.rstrip("\n") for l in open(sys.argv[1]) if len(l) > 23][:1000]
port = int(sys.argv[2])
t = datetime.datetime(2030, 1, 1)
bodies = []
for _ in range(300):
    out = []
    for l in lines:
        t += datetime.timedelta(milliseconds=3)
        out.append(t.strftime("%Y-%m-%d %H:%M:%S,") + "%03d" % (t.microsecond // 1000) + l[23:])
    bodies.append("\n".join(out).encode())
def metric(name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    return float(next(l.split()[1] for l in text.splitlines() if l.startswith(name + " ")))
before = metric("faultline_lines_stored_total")
conn = http.client.HTTPConnection("127.0.0.1", port)
t0 = time.time()
for b in bodies:
    conn.request("POST", "/api/log/auto-upload?host=sustained&service=mapreduce", b,
                 {"Content-Type": "text/plain", "Authorization": "Bearer bench-admin-token-0123456789"})
    r = conn.getresponse(); r.read()
    assert r.status == 200, r.status
t1 = time.time()
while metric("faultline_pipeline_pending_lines") > 0:
    time.sleep(0.05)
t2 = time.time()
stored = metric("faultline_lines_stored_total") - before
print(f"{'sustained, real timestamps':<26} {len(bodies)/(t1-t0):>11,.0f} req/s {stored/(t1-t0):>12,.0f} lines/s acked  "
      f"{stored/(t2-t0):>11,.0f} lines/s stored (post + drain {t2-t0:.1f}s, one sequential client)")
PY
echo "server peak RSS: $(awk '/VmHWM/ { printf "%.1f MiB", $2/1024 }' /proc/$server_pid/status)"
