package observability

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// TestChartDashboardCopy fails when the chart's copy of the dashboard
// drifts: run `make chart-sync`.
func TestChartDashboardCopy(t *testing.T) {
	src, dst := readFile(t, dashboardPath), readFile(t, chartDashboardPath)
	if !bytes.Equal(src, dst) {
		t.Errorf("%s differs from %s: run make chart-sync\n%s", chartDashboardPath, dashboardPath,
			cmp.Diff(string(src), string(dst)))
	}
}

// TestChartDashboard renders the chart: grafanaDashboard.enabled (off by
// default) ships the dashboard, byte for byte, in a ConfigMap with the label
// Grafana's sidecar looks for.
func TestChartDashboard(t *testing.T) {
	g := NewWithT(t)
	helm := helmBin(t)

	var values struct {
		GrafanaDashboard struct {
			Enabled *bool `json:"enabled"`
		} `json:"grafanaDashboard"`
	}
	g.Expect(yaml.Unmarshal(readFile(t, "charts/millis-operator/values.yaml"), &values)).To(Succeed())
	g.Expect(values.GrafanaDashboard.Enabled).To(HaveValue(BeFalse()), "grafanaDashboard.enabled is in values.yaml, false")

	g.Expect(dashboardConfigMaps(t, helm)).To(BeEmpty(), "no dashboard ConfigMap by default")

	cms := dashboardConfigMaps(t, helm, "--set", "grafanaDashboard.enabled=true")
	g.Expect(cms).To(HaveLen(1))
	cm := cms[0]
	g.Expect(cm.Namespace).To(Equal("millis-system"))
	g.Expect(cm.Labels).To(HaveKeyWithValue("grafana_dashboard", "1"))
	g.Expect(cm.Labels).To(HaveKeyWithValue("app.kubernetes.io/instance", "millis"))
	g.Expect(cm.Data).To(HaveLen(1))
	g.Expect(cm.Data).To(HaveKeyWithValue("millis-operator-dashboard.json", string(readFile(t, dashboardPath))))
}

// dashboardConfigMaps renders the chart with args and returns its
// ConfigMaps that carry the grafana_dashboard label.
func dashboardConfigMaps(t *testing.T, helm string, args ...string) []corev1.ConfigMap {
	t.Helper()
	cmd := exec.Command(helm, append([]string{"template", "millis", "charts/millis-operator", "--namespace", "millis-system"}, args...)...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template %v: %v\n%s", args, err, stderr.String())
	}
	var cms []corev1.ConfigMap
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	for {
		var raw map[string]any
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return cms
			}
			t.Fatal(err)
		}
		if raw["kind"] != "ConfigMap" {
			continue
		}
		b, err := yaml.Marshal(raw)
		if err != nil {
			t.Fatal(err)
		}
		var cm corev1.ConfigMap
		if err := yaml.UnmarshalStrict(b, &cm); err != nil {
			t.Fatal(err)
		}
		if _, ok := cm.Labels["grafana_dashboard"]; ok {
			cms = append(cms, cm)
		}
	}
}

// helmBin is the helm that hack/helm.sh pins and builds into bin/, or $HELM.
func helmBin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("HELM"); p != "" {
		return p
	}
	m := regexp.MustCompile(`(?m)^HELM_VERSION="\$\{HELM_VERSION:-(v[0-9.]+)\}"`).FindSubmatch(readFile(t, "hack/helm.sh"))
	if m == nil {
		t.Fatal("no pinned HELM_VERSION in hack/helm.sh")
	}
	p := filepath.Join(root, "bin", "helm-"+string(m[1]))
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("helm %s is not built (%s): run hack/helm.sh (or make helm), or set HELM", m[1], p)
	}
	return p
}
