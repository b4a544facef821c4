package simulator

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
)

// configSnap is an immutable, parsed agent config. Agents and calls share
// snapshots by pointer: an agent update makes a new snapshot, and a call
// without overrides keeps pointing at the one it started with. That is both
// the semantics Millis needs (a call keeps the config it was placed with)
// and what keeps 100,000 stored calls small.
type configSnap struct {
	raw          json.RawMessage
	firstMessage string
	recording    bool
	ttsProvider  string
	prefetch     *webhookTarget
	endOfCall    *webhookTarget
}

func newConfigSnap(raw json.RawMessage) *configSnap {
	c := &configSnap{raw: raw}
	var v struct {
		FirstMessage *string                   `json:"first_message"`
		Voice        struct{ Provider string } `json:"voice"`
		CallSettings *struct {
			EnableRecording bool `json:"enable_recording"`
		} `json:"call_settings"`
		ExtraPromptWebhook json.RawMessage `json:"extra_prompt_webhook"`
		SessionDataWebhook json.RawMessage `json:"session_data_webhook"`
	}
	// Lenient on purpose: the config was validated when it was stored, and a
	// field of an unexpected type must not stop a call.
	_ = json.Unmarshal(raw, &v)
	if v.FirstMessage != nil {
		c.firstMessage = *v.FirstMessage
	}
	c.ttsProvider = v.Voice.Provider
	if c.ttsProvider == "" {
		c.ttsProvider = "elevenlabs"
	}
	c.recording = v.CallSettings != nil && v.CallSettings.EnableRecording
	if !isNull(v.ExtraPromptWebhook) {
		c.prefetch, _ = parseWebhookTarget(v.ExtraPromptWebhook)
	}
	if !isNull(v.SessionDataWebhook) {
		c.endOfCall, _ = parseWebhookTarget(v.SessionDataWebhook)
	}
	return c
}

// mergeConfig applies a PartialAgentConfig: each top-level key of override
// replaces the same key of base. A null in the override leaves the base
// value alone, the usual reading of "unset" in a partial pydantic model.
func mergeConfig(base, override json.RawMessage) json.RawMessage {
	if isNull(override) {
		return base
	}
	m := map[string]json.RawMessage{}
	_ = json.Unmarshal(base, &m)
	var o map[string]json.RawMessage
	_ = json.Unmarshal(override, &o)
	changed := false
	for k, v := range o {
		if isNull(v) {
			continue
		}
		m[k] = v
		changed = true
	}
	if !changed {
		return base
	}
	return marshalCompact(m)
}

// appendPrompt returns raw with extra appended to its prompt, separated by
// a newline.
func appendPrompt(raw json.RawMessage, extra string) json.RawMessage {
	m := map[string]json.RawMessage{}
	_ = json.Unmarshal(raw, &m)
	var prompt string
	_ = json.Unmarshal(m["prompt"], &prompt)
	if prompt != "" {
		prompt += "\n"
	}
	m["prompt"] = marshalCompact(prompt + extra)
	return marshalCompact(m)
}

func marshalCompact(v any) json.RawMessage {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func compactJSON(raw json.RawMessage) json.RawMessage {
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return raw
	}
	return buf.Bytes()
}

type agent struct {
	id        string
	name      string
	createdAt int64 // epoch seconds
	cfg       *configSnap
}

type agentJSON struct {
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Config    json.RawMessage `json:"config"`
	CreatedAt int64           `json:"created_at"`
}

func (a *agent) json() agentJSON {
	return agentJSON{ID: a.id, Name: a.name, Config: a.cfg.raw, CreatedAt: a.createdAt}
}

// addAgentLocked stores a new agent. s.mu must be held.
func (s *Server) addAgentLocked(id, name string, cfg json.RawMessage) *agent {
	if id == "" {
		id = s.newPushIDLocked()
	}
	a := &agent{id: id, name: name, createdAt: s.clock.Now().Unix(), cfg: newConfigSnap(compactJSON(cfg))}
	s.agents[id] = a
	s.agentOrder = append(s.agentOrder, id)
	return a
}

func (s *Server) handleListAgents(w http.ResponseWriter, r *http.Request, _ []string) {
	s.mu.Lock()
	out := make([]agentJSON, 0, len(s.agentOrder))
	for _, id := range s.agentOrder {
		out = append(out, s.agents[id].json())
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleGetAgent(w http.ResponseWriter, r *http.Request, p []string) {
	s.mu.Lock()
	a, ok := s.agents[p[0]]
	var out agentJSON
	if ok {
		out = a.json()
	}
	s.mu.Unlock()
	if !ok {
		writeNotFound(w)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// decodeAgentBody validates {name, config}; full says whether config is a
// full AgentConfig (create) or a PartialAgentConfig (update).
func decodeAgentBody(r *http.Request, full bool) (string, json.RawMessage, []validationError) {
	body, err := readBody(r)
	if err != nil {
		return "", nil, []validationError{{Loc: []any{"body", 0}, Msg: "JSON decode error", Type: "json_invalid"}}
	}
	m, errs := decodeObject(body, true)
	if errs != nil {
		return "", nil, errs
	}
	f := &fields{m: m, loc: []any{"body"}}
	name, _ := f.str("name", true)
	cfg := f.object("config", true)
	if cfg != nil {
		f.errs = append(f.errs, validateAgentConfig(cfg, []any{"body", "config"}, full)...)
	}
	return name, cfg, f.errs
}

func (s *Server) handleCreateAgent(w http.ResponseWriter, r *http.Request, _ []string) {
	name, cfg, errs := decodeAgentBody(r, true)
	if len(errs) > 0 {
		writeValidation(w, errs)
		return
	}
	// The spec documents a 400 for create without saying when; an empty
	// name is the one case that is plainly a domain error.
	if name == "" {
		writeDetail(w, http.StatusBadRequest, "Agent name must not be empty")
		return
	}
	s.mu.Lock()
	a := s.addAgentLocked("", name, cfg)
	out := a.json()
	s.mu.Unlock()
	s.log.Info("agent created", "agent_id", out.ID)
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleUpdateAgent(w http.ResponseWriter, r *http.Request, p []string) {
	name, cfg, errs := decodeAgentBody(r, false)
	if len(errs) > 0 {
		writeValidation(w, errs)
		return
	}
	s.mu.Lock()
	a, ok := s.agents[p[0]]
	if ok {
		a.name = name
		a.cfg = newConfigSnap(mergeConfig(a.cfg.raw, cfg))
	}
	s.mu.Unlock()
	if !ok {
		writeNotFound(w)
		return
	}
	writeSuccess(w)
}

func (s *Server) handleDeleteAgent(w http.ResponseWriter, r *http.Request, p []string) {
	s.mu.Lock()
	_, ok := s.agents[p[0]]
	if ok {
		delete(s.agents, p[0])
		s.agentOrder = slices.DeleteFunc(s.agentOrder, func(id string) bool { return id == p[0] })
		// A phone must not point at an agent that no longer exists; the
		// docs are silent, so unbinding is the least surprising choice.
		for _, ph := range s.phones {
			if ph.agentID == p[0] {
				ph.agentID = ""
			}
		}
	}
	s.mu.Unlock()
	if !ok {
		writeNotFound(w)
		return
	}
	writeSuccess(w)
}

func (s *Server) handleDuplicateAgent(w http.ResponseWriter, r *http.Request, p []string) {
	s.mu.Lock()
	src, ok := s.agents[p[0]]
	var out agentJSON
	if ok {
		a := s.addAgentLocked("", src.name+" (copy)", src.cfg.raw)
		out = a.json()
	}
	s.mu.Unlock()
	if !ok {
		writeNotFound(w)
		return
	}
	writeJSON(w, http.StatusOK, out)
}
