package argocd

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	millisv1alpha1 "github.com/callops/millis-operator/api/v1alpha1"
)

// configDir is config/argocd, where the checks live.
var configDir = filepath.Join("..", "..", "config", "argocd")

func loadChecks(t *testing.T) []Check {
	t.Helper()
	checks, err := Load(configDir)
	if err != nil {
		t.Fatalf("Load(%s): %v", configDir, err)
	}
	return checks
}

// TestHealthChecks runs every case of every health_test.yaml, as Argo CD's
// own test of its resource_customizations does.
func TestHealthChecks(t *testing.T) {
	for _, c := range loadChecks(t) {
		tests, err := c.Tests()
		if err != nil {
			t.Fatal(err)
		}
		if len(tests) == 0 {
			t.Errorf("%s/%s: health_test.yaml has no tests", c.Group, c.Kind)
		}
		for _, tc := range tests {
			t.Run(c.Kind+"/"+tc.InputPath, func(t *testing.T) {
				obj, err := c.Input(tc)
				if err != nil {
					t.Fatal(err)
				}
				if got := obj["kind"]; got != c.Kind {
					t.Fatalf("%s is a %v, not a %s", tc.InputPath, got, c.Kind)
				}
				got, err := Health(c.Script, obj)
				if err != nil {
					t.Fatalf("Health: %v", err)
				}
				if diff := cmp.Diff(tc.HealthStatus, got); diff != "" {
					t.Errorf("health (-want +got):\n%s", diff)
				}
			})
		}
	}
}

// TestEveryKindHasACheck fails when a kind is added to the API without a
// health check, or a testdata file is left out of health_test.yaml.
func TestEveryKindHasACheck(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := millisv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for kind := range scheme.KnownTypes(millisv1alpha1.GroupVersion) {
		if !strings.HasSuffix(kind, "List") && !slices.Contains([]string{"WatchEvent", "DeleteOptions", "ListOptions",
			"GetOptions", "CreateOptions", "UpdateOptions", "PatchOptions"}, kind) {
			kinds = append(kinds, kind)
		}
	}
	var have []string
	for _, c := range loadChecks(t) {
		if c.Group != millisv1alpha1.GroupVersion.Group {
			t.Errorf("check for %s/%s: not this operator's group", c.Group, c.Kind)
		}
		have = append(have, c.Kind)

		tests, err := c.Tests()
		if err != nil {
			t.Fatal(err)
		}
		statuses := map[Status]bool{}
		inputs := map[string]bool{}
		for _, tc := range tests {
			statuses[tc.HealthStatus.Status] = true
			inputs[tc.InputPath] = true
		}
		for _, s := range []Status{StatusHealthy, StatusProgressing, StatusDegraded} {
			if !statuses[s] {
				t.Errorf("%s: no test expects %s", c.Kind, s)
			}
		}
		files, err := filepath.Glob(filepath.Join(c.Dir, "testdata", "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if rel := "testdata/" + filepath.Base(f); !inputs[rel] {
				t.Errorf("%s: %s is in no test of health_test.yaml", c.Kind, rel)
			}
		}
	}
	slices.Sort(kinds)
	slices.Sort(have)
	if diff := cmp.Diff(kinds, have); diff != "" {
		t.Errorf("kinds with a health check (-API kinds +checks):\n%s", diff)
	}
}

// TestConfigMapInSync fails when config/argocd/argocd-cm.yaml is not what
// `make argocd` renders from the health.lua files, or does not hold them
// verbatim.
func TestConfigMapInSync(t *testing.T) {
	checks := loadChecks(t)
	path := filepath.Join(configDir, "argocd-cm.yaml")
	committed, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(RenderConfigMap(checks)), string(committed)); diff != "" {
		t.Fatalf("%s is out of date; run 'make argocd' (-rendered +committed):\n%s", path, diff)
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(committed, &cm); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if cm.Name != "argocd-cm" {
		t.Errorf("%s patches ConfigMap %q, not argocd-cm", path, cm.Name)
	}
	want := map[string]string{}
	for _, c := range checks {
		want[c.ConfigMapKey()] = string(c.Script)
	}
	if diff := cmp.Diff(want, cm.Data); diff != "" {
		t.Errorf("%s does not hold the scripts verbatim (-health.lua +ConfigMap):\n%s", path, diff)
	}
}

func TestRenderConfigMapRoundTrips(t *testing.T) {
	script := "-- a comment\nlocal t = {}\n\nif obj.x then\n  t.status = \"Healthy\" -- indented: keep it\n\n\tt.message = 'tab'\nend\nreturn t\n"
	c := Check{Group: "example.com", Kind: "Thing", Script: []byte(script)}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(RenderConfigMap([]Check{c}), &cm); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"resource.customizations.health.example.com_Thing": script}, cm.Data); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestHealthSandbox(t *testing.T) {
	obj := map[string]any{
		"metadata": map[string]any{"generation": int64(3)},
		"spec":     map[string]any{"list": []any{"a", "b"}, "ratio": 0.5, "on": true, "gone": nil},
	}
	cases := []struct {
		reason  string
		script  string
		want    Result
		wantErr string // substring; "" means no error
	}{
		{
			reason: "arrays are 1-based tables and integers are numbers",
			script: `return {status = "Healthy", message = obj.spec.list[1] .. #obj.spec.list .. tostring(obj.metadata.generation + 1)}`,
			want:   Result{Status: StatusHealthy, Message: "a24"},
		},
		{
			reason: "JSON null is an absent key; booleans and floats keep their type",
			script: `if obj.spec.gone == nil and obj.spec.on == true and obj.spec.ratio < 1 then return {status = "Healthy"} end return {status = "Degraded"}`,
			want:   Result{Status: StatusHealthy},
		},
		{
			reason: "ipairs and pairs from the base library, table.insert from the table library",
			script: `local t = {} for _, v in ipairs(obj.spec.list) do table.insert(t, v) end return {status = "Progressing", message = table.concat(t, ",")}`,
			want:   Result{Status: StatusProgressing, Message: "a,b"},
		},
		{
			reason: "an unknown status is Unknown, as in Argo CD",
			script: `return {status = "Fine"}`,
			want:   Result{Status: StatusUnknown, Message: invalidStatus},
		},
		{reason: "string library is not loaded for custom checks", script: `return {status = string.upper("healthy")}`, wantErr: "non-table object(nil) with key 'upper'"},
		{reason: "string methods are not available either", script: `local s = "x" return {status = s:upper()}`, wantErr: "with key 'upper'"},
		{reason: "os library is not loaded", script: `return {status = os.getenv("HOME")}`, wantErr: "non-table object(nil) with key 'getenv'"},
		{reason: "io library is not loaded", script: `io.open("/etc/passwd") return {}`, wantErr: "non-table object(nil) with key 'open'"},
		{reason: "no reading files through the base library", script: `dofile("/etc/passwd") return {}`, wantErr: "attempt to call a non-function object"},
		{reason: "no require", script: `require("os") return {}`, wantErr: "attempt to call a non-function object"},
		{reason: "the script must return a table", script: `return "Healthy"`, wantErr: "not a table"},
		{reason: "a script without return is an error", script: `local x = 1`, wantErr: "not a table"},
		{reason: "message must be a string", script: `return {status = "Healthy", message = 3}`, wantErr: "message"},
		{reason: "syntax errors are reported", script: `return {status = `, wantErr: "compile"},
		{reason: "a script that never ends is stopped", script: `while true do end`, wantErr: "context deadline exceeded"},
	}
	for _, c := range cases {
		start := time.Now()
		got, err := Health([]byte(c.script), obj)
		if took := time.Since(start); took > 3*Timeout {
			t.Errorf("%s: took %v", c.reason, took)
		}
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s: got (%+v, %v), want an error containing %q", c.reason, got, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.reason, err)
			continue
		}
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.reason, diff)
		}
	}
}

func TestHealthRejectsUnsupportedValues(t *testing.T) {
	_, err := Health([]byte(`return {status = "Healthy"}`), map[string]any{"spec": map[string]any{"when": time.Now()}})
	if err == nil || !strings.Contains(err.Error(), "spec: when: unsupported type time.Time") {
		t.Errorf("got %v, want an error naming the field", err)
	}
}
