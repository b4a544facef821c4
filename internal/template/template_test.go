package template

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRender(t *testing.T) {
	vars := map[string]string{"userName": "John", "FromPhone": "+15550100001", "user.tier": "gold"}
	cases := []struct {
		reason, in, want string
		missing          []string
	}{
		{"simple substitution", "Hi {userName}!", "Hi John!", nil},
		{"built-in and dotted names", "From {FromPhone}, tier {user.tier}", "From +15550100001, tier gold", nil},
		{"unknown variable stays and is reported once", "{a} and {a} and {b}", "{a} and {a} and {b}", []string{"a", "b"}},
		{"JSON in a prompt is not a variable", `reply as {"ok": true}`, `reply as {"ok": true}`, nil},
		{"double braces: inner variable rendered, outer kept", "{{userName}}", "{John}", nil},
		{"names cannot start with a digit", "{1abc}", "{1abc}", nil},
		{"case-sensitive", "{username}", "{username}", []string{"username"}},
	}
	for _, c := range cases {
		got, missing := Render(c.in, vars)
		if got != c.want {
			t.Errorf("%s: Render(%q) = %q, want %q", c.reason, c.in, got, c.want)
		}
		if diff := cmp.Diff(c.missing, missing); diff != "" {
			t.Errorf("%s: missing (-want +got):\n%s", c.reason, diff)
		}
	}
}

func TestVars(t *testing.T) {
	meta := map[string]json.RawMessage{
		"userName": json.RawMessage(`"John"`),
		"visits":   json.RawMessage(`3`),
		"ratio":    json.RawMessage(`0.25`),
		"premium":  json.RawMessage(`true`),
		"address":  json.RawMessage(`{"city": "Austin"}`),
		"ToPhone":  json.RawMessage(`"override"`),
	}
	want := map[string]string{
		"userName": "John", "visits": "3", "ratio": "0.25", "premium": "true",
		"address": `{"city":"Austin"}`, "FromPhone": "+1", "ToPhone": "override",
	}
	if diff := cmp.Diff(want, Vars(meta, "+1", "+2")); diff != "" {
		t.Errorf("Vars (-want +got):\n%s", diff)
	}
}

func TestRenderJSON(t *testing.T) {
	vars := map[string]string{"userName": "Ana", "company": "Acme"}
	in := json.RawMessage(`{"greeting":"Hi {userName}","n":12345678901234567890,"nested":{"list":["{company}","{missing}"]},"{userName}":"keys are not rendered"}`)
	out, missing, err := RenderJSON(in, vars)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if got["greeting"] != "Hi Ana" {
		t.Errorf("greeting = %v", got["greeting"])
	}
	if string(mustJSON(t, got["nested"])) != `{"list":["Acme","{missing}"]}` {
		t.Errorf("nested = %s", mustJSON(t, got["nested"]))
	}
	if _, ok := got["{userName}"]; !ok {
		t.Errorf("keys must not be rendered: %s", out)
	}
	if want := `12345678901234567890`; !json.Valid(out) || !strings.Contains(string(out), want) {
		t.Errorf("big number lost precision: %s", out)
	}
	if diff := cmp.Diff([]string{"missing"}, missing); diff != "" {
		t.Errorf("missing (-want +got):\n%s", diff)
	}
	if _, _, err := RenderJSON(json.RawMessage(`{bad`), vars); err == nil {
		t.Error("invalid JSON must be an error")
	}
}

func TestSpokenVariables(t *testing.T) {
	cfg := json.RawMessage(`{
		"prompt": "You help {company} customers. Caller: {userName}.",
		"first_message": "Hi {userName}",
		"flow": {"voicemail": {"action": "message", "message": "Call {company} back at {FromPhone}"}},
		"session_timeout": {"message": "Bye {userName}"},
		"tools": [{"description": "not spoken: {ignored}"}]
	}`)
	got, err := SpokenVariables(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"FromPhone", "company", "userName"}, got); diff != "" {
		t.Errorf("SpokenVariables (-want +got):\n%s", diff)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
