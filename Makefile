# Image URL to use all building/pushing image targets
IMG ?= controller:latest
# CONTAINER_TOOL defines the container tool to be used for building images.
CONTAINER_TOOL ?= docker

# Setting SHELL to bash allows bash commands to be executed by recipes.
# Options are set to exit when a recipe line exits non-zero or a piped command fails.
SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec

.DEFAULT_GOAL := help

# Directories whose contents controller-gen writes; verify-gen diffs them.
GENERATED_DIRS = api config/crd config/rbac

##@ General

# The help target prints out all targets with their descriptions organized
# beneath their categories. The categories are represented by '##@' and the
# target descriptions by '##'. The awk command is responsible for reading the
# entire set of makefiles included in this invocation, looking for lines of the
# file as xyz: ## something, and then pretty-format the target and help. Then,
# if there's a line with ##@ something, that gets pretty-printed as a category.
# More info on the usage of ANSI control characters for terminal formatting:
# https://en.wikipedia.org/wiki/ANSI_escape_code#SGR_parameters
# More info on the awk command:
# http://linuxcommand.org/lc3_adv_awk.php

.PHONY: help
help: ## Display this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate CRDs and the manager ClusterRole into config/.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd webhook paths="./api/..." paths="./controllers/..." output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac

.PHONY: generate
generate: controller-gen ## Generate DeepCopy methods for the API types.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: fmt
fmt: ## Run go fmt against code.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet against code.
	go vet ./...

.PHONY: verify-gen
verify-gen: manifests generate ## Fail if the committed CRDs, RBAC or deepcopy differ from what the code generates.
	@if ! git diff --quiet --exit-code -- $(GENERATED_DIRS) \
	   || [ -n "$$(git ls-files --others --exclude-standard -- $(GENERATED_DIRS))" ]; then \
	  echo "verify-gen: generated files are out of date or not committed:" >&2; \
	  git status --short -- $(GENERATED_DIRS) >&2; \
	  git --no-pager diff --stat -- $(GENERATED_DIRS) >&2; \
	  echo "verify-gen: run 'make manifests generate' and commit the result." >&2; \
	  exit 1; \
	fi
	@echo "verify-gen: generated files are up to date"

.PHONY: control-plane
control-plane: ## Build kube-apiserver and etcd for envtest into bin/k8s/ (about 6 min the first time).
	@hack/control-plane.sh >/dev/null

##@ Argo CD

.PHONY: argocd
argocd: ## Render config/argocd/argocd-cm.yaml (the argocd-cm patch) from config/argocd/<group>/<Kind>/health.lua.
	go run ./hack/argocd-cm

##@ Test

# A plain assignment (unlike VAR=$(...) cmd) fails the recipe when the script fails.
.PHONY: test
test: verify-gen vet control-plane helm kustomize ## Run every test (unit, envtest integration, e2e) against the local control plane.
	@start=$$(date +%s); trap 'echo "make test: finished in $$(( $$(date +%s) - start ))s"' EXIT; \
	assets="$$(hack/control-plane.sh)"; \
	KUBEBUILDER_ASSETS="$$assets" go test ./... -count=1 -timeout 25m

.PHONY: test-unit
test-unit: ## Run the unit tests of internal/ (no control plane).
	go test ./internal/... -count=1

.PHONY: test-integration
test-integration: manifests generate control-plane ## Run the envtest integration tests of controllers/.
	@assets="$$(hack/control-plane.sh)"; \
	KUBEBUILDER_ASSETS="$$assets" go test ./controllers/... -count=1 -timeout 15m

.PHONY: test-e2e
test-e2e: manifests build control-plane ## Run the e2e tests (binaries, local control plane and simulator as processes).
	@assets="$$(hack/control-plane.sh)"; \
	KUBEBUILDER_ASSETS="$$assets" go test ./test/e2e/... -v -count=1 -timeout 20m

.PHONY: bench
bench: control-plane ## Run the Go benchmarks and the campaign benchmark table (hack/bench); output also in bin/bench.txt.
	@mkdir -p $(LOCALBIN); assets="$$(hack/control-plane.sh)"; \
	go build -o $(LOCALBIN)/manager . && \
	KUBEBUILDER_ASSETS="$$assets" go test -run '^$$' -bench . -benchmem ./internal/... | tee $(LOCALBIN)/bench.txt && \
	KUBEBUILDER_ASSETS="$$assets" go run ./hack/bench --manager $(LOCALBIN)/manager $(BENCH_ARGS) | tee -a $(LOCALBIN)/bench.txt

##@ Build

.PHONY: build
build: manifests generate fmt vet ## Build bin/manager, bin/millis-simulator and bin/local-control-plane.
	go build -o $(LOCALBIN)/manager .
	go build -o $(LOCALBIN)/millis-simulator ./hack/millis-simulator
	go build -o $(LOCALBIN)/local-control-plane ./hack/local-control-plane

.PHONY: run
run: manifests generate fmt vet ## Run the manager from your host against $KUBECONFIG; pass flags with ARGS="...".
	go run ./main.go $(ARGS)

.PHONY: demo
demo: ## Run the manager, the Millis simulator and a local control plane, and place the sample calls.
	hack/demo.sh

# If you wish to build the manager image targeting other platforms you can use the --platform flag.
# (i.e. docker build --platform linux/arm64). However, you must enable docker buildKit for it.
# More info: https://docs.docker.com/develop/develop-images/build_enhancements/
.PHONY: docker-build
docker-build: ## Build the manager image.
	$(CONTAINER_TOOL) build -t $(IMG) .

.PHONY: docker-push
docker-push: ## Push the manager image.
	$(CONTAINER_TOOL) push $(IMG)

.PHONY: build-installer
build-installer: manifests generate kustomize ## Render CRDs, RBAC and the Deployment into dist/install.yaml.
	mkdir -p dist
	cd config/manager && $(KUSTOMIZE) edit set image controller=$(IMG)
	$(KUSTOMIZE) build config/default > dist/install.yaml

.PHONY: chart-sync
chart-sync: manifests ## Copy the CRDs, RBAC rules and admission policy from config/ into the Helm chart.
	rm -f $(CHART_DIR)/crds/*.yaml
	mkdir -p $(CHART_DIR)/crds $(CHART_DIR)/files
	cp config/crd/bases/*.yaml $(CHART_DIR)/crds/
	cp config/rbac/role.yaml config/rbac/leader_election_role.yaml $(CHART_DIR)/files/
	cp config/admission/outboundcall-dialed-spec.yaml $(CHART_DIR)/files/
	cp config/grafana/millis-operator-dashboard.json $(CHART_DIR)/files/

.PHONY: helm-lint
helm-lint: helm ## Lint the Helm chart.
	$(HELM) lint --strict $(CHART_DIR)

.PHONY: clean
clean: ## Remove built binaries, demo state and dist/ (keeps the tools and the control plane in bin/).
	rm -rf $(LOCALBIN)/manager $(LOCALBIN)/millis-simulator $(LOCALBIN)/local-control-plane \
	  $(LOCALBIN)/demo $(LOCALBIN)/bench.txt dist cover.out cover.html

##@ Deployment

ifndef ignore-not-found
  ignore-not-found = false
endif

.PHONY: install
install: manifests ## Install the CRDs into the cluster of $KUBECONFIG.
	kubectl apply --server-side -f config/crd/bases

.PHONY: uninstall
uninstall: manifests ## Uninstall the CRDs. Call with ignore-not-found=true to ignore missing ones.
	kubectl delete --ignore-not-found=$(ignore-not-found) -f config/crd/bases

.PHONY: deploy
deploy: manifests kustomize ## Deploy the operator (image IMG) to the cluster of $KUBECONFIG.
	cd config/manager && $(KUSTOMIZE) edit set image controller=$(IMG)
	$(KUSTOMIZE) build config/default | kubectl apply -f -

.PHONY: undeploy
undeploy: kustomize ## Remove the operator. Call with ignore-not-found=true to ignore missing objects.
	$(KUSTOMIZE) build config/default | kubectl delete --ignore-not-found=$(ignore-not-found) -f -

##@ Dependencies

## Location to install dependencies to
LOCALBIN ?= $(shell pwd)/bin
$(LOCALBIN):
	mkdir -p $(LOCALBIN)

## Tool versions
CONTROLLER_TOOLS_VERSION ?= v0.23.0
# kustomize@latest needs a newer Go; kubectl kustomize renders the same output.
KUSTOMIZE_VERSION ?= v5.8.2

# Built from the Go module proxy by hack/helm.sh, which pins the version.
HELM_VERSION ?= $(shell sed -n 's/^HELM_VERSION="$${HELM_VERSION:-\(v[0-9.]*\)}"$$/\1/p' hack/helm.sh)

## Tool binaries
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
KUSTOMIZE ?= $(LOCALBIN)/kustomize-$(KUSTOMIZE_VERSION)
HELM ?= $(LOCALBIN)/helm-$(HELM_VERSION)

# The Helm chart; its crds/ and files/ are copies of config/ (make chart-sync).
CHART_DIR = charts/millis-operator

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Download controller-gen into bin/ if necessary.
$(CONTROLLER_GEN): | $(LOCALBIN)
	$(call go-install-tool,$(CONTROLLER_GEN),sigs.k8s.io/controller-tools/cmd/controller-gen,$(CONTROLLER_TOOLS_VERSION))

.PHONY: kustomize
kustomize: $(KUSTOMIZE) ## Download kustomize into bin/ if necessary.
$(KUSTOMIZE): | $(LOCALBIN)
	$(call go-install-tool,$(KUSTOMIZE),sigs.k8s.io/kustomize/kustomize/v5,$(KUSTOMIZE_VERSION))

.PHONY: helm
helm: ## Build the helm CLI from the Go module proxy into bin/ if necessary (about 2 min the first time).
	@HELM_VERSION=$(HELM_VERSION) hack/helm.sh >/dev/null

# go-install-tool will 'go install' any package with custom target and name of binary, if it doesn't exist
# $1 - target path with name of binary (ideally with version)
# $2 - package url which can be installed
# $3 - specific version of package
define go-install-tool
@[ -f "$(1)" ] || { \
set -e; \
package=$(2)@$(3) ;\
echo "Downloading $${package}" ;\
GOBIN=$(LOCALBIN) go install $${package} ;\
mv "$$(echo "$(1)" | sed "s/-$(3)$$//")" $(1) ;\
}
endef
