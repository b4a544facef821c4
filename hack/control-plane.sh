#!/usr/bin/env bash
# Builds a real kube-apiserver and etcd from the Go module proxy and caches them
# under bin/k8s/<version>/, for envtest, the e2e tests and the demo.
#
# The usual setup-envtest download cannot reach its servers from our CI machines,
# but the Go module proxy can. See docs/development.md for the why and the timings.
#
# Usage: hack/control-plane.sh            # build if missing, print the assets dir
#        KUBE_VERSION=1.37.2 ETCD_VERSION=3.7.3 hack/control-plane.sh
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-3.7.3}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN_DIR="${ROOT}/bin/k8s/${KUBE_VERSION}-etcd${ETCD_VERSION}"
WORK="${ROOT}/bin/.build"

log() { echo "control-plane: $*" >&2; }
die() { echo "control-plane: ERROR: $*" >&2; exit 1; }

# Changing any of these flags throws away the Go build cache (a 4-5 minute
# rebuild of kube-apiserver), so they are fixed here and nowhere else.
export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:-} -mod=mod"
BUILD_FLAGS=(-trimpath)

check_versions() {
  [[ -x "${BIN_DIR}/kube-apiserver" && -x "${BIN_DIR}/etcd" ]] || return 1
  "${BIN_DIR}/kube-apiserver" --version 2>/dev/null | grep -q "v${KUBE_VERSION}\$" || return 1
  "${BIN_DIR}/etcd" --version 2>/dev/null | grep -q "etcd Version: ${ETCD_VERSION}" || return 1
}

if check_versions; then
  echo "${BIN_DIR}"
  exit 0
fi

command -v go >/dev/null || die "go is not on PATH"
mkdir -p "${BIN_DIR}" "${WORK}"

build_etcd() {
  local dir="${WORK}/etcd-${ETCD_VERSION}"
  rm -rf "${dir}" && mkdir -p "${dir}"
  cat >"${dir}/go.mod" <<MOD
module local/etcdbuild

go 1.26
MOD
  cat >"${dir}/main.go" <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  ( cd "${dir}" \
    && go get "go.etcd.io/etcd/server/v3@v${ETCD_VERSION}" >/dev/null 2>&1 \
    && go mod tidy >/dev/null 2>&1 \
    && go build "${BUILD_FLAGS[@]}" -ldflags "-s -w" -o "${BIN_DIR}/etcd.tmp" . ) \
    > "${WORK}/etcd-build.log" 2>&1 || { tail -30 "${WORK}/etcd-build.log" >&2; die "etcd v${ETCD_VERSION} did not build (log: ${WORK}/etcd-build.log)"; }
  mv "${BIN_DIR}/etcd.tmp" "${BIN_DIR}/etcd"
}

build_apiserver() {
  local dir="${WORK}/kube-apiserver-${KUBE_VERSION}"
  rm -rf "${dir}" && mkdir -p "${dir}"
  local kmod
  kmod="$(go mod download -json "k8s.io/kubernetes@v${KUBE_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  [[ -f "${kmod}" ]] || die "could not download k8s.io/kubernetes@v${KUBE_VERSION} from the module proxy"
  local minor="${KUBE_VERSION#*.}"; minor="${minor%%.*}"
  {
    echo "module local/apiserverbuild"
    echo
    echo "go 1.26"
    echo
    echo "require k8s.io/kubernetes v${KUBE_VERSION}"
    echo
    # k8s.io/kubernetes replaces its staging modules with local paths; point
    # each at the published v0.<minor>.<patch> instead.
    awk '/^require \(/{r=1;next} r&&/^\)/{r=0} r&&$1~/^k8s.io\//&&$2=="v0.0.0"{print $1}' "${kmod}" \
      | grep -v -e sample-cli-plugin -e sample-controller \
      | while read -r m; do echo "replace ${m} => ${m} v0.${KUBE_VERSION#*.}"; done
  } >"${dir}/go.mod"
  cat >"${dir}/tools.go" <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO
  local pkg="k8s.io/component-base/version" cpkg="k8s.io/client-go/pkg/version"
  local date="2026-01-01T00:00:00Z"
  local ld="-s -w"
  for p in "${pkg}" "${cpkg}"; do
    ld+=" -X ${p}.gitVersion=v${KUBE_VERSION} -X ${p}.gitMajor=1 -X ${p}.gitMinor=${minor}"
    ld+=" -X ${p}.gitTreeState=clean -X ${p}.buildDate=${date}"
  done
  ( cd "${dir}" \
    && go mod tidy \
    && go build "${BUILD_FLAGS[@]}" -ldflags "${ld}" -o "${BIN_DIR}/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver ) \
    > "${WORK}/kube-apiserver-build.log" 2>&1 || { tail -30 "${WORK}/kube-apiserver-build.log" >&2; die "kube-apiserver v${KUBE_VERSION} did not build (log: ${WORK}/kube-apiserver-build.log)"; }
  mv "${BIN_DIR}/kube-apiserver.tmp" "${BIN_DIR}/kube-apiserver"
}

start=$(date +%s)
if ! [[ -x "${BIN_DIR}/etcd" ]] || ! "${BIN_DIR}/etcd" --version 2>/dev/null | grep -q "etcd Version: ${ETCD_VERSION}"; then
  log "building etcd v${ETCD_VERSION} (about a minute, once per machine)"
  build_etcd
fi
if ! [[ -x "${BIN_DIR}/kube-apiserver" ]] || ! "${BIN_DIR}/kube-apiserver" --version 2>/dev/null | grep -q "v${KUBE_VERSION}\$"; then
  log "building kube-apiserver v${KUBE_VERSION} (about 5 minutes, once per machine)"
  build_apiserver
fi
check_versions || die "built binaries in ${BIN_DIR} do not report kube-apiserver v${KUBE_VERSION} / etcd ${ETCD_VERSION}: $("${BIN_DIR}/kube-apiserver" --version 2>&1 | head -1); $("${BIN_DIR}/etcd" --version 2>&1 | head -1)"
log "ready in $(( $(date +%s) - start ))s: ${BIN_DIR}"
echo "${BIN_DIR}"
