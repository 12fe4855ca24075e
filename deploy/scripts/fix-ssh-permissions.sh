#!/usr/bin/env bash
# Check and repair the permissions sshd's StrictModes requires for the Hadoop user's keys on
# --host (home not group/world-writable, ~/.ssh 700, authorized_keys 600, private keys 600).
# Password-less SSH is what is broken, so this logs in as an admin user with its own key:
# FAULTLINE_ADMIN_SSH_USER (default root) and FAULTLINE_ADMIN_SSH_KEY.
set -euo pipefail
source "$(dirname "$0")/_args.sh"
admin=${FAULTLINE_ADMIN_SSH_USER:-root}
opts=(-o BatchMode=yes -o ConnectTimeout=10 -o StrictHostKeyChecking=yes)
[ -n "${FAULTLINE_ADMIN_SSH_KEY:-}" ] && opts+=(-i "$FAULTLINE_ADMIN_SSH_KEY" -o IdentitiesOnly=yes)
ssh "${opts[@]}" -- "$admin@$host" bash -s -- "$SSH_USER" <<'REMOTE'
set -e
user=$1
home=$(getent passwd "$user" | cut -d: -f6)
[ -d "$home/.ssh" ] || { echo "no $home/.ssh" >&2; exit 3; }
ls -ld "$home" "$home/.ssh" "$home/.ssh"/*
chmod go-w "$home"
chmod 700 "$home/.ssh"
chmod 600 "$home/.ssh/authorized_keys" 2>/dev/null || true
find "$home/.ssh" -maxdepth 1 -name 'id_*' ! -name '*.pub' -exec chmod 600 {} +
chown -R "$user": "$home/.ssh"
ls -ld "$home" "$home/.ssh" "$home/.ssh"/*
REMOTE
