package millis

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// callHistoryWire has CallHistory's fields but not its methods, so that the
// custom (un)marshalers below can use encoding/json without recursing.
type callHistoryWire CallHistory

// callHistoryFields are the JSON keys CallHistory models; every other key
// goes to Extra. Derived from the struct tags so a new field cannot be
// forgotten here.
var callHistoryFields = jsonFieldNames(reflect.TypeFor[CallHistory]())

// UnmarshalJSON decodes a call log or end-of-call webhook body. It keeps
// unknown fields in Extra (Millis adds fields without notice) and accepts
// chars_used as an integer or a float such as 12.0.
func (h *CallHistory) UnmarshalJSON(data []byte) error {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		return fmt.Errorf("call history: %w", err)
	}
	if all == nil { // JSON null: leave h alone, as encoding/json does
		return nil
	}

	*h = CallHistory{}
	aux := struct {
		*callHistoryWire
		// Shadows the embedded int64 field so that floats are accepted.
		CharsUsed flexInt64 `json:"chars_used"`
	}{callHistoryWire: (*callHistoryWire)(h)}
	if err := json.Unmarshal(data, &aux); err != nil {
		return fmt.Errorf("call history: %w", err)
	}
	h.CharsUsed = int64(aux.CharsUsed)

	for key, value := range all {
		if callHistoryFields[key] {
			continue
		}
		if h.Extra == nil {
			h.Extra = make(map[string]json.RawMessage)
		}
		h.Extra[key] = value
	}
	return nil
}

// MarshalJSON encodes the modelled fields followed by Extra (in key order).
// A key in Extra that is also a modelled field is skipped: the typed field
// is the one callers edit, so it wins.
func (h CallHistory) MarshalJSON() ([]byte, error) {
	known, err := json.Marshal(callHistoryWire(h))
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(h.Extra))
	for key := range h.Extra {
		if !callHistoryFields[key] {
			keys = append(keys, key)
		}
	}
	if len(keys) == 0 {
		return known, nil
	}
	sort.Strings(keys)

	var buf bytes.Buffer
	buf.Write(known[:len(known)-1]) // drop the closing brace
	for i, key := range keys {
		if i > 0 || len(known) > 2 { // known is "{}" when every field is empty
			buf.WriteByte(',')
		}
		name, _ := json.Marshal(key) // a string always encodes
		buf.Write(name)
		buf.WriteByte(':')
		if err := json.Compact(&buf, h.Extra[key]); err != nil {
			return nil, fmt.Errorf("call history: extra field %q: %w", key, err)
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// jsonFieldNames returns the JSON keys of t's exported, non-ignored fields.
func jsonFieldNames(t reflect.Type) map[string]bool {
	names := make(map[string]bool, t.NumField())
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		names[name] = true
	}
	return names
}

// flexInt64 decodes a JSON number that should be an integer but may have
// been serialised as a float (Python often emits 12.0). Fractions are
// rounded; null leaves the value unchanged.
type flexInt64 int64

func (n *flexInt64) UnmarshalJSON(data []byte) error {
	text := strings.TrimSpace(string(data))
	if text == "null" {
		return nil
	}
	if i, err := strconv.ParseInt(text, 10, 64); err == nil {
		*n = flexInt64(i)
		return nil
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return fmt.Errorf("want a number, got %.40s", text)
	}
	f = math.Round(f)
	if f < math.MinInt64 || f >= math.MaxInt64 {
		return fmt.Errorf("number %s out of int64 range", text)
	}
	*n = flexInt64(f)
	return nil
}

// UnmarshalJSON accepts every transcript shape Millis has documented:
//
//   - a string holding a JSON array of {role, content} (current docs),
//   - the array itself (docs before Dec 2024),
//   - null, "" or "null" (no transcript).
//
// A string that is not a JSON array, or any other JSON value, becomes one
// message with role "unknown" instead of an error: a malformed transcript
// must not stop the operator from reading a call's status.
//
// Chat has no MarshalJSON on purpose: the default encoding is the array.
func (c *Chat) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	switch {
	case string(data) == "null":
		*c = nil
		return nil
	case len(data) > 0 && data[0] == '"':
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return fmt.Errorf("chat: %w", err)
		}
		*c = parseChatString(s)
		return nil
	case len(data) > 0 && data[0] == '[':
		msgs, err := parseChatArray(data)
		if err != nil {
			return fmt.Errorf("chat: %w", err)
		}
		*c = msgs
		return nil
	default:
		*c = Chat{{Role: "unknown", Content: compactJSON(data)}}
		return nil
	}
}

// parseChatString decodes the JSON-in-a-string form.
func parseChatString(s string) Chat {
	trimmed := strings.TrimSpace(s)
	if trimmed == "" || trimmed == "null" {
		return nil
	}
	if strings.HasPrefix(trimmed, "[") {
		if msgs, err := parseChatArray([]byte(trimmed)); err == nil {
			return msgs
		}
	}
	return Chat{{Role: "unknown", Content: s}}
}

// parseChatArray decodes an array of messages. It fails only if data is not
// a JSON array; odd elements are kept as best it can.
func parseChatArray(data []byte) (Chat, error) {
	var elems []json.RawMessage
	if err := json.Unmarshal(data, &elems); err != nil {
		return nil, err
	}
	if len(elems) == 0 {
		return nil, nil
	}
	msgs := make(Chat, 0, len(elems))
	for _, elem := range elems {
		msgs = append(msgs, parseChatMessage(elem))
	}
	return msgs, nil
}

// parseChatMessage decodes one {role, content}. Content that is not a string
// (null, or an object on tool turns) is kept as its JSON text; an element
// that is not an object becomes an "unknown" message.
func parseChatMessage(elem json.RawMessage) ChatMessage {
	var wire struct {
		Role    json.RawMessage `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	trimmed := bytes.TrimSpace(elem)
	if len(trimmed) == 0 || trimmed[0] != '{' || json.Unmarshal(trimmed, &wire) != nil {
		return ChatMessage{Role: "unknown", Content: jsonText(elem)}
	}
	return ChatMessage{Role: jsonText(wire.Role), Content: jsonText(wire.Content)}
}

// jsonText returns a JSON string's value, "" for an absent value, and the
// compact JSON text of anything else.
func jsonText(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return ""
	}
	// Check the type first: null would unmarshal into a string as "".
	var s string
	if raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
		return s
	}
	return compactJSON(raw)
}

// compactJSON returns raw without insignificant whitespace, or raw as is if
// it does not parse (it always does when it came through encoding/json).
func compactJSON(raw []byte) string {
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return string(raw)
	}
	return buf.String()
}
