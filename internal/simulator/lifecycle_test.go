package simulator_test

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/callops/millis-operator/internal/simulator"
)

func TestLifecycleByOutcome(t *testing.T) {
	connected := func(final string) []string {
		return []string{"registered", "queued", "initiated", "ringing", "in-progress", final}
	}
	notConnected := func(final string) []string {
		return []string{"registered", "queued", "initiated", "ringing", final, final}
	}
	tests := []struct {
		to, reason   string
		want         []string // status after 0, 100ms, 100ms, 100ms, 1s (ring), 2s (talk)
		wantDuration float64
	}{
		{"+15551230000", "any other ending is a normal call the callee hangs up", connected("user-ended"), 2},
		{"+15551230091", "91 is busy, never answered", notConnected("busy"), 0},
		{"+15551230092", "92 is no-answer", notConnected("no-answer"), 0},
		{"+15551230093", "93 is failed", notConnected("failed"), 0},
		{"+15551230094", "94 reaches voicemail, which is answered", connected("voicemail-hangup"), 2},
		{"+15551230095", "95 is error", notConnected("error"), 0},
		{"+15551230096", "96 is answered and times out", connected("timeout"), 2},
		{"+15551230097", "97 is ended by the agent", connected("agent-ended"), 2},
		{"+15551230099", "99 is canceled", notConnected("canceled"), 0},
		{"+15551230191", "only the last two digits count", notConnected("busy"), 0},
		{"+15557770091", "Config.Outcomes beats the last two digits", connected("user-ended"), 2},
		{"+15557770000", "Config.Outcomes can pick any final status", connected("voicemail-message"), 2},
		{"+15557770001", "Config.Outcomes can pick a non-connected status", notConnected("no-answer"), 0},
	}
	steps := []time.Duration{0, 100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond, time.Second, 2 * time.Second}
	for _, tt := range tests {
		t.Run(tt.to, func(t *testing.T) {
			h := newHarness(t, func(c *simulator.Config) {
				c.Outcomes = map[string]string{"+15557770091": "user-ended", "+15557770000": "voicemail-message", "+15557770001": "no-answer"}
			})
			id := h.place(tt.to, nil)
			var got []string
			for _, d := range steps {
				h.step(d)
				got = append(got, h.status(id))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("%s: statuses (-want +got):\n%s", tt.reason, diff)
			}
			c := h.callLog(id)
			if c.Duration != tt.wantDuration {
				t.Errorf("%s: duration %v, want %v", tt.reason, c.Duration, tt.wantDuration)
			}
			var total float64
			for _, it := range c.CostBreakdown {
				total += it.Credit
			}
			if len(c.CostBreakdown) != 4 || (total > 0) != (tt.wantDuration > 0) {
				t.Errorf("%s: cost_breakdown %+v: want 4 items, non-zero exactly when talked", tt.reason, c.CostBreakdown)
			}
			if msgs := c.messages(t); (len(msgs) > 0) != (tt.wantDuration > 0) {
				t.Errorf("%s: chat %q: want a transcript exactly when answered", tt.reason, c.Chat)
			}
		})
	}
}

func TestHoldUntilMaxCallTime(t *testing.T) {
	h := newHarness(t, func(c *simulator.Config) { c.MaxCallTime = time.Minute })
	id := h.place("+15551230098", nil)
	h.step(300*time.Millisecond + time.Second + time.Minute - time.Millisecond)
	if st := h.status(id); st != "in-progress" {
		t.Fatalf("98 must stay in-progress until MaxCallTime; got %q", st)
	}
	h.step(time.Millisecond)
	c := h.callLog(id)
	if c.CallStatus != "timeout" || c.Duration != 60 {
		t.Errorf("at MaxCallTime a held call times out after 60s of talk; got %q %v", c.CallStatus, c.Duration)
	}
}

func TestSpeed(t *testing.T) {
	h := newHarness(t, func(c *simulator.Config) { c.Speed = 4 })
	id := h.place("+15551230000", nil)
	whole := (300*time.Millisecond + time.Second + 2*time.Second) / 4
	h.step(whole - time.Millisecond)
	if st := h.status(id); st != "in-progress" {
		t.Fatalf("at Speed 4 the call is still talking just before 1/4 of the lifecycle; got %q", st)
	}
	h.step(time.Millisecond)
	c := h.callLog(id)
	if c.CallStatus != "user-ended" || c.Duration != 2 {
		t.Errorf("Speed changes pacing, not the reported talk time: got %q duration %v, want user-ended 2", c.CallStatus, c.Duration)
	}
}

func TestFinishedCallFields(t *testing.T) {
	recordingCfg := `{"prompt":"Sell things.","first_message":"Hi {userName}, this is {FromPhone} calling {ToPhone} about {topic} ({unknown}, {n}, {ok}).","voice":{"provider":"openai","voice_id":"alloy"},"call_settings":{"enable_recording":true}}`
	tests := []struct {
		name, reason string
		agentCfg     string
		meta         map[string]any
		wantFirst    string
		wantTTS      string
		wantRecord   bool
	}{
		{
			name: "recording and variables", reason: "first_message renders built-ins and metadata, leaves unknown placeholders, and recording appears when enabled",
			agentCfg: recordingCfg, meta: map[string]any{"userName": "Ada", "topic": map[string]any{"a": 1}, "n": 2.5, "ok": true},
			wantFirst:  `Hi Ada, this is +15550100001 calling +15551230000 about {"a":1} ({unknown}, 2.5, true).`,
			wantTTS:    "openai",
			wantRecord: true,
		},
		{
			name: "no recording", reason: "without enable_recording there is no recording object",
			agentCfg: string(simulator.SeedAgent().Config), meta: map[string]any{"userName": "Bo"},
			wantFirst: "Hello Bo!", wantTTS: "elevenlabs",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(c *simulator.Config) {
				c.Agents = []simulator.AgentSeed{{ID: "-Agent00000000000000", Name: "a", Config: json.RawMessage(tt.agentCfg), Phones: []string{fromPhone}}}
				c.TalkTime = 30 * time.Second
			})
			reg := registration{}
			h.doJSON("POST", "/start_outbound_call", map[string]any{"from_phone": fromPhone, "to_phone": "+15551230000", "metadata": tt.meta}, 200, &reg)
			h.step(time.Hour)
			got := h.callLog(reg.SessionID)
			var wantCfg map[string]any
			_ = json.Unmarshal([]byte(tt.agentCfg), &wantCfg)
			want := callHistory{
				AgentID:     ptr("-Agent00000000000000"),
				AgentConfig: wantCfg,
				Duration:    30,
				TS:          float64(t0.UnixMicro()) / 1e6,
				CharsUsed:   360,
				SessionID:   reg.SessionID,
				CallID:      reg.CallID,
				CostBreakdown: []costItem{
					{"stt", "deepgram", 0.003}, {"tts", tt.wantTTS, 0.015}, {"llm", "openai", 0.005}, {"base", "millis", 0.01},
				},
				VoIP:          map[string]string{"provider": "twilio", "from": fromPhone, "to": "+15551230000"},
				Metadata:      tt.meta,
				FunctionCalls: []json.RawMessage{},
				CallStatus:    "user-ended",
			}
			if tt.wantRecord {
				want.Recording = &struct {
					RecordingURL string `json:"recording_url"`
				}{"https://recordings.millis-simulator.invalid/" + reg.SessionID + ".mp3"}
			}
			msgs := got.messages(t)
			got.Chat = ""
			// JSON numbers decode as float64 on both sides.
			want.Metadata = roundTrip(t, tt.meta)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s (-want +got):\n%s", tt.reason, diff)
			}
			if len(msgs) < 3 || msgs[0] != (chatMessage{"assistant", tt.wantFirst}) || msgs[1].Role != "user" {
				t.Errorf("%s: chat must open with the rendered first_message then the callee: %+v", tt.reason, msgs)
			}
		})
	}
}

func roundTrip(t *testing.T, v any) map[string]any {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestManyCallsAllFinish drives thousands of interleaved calls through one
// big clock step: every call must reach the outcome of its number, which
// exercises the event heap's ordering.
func TestManyCallsAllFinish(t *testing.T) {
	h := newHarness(t, nil)
	const n = 3000
	want := map[string]string{}
	finals := map[int]string{0: "user-ended", 91: "busy", 92: "no-answer", 93: "failed", 94: "voicemail-hangup", 95: "error", 96: "timeout", 97: "agent-ended", 98: "timeout", 99: "canceled"}
	for i := range n {
		suffix := []int{0, 91, 92, 93, 94, 95, 96, 97, 98, 99}[i%10]
		id := h.place(fmt.Sprintf("+1555%05d%02d", i, suffix), nil)
		want[id] = finals[suffix]
		if i%100 == 0 {
			h.clk.Step(37 * time.Millisecond) // spread placements over time, unsynced
		}
	}
	h.step(time.Hour)
	got := map[string]string{}
	for _, e := range h.srv.Ledger() {
		got[e.SessionID] = e.Status
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("every call must end with its number's outcome (-want +got):\n%s", diff)
	}
	var p page
	h.doJSON("GET", "/call-logs?limit=100", nil, http.StatusOK, &p)
	for i := 1; i < len(p.Histories); i++ {
		if !(p.Histories[i-1].TS > p.Histories[i].TS) {
			t.Fatalf("histories not strictly newest first at %d: %v then %v", i, p.Histories[i-1].TS, p.Histories[i].TS)
		}
	}
	if math.IsNaN(p.Histories[0].TS) {
		t.Fatal("ts must be a number")
	}
}

func TestConcurrencyCountsLiveCalls(t *testing.T) {
	h := newHarness(t, nil)
	for _, to := range []string{"+15550100010", "+15550100011", "+15550100091"} {
		h.place(to, nil)
	}
	if live, peak := h.srv.Concurrency(); live != 3 || peak != 3 {
		t.Fatalf("after placing 3: live %d peak %d, want 3 3", live, peak)
	}
	h.step(10 * time.Second)
	if live, peak := h.srv.Concurrency(); live != 0 || peak != 3 {
		t.Errorf("after all ended: live %d peak %d, want 0 3", live, peak)
	}
}
