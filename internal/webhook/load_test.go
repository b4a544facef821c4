package webhook

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	ctrl "sigs.k8s.io/controller-runtime"
)

// loadOptions are short limits, so that the attack plays out in seconds.
var loadOptions = Options{
	ReadHeaderTimeout: 300 * time.Millisecond,
	ReadTimeout:       time.Second,
	WriteTimeout:      3 * time.Second,
	IdleTimeout:       2 * time.Second,
	MaxHeaderBytes:    4 << 10,
	MaxBodyBytes:      64 << 10,
	MaxInFlight:       64, // more than all clients' requests at once: no 503 here
	FailureRate:       5,
	FailureBurst:      5,
	MaxTrackedClients: 16,
}

// Loopback source addresses tell the clients apart (Linux routes all of
// 127.0.0.0/8 to lo).
var (
	legitIP      = net.IPv4(127, 0, 0, 1)
	attackerIPs  = []net.IP{net.IPv4(127, 0, 0, 2), net.IPv4(127, 0, 0, 3), net.IPv4(127, 0, 0, 4), net.IPv4(127, 0, 0, 5)}
	slowIP       = net.IPv4(127, 0, 0, 6)
	oversizeIP   = net.IPv4(127, 0, 0, 7)
	sprayIPCount = 40 // 127.0.1.1 onwards, one failure each
)

func dialerFrom(ip net.IP) *net.Dialer {
	return &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 2 * time.Second}
}

func clientFrom(ip net.IP) *http.Client {
	return &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{DialContext: dialerFrom(ip).DialContext, MaxIdleConnsPerHost: 4},
	}
}

// tally counts responses by status code.
type tally struct {
	mu    sync.Mutex
	codes map[int]int
	errs  int
}

func (t *tally) add(code int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.codes == nil {
		t.codes = map[int]int{}
	}
	t.codes[code]++
}

func (t *tally) addErr() { t.mu.Lock(); t.errs++; t.mu.Unlock() }

func (t *tally) total() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.errs
	for _, c := range t.codes {
		n += c
	}
	return n
}

func (t *tally) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return fmt.Sprintf("%v errors=%d", t.codes, t.errs)
}

func counterValue(t *testing.T, labels ...string) float64 {
	var m dto.Metric
	if err := deliveries.WithLabelValues(labels...).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func post(c *http.Client, url, token, body string) (int, http.Header, error) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("X-Millis-Operator-Token", token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header, nil
}

func prefetch(c *http.Client, base, session string) (int, error) {
	req, err := http.NewRequest(http.MethodGet, base+"/millis/"+testNamespace+"/"+testAccount+"/prefetch?session_id="+session+"&from=%2B15550100001&to=%2B15550200000", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-Millis-Operator-Token", testToken)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// slowHeaders dials from ip and sends a request's headers a byte every
// 50ms (never finishing: they are long); silent sends nothing at all. It
// returns how long the server took to close the connection, or an error if
// it did not within bound.
func slowHeaders(addr string, ip net.IP, silent bool, bound time.Duration) (time.Duration, error) {
	conn, err := dialerFrom(ip).Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	start := time.Now()
	closed := make(chan error, 1)
	go func() {
		_ = conn.SetReadDeadline(start.Add(bound))
		buf := make([]byte, 256)
		for {
			if _, err := conn.Read(buf); err != nil {
				closed <- err
				return
			}
		}
	}()
	req := "POST " + endOfCallPath(testNamespace, testAccount) + " HTTP/1.1\r\nHost: receiver\r\nX-Padding: " + strings.Repeat("p", 2000)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case err := <-closed:
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return time.Since(start), fmt.Errorf("server kept the connection past %s", bound)
			}
			return time.Since(start), nil // EOF or reset: closed by the server
		case <-tick.C:
			if !silent && i < len(req) {
				_, _ = conn.Write([]byte{req[i]}) // fails once the server has closed; the read tells
			}
		}
	}
}

// slowBody sends complete headers with the right token and then dribbles
// the body; the server must give up on it (ReadTimeout) and close the
// connection. It returns the status the server answered, if any.
func slowBody(addr string, ip net.IP, bound time.Duration) (int, error) {
	conn, err := dialerFrom(ip).Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	body := endOfCallBody(sessionOf(0)) + strings.Repeat(" ", 1000)
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: receiver\r\nX-Millis-Operator-Token: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
		endOfCallPath(testNamespace, testAccount), testToken, len(body))
	if _, err := io.WriteString(conn, head); err != nil {
		return 0, err
	}
	_ = conn.SetReadDeadline(time.Now().Add(bound))
	answered := make(chan int, 1)
	closed := make(chan error, 1)
	go func() {
		br := bufio.NewReader(conn)
		if resp, err := http.ReadResponse(br, nil); err == nil {
			answered <- resp.StatusCode
			_, err = io.Copy(io.Discard, br)
			closed <- err
			return
		} else {
			answered <- 0
			closed <- err
		}
	}()
	go func() {
		for i := 0; i < len(body); i++ {
			if _, err := conn.Write([]byte{body[i]}); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	code := <-answered
	err = <-closed
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return code, fmt.Errorf("server kept a slow body's connection past %s", bound)
	}
	return code, nil
}

// oversized declares a body far over the limit and sends none of it: a 413
// proves the server answered without reading it.
func oversized(addr string, ip net.IP, token string) (int, error) {
	conn, err := dialerFrom(ip).Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: receiver\r\nX-Millis-Operator-Token: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
		endOfCallPath(testNamespace, testAccount), token, 64<<20)
	if _, err := io.WriteString(conn, head); err != nil {
		return 0, err
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// streamedOversized sends, chunked, more than the limit with the right
// token, without ever ending the body: the cap on the body stops it.
func streamedOversized(addr string, ip net.IP) (int, error) {
	conn, err := dialerFrom(ip).Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	chunk := strings.Repeat("a", int(loadOptions.MaxBodyBytes)*2)
	msg := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: receiver\r\nX-Millis-Operator-Token: %s\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n",
		endOfCallPath(testNamespace, testAccount), testToken, len(chunk), chunk)
	if _, err := io.WriteString(conn, msg); err != nil {
		return 0, err
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestReceiverStaysUpUnderAttack serves the real receiver on loopback and,
// while a legitimate client keeps delivering end-of-call webhooks, floods
// it with wrong tokens from several addresses, slow headers and bodies,
// oversized bodies and a spray of one-shot addresses. Every legitimate
// delivery must succeed, and afterwards the connections, goroutines and
// the limiter's table must be back within bounds. It asserts outcomes,
// never speed.
func TestReceiverStaysUpUnderAttack(t *testing.T) {
	g := NewWithT(t)
	probe, err := dialerFrom(attackerIPs[0]).Dial("tcp", "127.0.0.1:1")
	var opErr *net.OpError
	if err != nil && errors.As(err, &opErr) && opErr.Op == "dial" && strings.Contains(err.Error(), "assign") {
		t.Fatalf("this test needs the loopback addresses 127.0.0.2 and up (Linux): %v", err)
	}
	if probe != nil {
		probe.Close()
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	addr := ln.Addr().String()
	base := "http://" + addr
	srv := &Server{Handler: newTestReceiver(t).Handler(), Options: loadOptions, Listener: ln, Log: ctrl.Log.WithName("webhook-test")}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Start(ctx) }()
	defer func() {
		stop()
		g.Expect(<-served).To(Succeed(), "clean shutdown")
	}()

	url := base + endOfCallPath(testNamespace, testAccount)
	legit := clientFrom(legitIP)
	code, _, err := post(legit, url, testToken, endOfCallBody(sessionOf(0)))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(code).To(Equal(http.StatusOK), "warm-up delivery")
	legit.CloseIdleConnections()
	g.Eventually(srv.OpenConnections, 5*time.Second, 20*time.Millisecond).Should(BeZero())
	goroutinesBefore := runtime.NumGoroutine()
	rateLimitedBefore := counterValue(t, KindEndOfCall, resultRejected, ReasonRateLimited)

	attackCtx, endAttack := context.WithCancel(context.Background())
	defer endAttack()
	var (
		wg                                  sync.WaitGroup
		legitTally, attackTally, sprayTally tally
		legitBad                            atomic.Value
		attackerFirst                       = make([]atomic.Int32, len(attackerIPs))
		attackerSaw429, attackerSaw2xx      = make([]atomic.Bool, len(attackerIPs)), make([]atomic.Bool, len(attackerIPs))
		missingRetryAfter                   atomic.Int32
		slowErrs                            = make(chan error, 16)
		slowClosedIn                        = make(chan time.Duration, 16)
		slowBodyCodes                       = make(chan int, 4)
		oversizeCodes, streamedCodes        = make(chan int, 8), make(chan int, 4)
		attackClients                       []*http.Client
	)

	// (d) The legitimate client delivers every 10ms until the attack ends;
	// one request in ten is a prefetch.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; attackCtx.Err() == nil; i++ {
			var code int
			var err error
			if i%10 == 9 {
				code, err = prefetch(legit, base, sessionOf(i%fixtureCalls))
			} else {
				code, _, err = post(legit, url, testToken, endOfCallBody(sessionOf(i%fixtureCalls)))
			}
			if err != nil {
				legitTally.addErr()
				legitBad.CompareAndSwap(nil, err.Error())
			} else {
				legitTally.add(code)
				if code/100 != 2 {
					legitBad.CompareAndSwap(nil, fmt.Sprintf("status %d", code))
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()

	// (a) Two goroutines per attacker address flood with wrong tokens.
	for a, ip := range attackerIPs {
		c := clientFrom(ip)
		attackClients = append(attackClients, c)
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; n < 1000 && attackCtx.Err() == nil; n++ {
					code, h, err := post(c, url, "wrong-"+fmt.Sprint(n), endOfCallBody(sessionOf(1)))
					if err != nil {
						attackTally.addErr()
						continue
					}
					attackTally.add(code)
					attackerFirst[a].CompareAndSwap(0, int32(code))
					switch {
					case code == http.StatusTooManyRequests:
						attackerSaw429[a].Store(true)
						if h.Get("Retry-After") == "" {
							missingRetryAfter.Add(1)
						}
					case code/100 == 2:
						attackerSaw2xx[a].Store(true)
					}
					time.Sleep(2 * time.Millisecond)
				}
			}()
		}
	}

	// (b) Slowloris: headers a byte at a time, and connections that say
	// nothing; then bodies a byte at a time behind the right token.
	headerBound := 10 * loadOptions.ReadHeaderTimeout
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := slowHeaders(addr, slowIP, i%3 == 0, headerBound)
			if err != nil {
				slowErrs <- err
				return
			}
			slowClosedIn <- d
		}()
	}
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, err := slowBody(addr, slowIP, 10*loadOptions.ReadTimeout)
			if err != nil {
				slowErrs <- err
				return
			}
			slowBodyCodes <- code
		}()
	}

	// (c) Oversized bodies, declared (never sent) and streamed.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 3 {
			token := testToken
			if i == 1 {
				token = "wrong"
			}
			code, err := oversized(addr, oversizeIP, token)
			if err != nil {
				slowErrs <- fmt.Errorf("oversized: %w", err)
				continue
			}
			oversizeCodes <- code
		}
		for range 2 {
			code, err := streamedOversized(addr, oversizeIP)
			if err != nil {
				slowErrs <- fmt.Errorf("streamed oversized: %w", err)
				continue
			}
			streamedCodes <- code
		}
	}()

	// Let the flood run, then spray one-shot addresses at the limiter.
	time.Sleep(1500 * time.Millisecond)
	var sprayWG sync.WaitGroup
	for i := range sprayIPCount {
		sprayWG.Add(1)
		go func() {
			defer sprayWG.Done()
			c := clientFrom(net.IPv4(127, 0, 1, byte(1+i)))
			defer c.CloseIdleConnections()
			code, _, err := post(c, url, "wrong", endOfCallBody(sessionOf(2)))
			if err != nil {
				sprayTally.addErr()
				return
			}
			sprayTally.add(code)
		}()
	}
	sprayWG.Wait()
	tracked := srv.door().failures.tracked()
	endAttack()
	wg.Wait()
	close(slowErrs)
	close(slowClosedIn)
	close(slowBodyCodes)
	close(oversizeCodes)
	close(streamedCodes)

	// (d) The key assertion: every legitimate delivery succeeded.
	g.Expect(legitBad.Load()).To(BeNil(), "legitimate deliveries: %s", &legitTally)
	g.Expect(legitTally.total()).To(BeNumerically(">=", 20), "the legitimate client kept delivering")

	// (a) Each attacker got 401 first, then 429, and never a 2xx.
	for a := range attackerIPs {
		g.Expect(attackerFirst[a].Load()).To(BeEquivalentTo(http.StatusUnauthorized), "attacker %s first answer", attackerIPs[a])
		g.Expect(attackerSaw429[a].Load()).To(BeTrue(), "attacker %s was rate limited", attackerIPs[a])
		g.Expect(attackerSaw2xx[a].Load()).To(BeFalse(), "attacker %s got through", attackerIPs[a])
	}
	g.Expect(missingRetryAfter.Load()).To(BeZero(), "every 429 carries Retry-After")
	g.Expect(attackTally.errs).To(BeZero(), "attackers are answered, not dropped: %s", &attackTally)
	g.Expect(counterValue(t, KindEndOfCall, resultRejected, ReasonRateLimited)-rateLimitedBefore).
		To(BeNumerically(">", 0), "rate-limited rejections are counted")

	// (b) The server closed every slow connection.
	for err := range slowErrs {
		t.Error(err)
	}
	var slowest time.Duration
	closedCount := 0
	for d := range slowClosedIn {
		closedCount++
		slowest = max(slowest, d)
	}
	g.Expect(closedCount).To(Equal(6))
	var bodyCodes []int
	for code := range slowBodyCodes {
		bodyCodes = append(bodyCodes, code)
		g.Expect(code/100).NotTo(Equal(2), "a body that never arrives is not accepted")
	}
	g.Expect(bodyCodes).To(HaveLen(2))

	// (c) Oversized bodies: 413, whether declared or streamed.
	var overs, streamed []int
	for code := range oversizeCodes {
		overs = append(overs, code)
	}
	for code := range streamedCodes {
		streamed = append(streamed, code)
	}
	g.Expect(overs).To(HaveLen(3))
	g.Expect(overs).To(HaveEach(http.StatusRequestEntityTooLarge))
	g.Expect(streamed).To(HaveLen(2))
	g.Expect(streamed).To(HaveEach(http.StatusRequestEntityTooLarge))

	// (e) The spray was answered, and the limiter's table stayed bounded.
	g.Expect(sprayTally.codes[http.StatusUnauthorized]).To(Equal(sprayIPCount), "one-shot addresses: %s", &sprayTally)
	g.Expect(tracked).To(BeNumerically("<=", loadOptions.MaxTrackedClients))
	g.Expect(srv.door().failures.tracked()).To(BeNumerically("<=", loadOptions.MaxTrackedClients))

	// (e) Once the clients let go, connections and goroutines come back
	// down to where they were before the attack.
	legit.CloseIdleConnections()
	for _, c := range attackClients {
		c.CloseIdleConnections()
	}
	g.Eventually(srv.OpenConnections, 10*time.Second, 20*time.Millisecond).Should(BeZero())
	const tolerance = 5
	var goroutinesAfter int
	g.Eventually(func() int {
		goroutinesAfter = runtime.NumGoroutine()
		return goroutinesAfter
	}, 10*time.Second, 50*time.Millisecond).Should(BeNumerically("<=", goroutinesBefore+tolerance))

	t.Logf("legitimate: %d requests, %s", legitTally.total(), &legitTally)
	t.Logf("attackers (%d addresses): %d requests, %s", len(attackerIPs), attackTally.total(), &attackTally)
	t.Logf("spray: %d addresses, %s; limiter tracked %d (cap %d)", sprayIPCount, &sprayTally, tracked, loadOptions.MaxTrackedClients)
	t.Logf("slow headers: %d closed by the server, slowest after %s (bound %s); slow bodies answered %v", closedCount, slowest.Round(time.Millisecond), headerBound, bodyCodes)
	t.Logf("oversized: declared %v, streamed %v", overs, streamed)
	t.Logf("goroutines: %d before the attack, %d after", goroutinesBefore, goroutinesAfter)
}
