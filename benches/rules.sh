#!/usr/bin/env bash
# Rule engine benchmarks (release build). Prints:
#   1. offline `faultline diagnose` over a large file built by repeating loghub's
#      Hadoop_2k.log (REPEAT times, default 260 = ~100 MB; 15 % of its lines are fault lines),
#      side by side in the same run with `rg -c -F -f` over the same literals
#      (`faultline rules literals`); median of RUNS runs. Target: faultline's time <= 0.7 x
#      ripgrep's. The same for HDFS_2k.log repeated to ~100 MB (few fault lines).
#   2. ingest -> fault record committed latency: N single-line POSTs (Flume's shape), each a
#      new fault on its own host, polled on GET /api/faults?host=... every 2 ms.
#      Target: p99 <= 100 ms.
# Usage: benches/rules.sh   (needs ripgrep: apt-get install -y ripgrep; python3)
set -euo pipefail
cd "$(dirname "$0")/.."
REPEAT=${REPEAT:-260}
RUNS=${RUNS:-7}
N=${N:-300}
SAMPLE=${SAMPLE:-../shared/data/loghub/Hadoop/Hadoop_2k.log}
SAMPLE2=${SAMPLE2:-../shared/data/loghub/HDFS/HDFS_2k.log}
command -v rg >/dev/null || { echo "benches/rules.sh needs ripgrep (apt-get install -y ripgrep)" >&2; exit 1; }
[ -f "$SAMPLE" ] || { echo "sample log $SAMPLE not found (set SAMPLE=...)" >&2; exit 1; }

cargo build --release --quiet
bin=./target/release/faultline
work=$(mktemp -d)
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

$bin rules literals > "$work/literals.txt"
# median wall seconds of RUNS runs of "$@"
median() {
    local TIMEFORMAT=%R
    for _ in $(seq 1 "$RUNS"); do
        { time "$@" > /dev/null 2>&1; } 2>&1
    done | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}
for sample in "$SAMPLE" "$SAMPLE2"; do
    [ -f "$sample" ] || { echo "sample $sample not found, skipped"; continue; }
    big="$work/big.log"
    size=$(stat -c %s "$sample")
    reps=$(( REPEAT * 385000 / size )); [ "$reps" -ge 1 ] || reps=1
    for _ in $(seq 1 "$reps"); do cat "$sample"; done > "$big"
    bytes=$(stat -c %s "$big"); lines=$(wc -l < "$big")
    echo "== offline diagnose: $(basename "$sample") x $reps = $(( bytes / 1000000 )) MB, $lines lines, $(wc -l < "$work/literals.txt") literals, $(nproc) cores"
    cat "$big" > /dev/null   # warm the page cache
    rg_s=$(median rg -c -F -f "$work/literals.txt" "$big")
    fl_s=$(median "$bin" diagnose --format json "$big")
    awk -v rg="$rg_s" -v fl="$fl_s" -v b="$bytes" -v l="$lines" 'BEGIN {
        printf "ripgrep  rg -c -F -f literals     %6.3f s  %6.0f MB/s\n", rg, b / rg / 1e6
        printf "faultline diagnose --format json  %6.3f s  %6.0f MB/s  %5.2f M lines/s\n", fl, b / fl / 1e6, l / fl / 1e6
        printf "ratio faultline / ripgrep         %6.2f   (target <= 0.70)\n", fl / rg
    }'
    { $bin diagnose "$big" | grep -E '^[0-9]+\. ' | head -n 3; } || true
    rm -f "$big"
done

echo "== ingest -> fault committed latency ($N faults, SQLite)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
FAULTLINE_LISTEN="127.0.0.1:$port" \
FAULTLINE_DATABASE_URL="sqlite://$work/bench.db" \
FAULTLINE_INGEST__WAL_DIR="$work/wal" \
FAULTLINE_ADMIN_TOKEN=bench-admin-token-0123456789 \
FAULTLINE_RATE_LIMIT__ENABLED=false \
RUST_LOG=warn $bin serve &
server_pid=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
python3 - "$port" "$N" <<'PY'
import http.client, json, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
post = http.client.HTTPConnection("127.0.0.1", port)
get = http.client.HTTPConnection("127.0.0.1", port)
lat = []
auth = {"Authorization": "Bearer bench-admin-token-0123456789"}
for i in range(n):
    host = f"bench-{i}"
    line = (f"2025-03-14 10:41:07,219 INFO org.apache.hadoop.hdfs.StateChange: BLOCK* removeDeadDatanode: "
            f"lost heartbeat from 10.9.{i // 250}.{i % 250}:9866, removeBlocksFromBlockMap true")
    t0 = time.perf_counter()
    post.request("POST", f"/api/log/auto-upload?host={host}&service=namenode", body=line,
                 headers={"Content-Type": "text/plain", **auth})
    r = post.getresponse(); r.read()
    assert r.status == 200, r.status
    while True:
        get.request("GET", f"/api/faults?host={host}&limit=1", headers=auth)
        r = get.getresponse(); body = json.loads(r.read())
        if body["faults"]:
            break
        if time.perf_counter() - t0 > 10:
            sys.exit(f"fault for {host} not recorded within 10 s")
        time.sleep(0.002)
    lat.append((time.perf_counter() - t0) * 1000)
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
print(f"POST -> fault visible in /api/faults: p50 {q(0.50):.1f} ms  p95 {q(0.95):.1f} ms  "
      f"p99 {q(0.99):.1f} ms  max {lat[-1]:.1f} ms   (target p99 <= 100 ms)")
PY
