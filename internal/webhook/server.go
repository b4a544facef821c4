package webhook

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"
)

// Options bound what one client, and all clients together, can cost the
// receiver. The defaults suit Millis deliveries: one small request per call
// event, an end-of-call body of at most a few hundred KiB.
type Options struct {
	// ReadHeaderTimeout bounds reading a request's headers (slowloris).
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included.
	ReadTimeout time.Duration
	// WriteTimeout bounds the handling and the response, counted from the
	// end of the headers. A prefetch may wait on a user's relay (10s).
	WriteTimeout time.Duration
	// IdleTimeout closes a kept-alive connection that sends nothing.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line and headers.
	MaxHeaderBytes int
	// MaxBodyBytes bounds a request body; larger ones get 413.
	MaxBodyBytes int64
	// MaxInFlight caps requests being handled at once, across all clients;
	// beyond it the receiver answers 503 at once instead of queueing.
	MaxInFlight int
	// FailureRate and FailureBurst are each client's token bucket for
	// failed requests (a missing or wrong token, an unknown route, an
	// oversized body), in failures per second. A client whose bucket is
	// empty gets 429 for every request until it refills.
	FailureRate  float64
	FailureBurst int
	// MaxTrackedClients caps the clients whose failures are remembered; the
	// least recently failing is forgotten first.
	MaxTrackedClients int
	// TrustedProxies are the proxies (an Ingress controller, a load
	// balancer) whose X-Forwarded-For is believed. Empty: the client is the
	// TCP peer and X-Forwarded-For is ignored.
	TrustedProxies []netip.Prefix
	// Clock replaces the real clock in tests.
	Clock clock.PassiveClock
}

// DefaultOptions returns the defaults of the manager's flags.
func DefaultOptions() Options {
	return Options{
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		MaxBodyBytes:      DefaultMaxBodyBytes,
		MaxInFlight:       128,
		FailureRate:       1,
		FailureBurst:      20,
		MaxTrackedClients: 10000,
	}
}

// BindFlags registers the options as --millis-webhook-* flags, with the
// current values as defaults.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.DurationVar(&o.ReadHeaderTimeout, "millis-webhook-read-header-timeout", o.ReadHeaderTimeout, "Time a webhook client has to send its request headers.")
	fs.DurationVar(&o.ReadTimeout, "millis-webhook-read-timeout", o.ReadTimeout, "Time a webhook client has to send a whole request, body included.")
	fs.DurationVar(&o.WriteTimeout, "millis-webhook-write-timeout", o.WriteTimeout, "Time to handle a webhook request and write the response, from the end of its headers.")
	fs.DurationVar(&o.IdleTimeout, "millis-webhook-idle-timeout", o.IdleTimeout, "How long an idle kept-alive webhook connection stays open.")
	fs.IntVar(&o.MaxHeaderBytes, "millis-webhook-max-header-bytes", o.MaxHeaderBytes, "Largest webhook request line and headers, in bytes.")
	fs.Int64Var(&o.MaxBodyBytes, "millis-webhook-max-body-bytes", o.MaxBodyBytes, "Largest webhook request body, in bytes; larger ones get 413.")
	fs.IntVar(&o.MaxInFlight, "millis-webhook-max-in-flight", o.MaxInFlight, "Webhook requests handled at once; beyond it the receiver answers 503.")
	fs.Float64Var(&o.FailureRate, "millis-webhook-failure-rate", o.FailureRate, "Failed webhook requests (wrong token, unknown route, oversized body) allowed per second per client IP; beyond it 429.")
	fs.IntVar(&o.FailureBurst, "millis-webhook-failure-burst", o.FailureBurst, "Failed webhook requests a client IP may make in a burst before it is rate limited.")
	fs.IntVar(&o.MaxTrackedClients, "millis-webhook-max-tracked-clients", o.MaxTrackedClients, "Client IPs whose failures are remembered at once.")
	fs.Func("millis-webhook-trusted-proxies", "Comma-separated CIDRs of proxies whose X-Forwarded-For names the webhook client; empty trusts none.", func(s string) error {
		prefixes, err := ParsePrefixes(s)
		if err != nil {
			return err
		}
		o.TrustedProxies = prefixes
		return nil
	})
}

// ParsePrefixes parses comma-separated CIDRs; a bare IP is a single address.
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("parse trusted proxy %q: %w", f, err)
			}
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("parse trusted proxy %q: %w", f, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// withDefaults fills unset (zero) options from DefaultOptions.
func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.ReadHeaderTimeout <= 0 {
		o.ReadHeaderTimeout = d.ReadHeaderTimeout
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = d.ReadTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = d.WriteTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = d.IdleTimeout
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = d.MaxBodyBytes
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = d.MaxInFlight
	}
	if o.FailureRate <= 0 {
		o.FailureRate = d.FailureRate
	}
	if o.FailureBurst <= 0 {
		o.FailureBurst = d.FailureBurst
	}
	if o.MaxTrackedClients <= 0 {
		o.MaxTrackedClients = d.MaxTrackedClients
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	return o
}

// shutdownTimeout fits in the manager Pod's termination grace period.
const shutdownTimeout = 10 * time.Second

// Server serves the receiver's handler behind its front door (limits.go)
// with timeouts that keep slow clients from holding connections. It is a
// manager.Runnable.
type Server struct {
	Addr    string
	Handler http.Handler
	Options Options
	Log     logr.Logger
	// Listener, when set, is served instead of listening on Addr.
	Listener net.Listener

	once  sync.Once
	front *frontDoor
	conns atomic.Int64
}

// door builds the front door once, so tests can inspect it while serving.
func (s *Server) door() *frontDoor {
	s.once.Do(func() { s.front = newFrontDoor(s.Options.withDefaults(), s.Handler, s.Log) })
	return s.front
}

// OpenConnections is the number of client connections now open.
func (s *Server) OpenConnections() int64 { return s.conns.Load() }

func (s *Server) httpServer() *http.Server {
	o := s.door().opts
	return &http.Server{
		Addr:              s.Addr,
		Handler:           s.door(),
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		ReadTimeout:       o.ReadTimeout,
		WriteTimeout:      o.WriteTimeout,
		IdleTimeout:       o.IdleTimeout,
		MaxHeaderBytes:    o.MaxHeaderBytes,
		ConnState: func(_ net.Conn, state http.ConnState) {
			switch state {
			case http.StateNew:
				s.conns.Add(1)
				openConnections.Inc()
			case http.StateClosed, http.StateHijacked:
				s.conns.Add(-1)
				openConnections.Dec()
			}
		},
	}
}

// Start serves until ctx is done. It implements manager.Runnable.
func (s *Server) Start(ctx context.Context) error {
	srv := s.httpServer()
	ln := s.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.Addr); err != nil {
			return fmt.Errorf("webhook receiver on %s: %w", s.Addr, err)
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("webhook receiver on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		err := srv.Shutdown(shutdown)
		if serveErr := <-errc; !errors.Is(serveErr, http.ErrServerClosed) {
			err = errors.Join(err, serveErr)
		}
		return err
	}
}

// NeedLeaderElection is false: every replica receives webhooks.
func (s *Server) NeedLeaderElection() bool { return false }
