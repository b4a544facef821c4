package observability

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"text/template"
	"time"

	"sigs.k8s.io/yaml"
)

// prometheusRule is a monitoring.coreos.com/v1 PrometheusRule, with the
// fields Prometheus reads from each rule. Strict parsing rejects anything
// else, such as a misspelt "annotation".
type prometheusRule struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels,omitempty"`
	} `json:"metadata"`
	Spec struct {
		Groups []struct {
			Name     string `json:"name"`
			Interval string `json:"interval,omitempty"`
			Rules    []rule `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

type rule struct {
	Alert       string            `json:"alert,omitempty"`
	Record      string            `json:"record,omitempty"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

const (
	// minFor is the least an alert waits before firing. Every alert here
	// reads a rate, a gauge or absent(), which a missed scrape or a leader
	// change flips for a moment.
	minFor = 5 * time.Minute
	// runbookBase is where runbook_url points: a heading of
	// docs/troubleshooting.md or docs/operations.md.
	runbookBase = "https://github.com/callops/millis-operator/blob/main/"
)

var (
	severities = set("critical", "warning", "info")
	runbook    = regexp.MustCompile(`^` + regexp.QuoteMeta(runbookBase) + `(docs/(?:troubleshooting|operations)\.md)#([a-z0-9_-]+)$`)
	labelRef   = regexp.MustCompile(`\$labels\.(\w+)`)
	byClause   = regexp.MustCompile(`\bby\s*\(([^)]*)\)`)
)

// templateHeader defines the variables Prometheus gives alert templates, as
// Prometheus does before expanding them.
const templateHeader = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}"

// templateFuncs are stand-ins for the functions Prometheus gives alert
// templates, so that a misspelt one fails to parse.
var templateFuncs = func() template.FuncMap {
	m := template.FuncMap{}
	for _, name := range []string{"query", "first", "label", "value", "strvalue", "args", "reReplaceAll",
		"safeHtml", "match", "title", "toUpper", "toLower", "graphLink", "tableLink", "sortByLabel",
		"stripPort", "stripDomain", "humanize", "humanize1024", "humanizeDuration",
		"humanizePercentage", "humanizeTimestamp", "toTime", "toDuration", "pathPrefix",
		"externalURL", "parseDuration", "now"} {
		m[name] = func(...any) string { return "" }
	}
	return m
}()

// alertProblems checks a PrometheusRule: its shape, each alert's labels,
// annotations, for and templates, and every metric its expressions name
// against m.
func alertProblems(b []byte, m exportedMetrics, leaderID string) []string {
	var pr prometheusRule
	if err := yaml.UnmarshalStrict(b, &pr); err != nil {
		return []string{"parse: " + err.Error()}
	}
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Kind != "PrometheusRule" || pr.Metadata.Name == "" {
		bad("want a named monitoring.coreos.com/v1 PrometheusRule, got %s %s %q", pr.APIVersion, pr.Kind, pr.Metadata.Name)
	}
	if len(pr.Spec.Groups) == 0 {
		bad("no rule groups")
	}
	groups := map[string]bool{}
	alerts := map[string]bool{}
	for _, g := range pr.Spec.Groups {
		if g.Name == "" || groups[g.Name] {
			bad("group %q: empty or duplicated name", g.Name)
		}
		groups[g.Name] = true
		if len(g.Rules) == 0 {
			bad("group %s: no rules", g.Name)
		}
		for i, r := range g.Rules {
			where := fmt.Sprintf("group %s rule %d", g.Name, i)
			if r.Alert != "" {
				where = "alert " + r.Alert
			}
			problems = append(problems, m.exprProblems(where, r.Expr)...)
			for _, name := range leaderNames(r.Expr) {
				if name != leaderID {
					bad("%s: leader_election_master_status{name=%q}: the manager's lease is %q (main.go)", where, name, leaderID)
				}
			}
			if r.Record != "" {
				if r.Alert != "" || r.For != "" || len(r.Annotations) > 0 {
					bad("%s: a recording rule with alert, for or annotations", where)
				}
				continue
			}
			if r.Alert == "" {
				bad("%s: neither alert nor record", where)
				continue
			}
			if alerts[r.Alert] {
				bad("%s: defined twice", where)
			}
			alerts[r.Alert] = true
			problems = append(problems, alertRuleProblems(where, r)...)
		}
	}
	if len(alerts) == 0 {
		bad("no alerts")
	}
	return problems
}

func alertRuleProblems(where string, r rule) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(where+": "+format, args...)) }

	if !severities[r.Labels["severity"]] {
		bad("severity %q, want critical, warning or info", r.Labels["severity"])
	}
	if d, err := time.ParseDuration(r.For); err != nil || d < minFor {
		bad("for: %q, want at least %s", r.For, minFor)
	}
	for _, key := range []string{"summary", "description", "runbook_url"} {
		if strings.TrimSpace(r.Annotations[key]) == "" {
			bad("no %s annotation", key)
		}
	}
	if u := r.Annotations["runbook_url"]; u != "" && !runbook.MatchString(u) {
		bad("runbook_url %q: want %sdocs/troubleshooting.md#<anchor> or docs/operations.md#<anchor>", u, runbookBase)
	}

	// Labels an annotation prints must survive the expression's
	// aggregations, or they print empty.
	var kept []string
	for _, m := range byClause.FindAllStringSubmatch(r.Expr, -1) {
		for _, l := range strings.Split(m[1], ",") {
			kept = append(kept, strings.TrimSpace(l))
		}
	}
	for key, text := range r.Annotations {
		if _, err := template.New(key).Funcs(templateFuncs).Parse(templateHeader + text); err != nil {
			bad("annotation %s: %v", key, err)
		}
		for _, ref := range labelRef.FindAllStringSubmatch(text, -1) {
			if len(kept) > 0 && !contains(kept, ref[1]) {
				bad("annotation %s prints $labels.%s, which the expression aggregates away (by %v)", key, ref[1], kept)
			}
		}
	}
	return problems
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestAlerts(t *testing.T) {
	m := managerMetrics(t)
	if p := alertProblems(readFile(t, alertsPath), m, leaderElectionID(t)); len(p) > 0 {
		t.Errorf("%s:\n  %s", alertsPath, strings.Join(p, "\n  "))
	}
}

// TestAlertsCover checks that the alerts the docs promise exist.
func TestAlertsCover(t *testing.T) {
	var pr prometheusRule
	if err := yaml.UnmarshalStrict(readFile(t, alertsPath), &pr); err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			have[r.Alert] = true
		}
	}
	for _, a := range []string{"MillisOperatorDown", "MillisOperatorNoLeader", "MillisOperatorMemoryHigh",
		"MillisOperatorReconcileErrors", "MillisOperatorWorkqueueBacklog", "MillisAPIErrors",
		"MillisAPIRateLimited", "MillisAPILatencyHigh", "MillisCallsFailing", "MillisDialNotConfirmed",
		"MillisDialRecoveriesSpike", "MillisWebhookUnauthorized", "MillisWebhookRejecting",
		"MillisCampaignStalled"} {
		if !have[a] {
			t.Errorf("%s has no alert %s", alertsPath, a)
		}
	}
}

// TestRunbooksResolve checks each runbook anchor against its page once the
// page exists (docs/troubleshooting.md and docs/operations.md are written
// separately): the anchor must be one of the page's headings, as GitHub
// makes anchors.
func TestRunbooksResolve(t *testing.T) {
	var pr prometheusRule
	if err := yaml.UnmarshalStrict(readFile(t, alertsPath), &pr); err != nil {
		t.Fatal(err)
	}
	anchors := map[string]map[string]bool{}
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			m := runbook.FindStringSubmatch(r.Annotations["runbook_url"])
			if m == nil {
				continue // TestAlerts reports it
			}
			page, anchor := m[1], m[2]
			if _, read := anchors[page]; !read {
				b, err := os.ReadFile(filepath.Join(root, page))
				if os.IsNotExist(err) {
					t.Logf("%s does not exist yet: runbooks into it are not checked", page)
					anchors[page] = nil
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				anchors[page] = headingAnchors(b)
			}
			if anchors[page] != nil && !anchors[page][anchor] {
				t.Errorf("alert %s: %s has no heading with anchor #%s", r.Alert, page, anchor)
			}
		}
	}
}

// headingAnchors returns the anchors GitHub gives a Markdown page's
// headings: lower case, punctuation other than - and _ dropped, spaces
// as -, and -1, -2... for repeats.
func headingAnchors(md []byte) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	inFence := false
	for _, l := range strings.Split(string(md), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			inFence = !inFence
		}
		if inFence || !strings.HasPrefix(l, "#") {
			continue
		}
		text := strings.TrimSpace(strings.TrimLeft(l, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(text) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r > 127:
				b.WriteRune(r)
			}
		}
		a := b.String()
		if n := seen[a]; n > 0 {
			out[fmt.Sprintf("%s-%d", a, n)] = true
		} else {
			out[a] = true
		}
		seen[a]++
	}
	return out
}

func TestHeadingAnchors(t *testing.T) {
	got := headingAnchors([]byte("# Troubleshooting\n\n### `MillisOperatorDown`\n```sh\n# not a heading\n```\n## Dial, then wait\n## Dial, then wait\n"))
	for _, want := range []string{"troubleshooting", "millisoperatordown", "dial-then-wait", "dial-then-wait-1"} {
		if !got[want] {
			t.Errorf("no anchor %q in %v", want, got)
		}
	}
	if got["not-a-heading"] {
		t.Errorf("a comment in a code block became an anchor: %v", got)
	}
}

// TestAlertCheckFails proves that the checks fail on broken alerts.
func TestAlertCheckFails(t *testing.T) {
	m := managerMetrics(t)
	b := readFile(t, alertsPath)
	leader := leaderElectionID(t)
	cases := []struct {
		reason, old, new, want string
	}{{
		reason: "a misspelt metric",
		old:    "workqueue_depth", new: "workqueue_dept",
		want: "workqueue_dept is not exported by the manager",
	}, {
		reason: "a metric Prometheus makes, not the manager",
		old:    "absent(millis_operator_webhook_in_flight_requests)", new: "up == 0",
		want: "up is not exported by the manager",
	}, {
		reason: "a histogram used bare",
		old:    "millis_operator_millis_request_duration_seconds_bucket[", new: "millis_operator_millis_request_duration_seconds[",
		want: "millis_operator_millis_request_duration_seconds is a histogram",
	}, {
		reason: "an unknown severity",
		old:    "severity: critical", new: "severity: page",
		want: `severity "page"`,
	}, {
		reason: "a missing for",
		old:    "      for: 5m\n", new: "",
		want: `for: ""`,
	}, {
		reason: "a short for",
		old:    "for: 15m", new: "for: 1m",
		want: `for: "1m"`,
	}, {
		reason: "a missing summary",
		old:    "summary:", new: "title:",
		want: "no summary annotation",
	}, {
		reason: "a misspelt field, which Prometheus would ignore",
		old:    "annotations:", new: "annotation:",
		want: "parse:",
	}, {
		reason: "a runbook outside the docs",
		old:    "docs/troubleshooting.md#dialnotconfirmed", new: "wiki/MillisDialNotConfirmed",
		want: "runbook_url",
	}, {
		reason: "a label the expression aggregates away",
		old:    "sum by (job, name) (", new: "sum by (job) (",
		want: "$labels.name",
	}, {
		reason: "a broken template",
		old:    "{{ $labels.job }} holds", new: "{{ $labels.job  holds",
		want: "annotation summary: template",
	}, {
		reason: "a misspelt template function",
		old:    "humanizePercentage", new: "humanizePercent",
		want: `function "humanizePercent" not defined`,
	}, {
		reason: "a lease name other than the manager's",
		old:    `name="` + leader + `"`, new: `name="millis-operator"`,
		want: "the manager's lease is",
	}}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			mutated := bytes.Replace(b, []byte(tc.old), []byte(tc.new), 1)
			if bytes.Equal(mutated, b) {
				t.Fatalf("%q is not in %s: update the test", tc.old, alertsPath)
			}
			p := alertProblems(mutated, m, leader)
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
