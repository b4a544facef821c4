package simulator

import (
	"encoding/json"
	"net/http"
	"slices"
)

// phone is a Millis-owned number. Only numbers in Config.Phones exist;
// import and purchase are not simulated.
type phone struct {
	id       string
	createAt float64 // epoch seconds, float, as Millis sends it
	agentID  string  // "" means no agent bound
	override json.RawMessage
	tags     []string
}

// phoneJSON is the Phone schema. The field really is "create_at".
type phoneJSON struct {
	ID                  string          `json:"id"`
	AgentID             *string         `json:"agent_id"`
	CreateAt            float64         `json:"create_at"`
	Status              string          `json:"status"`
	AgentConfigOverride json.RawMessage `json:"agent_config_override"`
	Tags                []string        `json:"tags"`
}

func (p *phone) json() phoneJSON {
	out := phoneJSON{ID: p.id, CreateAt: p.createAt, Status: "active", Tags: p.tags}
	if p.agentID != "" {
		id := p.agentID
		out.AgentID = &id
	}
	if p.override != nil {
		out.AgentConfigOverride = p.override
	} else {
		out.AgentConfigOverride = json.RawMessage("null")
	}
	return out
}

func (s *Server) handleListPhones(w http.ResponseWriter, r *http.Request, _ []string) {
	s.mu.Lock()
	out := make([]phoneJSON, 0, len(s.phoneOrder))
	for _, id := range s.phoneOrder {
		out = append(out, s.phones[id].json())
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleGetPhone(w http.ResponseWriter, r *http.Request, p []string) {
	s.mu.Lock()
	ph, ok := s.phones[p[0]]
	var out phoneJSON
	if ok {
		out = ph.json()
	}
	s.mu.Unlock()
	if !ok {
		writeNotFound(w)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleDeletePhone(w http.ResponseWriter, r *http.Request, p []string) {
	s.mu.Lock()
	_, ok := s.phones[p[0]]
	if ok {
		delete(s.phones, p[0])
		s.phoneOrder = slices.DeleteFunc(s.phoneOrder, func(id string) bool { return id == p[0] })
	}
	s.mu.Unlock()
	if !ok {
		writeNotFound(w)
		return
	}
	writeSuccess(w)
}

// readObjectBody reads and decodes a required JSON object body, writing the
// 422 itself when that fails.
func readObjectBody(w http.ResponseWriter, r *http.Request) (map[string]json.RawMessage, bool) {
	body, err := readBody(r)
	if err != nil {
		writeValidation(w, []validationError{{Loc: []any{"body", 0}, Msg: "JSON decode error", Type: "json_invalid"}})
		return nil, false
	}
	m, errs := decodeObject(body, true)
	if errs != nil {
		writeValidation(w, errs)
		return nil, false
	}
	return m, true
}

// handleSetPhoneAgent binds an agent; {"agent_id": null} (or no agent_id)
// unbinds it.
func (s *Server) handleSetPhoneAgent(w http.ResponseWriter, r *http.Request, p []string) {
	m, ok := readObjectBody(w, r)
	if !ok {
		return
	}
	f := &fields{m: m, loc: []any{"body"}}
	agentID, _ := f.str("agent_id", false)
	if len(f.errs) > 0 {
		writeValidation(w, f.errs)
		return
	}
	s.mu.Lock()
	ph, phoneOK := s.phones[p[0]]
	_, agentOK := s.agents[agentID]
	if phoneOK && (agentID == "" || agentOK) {
		ph.agentID = agentID
	}
	s.mu.Unlock()
	if !phoneOK || (agentID != "" && !agentOK) {
		writeNotFound(w)
		return
	}
	writeSuccess(w)
}

// handleSetPhoneOverride replaces the phone's agent_config_override with the
// PartialAgentConfig in the body.
func (s *Server) handleSetPhoneOverride(w http.ResponseWriter, r *http.Request, p []string) {
	m, ok := readObjectBody(w, r)
	if !ok {
		return
	}
	raw := marshalCompact(m)
	if errs := validateAgentConfig(raw, []any{"body"}, false); len(errs) > 0 {
		writeValidation(w, errs)
		return
	}
	s.mu.Lock()
	ph, found := s.phones[p[0]]
	if found {
		ph.override = raw
	}
	s.mu.Unlock()
	if !found {
		writeNotFound(w)
		return
	}
	writeSuccess(w)
}

// handleSetPhoneTags replaces all tags.
func (s *Server) handleSetPhoneTags(w http.ResponseWriter, r *http.Request, p []string) {
	m, ok := readObjectBody(w, r)
	if !ok {
		return
	}
	f := &fields{m: m, loc: []any{"body"}}
	tags, _ := f.stringList("tags", true)
	if len(f.errs) > 0 {
		writeValidation(w, f.errs)
		return
	}
	s.mu.Lock()
	ph, found := s.phones[p[0]]
	if found {
		ph.tags = tags
	}
	s.mu.Unlock()
	if !found {
		writeNotFound(w)
		return
	}
	writeSuccess(w)
}
