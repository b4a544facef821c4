package simulator_test

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/callops/millis-operator/internal/simulator"
)

func TestAuth(t *testing.T) {
	tests := []struct {
		name   string
		reason string
		mutate func(*simulator.Config)
		path   string
		header []string
		want   int
		body   string
	}{
		{name: "no header", reason: "every API endpoint needs the private key", path: "/user/info", header: []string{"authorization", ""}, want: 401, body: `{"detail":"Unauthorized"}`},
		{name: "wrong key", reason: "only configured keys are accepted", path: "/agents", header: []string{"authorization", "nope"}, want: 401, body: `{"detail":"Unauthorized"}`},
		{name: "bearer prefix", reason: "Millis takes the raw key; a Bearer prefix is a client bug", path: "/user/info", header: []string{"authorization", "Bearer " + apiKey}, want: 401, body: `{"detail":"Unauthorized"}`},
		{name: "bearer accepted when configured", reason: "AcceptBearer relaxes the check", mutate: func(c *simulator.Config) { c.AcceptBearer = true }, path: "/user/info", header: []string{"authorization", "Bearer " + apiKey}, want: 200},
		{name: "raw key", reason: "the documented form", path: "/call-logs", want: 200},
		{name: "second key", reason: "several keys may be configured", mutate: func(c *simulator.Config) { c.APIKeys = []string{"k1", "k2"} }, path: "/phones", header: []string{"authorization", "k2"}, want: 200},
		{name: "key of another server", reason: "the default key is gone once keys are configured", mutate: func(c *simulator.Config) { c.APIKeys = []string{"k1"} }, path: "/phones", header: []string{"authorization", apiKey}, want: 401},
		{name: "admin without key", reason: "/_sim/ endpoints need no key", path: "/_sim/ledger", header: []string{"authorization", ""}, want: 200},
		{name: "unknown route", reason: "FastAPI answers unknown paths 404 before auth", path: "/nope", header: []string{"authorization", ""}, want: 404, body: `{"detail":"Not Found"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.mutate)
			rec := h.do("GET", tt.path, nil, tt.header...)
			if rec.Code != tt.want {
				t.Fatalf("%s: status %d, want %d (body %s)", tt.reason, rec.Code, tt.want, rec.Body)
			}
			if tt.body != "" {
				if diff := cmp.Diff(tt.body, rec.Body.String()); diff != "" {
					t.Errorf("%s: body (-want +got):\n%s", tt.reason, diff)
				}
			}
		})
	}
}

func TestMethodNotAllowed(t *testing.T) {
	h := newHarness(t, nil)
	rec := h.do("DELETE", "/call-logs", nil)
	if rec.Code != http.StatusMethodNotAllowed || rec.Body.String() != `{"detail":"Method Not Allowed"}` {
		t.Errorf("a known path with another method should be FastAPI's 405; got %d %s", rec.Code, rec.Body)
	}
}

func TestValidationErrors(t *testing.T) {
	type verr struct {
		Loc  []any  `json:"loc"`
		Msg  string `json:"msg"`
		Type string `json:"type"`
	}
	e164 := `String should match pattern '^\+[1-9]\d{6,14}$'`
	tests := []struct {
		name, reason string
		method, path string
		body         any
		want         []verr
	}{
		{
			name: "missing to_phone", reason: "required fields are reported as missing with their location",
			method: "POST", path: "/start_outbound_call", body: map[string]any{"from_phone": fromPhone},
			want: []verr{{Loc: []any{"body", "to_phone"}, Msg: "Field required", Type: "missing"}},
		},
		{
			name: "missing both phones", reason: "pydantic reports every problem, not the first",
			method: "POST", path: "/start_outbound_call", body: map[string]any{},
			want: []verr{
				{Loc: []any{"body", "from_phone"}, Msg: "Field required", Type: "missing"},
				{Loc: []any{"body", "to_phone"}, Msg: "Field required", Type: "missing"},
			},
		},
		{
			name: "invalid JSON", reason: "a body that does not parse is a json_invalid 422, not a 400",
			method: "POST", path: "/start_outbound_call", body: `{"from_phone": `,
			want: []verr{{Loc: []any{"body", float64(15)}, Msg: "JSON decode error", Type: "json_invalid"}},
		},
		{
			name: "empty body", reason: "a required body that is absent is missing",
			method: "POST", path: "/start_outbound_call", body: "",
			want: []verr{{Loc: []any{"body"}, Msg: "Field required", Type: "missing"}},
		},
		{
			name: "array body", reason: "the body must be an object",
			method: "POST", path: "/start_outbound_call", body: `[1]`,
			want: []verr{{Loc: []any{"body"}, Msg: "Input should be a valid dictionary or object to extract fields from", Type: "model_attributes_type"}},
		},
		{
			name: "not E.164", reason: "phones must match ^\\+[1-9]\\d{6,14}$",
			method: "POST", path: "/start_outbound_call", body: map[string]any{"from_phone": fromPhone, "to_phone": "555-0100"},
			want: []verr{{Loc: []any{"body", "to_phone"}, Msg: e164, Type: "string_pattern_mismatch"}},
		},
		{
			name: "phone not a string", reason: "types are checked",
			method: "POST", path: "/start_outbound_call", body: map[string]any{"from_phone": 15550100001, "to_phone": "+15551230000"},
			want: []verr{{Loc: []any{"body", "from_phone"}, Msg: "Input should be a valid string", Type: "string_type"}},
		},
		{
			name: "bad optional fields", reason: "metadata must be an object and include_metadata_in_prompt a bool",
			method: "POST", path: "/start_outbound_call",
			body: map[string]any{"from_phone": fromPhone, "to_phone": "+15551230000", "metadata": "x", "include_metadata_in_prompt": "maybe"},
			want: []verr{
				{Loc: []any{"body", "metadata"}, Msg: "Input should be a valid dictionary", Type: "dict_type"},
				{Loc: []any{"body", "include_metadata_in_prompt"}, Msg: "Input should be a valid boolean", Type: "bool_type"},
			},
		},
		{
			name: "agent_config voice provider", reason: "the voice provider is an enum",
			method: "POST", path: "/start_outbound_call",
			body: map[string]any{"from_phone": fromPhone, "to_phone": "+15551230000", "agent_config": map[string]any{"voice": map[string]any{"provider": "acme", "voice_id": "v"}}},
			want: []verr{{Loc: []any{"body", "agent_config", "voice", "provider"}, Msg: "Input should be 'elevenlabs', 'openai', 'cartesia', 'playht', 'deepgram', 'rime', 'neets', 'openai_realtime', 'dubverse', 'orpheus', 'sesame' or 'kokoro'", Type: "enum"}},
		},
		{
			name: "limit zero", reason: "limit must be > 0",
			method: "GET", path: "/call-logs?limit=0",
			want: []verr{{Loc: []any{"query", "limit"}, Msg: "Input should be greater than 0", Type: "greater_than"}},
		},
		{
			name: "limit too big", reason: "limit must be <= 100",
			method: "GET", path: "/call-logs?limit=101",
			want: []verr{{Loc: []any{"query", "limit"}, Msg: "Input should be less than or equal to 100", Type: "less_than_equal"}},
		},
		{
			name: "limit and cursor not numbers", reason: "query parameters are parsed and every error reported",
			method: "GET", path: "/call-logs?limit=ten&start_after_ts=soon",
			want: []verr{
				{Loc: []any{"query", "limit"}, Msg: "Input should be a valid integer, unable to parse string as an integer", Type: "int_parsing"},
				{Loc: []any{"query", "start_after_ts"}, Msg: "Input should be a valid number, unable to parse string as a number", Type: "float_parsing"},
			},
		},
		{
			name: "agent without config", reason: "AgentCreate requires name and config",
			method: "POST", path: "/agents", body: map[string]any{"name": "a"},
			want: []verr{{Loc: []any{"body", "config"}, Msg: "Field required", Type: "missing"}},
		},
		{
			name: "agent config without prompt and voice", reason: "AgentConfig requires prompt and voice",
			method: "POST", path: "/agents", body: map[string]any{"name": "a", "config": map[string]any{"first_message": "hi"}},
			want: []verr{
				{Loc: []any{"body", "config", "prompt"}, Msg: "Field required", Type: "missing"},
				{Loc: []any{"body", "config", "voice"}, Msg: "Field required", Type: "missing"},
			},
		},
		{
			name: "agent voice without voice_id", reason: "Voice requires provider and voice_id",
			method: "POST", path: "/agents", body: map[string]any{"name": "a", "config": map[string]any{"prompt": "p", "voice": map[string]any{"provider": "openai"}}},
			want: []verr{{Loc: []any{"body", "config", "voice", "voice_id"}, Msg: "Field required", Type: "missing"}},
		},
		{
			name: "update without name", reason: "AgentUpdate requires name even for a partial config",
			method: "PUT", path: "/agents/" + simulator.SeedAgentID, body: map[string]any{"config": map[string]any{}},
			want: []verr{{Loc: []any{"body", "name"}, Msg: "Field required", Type: "missing"}},
		},
		{
			name: "tags not a list", reason: "UpdateTagsRequest.tags is a list of strings",
			method: "PUT", path: "/phones/%2B15550100001/tags", body: map[string]any{"tags": "vip"},
			want: []verr{{Loc: []any{"body", "tags"}, Msg: "Input should be a valid list", Type: "list_type"}},
		},
		{
			name: "terminate message not a string", reason: "the optional body is still typed",
			method: "POST", path: "/sessions/x/terminate", body: map[string]any{"message": 3},
			want: []verr{{Loc: []any{"body", "message"}, Msg: "Input should be a valid string", Type: "string_type"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			rec := h.do(tt.method, tt.path, tt.body)
			if rec.Code != http.StatusUnprocessableEntity {
				t.Fatalf("%s: status %d, want 422 (body %s)", tt.reason, rec.Code, rec.Body)
			}
			var got struct{ Detail []verr }
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got.Detail); diff != "" {
				t.Errorf("%s: detail (-want +got):\n%s", tt.reason, diff)
			}
			if n := len(h.srv.Ledger()); n != 0 {
				t.Errorf("a rejected request must not place a call; ledger has %d", n)
			}
		})
	}
}

func TestNotFound(t *testing.T) {
	tests := []struct {
		name, reason, method, path string
		body                       any
	}{
		{"call log", "unknown session ids are 404", "GET", "/call-logs/-Nope", nil},
		{"terminate", "terminating an unknown session is 404", "POST", "/sessions/-Nope/terminate", nil},
		{"agent", "unknown agent", "GET", "/agents/-Nope", nil},
		{"update agent", "updating an unknown agent", "PUT", "/agents/-Nope", map[string]any{"name": "n", "config": map[string]any{}}},
		{"delete agent", "deleting an unknown agent", "DELETE", "/agents/-Nope", nil},
		{"duplicate agent", "duplicating an unknown agent", "POST", "/agents/-Nope/duplicate", nil},
		{"phone", "a number the account does not own", "GET", "/phones/%2B19995550000", nil},
		{"set_agent on unknown phone", "the phone must exist", "POST", "/phones/%2B19995550000/set_agent", map[string]any{"agent_id": nil}},
		{"set_agent unknown agent", "the agent must exist", "POST", "/phones/%2B15550100001/set_agent", map[string]any{"agent_id": "-Nope"}},
		{"call with unknown agent", "agent_id must name an agent", "POST", "/start_outbound_call", map[string]any{"from_phone": fromPhone, "to_phone": "+15551230000", "agent_id": "-Nope"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			rec := h.do(tt.method, tt.path, tt.body)
			if rec.Code != 404 || rec.Body.String() != `{"detail":"Not found"}` {
				t.Errorf("%s: got %d %s, want 404 {\"detail\":\"Not found\"}", tt.reason, rec.Code, rec.Body)
			}
		})
	}
}

func TestStartOutboundCallDomainErrors(t *testing.T) {
	tests := []struct {
		name, reason string
		body         map[string]any
		wantCode     int
		wantDetail   string
	}{
		{
			name: "from_phone not owned", reason: "only the account's numbers can call out",
			body:     map[string]any{"from_phone": "+15559999999", "to_phone": "+15551230000"},
			wantCode: 400, wantDetail: "Phone number +15559999999 not found",
		},
		{
			name: "phone without agent", reason: "without agent_id the phone's agent is used, and there is none",
			body:     map[string]any{"from_phone": "+15550100002", "to_phone": "+15551230000"},
			wantCode: 400, wantDetail: "No agent is assigned to phone number +15550100002; pass agent_id or a full agent_config",
		},
		{
			name: "phone without agent, partial agent_config", reason: "a partial config cannot stand in for an agent",
			body:     map[string]any{"from_phone": "+15550100002", "to_phone": "+15551230000", "agent_config": map[string]any{"prompt": "p"}},
			wantCode: 400, wantDetail: "No agent is assigned to phone number +15550100002; pass agent_id or a full agent_config",
		},
		{
			name: "phone without agent, explicit agent_id", reason: "agent_id makes the phone's binding irrelevant",
			body:     map[string]any{"from_phone": "+15550100002", "to_phone": "+15551230000", "agent_id": simulator.SeedAgentID},
			wantCode: 200,
		},
		{
			name: "phone without agent, full agent_config", reason: "agent_config alone builds a temporary agent",
			body:     map[string]any{"from_phone": "+15550100002", "to_phone": "+15551230000", "agent_config": map[string]any{"prompt": "p", "voice": map[string]any{"provider": "openai", "voice_id": "alloy"}}},
			wantCode: 200,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			rec := h.do("POST", "/start_outbound_call", tt.body)
			if rec.Code != tt.wantCode {
				t.Fatalf("%s: status %d, want %d (%s)", tt.reason, rec.Code, tt.wantCode, rec.Body)
			}
			if tt.wantDetail != "" {
				want := fmt.Sprintf(`{"detail":%q}`, tt.wantDetail)
				if diff := cmp.Diff(want, rec.Body.String()); diff != "" {
					t.Errorf("%s: (-want +got):\n%s", tt.reason, diff)
				}
			}
			wantPlaced := 0
			if tt.wantCode == 200 {
				wantPlaced = 1
			}
			if got := h.srv.DialCount("+15551230000"); got != wantPlaced {
				t.Errorf("%s: DialCount = %d, want %d", tt.reason, got, wantPlaced)
			}
		})
	}
}

func TestCallLogExistsAtRegistration(t *testing.T) {
	h := newHarness(t, nil)
	var reg registration
	h.doJSON("POST", "/start_outbound_call", map[string]any{"from_phone": fromPhone, "to_phone": "+15551230000", "metadata": map[string]any{"k": "v"}}, 200, &reg)
	if !regexp.MustCompile(`^-[0-9A-Za-z_-]{19}$`).MatchString(reg.SessionID) {
		t.Errorf("session_id %q is not a 20-char push id starting with '-'", reg.SessionID)
	}
	if !regexp.MustCompile(`^CA[0-9a-f]{32}$`).MatchString(reg.CallID) {
		t.Errorf("call_id %q is not CallSid-shaped", reg.CallID)
	}
	got := h.callLog(reg.SessionID) // no clock step: straight after the 200
	want := callHistory{
		AgentID:       ptr(simulator.SeedAgentID),
		TS:            float64(t0.UnixMicro()) / 1e6,
		Chat:          "[]",
		SessionID:     reg.SessionID,
		CallID:        reg.CallID,
		CostBreakdown: []costItem{},
		VoIP:          map[string]string{"provider": "twilio", "from": fromPhone, "to": "+15551230000"},
		Metadata:      map[string]any{"k": "v"},
		FunctionCalls: []json.RawMessage{},
		CallStatus:    "registered",
	}
	got.AgentConfig = nil
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("call log right after registration (-want +got):\n%s", diff)
	}
}

func TestTSUniqueWithinOneInstant(t *testing.T) {
	h := newHarness(t, nil)
	var ts []float64
	for i := range 3 {
		ts = append(ts, h.callLog(h.place(fmt.Sprintf("+1555123000%d", i), nil)).TS)
	}
	base := float64(t0.UnixMicro()) / 1e6
	want := []float64{base, base + 0.000001, base + 0.000002}
	if diff := cmp.Diff(want, ts, cmp.Comparer(func(a, b float64) bool { return math.Abs(a-b) < 1e-7 })); diff != "" {
		t.Errorf("calls placed in the same instant must get distinct ts, 1µs apart (-want +got):\n%s", diff)
	}
}

type page struct {
	Histories  []callHistory `json:"histories"`
	NextCursor *float64      `json:"next_cursor"`
}

func TestListCallLogs(t *testing.T) {
	h := newHarness(t, func(c *simulator.Config) {
		c.Agents = append(c.Agents, simulator.AgentSeed{ID: "-OtherAgent000000000", Name: "other", Phones: []string{"+15550100002"}})
	})
	// Seven calls, one second apart: four to A via the seed agent, three to
	// B from the other phone; B ends busy.
	var ids []string
	for i := range 7 {
		if i%2 == 0 || i == 5 {
			ids = append(ids, h.place("+15551110000", nil))
		} else {
			var reg registration
			h.doJSON("POST", "/start_outbound_call", map[string]any{"from_phone": "+15550100002", "to_phone": "+15552220091"}, 200, &reg)
			ids = append(ids, reg.SessionID)
		}
		h.step(time.Second)
	}
	h.step(10 * time.Second) // everything ends
	idsOf := func(p page) []string {
		var out []string
		for _, c := range p.Histories {
			out = append(out, c.SessionID)
		}
		return out
	}
	rev := func(idx ...int) []string {
		var out []string
		for _, i := range idx {
			out = append(out, ids[i])
		}
		return out
	}
	ts := func(i int) string {
		return fmt.Sprintf("%.6f", float64(t0.Add(time.Duration(i)*time.Second).UnixMicro())/1e6)
	}
	tests := []struct {
		name, reason, query string
		want                []string
		wantCursor          bool
	}{
		{name: "all", reason: "newest first by ts", query: "", want: rev(6, 5, 4, 3, 2, 1, 0)},
		{name: "limit", reason: "a full page with more left has a cursor", query: "limit=3", want: rev(6, 5, 4), wantCursor: true},
		{name: "exact page", reason: "no cursor when nothing remains", query: "limit=7", want: rev(6, 5, 4, 3, 2, 1, 0)},
		{name: "agent", reason: "agent_id filters", query: "agent_id=-OtherAgent000000000", want: rev(3, 1)},
		{name: "status", reason: "call_status filters", query: "call_status=busy", want: rev(3, 1)},
		{name: "status case-insensitive", reason: "the docs show upper-case examples", query: "call_status=USER-ENDED", want: rev(6, 5, 4, 2, 0)},
		{name: "phone to", reason: "phone_number matches voip.to", query: "phone_number=" + url.QueryEscape("+15551110000"), want: rev(6, 5, 4, 2, 0)},
		{name: "phone from", reason: "phone_number matches voip.from", query: "phone_number=" + url.QueryEscape("+15550100002"), want: rev(3, 1)},
		{name: "phone partial", reason: "phone_number matches exactly, not as a substring", query: "phone_number=" + url.QueryEscape("+1555"), want: nil},
		{name: "window", reason: "start_time and end_time are inclusive", query: "start_time=" + ts(2) + "&end_time=" + ts(4), want: rev(4, 3, 2)},
		{name: "cursor", reason: "start_after_ts returns ts strictly below it", query: "start_after_ts=" + ts(4), want: rev(3, 2, 1, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := h.with(t)
			var p page
			h.doJSON("GET", "/call-logs?"+tt.query, nil, 200, &p)
			if diff := cmp.Diff(tt.want, idsOf(p)); diff != "" {
				t.Errorf("%s (-want +got):\n%s", tt.reason, diff)
			}
			if (p.NextCursor != nil) != tt.wantCursor {
				t.Errorf("%s: next_cursor = %v, want present=%v", tt.reason, p.NextCursor, tt.wantCursor)
			}
			if tt.wantCursor && *p.NextCursor != p.Histories[len(p.Histories)-1].TS {
				t.Errorf("next_cursor %v must be the ts of the last item %v", *p.NextCursor, p.Histories[len(p.Histories)-1].TS)
			}
		})
	}

	t.Run("pagination", func(t *testing.T) {
		h := h.with(t)
		var got []string
		q := "/call-logs?limit=2&phone_number=" + url.QueryEscape("+15551110000")
		pages := 0
		for path := q; ; pages++ {
			var p page
			h.doJSON("GET", path, nil, 200, &p)
			got = append(got, idsOf(p)...)
			if p.NextCursor == nil {
				break
			}
			// FormatFloat, not %v: a "+" in an exponent would arrive as a space.
			path = q + "&start_after_ts=" + strconv.FormatFloat(*p.NextCursor, 'f', -1, 64)
		}
		if diff := cmp.Diff(rev(6, 5, 4, 2, 0), got); diff != "" {
			t.Errorf("following next_cursor must visit every match once, newest first (-want +got):\n%s", diff)
		}
		if pages != 2 {
			t.Errorf("5 matches at limit 2 take 3 pages; followed %d cursors", pages)
		}
	})
}

func TestTerminate(t *testing.T) {
	tests := []struct {
		name, reason string
		to           string
		before       time.Duration // clock time before terminating
		body         any
		wantDuration float64
		wantLast     *chatMessage
	}{
		{name: "in progress", reason: "a live call ends api-ended with its talk time so far", to: "+15551230098", before: 300*time.Millisecond + time.Second + 1500*time.Millisecond, wantDuration: 1.5},
		{name: "with message", reason: "the message is the last thing the agent says", to: "+15551230098", before: 300*time.Millisecond + time.Second + 500*time.Millisecond, body: map[string]any{"message": "Bye now."}, wantDuration: 0.5, wantLast: &chatMessage{"assistant", "Bye now."}},
		{name: "ringing", reason: "an unanswered call can be terminated too, with no talk", to: "+15551230000", before: 500 * time.Millisecond, wantDuration: 0},
		{name: "registered, null body", reason: "the body is optional and may be null", to: "+15551230000", body: "null", wantDuration: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			id := h.place(tt.to, nil)
			h.step(tt.before)
			h.doJSON("POST", "/sessions/"+id+"/terminate", tt.body, 200, nil)
			got := h.callLog(id)
			if got.CallStatus != "api-ended" || got.Duration != tt.wantDuration {
				t.Fatalf("%s: status %q duration %v, want api-ended %v", tt.reason, got.CallStatus, got.Duration, tt.wantDuration)
			}
			if tt.wantLast != nil {
				msgs := got.messages(t)
				if diff := cmp.Diff(*tt.wantLast, msgs[len(msgs)-1]); diff != "" {
					t.Errorf("%s (-want +got):\n%s", tt.reason, diff)
				}
			}
			// Nothing scheduled before the termination may still fire.
			h.step(time.Hour)
			if st := h.status(id); st != "api-ended" {
				t.Errorf("a terminated call must stay api-ended, got %q", st)
			}
			// Terminating again succeeds and changes nothing.
			h.doJSON("POST", "/sessions/"+id+"/terminate", nil, 200, nil)
			if again := h.callLog(id); again.CallStatus != "api-ended" || again.Duration != tt.wantDuration {
				t.Errorf("a second terminate must be a no-op, got %q %v", again.CallStatus, again.Duration)
			}
		})
	}
}

func TestTerminateEndedCallKeepsStatus(t *testing.T) {
	h := newHarness(t, nil)
	id := h.place("+15551230091", nil)
	h.step(time.Minute)
	h.doJSON("POST", "/sessions/"+id+"/terminate", map[string]any{"message": "x"}, 200, nil)
	if st := h.status(id); st != "busy" {
		t.Errorf("terminating an ended call must not change it; status %q", st)
	}
}

func TestUserInfoCredit(t *testing.T) {
	h := newHarness(t, func(c *simulator.Config) { c.InitialCredit = 10; c.TalkTime = 60 * time.Second })
	type info struct {
		UserID     string          `json:"user_id"`
		Credit     float64         `json:"credit"`
		UsedCredit float64         `json:"used_credit"`
		AutoRefill map[string]bool `json:"auto_refill"`
	}
	var before info
	h.doJSON("GET", "/user/info", nil, 200, &before)
	if diff := cmp.Diff(info{UserID: "sim-user", Credit: 10, AutoRefill: map[string]bool{"enabled": false}}, before); diff != "" {
		t.Errorf("fresh account (-want +got):\n%s", diff)
	}
	h.place("+15551230000", nil) // one minute of talk
	h.place("+15551230091", nil) // busy: free
	h.step(time.Hour)
	var after info
	h.doJSON("GET", "/user/info", nil, 200, &after)
	// One minute costs stt 0.006 + tts 0.03 + llm 0.01 + base 0.02.
	want := info{UserID: "sim-user", Credit: 10 - 0.066, UsedCredit: 0.066, AutoRefill: map[string]bool{"enabled": false}}
	if diff := cmp.Diff(want, after, cmp.Comparer(func(a, b float64) bool { return math.Abs(a-b) < 1e-9 })); diff != "" {
		t.Errorf("credit must drop by each finished call's cost (-want +got):\n%s", diff)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name, reason string
		cfg          simulator.Config
		wantErr      bool
	}{
		{name: "zero", reason: "the zero Config is usable", cfg: simulator.Config{}},
		{name: "bad phone", reason: "phones must be E.164", cfg: simulator.Config{Phones: []string{"5550100"}}, wantErr: true},
		{name: "bad outcome", reason: "outcomes must be final statuses", cfg: simulator.Config{Outcomes: map[string]string{"+15551230000": "ringing"}}, wantErr: true},
		{name: "hold outcome", reason: "in-progress means hold", cfg: simulator.Config{Outcomes: map[string]string{"+15551230000": "in-progress"}}},
		{name: "agent phone unknown", reason: "seed agents bind only owned phones", cfg: simulator.Config{Agents: []simulator.AgentSeed{{Name: "a", Phones: []string{"+15559990000"}}}}, wantErr: true},
		{name: "agent config invalid", reason: "seed configs need prompt and voice", cfg: simulator.Config{Agents: []simulator.AgentSeed{{Name: "a", Config: json.RawMessage(`{"prompt":"p"}`)}}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err != nil) != tt.wantErr {
				t.Errorf("%s: Validate() = %v, wantErr %v", tt.reason, err, tt.wantErr)
			}
		})
	}
}
