package millis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// classes is the answer of every classification helper for one error.
type classes struct {
	Retryable, Definite, Terminal, NotFound, Unauthorized bool
	Status                                                int
}

func classify(err error) classes {
	return classes{
		Retryable:    IsRetryable(err),
		Definite:     IsDefiniteRejection(err),
		Terminal:     IsTerminalError(err),
		NotFound:     IsNotFound(err),
		Unauthorized: IsUnauthorized(err),
		Status:       StatusCode(err),
	}
}

func TestAPIErrors(t *testing.T) {
	longHTML := "<html>\n<body>" + strings.Repeat("é", 400) + "</body></html>"
	tests := []struct {
		name      string
		reason    string
		status    int
		header    http.Header
		body      string
		call      func(context.Context, *Client) error
		want      *APIError
		wantMsg   string
		wantClass classes
	}{
		{
			name:   "422 list detail",
			reason: "FastAPI validation errors are flattened into Detail and kept in Validation",
			status: 422,
			body:   `{"detail":[{"loc":["body","to_phone"],"msg":"field required","type":"value_error.missing"}]}`,
			call:   startCall,
			want: &APIError{StatusCode: 422, Method: "POST", Endpoint: "/start_outbound_call",
				Detail: "body.to_phone: field required",
				Validation: []ValidationError{{Loc: []string{"body", "to_phone"}, Msg: "field required",
					Type: "value_error.missing"}}},
			wantMsg:   "millis: POST /start_outbound_call: 422 Unprocessable Entity: body.to_phone: field required",
			wantClass: classes{Definite: true, Terminal: true, Status: 422},
		},
		{
			name:   "422 several items with index",
			reason: "integer loc elements and several items are joined",
			status: 422,
			body: `{"detail":[{"loc":["body","config","tools",0,"name"],"msg":"field required","type":"missing"},
				{"loc":["body","name"],"msg":"str type expected","type":"type_error.str"}]}`,
			call: func(ctx context.Context, c *Client) error {
				_, err := c.CreateAgent(ctx, "n", json.RawMessage(`{}`))
				return err
			},
			want: &APIError{StatusCode: 422, Method: "POST", Endpoint: "/agents",
				Detail: "body.config.tools.0.name: field required; body.name: str type expected",
				Validation: []ValidationError{
					{Loc: []string{"body", "config", "tools", "0", "name"}, Msg: "field required", Type: "missing"},
					{Loc: []string{"body", "name"}, Msg: "str type expected", Type: "type_error.str"},
				}},
			wantMsg:   "millis: POST /agents: 422 Unprocessable Entity: body.config.tools.0.name: field required; body.name: str type expected",
			wantClass: classes{Definite: true, Terminal: true, Status: 422},
		},
		{
			name:   "400 string detail",
			reason: "HTTPError bodies carry a string detail",
			status: 400,
			body:   `{"detail":"Phone number is not owned by you"}`,
			call:   startCall,
			want: &APIError{StatusCode: 400, Method: "POST", Endpoint: "/start_outbound_call",
				Detail: "Phone number is not owned by you"},
			wantMsg:   "millis: POST /start_outbound_call: 400 Bad Request: Phone number is not owned by you",
			wantClass: classes{Definite: true, Terminal: true, Status: 400},
		},
		{
			name:      "404 no body",
			reason:    "404 has no schema; the message is still useful",
			status:    404,
			call:      func(ctx context.Context, c *Client) error { _, err := c.GetCallLog(ctx, "-Os"); return err },
			want:      &APIError{StatusCode: 404, Method: "GET", Endpoint: "/call-logs/{session_id}"},
			wantMsg:   "millis: GET /call-logs/{session_id}: 404 Not Found",
			wantClass: classes{Definite: true, Terminal: true, NotFound: true, Status: 404},
		},
		{
			name:      "401",
			reason:    "a bad key is not the request's fault: not terminal, not retryable as is",
			status:    401,
			body:      `{"detail":"Unauthorized"}`,
			call:      func(ctx context.Context, c *Client) error { _, err := c.GetUserInfo(ctx); return err },
			want:      &APIError{StatusCode: 401, Method: "GET", Endpoint: "/user/info", Detail: "Unauthorized"},
			wantMsg:   "millis: GET /user/info: 401 Unauthorized: Unauthorized",
			wantClass: classes{Definite: true, Unauthorized: true, Status: 401},
		},
		{
			name:      "403",
			reason:    "forbidden counts as unauthorized",
			status:    403,
			call:      func(ctx context.Context, c *Client) error { _, err := c.ListAgents(ctx); return err },
			want:      &APIError{StatusCode: 403, Method: "GET", Endpoint: "/agents"},
			wantMsg:   "millis: GET /agents: 403 Forbidden",
			wantClass: classes{Definite: true, Unauthorized: true, Status: 403},
		},
		{
			name:      "408",
			reason:    "the server gave up before acting: retryable and definite",
			status:    408,
			call:      startCall,
			want:      &APIError{StatusCode: 408, Method: "POST", Endpoint: "/start_outbound_call"},
			wantMsg:   "millis: POST /start_outbound_call: 408 Request Timeout",
			wantClass: classes{Retryable: true, Definite: true, Status: 408},
		},
		{
			name:   "429 with Retry-After seconds",
			reason: "rate limits are retryable, did not act, and carry the server's delay",
			status: 429,
			header: http.Header{"Retry-After": {"7"}},
			body:   `{"detail":"Too many requests"}`,
			call:   startCall,
			want: &APIError{StatusCode: 429, Method: "POST", Endpoint: "/start_outbound_call",
				Detail: "Too many requests", RetryAfter: 7 * time.Second},
			wantMsg:   "millis: POST /start_outbound_call: 429 Too Many Requests: Too many requests",
			wantClass: classes{Retryable: true, Definite: true, Status: 429},
		},
		{
			name:   "500 HTML",
			reason: "a 5xx may have acted; a non-JSON body becomes a one-line Detail",
			status: 500,
			body:   "<html>\n  <h1>Internal   Server Error</h1>\n</html>",
			call:   startCall,
			want: &APIError{StatusCode: 500, Method: "POST", Endpoint: "/start_outbound_call",
				Detail: "<html> <h1>Internal Server Error</h1> </html>"},
			wantMsg:   "millis: POST /start_outbound_call: 500 Internal Server Error: <html> <h1>Internal Server Error</h1> </html>",
			wantClass: classes{Retryable: true, Status: 500},
		},
		{
			name:   "503 with Retry-After",
			reason: "unavailable is retryable and honours Retry-After",
			status: 503,
			header: http.Header{"Retry-After": {"120"}},
			call:   func(ctx context.Context, c *Client) error { return c.DeleteAgent(ctx, "-Oa") },
			want: &APIError{StatusCode: 503, Method: "DELETE", Endpoint: "/agents/{agent_id}",
				RetryAfter: 2 * time.Minute},
			wantMsg:   "millis: DELETE /agents/{agent_id}: 503 Service Unavailable",
			wantClass: classes{Retryable: true, Status: 503},
		},
		{
			name:   "502 long body",
			reason: "Detail is truncated so an error page cannot flood logs",
			status: 502,
			body:   longHTML,
			call:   func(ctx context.Context, c *Client) error { return c.DeleteAgent(ctx, "-Oa") },
			want: &APIError{StatusCode: 502, Method: "DELETE", Endpoint: "/agents/{agent_id}",
				Detail: truncate(longHTML)},
			wantMsg:   "millis: DELETE /agents/{agent_id}: 502 Bad Gateway: " + truncate(longHTML),
			wantClass: classes{Retryable: true, Status: 502},
		},
		{
			name:   "409 object detail",
			reason: "a detail that is neither string nor list falls back to the raw body",
			status: 409,
			body:   `{"detail":{"code":"busy"}}`,
			call: func(ctx context.Context, c *Client) error {
				return c.UpdateAgent(ctx, "-Oa", "n", json.RawMessage(`{}`))
			},
			want: &APIError{StatusCode: 409, Method: "PUT", Endpoint: "/agents/{agent_id}",
				Detail: `{"detail":{"code":"busy"}}`},
			wantMsg:   `millis: PUT /agents/{agent_id}: 409 Conflict: {"detail":{"code":"busy"}}`,
			wantClass: classes{Definite: true, Terminal: true, Status: 409},
		},
		{
			name:   "404 on phone echoing the number",
			reason: "the template hides the phone, and an echoed phone is redacted from Detail",
			status: 404,
			body:   `{"detail":"Phone +15551234567 not found"}`,
			call:   func(ctx context.Context, c *Client) error { return c.SetPhoneAgent(ctx, "+15551234567", "-Oa") },
			want: &APIError{StatusCode: 404, Method: "POST", Endpoint: "/phones/{phone}/set_agent",
				Detail: "Phone [REDACTED] not found"},
			wantMsg:   "millis: POST /phones/{phone}/set_agent: 404 Not Found: Phone [REDACTED] not found",
			wantClass: classes{Definite: true, Terminal: true, NotFound: true, Status: 404},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.header {
					w.Header()[k] = v
				}
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			}))
			t.Cleanup(srv.Close)

			err := tc.call(t.Context(), newTestClient(t, srv.URL))
			// Wrapping must not hide anything from the helpers.
			wrapped := fmt.Errorf("reconcile: %w", err)
			var got *APIError
			if !errors.As(wrapped, &got) {
				t.Fatalf("%s: got %T %v, want *APIError", tc.reason, err, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s: APIError (-want +got):\n%s", tc.reason, diff)
			}
			if got.Error() != tc.wantMsg {
				t.Errorf("%s: message\n got %s\nwant %s", tc.reason, got.Error(), tc.wantMsg)
			}
			if diff := cmp.Diff(tc.wantClass, classify(wrapped)); diff != "" {
				t.Errorf("%s: classification (-want +got):\n%s", tc.reason, diff)
			}
			d, ok := RetryAfter(wrapped)
			if d != tc.want.RetryAfter || ok != (tc.want.RetryAfter > 0) {
				t.Errorf("%s: RetryAfter = %v, %v; want %v", tc.reason, d, ok, tc.want.RetryAfter)
			}
		})
	}
}

// TestRetryAfterHTTPDate needs a tolerance, so it is not in the table above.
func TestRetryAfterHTTPDate(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", time.Now().Add(30*time.Second).UTC().Format(http.TimeFormat))
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	t.Cleanup(srv.Close)
	_, err := newTestClient(t, srv.URL).ListPhones(t.Context())
	d, ok := RetryAfter(err)
	// HTTP-dates have one-second resolution; allow for that and slow CI.
	if !ok || d < 20*time.Second || d > 31*time.Second {
		t.Errorf("Retry-After as HTTP-date 30s ahead: got %v, %v; want about 30s", d, ok)
	}
	if !IsRetryable(err) || !IsDefiniteRejection(err) {
		t.Errorf("429: retryable=%v definite=%v, want true true", IsRetryable(err), IsDefiniteRejection(err))
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		value, reason string
		want          time.Duration
	}{
		{value: "7", reason: "delta-seconds", want: 7 * time.Second},
		{value: " 7 ", reason: "surrounding spaces are tolerated", want: 7 * time.Second},
		{value: "", reason: "absent", want: 0},
		{value: "0", reason: "zero means no delay", want: 0},
		{value: "-3", reason: "negative is invalid", want: 0},
		{value: "soon", reason: "garbage", want: 0},
		{value: "1.5", reason: "fractions are not delta-seconds", want: 0},
		{value: "Tue, 24 Nov 2026 12:00:45 GMT", reason: "HTTP-date ahead", want: 45 * time.Second},
		{value: "Tue, 24 Nov 2026 11:59:00 GMT", reason: "HTTP-date in the past", want: 0},
		{value: "Tuesday, 24-Nov-26 12:01:00 GMT", reason: "obsolete RFC 850 date", want: time.Minute},
		{value: "99999999999999999999", reason: "overflowing number is garbage", want: 0},
		{value: "999999999", reason: "huge delays are capped", want: maxRetryAfter},
	}
	for _, tc := range tests {
		t.Run(tc.value, func(t *testing.T) {
			if got := parseRetryAfter(tc.value, now); got != tc.want {
				t.Errorf("%s: parseRetryAfter(%q) = %v, want %v", tc.reason, tc.value, got, tc.want)
			}
		})
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		name, reason, in, want string
	}{
		{name: "short", reason: "short text is kept", in: "not found", want: "not found"},
		{name: "whitespace", reason: "collapsed to one line for logs", in: " a\n\tb  c ", want: "a b c"},
		{name: "exact", reason: "the limit itself is kept", in: strings.Repeat("a", maxDetailLen), want: strings.Repeat("a", maxDetailLen)},
		{name: "long ascii", reason: "cut at the limit", in: strings.Repeat("a", 500), want: strings.Repeat("a", maxDetailLen) + "…"},
		{name: "multibyte", reason: "never cut inside a rune", in: "a" + strings.Repeat("é", 300),
			want: "a" + strings.Repeat("é", (maxDetailLen-1)/2) + "…"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := truncate(tc.in); got != tc.want {
				t.Errorf("%s: got %q, want %q", tc.reason, got, tc.want)
			}
		})
	}
}

// closedAddr returns an address on which nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// hijackServer lets a handler misbehave at the TCP level.
func hijackServer(t *testing.T, raw string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		_, _ = buf.WriteString(raw)
		_ = buf.Flush()
		_ = conn.Close()
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestTransportErrors(t *testing.T) {
	const phone = "+15551234567"
	tests := []struct {
		name          string
		reason        string
		baseURL       func(t *testing.T) string
		ctx           func(t *testing.T) context.Context
		wantIs        error
		wantRetryable bool
	}{
		{
			name:          "connection refused",
			reason:        "Millis unreachable: retry later",
			baseURL:       func(t *testing.T) string { return "http://" + closedAddr(t) },
			wantIs:        syscall.ECONNREFUSED,
			wantRetryable: true,
		},
		{
			name:          "closed without answer",
			reason:        "a dropped connection may be transient",
			baseURL:       func(t *testing.T) string { return hijackServer(t, "").URL },
			wantIs:        io.EOF,
			wantRetryable: true,
		},
		{
			name:   "truncated body",
			reason: "a body cut short is a transport failure, not a decode failure",
			baseURL: func(t *testing.T) string {
				return hijackServer(t, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"id\":").URL
			},
			wantIs:        io.ErrUnexpectedEOF,
			wantRetryable: true,
		},
		{
			name:    "caller canceled",
			reason:  "the caller gave up; retrying is not this package's call",
			baseURL: func(t *testing.T) string { return "http://" + closedAddr(t) },
			ctx: func(t *testing.T) context.Context {
				ctx, cancel := context.WithCancel(t.Context())
				cancel()
				return ctx
			},
			wantIs:        context.Canceled,
			wantRetryable: false,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			if tc.ctx != nil {
				ctx = tc.ctx(t)
			}
			var info RequestInfo
			c := newTestClient(t, tc.baseURL(t), WithObserver(func(i RequestInfo) { info = i }))
			_, err := c.GetPhone(ctx, phone)
			if err == nil {
				t.Fatalf("%s: got nil error", tc.reason)
			}
			if !errors.Is(err, tc.wantIs) {
				t.Errorf("%s: %v does not wrap %v", tc.reason, err, tc.wantIs)
			}
			want := classes{Retryable: tc.wantRetryable}
			if diff := cmp.Diff(want, classify(err)); diff != "" {
				t.Errorf("%s: classification (-want +got):\n%s", tc.reason, diff)
			}
			if !strings.HasPrefix(err.Error(), "millis: GET /phones/{phone}: ") {
				t.Errorf("%s: message %q must name the method and template", tc.reason, err)
			}
			if strings.Contains(err.Error(), "15551234567") {
				t.Errorf("%s: message %q leaks the phone number", tc.reason, err)
			}
			if info.Endpoint != "/phones/{phone}" || info.StatusCode != 0 {
				t.Errorf("%s: observer got %q status %d, want the template and 0", tc.reason, info.Endpoint, info.StatusCode)
			}
		})
	}
}

// TestErrorsNeverContainKey makes one error of every kind and checks that
// the API key appears in none of them, even when the server echoes it.
func TestErrorsNeverContainKey(t *testing.T) {
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"detail":"invalid key `+r.Header.Get("Authorization")+`"}`)
	}))
	t.Cleanup(echo.Close)
	echoRaw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, "upstream said: authorization="+r.Header.Get("Authorization"))
	}))
	t.Cleanup(echoRaw.Close)
	notJSON := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "key "+r.Header.Get("Authorization")+" accepted")
	}))
	t.Cleanup(notJSON.Close)
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Consume the body so that the server notices the client leaving.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	t.Cleanup(hang.Close)

	tests := []struct {
		name, reason, baseURL string
		opts                  []Option
	}{
		{name: "api error with echoed key", reason: "JSON detail echoing the key", baseURL: echo.URL},
		{name: "api error raw body", reason: "raw body fallback echoing the key", baseURL: echoRaw.URL},
		{name: "decode error", reason: "undecodable 2xx body containing the key", baseURL: notJSON.URL},
		{name: "connection refused", reason: "transport error to a closed port", baseURL: "http://" + closedAddr(t)},
		{name: "timeout", reason: "per-request timeout", baseURL: hang.URL, opts: []Option{WithTimeout(30 * time.Millisecond)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var infos []RequestInfo
			opts := append([]Option{WithObserver(func(i RequestInfo) { infos = append(infos, i) })}, tc.opts...)
			_, err := newTestClient(t, tc.baseURL, opts...).StartOutboundCall(t.Context(),
				StartOutboundCallRequest{FromPhone: "+15550000001", ToPhone: "+15550000002"})
			if err == nil {
				t.Fatalf("%s: got nil error", tc.reason)
			}
			for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", infos)} {
				if strings.Contains(text, testKey) {
					t.Errorf("%s: the API key leaked: %s", tc.reason, text)
				}
			}
			if len(infos) != 1 {
				t.Errorf("%s: observer called %d times, want 1", tc.reason, len(infos))
			}
		})
	}
}

func TestClassificationOfPlainErrors(t *testing.T) {
	tests := []struct {
		name, reason string
		err          error
		want         classes
	}{
		{name: "nil", reason: "no error, nothing to classify", err: nil},
		{name: "foreign error", reason: "errors from elsewhere are not ours to retry", err: errors.New("boom")},
		{name: "bare deadline", reason: "only transport failures of this client count", err: context.DeadlineExceeded},
		{name: "wrapped 404", reason: "errors.As sees through wrapping",
			err:  fmt.Errorf("outer: %w", &APIError{StatusCode: 404}),
			want: classes{Definite: true, Terminal: true, NotFound: true, Status: 404}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, classify(tc.err)); diff != "" {
				t.Errorf("%s (-want +got):\n%s", tc.reason, diff)
			}
			if _, ok := RetryAfter(tc.err); ok {
				t.Errorf("%s: RetryAfter reported a delay", tc.reason)
			}
		})
	}
}
