package simulator_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"

	"github.com/callops/millis-operator/internal/simulator"
)

const (
	apiKey    = "sim-private-key"
	fromPhone = "+15550100001"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// harness is a simulator on a fake clock with the seed agent bound to
// fromPhone. Stages are 100ms, ringing 1s, talking 2s.
type harness struct {
	t   *testing.T
	clk *testingclock.FakeClock
	srv *simulator.Server
}

func newHarness(t *testing.T, mutate func(*simulator.Config)) *harness {
	t.Helper()
	clk := testingclock.NewFakeClock(t0)
	cfg := simulator.Config{
		Clock:     clk,
		Seed:      1,
		Agents:    []simulator.AgentSeed{simulator.SeedAgent(fromPhone)},
		StageTime: 100 * time.Millisecond,
		RingTime:  time.Second,
		TalkTime:  2 * time.Second,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	srv := simulator.New(cfg)
	t.Cleanup(srv.Close)
	return &harness{t: t, clk: clk, srv: srv}
}

// with returns the harness reporting to t, for subtests sharing a server.
func (h *harness) with(t *testing.T) *harness {
	c := *h
	c.t = t
	return &c
}

// do sends a request through the handler. body may be nil, a string (sent
// verbatim) or anything else (JSON-encoded). Without headers the API key is
// sent; pass "authorization", "" to send none.
func (h *harness) do(method, path string, body any, headers ...string) *httptest.ResponseRecorder {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req := httptest.NewRequest(method, path, rd)
	req.Header.Set("authorization", apiKey)
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	rec := httptest.NewRecorder()
	h.srv.ServeHTTP(rec, req)
	return rec
}

// doJSON sends a request, requires status want and decodes the answer.
func (h *harness) doJSON(method, path string, body any, want int, out any) {
	h.t.Helper()
	rec := h.do(method, path, body)
	if rec.Code != want {
		h.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, rec.Code, want, rec.Body)
	}
	if out != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			h.t.Fatalf("%s %s: decoding %s: %v", method, path, rec.Body, err)
		}
	}
}

type registration struct {
	CallID    string `json:"call_id"`
	SessionID string `json:"session_id"`
}

// place starts a call from fromPhone to to; extra adds body fields.
func (h *harness) place(to string, extra map[string]any) string {
	h.t.Helper()
	body := map[string]any{"from_phone": fromPhone, "to_phone": to}
	for k, v := range extra {
		body[k] = v
	}
	var reg registration
	h.doJSON("POST", "/start_outbound_call", body, http.StatusOK, &reg)
	if reg.SessionID == "" || reg.CallID == "" {
		h.t.Fatalf("registration without ids: %+v", reg)
	}
	return reg.SessionID
}

// step advances the fake clock and waits for the simulator to catch up.
func (h *harness) step(d time.Duration) {
	h.clk.Step(d)
	h.srv.Sync()
}

type costItem struct {
	Type     string  `json:"type"`
	Provider string  `json:"provider"`
	Credit   float64 `json:"credit"`
}

// callHistory mirrors the CallHistory wire shape, decoded independently of
// the simulator's own types.
type callHistory struct {
	AgentID       *string           `json:"agent_id"`
	AgentConfig   map[string]any    `json:"agent_config"`
	Duration      float64           `json:"duration"`
	TS            float64           `json:"ts"`
	Chat          string            `json:"chat"`
	CharsUsed     int64             `json:"chars_used"`
	SessionID     string            `json:"session_id"`
	CallID        string            `json:"call_id"`
	CostBreakdown []costItem        `json:"cost_breakdown"`
	VoIP          map[string]string `json:"voip"`
	Recording     *struct {
		RecordingURL string `json:"recording_url"`
	} `json:"recording"`
	Metadata      map[string]any    `json:"metadata"`
	FunctionCalls []json.RawMessage `json:"function_calls"`
	CallStatus    string            `json:"call_status"`
	ErrorMessage  *string           `json:"error_message"`
}

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

func (c callHistory) messages(t *testing.T) []chatMessage {
	t.Helper()
	var m []chatMessage
	if err := json.Unmarshal([]byte(c.Chat), &m); err != nil {
		t.Fatalf("chat %q is not a JSON-encoded list: %v", c.Chat, err)
	}
	return m
}

func (h *harness) callLog(id string) callHistory {
	h.t.Helper()
	var c callHistory
	h.doJSON("GET", "/call-logs/"+id, nil, http.StatusOK, &c)
	return c
}

func (h *harness) status(id string) string {
	h.t.Helper()
	return h.callLog(id).CallStatus
}

// receiver is a webhook endpoint that records every request.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	requests []recorded
}

type recorded struct {
	Method string
	Header http.Header
	Query  map[string][]string
	Body   []byte
}

// newReceiver answers every request with status and body (JSON).
func newReceiver(t *testing.T, status int, body string) *receiver {
	t.Helper()
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.requests = append(rc.requests, recorded{Method: r.Method, Header: r.Header.Clone(), Query: r.URL.Query(), Body: b})
		rc.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) got() []recorded {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]recorded(nil), rc.requests...)
}

func ptr[T any](v T) *T { return &v }
