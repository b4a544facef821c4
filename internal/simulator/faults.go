package simulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"time"
)

// Faults are failures injected into the API and the webhooks. Counters are
// consumed as they trigger; rates are drawn from an RNG seeded by
// Config.Seed. Set them with Server.SetFaults or POST /_sim/faults; both
// replace the whole set.
//
// Endpoint keys are "METHOD /pattern" exactly as in README.md, e.g.
// "POST /start_outbound_call" or "GET /call-logs/{session_id}", or "*" for
// any API endpoint. A specific key is consumed before "*".
type Faults struct {
	// FailNext answers the next N requests to an endpoint with
	// 500 {"detail":"Internal Server Error"}, without acting on them.
	FailNext map[string]int
	// RateLimitNext answers the next N requests to an endpoint with 429 and
	// a Retry-After header of RetryAfterSeconds (default 1).
	RateLimitNext     map[string]int
	RetryAfterSeconds int
	// Latency is added to every API request, in wall-clock time.
	Latency time.Duration
	// CreateThen500Next makes the next N start_outbound_call requests place
	// the call for real and then answer 500: the client sees a failure for
	// a call that exists (and shows in the ledger).
	CreateThen500Next int
	// DropWebhooks silently skips the next N webhook deliveries (prefetch
	// and end-of-call alike, in the order they are due).
	DropWebhooks int
	// DuplicateWebhooks sends the next N end-of-call webhooks twice.
	DuplicateWebhooks int
	// FailRate answers this fraction (0..1) of API requests with 500.
	FailRate float64
	// DropWebhookRate drops this fraction of webhook deliveries.
	DropWebhookRate float64
	// DuplicateWebhookRate duplicates this fraction of end-of-call webhooks.
	DuplicateWebhookRate float64
}

// faultsJSON is the admin wire form: snake_case keys and a Go duration
// string for latency ("250ms"); a bare number is read as milliseconds.
type faultsJSON struct {
	FailNext             map[string]int  `json:"fail_next,omitempty"`
	RateLimitNext        map[string]int  `json:"rate_limit_next,omitempty"`
	RetryAfterSeconds    int             `json:"retry_after_seconds,omitempty"`
	Latency              json.RawMessage `json:"latency,omitempty"`
	CreateThen500Next    int             `json:"create_then_500_next,omitempty"`
	DropWebhooks         int             `json:"drop_webhooks,omitempty"`
	DuplicateWebhooks    int             `json:"duplicate_webhooks,omitempty"`
	FailRate             float64         `json:"fail_rate,omitempty"`
	DropWebhookRate      float64         `json:"drop_webhook_rate,omitempty"`
	DuplicateWebhookRate float64         `json:"duplicate_webhook_rate,omitempty"`
}

// MarshalJSON writes the admin wire form.
func (f Faults) MarshalJSON() ([]byte, error) {
	j := faultsJSON{
		FailNext: f.FailNext, RateLimitNext: f.RateLimitNext, RetryAfterSeconds: f.RetryAfterSeconds,
		CreateThen500Next: f.CreateThen500Next, DropWebhooks: f.DropWebhooks, DuplicateWebhooks: f.DuplicateWebhooks,
		FailRate: f.FailRate, DropWebhookRate: f.DropWebhookRate, DuplicateWebhookRate: f.DuplicateWebhookRate,
	}
	if f.Latency != 0 {
		j.Latency = marshalCompact(f.Latency.String())
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads the admin wire form, rejecting unknown keys so that a
// typo does not silently disable a fault.
func (f *Faults) UnmarshalJSON(data []byte) error {
	var j faultsJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return err
	}
	var lat time.Duration
	if !isNull(j.Latency) {
		var s string
		var ms float64
		switch {
		case json.Unmarshal(j.Latency, &s) == nil:
			d, err := time.ParseDuration(s)
			if err != nil {
				return fmt.Errorf("latency: %w", err)
			}
			lat = d
		case json.Unmarshal(j.Latency, &ms) == nil:
			lat = time.Duration(ms * float64(time.Millisecond))
		default:
			return errors.New(`latency: want a duration string like "250ms" or milliseconds`)
		}
	}
	*f = Faults{
		FailNext: j.FailNext, RateLimitNext: j.RateLimitNext, RetryAfterSeconds: j.RetryAfterSeconds,
		Latency: lat, CreateThen500Next: j.CreateThen500Next, DropWebhooks: j.DropWebhooks,
		DuplicateWebhooks: j.DuplicateWebhooks, FailRate: j.FailRate, DropWebhookRate: j.DropWebhookRate,
		DuplicateWebhookRate: j.DuplicateWebhookRate,
	}
	return nil
}

// Validate rejects negative counters and rates outside 0..1.
func (f Faults) Validate() error {
	var errs []error
	for name, m := range map[string]map[string]int{"fail_next": f.FailNext, "rate_limit_next": f.RateLimitNext} {
		for k, n := range m {
			if n < 0 {
				errs = append(errs, fmt.Errorf("%s[%q] must not be negative", name, k))
			}
		}
	}
	for name, n := range map[string]int{"retry_after_seconds": f.RetryAfterSeconds, "create_then_500_next": f.CreateThen500Next, "drop_webhooks": f.DropWebhooks, "duplicate_webhooks": f.DuplicateWebhooks} {
		if n < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative", name))
		}
	}
	if f.Latency < 0 {
		errs = append(errs, errors.New("latency must not be negative"))
	}
	for name, r := range map[string]float64{"fail_rate": f.FailRate, "drop_webhook_rate": f.DropWebhookRate, "duplicate_webhook_rate": f.DuplicateWebhookRate} {
		if r < 0 || r > 1 {
			errs = append(errs, fmt.Errorf("%s must be within 0..1", name))
		}
	}
	return errors.Join(errs...)
}

func (f Faults) clone() Faults {
	f.FailNext = maps.Clone(f.FailNext)
	f.RateLimitNext = maps.Clone(f.RateLimitNext)
	return f
}

// SetFaults replaces the injected faults. Invalid values (see
// Faults.Validate) are clamped: negative counts to 0, rates into 0..1.
func (s *Server) SetFaults(f Faults) {
	f = f.clone()
	f.RetryAfterSeconds = max(f.RetryAfterSeconds, 0)
	f.CreateThen500Next = max(f.CreateThen500Next, 0)
	f.DropWebhooks = max(f.DropWebhooks, 0)
	f.DuplicateWebhooks = max(f.DuplicateWebhooks, 0)
	f.Latency = max(f.Latency, 0)
	f.FailRate = min(max(f.FailRate, 0), 1)
	f.DropWebhookRate = min(max(f.DropWebhookRate, 0), 1)
	f.DuplicateWebhookRate = min(max(f.DuplicateWebhookRate, 0), 1)
	s.mu.Lock()
	s.faults = f
	s.mu.Unlock()
}

// Faults returns the current faults, with counters as consumed so far.
func (s *Server) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults.clone()
}

// takeCount consumes one unit of m[key], else of m["*"].
func takeCount(m map[string]int, key string) bool {
	for _, k := range [2]string{key, "*"} {
		if m[k] > 0 {
			m[k]--
			if m[k] == 0 {
				delete(m, k)
			}
			return true
		}
	}
	return false
}

func (s *Server) draw(rate float64) bool { return rate > 0 && s.faultRNG.Float64() < rate }

// requestFaultLocked decides whether the request to endpoint key fails:
// rate limits first, then forced failures, then the failure rate.
func (s *Server) requestFaultLocked(key string) int {
	switch {
	case takeCount(s.faults.RateLimitNext, key):
		return http.StatusTooManyRequests
	case takeCount(s.faults.FailNext, key):
		return http.StatusInternalServerError
	case s.draw(s.faults.FailRate):
		return http.StatusInternalServerError
	}
	return 0
}

func (s *Server) takeCreateThen500Locked() bool {
	if s.faults.CreateThen500Next > 0 {
		s.faults.CreateThen500Next--
		return true
	}
	return false
}

func (s *Server) dropWebhookLocked() bool {
	if s.faults.DropWebhooks > 0 {
		s.faults.DropWebhooks--
		return true
	}
	return s.draw(s.faults.DropWebhookRate)
}

func (s *Server) duplicateWebhookLocked() bool {
	if s.faults.DuplicateWebhooks > 0 {
		s.faults.DuplicateWebhooks--
		return true
	}
	return s.draw(s.faults.DuplicateWebhookRate)
}

// serveAPI runs the common path of every API request: latency, then the
// API key, then injected failures, then the handler. Authentication comes
// before failures so that an unauthenticated probe does not use up a fault
// meant for the client under test.
func (s *Server) serveAPI(rt *route, w http.ResponseWriter, r *http.Request, params []string) {
	s.mu.Lock()
	lat := s.faults.Latency
	s.mu.Unlock()
	if lat > 0 {
		t := time.NewTimer(lat)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if !s.authorized(r) {
		writeDetail(w, http.StatusUnauthorized, "Unauthorized")
		return
	}
	s.mu.Lock()
	code := s.requestFaultLocked(rt.key)
	retryAfter := s.faults.RetryAfterSeconds
	s.mu.Unlock()
	switch code {
	case http.StatusTooManyRequests:
		if retryAfter <= 0 {
			retryAfter = 1
		}
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
		writeDetail(w, code, "Too Many Requests")
		s.log.Info("request rate-limited by fault", "endpoint", rt.key)
		return
	case http.StatusInternalServerError:
		writeDetail(w, code, "Internal Server Error")
		s.log.Info("request failed by fault", "endpoint", rt.key)
		return
	}
	rt.h(w, r, params)
}

func (s *Server) handleGetFaults(w http.ResponseWriter, r *http.Request, _ []string) {
	writeJSON(w, http.StatusOK, s.Faults())
}

func (s *Server) handleSetFaults(w http.ResponseWriter, r *http.Request, _ []string) {
	body, err := readBody(r)
	if err != nil {
		writeDetail(w, http.StatusBadRequest, err.Error())
		return
	}
	var f Faults
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &f); err != nil {
			writeDetail(w, http.StatusBadRequest, "invalid faults: "+err.Error())
			return
		}
	}
	if err := f.Validate(); err != nil {
		writeDetail(w, http.StatusBadRequest, "invalid faults: "+err.Error())
		return
	}
	s.SetFaults(f)
	s.log.Info("faults set")
	writeJSON(w, http.StatusOK, s.Faults())
}
