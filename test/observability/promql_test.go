package observability

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	dto "github.com/prometheus/client_model/go"
)

// PromQL words that are not metric names.
var (
	// aggregations may be followed by by/without before their parentheses.
	aggregations = set("sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
		"bottomk", "topk", "quantile", "limitk", "limit_ratio")
	// labelListKeywords are followed by a parenthesised list of label names
	// (optional after group_left and group_right).
	labelListKeywords = set("by", "without", "on", "ignoring", "group_left", "group_right")
	// binaryKeywords are set operators and modifiers.
	binaryKeywords = set("and", "or", "unless", "bool", "offset", "atan2")
	// functions are PromQL's functions (Prometheus 3), which must be called.
	functions = set("abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh",
		"avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "cos", "cosh",
		"count_over_time", "day_of_month", "day_of_week", "day_of_year", "days_in_month", "deg", "delta",
		"deriv", "exp", "floor", "histogram_avg", "histogram_count", "histogram_fraction",
		"histogram_quantile", "histogram_stddev", "histogram_stdvar", "histogram_sum", "holt_winters",
		"double_exponential_smoothing", "hour", "idelta", "increase", "info", "irate", "label_join",
		"label_replace", "last_over_time", "ln", "log10", "log2", "mad_over_time", "max_over_time",
		"min_over_time", "minute", "month", "pi", "predict_linear", "present_over_time",
		"quantile_over_time", "rad", "rate", "resets", "round", "scalar", "sgn", "sin", "sinh", "sort",
		"sort_by_label", "sort_by_label_desc", "sort_desc", "sqrt", "stddev_over_time", "stdvar_over_time",
		"sum_over_time", "tan", "tanh", "time", "timestamp", "vector", "year",
		// start() and end() follow the @ modifier.
		"start", "end")
)

func set(words ...string) map[string]bool {
	m := make(map[string]bool, len(words))
	for _, w := range words {
		m[w] = true
	}
	return m
}

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentChar(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

// metricNames returns the metric names a PromQL expression selects, sorted
// and without duplicates. It reads the expression the way PromQL's lexer
// does, to the depth needed to tell a metric name from everything else:
//
//   - an identifier followed by "(" is a function (it must be one of
//     PromQL's) or an aggregation;
//   - keywords (aggregations, by, without, on, ignoring, group_left,
//     group_right, and, or, unless, bool, offset, atan2, inf, nan) are not
//     names, and the label lists after by, without, on, ignoring,
//     group_left and group_right are skipped;
//   - label matchers inside {...} are skipped, except __name__="...", which
//     names a metric;
//   - ranges and subqueries inside [...], strings, numbers, durations,
//     comments and Grafana variables ($x, ${x}) are skipped.
//
// Every other identifier is a metric name. It fails on unbalanced brackets,
// unterminated strings, unknown functions and characters PromQL does not
// have.
func metricNames(expr string) ([]string, error) {
	found := map[string]bool{}
	depth := 0
	i := 0
	// next returns the index of the next non-space character from j.
	next := func(j int) int {
		for j < len(expr) && strings.ContainsRune(" \t\r\n", rune(expr[j])) {
			j++
		}
		return j
	}
	// skipString returns the index after the string starting at j.
	skipString := func(j int) (int, error) {
		q := expr[j]
		for k := j + 1; k < len(expr); k++ {
			switch {
			case expr[k] == '\\' && q != '`':
				k++
			case expr[k] == q:
				return k + 1, nil
			}
		}
		return 0, fmt.Errorf("unterminated string at %d", j)
	}
	// skipTo returns the index after the closing character that ends the
	// group opened at j, skipping strings.
	skipTo := func(j int, closing byte) (int, error) {
		for k := j + 1; k < len(expr); k++ {
			switch expr[k] {
			case '"', '\'', '`':
				end, err := skipString(k)
				if err != nil {
					return 0, err
				}
				k = end - 1
			case closing:
				return k + 1, nil
			case '(', '[', '{', ')', ']', '}':
				// Neither matchers nor label lists nest.
				return 0, fmt.Errorf("unexpected %q at %d inside the group opened at %d", expr[k], k, j)
			}
		}
		return 0, fmt.Errorf("unclosed %q at %d", expr[j], j)
	}
	for i < len(expr) {
		c := expr[i]
		switch {
		case strings.ContainsRune(" \t\r\n", rune(c)):
			i++
		case c == '#':
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			end, err := skipString(i)
			if err != nil {
				return nil, err
			}
			i = end
		case c == '{':
			end, err := skipTo(i, '}')
			if err != nil {
				return nil, err
			}
			if name := nameMatcher(expr[i+1 : end-1]); name != "" {
				found[name] = true
			}
			i = end
		case c == '[':
			end, err := skipRange(expr, i)
			if err != nil {
				return nil, err
			}
			i = end
		case c == '(':
			depth++
			i++
		case c == ')':
			depth--
			if depth < 0 {
				return nil, fmt.Errorf("unbalanced ) at %d", i)
			}
			i++
		case c == '$':
			i = skipVariable(expr, i)
		case c >= '0' && c <= '9', c == '.' && i+1 < len(expr) && expr[i+1] >= '0' && expr[i+1] <= '9':
			for i < len(expr) && (isIdentChar(expr[i]) || expr[i] == '.') {
				i++
			}
		case isIdentStart(c):
			j := i
			for j < len(expr) && isIdentChar(expr[j]) {
				j++
			}
			word := expr[i:j]
			after := next(j)
			calls := after < len(expr) && expr[after] == '('
			lower := strings.ToLower(word)
			switch {
			case labelListKeywords[word]:
				if calls {
					end, err := skipTo(after, ')')
					if err != nil {
						return nil, err
					}
					j = end
				} else if word != "group_left" && word != "group_right" {
					return nil, fmt.Errorf("%s without a label list at %d", word, i)
				}
			case aggregations[word], binaryKeywords[word], lower == "inf", lower == "nan":
			case calls:
				if !functions[word] {
					return nil, fmt.Errorf("unknown function %s at %d", word, i)
				}
			default:
				found[word] = true
			}
			i = j
		case strings.ContainsRune("+-*/%^=!<>~,@:", rune(c)):
			i++
		default:
			return nil, fmt.Errorf("unexpected %q at %d", c, i)
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("%d unclosed (", depth)
	}
	names := make([]string, 0, len(found))
	for n := range found {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// skipRange returns the index after the range or subquery opened at i:
// durations, a colon, and Grafana variables such as $__rate_interval.
func skipRange(expr string, i int) (int, error) {
	for k := i + 1; k < len(expr); k++ {
		c := expr[k]
		switch {
		case c == ']':
			return k + 1, nil
		case isIdentChar(c), c == '$', c == ':', c == ' ', c == '{', c == '}', c == '.':
		default:
			return 0, fmt.Errorf("unexpected %q at %d in the range opened at %d", c, k, i)
		}
	}
	return 0, fmt.Errorf("unclosed [ at %d", i)
}

// skipVariable returns the index after the Grafana variable at i: $name,
// $__name or ${name} / ${name:format}.
func skipVariable(expr string, i int) int {
	j := i + 1
	if j < len(expr) && expr[j] == '{' {
		if end := strings.IndexByte(expr[j:], '}'); end >= 0 {
			return j + end + 1
		}
		return len(expr)
	}
	for j < len(expr) && isIdentChar(expr[j]) {
		j++
	}
	return j
}

// nameMatcher returns the value of a __name__="..." matcher among label
// matchers, if there is one.
func nameMatcher(matchers string) string {
	for _, m := range strings.Split(matchers, ",") {
		name, value, ok := strings.Cut(strings.TrimSpace(m), "=")
		if !ok || strings.TrimSpace(name) != "__name__" || strings.HasPrefix(value, "~") {
			continue
		}
		return strings.Trim(strings.TrimSpace(value), "\"'`")
	}
	return ""
}

// problem says why a name used in an expression does not select a series
// the manager exports, or is empty when it does. Histograms export only
// <name>_bucket, <name>_sum and <name>_count; summaries <name>, <name>_sum
// and <name>_count.
func (m exportedMetrics) problem(name string) string {
	if t, ok := m[name]; ok {
		if t == dto.MetricType_HISTOGRAM {
			return name + " is a histogram: select " + name + "_bucket, _sum or _count"
		}
		return ""
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		switch t, exists := m[base]; {
		case !exists:
		case t == dto.MetricType_HISTOGRAM, t == dto.MetricType_SUMMARY && suffix != "_bucket":
			return ""
		default:
			return fmt.Sprintf("%s: %s is a %s, it has no %s series", name, base, strings.ToLower(t.String()), suffix)
		}
	}
	return name + " is not exported by the manager"
}

// exprProblems checks one expression: it parses, and every metric it names
// is exported.
func (m exportedMetrics) exprProblems(where, expr string) []string {
	names, err := metricNames(expr)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v in %q", where, err, expr)}
	}
	if len(names) == 0 {
		return []string{fmt.Sprintf("%s: no metric in %q", where, expr)}
	}
	var out []string
	for _, n := range names {
		if p := m.problem(n); p != "" {
			out = append(out, where+": "+p)
		}
	}
	return out
}

func TestMetricNames(t *testing.T) {
	cases := []struct {
		reason  string
		expr    string
		want    []string
		wantErr bool
	}{{
		reason: "a bare name",
		expr:   "go_goroutines",
		want:   []string{"go_goroutines"},
	}, {
		reason: "label names and values inside braces are not names, even when they look like one",
		expr:   `millis_operator_calls_dialed_total{namespace=~"$namespace", job="go_goroutines"}`,
		want:   []string{"millis_operator_calls_dialed_total"},
	}, {
		reason: "function and aggregation names, by and its label list are not names",
		expr:   `sum by (namespace, reason) (rate(millis_operator_calls_failed_total[5m]))`,
		want:   []string{"millis_operator_calls_failed_total"},
	}, {
		reason: "a trailing by clause and Grafana's range variable",
		expr:   `sum(increase(workqueue_adds_total{name="x"}[$__rate_interval])) without (instance, pod)`,
		want:   []string{"workqueue_adds_total"},
	}, {
		reason: "histogram_quantile over buckets keeps the _bucket name (the check maps it to the histogram)",
		expr:   `histogram_quantile(0.99, sum by (le, endpoint) (rate(millis_operator_millis_request_duration_seconds_bucket[5m])))`,
		want:   []string{"millis_operator_millis_request_duration_seconds_bucket"},
	}, {
		reason: "both sides of a binary operator, with on and group_left label lists",
		expr:   `a_total / on (job, instance) group_left (version) b_info > 0.5 and c unless d`,
		want:   []string{"a_total", "b_info", "c", "d"},
	}, {
		reason: "group_left without a label list, offset, bool and a number with an exponent",
		expr:   `x * on() group_left y offset 5m > bool 1e3`,
		want:   []string{"x", "y"},
	}, {
		reason: "a name before ) is a name; strings in label_replace are skipped",
		expr:   `label_replace(max(leader_election_master_status), "dst", "$1", "src", "(.*)")`,
		want:   []string{"leader_election_master_status"},
	}, {
		reason: "__name__ matchers name a metric",
		expr:   `{__name__="process_resident_memory_bytes", job="x"}`,
		want:   []string{"process_resident_memory_bytes"},
	}, {
		reason: "subqueries, @ modifiers and comments",
		expr:   "max_over_time(rate(x[5m])[1h:1m] @ end()) # y_total is only mentioned\n",
		want:   []string{"x"},
	}, {
		reason: "inf and nan are numbers; ${var} is a variable",
		expr:   `clamp_max(z, Inf) > ${threshold} or vector(NaN)`,
		want:   []string{"z"},
	}, {
		reason:  "a misspelt function fails",
		expr:    `rte(x[5m])`,
		wantErr: true,
	}, {
		reason:  "unbalanced parentheses fail",
		expr:    `sum(rate(x[5m])`,
		wantErr: true,
	}, {
		reason:  "an unclosed matcher fails",
		expr:    `x{a="b"`,
		wantErr: true,
	}, {
		reason:  "an unterminated string fails",
		expr:    `x{a="b}`,
		wantErr: true,
	}, {
		reason:  "by without its label list fails",
		expr:    `sum by rate(x[5m])`,
		wantErr: true,
	}}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			got, err := metricNames(tc.expr)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("metricNames(%q) = %v, want an error", tc.expr, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("metricNames(%q): %v", tc.expr, err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("metricNames(%q) (-want +got):\n%s", tc.expr, d)
			}
		})
	}
}

// TestProblem checks the name check against the manager's real metrics, so
// that a misspelt or unregistered name fails.
func TestProblem(t *testing.T) {
	m := managerMetrics(t)
	cases := []struct {
		reason string
		name   string
		ok     bool
	}{
		{"one of ours", "millis_operator_calls_dialed_total", true},
		{"misspelt", "millis_operator_calls_dialled_total", false},
		{"a webhook gauge", "millis_operator_webhook_open_connections", true},
		{"a histogram's buckets", "millis_operator_millis_request_duration_seconds_bucket", true},
		{"a histogram's count", "controller_runtime_reconcile_time_seconds_count", true},
		{"a bare histogram name selects nothing", "millis_operator_millis_request_duration_seconds", false},
		{"a counter has no buckets", "millis_operator_millis_requests_total_bucket", false},
		{"controller-runtime's reconcile counter", "controller_runtime_reconcile_total", true},
		{"the workqueue depth", "workqueue_depth", true},
		{"client-go's request counter", "rest_client_requests_total", true},
		{"the leader gauge", "leader_election_master_status", true},
		{"client-go has a slow-path counter, but controller-runtime never registers it", "leader_election_slowpath_total", false},
		{"opt-in REST client latency, which the manager does not enable", "rest_client_request_duration_seconds_bucket", false},
		{"process metrics", "process_resident_memory_bytes", true},
		{"Go metrics", "go_goroutines", true},
		{"a summary's quantiles", "go_gc_duration_seconds", true},
		{"up is made by Prometheus, not served by the manager", "up", false},
	}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			p := m.problem(tc.name)
			if tc.ok && p != "" {
				t.Errorf("%s: %s", tc.name, p)
			}
			if !tc.ok && p == "" {
				t.Errorf("%s passed the check, want a problem", tc.name)
			}
		})
	}
}
