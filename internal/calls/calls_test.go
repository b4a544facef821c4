package calls

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	millisv1alpha1 "github.com/callops/millis-operator/api/v1alpha1"
	"github.com/callops/millis-operator/internal/accounts"
	"github.com/callops/millis-operator/internal/millis"
)

func call(meta, agentConfig string) *millisv1alpha1.OutboundCall {
	c := &millisv1alpha1.OutboundCall{
		ObjectMeta: metav1.ObjectMeta{UID: "uid-1"},
		Spec: millisv1alpha1.OutboundCallSpec{AgentID: "agent", FromPhone: "+15550100001", ToPhone: "+15550100002",
			IncludeMetadataInPrompt: true},
	}
	if meta != "" {
		c.Spec.Metadata = &apiextensionsv1.JSON{Raw: []byte(meta)}
	}
	if agentConfig != "" {
		c.Spec.AgentConfig = &apiextensionsv1.JSON{Raw: []byte(agentConfig)}
	}
	return c
}

var hooks = &accounts.Webhooks{EndOfCallURL: "https://op/eoc", PrefetchURL: "https://op/pf", Header: "X-T", Token: "tok"}

func TestBuild(t *testing.T) {
	cases := []struct {
		reason     string
		in         Input
		wantReason string // InputError reason, "" for success
		check      func(t *testing.T, req millis.StartOutboundCallRequest)
	}{
		{
			reason: "renders metadata and overrides, adds only the ref key, attaches webhooks",
			in: Input{Call: call(`{"userName":"Ana","n":3,"greet":"Hi {userName} on {ToPhone}"}`, `{"first_message":"Hello {userName}"}`),
				AgentConfig: json.RawMessage(`{"prompt":"Talk to {userName}"}`), Webhooks: hooks, Ref: "uid-1/1", AgentID: "agent"},
			check: func(t *testing.T, req millis.StartOutboundCallRequest) {
				var meta map[string]any
				mustUnmarshal(t, req.Metadata, &meta)
				want := map[string]any{"userName": "Ana", "n": float64(3), "greet": "Hi Ana on +15550100002", "_callops_ref": "uid-1/1"}
				if diff := cmp.Diff(want, meta); diff != "" {
					t.Errorf("metadata (-want +got):\n%s", diff)
				}
				var cfg map[string]json.RawMessage
				mustUnmarshal(t, req.AgentConfig, &cfg)
				if string(cfg["first_message"]) != `"Hello Ana"` {
					t.Errorf("first_message = %s", cfg["first_message"])
				}
				if !strings.Contains(string(cfg["session_data_webhook"]), "https://op/eoc") || !strings.Contains(string(cfg["session_data_webhook"]), `"X-T":"tok"`) {
					t.Errorf("session_data_webhook = %s", cfg["session_data_webhook"])
				}
				if !req.IncludeMetadataInPrompt || req.AgentID != "agent" {
					t.Errorf("request = %+v", req)
				}
			},
		},
		{
			reason: "an agent's own end-of-call webhook is left in place",
			in: Input{Call: call(`{"userName":"Ana"}`, ""), Webhooks: hooks, Ref: "r",
				AgentConfig: json.RawMessage(`{"prompt":"x","session_data_webhook":"https://theirs/hook"}`)},
			check: func(t *testing.T, req millis.StartOutboundCallRequest) {
				var cfg map[string]json.RawMessage
				mustUnmarshal(t, req.AgentConfig, &cfg)
				if _, ok := cfg["session_data_webhook"]; ok {
					t.Errorf("the agent's webhook was overridden: %s", req.AgentConfig)
				}
				if _, ok := cfg["extra_prompt_webhook"]; !ok {
					t.Errorf("the prefetch webhook should still be ours: %s", req.AgentConfig)
				}
			},
		},
		{
			reason:     "a variable the agent speaks but nobody provides stops the dial",
			in:         Input{Call: call(`{"userName":"Ana"}`, ""), AgentConfig: json.RawMessage(`{"prompt":"for {company}","first_message":"Hi {userName}"}`), Ref: "r"},
			wantReason: millisv1alpha1.ReasonTemplateError,
		},
		{
			reason: "late-bound prefetch variables count as provided",
			in: Input{Call: call(`{"userName":"Ana"}`, ""), AgentConfig: json.RawMessage(`{"prompt":"balance {balance}"}`),
				LateBound: []string{"balance"}, Ref: "r"},
		},
		{
			reason:     "an unresolved variable inside metadata stops the dial",
			in:         Input{Call: call(`{"greet":"Hi {nobody}"}`, ""), Ref: "r"},
			wantReason: millisv1alpha1.ReasonTemplateError,
		},
		{
			reason:     "metadata must not set the operator's key",
			in:         Input{Call: call(`{"_callops_ref":"forged"}`, ""), Ref: "r"},
			wantReason: millisv1alpha1.ReasonTemplateError,
		},
		{
			reason:     "oversized metadata is refused with the limit stated",
			in:         Input{Call: call(`{"blob":"`+strings.Repeat("x", millisv1alpha1.MaxMetadataBytes)+`"}`, ""), Ref: "r"},
			wantReason: millisv1alpha1.ReasonMetadataTooLarge,
		},
	}
	for _, c := range cases {
		req, err := Build(c.in)
		if c.wantReason != "" {
			var in *InputError
			if !errors.As(err, &in) || in.Reason != c.wantReason {
				t.Errorf("%s: err = %v, want reason %s", c.reason, err, c.wantReason)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.reason, err)
			continue
		}
		if c.check != nil {
			c.check(t, req)
		}
	}
}

func TestApplyHistory(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	msg := "carrier said busy"
	chat := make(millis.Chat, 25)
	for i := range chat {
		chat[i] = millis.ChatMessage{Role: "user", Content: strings.Repeat("é", 600)}
	}
	cases := []struct {
		reason       string
		h            millis.CallHistory
		wantPhase    millisv1alpha1.CallPhase
		wantFinished bool
		check        func(t *testing.T, st *millisv1alpha1.OutboundCallStatus)
	}{
		{
			reason: "a live call records its status and stays InProgress",
			h:      millis.CallHistory{SessionID: "s", CallStatus: "ringing", TS: 1764000000.5},
			// RecordAccepted already ran in the reconciler; here the status starts empty.
			wantPhase: millisv1alpha1.CallInProgress,
		},
		{
			reason: "connected: Succeeded with cost, duration, bounded transcript",
			h: millis.CallHistory{SessionID: "s", CallID: "c", CallStatus: "user-ended", TS: 1764000000, Duration: 41.6,
				CostBreakdown: []millis.CostItem{{Credit: 0.01}, {Credit: 0.025}}, Chat: chat,
				Recording: &millis.Recording{RecordingURL: "https://rec"}, Metadata: json.RawMessage(`{"a":1}`)},
			wantPhase: millisv1alpha1.CallSucceeded, wantFinished: true,
			check: func(t *testing.T, st *millisv1alpha1.OutboundCallStatus) {
				if st.Cost != "0.035" || *st.DurationSeconds != 42 || st.RecordingURL != "https://rec" {
					t.Errorf("cost %s duration %d recording %s", st.Cost, *st.DurationSeconds, st.RecordingURL)
				}
				if len(st.Transcript) != MaxTranscriptTurns || st.TranscriptTurns != 25 {
					t.Errorf("transcript %d turns of %d", len(st.Transcript), st.TranscriptTurns)
				}
				if n := len([]rune(st.Transcript[0].Content)); n != MaxTurnChars {
					t.Errorf("turn cut to %d runes, want %d", n, MaxTurnChars)
				}
				if want := time.Unix(1764000000, 0).Add(41600 * time.Millisecond); !st.EndTime.Time.Equal(want) {
					t.Errorf("end %v, want %v", st.EndTime.Time, want)
				}
			},
		},
		{
			reason:    "busy: Failed with the error message",
			h:         millis.CallHistory{SessionID: "s", CallStatus: "busy", ErrorMessage: &msg},
			wantPhase: millisv1alpha1.CallFailed, wantFinished: true,
			check: func(t *testing.T, st *millisv1alpha1.OutboundCallStatus) {
				if st.ErrorMessage != msg {
					t.Errorf("error message %q", st.ErrorMessage)
				}
			},
		},
	}
	for _, c := range cases {
		st := &millisv1alpha1.OutboundCallStatus{}
		finished := ApplyHistory(st, 1, &c.h, SourceWebhook, now)
		if finished != c.wantFinished || st.Phase != c.wantPhase {
			t.Errorf("%s: finished=%v phase=%s, want %v %s", c.reason, finished, st.Phase, c.wantFinished, c.wantPhase)
		}
		if st.SessionID != "s" {
			t.Errorf("%s: session %q", c.reason, st.SessionID)
		}
		if c.check != nil {
			c.check(t, st)
		}
		// Applying anything after the end changes nothing.
		before := st.DeepCopy()
		ApplyHistory(st, 1, &millis.CallHistory{SessionID: "s", CallStatus: "error"}, SourceCallLog, now)
		if c.wantFinished {
			if diff := cmp.Diff(before, st); diff != "" {
				t.Errorf("%s: a finished call changed (-before +after):\n%s", c.reason, diff)
			}
		}
	}
}

func TestRef(t *testing.T) {
	ref := Ref("6f1c-uid", 3)
	if ref != "6f1c-uid/3" || RefUID(ref) != "6f1c-uid" {
		t.Errorf("Ref = %q, RefUID = %q", ref, RefUID(ref))
	}
	if got := RefOf(json.RawMessage(`{"_callops_ref":"u/1","x":2}`)); got != "u/1" {
		t.Errorf("RefOf = %q", got)
	}
	if got := RefOf(json.RawMessage(`not json`)); got != "" {
		t.Errorf("RefOf(garbage) = %q", got)
	}
}

func mustUnmarshal(t *testing.T, raw json.RawMessage, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("unmarshal %s: %v", raw, err)
	}
}

// BenchmarkBuild measures rendering and checking one call's request, the
// CPU work the reconciler does per dial besides I/O.
func BenchmarkBuild(b *testing.B) {
	in := Input{
		Call:        call(`{"userName":"Ana","company":"Acme","tier":"gold","visits":3,"greet":"Hi {userName} from {company}"}`, `{"first_message":"Hello {userName}"}`),
		AgentConfig: json.RawMessage(`{"prompt":"You help {company} customers. The caller is {userName}, tier {tier}.","flow":{"voicemail":{"action":"message","message":"Call {company} back"}}}`),
		Webhooks:    hooks,
		Ref:         "uid-1/1",
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Build(in); err != nil {
			b.Fatal(err)
		}
	}
}

func TestOwnMetadataDropsPrefetchedValues(t *testing.T) {
	c := call(`{"userName":"Ana"}`, "")
	h := &millis.CallHistory{SessionID: "s", Metadata: json.RawMessage(`{"userName":"Ana","_callops_ref":"uid-1/1","accountPin":"4321"}`)}

	// Without spec.prefetch nothing was merged by the operator's prefetch.
	if got := OwnMetadata(h, c); string(got.Metadata) != string(h.Metadata) {
		t.Fatalf("metadata changed without prefetch: %s", got.Metadata)
	}

	c.Spec.Prefetch = &millisv1alpha1.PrefetchSpec{}
	got := OwnMetadata(h, c)
	var m map[string]string
	if err := json.Unmarshal(got.Metadata, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"userName": "Ana", "_callops_ref": "uid-1/1"}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("kept metadata (-want +got):\n%s", diff)
	}
	if !strings.Contains(string(h.Metadata), "accountPin") {
		t.Error("OwnMetadata modified its input")
	}
	if got.SessionID != "s" {
		t.Error("OwnMetadata lost the rest of the history")
	}
}
