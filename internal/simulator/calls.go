package simulator

import (
	"encoding/json"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// Call statuses, in the order of the Millis CallStatus enum. Calls store the
// index (one byte) instead of the string.
var callStatuses = []string{
	"registered", "queued", "dispatching", "provider_queued", "initiated", "ringing", "in-progress",
	"user-ended", "agent-ended", "api-ended", "voicemail-hangup", "voicemail-message", "timeout",
	"canceled", "busy", "no-answer", "failed", "error", "unknown", "chat_completion",
}

const (
	stRegistered uint8 = iota
	stQueued
	stDispatching
	stProviderQueued
	stInitiated
	stRinging
	stInProgress
	stUserEnded
	stAgentEnded
	stAPIEnded
	stVoicemailHangup
	stVoicemailMessage
	stTimeout
	stCanceled
	stBusy
	stNoAnswer
	stFailed
	stError
	stUnknown
	stChatCompletion
)

func statusCode(name string) uint8 {
	for i, n := range callStatuses {
		if n == name {
			return uint8(i)
		}
	}
	return stUnknown
}

// isTerminal: every status after in-progress in the enum is final.
func isTerminal(st uint8) bool { return st > stInProgress }

// notConnected are the outcomes that end from ringing, without a
// conversation.
func notConnected(st uint8) bool {
	switch st {
	case stCanceled, stBusy, stNoAnswer, stFailed, stError:
		return true
	}
	return false
}

// validOutcome accepts the final statuses plus "in-progress", which means
// "stays in-progress until terminated or MaxCallTime".
func validOutcome(name string) bool {
	for i, n := range callStatuses {
		if n == name {
			return uint8(i) >= stInProgress
		}
	}
	return false
}

// outcomeFor picks the final status for a destination: Config.Outcomes for
// the exact number, else the last two digits (see README.md).
func (s *Server) outcomeFor(to string) uint8 {
	if st, ok := s.outcomes[to]; ok {
		return st
	}
	switch to[len(to)-2:] {
	case "91":
		return stBusy
	case "92":
		return stNoAnswer
	case "93":
		return stFailed
	case "94":
		return stVoicemailHangup
	case "95":
		return stError
	case "96":
		return stTimeout
	case "97":
		return stAgentEnded
	case "98":
		return stInProgress
	case "99":
		return stCanceled
	}
	return stUserEnded
}

// call is one session. It is kept small because the simulator must hold
// 100,000 of them: statuses are bytes, times are int64 nanoseconds of the
// simulator clock, the config is a shared snapshot, and everything derived
// (chat, costs, recording URL) is computed when rendered.
type call struct {
	sessionID  string
	callID     string
	from       string // shares the phone's string
	to         string
	agentID    string // "" for a temporary agent built from agent_config
	cfg        *configSnap
	reqMeta    json.RawMessage // metadata as the client sent it
	meta       json.RawMessage // final metadata, after the prefetch merge
	endMessage string          // terminate's optional message

	ts         int64 // µs since the epoch; unique, the call-log key
	placedAt   int64 // ns, clock time of registration
	nextAt     int64 // ns, time of the one pending event; 0 if none
	answeredAt int64 // ns, when it was answered (before any prefetch)
	endedAt    int64 // ns
	durationMs int64 // simulated talk time

	epoch       uint32
	httpStatus  uint16 // what start_outbound_call answered: 200, or 500
	status      uint8
	outcome     uint8
	includeMeta bool
	prefetching bool // answered, waiting for the prefetch webhook
	answered    bool // reached in-progress
}

func (s *Server) handleStartOutboundCall(w http.ResponseWriter, r *http.Request, _ []string) {
	m, ok := readObjectBody(w, r)
	if !ok {
		return
	}
	f := &fields{m: m, loc: []any{"body"}}
	from, _ := f.phone("from_phone")
	to, _ := f.phone("to_phone")
	agentID, _ := f.str("agent_id", false)
	override := f.object("agent_config", false)
	if override != nil {
		f.errs = append(f.errs, validateAgentConfig(override, []any{"body", "agent_config"}, false)...)
	}
	meta := f.object("metadata", false)
	includeMeta, _ := f.boolean("include_metadata_in_prompt")
	// session_continuation is accepted and ignored: the simulator keeps no
	// conversation memory.
	f.object("session_continuation", false)
	if len(f.errs) > 0 {
		writeValidation(w, f.errs)
		return
	}

	s.mu.Lock()
	ph, ok := s.phones[from]
	if !ok {
		s.mu.Unlock()
		writeDetail(w, http.StatusBadRequest, "Phone number "+from+" not found")
		return
	}
	var base *configSnap
	usesPhoneAgent := false
	switch {
	case agentID != "":
		a, ok := s.agents[agentID]
		if !ok {
			s.mu.Unlock()
			writeNotFound(w)
			return
		}
		base, usesPhoneAgent = a.cfg, agentID == ph.agentID
	case ph.agentID != "":
		agentID, base, usesPhoneAgent = ph.agentID, s.agents[ph.agentID].cfg, true
	case override != nil && len(validateAgentConfig(override, nil, true)) == 0:
		// agent_config alone builds a temporary agent, as the Web SDK and
		// SIP pages describe.
		base = &configSnap{raw: json.RawMessage("{}")}
	default:
		s.mu.Unlock()
		writeDetail(w, http.StatusBadRequest, "No agent is assigned to phone number "+from+"; pass agent_id or a full agent_config")
		return
	}
	// Effective config: stored agent <- phone override (when the phone's own
	// agent is used) <- the call's agent_config. Without overrides the call
	// shares the agent's snapshot.
	cfg := base
	if phoneOverride := usesPhoneAgent && ph.override != nil; phoneOverride || override != nil {
		raw := base.raw
		if phoneOverride {
			raw = mergeConfig(raw, ph.override)
		}
		cfg = newConfigSnap(mergeConfig(raw, override))
	}

	now := s.clock.Now()
	ts := max(now.UnixMicro(), s.lastTS+1)
	s.lastTS = ts
	c := &call{
		sessionID:   s.newPushIDLocked(),
		callID:      s.newCallIDLocked(),
		from:        ph.id,
		to:          to,
		agentID:     agentID,
		cfg:         cfg,
		reqMeta:     meta,
		meta:        meta,
		ts:          ts,
		placedAt:    now.UnixNano(),
		epoch:       s.epoch,
		httpStatus:  http.StatusOK,
		status:      stRegistered,
		outcome:     s.outcomeFor(to),
		includeMeta: includeMeta,
	}
	s.calls = append(s.calls, c)
	s.byID[c.sessionID] = c
	s.live++
	s.peakLive = max(s.peakLive, s.live)
	s.scheduleLocked(c, c.placedAt+s.scaled(s.cfg.StageTime))
	createThen500 := s.takeCreateThen500Locked()
	if createThen500 {
		c.httpStatus = http.StatusInternalServerError
	}
	resp := struct {
		CallID    string `json:"call_id"`
		SessionID string `json:"session_id"`
	}{c.callID, c.sessionID}
	s.mu.Unlock()

	s.log.Debug("call placed", "session_id", c.sessionID, "from", maskPhone(from), "to", maskPhone(to), "outcome", callStatuses[c.outcome])
	if createThen500 {
		writeDetail(w, http.StatusInternalServerError, "Internal Server Error")
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// Wire shapes of CallHistory and the end-of-call webhook body.
type costItem struct {
	Type     string  `json:"type"`
	Provider string  `json:"provider"`
	Credit   float64 `json:"credit"`
}

type voipJSON struct {
	Provider string `json:"provider"`
	From     string `json:"from"`
	To       string `json:"to"`
}

type recordingJSON struct {
	RecordingURL string `json:"recording_url"`
}

type callHistoryJSON struct {
	AgentID       *string           `json:"agent_id"`
	AgentConfig   json.RawMessage   `json:"agent_config"`
	Duration      float64           `json:"duration"`
	TS            float64           `json:"ts"`
	Chat          string            `json:"chat"`
	CharsUsed     int64             `json:"chars_used"`
	SessionID     string            `json:"session_id"`
	CallID        string            `json:"call_id"`
	CostBreakdown []costItem        `json:"cost_breakdown"`
	VoIP          voipJSON          `json:"voip"`
	Recording     *recordingJSON    `json:"recording"`
	Metadata      json.RawMessage   `json:"metadata"`
	FunctionCalls []json.RawMessage `json:"function_calls"`
	CallStatus    string            `json:"call_status"`
}

type webhookBody struct {
	callHistoryJSON
	ErrorMessage *string `json:"error_message"`
}

// Per-minute rates for cost_breakdown. The base rate is Millis' published
// $0.02/min; the others are plausible, fixed values.
var costRates = []struct {
	typ, provider string // provider "" means the voice provider
	perMinute     float64
}{
	{"stt", "deepgram", 0.006},
	{"tts", "", 0.03},
	{"llm", "openai", 0.01},
	{"base", "millis", 0.02},
}

func round6(f float64) float64 { return math.Round(f*1e6) / 1e6 }

func costBreakdown(durationSec float64, ttsProvider string) []costItem {
	out := make([]costItem, len(costRates))
	for i, r := range costRates {
		p := r.provider
		if p == "" {
			p = ttsProvider
		}
		out[i] = costItem{Type: r.typ, Provider: p, Credit: round6(r.perMinute * durationSec / 60)}
	}
	return out
}

func totalCost(durationSec float64) float64 {
	var t float64
	for _, r := range costRates {
		t += round6(r.perMinute * durationSec / 60)
	}
	return t
}

// charsPerSecond turns talk time into chars_used (TTS characters).
const charsPerSecond = 12

// render builds the CallHistory of a snapshot of c; it must not be called
// on a live *call without holding s.mu.
func (s *Server) render(c *call) callHistoryJSON {
	h := callHistoryJSON{
		AgentConfig:   c.cfg.raw,
		TS:            float64(c.ts) / 1e6,
		SessionID:     c.sessionID,
		CallID:        c.callID,
		CostBreakdown: []costItem{},
		VoIP:          voipJSON{Provider: "twilio", From: c.from, To: c.to},
		Metadata:      c.meta,
		FunctionCalls: []json.RawMessage{},
		CallStatus:    callStatuses[c.status],
	}
	if c.agentID != "" {
		id := c.agentID
		h.AgentID = &id
	}
	if isTerminal(c.status) {
		h.Duration = float64(c.durationMs) / 1000
		h.CharsUsed = int64(math.Round(h.Duration * charsPerSecond))
		h.CostBreakdown = costBreakdown(h.Duration, c.cfg.ttsProvider)
		if c.cfg.recording && c.answered {
			h.Recording = &recordingJSON{RecordingURL: s.cfg.RecordingBaseURL + "/" + c.sessionID + ".mp3"}
		}
	}
	h.Chat = string(marshalCompact(buildChat(c)))
	return h
}

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// buildChat returns the canned transcript: the rendered first_message, then
// an exchange that depends on how the call ended.
func buildChat(c *call) []chatMessage {
	if !c.answered {
		return []chatMessage{}
	}
	first := c.cfg.firstMessage
	if first == "" {
		first = "Hello! How can I help you today?"
	}
	msgs := []chatMessage{{"assistant", renderVars(first, c)}}
	switch c.status {
	case stInProgress:
	case stVoicemailHangup, stVoicemailMessage:
		msgs = append(msgs, chatMessage{"user", "Hi, you have reached my voicemail. Please leave a message after the tone."})
		if c.status == stVoicemailMessage {
			msgs = append(msgs, chatMessage{"assistant", "Sorry we missed you. We will call again later. Goodbye!"})
		}
	case stAPIEnded:
		msgs = append(msgs, chatMessage{"user", "Hi, yes, I have a minute."})
	default:
		msgs = append(msgs,
			chatMessage{"user", "Hi, yes, I have a minute."},
			chatMessage{"assistant", "Great, thank you. This is a simulated conversation."},
		)
		if c.status == stAgentEnded {
			msgs = append(msgs, chatMessage{"assistant", "Thank you for your time. Goodbye!"})
		} else {
			msgs = append(msgs, chatMessage{"user", "Okay, thanks. Bye."})
		}
	}
	if c.endMessage != "" {
		msgs = append(msgs, chatMessage{"assistant", c.endMessage})
	}
	return msgs
}

// flattenValue renders a JSON value as text for variables and query
// strings: strings as-is, null as "", anything else as compact JSON.
func flattenValue(raw json.RawMessage) string {
	if isNull(raw) {
		return ""
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	}
	return string(compactJSON(raw))
}

// renderVars replaces {name} with the built-ins FromPhone and ToPhone, then
// metadata keys. Unknown placeholders are left verbatim, as the reference
// recommends.
func renderVars(tmpl string, c *call) string {
	if !strings.Contains(tmpl, "{") {
		return tmpl
	}
	var meta map[string]json.RawMessage
	_ = json.Unmarshal(c.meta, &meta)
	var b strings.Builder
	for {
		i := strings.IndexByte(tmpl, '{')
		if i < 0 {
			break
		}
		j := strings.IndexAny(tmpl[i+1:], "{}")
		if j < 0 {
			break
		}
		j += i + 1
		if tmpl[j] == '{' { // "{a{b}": the inner brace starts the candidate
			b.WriteString(tmpl[:j])
			tmpl = tmpl[j:]
			continue
		}
		name := tmpl[i+1 : j]
		val, ok := "", false
		switch {
		case name == "FromPhone":
			val, ok = c.from, true
		case name == "ToPhone":
			val, ok = c.to, true
		default:
			if raw, found := meta[name]; found && name != "" {
				val, ok = flattenValue(raw), true
			}
		}
		b.WriteString(tmpl[:i])
		if ok {
			b.WriteString(val)
		} else {
			b.WriteString(tmpl[i : j+1])
		}
		tmpl = tmpl[j+1:]
	}
	b.WriteString(tmpl)
	return b.String()
}

func (s *Server) handleGetCallLog(w http.ResponseWriter, r *http.Request, p []string) {
	s.mu.Lock()
	c, ok := s.byID[p[0]]
	var snap call
	if ok {
		snap = *c
	}
	s.mu.Unlock()
	if !ok {
		writeNotFound(w)
		return
	}
	writeJSON(w, http.StatusOK, s.render(&snap))
}

// queryFloat parses an optional float query parameter, FastAPI style.
func queryFloat(q map[string][]string, name string, errs *[]validationError) (float64, bool) {
	v, ok := q[name]
	if !ok || len(v) == 0 {
		return 0, false
	}
	f, err := strconv.ParseFloat(v[0], 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		*errs = append(*errs, validationError{Loc: []any{"query", name}, Msg: "Input should be a valid number, unable to parse string as a number", Type: "float_parsing"})
		return 0, false
	}
	return f, true
}

func toMicros(f float64) int64 { return int64(math.Round(f * 1e6)) }

func (s *Server) handleListCallLogs(w http.ResponseWriter, r *http.Request, _ []string) {
	q := r.URL.Query()
	var errs []validationError
	limit := 20
	if v, ok := q["limit"]; ok && len(v) > 0 {
		n, err := strconv.Atoi(v[0])
		switch {
		case err != nil:
			errs = append(errs, validationError{Loc: []any{"query", "limit"}, Msg: "Input should be a valid integer, unable to parse string as an integer", Type: "int_parsing"})
		case n <= 0:
			errs = append(errs, validationError{Loc: []any{"query", "limit"}, Msg: "Input should be greater than 0", Type: "greater_than"})
		case n > 100:
			errs = append(errs, validationError{Loc: []any{"query", "limit"}, Msg: "Input should be less than or equal to 100", Type: "less_than_equal"})
		default:
			limit = n
		}
	}
	cursor, hasCursor := queryFloat(q, "start_after_ts", &errs)
	startTime, hasStart := queryFloat(q, "start_time", &errs)
	endTime, hasEnd := queryFloat(q, "end_time", &errs)
	if len(errs) > 0 {
		writeValidation(w, errs)
		return
	}
	agentID, status, phoneNum := q.Get("agent_id"), q.Get("call_status"), q.Get("phone_number")
	match := func(c *call) bool {
		return (agentID == "" || c.agentID == agentID) &&
			(status == "" || strings.EqualFold(callStatuses[c.status], status)) &&
			(phoneNum == "" || c.from == phoneNum || c.to == phoneNum)
	}

	s.mu.Lock()
	// Walk newest first from the highest index allowed by the cursor and
	// end_time, stopping below start_time.
	hi := len(s.calls)
	if hasCursor {
		cur := toMicros(cursor)
		hi = sort.Search(len(s.calls), func(i int) bool { return s.calls[i].ts >= cur })
	}
	if hasEnd {
		end := toMicros(endTime)
		hi = min(hi, sort.Search(len(s.calls), func(i int) bool { return s.calls[i].ts > end }))
	}
	var lo int64 = math.MinInt64
	if hasStart {
		lo = toMicros(startTime)
	}
	page := make([]call, 0, min(limit, hi))
	more := false
	for i := hi - 1; i >= 0 && s.calls[i].ts >= lo; i-- {
		c := s.calls[i]
		if !match(c) {
			continue
		}
		if len(page) == limit {
			more = true
			break
		}
		page = append(page, *c)
	}
	s.mu.Unlock()

	out := struct {
		Histories  []callHistoryJSON `json:"histories"`
		NextCursor *float64          `json:"next_cursor"`
	}{Histories: make([]callHistoryJSON, len(page))}
	for i := range page {
		out.Histories[i] = s.render(&page[i])
	}
	if more {
		next := out.Histories[len(page)-1].TS
		out.NextCursor = &next
	}
	writeJSON(w, http.StatusOK, out)
}

// handleTerminate ends a live call now with "api-ended". Ending an already
// ended call is a successful no-op.
func (s *Server) handleTerminate(w http.ResponseWriter, r *http.Request, p []string) {
	body, err := readBody(r)
	var m map[string]json.RawMessage
	var errs []validationError
	if err == nil {
		m, errs = decodeObject(body, false)
	}
	f := &fields{m: m, loc: []any{"body"}}
	msg, _ := f.str("message", false)
	if errs = append(errs, f.errs...); len(errs) > 0 {
		writeValidation(w, errs)
		return
	}
	s.mu.Lock()
	c, ok := s.byID[p[0]]
	ended := false
	if ok && !isTerminal(c.status) {
		c.endMessage = msg
		s.finishLocked(c, stAPIEnded, s.clock.Now().UnixNano())
		ended = true
	}
	s.mu.Unlock()
	if !ok {
		writeNotFound(w)
		return
	}
	if ended {
		s.log.Debug("call terminated", "session_id", p[0])
	}
	writeSuccess(w)
}

func (s *Server) handleUserInfo(w http.ResponseWriter, r *http.Request, _ []string) {
	s.mu.Lock()
	used := round6(s.usedCredit)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"user_id":     s.cfg.UserID,
		"credit":      round6(s.cfg.InitialCredit - used),
		"used_credit": used,
		"auto_refill": map[string]bool{"enabled": false},
	})
}
