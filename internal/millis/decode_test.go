package millis

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// webhookExample is the official end-of-call webhook example, with chat in
// its current (string) form and a field this package does not model.
const webhookExample = `{
  "session_id": "-OA1XVnwRGpaameIakJb",
  "call_id": "CA42",
  "agent_id": "-OKdqbqetEcM4ak369ym",
  "agent_config": {"prompt": "p", "voice": {"provider": "openai", "voice_id": "alloy"}},
  "ts": 1729840680.886249,
  "duration": 300,
  "chat": "[{\"role\": \"assistant\", \"content\": \"Hello\"}, {\"role\": \"user\", \"content\": \"Hi\"}]",
  "chars_used": 1234,
  "cost_breakdown": [{"type": "llm", "provider": "openai", "credit": 0.5}, {"type": "tts", "provider": "elevenlabs", "credit": 0.25}],
  "voip": {"provider": "twilio", "from": "+15550000001", "to": "+15550000002"},
  "recording": {"recording_url": "https://rec.example/1.wav"},
  "metadata": {"cr": "ns/call-1"},
  "function_calls": [{"name": "check_status", "params": {"session_id": "-OA1XVnwRGpaameIakJb"}}],
  "call_status": "user-ended",
  "error_message": "callee hung up",
  "summary": {"text": "short call", "tags": ["a", 1, null]}
}`

func TestCallHistoryDecode(t *testing.T) {
	var got CallHistory
	if err := json.Unmarshal([]byte(webhookExample), &got); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	want := CallHistory{
		SessionID:     "-OA1XVnwRGpaameIakJb",
		CallID:        "CA42",
		AgentID:       "-OKdqbqetEcM4ak369ym",
		AgentConfig:   json.RawMessage(`{"prompt": "p", "voice": {"provider": "openai", "voice_id": "alloy"}}`),
		TS:            1729840680.886249,
		Duration:      300,
		Chat:          Chat{{Role: "assistant", Content: "Hello"}, {Role: "user", Content: "Hi"}},
		CharsUsed:     1234,
		CostBreakdown: []CostItem{{Type: "llm", Provider: "openai", Credit: 0.5}, {Type: "tts", Provider: "elevenlabs", Credit: 0.25}},
		VoIP:          &VoIP{Provider: "twilio", From: "+15550000001", To: "+15550000002"},
		Recording:     &Recording{RecordingURL: "https://rec.example/1.wav"},
		Metadata:      json.RawMessage(`{"cr": "ns/call-1"}`),
		FunctionCalls: json.RawMessage(`[{"name": "check_status", "params": {"session_id": "-OA1XVnwRGpaameIakJb"}}]`),
		CallStatus:    StatusUserEnded,
		ErrorMessage:  ptr("callee hung up"),
		Extra:         map[string]json.RawMessage{"summary": json.RawMessage(`{"text": "short call", "tags": ["a", 1, null]}`)},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("webhook example (-want +got):\n%s", diff)
	}
	if got.TotalCredit() != 0.75 {
		t.Errorf("TotalCredit = %v, want 0.75", got.TotalCredit())
	}
}

// TestCallHistoryRoundTrip: decode then encode must not lose anything,
// including fields Millis adds later.
func TestCallHistoryRoundTrip(t *testing.T) {
	tests := []struct {
		name, reason, in string
	}{
		{
			name:   "known and unknown fields",
			reason: "unknown fields of every JSON type survive",
			in: `{"session_id":"-Os","chat":[{"role":"user","content":"x"}],"chars_used":3,"call_status":"busy",
				"new_number":1.5,"new_string":"s","new_bool":false,"new_null":null,"new_array":[1,{"a":2}],"new_object":{"k":[]}}`,
		},
		{
			name:   "only unknown fields",
			reason: "no leading comma when every modelled field is empty",
			in:     `{"only":"extra"}`,
		},
		{
			name:   "no unknown fields",
			reason: "plain fields encode as usual",
			in:     `{"session_id":"-Os","duration":12.5,"metadata":{"a":"b"}}`,
		},
		{
			name:   "empty object",
			reason: "nothing in, nothing out",
			in:     `{}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h CallHistory
			if err := json.Unmarshal([]byte(tc.in), &h); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			out, err := json.Marshal(h)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if diff := jsonDiff(t, string(out), tc.in); diff != "" {
				t.Errorf("%s (-want +got):\n%s", tc.reason, diff)
			}
			// A pointer must encode the same way (value receiver).
			viaPtr, err := json.Marshal(&h)
			if err != nil || string(viaPtr) != string(out) {
				t.Errorf("%s: pointer encoding %s, %v differs from value encoding %s", tc.reason, viaPtr, err, out)
			}
		})
	}
}

func TestCallHistoryMarshal(t *testing.T) {
	tests := []struct {
		name, reason string
		in           CallHistory
		want         string
		wantErr      bool
	}{
		{
			name:   "typed field wins over Extra",
			reason: "callers edit typed fields; a stale copy in Extra must not duplicate the key",
			in: CallHistory{CallStatus: StatusUserEnded,
				Extra: map[string]json.RawMessage{"call_status": json.RawMessage(`"queued"`), "x": json.RawMessage(`1`)}},
			want: `{"call_status":"user-ended","x":1}`,
		},
		{
			name:   "chat encodes as an array",
			reason: "the operator writes transcripts as arrays, whatever form they arrived in",
			in:     CallHistory{Chat: Chat{{Role: "user", Content: "x"}}},
			want:   `{"chat":[{"role":"user","content":"x"}]}`,
		},
		{
			name:    "invalid extra",
			reason:  "invalid JSON in Extra is an error, not corrupt output",
			in:      CallHistory{Extra: map[string]json.RawMessage{"bad": json.RawMessage(`{`)}},
			wantErr: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := json.Marshal(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("%s: Marshal error %v, wantErr %v", tc.reason, err, tc.wantErr)
			}
			if err == nil && string(out) != tc.want {
				t.Errorf("%s:\n got %s\nwant %s", tc.reason, out, tc.want)
			}
		})
	}
}

func TestCallHistoryDecodeEdgeCases(t *testing.T) {
	tests := []struct {
		name, reason, in string
		want             CallHistory
		wantErr          bool
	}{
		{name: "chars_used float", reason: "Python may serialise integers as 12.0", in: `{"chars_used":12.0}`,
			want: CallHistory{CharsUsed: 12}},
		{name: "chars_used fraction", reason: "fractions are rounded, not rejected", in: `{"chars_used":12.6}`,
			want: CallHistory{CharsUsed: 13}},
		{name: "chars_used exponent", reason: "1e3 is a valid JSON integer value", in: `{"chars_used":1e3}`,
			want: CallHistory{CharsUsed: 1000}},
		{name: "chars_used null", reason: "every field is nullable", in: `{"chars_used":null}`,
			want: CallHistory{}},
		{name: "chars_used string", reason: "a string is not a number", in: `{"chars_used":"12"}`, wantErr: true},
		{name: "chars_used overflow", reason: "out of range must not wrap around", in: `{"chars_used":1e30}`, wantErr: true},
		{name: "ts as integer", reason: "float fields accept integers", in: `{"ts":1729840680,"duration":5}`,
			want: CallHistory{TS: 1729840680, Duration: 5}},
		{name: "nullable fields", reason: "nulls leave zero values", in: `{"session_id":null,"voip":null,"error_message":null}`,
			want: CallHistory{}},
		{name: "not an object", reason: "a call log is an object", in: `[1]`, wantErr: true},
		{name: "bad chat", reason: "a chat that is not valid JSON text fails the whole document", in: `{"chat":[1,}`, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got CallHistory
			err := json.Unmarshal([]byte(tc.in), &got)
			if (err != nil) != tc.wantErr {
				t.Fatalf("%s: error %v, wantErr %v", tc.reason, err, tc.wantErr)
			}
			if err == nil {
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("%s (-want +got):\n%s", tc.reason, diff)
				}
			}
		})
	}
}

func TestCallHistoryUnmarshalResets(t *testing.T) {
	h := CallHistory{SessionID: "old", CharsUsed: 9, Extra: map[string]json.RawMessage{"stale": json.RawMessage(`1`)}}
	if err := json.Unmarshal([]byte(`{"call_id":"new"}`), &h); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if diff := cmp.Diff(CallHistory{CallID: "new"}, h); diff != "" {
		t.Errorf("decoding into a reused value must not mix old and new documents (-want +got):\n%s", diff)
	}
	if err := json.Unmarshal([]byte(`null`), &h); err != nil {
		t.Fatalf("Unmarshal null: %v", err)
	}
	if h.CallID != "new" {
		t.Errorf("null must leave the value alone, as encoding/json does; got %+v", h)
	}
}

func TestChatDecode(t *testing.T) {
	tests := []struct {
		name, reason, in string
		want             Chat
	}{
		{name: "string of array", reason: "current docs",
			in:   `"[{\"role\":\"user\",\"content\":\"hi\"}]"`,
			want: Chat{{Role: "user", Content: "hi"}}},
		{name: "array", reason: "older docs", in: `[{"role":"assistant","content":"hello"}]`,
			want: Chat{{Role: "assistant", Content: "hello"}}},
		{name: "null", reason: "no transcript", in: `null`, want: nil},
		{name: "empty string", reason: "no transcript", in: `""`, want: nil},
		{name: "blank string", reason: "no transcript", in: `"  "`, want: nil},
		{name: "string null", reason: "Python json.dumps(None)", in: `"null"`, want: nil},
		{name: "empty array", reason: "no turns", in: `[]`, want: nil},
		{name: "string of empty array", reason: "no turns", in: `"[]"`, want: nil},
		{name: "plain text string", reason: "not an error: kept as one unknown message",
			in: `"Agent: hi\nUser: bye"`, want: Chat{{Role: "unknown", Content: "Agent: hi\nUser: bye"}}},
		{name: "broken JSON string", reason: "a truncated transcript is kept verbatim",
			in: `"[{\"role\":\"user\""`, want: Chat{{Role: "unknown", Content: `[{"role":"user"`}}},
		{name: "null content", reason: "assistant turns with only tool calls have null content",
			in: `[{"role":"assistant","content":null,"tool_calls":[]}]`, want: Chat{{Role: "assistant", Content: "null"}}},
		{name: "object content", reason: "tool results may be objects; kept as JSON text",
			in:   `"[{\"role\":\"tool\",\"content\":{\"ok\": true},\"tool_call_id\":\"t1\"}]"`,
			want: Chat{{Role: "tool", Content: `{"ok":true}`}}},
		{name: "missing content", reason: "absent content is empty", in: `[{"role":"user"}]`,
			want: Chat{{Role: "user"}}},
		{name: "non-object element", reason: "odd elements are kept, not fatal", in: `["hi", 3, null]`,
			want: Chat{{Role: "unknown", Content: "hi"}, {Role: "unknown", Content: "3"}, {Role: "unknown", Content: "null"}}},
		{name: "object chat", reason: "an unexpected shape is kept rather than failing the call log",
			in: `{"messages": []}`, want: Chat{{Role: "unknown", Content: `{"messages":[]}`}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got Chat
			if err := json.Unmarshal([]byte(tc.in), &got); err != nil {
				t.Fatalf("%s: %v", tc.reason, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s (-want +got):\n%s", tc.reason, diff)
			}
		})
	}
}

func TestChatEncodesAsArray(t *testing.T) {
	out, err := json.Marshal(Chat{{Role: "user", Content: "a"}, {Role: "assistant", Content: "b"}})
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	const want = `[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]`
	if string(out) != want {
		t.Errorf("Chat must encode as an array:\n got %s\nwant %s", out, want)
	}
}

func TestValidationErrorDecode(t *testing.T) {
	var got []ValidationError
	in := `[{"loc":["body","tools",3,"name"],"msg":"field required","type":"missing","input":"+15550000001"}]`
	if err := json.Unmarshal([]byte(in), &got); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	want := []ValidationError{{Loc: []string{"body", "tools", "3", "name"}, Msg: "field required", Type: "missing"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("integer loc elements become text; pydantic's input is dropped (-want +got):\n%s", diff)
	}
	if s := got[0].String(); s != "body.tools.3.name: field required" {
		t.Errorf("String() = %q", s)
	}
}
