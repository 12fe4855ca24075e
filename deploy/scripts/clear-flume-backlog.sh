#!/usr/bin/env bash
# Let a Flume agent on --host drain its channel: show the channel fill, then restart the
# agent so its sink reconnects (nothing in the channel is deleted). The restart command is
# FLUME_RESTART_CMD (default: systemctl restart flume-agent).
set -euo pipefail
source "$(dirname "$0")/_args.sh"
restart=${FLUME_RESTART_CMD:-"sudo systemctl restart flume-agent"}
ssh "${SSH_OPTS[@]}" -- "$SSH_USER@$host" "curl -fsS http://localhost:41414/metrics || true; $restart"
