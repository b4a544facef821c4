package observability

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

// dashboard is the part of a Grafana dashboard model the tests read.
type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource *datasourceRef `json:"datasource"`
	GridPos    *gridPos       `json:"gridPos"`
	Targets    []target       `json:"targets"`
	// Panels are the panels of a collapsed row.
	Panels []panel `json:"panels"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type gridPos struct {
	H int `json:"h"`
	W int `json:"w"`
	X int `json:"x"`
	Y int `json:"y"`
}

type target struct {
	Datasource *datasourceRef `json:"datasource"`
	Expr       string         `json:"expr"`
	RefID      string         `json:"refId"`
}

type variable struct {
	Type       string          `json:"type"`
	Name       string          `json:"name"`
	Query      json.RawMessage `json:"query"`
	Datasource *datasourceRef  `json:"datasource"`
}

// queryText is a query variable's PromQL-ish query, which Grafana stores as
// a string or as {"query": "..."}.
func (v variable) queryText() (string, error) {
	var s string
	if err := json.Unmarshal(v.Query, &s); err == nil {
		return s, nil
	}
	var obj struct {
		Query string `json:"query"`
	}
	if err := json.Unmarshal(v.Query, &obj); err != nil {
		return "", fmt.Errorf("variable %s: query is neither a string nor an object: %w", v.Name, err)
	}
	return obj.Query, nil
}

// templatedDatasource is how every panel and query names its data source:
// the dashboard's datasource variable, so that the dashboard imports into
// any Grafana.
var templatedDatasource = datasourceRef{Type: "prometheus", UID: "${datasource}"}

// grafanaVariables are Grafana's built-in variables an expression may use.
var grafanaVariables = set("__rate_interval", "__interval", "__interval_ms", "__range", "__range_s", "__range_ms")

var variableRef = regexp.MustCompile(`\$(?:\{(\w+)(?::\w+)?\}|(\w+))`)

// located is an expression and where it is.
type located struct {
	where string
	expr  string
}

// allPanels flattens rows: the panels of collapsed rows follow their row.
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// dashboardProblems checks a dashboard model: its structure, its variables,
// and every metric its queries name against m.
func dashboardProblems(b []byte, m exportedMetrics, leaderID string) []string {
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&d); err != nil {
		return []string{"parse: " + err.Error()}
	}
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	if d.UID == "" || d.Title == "" {
		bad("the dashboard needs a uid and a title")
	}
	if d.SchemaVersion < 36 {
		bad("schemaVersion %d: want 36 or later (data sources as references)", d.SchemaVersion)
	}

	// Variables.
	defined := map[string]variable{}
	var exprs []located
	for _, v := range d.Templating.List {
		if _, dup := defined[v.Name]; dup || v.Name == "" {
			bad("variable %q: empty or defined twice", v.Name)
		}
		defined[v.Name] = v
		switch v.Type {
		case "datasource":
			var q string
			if err := json.Unmarshal(v.Query, &q); err != nil || q != "prometheus" {
				bad("variable %s: a datasource variable must list prometheus data sources, got %s", v.Name, v.Query)
			}
		case "query":
			if v.Datasource == nil || *v.Datasource != templatedDatasource {
				bad("variable %s: data source %v, want %v", v.Name, v.Datasource, templatedDatasource)
			}
			q, err := v.queryText()
			if err != nil {
				bad("%v", err)
				continue
			}
			sel, err := labelValuesSelector(q)
			if err != nil {
				bad("variable %s: %v", v.Name, err)
				continue
			}
			exprs = append(exprs, located{"variable " + v.Name, sel})
		default:
			bad("variable %s: type %q is not checked by this test", v.Name, v.Type)
		}
	}
	if v, ok := defined["datasource"]; !ok || v.Type != "datasource" {
		bad("no datasource variable of type datasource: panels refer to ${datasource}")
	}
	for _, name := range []string{"namespace", "campaign"} {
		if v, ok := defined[name]; !ok || v.Type != "query" {
			bad("no %s query variable", name)
		}
	}

	// Panels.
	ids := map[int]string{}
	var cells [][24]bool
	for _, p := range allPanels(d.Panels) {
		where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if p.ID <= 0 {
			bad("%s: id must be positive", where)
		} else if other, dup := ids[p.ID]; dup {
			bad("%s: id also used by %s", where, other)
		}
		ids[p.ID] = where
		g := p.GridPos
		if g == nil {
			bad("%s: no gridPos", where)
		} else if g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			bad("%s: gridPos %+v is outside the 24-column grid", where, *g)
		} else {
			for len(cells) < g.Y+g.H {
				cells = append(cells, [24]bool{})
			}
		cover:
			for y := g.Y; y < g.Y+g.H; y++ {
				for x := g.X; x < g.X+g.W; x++ {
					if cells[y][x] {
						bad("%s: gridPos %+v overlaps another panel at x=%d y=%d", where, *g, x, y)
						break cover
					}
					cells[y][x] = true
				}
			}
		}
		if p.Type == "row" {
			if len(p.Targets) > 0 {
				bad("%s: a row has no queries", where)
			}
			continue
		}
		if p.Datasource == nil || *p.Datasource != templatedDatasource {
			bad("%s: data source %v, want %v", where, p.Datasource, templatedDatasource)
		}
		if len(p.Targets) == 0 {
			bad("%s: no query", where)
		}
		refs := map[string]bool{}
		for _, t := range p.Targets {
			tw := where + " query " + t.RefID
			if t.RefID == "" || refs[t.RefID] {
				bad("%s: refId empty or used twice", tw)
			}
			refs[t.RefID] = true
			if t.Datasource != nil && *t.Datasource != templatedDatasource {
				bad("%s: data source %v, want %v", tw, *t.Datasource, templatedDatasource)
			}
			if strings.TrimSpace(t.Expr) == "" {
				bad("%s: empty expr", tw)
				continue
			}
			exprs = append(exprs, located{tw, t.Expr})
		}
	}

	// Expressions.
	for _, e := range exprs {
		problems = append(problems, m.exprProblems(e.where, e.expr)...)
		for _, ref := range variableRef.FindAllStringSubmatch(e.expr, -1) {
			name := ref[1] + ref[2]
			if _, ok := defined[name]; !ok && !grafanaVariables[name] {
				bad("%s: $%s is not a variable of the dashboard", e.where, name)
			}
		}
		for _, name := range leaderNames(e.expr) {
			if name != leaderID {
				bad("%s: leader_election_master_status{name=%q}: the manager's lease is %q (main.go)", e.where, name, leaderID)
			}
		}
	}
	return problems
}

// labelValuesSelector returns the series selector of a Grafana
// label_values(selector, label) query; label_values(label) has none, and
// the test wants every variable tied to a metric.
func labelValuesSelector(q string) (string, error) {
	q = strings.TrimSpace(q)
	inner, ok := strings.CutPrefix(q, "label_values(")
	if !ok || !strings.HasSuffix(inner, ")") {
		return "", fmt.Errorf("query %q: want label_values(<selector>, <label>)", q)
	}
	inner = strings.TrimSuffix(inner, ")")
	i := strings.LastIndex(inner, ",")
	if i < 0 || strings.LastIndex(inner, "}") > i {
		return "", fmt.Errorf("query %q: want label_values(<selector>, <label>)", q)
	}
	label := strings.TrimSpace(inner[i+1:])
	if label == "" || strings.IndexFunc(label, func(r rune) bool { return !isIdentChar(byte(r)) || r > 127 }) >= 0 {
		return "", fmt.Errorf("query %q: %q is not a label name", q, label)
	}
	return strings.TrimSpace(inner[:i]), nil
}

// dashboardExprs returns every query expression of the dashboard's panels.
func dashboardExprs(t *testing.T, b []byte) []string {
	t.Helper()
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			out = append(out, tg.Expr)
		}
	}
	return out
}

func TestDashboard(t *testing.T) {
	m := managerMetrics(t)
	b := readFile(t, dashboardPath)
	if p := dashboardProblems(b, m, leaderElectionID(t)); len(p) > 0 {
		t.Errorf("%s:\n  %s", dashboardPath, strings.Join(p, "\n  "))
	}
}

// TestDashboardRows checks the rows docs/dashboards.md describes.
func TestDashboardRows(t *testing.T) {
	g := NewWithT(t)
	var d dashboard
	g.Expect(json.Unmarshal(readFile(t, dashboardPath), &d)).To(Succeed())
	var rows []string
	for _, p := range allPanels(d.Panels) {
		if p.Type == "row" {
			rows = append(rows, p.Title)
		}
	}
	g.Expect(rows).To(Equal([]string{"Calls", "Campaigns", "Millis API", "Webhook receiver", "Controllers", "Process"}))
}

// TestDashboardShowsEveryOperatorMetric fails when the operator exports a
// metric of its own that no panel shows: add a panel with the metric.
func TestDashboardShowsEveryOperatorMetric(t *testing.T) {
	m := managerMetrics(t)
	used := map[string]bool{}
	for _, e := range dashboardExprs(t, readFile(t, dashboardPath)) {
		names, err := metricNames(e)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			used[n] = true
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base, ok := strings.CutSuffix(n, suffix); ok {
					used[base] = true
				}
			}
		}
	}
	ours := 0
	for name := range m {
		if !strings.HasPrefix(name, "millis_operator_") {
			continue
		}
		ours++
		if !used[name] {
			t.Errorf("no dashboard panel shows %s", name)
		}
	}
	if ours == 0 {
		t.Fatal("found no millis_operator_ metric in the manager's registry")
	}
}

// TestDashboardCheckFails proves that the checks fail: the dashboard with
// one metric misspelt, one histogram used bare, one undefined variable and
// one duplicated panel id must each be reported.
func TestDashboardCheckFails(t *testing.T) {
	m := managerMetrics(t)
	b := readFile(t, dashboardPath)
	leader := leaderElectionID(t)
	cases := []struct {
		reason, old, new, want string
	}{{
		reason: "a misspelt metric",
		old:    "millis_operator_calls_dialed_total{", new: "millis_operator_calls_dialled_total{",
		want: "millis_operator_calls_dialled_total is not exported by the manager",
	}, {
		reason: "a histogram without _bucket",
		old:    "controller_runtime_reconcile_time_seconds_bucket", new: "controller_runtime_reconcile_time_seconds",
		want: "controller_runtime_reconcile_time_seconds is a histogram",
	}, {
		reason: "a metric client-go defines but the manager never registers",
		old:    `leader_election_master_status{`, new: `leader_election_slowpath_total{`,
		want: "leader_election_slowpath_total is not exported by the manager",
	}, {
		reason: "a lease name other than the manager's",
		old:    `name=\"` + leader + `\"`, new: `name=\"` + leader + `-typo\"`,
		want: "the manager's lease is",
	}, {
		reason: "an undefined variable",
		old:    `namespace=~\"$namespace\"`, new: `namespace=~\"$namespaces\"`,
		want: "$namespaces is not a variable",
	}, {
		reason: "a misspelt function",
		old:    "histogram_quantile(", new: "histogram_quantil(",
		want: "unknown function histogram_quantil",
	}, {
		reason: "a panel without the templated data source",
		old:    `"uid": "${datasource}"`, new: `"uid": "prometheus"`,
		want: "data source",
	}, {
		reason: "a duplicated panel id",
		old:    `"id": 3,`, new: `"id": 2,`,
		want: "id also used by",
	}, {
		reason: "overlapping panels",
		old:    `"x": 6,`, new: `"x": 4,`,
		want: "overlaps another panel",
	}, {
		reason: "a missing gridPos",
		old:    `"gridPos"`, new: `"gridPosition"`,
		want: "no gridPos",
	}}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			mutated := bytes.Replace(b, []byte(tc.old), []byte(tc.new), 1)
			if bytes.Equal(mutated, b) {
				t.Fatalf("%q is not in %s: update the test", tc.old, dashboardPath)
			}
			p := dashboardProblems(mutated, m, leader)
			found := false
			for _, s := range p {
				found = found || strings.Contains(s, tc.want)
			}
			if !found {
				t.Errorf("want a problem containing %q, got:\n  %s", tc.want, strings.Join(p, "\n  "))
			}
		})
	}
}
