# Build the manager binary
FROM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH

WORKDIR /workspace
# Copy the Go module manifests first and download the modules, so that a
# source change does not re-download them.
COPY go.mod go.mod
COPY go.sum go.sum
RUN go mod download

# Copy only the sources the manager is built from.
COPY main.go main.go
COPY api/ api/
COPY controllers/ controllers/
COPY internal/ internal/

# GOARCH has no default so that the image matches the platform of the host
# (or of --platform) instead of always being amd64.
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w" -o manager .

# Use distroless as minimal base image to package the manager binary.
# Refer to https://github.com/GoogleContainerTools/distroless for more details.
FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /workspace/manager .
# A numeric user, so that the kubelet can verify runAsNonRoot. The manager
# writes nothing to disk (docs/install.md), so it runs with a read-only root
# filesystem and needs no volume.
USER 65532:65532

ENTRYPOINT ["/manager"]
