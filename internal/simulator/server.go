// Package simulator is an in-memory imitation of the Millis AI REST API
// (https://api-west.millis.ai), for testing the operator without a Millis
// account: outbound calls with a time-driven lifecycle, call logs, agents,
// phones, the prefetch and end-of-call webhooks, and switchable faults.
//
// Every lifecycle transition of every call is driven by one scheduler
// goroutine over a min-heap of events and an injectable clock, so tests step
// a fake clock and call Sync instead of sleeping. README.md lists the
// behaviour the Millis docs leave open and what the simulator chose.
package simulator

import (
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"k8s.io/utils/clock"
)

// Server is the simulator. It is an http.Handler serving the Millis API and
// the /_sim/ admin endpoints. Create it with New and stop it with Close.
type Server struct {
	cfg    Config
	clock  clock.Clock
	log    *slog.Logger
	routes []route

	// outcomes maps the exact numbers of Config.Outcomes to status codes;
	// fixed after New.
	outcomes map[string]uint8

	mu sync.Mutex // guards everything below
	// calls are in ascending ts order: ts is assigned under mu and strictly
	// increases, so appending keeps the order and listing is a binary search.
	calls      []*call
	byID       map[string]*call
	events     eventHeap
	lastTS     int64 // µs, the last ts handed out
	usedCredit float64
	// live counts placed calls that have not ended; peakLive is its maximum
	// since the start or the last Reset (the benchmark's concurrency check).
	live, peakLive int
	epoch          uint32 // bumped by Reset so late webhook results are dropped
	agents         map[string]*agent
	agentOrder     []string
	phones         map[string]*phone
	phoneOrder     []string
	faults         Faults
	faultRNG       *rand.Rand
	ids            pushIDGen

	pool *webhookPool

	wakeCh    chan struct{}
	syncCh    chan chan struct{}
	stopCh    chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// New builds a Server and starts its scheduler goroutine. It panics if
// cfg.Validate reports an error.
func New(cfg Config) *Server {
	if err := cfg.Validate(); err != nil {
		panic("simulator: invalid Config: " + err.Error())
	}
	cfg = cfg.withDefaults()
	if cfg.HTTPClient == nil {
		// A private transport, so that Close can drop idle connections to
		// webhook receivers without touching http.DefaultTransport.
		cfg.HTTPClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	seed := uint64(cfg.Seed)
	s := &Server{
		cfg:    cfg,
		clock:  cfg.Clock,
		log:    cfg.Logger,
		byID:   map[string]*call{},
		agents: map[string]*agent{},
		phones: map[string]*phone{},
		// Two streams from one seed, so generating ids never shifts the
		// fault draws (and the other way round).
		faultRNG: rand.New(rand.NewPCG(seed, 0x6661756c7473)),
		ids:      pushIDGen{rng: rand.New(rand.NewPCG(seed, 0x696473))},
		wakeCh:   make(chan struct{}, 1),
		syncCh:   make(chan chan struct{}),
		stopCh:   make(chan struct{}),
		done:     make(chan struct{}),
	}
	s.outcomes = make(map[string]uint8, len(cfg.Outcomes))
	for num, st := range cfg.Outcomes {
		s.outcomes[num] = statusCode(st)
	}
	s.routes = s.buildRoutes()

	now := s.clock.Now()
	createAt := float64(now.UnixMicro()) / 1e6
	for _, p := range cfg.Phones {
		if _, dup := s.phones[p]; dup {
			continue
		}
		s.phones[p] = &phone{id: p, createAt: createAt}
		s.phoneOrder = append(s.phoneOrder, p)
	}
	for _, a := range cfg.Agents {
		c := a.Config
		if len(c) == 0 {
			c = DefaultAgentConfig
		}
		ag := s.addAgentLocked(a.ID, a.Name, c)
		for _, p := range a.Phones {
			s.phones[p].agentID = ag.id
		}
	}

	s.pool = newWebhookPool(cfg.WebhookWorkers)
	go s.run()
	return s
}

// Close stops the scheduler and the webhook workers, cancelling deliveries
// in flight. Calls stop advancing; the handler keeps answering reads. It is
// safe to call more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.stopCh)
		<-s.done
		s.pool.close()
		if t, ok := s.cfg.HTTPClient.Transport.(interface{ CloseIdleConnections() }); ok {
			t.CloseIdleConnections()
		}
	})
}

// handlerFunc receives the decoded path parameters in pattern order.
type handlerFunc func(w http.ResponseWriter, r *http.Request, params []string)

type route struct {
	method string
	key    string   // "METHOD /pattern", the endpoint key used by Faults
	segs   []string // pattern segments; "{x}" matches any one segment
	admin  bool     // /_sim/ endpoints: no API key, no faults
	h      handlerFunc
}

func (s *Server) buildRoutes() []route {
	var rs []route
	add := func(method, pattern string, h handlerFunc) {
		rs = append(rs, route{
			method: method,
			key:    method + " " + pattern,
			segs:   strings.Split(strings.Trim(pattern, "/"), "/"),
			admin:  strings.HasPrefix(pattern, "/_sim/"),
			h:      h,
		})
	}
	add("POST", "/start_outbound_call", s.handleStartOutboundCall)
	add("GET", "/call-logs", s.handleListCallLogs)
	add("GET", "/call-logs/{session_id}", s.handleGetCallLog)
	add("POST", "/sessions/{session_id}/terminate", s.handleTerminate)
	add("GET", "/user/info", s.handleUserInfo)
	add("GET", "/agents", s.handleListAgents)
	add("POST", "/agents", s.handleCreateAgent)
	add("GET", "/agents/{agent_id}", s.handleGetAgent)
	add("PUT", "/agents/{agent_id}", s.handleUpdateAgent)
	add("DELETE", "/agents/{agent_id}", s.handleDeleteAgent)
	add("POST", "/agents/{agent_id}/duplicate", s.handleDuplicateAgent)
	add("GET", "/phones", s.handleListPhones)
	add("GET", "/phones/{phone}", s.handleGetPhone)
	add("DELETE", "/phones/{phone}", s.handleDeletePhone)
	add("POST", "/phones/{phone}/set_agent", s.handleSetPhoneAgent)
	add("POST", "/phones/{phone}/agent-config-override", s.handleSetPhoneOverride)
	add("PUT", "/phones/{phone}/tags", s.handleSetPhoneTags)

	add("GET", "/_sim/healthz", s.handleHealthz)
	add("GET", "/_sim/faults", s.handleGetFaults)
	add("POST", "/_sim/faults", s.handleSetFaults)
	add("GET", "/_sim/ledger", s.handleLedger)
	add("GET", "/_sim/calls/{session_id}", s.handleDebugCall)
	add("POST", "/_sim/reset", s.handleReset)
	return rs
}

// match finds the route for r. Path segments are unescaped one by one, so
// "/phones/%2B15550100001" yields the parameter "+15550100001" and an
// escaped slash cannot split a parameter.
func (s *Server) match(r *http.Request) (rt *route, params []string, methodMismatch bool) {
	raw := strings.Split(strings.Trim(r.URL.EscapedPath(), "/"), "/")
	segs := make([]string, len(raw))
	for i, seg := range raw {
		u, err := url.PathUnescape(seg)
		if err != nil {
			return nil, nil, false
		}
		segs[i] = u
	}
	for i := range s.routes {
		cand := &s.routes[i]
		if len(cand.segs) != len(segs) {
			continue
		}
		var ps []string
		ok := true
		for j, ps0 := range cand.segs {
			if strings.HasPrefix(ps0, "{") {
				if segs[j] == "" {
					ok = false
					break
				}
				ps = append(ps, segs[j])
			} else if ps0 != segs[j] {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		if cand.method != r.Method {
			methodMismatch = true
			continue
		}
		return cand, ps, false
	}
	return nil, nil, methodMismatch
}

// ServeHTTP routes like FastAPI: unknown paths are 404 "Not Found" and
// known paths with another method 405, both before authentication.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt, params, mismatch := s.match(r)
	switch {
	case rt == nil && mismatch:
		writeDetail(w, http.StatusMethodNotAllowed, "Method Not Allowed")
	case rt == nil:
		writeDetail(w, http.StatusNotFound, "Not Found")
	case rt.admin:
		rt.h(w, r, params)
	default:
		s.serveAPI(rt, w, r, params)
	}
}

const maxBody = 1 << 20

func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	return io.ReadAll(io.LimitReader(r.Body, maxBody))
}

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request, _ []string) {
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}
