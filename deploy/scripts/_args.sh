# Shared by the remediation scripts: parse the arguments Faultline passes
# (--host H --service S --cluster C --fault-id N) and check them again here.
host="" service="" cluster="" fault_id=""
while [ $# -gt 0 ]; do
    case "$1" in
        --host) host=${2-}; shift 2 ;;
        --service) service=${2-}; shift 2 ;;
        --cluster) cluster=${2-}; shift 2 ;;
        --fault-id) fault_id=${2-}; shift 2 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
[[ "$host" =~ ^[A-Za-z0-9][A-Za-z0-9.-]*$ ]] || { echo "refusing host '$host'" >&2; exit 2; }
[[ "$service" =~ ^[A-Za-z0-9_-]*$ ]] || { echo "refusing service '$service'" >&2; exit 2; }
SSH_USER=${FAULTLINE_SSH_USER:-hadoop}
SSH_OPTS=(-o BatchMode=yes -o ConnectTimeout=10 -o StrictHostKeyChecking=yes)
[ -n "${FAULTLINE_SSH_KEY:-}" ] && SSH_OPTS+=(-i "$FAULTLINE_SSH_KEY" -o IdentitiesOnly=yes)
echo "fault ${fault_id:-?} on cluster ${cluster:-?}: host $host, service ${service:-?}"
