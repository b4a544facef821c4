package simulator

import (
	"encoding/json"
	"net/http"
	"time"
)

// LedgerEntry records one call the simulator actually placed, including
// calls whose creating request was answered 500 by CreateThen500Next. Tests
// use it to assert what the client really dialled, independent of what the
// client believes happened.
type LedgerEntry struct {
	SessionID string `json:"session_id"`
	CallID    string `json:"call_id"`
	From      string `json:"from"`
	To        string `json:"to"`
	AgentID   string `json:"agent_id"`
	// Metadata is what the client sent, before any prefetch merge.
	Metadata                json.RawMessage `json:"metadata"`
	IncludeMetadataInPrompt bool            `json:"include_metadata_in_prompt"`
	PlacedAt                time.Time       `json:"placed_at"`
	// Status is the call_status now; final once the call has ended.
	Status string `json:"status"`
	// HTTPStatus is what start_outbound_call answered: 200, or 500 when the
	// call was placed under CreateThen500Next.
	HTTPStatus int `json:"http_status"`
}

func ledgerEntry(c *call) LedgerEntry {
	return LedgerEntry{
		SessionID:               c.sessionID,
		CallID:                  c.callID,
		From:                    c.from,
		To:                      c.to,
		AgentID:                 c.agentID,
		Metadata:                c.reqMeta,
		IncludeMetadataInPrompt: c.includeMeta,
		PlacedAt:                time.UnixMicro(c.ts).UTC(),
		Status:                  callStatuses[c.status],
		HTTPStatus:              int(c.httpStatus),
	}
}

// Ledger returns every placed call, oldest first.
func (s *Server) Ledger() []LedgerEntry {
	return s.ledger("")
}

func (s *Server) ledger(to string) []LedgerEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]LedgerEntry, 0, len(s.calls))
	for _, c := range s.calls {
		if to == "" || c.to == to {
			out = append(out, ledgerEntry(c))
		}
	}
	return out
}

// DialCount returns how many calls were placed to the number to.
func (s *Server) DialCount(to string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		if c.to == to {
			n++
		}
	}
	return n
}

// Status returns the call_status of a session, and whether it exists.
func (s *Server) Status(sessionID string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.byID[sessionID]
	if !ok {
		return "", false
	}
	return callStatuses[c.status], true
}

// Reset forgets every call (and so the ledger and used credit) and clears
// the faults. Agents and phones are kept. Webhook deliveries still queued
// for forgotten calls are dropped.
func (s *Server) Reset() {
	s.mu.Lock()
	s.epoch++
	s.calls = nil
	s.live, s.peakLive = 0, 0
	s.byID = map[string]*call{}
	s.events = nil
	s.usedCredit = 0
	s.faults = Faults{}
	s.mu.Unlock()
	s.log.Info("simulator reset")
}

// Concurrency returns the calls in flight now and the most there have been
// at once since the start or the last Reset.
func (s *Server) Concurrency() (live, peak int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live, s.peakLive
}

func (s *Server) handleLedger(w http.ResponseWriter, r *http.Request, _ []string) {
	calls := s.ledger(r.URL.Query().Get("to"))
	if r.URL.Query().Get("summary") != "" {
		calls = nil // counts only: the ledger of 100,000 calls is large
	}
	live, peak := s.Concurrency()
	total := len(calls)
	if r.URL.Query().Get("summary") != "" {
		total = len(s.ledger(r.URL.Query().Get("to")))
	}
	writeJSON(w, http.StatusOK, struct {
		Total    int           `json:"total"`
		Live     int           `json:"live"`
		PeakLive int           `json:"peak_live"`
		Calls    []LedgerEntry `json:"calls,omitempty"`
	}{total, live, peak, calls})
}

// handleDebugCall shows a call with the internals a client cannot see.
func (s *Server) handleDebugCall(w http.ResponseWriter, r *http.Request, p []string) {
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
	t := func(ns int64) *time.Time {
		if ns == 0 {
			return nil
		}
		v := time.Unix(0, ns).UTC()
		return &v
	}
	writeJSON(w, http.StatusOK, struct {
		Call        webhookBody `json:"call"`
		Ledger      LedgerEntry `json:"ledger"`
		Outcome     string      `json:"outcome"`
		NextEventAt *time.Time  `json:"next_event_at"`
		AnsweredAt  *time.Time  `json:"answered_at"`
		EndedAt     *time.Time  `json:"ended_at"`
		Prefetching bool        `json:"prefetching"`
	}{
		Call:        webhookBody{callHistoryJSON: s.render(&snap), ErrorMessage: errorMessage(snap.status)},
		Ledger:      ledgerEntry(&snap),
		Outcome:     callStatuses[snap.outcome],
		NextEventAt: t(snap.nextAt),
		AnsweredAt:  t(snap.answeredAt),
		EndedAt:     t(snap.endedAt),
		Prefetching: snap.prefetching,
	})
}

func (s *Server) handleReset(w http.ResponseWriter, r *http.Request, _ []string) {
	s.Reset()
	writeSuccess(w)
}
