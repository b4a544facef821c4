package install

import (
	"testing"

	. "github.com/onsi/gomega"
)

// kustomizeNamespace is the namespace of config/default.
const kustomizeNamespace = "millis-operator-system"

// renderKustomize builds config/default with the Makefile's kustomize, as
// make deploy and make build-installer do.
func renderKustomize(t *testing.T) objects {
	t.Helper()
	kustomize := kustomizeBin(t)
	out, err := renders.get("kustomize", func() ([]byte, error) {
		return run(kustomize, "build", "config/default")
	})
	if err != nil {
		t.Fatal(err)
	}
	objs, err := parseManifests(out)
	if err != nil {
		t.Fatalf("kustomize output: %v", err)
	}
	return objs
}

func TestKustomize(t *testing.T) {
	objs := renderKustomize(t)
	checkInstall(t, objs, want{namespace: kustomizeNamespace, replicas: 2})
	g := NewWithT(t)
	g.Expect(objs.find("Namespace", "", kustomizeNamespace)).NotTo(BeNil(), "the install creates its namespace")
	g.Expect(objs[0].GetKind()).To(Equal("Namespace"), "the namespace comes first, so that one kubectl apply creates it before its contents")
}
