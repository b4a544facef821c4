// Package template renders Millis's {name} variables.
//
// Millis substitutes {name} in prompts, first messages and other agent
// messages from the session metadata and the built-ins FromPhone and ToPhone.
// It does not document what happens to a variable it cannot resolve, so the
// operator renders and checks everything it can before dialing: a customer
// must never hear a literal "{userName}".
//
// A variable is '{', a name, '}'. A name starts with a letter or '_' and
// continues with letters, digits, '_', '.' or '-'. Anything else in braces,
// such as JSON examples in a prompt ({"a": 1}), is plain text.
package template

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
)

// Built-in variables Millis fills for phone calls.
const (
	VarFromPhone = "FromPhone"
	VarToPhone   = "ToPhone"
)

var varPattern = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_.\-]*)\}`)

// Variables returns the distinct variable names used in s, sorted.
func Variables(s string) []string {
	seen := map[string]struct{}{}
	for _, m := range varPattern.FindAllStringSubmatch(s, -1) {
		seen[m[1]] = struct{}{}
	}
	return sortedKeys(seen)
}

// Render replaces every variable found in vars and returns the names of the
// ones it could not resolve (left in place), sorted and distinct.
func Render(s string, vars map[string]string) (string, []string) {
	missing := map[string]struct{}{}
	out := varPattern.ReplaceAllStringFunc(s, func(m string) string {
		name := m[1 : len(m)-1]
		if v, ok := vars[name]; ok {
			return v
		}
		missing[name] = struct{}{}
		return m
	})
	return out, sortedKeys(missing)
}

// Vars builds the variable set of a call: every top-level metadata value
// (strings as-is, numbers and booleans as their JSON text, objects and
// arrays as compact JSON) plus FromPhone and ToPhone. Metadata keys win over
// the built-ins only if they are set explicitly, as in Millis.
func Vars(metadata map[string]json.RawMessage, fromPhone, toPhone string) map[string]string {
	vars := map[string]string{VarFromPhone: fromPhone, VarToPhone: toPhone}
	for k, raw := range metadata {
		vars[k] = scalarText(raw)
	}
	return vars
}

func scalarText(raw json.RawMessage) string {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s
	}
	var v any
	if err := json.Unmarshal(raw, &v); err == nil {
		if f, ok := v.(float64); ok {
			return strconv.FormatFloat(f, 'f', -1, 64)
		}
		b, _ := json.Marshal(v)
		return string(b)
	}
	return string(raw)
}

// RenderJSON renders every string value (not key) inside a JSON document and
// returns the result with the distinct unresolved variable names. Numbers
// keep their exact text.
func RenderJSON(raw json.RawMessage, vars map[string]string) (json.RawMessage, []string, error) {
	if len(raw) == 0 {
		return raw, nil, nil
	}
	v, err := decode(raw)
	if err != nil {
		return nil, nil, err
	}
	missing := map[string]struct{}{}
	v = walk(v, func(s string) string {
		out, miss := Render(s, vars)
		for _, m := range miss {
			missing[m] = struct{}{}
		}
		return out
	})
	out, err := json.Marshal(v)
	if err != nil {
		return nil, nil, fmt.Errorf("encode rendered JSON: %w", err)
	}
	return out, sortedKeys(missing), nil
}

// SpokenVariables lists the variables used in the parts of a Millis agent
// config that are spoken or shape what is spoken: prompt, first_message,
// and every string under flow and session_timeout.
func SpokenVariables(agentConfig json.RawMessage) ([]string, error) {
	if len(agentConfig) == 0 {
		return nil, nil
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(agentConfig, &cfg); err != nil {
		return nil, fmt.Errorf("decode agent config: %w", err)
	}
	seen := map[string]struct{}{}
	for _, key := range []string{"prompt", "first_message", "flow", "session_timeout"} {
		raw, ok := cfg[key]
		if !ok {
			continue
		}
		v, err := decode(raw)
		if err != nil {
			return nil, fmt.Errorf("decode agent config %s: %w", key, err)
		}
		walk(v, func(s string) string {
			for _, name := range Variables(s) {
				seen[name] = struct{}{}
			}
			return s
		})
	}
	return sortedKeys(seen), nil
}

func decode(raw json.RawMessage) (any, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("decode JSON: %w", err)
	}
	return v, nil
}

// walk applies f to every string value, depth first, and returns the new tree.
func walk(v any, f func(string) string) any {
	switch t := v.(type) {
	case string:
		return f(t)
	case map[string]any:
		for k, child := range t {
			t[k] = walk(child, f)
		}
		return t
	case []any:
		for i, child := range t {
			t[i] = walk(child, f)
		}
		return t
	default:
		return v
	}
}

func sortedKeys(m map[string]struct{}) []string {
	if len(m) == 0 {
		return nil
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
