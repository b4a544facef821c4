package webhook

import (
	"container/list"
	"encoding/json"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/time/rate"
	"k8s.io/utils/clock"
)

// The front door runs before the receiver's handler and rejects what it can
// without touching the API server or reading a body:
//
//  1. a client whose failure bucket is empty gets 429 with Retry-After,
//     whatever it sends, so that guessing tokens is as slow as the bucket;
//  2. a declared body over the limit gets 413 before a byte of it is read;
//  3. beyond MaxInFlight requests in the handler, 503 with Retry-After;
//  4. the body is capped (413 once it passes the limit), and 401, 404 and
//     405 answers count as the client's failures.
//
// Successes never take from a bucket, so a client that authenticates is
// never limited by others' failures; it is limited by its own only while
// they outpace FailureRate.
type frontDoor struct {
	opts     Options
	next     http.Handler
	log      logr.Logger
	inFlight chan struct{}
	failures *failureLimiter
	proxies  []netip.Prefix
	xffHint  sync.Once
	busyLog  rate.Sometimes
}

func newFrontDoor(o Options, next http.Handler, log logr.Logger) *frontDoor {
	return &frontDoor{
		opts:     o,
		next:     next,
		log:      log,
		inFlight: make(chan struct{}, o.MaxInFlight),
		failures: newFailureLimiter(rate.Limit(o.FailureRate), o.FailureBurst, o.MaxTrackedClients, o.Clock),
		proxies:  o.TrustedProxies,
		busyLog:  rate.Sometimes{Interval: 10 * time.Second},
	}
}

func (f *frontDoor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	kind := kindOf(r.URL.Path)
	client := f.clientOf(r)

	if wait, first := f.failures.wait(client); wait > 0 {
		if first {
			f.log.Info("Webhook client rate limited after repeated failures", "client", client.String(), "retryAfter", wait.String())
		}
		w.Header().Set("Retry-After", retryAfter(wait))
		reject(w, kind, http.StatusTooManyRequests, ReasonRateLimited, "too many failed requests; retry later")
		return
	}
	if r.ContentLength > f.opts.MaxBodyBytes {
		f.failures.fail(client)
		// The body stays unread; the server closes the connection rather
		// than drain it.
		w.Header().Set("Connection", "close")
		reject(w, kind, http.StatusRequestEntityTooLarge, OutcomeTooLarge, "body larger than "+strconv.FormatInt(f.opts.MaxBodyBytes, 10)+" bytes")
		return
	}
	select {
	case f.inFlight <- struct{}{}:
	default:
		f.busyLog.Do(func() {
			f.log.Info("Webhook receiver saturated; answering 503", "maxInFlight", f.opts.MaxInFlight)
		})
		w.Header().Set("Retry-After", "1")
		reject(w, kind, http.StatusServiceUnavailable, ReasonOverloaded, "receiver busy; retry")
		return
	}
	inFlightRequests.Inc()
	defer func() {
		inFlightRequests.Dec()
		<-f.inFlight
	}()

	r.Body = http.MaxBytesReader(w, r.Body, f.opts.MaxBodyBytes)
	sw := &statusWriter{ResponseWriter: w}
	f.next.ServeHTTP(sw, r)
	switch sw.status {
	case http.StatusUnauthorized:
		f.failures.fail(client)
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		// Only the mux answers these: no route, so nothing was delivered.
		f.failures.fail(client)
		deliveries.WithLabelValues(kind, resultRejected, ReasonNoRoute).Inc()
	}
}

// clientOf is the client's address: the TCP peer, or, when the peer is a
// trusted proxy, the nearest address in X-Forwarded-For that is not one.
func (f *frontDoor) clientOf(r *http.Request) netip.Addr {
	peer := peerAddr(r.RemoteAddr)
	xff := r.Header.Values("X-Forwarded-For")
	if len(xff) == 0 {
		return peer
	}
	if !inPrefixes(peer, f.proxies) {
		if len(f.proxies) == 0 {
			f.xffHint.Do(func() {
				f.log.Info("Ignoring X-Forwarded-For: no trusted proxies are configured, so clients are told apart by their TCP peer address; behind an Ingress or load balancer set --millis-webhook-trusted-proxies")
			})
		}
		return peer
	}
	// Walk from the nearest hop outwards; the first untrusted hop is the
	// client. Entries further out are the client's own claims.
	hops := strings.Split(strings.Join(xff, ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := parseHop(strings.TrimSpace(hops[i]))
		if err != nil {
			// A hop a trusted proxy would not write: stop at the last
			// address we can vouch for.
			return peer
		}
		a = a.Unmap()
		if !inPrefixes(a, f.proxies) {
			return a
		}
		peer = a
	}
	return peer
}

// parseHop reads an X-Forwarded-For entry, which some proxies write with
// a port.
func parseHop(s string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a, nil
	}
	ap, err := netip.ParseAddrPort(s)
	return ap.Addr(), err
}

func peerAddr(remote string) netip.Addr {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

func inPrefixes(a netip.Addr, prefixes []netip.Prefix) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// kindOf names the webhook a path is for, for metrics.
func kindOf(path string) string {
	switch {
	case strings.HasSuffix(path, "/"+KindEndOfCall):
		return KindEndOfCall
	case strings.HasSuffix(path, "/"+KindPrefetch):
		return KindPrefetch
	}
	return KindOther
}

// retryAfter is a Retry-After value: whole seconds, at least one.
func retryAfter(d time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}

// reject answers as the receiver does, in the same JSON shape, and counts it.
func reject(w http.ResponseWriter, kind string, code int, reason, detail string) {
	deliveries.WithLabelValues(kind, resultRejected, reason).Inc()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"result": reason, "detail": detail})
}

// statusWriter remembers the status code the handler answered.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// failureLimiter keeps a token bucket of failures per client, for at most
// max clients: the least recently failing client is forgotten first, which
// at worst hands it a fresh bucket.
type failureLimiter struct {
	limit rate.Limit
	burst int
	max   int
	clock clock.PassiveClock

	mu      sync.Mutex
	clients map[netip.Addr]*list.Element // of *failureEntry
	recent  *list.List                   // most recently failing first
}

type failureEntry struct {
	key     netip.Addr
	bucket  *rate.Limiter
	limited bool // already logged as limited
}

func newFailureLimiter(limit rate.Limit, burst, max int, clk clock.PassiveClock) *failureLimiter {
	return &failureLimiter{
		limit: limit, burst: burst, max: max, clock: clk,
		clients: map[netip.Addr]*list.Element{}, recent: list.New(),
	}
}

// clientKey groups an IPv6 client by its /64, which one host usually
// owns whole; an IPv4 client is its address.
func clientKey(a netip.Addr) netip.Addr {
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// wait is how long the client must wait before its next request, zero when
// it may go on; first reports that it has just become limited.
func (l *failureLimiter) wait(a netip.Addr) (wait time.Duration, first bool) {
	key := clientKey(a)
	l.mu.Lock()
	defer l.mu.Unlock()
	el, ok := l.clients[key]
	if !ok {
		return 0, false
	}
	e := el.Value.(*failureEntry)
	tokens := e.bucket.TokensAt(l.clock.Now())
	if tokens >= 1 {
		e.limited = false
		return 0, false
	}
	// An active attacker stays tracked, ahead of clients that went quiet.
	l.recent.MoveToFront(el)
	first = !e.limited
	e.limited = true
	return time.Duration((1 - tokens) / float64(l.limit) * float64(time.Second)), first
}

// fail takes a token from the client's bucket.
func (l *failureLimiter) fail(a netip.Addr) {
	key := clientKey(a)
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	el, ok := l.clients[key]
	if ok {
		l.recent.MoveToFront(el)
	} else {
		for l.recent.Len() >= l.max {
			oldest := l.recent.Back()
			l.recent.Remove(oldest)
			delete(l.clients, oldest.Value.(*failureEntry).key)
		}
		el = l.recent.PushFront(&failureEntry{key: key, bucket: rate.NewLimiter(l.limit, l.burst)})
		l.clients[key] = el
		trackedClients.Set(float64(l.recent.Len()))
	}
	el.Value.(*failureEntry).bucket.AllowN(now, 1)
}

// tracked is the number of clients remembered.
func (l *failureLimiter) tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.recent.Len()
}
