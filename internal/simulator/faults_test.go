package simulator_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/callops/millis-operator/internal/simulator"
)

type req struct{ method, path string }

var (
	startCall = req{"POST", "/start_outbound_call"}
	userInfo  = req{"GET", "/user/info"}
)

func (h *harness) send(r req) int {
	h.t.Helper()
	var body any
	if r == startCall {
		body = map[string]any{"from_phone": fromPhone, "to_phone": "+15551230000"}
	}
	return h.do(r.method, r.path, body).Code
}

func TestRequestFaults(t *testing.T) {
	tests := []struct {
		name, reason string
		faults       simulator.Faults
		requests     []req
		want         []int
	}{
		{
			name: "fail next for one endpoint", reason: "the next N requests to that endpoint fail, others do not",
			faults:   simulator.Faults{FailNext: map[string]int{"POST /start_outbound_call": 2}},
			requests: []req{userInfo, startCall, startCall, startCall},
			want:     []int{200, 500, 500, 200},
		},
		{
			name: "fail next wildcard", reason: `"*" matches every API endpoint`,
			faults:   simulator.Faults{FailNext: map[string]int{"*": 2}},
			requests: []req{userInfo, startCall, userInfo},
			want:     []int{500, 500, 200},
		},
		{
			name: "specific before wildcard", reason: "a specific count is used up before the wildcard one",
			faults:   simulator.Faults{FailNext: map[string]int{"*": 1, "GET /user/info": 1}, RateLimitNext: map[string]int{"GET /phones": 0}},
			requests: []req{userInfo, userInfo, userInfo},
			want:     []int{500, 500, 200},
		},
		{
			name: "pattern key", reason: "endpoints with parameters are keyed by their pattern",
			faults:   simulator.Faults{FailNext: map[string]int{"GET /agents/{agent_id}": 1}},
			requests: []req{{"GET", "/agents/" + simulator.SeedAgentID}, {"GET", "/agents/" + simulator.SeedAgentID}},
			want:     []int{500, 200},
		},
		{
			name: "rate limit", reason: "rate limits answer 429",
			faults:   simulator.Faults{RateLimitNext: map[string]int{"GET /user/info": 1}},
			requests: []req{userInfo, userInfo},
			want:     []int{429, 200},
		},
		{
			name: "fail rate 1", reason: "a rate of 1 fails everything",
			faults:   simulator.Faults{FailRate: 1},
			requests: []req{userInfo, startCall},
			want:     []int{500, 500},
		},
		{
			name: "admin untouched", reason: "faults never apply to /_sim/",
			faults:   simulator.Faults{FailNext: map[string]int{"*": 5}, FailRate: 1},
			requests: []req{{"GET", "/_sim/ledger"}, {"GET", "/_sim/faults"}},
			want:     []int{200, 200},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			h.srv.SetFaults(tt.faults)
			var got []int
			for _, r := range tt.requests {
				got = append(got, h.send(r))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("%s: statuses (-want +got):\n%s", tt.reason, diff)
			}
		})
	}
}

func TestFailedRequestsDoNothing(t *testing.T) {
	h := newHarness(t, nil)
	h.srv.SetFaults(simulator.Faults{FailNext: map[string]int{"POST /start_outbound_call": 1}, RateLimitNext: map[string]int{"POST /start_outbound_call": 1}})
	rec := h.do("POST", "/start_outbound_call", map[string]any{"from_phone": fromPhone, "to_phone": "+15551230000"})
	if rec.Code != 429 || rec.Header().Get("Retry-After") != "1" || rec.Body.String() != `{"detail":"Too Many Requests"}` {
		t.Errorf("rate limit: want 429, Retry-After 1 (the default) and a detail; got %d %q %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	rec = h.do("POST", "/start_outbound_call", map[string]any{"from_phone": fromPhone, "to_phone": "+15551230000"})
	if rec.Code != 500 || rec.Body.String() != `{"detail":"Internal Server Error"}` {
		t.Errorf("fail next: want 500 Internal Server Error; got %d %s", rec.Code, rec.Body)
	}
	if n := h.srv.DialCount("+15551230000"); n != 0 {
		t.Errorf("rejected requests must not place calls; DialCount %d", n)
	}
}

func TestRetryAfter(t *testing.T) {
	h := newHarness(t, nil)
	h.srv.SetFaults(simulator.Faults{RateLimitNext: map[string]int{"*": 1}, RetryAfterSeconds: 7})
	rec := h.do("GET", "/call-logs", nil)
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "7" {
		t.Errorf("429 must carry Retry-After: RetryAfterSeconds; got %d %q", rec.Code, rec.Header().Get("Retry-After"))
	}
}

func TestUnauthenticatedDoesNotConsumeFaults(t *testing.T) {
	h := newHarness(t, nil)
	h.srv.SetFaults(simulator.Faults{FailNext: map[string]int{"*": 1}})
	if code := h.do("GET", "/user/info", nil, "authorization", "").Code; code != 401 {
		t.Fatalf("auth is checked first; got %d", code)
	}
	if code := h.send(userInfo); code != 500 {
		t.Errorf("the fault must still be pending for the authenticated client; got %d", code)
	}
}

func TestFailRateIsSeeded(t *testing.T) {
	run := func(seed int64) []int {
		h := newHarness(t, func(c *simulator.Config) { c.Seed = seed })
		h.srv.SetFaults(simulator.Faults{FailRate: 0.5})
		var codes []int
		for range 40 {
			codes = append(codes, h.send(userInfo))
		}
		return codes
	}
	a, b := run(42), run(42)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("the same seed must fail the same requests (-a +b):\n%s", diff)
	}
	fails := 0
	for _, c := range a {
		if c == 500 {
			fails++
		}
	}
	if fails < 8 || fails > 32 {
		t.Errorf("FailRate 0.5 failed %d of 40", fails)
	}
}

func TestLatency(t *testing.T) {
	h := newHarness(t, nil)
	h.srv.SetFaults(simulator.Faults{Latency: 60 * time.Millisecond})
	for _, hdr := range [][]string{nil, {"authorization", ""}} {
		start := time.Now()
		h.do("GET", "/user/info", nil, hdr...)
		if el := time.Since(start); el < 60*time.Millisecond {
			t.Errorf("latency must delay every API request (headers %v); took %v", hdr, el)
		}
	}
	start := time.Now()
	h.do("GET", "/_sim/faults", nil)
	if el := time.Since(start); el >= 60*time.Millisecond {
		t.Errorf("admin endpoints are not delayed; took %v", el)
	}
}

func TestCreateThen500(t *testing.T) {
	h := newHarness(t, nil)
	h.srv.SetFaults(simulator.Faults{CreateThen500Next: 1})
	body := map[string]any{"from_phone": fromPhone, "to_phone": "+15551230000", "metadata": map[string]any{"attempt": 1}, "include_metadata_in_prompt": true}
	rec := h.do("POST", "/start_outbound_call", body)
	if rec.Code != 500 {
		t.Fatalf("the client must see a 500; got %d %s", rec.Code, rec.Body)
	}
	led := h.srv.Ledger()
	if len(led) != 1 {
		t.Fatalf("the call was placed anyway and must be in the ledger; got %d entries", len(led))
	}
	e := led[0]
	want := simulator.LedgerEntry{
		SessionID: e.SessionID, CallID: e.CallID, From: fromPhone, To: "+15551230000", AgentID: simulator.SeedAgentID,
		Metadata: json.RawMessage(`{"attempt":1}`), IncludeMetadataInPrompt: true, PlacedAt: t0, Status: "registered", HTTPStatus: 500,
	}
	if diff := cmp.Diff(want, e); diff != "" {
		t.Errorf("ledger entry (-want +got):\n%s", diff)
	}
	h.step(time.Hour)
	if st := h.status(e.SessionID); st != "user-ended" {
		t.Errorf("the hidden call really happens; status %q", st)
	}
	rec = h.do("POST", "/start_outbound_call", body)
	if rec.Code != 200 || h.srv.DialCount("+15551230000") != 2 {
		t.Errorf("only the next N calls are affected; got %d, DialCount %d", rec.Code, h.srv.DialCount("+15551230000"))
	}
}

func TestWebhookFaults(t *testing.T) {
	tests := []struct {
		name, reason string
		faults       simulator.Faults
		prefetch     bool
		want         []int // deliveries per call, for three calls in order
		wantPrefetch int
	}{
		{"drop next", "the next N deliveries are skipped", simulator.Faults{DropWebhooks: 2}, false, []int{0, 0, 1}, 0},
		{"duplicate next", "the next N end-of-call deliveries go twice", simulator.Faults{DuplicateWebhooks: 1}, false, []int{2, 1, 1}, 0},
		{"drop rate 1", "a drop rate of 1 sends nothing", simulator.Faults{DropWebhookRate: 1}, false, []int{0, 0, 0}, 0},
		{"duplicate rate 1", "a duplicate rate of 1 doubles everything", simulator.Faults{DuplicateWebhookRate: 1}, false, []int{2, 2, 2}, 0},
		{"drop counts prefetch", "prefetch deliveries are webhook deliveries too; a dropped one lets the call go on", simulator.Faults{DropWebhooks: 1}, true, []int{1, 1, 1}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			end := newReceiver(t, 200, `{}`)
			pre := newReceiver(t, 200, `{}`)
			cfg := map[string]any{"prompt": "p", "voice": voice, "session_data_webhook": end.URL}
			if tt.prefetch {
				cfg["extra_prompt_webhook"] = pre.URL
			}
			h := newHarness(t, agentWith(cfg))
			h.srv.SetFaults(tt.faults)
			var ids []string
			for range 3 {
				ids = append(ids, h.place("+15551230000", nil))
				h.step(time.Hour) // one call at a time, so deliveries keep their order
			}
			count := map[string]int{}
			for _, r := range end.got() {
				var c callHistory
				_ = json.Unmarshal(r.Body, &c)
				count[c.SessionID]++
			}
			var got []int
			for _, id := range ids {
				got = append(got, count[id])
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("%s: deliveries per call (-want +got):\n%s", tt.reason, diff)
			}
			if n := len(pre.got()); n != tt.wantPrefetch {
				t.Errorf("%s: %d prefetch requests, want %d", tt.reason, n, tt.wantPrefetch)
			}
			for _, id := range ids {
				if st := h.status(id); st != "user-ended" {
					t.Errorf("webhook faults never change the call; %s is %q", id, st)
				}
			}
		})
	}
}

func TestDuplicateBodiesAreIdentical(t *testing.T) {
	end := newReceiver(t, 200, `{}`)
	h := newHarness(t, agentWith(map[string]any{"prompt": "p", "voice": voice, "session_data_webhook": end.URL}))
	h.srv.SetFaults(simulator.Faults{DuplicateWebhooks: 1})
	h.place("+15551230000", nil)
	h.step(time.Hour)
	reqs := end.got()
	if len(reqs) != 2 || !bytes.Equal(reqs[0].Body, reqs[1].Body) {
		t.Fatalf("a duplicated delivery repeats the same body; got %d requests", len(reqs))
	}
}

func TestAdminFaults(t *testing.T) {
	h := newHarness(t, nil)
	tests := []struct {
		name, reason string
		body         string
		wantCode     int
		wantGet      string
	}{
		{
			name: "set", reason: "POST replaces the faults and GET shows them, latency as a duration",
			body:     `{"fail_next":{"GET /user/info":2},"rate_limit_next":{"*":1},"retry_after_seconds":3,"latency":"5ms","create_then_500_next":1,"drop_webhooks":2,"duplicate_webhooks":3,"fail_rate":0.1,"drop_webhook_rate":0.2,"duplicate_webhook_rate":0.3}`,
			wantCode: 200,
			wantGet:  `{"fail_next":{"GET /user/info":2},"rate_limit_next":{"*":1},"retry_after_seconds":3,"latency":"5ms","create_then_500_next":1,"drop_webhooks":2,"duplicate_webhooks":3,"fail_rate":0.1,"drop_webhook_rate":0.2,"duplicate_webhook_rate":0.3}`,
		},
		{name: "latency in ms", reason: "a bare number is milliseconds", body: `{"latency":250}`, wantCode: 200, wantGet: `{"latency":"250ms"}`},
		{name: "clear", reason: "an empty object clears everything", body: `{}`, wantCode: 200, wantGet: `{}`},
		{name: "unknown key", reason: "typos are rejected, not ignored", body: `{"fail_nxt":{"*":1}}`, wantCode: 400, wantGet: `{}`},
		{name: "bad rate", reason: "rates are within 0..1", body: `{"fail_rate":1.5}`, wantCode: 400, wantGet: `{}`},
		{name: "negative count", reason: "counts are not negative", body: `{"drop_webhooks":-1}`, wantCode: 400, wantGet: `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := h.with(t)
			rec := h.do("POST", "/_sim/faults", tt.body, "authorization", "")
			if rec.Code != tt.wantCode {
				t.Fatalf("%s: status %d, want %d (%s)", tt.reason, rec.Code, tt.wantCode, rec.Body)
			}
			if tt.wantCode != 200 {
				h.srv.SetFaults(simulator.Faults{})
			}
			got := h.do("GET", "/_sim/faults", nil, "authorization", "").Body.String()
			if diff := cmp.Diff(tt.wantGet, got); diff != "" {
				t.Errorf("%s (-want +got):\n%s", tt.reason, diff)
			}
		})
	}

	t.Run("consumption visible", func(t *testing.T) {
		h := h.with(t)
		h.srv.SetFaults(simulator.Faults{FailNext: map[string]int{"GET /user/info": 2}})
		h.send(userInfo)
		if diff := cmp.Diff(map[string]int{"GET /user/info": 1}, h.srv.Faults().FailNext); diff != "" {
			t.Errorf("counters count down as faults trigger (-want +got):\n%s", diff)
		}
	})
}

func TestResetAndLedger(t *testing.T) {
	end := newReceiver(t, 200, `{}`)
	h := newHarness(t, agentWith(map[string]any{"prompt": "p", "voice": voice, "session_data_webhook": end.URL}))
	a := h.place("+15551230000", map[string]any{"metadata": map[string]any{"x": 1}})
	h.place("+15551230000", nil)
	h.place("+15559990091", nil)
	h.step(time.Hour)

	if got := h.srv.DialCount("+15551230000"); got != 2 {
		t.Errorf("DialCount counts calls to that number; got %d", got)
	}
	var led struct {
		Total int                     `json:"total"`
		Calls []simulator.LedgerEntry `json:"calls"`
	}
	h.doJSON("GET", "/_sim/ledger?to=%2B15559990091", nil, 200, &led)
	if led.Total != 1 || len(led.Calls) != 1 || led.Calls[0].Status != "busy" {
		t.Errorf("?to= filters the ledger; got %+v", led)
	}
	h.doJSON("GET", "/_sim/ledger", nil, 200, &led)
	if led.Total != 3 || led.Calls[0].SessionID != a {
		t.Errorf("the ledger lists every call, oldest first; got %+v", led)
	}
	var dbg struct {
		Call    callHistory           `json:"call"`
		Ledger  simulator.LedgerEntry `json:"ledger"`
		Outcome string                `json:"outcome"`
	}
	h.doJSON("GET", "/_sim/calls/"+a, nil, 200, &dbg)
	if dbg.Call.SessionID != a || dbg.Outcome != "user-ended" || dbg.Ledger.To != "+15551230000" {
		t.Errorf("/_sim/calls shows the call, its ledger entry and its outcome; got %+v", dbg)
	}

	// A call still in flight when reset must not report afterwards.
	h.place("+15551230000", nil)
	h.srv.SetFaults(simulator.Faults{FailNext: map[string]int{"GET /agents": 1}})
	before := len(end.got())
	h.doJSON("POST", "/_sim/reset", nil, 200, nil)
	h.step(time.Hour)
	if len(h.srv.Ledger()) != 0 || h.do("GET", "/call-logs/"+a, nil).Code != 404 {
		t.Errorf("reset forgets calls and the ledger")
	}
	if n := len(end.got()); n != before {
		t.Errorf("calls forgotten by reset must not fire webhooks; %d new deliveries", n-before)
	}
	if code := h.send(req{"GET", "/agents"}); code != 200 {
		t.Errorf("reset clears faults; got %d", code)
	}
	var info struct {
		UsedCredit float64 `json:"used_credit"`
	}
	h.doJSON("GET", "/user/info", nil, 200, &info)
	if info.UsedCredit != 0 {
		t.Errorf("reset clears used credit; got %v", info.UsedCredit)
	}
	if code := h.do("GET", "/agents/-Agent00000000000000", nil).Code; code != 200 {
		t.Errorf("reset keeps agents; got %d", code)
	}
}

func TestLogsMaskPhonesAndHideKeys(t *testing.T) {
	var buf bytes.Buffer
	end := newReceiver(t, 200, `{}`)
	h := newHarness(t, func(c *simulator.Config) {
		agentWith(map[string]any{"prompt": "p", "voice": voice, "session_data_webhook": end.URL + "/hook?token=sekrit"})(c)
		c.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		c.APIKeys = []string{"top-secret-key"}
	})
	h.do("POST", "/start_outbound_call", map[string]any{"from_phone": fromPhone, "to_phone": "+15551230123"}, "authorization", "top-secret-key")
	h.do("GET", "/user/info", nil, "authorization", "wrong-key-123")
	h.step(time.Hour)
	logs := buf.String()
	for _, secret := range []string{"top-secret-key", "wrong-key-123", "+15551230123", fromPhone, "sekrit"} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs must not contain %q:\n%s", secret, logs)
		}
	}
	if !strings.Contains(logs, "+1555***0123") {
		t.Errorf("phones are logged masked as +1555***0123:\n%s", logs)
	}
}
