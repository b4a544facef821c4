// Package install tests the two production install paths, the Helm chart in
// charts/millis-operator and the kustomize tree in config/: that they render
// what a production install needs (checked on the parsed objects), that they
// agree with what the code generates (CRDs, RBAC, the admission policy), and
// that the output applies cleanly to a real kube-apiserver.
//
// It needs helm (hack/helm.sh builds it into bin/), the kustomize of the
// Makefile (make kustomize), kubectl, and the local control plane
// (KUBEBUILDER_ASSETS, or hack/control-plane.sh). Missing tools fail the
// tests; nothing is skipped.
package install

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// root is the repository root.
var root = func() string {
	r, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		panic(err)
	}
	return r
}()

const chartDir = "charts/millis-operator"

// pinnedVersion reads a tool version pinned in a repository file, so that the
// tests look for exactly the binary `make` builds.
func pinnedVersion(file, pattern string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, file))
	if err != nil {
		return "", err
	}
	m := regexp.MustCompile(pattern).FindSubmatch(b)
	if m == nil {
		return "", fmt.Errorf("no version matching %q in %s", pattern, file)
	}
	return string(m[1]), nil
}

// tool finds a pinned tool binary under bin/, or the path in env.
func tool(env, name, versionFile, versionPattern, howToBuild string) (string, error) {
	if p := os.Getenv(env); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", env, p, err)
		}
		return p, nil
	}
	v, err := pinnedVersion(versionFile, versionPattern)
	if err != nil {
		return "", err
	}
	p := filepath.Join(root, "bin", name+"-"+v)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s %s is not built (%s): run %s", name, v, p, howToBuild)
	}
	return p, nil
}

func helmBin(t *testing.T) string {
	t.Helper()
	p, err := tool("HELM", "helm", "hack/helm.sh", `(?m)^HELM_VERSION="\$\{HELM_VERSION:-(v[0-9.]+)\}"`, "hack/helm.sh (or make helm)")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func kustomizeBin(t *testing.T) string {
	t.Helper()
	p, err := tool("KUSTOMIZE", "kustomize", "Makefile", `(?m)^KUSTOMIZE_VERSION \?= (v[0-9.]+)`, "make kustomize")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// run runs a command in the repository root and returns its stdout; a
// failure carries stderr.
func run(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = root
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %w\n%s%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String(), stdout.String())
	}
	return stdout.Bytes(), nil
}

// memo renders each manifest once per test binary: the template, kustomize
// and apply tests share the output.
type memo struct {
	mu   sync.Mutex
	done map[string]memoResult
}

type memoResult struct {
	out []byte
	err error
}

var renders = memo{done: map[string]memoResult{}}

func (m *memo) get(key string, render func() ([]byte, error)) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.done[key]; ok {
		return r.out, r.err
	}
	out, err := render()
	m.done[key] = memoResult{out, err}
	return out, err
}

// parseManifests splits a multi-document YAML stream into objects.
func parseManifests(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, err
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetKind() == "" || u.GetAPIVersion() == "" {
			return nil, fmt.Errorf("document without kind or apiVersion: %v", m)
		}
		objs = append(objs, u)
	}
}

// objects is a rendered install.
type objects []*unstructured.Unstructured

func (o objects) ofKind(kind string) objects {
	var out objects
	for _, u := range o {
		if u.GetKind() == kind {
			out = append(out, u)
		}
	}
	return out
}

func (o objects) find(kind, namespace, name string) *unstructured.Unstructured {
	for _, u := range o {
		if u.GetKind() == kind && u.GetNamespace() == namespace && u.GetName() == name {
			return u
		}
	}
	return nil
}

// typed converts an object into its Go type.
func typed[T any](t *testing.T, u *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, out); err != nil {
		t.Fatalf("%s %s/%s: %v", u.GetKind(), u.GetNamespace(), u.GetName(), err)
	}
	return out
}

// allTyped converts every object of a kind.
func allTyped[T any](t *testing.T, o objects, kind string) []*T {
	t.Helper()
	var out []*T
	for _, u := range o.ofKind(kind) {
		out = append(out, typed[T](t, u))
	}
	return out
}

// readYAML reads one repository YAML file into a Go type.
func readYAML[T any](t *testing.T, path string) *T {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	out := new(T)
	if err := yaml.UnmarshalStrict(b, out); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return out
}

// readObjects reads a repository multi-document YAML file.
func readObjects(t *testing.T, path string) objects {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := parseManifests(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return objs
}
