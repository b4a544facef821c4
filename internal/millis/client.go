package millis

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	// DefaultTimeout bounds every request unless WithTimeout says otherwise.
	DefaultTimeout = 15 * time.Second
	// DefaultUserAgent is sent unless WithUserAgent says otherwise.
	DefaultUserAgent = "millis-operator"

	// maxResponseBytes bounds how much of a response body is read, so that a
	// misbehaving server or proxy cannot exhaust the operator's memory. The
	// largest expected answer is a page of 100 call logs with transcripts.
	maxResponseBytes = 10 << 20
)

// regionBaseURLs maps Millis regions to their REST base URLs
// (docs/millis-api-assumptions.md, "Base URLs").
var regionBaseURLs = map[string]string{
	"us-west": "https://api-west.millis.ai",
	"eu-west": "https://api-eu-west.millis.ai",
}

// BaseURLForRegion returns the REST base URL of a Millis region.
func BaseURLForRegion(region string) (string, error) {
	if u, ok := regionBaseURLs[region]; ok {
		return u, nil
	}
	return "", fmt.Errorf("millis: unknown region %q (valid: eu-west, us-west)", region)
}

// RequestInfo describes one finished HTTP request, for metrics and logs.
type RequestInfo struct {
	Method string
	// Endpoint is the path template, e.g. "/call-logs/{session_id}"; never a
	// concrete id or phone number, so it is safe as a metric label.
	Endpoint string
	// StatusCode is 0 when no HTTP answer arrived.
	StatusCode int
	Duration   time.Duration
	// Err is what the method returned for this request, or nil.
	Err error
}

// Client is the HTTP implementation of Interface. It is safe for concurrent
// use. It never retries: retry policy (and, for StartOutboundCall, the
// look-up-before-retry dance) belongs to the caller.
type Client struct {
	baseURL    string // scheme://host[/prefix], no trailing slash
	apiKey     string
	httpClient *http.Client
	timeout    time.Duration
	userAgent  string
	observer   func(RequestInfo)
}

var _ Interface = (*Client)(nil)

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (transport, proxies, TLS). Its own
// Timeout, if any, applies in addition to the per-request timeout.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.httpClient = hc } }

// WithTimeout sets the per-request timeout, applied even when the caller's
// context has no deadline. It must be positive.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// WithObserver registers fn to be called after every request that was sent,
// from the calling goroutine. It must be fast and safe for concurrent use.
func WithObserver(fn func(RequestInfo)) Option { return func(c *Client) { c.observer = fn } }

// New returns a Client for baseURL (see BaseURLForRegion) authenticating
// with the private apiKey. Surrounding whitespace is trimmed from apiKey,
// because keys mounted from Secrets often end in a newline.
func New(baseURL, apiKey string, opts ...Option) (*Client, error) {
	base, err := parseBaseURL(baseURL)
	if err != nil {
		return nil, err
	}
	apiKey = strings.TrimSpace(apiKey)
	if err := validateAPIKey(apiKey); err != nil {
		return nil, err
	}
	c := &Client{
		baseURL:    base,
		apiKey:     apiKey,
		httpClient: &http.Client{},
		timeout:    DefaultTimeout,
		userAgent:  DefaultUserAgent,
	}
	for _, opt := range opts {
		opt(c)
	}
	if c.httpClient == nil {
		return nil, errors.New("millis: WithHTTPClient: nil *http.Client")
	}
	if c.timeout <= 0 {
		return nil, fmt.Errorf("millis: WithTimeout: must be positive, got %s", c.timeout)
	}
	return c, nil
}

// parseBaseURL checks that raw is an absolute http(s) URL and returns it
// without a trailing slash. A path prefix is allowed (for proxies).
func parseBaseURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err // its message repeats the URL, which may hold userinfo
		}
		return "", fmt.Errorf("millis: invalid base URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("millis: invalid base URL: scheme must be http or https, got %q", u.Scheme)
	}
	if u.Host == "" {
		return "", errors.New("millis: invalid base URL: no host")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", errors.New("millis: invalid base URL: must not have a query or fragment")
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// validateAPIKey rejects keys net/http would refuse to send as a header
// value; the error never repeats the key.
func validateAPIKey(key string) error {
	if key == "" {
		return errors.New("millis: API key is empty")
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f {
			return errors.New("millis: API key contains control characters")
		}
	}
	return nil
}

// request describes one API call.
type request struct {
	method string
	// endpoint is the path template; each {placeholder} is filled, in order,
	// from params.
	endpoint string
	params   []string
	query    url.Values
	// body is JSON-encoded when non-nil.
	body any
	// out receives the decoded 2xx body. When nil the body is ignored, so an
	// empty or non-JSON 2xx still counts as success.
	out any
	// check, if set, validates out after decoding; its error is reported
	// like a decode error.
	check func() error
	// redact lists values (e.g. phone numbers) to scrub from error details,
	// in addition to the API key.
	redact []string
}

// do sends r and decodes the answer into r.out. Errors are *APIError,
// *transportError, or wrap ErrInvalidResponse or ErrInvalidRequest.
func (c *Client) do(ctx context.Context, r request) error {
	// The timeout also covers reading the body, hence cancel only on return.
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	httpReq, err := c.newHTTPRequest(ctx, r)
	if err != nil {
		// Not sent, so not observed: the observer counts requests.
		return fmt.Errorf("millis: %s %s: %w: %w", r.method, r.endpoint, ErrInvalidRequest, err)
	}

	start := time.Now()
	status, err := c.roundTrip(httpReq, r)
	if c.observer != nil {
		c.observer(RequestInfo{
			Method:     r.method,
			Endpoint:   r.endpoint,
			StatusCode: status,
			Duration:   time.Since(start),
			Err:        err,
		})
	}
	return err
}

// roundTrip sends req and turns the answer into r.out or an error. It
// returns the HTTP status, or 0 if none arrived.
func (c *Client) roundTrip(req *http.Request, r request) (int, error) {
	resp, err := c.httpClient.Do(req)
	if err != nil {
		return 0, newTransportError(r, err)
	}
	defer resp.Body.Close()

	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		// Status 0: an answer cut short counts as no answer, in metrics too.
		return 0, newTransportError(r, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, newAPIError(r.method, r.endpoint, resp, c.redact(body, r.redact))
	}
	if r.out == nil {
		return resp.StatusCode, nil
	}
	err = decodeBody(body, r.out)
	if err == nil && r.check != nil {
		err = r.check()
	}
	if err != nil {
		return resp.StatusCode, fmt.Errorf("millis: %s %s: %d answer: %w: %w",
			r.method, r.endpoint, resp.StatusCode, ErrInvalidResponse, err)
	}
	return resp.StatusCode, nil
}

// newHTTPRequest builds the HTTP request for r, with headers.
func (c *Client) newHTTPRequest(ctx context.Context, r request) (*http.Request, error) {
	path, err := expandPath(r.endpoint, r.params)
	if err != nil {
		return nil, err
	}
	target := c.baseURL + path
	if len(r.query) > 0 {
		target += "?" + r.query.Encode()
	}

	var body io.Reader
	if r.body != nil {
		encoded, err := json.Marshal(r.body)
		if err != nil {
			return nil, fmt.Errorf("encoding body: %w", err)
		}
		body = bytes.NewReader(encoded)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, target, body)
	if err != nil {
		// The message would contain the URL; keep only the cause.
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err
		}
		return nil, err
	}
	req.Header.Set("Authorization", c.apiKey) // raw key, no "Bearer"
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// expandPath fills template's {placeholders} with escaped params.
func expandPath(template string, params []string) (string, error) {
	var b strings.Builder
	rest := template
	for i := 0; ; i++ {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			if i != len(params) {
				return "", fmt.Errorf("path %s: %d values for %d placeholders", template, len(params), i)
			}
			b.WriteString(rest)
			return b.String(), nil
		}
		closing := strings.IndexByte(rest[open:], '}')
		if closing < 0 || i >= len(params) {
			return "", fmt.Errorf("path %s: placeholders and values do not match", template)
		}
		name := rest[open+1 : open+closing]
		segment, err := escapeSegment(params[i])
		if err != nil {
			return "", fmt.Errorf("%s: %w", name, err)
		}
		b.WriteString(rest[:open])
		b.WriteString(segment)
		rest = rest[open+closing+1:]
	}
}

// escapeSegment escapes one path segment. url.PathEscape leaves '+' alone,
// but some servers decode '+' in paths as a space, so an E.164 number's '+'
// is sent as %2B. "." and ".." are refused because proxies would resolve
// them and the request would reach another resource.
func escapeSegment(value string) (string, error) {
	switch value {
	case "":
		return "", errors.New("empty path segment")
	case ".", "..":
		return "", fmt.Errorf("path segment %q not allowed", value)
	}
	return strings.ReplaceAll(url.PathEscape(value), "+", "%2B"), nil
}

// newTransportError wraps a failure to get an answer. *url.Error is
// unwrapped because its message carries the full URL, which can contain a
// phone number.
func newTransportError(r request, err error) error {
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		err = urlErr.Err
	}
	return &transportError{method: r.method, endpoint: r.endpoint, err: err}
}

// redact scrubs the API key and the given values from an error body before
// any of it can reach an error message.
func (c *Client) redact(body []byte, values []string) []byte {
	body = bytes.ReplaceAll(body, []byte(c.apiKey), []byte("[REDACTED]"))
	for _, v := range values {
		if v != "" {
			body = bytes.ReplaceAll(body, []byte(v), []byte("[REDACTED]"))
		}
	}
	return body
}

// decodeBody decodes a 2xx body the caller needs. Empty bodies, null and
// bodies over maxResponseBytes are errors, as is trailing garbage.
func decodeBody(body []byte, out any) error {
	if len(body) > maxResponseBytes {
		return fmt.Errorf("body larger than %d bytes", maxResponseBytes)
	}
	trimmed := bytes.TrimSpace(body)
	switch string(trimmed) {
	case "":
		return errors.New("empty body")
	case "null":
		return errors.New("body is null")
	}
	return json.Unmarshal(trimmed, out)
}

// requireField fails when a field the caller must store is missing.
func requireField(name, value string) error {
	if value == "" {
		return fmt.Errorf("no %s", name)
	}
	return nil
}

// formatFloat renders a float query value without an exponent, so that a
// cursor such as 1729840680.886249 reaches the server digit for digit.
func formatFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// StartOutboundCall implements Interface. A 2xx answer without a session_id
// is an ErrInvalidResponse error: the call may have been placed.
func (c *Client) StartOutboundCall(ctx context.Context, req StartOutboundCallRequest) (*CallRegistration, error) {
	var out CallRegistration
	err := c.do(ctx, request{
		method:   http.MethodPost,
		endpoint: "/start_outbound_call",
		body:     req,
		out:      &out,
		check:    func() error { return requireField("session_id", out.SessionID) },
		redact:   []string{req.ToPhone, req.FromPhone},
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// GetCallLog implements Interface.
func (c *Client) GetCallLog(ctx context.Context, sessionID string) (*CallHistory, error) {
	var out CallHistory
	err := c.do(ctx, request{
		method:   http.MethodGet,
		endpoint: "/call-logs/{session_id}",
		params:   []string{sessionID},
		out:      &out,
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// ListCallLogs implements Interface.
func (c *Client) ListCallLogs(ctx context.Context, opts ListCallLogsOptions) (*CallHistoryPage, error) {
	var out CallHistoryPage
	err := c.do(ctx, request{
		method:   http.MethodGet,
		endpoint: "/call-logs",
		query:    opts.values(),
		out:      &out,
		redact:   []string{opts.PhoneNumber},
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// values renders the non-zero options as query parameters.
func (o ListCallLogsOptions) values() url.Values {
	q := url.Values{}
	if o.Limit != 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	for key, f := range map[string]float64{
		"start_after_ts": o.StartAfterTS,
		"start_time":     o.StartTime,
		"end_time":       o.EndTime,
	} {
		if f != 0 {
			q.Set(key, formatFloat(f))
		}
	}
	for key, s := range map[string]string{
		"agent_id":     o.AgentID,
		"call_status":  o.CallStatus,
		"phone_number": o.PhoneNumber,
	} {
		if s != "" {
			q.Set(key, s)
		}
	}
	return q
}

// TerminateSession implements Interface. The answer's body is ignored.
func (c *Client) TerminateSession(ctx context.Context, sessionID string, message string) error {
	// Millis types the body as optional; {} keeps Content-Type honest.
	body := struct {
		Message string `json:"message,omitempty"`
	}{Message: message}
	return c.do(ctx, request{
		method:   http.MethodPost,
		endpoint: "/sessions/{session_id}/terminate",
		params:   []string{sessionID},
		body:     body,
	})
}

// GetUserInfo implements Interface.
func (c *Client) GetUserInfo(ctx context.Context) (*UserInfo, error) {
	var out UserInfo
	if err := c.do(ctx, request{method: http.MethodGet, endpoint: "/user/info", out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListAgents implements Interface.
func (c *Client) ListAgents(ctx context.Context) ([]Agent, error) {
	var out []Agent
	if err := c.do(ctx, request{method: http.MethodGet, endpoint: "/agents", out: &out}); err != nil {
		return nil, err
	}
	return out, nil
}

// GetAgent implements Interface.
func (c *Client) GetAgent(ctx context.Context, agentID string) (*Agent, error) {
	var out Agent
	err := c.do(ctx, request{
		method:   http.MethodGet,
		endpoint: "/agents/{agent_id}",
		params:   []string{agentID},
		out:      &out,
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// agentBody is the body of POST /agents and PUT /agents/{agent_id}.
type agentBody struct {
	Name   string          `json:"name"`
	Config json.RawMessage `json:"config"`
}

// CreateAgent implements Interface. A 2xx answer without an id is an
// ErrInvalidResponse error: the agent may exist, but cannot be tracked.
func (c *Client) CreateAgent(ctx context.Context, name string, config json.RawMessage) (*Agent, error) {
	var out Agent
	err := c.do(ctx, request{
		method:   http.MethodPost,
		endpoint: "/agents",
		body:     agentBody{Name: name, Config: config},
		out:      &out,
		check:    func() error { return requireField("id", out.ID) },
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateAgent implements Interface. The {success} answer is ignored: a 2xx
// is taken as success.
func (c *Client) UpdateAgent(ctx context.Context, agentID, name string, config json.RawMessage) error {
	return c.do(ctx, request{
		method:   http.MethodPut,
		endpoint: "/agents/{agent_id}",
		params:   []string{agentID},
		body:     agentBody{Name: name, Config: config},
	})
}

// DeleteAgent implements Interface. The answer's body is ignored.
func (c *Client) DeleteAgent(ctx context.Context, agentID string) error {
	return c.do(ctx, request{
		method:   http.MethodDelete,
		endpoint: "/agents/{agent_id}",
		params:   []string{agentID},
	})
}

// ListPhones implements Interface.
func (c *Client) ListPhones(ctx context.Context) ([]Phone, error) {
	var out []Phone
	if err := c.do(ctx, request{method: http.MethodGet, endpoint: "/phones", out: &out}); err != nil {
		return nil, err
	}
	return out, nil
}

// GetPhone implements Interface.
func (c *Client) GetPhone(ctx context.Context, phone string) (*Phone, error) {
	var out Phone
	err := c.do(ctx, request{
		method:   http.MethodGet,
		endpoint: "/phones/{phone}",
		params:   []string{phone},
		out:      &out,
		redact:   []string{phone},
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// SetPhoneAgent implements Interface. The answer's body is ignored.
func (c *Client) SetPhoneAgent(ctx context.Context, phone, agentID string) error {
	body := struct {
		AgentID *string `json:"agent_id"` // null unbinds
	}{}
	if agentID != "" {
		body.AgentID = &agentID
	}
	return c.do(ctx, request{
		method:   http.MethodPost,
		endpoint: "/phones/{phone}/set_agent",
		params:   []string{phone},
		body:     body,
		redact:   []string{phone},
	})
}
