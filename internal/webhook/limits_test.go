package webhook

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	"golang.org/x/time/rate"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestClientOf(t *testing.T) {
	proxies, err := ParsePrefixes("10.0.0.0/8, 192.0.2.7")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		reason  string
		proxies []netip.Prefix
		remote  string
		xff     []string
		want    string
	}{
		{"no proxies: the TCP peer", nil, "203.0.113.5:4000", nil, "203.0.113.5"},
		{"no proxies: X-Forwarded-For is ignored", nil, "203.0.113.5:4000", []string{"198.51.100.1"}, "203.0.113.5"},
		{"an untrusted peer's X-Forwarded-For is ignored", proxies, "203.0.113.5:4000", []string{"198.51.100.1"}, "203.0.113.5"},
		{"a trusted proxy names the client", proxies, "10.1.2.3:4000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"the nearest untrusted hop wins over the client's own claims", proxies, "10.1.2.3:4000", []string{"1.1.1.1, 198.51.100.1, 10.9.9.9"}, "198.51.100.1"},
		{"several headers are one list", proxies, "192.0.2.7:4000", []string{"1.1.1.1", "198.51.100.1"}, "198.51.100.1"},
		{"a hop with a port", proxies, "10.1.2.3:4000", []string{"198.51.100.1:5555"}, "198.51.100.1"},
		{"garbage stops at the last trusted hop", proxies, "10.1.2.3:4000", []string{"198.51.100.1, not-an-ip"}, "10.1.2.3"},
		{"every hop trusted: the farthest", proxies, "10.1.2.3:4000", []string{"10.4.4.4"}, "10.4.4.4"},
		{"IPv4-mapped IPv6 peer", nil, "[::ffff:203.0.113.5]:4000", nil, "203.0.113.5"},
	}
	for _, c := range cases {
		f := newFrontDoor(Options{TrustedProxies: c.proxies}.withDefaults(), http.NotFoundHandler(), logr.Discard())
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = c.remote
		for _, v := range c.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := f.clientOf(r).String(); got != c.want {
			t.Errorf("%s: client = %s, want %s", c.reason, got, c.want)
		}
	}
}

func TestParsePrefixesRejectsGarbage(t *testing.T) {
	g := NewWithT(t)
	_, err := ParsePrefixes("10.0.0.0/8,nope")
	g.Expect(err).To(MatchError(ContainSubstring(`"nope"`)))
	got, err := ParsePrefixes("")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(BeEmpty())
}

func TestFailureLimiter(t *testing.T) {
	g := NewWithT(t)
	clk := clocktesting.NewFakePassiveClock(time.Unix(1_700_000_000, 0))
	l := newFailureLimiter(rate.Limit(2), 3, 4, clk)
	a := netip.MustParseAddr("198.51.100.1")

	for range 3 {
		wait, _ := l.wait(a)
		g.Expect(wait).To(BeZero(), "within the burst")
		l.fail(a)
	}
	wait, first := l.wait(a)
	g.Expect(wait).To(Equal(500*time.Millisecond), "one token at 2/s")
	g.Expect(first).To(BeTrue())
	_, first = l.wait(a)
	g.Expect(first).To(BeFalse(), "logged once per spell")
	g.Expect(l.wait(netip.MustParseAddr("198.51.100.2"))).To(BeZero(), "another client is not limited")

	clk.SetTime(clk.Now().Add(500 * time.Millisecond))
	g.Expect(l.wait(a)).To(BeZero(), "refilled")
	l.fail(a)
	wait, first = l.wait(a)
	g.Expect(wait).To(BeNumerically(">", 0))
	g.Expect(first).To(BeTrue(), "a new spell is logged again")

	// IPv6 clients are grouped by /64.
	v6a, v6b := netip.MustParseAddr("2001:db8:1:2::1"), netip.MustParseAddr("2001:db8:1:2:ffff::9")
	for range 3 {
		l.fail(v6a)
	}
	wait, _ = l.wait(v6b)
	g.Expect(wait).To(BeNumerically(">", 0), "same /64")
	g.Expect(l.wait(netip.MustParseAddr("2001:db8:1:3::1"))).To(BeZero(), "another /64")

	// The table never holds more than max clients; the least recently
	// failing is forgotten first.
	for i := range 50 {
		l.fail(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}))
		g.Expect(l.tracked()).To(BeNumerically("<=", 4))
	}
	g.Expect(l.tracked()).To(Equal(4))
	g.Expect(l.wait(a)).To(BeZero(), "forgotten: a fresh bucket")
}

// stubAuth answers 401 unless the request carries testToken, and 200 after
// draining the body.
func stubAuth() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Millis-Operator-Token") != testToken {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}

func serve(f http.Handler, remote, token, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, endOfCallPath(testNamespace, testAccount), strings.NewReader(body))
	r.RemoteAddr = remote
	if token != "" {
		r.Header.Set("X-Millis-Operator-Token", token)
	}
	w := httptest.NewRecorder()
	f.ServeHTTP(w, r)
	return w
}

// A client is limited by its own failures only, successes take nothing from
// its bucket, and once limited even its valid token waits: otherwise the
// limit would not slow down guessing.
func TestFrontDoorLimitsFailuresPerClient(t *testing.T) {
	g := NewWithT(t)
	clk := clocktesting.NewFakePassiveClock(time.Unix(1_700_000_000, 0))
	f := newFrontDoor(Options{FailureRate: 1, FailureBurst: 3, Clock: clk}.withDefaults(), stubAuth(), logr.Discard())
	const attacker, millis = "198.51.100.1:1000", "203.0.113.9:2000"

	for range 100 {
		g.Expect(serve(f, attacker, testToken, "{}").Code).To(Equal(http.StatusOK), "successes are not counted")
	}
	for range 3 {
		g.Expect(serve(f, attacker, "wrong", "{}").Code).To(Equal(http.StatusUnauthorized))
	}
	w := serve(f, attacker, "wrong", "{}")
	g.Expect(w.Code).To(Equal(http.StatusTooManyRequests))
	g.Expect(w.Header().Get("Retry-After")).To(Equal("1"))
	g.Expect(w.Body.String()).To(ContainSubstring(ReasonRateLimited))
	g.Expect(serve(f, attacker, testToken, "{}").Code).To(Equal(http.StatusTooManyRequests), "own failures: the valid token waits too")
	g.Expect(serve(f, millis, testToken, "{}").Code).To(Equal(http.StatusOK), "others' failures never limit a client")
	g.Expect(serve(f, millis, "wrong", "{}").Code).To(Equal(http.StatusUnauthorized), "another client has its own bucket")

	clk.SetTime(clk.Now().Add(time.Second))
	g.Expect(serve(f, attacker, testToken, "{}").Code).To(Equal(http.StatusOK), "refilled")
	g.Expect(serve(f, attacker, "wrong", "{}").Code).To(Equal(http.StatusUnauthorized), "one token back")
	g.Expect(serve(f, attacker, "wrong", "{}").Code).To(Equal(http.StatusTooManyRequests))
}

func TestFrontDoorCountsUnknownRoutes(t *testing.T) {
	g := NewWithT(t)
	clk := clocktesting.NewFakePassiveClock(time.Unix(1_700_000_000, 0))
	rc := &Receiver{}
	f := newFrontDoor(Options{FailureRate: 1, FailureBurst: 2, Clock: clk}.withDefaults(), rc.Handler(), logr.Discard())
	for _, path := range []string{"/wp-login.php", "/millis/a/b/end-of-call"} { // 404, then 405 (GET)
		r := httptest.NewRequest(http.MethodGet, path, nil)
		w := httptest.NewRecorder()
		f.ServeHTTP(w, r)
		g.Expect(w.Code).To(BeElementOf(http.StatusNotFound, http.StatusMethodNotAllowed))
	}
	w := httptest.NewRecorder()
	f.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/.env", nil))
	g.Expect(w.Code).To(Equal(http.StatusTooManyRequests))
}

// failingBody fails the test if the front door reads it.
type failingBody struct{ t *testing.T }

func (b failingBody) Read([]byte) (int, error) {
	b.t.Error("the body of an oversized request was read")
	return 0, io.EOF
}

func TestFrontDoorBodyLimits(t *testing.T) {
	g := NewWithT(t)
	f := newFrontDoor(Options{MaxBodyBytes: 1024}.withDefaults(), stubAuth(), logr.Discard())

	r := httptest.NewRequest(http.MethodPost, endOfCallPath(testNamespace, testAccount), failingBody{t})
	r.ContentLength = 1 << 30
	r.Header.Set("X-Millis-Operator-Token", testToken)
	w := httptest.NewRecorder()
	f.ServeHTTP(w, r)
	g.Expect(w.Code).To(Equal(http.StatusRequestEntityTooLarge), "declared too large: refused before reading")
	g.Expect(w.Header().Get("Connection")).To(Equal("close"))

	r = httptest.NewRequest(http.MethodPost, endOfCallPath(testNamespace, testAccount), strings.NewReader(strings.Repeat("a", 4096)))
	r.ContentLength = -1 // streamed: only the cap on the body catches it
	r.Header.Set("X-Millis-Operator-Token", testToken)
	w = httptest.NewRecorder()
	f.ServeHTTP(w, r)
	g.Expect(w.Code).To(Equal(http.StatusRequestEntityTooLarge))

	g.Expect(serve(f, "203.0.113.9:1", testToken, strings.Repeat("a", 1024)).Code).To(Equal(http.StatusOK), "exactly the limit")
}

func TestFrontDoorAnswers503WhenSaturated(t *testing.T) {
	g := NewWithT(t)
	entered, release := make(chan struct{}), make(chan struct{})
	blocking := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		entered <- struct{}{}
		<-release
	})
	f := newFrontDoor(Options{MaxInFlight: 2}.withDefaults(), blocking, logr.Discard())
	done := make(chan int, 2)
	for range 2 {
		go func() { done <- serve(f, "203.0.113.9:1", testToken, "{}").Code }()
		<-entered
	}
	w := serve(f, "203.0.113.10:1", testToken, "{}")
	g.Expect(w.Code).To(Equal(http.StatusServiceUnavailable))
	g.Expect(w.Header().Get("Retry-After")).To(Equal("1"))
	close(release)
	g.Expect(<-done).To(Equal(http.StatusOK))
	g.Expect(<-done).To(Equal(http.StatusOK))

	go func() { <-entered }()
	g.Expect(serve(f, "203.0.113.10:1", testToken, "{}").Code).To(Equal(http.StatusOK), "slots are given back")
}

func TestTokenMatches(t *testing.T) {
	cases := []struct {
		reason    string
		got, want string
		match     bool
	}{
		{"equal", "s3cret-token", "s3cret-token", true},
		{"different content, same length", "s3cret-tokeN", "s3cret-token", false},
		{"prefix", "s3cret", "s3cret-token", false},
		{"longer", "s3cret-token-and-more", "s3cret-token", false},
		{"empty got", "", "s3cret-token", false},
		{"both empty never match", "", "", false},
		{"a long guess", strings.Repeat("x", 10000), "s3cret-token", false},
	}
	for _, c := range cases {
		if got := tokenMatches(c.got, c.want); got != c.match {
			t.Errorf("%s: tokenMatches = %v, want %v", c.reason, got, c.match)
		}
	}
}

// An unknown account and a wrong token must look the same from outside.
func TestUnknownAccountAnswersLikeWrongToken(t *testing.T) {
	g := NewWithT(t)
	rc := newTestReceiver(t)
	h := rc.Handler()
	do := func(path, token string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(endOfCallBody(sessionOf(0))))
		r.Header.Set("X-Millis-Operator-Token", token)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	wrong := do(endOfCallPath(testNamespace, testAccount), "wrong")
	for _, w := range []*httptest.ResponseRecorder{
		do(endOfCallPath(testNamespace, "nope"), "wrong"),
		do(endOfCallPath("elsewhere", testAccount), testToken),
		do(endOfCallPath(testNamespace, "nope"), ""),
	} {
		g.Expect(w.Code).To(Equal(http.StatusUnauthorized))
		g.Expect(w.Body.String()).To(Equal(wrong.Body.String()))
		g.Expect(w.Header()).To(Equal(wrong.Header()))
	}
	g.Expect(wrong.Code).To(Equal(http.StatusUnauthorized))
	g.Expect(wrong.Body.String()).NotTo(ContainSubstring(testToken))
	g.Expect(do(endOfCallPath(testNamespace, testAccount), testToken).Code).To(Equal(http.StatusOK))
}

func TestRelayErrorsLeaveOutTheURL(t *testing.T) {
	g := NewWithT(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	addr := ln.Addr().String()
	ln.Close() // nothing listens: the request fails
	_, err = http.Get("http://" + addr + "/hook?from=%2B15550100001&to=%2B15550200000&key=s3cret")
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("15550100001"), "the raw error would leak")
	msg := withoutURL(err)
	g.Expect(msg).To(ContainSubstring("connection refused"))
	g.Expect(msg).NotTo(Or(ContainSubstring("15550100001"), ContainSubstring("15550200000"), ContainSubstring("s3cret")))
}
