package millis

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrInvalidResponse is wrapped by errors for a 2xx answer whose body the
// operator needs but cannot use (empty, not JSON, wrong shape, missing a
// required id, too large). The server answered, so something may have taken
// effect; such errors are retryable but never a definite rejection.
var ErrInvalidResponse = errors.New("invalid response body")

// ErrInvalidRequest is wrapped by errors for a request that was never sent
// because it could not be built (an empty or dot path segment, a body that
// does not encode). Nothing reached Millis and sending it again cannot help.
var ErrInvalidRequest = errors.New("invalid request")

// maxDetailLen bounds how much of an unrecognised error body goes into
// APIError.Detail, so that an HTML error page cannot flood logs and events.
const maxDetailLen = 300

// APIError is a non-2xx HTTP answer from Millis.
type APIError struct {
	StatusCode int
	Method     string
	// Endpoint is the path template (e.g. "/phones/{phone}/set_agent"), never
	// the concrete path, so that phone numbers stay out of logs and metrics.
	Endpoint string
	// Detail is FastAPI's "detail" when it is a string, the Validation items
	// joined as "loc.path: msg; ...", or else a truncated, single-line copy
	// of the raw body.
	Detail string
	// Validation holds the items of a FastAPI validation error (usually 422).
	Validation []ValidationError
	// RetryAfter is the server's Retry-After (delta-seconds or HTTP-date),
	// or 0 if absent, unparsable or already past.
	RetryAfter time.Duration
}

// Error renders e.g.
// "millis: POST /start_outbound_call: 422 Unprocessable Entity: body.to_phone: field required".
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "millis: %s %s: %d", e.Method, e.Endpoint, e.StatusCode)
	if text := http.StatusText(e.StatusCode); text != "" {
		b.WriteString(" " + text)
	}
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	return b.String()
}

// ValidationError is one item of a FastAPI/pydantic validation error.
type ValidationError struct {
	// Loc is where the problem is, e.g. ["body", "to_phone"]. Integer
	// elements (list indices) are kept as their decimal text.
	Loc  []string `json:"loc"`
	Msg  string   `json:"msg"`
	Type string   `json:"type"`
}

// UnmarshalJSON accepts loc elements that are strings or integers, as
// FastAPI emits both.
func (v *ValidationError) UnmarshalJSON(data []byte) error {
	var wire struct {
		Loc  []json.RawMessage `json:"loc"`
		Msg  string            `json:"msg"`
		Type string            `json:"type"`
	}
	if err := json.Unmarshal(data, &wire); err != nil {
		return err
	}
	loc := make([]string, 0, len(wire.Loc))
	for _, raw := range wire.Loc {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			// Not a string: keep the literal (an index such as 0).
			s = string(raw)
		}
		loc = append(loc, s)
	}
	*v = ValidationError{Loc: loc, Msg: wire.Msg, Type: wire.Type}
	return nil
}

// String renders "loc.path: msg".
func (v ValidationError) String() string {
	if len(v.Loc) == 0 {
		return v.Msg
	}
	return strings.Join(v.Loc, ".") + ": " + v.Msg
}

// newAPIError builds the error for a non-2xx answer. body must already be
// redacted of secrets; it is only used to fill Detail and Validation.
func newAPIError(method, endpoint string, resp *http.Response, body []byte) *APIError {
	e := &APIError{
		StatusCode: resp.StatusCode,
		Method:     method,
		Endpoint:   endpoint,
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
	}
	e.Detail, e.Validation = parseDetail(body)
	return e
}

// parseDetail reads FastAPI's {"detail": ...}, where detail is a string or a
// list of validation items. Anything else falls back to the raw body.
func parseDetail(body []byte) (string, []ValidationError) {
	var envelope struct {
		Detail json.RawMessage `json:"detail"`
	}
	if json.Unmarshal(body, &envelope) == nil && len(envelope.Detail) > 0 {
		var s string
		if json.Unmarshal(envelope.Detail, &s) == nil {
			return truncate(s), nil
		}
		var items []ValidationError
		if json.Unmarshal(envelope.Detail, &items) == nil && len(items) > 0 {
			parts := make([]string, len(items))
			for i, item := range items {
				parts[i] = item.String()
			}
			return truncate(strings.Join(parts, "; ")), items
		}
	}
	return truncate(string(body)), nil
}

// truncate makes s one line and at most maxDetailLen bytes, cutting on a
// rune boundary.
func truncate(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= maxDetailLen {
		return s
	}
	cut := maxDetailLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// parseRetryAfter reads delta-seconds or an HTTP-date (RFC 9110 §10.2.3).
// A past date, a negative number or garbage yields 0: the caller then uses
// its own backoff.
func parseRetryAfter(value string, now time.Time) time.Duration {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(value, 10, 64); err == nil {
		switch {
		case secs <= 0:
			return 0
		case secs >= int64(maxRetryAfter/time.Second):
			return maxRetryAfter // also avoids overflowing Duration
		}
		return time.Duration(secs) * time.Second
	}
	if at, err := http.ParseTime(value); err == nil {
		if d := at.Sub(now); d > 0 {
			return min(d, maxRetryAfter)
		}
	}
	return 0
}

// maxRetryAfter caps a server-supplied delay so that a bogus header cannot
// park a reconcile loop for days.
const maxRetryAfter = 24 * time.Hour

// transportError is a request that got no usable HTTP answer: dial, TLS,
// timeout, connection reset, or a body cut short. Its message names the
// endpoint template rather than the URL, which could contain a phone number.
type transportError struct {
	method, endpoint string
	err              error
}

func (e *transportError) Error() string {
	return fmt.Sprintf("millis: %s %s: %v", e.method, e.endpoint, e.err)
}

func (e *transportError) Unwrap() error { return e.err }

// asAPIError is errors.As for *APIError.
func asAPIError(err error) (*APIError, bool) {
	var apiErr *APIError
	ok := errors.As(err, &apiErr)
	return apiErr, ok
}

// IsRetryable reports whether sending the same request again may succeed:
// 408, 429, any 5xx, transport failures (timeouts, refused or reset
// connections, truncated bodies) and undecodable 2xx bodies. It is false for
// the caller's own cancellation and for TLS certificate failures, which a
// retry cannot fix.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	if apiErr, ok := asAPIError(err); ok {
		code := apiErr.StatusCode
		return code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500
	}
	if errors.Is(err, ErrInvalidResponse) {
		return true
	}
	var tErr *transportError
	if !errors.As(err, &tErr) {
		return false // e.g. ErrInvalidRequest: nothing was sent
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	var certErr *tls.CertificateVerificationError
	return !errors.As(err, &certErr)
}

// IsDefiniteRejection reports whether Millis certainly did not act on the
// request: it answered with a 4xx (408 and 429 included), or the request was
// never sent (ErrInvalidRequest). 5xx, transport and decode errors are false
// because the request may have taken effect; for StartOutboundCall that means
// "look the call up before placing it again".
func IsDefiniteRejection(err error) bool {
	if errors.Is(err, ErrInvalidRequest) {
		return true
	}
	apiErr, ok := asAPIError(err)
	return ok && apiErr.StatusCode >= 400 && apiErr.StatusCode < 500
}

// IsTerminalError reports whether the request is bad and retrying it
// unchanged will not help: a 4xx other than 401, 403 (credentials may be
// fixed), 408 and 429 (transient), or a request that could not be built.
//
// It is not called IsTerminal because that name belongs to call statuses.
func IsTerminalError(err error) bool {
	if errors.Is(err, ErrInvalidRequest) {
		return true
	}
	apiErr, ok := asAPIError(err)
	if !ok || apiErr.StatusCode < 400 || apiErr.StatusCode >= 500 {
		return false
	}
	switch apiErr.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusRequestTimeout, http.StatusTooManyRequests:
		return false
	}
	return true
}

// IsNotFound reports a 404.
func IsNotFound(err error) bool { return StatusCode(err) == http.StatusNotFound }

// IsUnauthorized reports a 401 or 403: the API key is missing, wrong or
// lacks access.
func IsUnauthorized(err error) bool {
	code := StatusCode(err)
	return code == http.StatusUnauthorized || code == http.StatusForbidden
}

// RetryAfter returns the server's requested delay, if it gave one.
func RetryAfter(err error) (time.Duration, bool) {
	apiErr, ok := asAPIError(err)
	if !ok || apiErr.RetryAfter <= 0 {
		return 0, false
	}
	return apiErr.RetryAfter, true
}

// StatusCode returns the HTTP status of an *APIError in err's chain, or 0.
func StatusCode(err error) int {
	if apiErr, ok := asAPIError(err); ok {
		return apiErr.StatusCode
	}
	return 0
}
