package docs_test

// Metrics rule.
//
// Every Prometheus metric the operator defines (prometheus.New... calls in
// internal/metrics/metrics.go and internal/webhook/metrics.go, read from the
// Go source) has a table row in docs/operations.md whose first cell is the
// metric name in a code span, and whose row names each of its labels in a
// code span and its type (counter, gauge, histogram, summary). The
// controller-runtime metrics operations.md promises are listed in
// controllerRuntimeMetrics and need a row too.
//
// Every alert of config/prometheus/alerts.yaml is listed in operations.md,
// and its runbook link resolves.

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

type metricDef struct {
	name, typ string
	labels    []string
	file      string
}

var metricSources = []string{
	filepath.Join("internal", "metrics", "metrics.go"),
	filepath.Join("internal", "webhook", "metrics.go"),
}

// controllerRuntimeMetrics are the controller-runtime and client-go
// metrics the manager serves that operations.md documents, with their type
// and labels as controller-runtime v0.25 defines them.
var controllerRuntimeMetrics = map[string]metricDef{
	"controller_runtime_reconcile_total":        {typ: "counter", labels: []string{"controller", "result"}},
	"controller_runtime_reconcile_errors_total": {typ: "counter", labels: []string{"controller"}},
	"controller_runtime_reconcile_time_seconds": {typ: "histogram", labels: []string{"controller"}},
	"workqueue_depth":                           {typ: "gauge", labels: []string{"name", "controller", "priority"}},
	"rest_client_requests_total":                {typ: "counter", labels: []string{"code", "method", "host"}},
	"leader_election_master_status":             {typ: "gauge", labels: []string{"name"}},
}

func operatorMetrics(t *testing.T, root string) []metricDef {
	t.Helper()
	var out []metricDef
	for _, rel := range metricSources {
		fset := token.NewFileSet()
		file, err := parser.ParseFile(fset, filepath.Join(root, rel), nil, 0)
		if err != nil {
			t.Fatalf("parse %s: %v", rel, err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || !strings.HasPrefix(sel.Sel.Name, "New") || len(call.Args) == 0 {
				return true
			}
			if pkg, ok := sel.X.(*ast.Ident); !ok || pkg.Name != "prometheus" {
				return true
			}
			opts, ok := call.Args[0].(*ast.CompositeLit)
			if !ok {
				return true
			}
			def := metricDef{file: rel, typ: metricType(sel.Sel.Name)}
			for _, el := range opts.Elts {
				kv, ok := el.(*ast.KeyValueExpr)
				if !ok {
					continue
				}
				if key, ok := kv.Key.(*ast.Ident); ok && key.Name == "Name" {
					def.name = stringLit(t, kv.Value)
				}
			}
			if len(call.Args) > 1 {
				if labels, ok := call.Args[1].(*ast.CompositeLit); ok {
					for _, el := range labels.Elts {
						def.labels = append(def.labels, stringLit(t, el))
					}
				}
			}
			if def.name == "" {
				t.Errorf("%s: a prometheus.%s call without a literal Name", rel, sel.Sel.Name)
				return true
			}
			out = append(out, def)
			return true
		})
	}
	return out
}

func metricType(constructor string) string {
	for _, typ := range []string{"Counter", "Gauge", "Histogram", "Summary"} {
		if strings.HasPrefix(strings.TrimPrefix(constructor, "New"), typ) {
			return strings.ToLower(typ)
		}
	}
	return ""
}

func stringLit(t *testing.T, e ast.Expr) string {
	t.Helper()
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		t.Errorf("not a string literal: %T", e)
		return ""
	}
	s, err := strconv.Unquote(lit.Value)
	if err != nil {
		t.Error(err)
	}
	return s
}

func TestEveryMetricIsDocumented(t *testing.T) {
	root := repoRoot(t)
	defs := operatorMetrics(t, root)
	if len(defs) < 10 {
		t.Fatalf("found only %d metrics in %v; the parser is broken", len(defs), metricSources)
	}
	for name, d := range controllerRuntimeMetrics {
		d.name, d.file = name, "controller-runtime"
		defs = append(defs, d)
	}
	const page = "docs/operations.md"
	md := parseMarkdown(page, readFile(t, filepath.Join(root, page)))
	rows := map[string]tableRow{}
	for _, row := range md.rows() {
		for _, span := range codeSpans(row.cells[0]) {
			if _, seen := rows[span]; !seen {
				rows[span] = row
			}
		}
	}
	var problems []string
	for _, d := range defs {
		row, ok := rows[d.name]
		if !ok {
			problems = append(problems, d.name+" ("+d.file+"): no table row starts with it")
			continue
		}
		text := strings.Join(row.cells, " | ")
		spans := codeSpans(text)
		for _, l := range d.labels {
			if !contains(spans, l) {
				problems = append(problems, d.name+": label `"+l+"` is not in its row (line "+itoa(row.line)+")")
			}
		}
		if d.typ != "" && !strings.Contains(strings.ToLower(text), d.typ) {
			problems = append(problems, d.name+": the row does not say it is a "+d.typ+" (line "+itoa(row.line)+")")
		}
	}
	sort.Strings(problems)
	if len(problems) > 0 {
		t.Errorf("%s:\n  %s", page, strings.Join(problems, "\n  "))
	}
}

// TestMetricParsing guards the parser with metrics that must be found.
func TestMetricParsing(t *testing.T) {
	root := repoRoot(t)
	got := map[string]metricDef{}
	for _, d := range operatorMetrics(t, root) {
		got[d.name] = d
	}
	if d := got["millis_operator_campaign_recipients"]; d.typ != "gauge" || !contains(d.labels, "state") {
		t.Errorf("millis_operator_campaign_recipients = %+v, want a gauge with a state label", d)
	}
	if d := got["millis_operator_millis_request_duration_seconds"]; d.typ != "histogram" {
		t.Errorf("millis_operator_millis_request_duration_seconds = %+v, want a histogram", d)
	}
	if d, ok := got["millis_operator_webhook_in_flight_requests"]; !ok || len(d.labels) != 0 {
		t.Errorf("millis_operator_webhook_in_flight_requests = %+v, want a gauge without labels", d)
	}
}

// repoBlob is how alert runbook URLs name files of this repository.
const repoBlob = "https://github.com/callops/millis-operator/blob/main/"

// TestAlertRunbooks checks config/prometheus/alerts.yaml against the docs:
// every alert is listed in docs/operations.md (a table row whose first cell
// names it), and a runbook_url into this repository points at a heading
// that exists. The alerts' PromQL is checked by test/observability.
func TestAlertRunbooks(t *testing.T) {
	root := repoRoot(t)
	const path = "config/prometheus/alerts.yaml"
	var rule struct {
		Kind string `json:"kind"`
		Spec struct {
			Groups []struct {
				Rules []struct {
					Alert       string            `json:"alert"`
					Annotations map[string]string `json:"annotations"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal([]byte(readFile(t, filepath.Join(root, path))), &rule); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if rule.Kind != "PrometheusRule" {
		t.Fatalf("%s: kind %q, want PrometheusRule", path, rule.Kind)
	}
	const page = "docs/operations.md"
	ops := parseMarkdown(page, readFile(t, filepath.Join(root, page)))
	listed := map[string]bool{}
	for _, row := range ops.rows() {
		for _, span := range codeSpans(row.cells[0]) {
			listed[span] = true
		}
	}
	pages := map[string]markdown{}
	alerts := 0
	for _, g := range rule.Spec.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts++
			if !listed[r.Alert] {
				t.Errorf("%s: alert %s has no table row in %s", path, r.Alert, page)
			}
			runbook, ok := strings.CutPrefix(r.Annotations["runbook_url"], repoBlob)
			if !ok {
				continue
			}
			file, fragment, _ := strings.Cut(runbook, "#")
			md, ok := pages[file]
			if !ok {
				if _, err := os.Stat(filepath.Join(root, file)); err != nil {
					t.Errorf("%s: alert %s: runbook %s does not exist", path, r.Alert, file)
					continue
				}
				md = parseMarkdown(file, readFile(t, filepath.Join(root, file)))
				pages[file] = md
			}
			if fragment != "" && !anchors(md)[fragment] {
				t.Errorf("%s: alert %s: runbook %s has no heading with anchor #%s", path, r.Alert, file, fragment)
			}
		}
	}
	if alerts == 0 {
		t.Errorf("%s: no alerts found; the parser is broken", path)
	}
}
