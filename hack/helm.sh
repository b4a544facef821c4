#!/usr/bin/env bash
# Builds the helm CLI from the Go module proxy and caches it as
# bin/helm-<version>, for the chart tests (test/install) and `make helm`.
#
# Our CI machines have no helm and cannot reach get.helm.sh, but they can reach
# the Go module proxy. Helm is built outside our module: it never enters our
# go.mod.
#
# v3.22.0 is pinned because it is built on k8s.io/client-go v0.37, the same
# minor as our control plane (1.37): its default capabilities for
# `helm template` and `helm lint` are then Kubernetes 1.37. It needs Go 1.26.
#
# Usage: hack/helm.sh                       # build if missing, print the path
#        HELM_VERSION=v3.21.4 hack/helm.sh
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.22.0}"
# The Kubernetes version helm reports as its default capabilities; helm's own
# Makefile derives it from its k8s.io/client-go (v0.37.x -> 1.37).
HELM_KUBE_MINOR="${HELM_KUBE_MINOR:-37}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${ROOT}/bin/helm-${HELM_VERSION}"
WORK="${ROOT}/bin/.build"

log() { echo "helm: $*" >&2; }
die() { echo "helm: ERROR: $*" >&2; exit 1; }

# The same fixed build flags as hack/control-plane.sh, so that both builds
# share compiled packages in the Go build cache.
export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:-} -mod=mod"
BUILD_FLAGS=(-trimpath)

check_version() {
  [[ -x "${BIN}" ]] && "${BIN}" version --template '{{.Version}}' 2>/dev/null | grep -qx "${HELM_VERSION}"
}

if check_version; then
  echo "${BIN}"
  exit 0
fi

command -v go >/dev/null || die "go is not on PATH"
mkdir -p "${WORK}"
gobin="$(mktemp -d "${WORK}/helm-gobin.XXXXXX")"
trap 'rm -rf "${gobin}"' EXIT

pkg="helm.sh/helm/v3"
ld="-s -w -X ${pkg}/internal/version.version=${HELM_VERSION} -X ${pkg}/internal/version.gitTreeState=clean"
for p in "${pkg}/pkg/lint/rules" "${pkg}/pkg/chartutil"; do
  ld+=" -X ${p}.k8sVersionMajor=1 -X ${p}.k8sVersionMinor=${HELM_KUBE_MINOR}"
done

start=$(date +%s)
log "building helm ${HELM_VERSION} (about 2 minutes on 2 cores, once per machine)"
# `go install pkg@version` builds with helm's own go.mod and go.sum, ignoring ours.
( cd "${WORK}" && GOBIN="${gobin}" go install "${BUILD_FLAGS[@]}" -ldflags "${ld}" "${pkg}/cmd/helm@${HELM_VERSION}" ) \
  > "${WORK}/helm-build.log" 2>&1 || { tail -30 "${WORK}/helm-build.log" >&2; die "helm ${HELM_VERSION} did not build (log: ${WORK}/helm-build.log)"; }
mv "${gobin}/helm" "${BIN}"
check_version || die "${BIN} does not report ${HELM_VERSION}: $("${BIN}" version 2>&1 | head -1)"
log "ready in $(( $(date +%s) - start ))s: ${BIN}"
echo "${BIN}"
