#!/usr/bin/env bash
# Runs the whole operator on this machine, with no cluster and no container
# engine: a real kube-apiserver and etcd (bin/local-control-plane), the Millis
# simulator and the manager, as processes. Then it applies config/samples and
# shows the calls until every one of them has finished.
#
# Usage: hack/demo.sh            (or: make demo)
#
# Environment:
#   SIMULATOR_ADDR  Millis simulator listen address      (127.0.0.1:18080)
#   WEBHOOK_ADDR    manager's Millis webhook receiver    (127.0.0.1:8082)
#   PROBE_ADDR      manager's health probes              (127.0.0.1:18081)
#   DEMO_TIMEOUT    seconds to wait for every call        (180)
#   MANAGER_ARGS    extra manager flags, e.g. "--zap-log-level=debug"
#   KEEP_RUNNING=1  keep everything up after the calls finish, until Ctrl-C
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"

SIMULATOR_ADDR="${SIMULATOR_ADDR:-127.0.0.1:18080}"
WEBHOOK_ADDR="${WEBHOOK_ADDR:-127.0.0.1:8082}"
PROBE_ADDR="${PROBE_ADDR:-127.0.0.1:18081}"
DEMO_TIMEOUT="${DEMO_TIMEOUT:-180}"
MANAGER_ARGS="${MANAGER_ARGS:-}"
KEEP_RUNNING="${KEEP_RUNNING:-0}"

BIN="${ROOT}/bin"
DEMO_DIR="${BIN}/demo"
KUBECONFIG_PATH="${DEMO_DIR}/kubeconfig"
NAMESPACE=sales

# The samples name the simulator and the webhook receiver at their default
# addresses; other addresses are substituted when the samples are applied.
SAMPLE_SIMULATOR_URL="http://127.0.0.1:18080"
SAMPLE_WEBHOOK_URL="http://127.0.0.1:8082"

log() { echo "demo: $*" >&2; }

# Started processes, in start order, as "name:pid". Each one leads its own
# process group (see start), so stopping it also stops anything it spawned.
CHILDREN=()

dump_logs() {
  local f
  for f in "${DEMO_DIR}"/*.log; do
    [[ -f "${f}" ]] || continue
    echo "===== last 30 lines of ${f#"${ROOT}"/} =====" >&2
    tail -n 30 "${f}" >&2
  done
}

die() {
  echo >&2
  echo "demo: FAILED: $*" >&2
  dump_logs
  exit 1
}

# stop_child sends SIGTERM to a child's process group and waits for it, with
# SIGKILL as the last resort. local-control-plane needs a few seconds to stop
# kube-apiserver and etcd, which it runs in process groups of their own.
stop_child() {
  local name="$1" pid="$2" i
  kill -0 "${pid}" 2>/dev/null || { wait "${pid}" 2>/dev/null || true; return 0; }
  kill -TERM -- "-${pid}" 2>/dev/null || kill -TERM "${pid}" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do
    kill -0 "${pid}" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "${pid}" 2>/dev/null; then
    log "${name} did not stop within 30s; killing it"
    kill -KILL -- "-${pid}" 2>/dev/null || kill -KILL "${pid}" 2>/dev/null || true
  fi
  wait "${pid}" 2>/dev/null || true
}

cleanup() {
  local rc=$? i
  trap - EXIT INT TERM
  # Reverse start order: the manager goes before the control plane it talks to.
  for ((i = ${#CHILDREN[@]} - 1; i >= 0; i--)); do
    log "stopping ${CHILDREN[i]%%:*}"
    stop_child "${CHILDREN[i]%%:*}" "${CHILDREN[i]##*:}"
  done
  log "done in ${SECONDS}s"
  exit "${rc}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME CMD... runs CMD in the background, in a new process group and
# session (so a Ctrl-C reaches only this script, which then stops the children
# in order), with its output in bin/demo/NAME.log.
start() {
  local name="$1"; shift
  local logfile="${DEMO_DIR}/${name}.log"
  : >"${logfile}"
  if command -v setsid >/dev/null; then
    setsid "$@" </dev/null >>"${logfile}" 2>&1 &
  else
    "$@" </dev/null >>"${logfile}" 2>&1 &
  fi
  CHILDREN+=("${name}:$!")
  log "started ${name} (pid $!, log ${logfile#"${ROOT}"/})"
}

# alive NAME fails the demo if the child NAME has exited.
alive() {
  local c
  for c in "${CHILDREN[@]}"; do
    if [[ "${c%%:*}" == "$1" ]] && ! kill -0 "${c##*:}" 2>/dev/null; then
      die "$1 exited unexpectedly"
    fi
  done
}

# wait_for NAME SECONDS WHAT CMD... polls CMD until it succeeds.
wait_for() {
  local name="$1" timeout="$2" what="$3"; shift 3
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    alive "${name}"
    ((SECONDS < deadline)) || die "${name}: ${what} not seen within ${timeout}s"
    sleep 0.2
  done
}

command -v go >/dev/null || die "go is not on PATH"
command -v kubectl >/dev/null || die "kubectl is not on PATH"
command -v curl >/dev/null || die "curl is not on PATH"
mkdir -p "${DEMO_DIR}"

log "building bin/manager, bin/millis-simulator and bin/local-control-plane"
go build -o "${BIN}/manager" .
go build -o "${BIN}/millis-simulator" ./hack/millis-simulator
go build -o "${BIN}/local-control-plane" ./hack/local-control-plane

log "preparing kube-apiserver and etcd (instant once built; the first run on a machine builds them from the Go module proxy, about 6 minutes)"
ASSETS="$(hack/control-plane.sh)" || die "hack/control-plane.sh could not provide kube-apiserver and etcd"

# A kubeconfig left by an earlier run must not pass for a running control plane.
rm -f "${KUBECONFIG_PATH}"
start local-control-plane "${BIN}/local-control-plane" \
  --assets "${ASSETS}" --crds "${ROOT}/config/crd/bases" --kubeconfig "${KUBECONFIG_PATH}"
wait_for local-control-plane 90 "${KUBECONFIG_PATH#"${ROOT}"/}" test -s "${KUBECONFIG_PATH}"
export KUBECONFIG="${KUBECONFIG_PATH}"
wait_for local-control-plane 60 "/readyz" kubectl get --raw /readyz
log "control plane ready: export KUBECONFIG=${KUBECONFIG_PATH}"

start millis-simulator "${BIN}/millis-simulator" --addr "${SIMULATOR_ADDR}" --ring 1s --talk 3s
wait_for millis-simulator 30 "the listening line" grep -q "millis-simulator listening on" "${DEMO_DIR}/millis-simulator.log"
log "Millis simulator listening on ${SIMULATOR_ADDR}"

# MANAGER_ARGS is split on whitespace on purpose: it holds flags.
# shellcheck disable=SC2086
start manager "${BIN}/manager" \
  --call-poll-interval 5s --retry-interval 3s \
  --metrics-bind-address 0 \
  --health-probe-bind-address "${PROBE_ADDR}" \
  --millis-webhook-bind-address "${WEBHOOK_ADDR}" \
  ${MANAGER_ARGS}
wait_for manager 60 "http://${PROBE_ADDR}/readyz" curl -fsS "http://${PROBE_ADDR}/readyz"
log "manager ready (webhook receiver on ${WEBHOOK_ADDR})"

log "applying config/admission (freezes a dialed call's metadata)"
kubectl apply -k config/admission >/dev/null || die "kubectl apply of config/admission failed"
log "applying config/samples (namespace ${NAMESPACE}, credentials, account, calls)"
kubectl kustomize config/samples \
  | sed -e "s#${SAMPLE_SIMULATOR_URL}#http://${SIMULATOR_ADDR}#g" \
        -e "s#${SAMPLE_WEBHOOK_URL}#http://${WEBHOOK_ADDR}#g" \
  | kubectl apply -f - || die "kubectl apply of config/samples failed"

# phases prints "finished total" for the OutboundCalls in the namespace.
phases() {
  kubectl get outboundcalls -n "${NAMESPACE}" \
    -o jsonpath='{range .items[*]}{.status.phase}{"\n"}{end}' \
    | awk '$1 == "Succeeded" || $1 == "Failed" { f++ } { n++ } END { print f + 0, n + 0 }'
}

started=${SECONDS}
deadline=$((SECONDS + DEMO_TIMEOUT))
while :; do
  alive local-control-plane
  alive millis-simulator
  alive manager
  read -r finished total < <(phases || echo "0 0")
  echo
  echo "--- $((SECONDS - started))s: ${finished}/${total} calls finished ---"
  kubectl get millisaccounts,agents -n "${NAMESPACE}" || true
  echo
  kubectl get outboundcalls -n "${NAMESPACE}" || true
  echo
  kubectl get callcampaigns -n "${NAMESPACE}" || true
  campaign_done=$(kubectl get callcampaign demo-campaign -n "${NAMESPACE}" \
    -o jsonpath='{.status.conditions[?(@.type=="Complete")].status}' 2>/dev/null || true)
  if ((total > 0 && finished == total)) && [[ "${campaign_done}" == "True" ]]; then
    break
  fi
  if ((SECONDS >= deadline)); then
    die "only ${finished} of ${total} calls finished within ${DEMO_TIMEOUT}s"
  fi
  sleep 2
done

echo
echo "=== every call has finished ==="
kubectl get millisaccounts,agents -n "${NAMESPACE}" -o wide
echo
kubectl get outboundcalls -n "${NAMESPACE}" -o wide
echo
kubectl get callcampaigns -n "${NAMESPACE}" -o wide
echo
echo "demo-campaign results (ConfigMap demo-campaign-results-0):"
kubectl get configmap demo-campaign-results-0 -n "${NAMESPACE}" -o jsonpath='{.data.results\.csv}' || true
echo

if [[ "${KEEP_RUNNING}" == "1" ]]; then
  log "still running; try: KUBECONFIG=${KUBECONFIG_PATH} kubectl get millis -A. Ctrl-C stops everything."
  while :; do
    alive local-control-plane
    alive millis-simulator
    alive manager
    sleep 2
  done
fi
