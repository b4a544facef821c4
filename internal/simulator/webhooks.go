package simulator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"sort"
	"sync"
)

// webhookPool runs webhook deliveries on a fixed number of workers, so the
// scheduler only ever appends to a queue and never waits on the network.
// The queue itself is unbounded: dropping deliveries because a receiver is
// slow would be a fault nobody asked for.
type webhookPool struct {
	mu     sync.Mutex
	cond   *sync.Cond // signals new jobs, finished jobs and close
	queue  []func(context.Context)
	active int
	closed bool
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newWebhookPool(workers int) *webhookPool {
	p := &webhookPool{}
	p.cond = sync.NewCond(&p.mu)
	p.ctx, p.cancel = context.WithCancel(context.Background())
	for range workers {
		p.wg.Add(1)
		go p.work()
	}
	return p
}

func (p *webhookPool) submit(job func(context.Context)) {
	p.mu.Lock()
	if !p.closed {
		p.queue = append(p.queue, job)
		p.cond.Broadcast()
	}
	p.mu.Unlock()
}

func (p *webhookPool) work() {
	defer p.wg.Done()
	p.mu.Lock()
	for {
		for len(p.queue) == 0 && !p.closed {
			p.cond.Wait()
		}
		if p.closed {
			p.mu.Unlock()
			return
		}
		job := p.queue[0]
		p.queue[0] = nil
		p.queue = p.queue[1:]
		p.active++
		p.mu.Unlock()
		job(p.ctx)
		p.mu.Lock()
		p.active--
		p.cond.Broadcast()
	}
}

// waitIdle blocks until no job is queued or running (or the pool closed).
func (p *webhookPool) waitIdle() {
	p.mu.Lock()
	for !p.closed && (len(p.queue) > 0 || p.active > 0) {
		p.cond.Wait()
	}
	p.mu.Unlock()
}

func (p *webhookPool) isIdle() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed || (len(p.queue) == 0 && p.active == 0)
}

func (p *webhookPool) close() {
	p.mu.Lock()
	p.closed = true
	p.queue = nil
	p.cond.Broadcast()
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
}

// redactURL keeps scheme, host and path: webhook URLs may carry tokens in
// their query string, and logs must not leak them.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<invalid url>"
	}
	return u.Scheme + "://" + u.Host + u.Path
}

// errText drops the URL from a client error: *url.Error repeats the full
// URL, query string included.
func errText(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + ": " + ue.Err.Error()
	}
	return err.Error()
}

// prefetchQuery builds the GET query: session_id, agent_id, from, to, and
// every metadata key flattened. The built-in names win over metadata keys of
// the same name, so a receiver always knows which session it is serving.
func prefetchQuery(c *call) url.Values {
	q := url.Values{}
	var meta map[string]json.RawMessage
	_ = json.Unmarshal(c.meta, &meta)
	keys := make([]string, 0, len(meta))
	for k := range meta {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		q.Set(k, flattenValue(meta[k]))
	}
	q.Set("session_id", c.sessionID)
	if c.agentID != "" {
		q.Set("agent_id", c.agentID)
	} else {
		q.Del("agent_id")
	}
	q.Set("from", c.from)
	q.Set("to", c.to)
	return q
}

// dispatchPrefetchLocked queues the prefetch GET for c. It returns false when
// a fault drops the delivery, in which case the call goes on as if the
// webhook had failed.
func (s *Server) dispatchPrefetchLocked(c *call) bool {
	if s.dropWebhookLocked() {
		s.log.Info("webhook dropped by fault", "kind", "prefetch", "session_id", c.sessionID)
		return false
	}
	target, query, epoch := c.cfg.prefetch, prefetchQuery(c), c.epoch
	s.pool.submit(func(ctx context.Context) {
		meta, extra := s.fetchPrefetch(ctx, c.sessionID, target, query)
		s.applyPrefetch(c, epoch, meta, extra)
	})
	return true
}

// fetchPrefetch performs the GET. Any failure (transport, timeout, non-2xx,
// a body that is not a JSON object) yields nothing, and the call proceeds.
func (s *Server) fetchPrefetch(ctx context.Context, sessionID string, t *webhookTarget, query url.Values) (map[string]json.RawMessage, string) {
	u, err := url.Parse(t.URL)
	if err != nil {
		s.log.Warn("prefetch webhook: invalid url", "session_id", sessionID)
		return nil, ""
	}
	q := u.Query()
	for k, v := range query {
		q[k] = v
	}
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.WebhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, ""
	}
	req.Header.Set("User-Agent", "millis-simulator")
	req.Header.Set("Accept", "application/json")
	for k, v := range t.Headers {
		req.Header.Set(k, v)
	}
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		s.log.Info("prefetch webhook failed", "session_id", sessionID, "url", redactURL(t.URL), "error", errText(err))
		return nil, ""
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	s.log.Debug("prefetch webhook answered", "session_id", sessionID, "url", redactURL(t.URL), "status", resp.StatusCode)
	if err != nil || resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, ""
	}
	var out struct {
		Metadata    json.RawMessage `json:"metadata"`
		ExtraPrompt json.RawMessage `json:"extra_prompt"`
	}
	if json.Unmarshal(body, &out) != nil {
		return nil, ""
	}
	var meta map[string]json.RawMessage
	if isJSONObject(out.Metadata) {
		_ = json.Unmarshal(out.Metadata, &meta)
	}
	var extra string
	_ = json.Unmarshal(out.ExtraPrompt, &extra)
	return meta, extra
}

// applyPrefetch merges the prefetch answer into the session and starts the
// conversation, unless the call was terminated or reset meanwhile.
func (s *Server) applyPrefetch(c *call, epoch uint32, meta map[string]json.RawMessage, extra string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if epoch != s.epoch || !c.prefetching || c.status != stRinging {
		return
	}
	c.prefetching = false
	if len(meta) > 0 {
		merged := map[string]json.RawMessage{}
		_ = json.Unmarshal(c.meta, &merged)
		for k, v := range meta {
			merged[k] = v
		}
		c.meta = marshalCompact(merged)
	}
	if extra != "" {
		c.cfg = newConfigSnap(appendPrompt(c.cfg.raw, extra))
	}
	s.startTalkLocked(c)
}

// errorMessage is the webhook's error_message: a reason for the failure
// outcomes, null otherwise.
func errorMessage(st uint8) *string {
	var m string
	switch st {
	case stFailed:
		m = "Call failed: the carrier could not connect the call (simulated)"
	case stError:
		m = "Internal error while handling the call (simulated)"
	default:
		return nil
	}
	return &m
}

// dispatchEndOfCallLocked queues the end-of-call POST for c, applying the
// drop and duplicate faults. The body is rendered by the worker, from a
// snapshot taken then; a finished call no longer changes.
func (s *Server) dispatchEndOfCallLocked(c *call) {
	if s.dropWebhookLocked() {
		s.log.Info("webhook dropped by fault", "kind", "end-of-call", "session_id", c.sessionID)
		return
	}
	sends := 1
	if s.duplicateWebhookLocked() {
		sends = 2
	}
	target, epoch := c.cfg.endOfCall, c.epoch
	s.pool.submit(func(ctx context.Context) {
		s.mu.Lock()
		if epoch != s.epoch {
			s.mu.Unlock()
			return
		}
		snap := *c
		s.mu.Unlock()
		body := marshalCompact(webhookBody{callHistoryJSON: s.render(&snap), ErrorMessage: errorMessage(snap.status)})
		for range sends {
			s.postEndOfCall(ctx, snap.sessionID, target, body)
		}
	})
}

func (s *Server) postEndOfCall(ctx context.Context, sessionID string, t *webhookTarget, body []byte) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.WebhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, bytes.NewReader(body))
	if err != nil {
		s.log.Warn("end-of-call webhook: invalid url", "session_id", sessionID)
		return
	}
	req.Header.Set("User-Agent", "millis-simulator")
	for k, v := range t.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		s.log.Info("end-of-call webhook failed", "session_id", sessionID, "url", redactURL(t.URL), "error", errText(err))
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
	resp.Body.Close()
	s.log.Debug("end-of-call webhook delivered", "session_id", sessionID, "url", redactURL(t.URL), "status", resp.StatusCode)
}
