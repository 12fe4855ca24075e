#!/usr/bin/env bash
# Restart the DataNode on --host over password-less SSH (batch mode), then check it runs.
# Hadoop 3 (`hdfs --daemon`) and Hadoop 2 (`hadoop-daemon.sh`). Env: FAULTLINE_SSH_USER
# (default hadoop), FAULTLINE_SSH_KEY.
set -euo pipefail
source "$(dirname "$0")/_args.sh"
ssh "${SSH_OPTS[@]}" -- "$SSH_USER@$host" bash -s <<'REMOTE'
set -e
if command -v hdfs >/dev/null 2>&1 && hdfs --daemon stop datanode 2>/dev/null; then
    hdfs --daemon start datanode
else
    "${HADOOP_HOME:?HADOOP_HOME not set}/sbin/hadoop-daemon.sh" stop datanode || true
    "$HADOOP_HOME/sbin/hadoop-daemon.sh" start datanode
fi
sleep 5
jps | grep -w DataNode
REMOTE
