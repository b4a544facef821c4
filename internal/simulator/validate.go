package simulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Request bodies are validated by hand into pydantic-shaped errors rather
// than through struct decoding, because encoding/json stops at the first
// problem and cannot tell a missing field from a null one, while FastAPI
// reports every problem with its location.

var e164 = regexp.MustCompile(`^\+[1-9]\d{6,14}$`)

const e164Msg = `String should match pattern '^\+[1-9]\d{6,14}$'`

func isE164(s string) bool { return e164.MatchString(s) }

func isNull(raw json.RawMessage) bool { return len(raw) == 0 || string(raw) == "null" }

func withLoc(loc []any, more ...any) []any {
	out := make([]any, 0, len(loc)+len(more))
	return append(append(out, loc...), more...)
}

// decodeObject parses a JSON object body. required says whether an empty
// body is an error (FastAPI: a required body is "missing"); an optional
// empty body yields a nil map.
func decodeObject(body []byte, required bool) (map[string]json.RawMessage, []validationError) {
	if len(bytes.TrimSpace(body)) == 0 {
		if required {
			return nil, []validationError{errMissing("body")}
		}
		return nil, nil
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	err := dec.Decode(&v)
	if err == nil && dec.More() {
		err = &json.SyntaxError{Offset: dec.InputOffset() + 1}
	}
	if err != nil {
		// The location is the character index Python's json module reports:
		// the offending character, or the end for a truncated body.
		pos := int64(len(body))
		var se *json.SyntaxError
		if errors.As(err, &se) {
			pos = max(se.Offset-1, 0)
		}
		return nil, []validationError{{Loc: []any{"body", pos}, Msg: "JSON decode error", Type: "json_invalid"}}
	}
	if v == nil && !required {
		return nil, nil
	}
	var m map[string]json.RawMessage
	if _, ok := v.(map[string]any); !ok || json.Unmarshal(body, &m) != nil {
		return nil, []validationError{{Loc: []any{"body"}, Msg: msgModelAttr, Type: "model_attributes_type"}}
	}
	return m, nil
}

// fields reads typed fields out of a decoded object, collecting errors.
type fields struct {
	m    map[string]json.RawMessage
	loc  []any
	errs []validationError
}

func (f *fields) fail(name, msg, typ string) {
	f.errs = append(f.errs, validationError{Loc: withLoc(f.loc, name), Msg: msg, Type: typ})
}

// str returns a string field. Absent or null optional fields return ok=false
// with no error; a required field that is absent is "missing" and a null is
// "string_type", as pydantic reports them.
func (f *fields) str(name string, required bool) (string, bool) {
	raw, present := f.m[name]
	if !present {
		if required {
			f.errs = append(f.errs, errMissing(withLoc(f.loc, name)...))
		}
		return "", false
	}
	if isNull(raw) && !required {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		f.fail(name, msgString, "string_type")
		return "", false
	}
	return s, true
}

// object returns a JSON object field (compacted), or nil when absent/null.
func (f *fields) object(name string, required bool) json.RawMessage {
	raw, present := f.m[name]
	if !present {
		if required {
			f.errs = append(f.errs, errMissing(withLoc(f.loc, name)...))
		}
		return nil
	}
	if isNull(raw) && !required {
		return nil
	}
	if !isJSONObject(raw) {
		f.fail(name, msgDict, "dict_type")
		return nil
	}
	var buf bytes.Buffer
	_ = json.Compact(&buf, raw)
	return buf.Bytes()
}

func (f *fields) boolean(name string) (v, ok bool) {
	raw, present := f.m[name]
	if !present || isNull(raw) {
		return false, false
	}
	if json.Unmarshal(raw, &v) != nil {
		f.fail(name, msgBool, "bool_type")
		return false, false
	}
	return v, true
}

func (f *fields) stringList(name string, required bool) ([]string, bool) {
	raw, present := f.m[name]
	if !present {
		if required {
			f.errs = append(f.errs, errMissing(withLoc(f.loc, name)...))
		}
		return nil, false
	}
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil || isNull(raw) {
		f.fail(name, msgList, "list_type")
		return nil, false
	}
	out := make([]string, 0, len(items))
	for i, it := range items {
		var s string
		if json.Unmarshal(it, &s) != nil {
			f.errs = append(f.errs, validationError{Loc: withLoc(f.loc, name, i), Msg: msgString, Type: "string_type"})
			continue
		}
		out = append(out, s)
	}
	return out, true
}

func (f *fields) phone(name string) (string, bool) {
	s, ok := f.str(name, true)
	if ok && !isE164(s) {
		f.fail(name, e164Msg, "string_pattern_mismatch")
		return "", false
	}
	return s, ok
}

func isJSONObject(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return false
	}
	return json.Valid(raw)
}

var voiceProviders = []string{"elevenlabs", "openai", "cartesia", "playht", "deepgram", "rime", "neets", "openai_realtime", "dubverse", "orpheus", "sesame", "kokoro"}

// enumMsg renders pydantic's enum message: "Input should be 'a', 'b' or 'c'".
func enumMsg(values []string) string {
	q := make([]string, len(values))
	for i, v := range values {
		q[i] = "'" + v + "'"
	}
	return "Input should be " + strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// validateAgentConfig checks the AgentConfig fields the simulator relies
// on: prompt and voice (required when full), first_message, the two webhook
// settings and call_settings. Every other field passes through untouched,
// because the live API has fields the spec lacks and clients must be able to
// round-trip them.
func validateAgentConfig(raw json.RawMessage, loc []any, full bool) []validationError {
	var m map[string]json.RawMessage
	if !isJSONObject(raw) || json.Unmarshal(raw, &m) != nil {
		return []validationError{{Loc: loc, Msg: msgDict, Type: "dict_type"}}
	}
	f := &fields{m: m, loc: loc}
	f.str("prompt", full)
	f.str("first_message", false)
	if v := f.object("voice", full); v != nil {
		var vm map[string]json.RawMessage
		_ = json.Unmarshal(v, &vm)
		vf := &fields{m: vm, loc: withLoc(loc, "voice")}
		if p, ok := vf.str("provider", true); ok && !contains(voiceProviders, p) {
			vf.fail("provider", enumMsg(voiceProviders), "enum")
		}
		vf.str("voice_id", true)
		vf.str("model", false)
		f.errs = append(f.errs, vf.errs...)
	}
	for _, name := range []string{"extra_prompt_webhook", "session_data_webhook"} {
		raw, ok := m[name]
		if !ok || isNull(raw) {
			continue
		}
		if _, err := parseWebhookTarget(raw); err != nil {
			f.fail(name, err.Error(), "union_type")
		}
	}
	if cs := f.object("call_settings", false); cs != nil {
		var cm map[string]json.RawMessage
		_ = json.Unmarshal(cs, &cm)
		cf := &fields{m: cm, loc: withLoc(loc, "call_settings")}
		cf.boolean("enable_recording")
		f.errs = append(f.errs, cf.errs...)
	}
	return f.errs
}

// webhookTarget is the parsed form of extra_prompt_webhook and
// session_data_webhook: a URL string or {url, headers}.
type webhookTarget struct {
	URL     string
	Headers map[string]string
}

func parseWebhookTarget(raw json.RawMessage) (*webhookTarget, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s == "" {
			return nil, errors.New("Input should be a non-empty URL string or an object with a url")
		}
		return &webhookTarget{URL: s}, nil
	}
	var o struct {
		URL     *string           `json:"url"`
		Headers map[string]string `json:"headers"`
	}
	if err := json.Unmarshal(raw, &o); err != nil || o.URL == nil || *o.URL == "" {
		return nil, fmt.Errorf("Input should be a URL string or an object {url: string, headers?: {string: string}}")
	}
	return &webhookTarget{URL: *o.URL, Headers: o.Headers}, nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
