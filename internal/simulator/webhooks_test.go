package simulator_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/callops/millis-operator/internal/simulator"
)

const (
	ringDone = 300*time.Millisecond + time.Second // registered..ringing, then ringing
	callDone = ringDone + 2*time.Second
)

// agentWith seeds one agent (bound to fromPhone) with the given config.
func agentWith(cfg map[string]any) func(*simulator.Config) {
	raw, _ := json.Marshal(cfg)
	return func(c *simulator.Config) {
		c.Agents = []simulator.AgentSeed{{ID: "-Agent00000000000000", Name: "a", Config: raw, Phones: []string{fromPhone}}}
	}
}

var voice = map[string]any{"provider": "elevenlabs", "voice_id": "v1"}

func TestPrefetchWebhook(t *testing.T) {
	rc := newReceiver(t, 200, `{"metadata":{"userName":"Grace","tier":"gold"},"extra_prompt":"Customer is VIP."}`)
	h := newHarness(t, agentWith(map[string]any{
		"prompt":               "Base prompt.",
		"first_message":        "Hello {userName} ({tier})",
		"voice":                voice,
		"extra_prompt_webhook": map[string]any{"url": rc.URL + "/prefetch?static=1", "headers": map[string]string{"X-Token": "s3cret"}},
	}))
	meta := map[string]any{"userName": "Ada", "count": 3, "vip": true, "nested": map[string]any{"a": []int{1, 2}}, "list": []any{1, "x"}, "none": nil, "session_id": "spoof"}
	id := h.place("+15551230000", map[string]any{"metadata": meta})

	h.step(ringDone - time.Millisecond)
	if n := len(rc.got()); n != 0 {
		t.Fatalf("the prefetch webhook fires when the call is answered, not before; got %d requests while ringing", n)
	}
	h.step(time.Millisecond)
	reqs := rc.got()
	if len(reqs) != 1 {
		t.Fatalf("want one prefetch request at answer, got %d", len(reqs))
	}
	wantQuery := map[string][]string{
		"static":     {"1"}, // the URL's own query survives
		"session_id": {id},  // built-ins win over a metadata key of the same name
		"agent_id":   {"-Agent00000000000000"},
		"from":       {fromPhone},
		"to":         {"+15551230000"},
		"userName":   {"Ada"},
		"count":      {"3"},
		"vip":        {"true"},
		"nested":     {`{"a":[1,2]}`},
		"list":       {`[1,"x"]`},
		"none":       {""},
	}
	if diff := cmp.Diff(wantQuery, reqs[0].Query); diff != "" {
		t.Errorf("prefetch query: session ids, phones and flattened metadata (-want +got):\n%s", diff)
	}
	if reqs[0].Method != "GET" || reqs[0].Header.Get("X-Token") != "s3cret" {
		t.Errorf("prefetch is a GET with the configured headers; got %s %v", reqs[0].Method, reqs[0].Header)
	}
	if st := h.status(id); st != "in-progress" {
		t.Errorf("after the prefetch answers the call is in-progress; got %q", st)
	}

	h.step(2 * time.Second)
	c := h.callLog(id)
	wantMeta := roundTrip(t, meta)
	wantMeta["userName"], wantMeta["tier"] = "Grace", "gold"
	if diff := cmp.Diff(wantMeta, c.Metadata); diff != "" {
		t.Errorf("prefetch metadata overwrites and adds keys (-want +got):\n%s", diff)
	}
	if got := c.AgentConfig["prompt"]; got != "Base prompt.\nCustomer is VIP." {
		t.Errorf("extra_prompt is appended to the prompt; got %q", got)
	}
	if msgs := c.messages(t); msgs[0].Content != "Hello Grace (gold)" {
		t.Errorf("the greeting uses the merged metadata; got %q", msgs[0].Content)
	}
	if c.CallStatus != "user-ended" || c.Duration != 2 {
		t.Errorf("the call proceeds normally; got %q %v", c.CallStatus, c.Duration)
	}
	if got := string(h.srv.Ledger()[0].Metadata); got != string(mustJSON(t, meta)) {
		t.Errorf("the ledger keeps the metadata the client sent; got %s", got)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestPrefetchFailuresAreIgnored(t *testing.T) {
	hanging := func(t *testing.T) string {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}))
		t.Cleanup(srv.Close)
		t.Cleanup(func() { close(release) }) // runs first: unblocks the handler
		return srv.URL
	}
	closed := func(t *testing.T) string {
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close()
		return srv.URL
	}
	reply := func(status int, body string) func(t *testing.T) string {
		return func(t *testing.T) string { return newReceiver(t, status, body).URL }
	}
	tests := []struct {
		name, reason string
		url          func(t *testing.T) string
	}{
		{"server error", "a non-2xx answer is ignored, even with a body", reply(500, `{"metadata":{"x":"y"},"extra_prompt":"no"}`)},
		{"not JSON", "a 2xx answer that is not JSON is ignored", reply(200, `<html>`)},
		{"metadata not an object", "a metadata that is not an object is not merged", reply(200, `{"metadata":"x"}`)},
		{"timeout", "a receiver slower than WebhookTimeout is abandoned", hanging},
		{"unreachable", "a transport error is ignored", closed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(c *simulator.Config) {
				agentWith(map[string]any{"prompt": "Base.", "voice": voice, "extra_prompt_webhook": tt.url(t)})(c)
				c.WebhookTimeout = 50 * time.Millisecond
			})
			id := h.place("+15551230000", map[string]any{"metadata": map[string]any{"k": "v"}})
			h.step(ringDone)
			if st := h.status(id); st != "in-progress" {
				t.Fatalf("%s: the call must proceed; status %q", tt.reason, st)
			}
			h.step(2 * time.Second)
			c := h.callLog(id)
			if diff := cmp.Diff(map[string]any{"k": "v"}, c.Metadata); diff != "" || c.AgentConfig["prompt"] != "Base." || c.CallStatus != "user-ended" {
				t.Errorf("%s: metadata and prompt must be untouched and the call end normally; meta diff %s prompt %q status %q", tt.reason, diff, c.AgentConfig["prompt"], c.CallStatus)
			}
		})
	}
}

func TestEndOfCallWebhook(t *testing.T) {
	tests := []struct {
		to, reason string
		wantStatus string
		wantError  *string
	}{
		{"+15551230000", "a normal call has a null error_message", "user-ended", nil},
		{"+15551230093", "a failed call explains itself", "failed", ptr("Call failed: the carrier could not connect the call (simulated)")},
		{"+15551230095", "an error call explains itself", "error", ptr("Internal error while handling the call (simulated)")},
		{"+15551230091", "busy fires too by default, with a null error_message", "busy", nil},
	}
	for _, tt := range tests {
		t.Run(tt.to, func(t *testing.T) {
			rc := newReceiver(t, 200, `{"ok":true}`)
			h := newHarness(t, agentWith(map[string]any{
				"prompt": "p", "voice": voice,
				"session_data_webhook": map[string]any{"url": rc.URL + "/end", "headers": map[string]string{"X-Webhook-Token": "tok", "Content-Type": "text/plain"}},
			}))
			id := h.place(tt.to, map[string]any{"metadata": map[string]any{"cr": "ns/name"}})
			h.step(callDone - time.Millisecond)
			if tt.wantStatus == "user-ended" && len(rc.got()) != 0 {
				t.Fatalf("nothing is sent before the call ends")
			}
			h.step(time.Hour)
			reqs := rc.got()
			if len(reqs) != 1 {
				t.Fatalf("%s: want exactly one delivery, got %d", tt.reason, len(reqs))
			}
			r := reqs[0]
			if r.Method != "POST" || r.Header.Get("X-Webhook-Token") != "tok" || r.Header.Get("Content-Type") != "application/json" {
				t.Errorf("end-of-call is a JSON POST with the configured headers; got %s %v", r.Method, r.Header)
			}
			var keys map[string]json.RawMessage
			if err := json.Unmarshal(r.Body, &keys); err != nil {
				t.Fatal(err)
			}
			var names []string
			for k := range keys {
				names = append(names, k)
			}
			sort.Strings(names)
			wantNames := []string{"agent_config", "agent_id", "call_id", "call_status", "chars_used", "chat", "cost_breakdown", "duration", "error_message", "function_calls", "metadata", "recording", "session_id", "ts", "voip"}
			if diff := cmp.Diff(wantNames, names); diff != "" {
				t.Errorf("body fields: CallHistory plus error_message (-want +got):\n%s", diff)
			}
			var got callHistory
			if err := json.Unmarshal(r.Body, &got); err != nil {
				t.Fatal(err)
			}
			want := h.callLog(id)
			want.ErrorMessage = tt.wantError
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s: body must equal the call log plus error_message (-want +got):\n%s", tt.reason, diff)
			}
			if got.CallStatus != tt.wantStatus {
				t.Errorf("call_status %q, want %q", got.CallStatus, tt.wantStatus)
			}
		})
	}
}

func TestNonConnectedWebhooks(t *testing.T) {
	tests := []struct {
		name, reason string
		setting      *bool
		to           string
		want         int
	}{
		{"default busy", "nil means true: non-connected calls report too", nil, "+15551230091", 1},
		{"off busy", "false silences busy", ptr(false), "+15551230091", 0},
		{"off no-answer", "false silences no-answer", ptr(false), "+15551230092", 0},
		{"off canceled", "false silences canceled", ptr(false), "+15551230099", 0},
		{"off connected", "false never silences a conversation", ptr(false), "+15551230000", 1},
		{"off voicemail", "voicemail was answered, so it still reports", ptr(false), "+15551230094", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, 200, `{}`)
			h := newHarness(t, func(c *simulator.Config) {
				agentWith(map[string]any{"prompt": "p", "voice": voice, "session_data_webhook": rc.URL})(c)
				c.NonConnectedWebhooks = tt.setting
			})
			h.place(tt.to, nil)
			h.step(time.Hour)
			if got := len(rc.got()); got != tt.want {
				t.Errorf("%s: %d deliveries, want %d", tt.reason, got, tt.want)
			}
		})
	}
}

func TestTerminateFiresWebhook(t *testing.T) {
	rc := newReceiver(t, 200, `{}`)
	h := newHarness(t, agentWith(map[string]any{"prompt": "p", "voice": voice, "session_data_webhook": rc.URL}))
	id := h.place("+15551230098", nil)
	h.step(ringDone + time.Second)
	h.doJSON("POST", "/sessions/"+id+"/terminate", map[string]any{"message": "bye"}, 200, nil)
	h.srv.Sync()
	reqs := rc.got()
	if len(reqs) != 1 {
		t.Fatalf("terminate must fire the end-of-call webhook once; got %d", len(reqs))
	}
	var got callHistory
	_ = json.Unmarshal(reqs[0].Body, &got)
	if got.CallStatus != "api-ended" || got.Duration != 1 {
		t.Errorf("webhook reports api-ended after 1s of talk; got %q %v", got.CallStatus, got.Duration)
	}
	h.doJSON("POST", "/sessions/"+id+"/terminate", nil, 200, nil)
	h.step(time.Hour)
	if n := len(rc.got()); n != 1 {
		t.Errorf("terminating an ended call must not fire again; %d deliveries", n)
	}
}

func TestAgentConfigOverride(t *testing.T) {
	stored := map[string]any{"prompt": "Stored prompt.", "first_message": "Stored {userName}", "voice": voice}
	tests := []struct {
		name, reason  string
		phoneOverride map[string]any
		callOverride  map[string]any
		wantFirst     string
		wantHook      string // which receiver gets the end-of-call webhook
		wantRecording bool
	}{
		{
			name: "stored", reason: "without overrides the stored agent config applies",
			wantFirst: "Stored Ada", wantHook: "stored",
		},
		{
			name: "call override", reason: "top-level keys of agent_config replace the stored ones for this call",
			callOverride: map[string]any{"first_message": "Override {userName}", "session_data_webhook": "override", "call_settings": map[string]any{"enable_recording": true}},
			wantFirst:    "Override Ada", wantHook: "override", wantRecording: true,
		},
		{
			name: "null leaves stored value", reason: "a null in a partial config means unset",
			callOverride: map[string]any{"first_message": nil},
			wantFirst:    "Stored Ada", wantHook: "stored",
		},
		{
			name: "phone override", reason: "the phone's agent_config_override applies to calls using its agent",
			phoneOverride: map[string]any{"first_message": "Phone {userName}"},
			wantFirst:     "Phone Ada", wantHook: "stored",
		},
		{
			name: "call beats phone", reason: "the call's agent_config is applied last",
			phoneOverride: map[string]any{"first_message": "Phone {userName}", "session_data_webhook": "override"},
			callOverride:  map[string]any{"first_message": "Call {userName}"},
			wantFirst:     "Call Ada", wantHook: "override",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rcs := map[string]*receiver{"stored": newReceiver(t, 200, `{}`), "override": newReceiver(t, 200, `{}`)}
			cfg := map[string]any{}
			for k, v := range stored {
				cfg[k] = v
			}
			cfg["session_data_webhook"] = rcs["stored"].URL
			h := newHarness(t, agentWith(cfg))
			fix := func(m map[string]any) map[string]any {
				if m["session_data_webhook"] == "override" {
					m["session_data_webhook"] = rcs["override"].URL
				}
				return m
			}
			if tt.phoneOverride != nil {
				h.doJSON("POST", "/phones/%2B15550100001/agent-config-override", fix(tt.phoneOverride), 200, nil)
			}
			extra := map[string]any{"metadata": map[string]any{"userName": "Ada"}}
			if tt.callOverride != nil {
				extra["agent_config"] = fix(tt.callOverride)
			}
			id := h.place("+15551230000", extra)
			h.step(time.Hour)
			c := h.callLog(id)
			if got := c.messages(t)[0].Content; got != tt.wantFirst {
				t.Errorf("%s: greeting %q, want %q", tt.reason, got, tt.wantFirst)
			}
			if c.AgentConfig["prompt"] != "Stored prompt." {
				t.Errorf("%s: keys not overridden stay; prompt %q", tt.reason, c.AgentConfig["prompt"])
			}
			if (c.Recording != nil) != tt.wantRecording {
				t.Errorf("%s: recording %+v, want present=%v", tt.reason, c.Recording, tt.wantRecording)
			}
			for name, rc := range rcs {
				want := 0
				if name == tt.wantHook {
					want = 1
				}
				if got := len(rc.got()); got != want {
					t.Errorf("%s: receiver %q got %d deliveries, want %d", tt.reason, name, got, want)
				}
			}
			var a struct{ Config map[string]any }
			h.doJSON("GET", "/agents/-Agent00000000000000", nil, 200, &a)
			if a.Config["first_message"] != "Stored {userName}" {
				t.Errorf("overrides must not change the stored agent; first_message %q", a.Config["first_message"])
			}
		})
	}
}
