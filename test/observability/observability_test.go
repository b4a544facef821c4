// Package observability checks the Grafana dashboard
// (config/grafana/millis-operator-dashboard.json) and the Prometheus alerts
// (config/prometheus/alerts.yaml) against the metrics the manager really
// serves:
//
//   - every metric an expression names is one the manager exports, found by
//     building the manager's registry the way the manager does (see
//     managerMetrics), and histograms are selected by their _bucket, _sum or
//     _count series;
//   - every alert has a severity, a summary, a description and a runbook,
//     and waits (for:) before firing;
//   - the dashboard is well formed: unique panel ids, a grid position, the
//     templated data source and at least one query per panel, and only
//     variables it defines;
//   - the chart's copy of the dashboard is the same file, and the chart
//     renders it as a ConfigMap for Grafana's sidecar.
//
// The tests start no cluster:
//
//	go test ./test/observability/ -count=1
//
// Only TestChartDashboard needs a tool: helm, which hack/helm.sh builds
// into bin/ (or set HELM).
package observability

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// root is the repository root.
var root = func() string {
	r, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		panic(err)
	}
	return r
}()

const (
	dashboardPath      = "config/grafana/millis-operator-dashboard.json"
	chartDashboardPath = "charts/millis-operator/files/millis-operator-dashboard.json"
	alertsPath         = "config/prometheus/alerts.yaml"
)

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// leaderElectionID is the lease name main.go gives the manager, which is
// the name label of leader_election_master_status.
func leaderElectionID(t *testing.T) string {
	t.Helper()
	m := regexp.MustCompile(`LeaderElectionID:\s*"([^"]+)"`).FindSubmatch(readFile(t, "main.go"))
	if m == nil {
		t.Fatal("main.go sets no LeaderElectionID")
	}
	return string(m[1])
}

// leaderNames returns the name matcher of every
// leader_election_master_status selector in an expression ("" for a
// selector without one).
func leaderNames(expr string) []string {
	var out []string
	for _, m := range leaderSelector.FindAllStringSubmatch(expr, -1) {
		n := nameLabel.FindStringSubmatch(m[1])
		if n == nil {
			out = append(out, "")
			continue
		}
		out = append(out, n[1])
	}
	return out
}

var (
	leaderSelector = regexp.MustCompile(`leader_election_master_status\s*\{([^}]*)\}`)
	nameLabel      = regexp.MustCompile(`\bname\s*=\s*"([^"]*)"`)
)
