package install

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

// image is what the Dockerfile's final stage declares.
type image struct {
	base       string
	uid, gid   int64
	entrypoint []string
	cgo        string // CGO_ENABLED of the manager's go build
	finalRUN   bool
}

func readDockerfile(t *testing.T) image {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var img image
	for _, line := range strings.Split(strings.ReplaceAll(string(b), "\\\n", " "), "\n") {
		instr, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(instr) {
		case "FROM":
			img = image{base: strings.Fields(rest)[0], cgo: img.cgo}
		case "USER":
			u, g, _ := strings.Cut(rest, ":")
			if img.uid, err = strconv.ParseInt(u, 10, 64); err != nil {
				t.Fatalf("Dockerfile: USER %s is not numeric: the kubelet can only verify runAsNonRoot for a numeric user", rest)
			}
			if g != "" {
				if img.gid, err = strconv.ParseInt(g, 10, 64); err != nil {
					t.Fatalf("Dockerfile: USER %s: group is not numeric", rest)
				}
			}
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(rest), &img.entrypoint); err != nil {
				t.Fatalf("Dockerfile: ENTRYPOINT %s is not the exec form: %v", rest, err)
			}
		case "RUN":
			img.finalRUN = true
			for _, f := range strings.Fields(rest) {
				if v, ok := strings.CutPrefix(f, "CGO_ENABLED="); ok && strings.Contains(rest, "go build") {
					img.cgo = v
				}
			}
		}
	}
	if img.base == "" {
		t.Fatal("Dockerfile: no FROM")
	}
	return img
}

// TestDockerfile checks that the image runs as a non-root user with no
// shell or libc, which the manifests' securityContext relies on. That the
// manager writes nothing to disk (so a read-only root filesystem is enough)
// is documented in docs/install.md.
func TestDockerfile(t *testing.T) {
	g := NewWithT(t)
	img := readDockerfile(t)
	g.Expect(img.base).To(HavePrefix("gcr.io/distroless/static"), "a distroless static base: no shell, no package manager")
	g.Expect(img.base).To(HaveSuffix(":nonroot"), "the nonroot variant")
	g.Expect(img.uid).NotTo(BeZero(), "USER is not root")
	g.Expect(img.gid).NotTo(BeZero(), "the group is not root")
	g.Expect(img.finalRUN).To(BeFalse(), "nothing runs in the final stage (it has no shell)")
	g.Expect(img.cgo).To(Equal("0"), "the manager is linked statically: distroless/static has no libc")
	g.Expect(img.entrypoint).To(Equal([]string{"/manager"}))

	// The manifests run the image as its own user and entrypoint.
	for _, objs := range []objects{renderKustomize(t), renderChart(t, chartCases[0])} {
		dep := checkedDeployment(t, objs)
		spec := dep.Spec.Template.Spec
		g.Expect(spec.Containers[0].Command).To(Equal(img.entrypoint), "%s runs the image's entrypoint", dep.Name)
		if u := spec.SecurityContext.RunAsUser; u != nil {
			g.Expect(*u).To(Equal(img.uid), "%s runs as the image's user", dep.Name)
		}
		if gr := spec.SecurityContext.RunAsGroup; gr != nil {
			g.Expect(*gr).To(Equal(img.gid), "%s runs as the image's group", dep.Name)
		}
	}
}
