package millis

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// testKey looks like a real private key so that leak checks are meaningful.
const testKey = "mk_live_9f8e7d6c5b4a-SECRET"

// seen is what a test server observed of one request.
type seen struct {
	Method      string
	URI         string // RequestURI: escaped path plus raw query
	Body        string
	ContentType string
	Accept      string
	Auth        []string
	UserAgent   string
}

// newRecordingServer answers every request with status and body, and
// sends what it saw on the returned channel (so tests need no locks).
func newRecordingServer(t *testing.T, status int, body string) (*httptest.Server, <-chan seen) {
	t.Helper()
	ch := make(chan seen, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ch <- seen{
			Method:      r.Method,
			URI:         r.RequestURI,
			Body:        string(b),
			ContentType: r.Header.Get("Content-Type"),
			Accept:      r.Header.Get("Accept"),
			Auth:        r.Header.Values("Authorization"),
			UserAgent:   r.Header.Get("User-Agent"),
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, ch
}

// newTestClient builds a Client for baseURL or fails the test.
func newTestClient(t *testing.T, baseURL string, opts ...Option) *Client {
	t.Helper()
	c, err := New(baseURL, testKey, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// receive returns the request the server saw, or fails if it saw none.
func receive(t *testing.T, ch <-chan seen) seen {
	t.Helper()
	select {
	case s := <-ch:
		return s
	default:
		t.Fatal("server received no request")
		return seen{}
	}
}

// jsonDiff compares two JSON documents semantically ("" means no body).
func jsonDiff(t *testing.T, got, want string) string {
	t.Helper()
	if got == "" || want == "" {
		return cmp.Diff(want, got)
	}
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		return "got invalid JSON " + got + ": " + err.Error()
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want JSON %s: %v", want, err)
	}
	return cmp.Diff(w, g)
}

func ptr[T any](v T) *T { return &v }

func TestEndpoints(t *testing.T) {
	tests := []struct {
		name     string
		reason   string
		call     func(context.Context, *Client) (any, error)
		respond  string
		wantMeth string
		wantURI  string
		wantBody string // "" means no body must be sent
		want     any
	}{
		{
			name:   "start outbound call, all fields",
			reason: "every documented field must reach Millis verbatim; raw fields pass through untouched",
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.StartOutboundCall(ctx, StartOutboundCallRequest{
					FromPhone:               "+15550000001",
					ToPhone:                 "+15550000002",
					AgentID:                 "-OKdqbqetEcM4ak369ym",
					AgentConfig:             json.RawMessage(`{"first_message":"Hi {name}","future_field":1}`),
					Metadata:                json.RawMessage(`{"name":"Ada","cr":"ns/call-1"}`),
					IncludeMetadataInPrompt: true,
					SessionContinuation:     json.RawMessage(`{"session_id":"-Oprev"}`),
				})
			},
			respond:  `{"call_id":"CA123","session_id":"-OA1XVnwRGpaameIakJb"}`,
			wantMeth: http.MethodPost,
			wantURI:  "/start_outbound_call",
			wantBody: `{"from_phone":"+15550000001","to_phone":"+15550000002","agent_id":"-OKdqbqetEcM4ak369ym",
				"agent_config":{"first_message":"Hi {name}","future_field":1},"metadata":{"name":"Ada","cr":"ns/call-1"},
				"include_metadata_in_prompt":true,"session_continuation":{"session_id":"-Oprev"}}`,
			want: &CallRegistration{CallID: "CA123", SessionID: "-OA1XVnwRGpaameIakJb"},
		},
		{
			name:   "start outbound call, minimal",
			reason: "optional fields are omitted, but include_metadata_in_prompt is always explicit",
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.StartOutboundCall(ctx, StartOutboundCallRequest{FromPhone: "+15550000001", ToPhone: "+15550000002"})
			},
			respond:  `{"call_id":"","session_id":"-Os"}`,
			wantMeth: http.MethodPost,
			wantURI:  "/start_outbound_call",
			wantBody: `{"from_phone":"+15550000001","to_phone":"+15550000002","include_metadata_in_prompt":false}`,
			want:     &CallRegistration{SessionID: "-Os"},
		},
		{
			name:     "get call log",
			reason:   "the session id is a path segment",
			call:     func(ctx context.Context, c *Client) (any, error) { return c.GetCallLog(ctx, "-OA1XVnwRGpaameIakJb") },
			respond:  `{"session_id":"-OA1XVnwRGpaameIakJb","call_status":"in-progress"}`,
			wantMeth: http.MethodGet,
			wantURI:  "/call-logs/-OA1XVnwRGpaameIakJb",
			want:     &CallHistory{SessionID: "-OA1XVnwRGpaameIakJb", CallStatus: StatusInProgress},
		},
		{
			name:     "get call log, id needing escapes",
			reason:   "a slash or space in an id must not change the path structure",
			call:     func(ctx context.Context, c *Client) (any, error) { return c.GetCallLog(ctx, "a/b c") },
			respond:  `{}`,
			wantMeth: http.MethodGet,
			wantURI:  "/call-logs/a%2Fb%20c",
			want:     &CallHistory{},
		},
		{
			name:   "terminate with message",
			reason: "the optional message goes in the body",
			call: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.TerminateSession(ctx, "-Os1", "Goodbye")
			},
			respond:  `{}`,
			wantMeth: http.MethodPost,
			wantURI:  "/sessions/-Os1/terminate",
			wantBody: `{"message":"Goodbye"}`,
		},
		{
			name:     "terminate without message",
			reason:   "an empty message sends {} rather than a null or empty-string message",
			call:     func(ctx context.Context, c *Client) (any, error) { return nil, c.TerminateSession(ctx, "-Os1", "") },
			respond:  `{}`,
			wantMeth: http.MethodPost,
			wantURI:  "/sessions/-Os1/terminate",
			wantBody: `{}`,
		},
		{
			name:     "user info",
			reason:   "credential check endpoint",
			call:     func(ctx context.Context, c *Client) (any, error) { return c.GetUserInfo(ctx) },
			respond:  `{"user_id":"u1","credit":12.5,"used_credit":3,"auto_refill":{"enabled":false}}`,
			wantMeth: http.MethodGet,
			wantURI:  "/user/info",
			want:     &UserInfo{UserID: "u1", Credit: 12.5, UsedCredit: 3, AutoRefill: json.RawMessage(`{"enabled":false}`)},
		},
		{
			name:     "list agents",
			reason:   "the answer is a bare array",
			call:     func(ctx context.Context, c *Client) (any, error) { return c.ListAgents(ctx) },
			respond:  `[{"id":"-Oa1","name":"one","config":{"prompt":"p"},"created_at":1700000000}]`,
			wantMeth: http.MethodGet,
			wantURI:  "/agents",
			want:     []Agent{{ID: "-Oa1", Name: "one", Config: json.RawMessage(`{"prompt":"p"}`), CreatedAt: 1700000000}},
		},
		{
			name:     "get agent",
			reason:   "unknown config fields must survive for read-modify-write",
			call:     func(ctx context.Context, c *Client) (any, error) { return c.GetAgent(ctx, "-Oa1") },
			respond:  `{"id":"-Oa1","name":"one","config":{"prompt":"p","new_thing":[1]}}`,
			wantMeth: http.MethodGet,
			wantURI:  "/agents/-Oa1",
			want:     &Agent{ID: "-Oa1", Name: "one", Config: json.RawMessage(`{"prompt":"p","new_thing":[1]}`)},
		},
		{
			name:   "create agent",
			reason: "body is {name, config}",
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.CreateAgent(ctx, "sales", json.RawMessage(`{"prompt":"p","voice":{"provider":"openai","voice_id":"alloy"}}`))
			},
			respond:  `{"id":"-Onew","name":"sales","config":{"prompt":"p"},"created_at":1}`,
			wantMeth: http.MethodPost,
			wantURI:  "/agents",
			wantBody: `{"name":"sales","config":{"prompt":"p","voice":{"provider":"openai","voice_id":"alloy"}}}`,
			want:     &Agent{ID: "-Onew", Name: "sales", Config: json.RawMessage(`{"prompt":"p"}`), CreatedAt: 1},
		},
		{
			name: "update agent",
			call: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.UpdateAgent(ctx, "-Oa1", "renamed", json.RawMessage(`{"prompt":"q"}`))
			},
			reason:   "PUT with name and (partial) config",
			respond:  `{"success":true}`,
			wantMeth: http.MethodPut,
			wantURI:  "/agents/-Oa1",
			wantBody: `{"name":"renamed","config":{"prompt":"q"}}`,
		},
		{
			name:     "delete agent",
			reason:   "DELETE without a body",
			call:     func(ctx context.Context, c *Client) (any, error) { return nil, c.DeleteAgent(ctx, "-Oa1") },
			respond:  `{"success":true}`,
			wantMeth: http.MethodDelete,
			wantURI:  "/agents/-Oa1",
		},
		{
			name:     "list phones",
			reason:   "float create_at and optional fields decode",
			call:     func(ctx context.Context, c *Client) (any, error) { return c.ListPhones(ctx) },
			respond:  `[{"id":"+911140848678","agent_id":"-Of8z0Mox2OiYLUUryT3","create_at":1749202201.1858394,"status":"active","tags":["a"]}]`,
			wantMeth: http.MethodGet,
			wantURI:  "/phones",
			want: []Phone{{ID: "+911140848678", AgentID: "-Of8z0Mox2OiYLUUryT3", CreateAt: 1749202201.1858394,
				Status: "active", Tags: []string{"a"}}},
		},
		{
			name:     "get phone",
			reason:   "the leading + must be sent as %2B, or servers may read it as a space",
			call:     func(ctx context.Context, c *Client) (any, error) { return c.GetPhone(ctx, "+15551234567") },
			respond:  `{"id":"+15551234567","status":"active"}`,
			wantMeth: http.MethodGet,
			wantURI:  "/phones/%2B15551234567",
			want:     &Phone{ID: "+15551234567", Status: "active"},
		},
		{
			name:   "set phone agent",
			reason: "binds with a string agent_id; + escaped",
			call: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.SetPhoneAgent(ctx, "+15551234567", "-Oa1")
			},
			respond:  `{"success":true}`,
			wantMeth: http.MethodPost,
			wantURI:  "/phones/%2B15551234567/set_agent",
			wantBody: `{"agent_id":"-Oa1"}`,
		},
		{
			name:   "unset phone agent",
			reason: "an empty agent id must send an explicit null, not omit the field",
			call: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.SetPhoneAgent(ctx, "+15551234567", "")
			},
			respond:  `{"success":true}`,
			wantMeth: http.MethodPost,
			wantURI:  "/phones/%2B15551234567/set_agent",
			wantBody: `{"agent_id":null}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, requests := newRecordingServer(t, http.StatusOK, tc.respond)
			c := newTestClient(t, srv.URL)

			got, err := tc.call(t.Context(), c)
			if err != nil {
				t.Fatalf("%s: unexpected error: %v", tc.reason, err)
			}
			req := receive(t, requests)
			if req.Method != tc.wantMeth || req.URI != tc.wantURI {
				t.Errorf("%s: request = %s %s, want %s %s", tc.reason, req.Method, req.URI, tc.wantMeth, tc.wantURI)
			}
			if diff := jsonDiff(t, req.Body, tc.wantBody); diff != "" {
				t.Errorf("%s: body mismatch (-want +got):\n%s", tc.reason, diff)
			}
			wantCT := ""
			if tc.wantBody != "" {
				wantCT = "application/json"
			}
			if req.ContentType != wantCT {
				t.Errorf("%s: Content-Type = %q, want %q", tc.reason, req.ContentType, wantCT)
			}
			if tc.want != nil {
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("%s: result mismatch (-want +got):\n%s", tc.reason, diff)
				}
			}
		})
	}
}

func TestHeaders(t *testing.T) {
	tests := []struct {
		name   string
		reason string
		key    string
		opts   []Option
		wantUA string
	}{
		{name: "defaults", reason: "raw key, no Bearer prefix", key: testKey, wantUA: DefaultUserAgent},
		{name: "custom user agent", reason: "WithUserAgent is honoured", key: testKey,
			opts: []Option{WithUserAgent("millis-operator/v1.2.3")}, wantUA: "millis-operator/v1.2.3"},
		{name: "key with trailing newline", reason: "keys read from Secret files often end in a newline",
			key: testKey + "\n", wantUA: DefaultUserAgent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, requests := newRecordingServer(t, http.StatusOK, `{"user_id":"u"}`)
			c, err := New(srv.URL, tc.key, tc.opts...)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if _, err := c.GetUserInfo(t.Context()); err != nil {
				t.Fatalf("GetUserInfo: %v", err)
			}
			req := receive(t, requests)
			if diff := cmp.Diff([]string{testKey}, req.Auth); diff != "" {
				t.Errorf("%s: authorization header (-want +got):\n%s", tc.reason, diff)
			}
			if req.Accept != "application/json" {
				t.Errorf("%s: Accept = %q", tc.reason, req.Accept)
			}
			if req.UserAgent != tc.wantUA {
				t.Errorf("%s: User-Agent = %q, want %q", tc.reason, req.UserAgent, tc.wantUA)
			}
		})
	}
}

func TestBaseURLWithPathPrefix(t *testing.T) {
	srv, requests := newRecordingServer(t, http.StatusOK, `[]`)
	c := newTestClient(t, srv.URL+"/millis/")
	if _, err := c.ListAgents(t.Context()); err != nil {
		t.Fatalf("ListAgents: %v", err)
	}
	if got := receive(t, requests).URI; got != "/millis/agents" {
		t.Errorf("a base URL path prefix (with trailing slash) must be kept once: got %q", got)
	}
}

func TestListCallLogsQuery(t *testing.T) {
	tests := []struct {
		name    string
		reason  string
		opts    ListCallLogsOptions
		wantURI string
	}{
		{
			name:    "zero options",
			reason:  "zero values are left out, so the server defaults apply",
			wantURI: "/call-logs",
		},
		{
			name:   "every option",
			reason: "floats without exponent, '+' of the phone escaped, keys sorted",
			opts: ListCallLogsOptions{
				Limit:        50,
				StartAfterTS: 1729840680.886249,
				StartTime:    1700000000,
				EndTime:      1800000000.5,
				AgentID:      "-OKdqbqetEcM4ak369ym",
				CallStatus:   StatusUserEnded,
				PhoneNumber:  "+15551234567",
			},
			wantURI: "/call-logs?agent_id=-OKdqbqetEcM4ak369ym&call_status=user-ended&end_time=1800000000.5" +
				"&limit=50&phone_number=%2B15551234567&start_after_ts=1729840680.886249&start_time=1700000000",
		},
		{
			name:    "tiny float",
			reason:  "a value that %g would print as 1e-07 must still be plain decimal",
			opts:    ListCallLogsOptions{StartTime: 0.0000001},
			wantURI: "/call-logs?start_time=0.0000001",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, requests := newRecordingServer(t, http.StatusOK, `{"histories":[],"next_cursor":null}`)
			c := newTestClient(t, srv.URL)
			page, err := c.ListCallLogs(t.Context(), tc.opts)
			if err != nil {
				t.Fatalf("ListCallLogs: %v", err)
			}
			if got := receive(t, requests).URI; got != tc.wantURI {
				t.Errorf("%s:\n got %s\nwant %s", tc.reason, got, tc.wantURI)
			}
			if diff := cmp.Diff(&CallHistoryPage{Histories: []CallHistory{}}, page); diff != "" {
				t.Errorf("%s: page (-want +got):\n%s", tc.reason, diff)
			}
		})
	}
}

// TestListCallLogsCursor walks two pages the way the operator will: the
// previous page's next_cursor becomes start_after_ts, and a null cursor ends.
func TestListCallLogsCursor(t *testing.T) {
	const cursor = "1729840680.886249"
	var (
		mu   sync.Mutex
		uris []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		uris = append(uris, r.RequestURI)
		mu.Unlock()
		if r.URL.Query().Get("start_after_ts") == "" {
			_, _ = io.WriteString(w, `{"histories":[{"session_id":"-O1","ts":`+cursor+`}],"next_cursor":`+cursor+`}`)
			return
		}
		_, _ = io.WriteString(w, `{"histories":[{"session_id":"-O2","ts":1729840000}],"next_cursor":null}`)
	}))
	t.Cleanup(srv.Close)
	c := newTestClient(t, srv.URL)

	var sessions []string
	opts := ListCallLogsOptions{Limit: 1}
	for range 5 { // bounded, in case the cursor never ends
		page, err := c.ListCallLogs(t.Context(), opts)
		if err != nil {
			t.Fatalf("ListCallLogs: %v", err)
		}
		for _, h := range page.Histories {
			sessions = append(sessions, h.SessionID)
		}
		if page.NextCursor == nil {
			break
		}
		opts.StartAfterTS = *page.NextCursor
	}
	if diff := cmp.Diff([]string{"-O1", "-O2"}, sessions); diff != "" {
		t.Errorf("pagination must visit both pages once (-want +got):\n%s", diff)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"/call-logs?limit=1", "/call-logs?limit=1&start_after_ts=" + cursor}
	if diff := cmp.Diff(want, uris); diff != "" {
		t.Errorf("the cursor must round-trip digit for digit (-want +got):\n%s", diff)
	}
}

func TestGetCallLogTolerantDecoding(t *testing.T) {
	tests := []struct {
		name   string
		reason string
		body   string
		want   *CallHistory
	}{
		{
			name:   "chat as JSON string, unknown fields, float chars_used",
			reason: "current docs send chat as a string; Python may send 12.0; new fields must be kept",
			body: `{"session_id":"-Os","chat":"[{\"role\":\"assistant\",\"content\":\"Hi\"},{\"role\":\"user\",\"content\":\"Yo\"}]",
				"chars_used":12.0,"call_status":"user-ended","sentiment":{"score":0.9},"duration":300,
				"cost_breakdown":[{"type":"llm","provider":"openai","credit":0.01}],"voip":{"provider":"twilio","from":"+1","to":"+2"}}`,
			want: &CallHistory{
				SessionID:     "-Os",
				Chat:          Chat{{Role: "assistant", Content: "Hi"}, {Role: "user", Content: "Yo"}},
				CharsUsed:     12,
				CallStatus:    StatusUserEnded,
				Duration:      300,
				CostBreakdown: []CostItem{{Type: "llm", Provider: "openai", Credit: 0.01}},
				VoIP:          &VoIP{Provider: "twilio", From: "+1", To: "+2"},
				Extra:         map[string]json.RawMessage{"sentiment": json.RawMessage(`{"score":0.9}`)},
			},
		},
		{
			name:   "chat as array",
			reason: "older docs sent the array itself",
			body:   `{"chat":[{"role":"user","content":"Yo"}]}`,
			want:   &CallHistory{Chat: Chat{{Role: "user", Content: "Yo"}}},
		},
		{
			name:   "chat null",
			reason: "a call that never connected has no transcript",
			body:   `{"chat":null,"call_status":"no-answer"}`,
			want:   &CallHistory{CallStatus: StatusNoAnswer},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := newRecordingServer(t, http.StatusOK, tc.body)
			got, err := newTestClient(t, srv.URL).GetCallLog(t.Context(), "-Os")
			if err != nil {
				t.Fatalf("%s: %v", tc.reason, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s (-want +got):\n%s", tc.reason, diff)
			}
		})
	}
}

// TestIgnoredBodies: endpoints whose answer the operator does not use must
// treat any 2xx as success, because Millis sometimes answers with an empty
// or non-JSON body.
func TestIgnoredBodies(t *testing.T) {
	calls := map[string]func(context.Context, *Client) error{
		"terminate": func(ctx context.Context, c *Client) error { return c.TerminateSession(ctx, "-Os", "") },
		"set agent": func(ctx context.Context, c *Client) error { return c.SetPhoneAgent(ctx, "+15550000001", "-Oa") },
		"update agent": func(ctx context.Context, c *Client) error {
			return c.UpdateAgent(ctx, "-Oa", "n", json.RawMessage(`{}`))
		},
		"delete agent": func(ctx context.Context, c *Client) error { return c.DeleteAgent(ctx, "-Oa") },
	}
	bodies := []struct {
		name, reason, body string
		status             int
	}{
		{name: "empty 200", reason: "observed for untyped endpoints", status: http.StatusOK},
		{name: "text 200", reason: "non-JSON success bodies are seen in the wild", status: http.StatusOK, body: "OK"},
		{name: "204", reason: "any 2xx is success", status: http.StatusNoContent},
	}
	for callName, call := range calls {
		for _, b := range bodies {
			t.Run(callName+"/"+b.name, func(t *testing.T) {
				srv, requests := newRecordingServer(t, b.status, b.body)
				if err := call(t.Context(), newTestClient(t, srv.URL)); err != nil {
					t.Errorf("%s: got error %v, want success", b.reason, err)
				}
				receive(t, requests) // and it must really have been sent
			})
		}
	}
}

// TestUndecodableSuccess: where the operator needs the answer, a 2xx it
// cannot use is a retryable error that is neither an *APIError nor a
// definite rejection, because the request may have taken effect.
func TestUndecodableSuccess(t *testing.T) {
	huge := `{"call_id":"c","session_id":"s","pad":"` + strings.Repeat("x", maxResponseBytes) + `"}`
	tests := []struct {
		name   string
		reason string
		body   string
		call   func(context.Context, *Client) error
	}{
		{name: "start call, HTML", reason: "a proxy page is not a registration", body: "<html>bad gateway</html>",
			call: startCall},
		{name: "start call, empty", reason: "no body means no session id", body: "", call: startCall},
		{name: "start call, null", reason: "null is not a registration", body: "null", call: startCall},
		{name: "start call, no session_id", reason: "without session_id the call cannot be tracked",
			body: `{"call_id":"CA1"}`, call: startCall},
		{name: "start call, trailing garbage", reason: "half-valid JSON is not trusted", body: `{"session_id":"s"}x`,
			call: startCall},
		{name: "start call, over size limit", reason: "bodies are read up to a bound only", body: huge, call: startCall},
		{name: "get call log, text", reason: "the log is needed", body: "OK",
			call: func(ctx context.Context, c *Client) error { _, err := c.GetCallLog(ctx, "-Os"); return err }},
		{name: "list call logs, wrong shape", reason: "histories must be an array", body: `{"histories":"none"}`,
			call: func(ctx context.Context, c *Client) error {
				_, err := c.ListCallLogs(ctx, ListCallLogsOptions{})
				return err
			}},
		{name: "user info, empty", reason: "the answer is needed", body: "",
			call: func(ctx context.Context, c *Client) error { _, err := c.GetUserInfo(ctx); return err }},
		{name: "list agents, object", reason: "an array is expected", body: `{"agents":[]}`,
			call: func(ctx context.Context, c *Client) error { _, err := c.ListAgents(ctx); return err }},
		{name: "get agent, text", reason: "the answer is needed", body: "OK",
			call: func(ctx context.Context, c *Client) error { _, err := c.GetAgent(ctx, "-Oa"); return err }},
		{name: "create agent, no id", reason: "an agent without id cannot be tracked", body: `{"name":"n"}`,
			call: func(ctx context.Context, c *Client) error {
				_, err := c.CreateAgent(ctx, "n", json.RawMessage(`{}`))
				return err
			}},
		{name: "list phones, text", reason: "the answer is needed", body: "OK",
			call: func(ctx context.Context, c *Client) error { _, err := c.ListPhones(ctx); return err }},
		{name: "get phone, empty", reason: "the answer is needed", body: "",
			call: func(ctx context.Context, c *Client) error { _, err := c.GetPhone(ctx, "+15550000001"); return err }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := newRecordingServer(t, http.StatusOK, tc.body)
			var info RequestInfo
			err := tc.call(t.Context(), newTestClient(t, srv.URL, WithObserver(func(i RequestInfo) { info = i })))
			if err == nil {
				t.Fatalf("%s: got nil error", tc.reason)
			}
			if info.Err != err || info.StatusCode != http.StatusOK {
				t.Errorf("%s: observer got status %d err %v; want 200 and the returned error", tc.reason, info.StatusCode, info.Err)
			}
			if _, ok := asAPIError(err); ok {
				t.Errorf("%s: got *APIError %v, want a decode error", tc.reason, err)
			}
			if !errors.Is(err, ErrInvalidResponse) {
				t.Errorf("%s: error %v does not wrap ErrInvalidResponse", tc.reason, err)
			}
			if !IsRetryable(err) || IsDefiniteRejection(err) || IsTerminalError(err) {
				t.Errorf("%s: retryable=%v definite=%v terminal=%v, want true false false",
					tc.reason, IsRetryable(err), IsDefiniteRejection(err), IsTerminalError(err))
			}
			if strings.Contains(err.Error(), "+15550000001") {
				t.Errorf("%s: error leaks the phone: %v", tc.reason, err)
			}
		})
	}
}

func startCall(ctx context.Context, c *Client) error {
	_, err := c.StartOutboundCall(ctx, StartOutboundCallRequest{FromPhone: "+15550000001", ToPhone: "+15550000002"})
	return err
}

// TestInvalidRequests: requests that cannot be built are never sent and are
// classified as definite, terminal, not retryable.
func TestInvalidRequests(t *testing.T) {
	tests := []struct {
		name   string
		reason string
		call   func(context.Context, *Client) error
	}{
		{name: "empty session id", reason: "GET /call-logs/ would hit the list endpoint",
			call: func(ctx context.Context, c *Client) error { _, err := c.GetCallLog(ctx, ""); return err }},
		{name: "dot-dot agent id", reason: "a proxy would resolve it to another resource",
			call: func(ctx context.Context, c *Client) error { return c.DeleteAgent(ctx, "..") }},
		{name: "empty phone", reason: "no phone, no resource",
			call: func(ctx context.Context, c *Client) error { return c.SetPhoneAgent(ctx, "", "-Oa") }},
		{name: "invalid raw config", reason: "a body that does not encode cannot be sent",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.CreateAgent(ctx, "n", json.RawMessage(`{broken`))
				return err
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, requests := newRecordingServer(t, http.StatusOK, `{}`)
			var observed int
			c := newTestClient(t, srv.URL, WithObserver(func(RequestInfo) { observed++ }))
			err := tc.call(t.Context(), c)
			if !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("%s: got %v, want ErrInvalidRequest", tc.reason, err)
			}
			if IsRetryable(err) || !IsDefiniteRejection(err) || !IsTerminalError(err) {
				t.Errorf("%s: retryable=%v definite=%v terminal=%v, want false true true",
					tc.reason, IsRetryable(err), IsDefiniteRejection(err), IsTerminalError(err))
			}
			select {
			case s := <-requests:
				t.Errorf("%s: request was sent: %+v", tc.reason, s)
			default:
			}
			if observed != 0 {
				t.Errorf("%s: observer called %d times for an unsent request", tc.reason, observed)
			}
		})
	}
}

func TestObserver(t *testing.T) {
	const (
		phone   = "+15551234567"
		session = "-OsessionSECRETid"
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/phones/") {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		_, _ = io.WriteString(w, `{"session_id":"`+session+`"}`)
	}))
	t.Cleanup(srv.Close)

	var infos []RequestInfo
	c := newTestClient(t, srv.URL, WithObserver(func(i RequestInfo) { infos = append(infos, i) }))
	if _, err := c.GetCallLog(t.Context(), session); err != nil {
		t.Fatalf("GetCallLog: %v", err)
	}
	notFound := c.SetPhoneAgent(t.Context(), phone, "-Oa")
	srv.Close()
	_, refused := c.GetPhone(t.Context(), phone)

	type summary struct {
		Method, Endpoint string
		StatusCode       int
		Err              error
	}
	var got []summary
	for _, i := range infos {
		got = append(got, summary{i.Method, i.Endpoint, i.StatusCode, i.Err})
		if i.Duration <= 0 {
			t.Errorf("%s %s: Duration %v, want > 0", i.Method, i.Endpoint, i.Duration)
		}
		dump := strings.Join([]string{i.Method, i.Endpoint, errString(i.Err)}, " ")
		for _, secret := range []string{testKey, phone, "15551234567", session} {
			if strings.Contains(dump, secret) {
				t.Errorf("RequestInfo %q contains %q; labels must be templates", dump, secret)
			}
		}
	}
	want := []summary{
		{http.MethodGet, "/call-logs/{session_id}", 200, nil},
		{http.MethodPost, "/phones/{phone}/set_agent", 404, notFound},
		{http.MethodGet, "/phones/{phone}", 0, refused},
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b error) bool { return a == b })); diff != "" {
		t.Errorf("the observer sees every request with its template, status and returned error (-want +got):\n%s", diff)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestPerRequestTimeout: a hung server must not hang the reconciler, even
// when the caller's context has no deadline.
func TestPerRequestTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // sleep far longer than the timeout, but let Close finish
		case <-r.Context().Done():
		case <-release:
		case <-time.After(5 * time.Second):
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })

	var info RequestInfo
	c := newTestClient(t, srv.URL, WithTimeout(50*time.Millisecond), WithObserver(func(i RequestInfo) { info = i }))
	start := time.Now()
	_, err := c.GetUserInfo(context.Background())
	elapsed := time.Since(start)

	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want a deadline error, got %v", err)
	}
	if elapsed > 2*time.Second {
		t.Errorf("request took %v; the 50ms per-request timeout was not applied", elapsed)
	}
	if !IsRetryable(err) || IsDefiniteRejection(err) || StatusCode(err) != 0 {
		t.Errorf("timeout: retryable=%v definite=%v status=%d, want true false 0",
			IsRetryable(err), IsDefiniteRejection(err), StatusCode(err))
	}
	if info.StatusCode != 0 || info.Err != err {
		t.Errorf("observer got status %d err %v, want 0 and the returned error", info.StatusCode, info.Err)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		reason  string
		baseURL string
		key     string
		opts    []Option
		wantErr bool
	}{
		{name: "valid https", reason: "the normal case", baseURL: "https://api-west.millis.ai", key: testKey},
		{name: "valid http with prefix", reason: "the simulator and proxies", baseURL: "http://sim:8080/api/", key: testKey},
		{name: "empty key", reason: "nothing would authenticate", baseURL: "https://x", key: "", wantErr: true},
		{name: "blank key", reason: "whitespace is trimmed, leaving nothing", baseURL: "https://x", key: " \n", wantErr: true},
		{name: "control char in key", reason: "net/http would refuse the header at request time",
			baseURL: "https://x", key: testKey + "\x00x", wantErr: true},
		{name: "relative URL", reason: "must be absolute", baseURL: "/api", key: testKey, wantErr: true},
		{name: "no scheme", reason: "host:port alone is not a URL", baseURL: "api-west.millis.ai", key: testKey, wantErr: true},
		{name: "ftp", reason: "only http and https", baseURL: "ftp://x", key: testKey, wantErr: true},
		{name: "no host", reason: "must name a server", baseURL: "https://", key: testKey, wantErr: true},
		{name: "query", reason: "paths are appended; a query would be mangled", baseURL: "https://x?a=b", key: testKey, wantErr: true},
		{name: "unparsable", reason: "bad escapes", baseURL: "https://x/%zz", key: testKey, wantErr: true},
		{name: "zero timeout", reason: "every request needs a bound", baseURL: "https://x", key: testKey,
			opts: []Option{WithTimeout(0)}, wantErr: true},
		{name: "nil http client", reason: "would panic later", baseURL: "https://x", key: testKey,
			opts: []Option{WithHTTPClient(nil)}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.baseURL, tc.key, tc.opts...)
			if gotErr := err != nil; gotErr != tc.wantErr {
				t.Fatalf("%s: New error = %v, wantErr %v", tc.reason, err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), testKey) {
				t.Errorf("%s: error leaks the key: %v", tc.reason, err)
			}
			if err == nil && c == nil {
				t.Errorf("%s: nil client without error", tc.reason)
			}
		})
	}
}

func TestWithHTTPClientIsUsed(t *testing.T) {
	srv, requests := newRecordingServer(t, http.StatusOK, `[]`)
	var used bool
	hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		used = true
		return http.DefaultTransport.RoundTrip(r)
	})}
	if _, err := newTestClient(t, srv.URL, WithHTTPClient(hc)).ListPhones(t.Context()); err != nil {
		t.Fatalf("ListPhones: %v", err)
	}
	receive(t, requests)
	if !used {
		t.Error("the client from WithHTTPClient was not used")
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestBaseURLForRegion(t *testing.T) {
	tests := []struct {
		region, reason, want string
		wantErr              bool
	}{
		{region: "us-west", reason: "documented US gateway", want: "https://api-west.millis.ai"},
		{region: "eu-west", reason: "documented EU gateway", want: "https://api-eu-west.millis.ai"},
		{region: "us-east", reason: "not a Millis region", wantErr: true},
		{region: "", reason: "empty is not a region", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.region, func(t *testing.T) {
			got, err := BaseURLForRegion(tc.region)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("%s: got %q, %v; want %q, wantErr %v", tc.reason, got, err, tc.want, tc.wantErr)
			}
			if err != nil && !(strings.Contains(err.Error(), "us-west") && strings.Contains(err.Error(), "eu-west")) {
				t.Errorf("%s: error %q must name the valid regions", tc.reason, err)
			}
		})
	}
}
