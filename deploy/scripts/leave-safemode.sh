#!/usr/bin/env bash
# Take the NameNode on --host out of safe mode, but only when no block is missing: safe mode
# entered for low disk space or missing blocks protects data and must be fixed first.
set -euo pipefail
source "$(dirname "$0")/_args.sh"
ssh "${SSH_OPTS[@]}" -- "$SSH_USER@$host" bash -s <<'REMOTE'
set -e
hdfs dfsadmin -safemode get
missing=$(hdfs dfsadmin -report 2>/dev/null | awk -F: '/^Missing blocks:/ {gsub(/ /, "", $2); print $2; exit}')
if [ "${missing:-0}" != "0" ]; then
    echo "refusing: $missing missing blocks (run hdfs fsck / first)" >&2
    exit 3
fi
hdfs dfsadmin -safemode leave
REMOTE
