package campaign

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseRetryOn(t *testing.T) {
	cases := []struct {
		reason  string
		in      []string
		want    map[string]bool
		wantErr []string // substrings of the error; nil means no error
	}{
		{
			reason: "known statuses become a set",
			in:     []string{"busy", "no-answer", "failed", "busy"},
			want:   map[string]bool{"busy": true, "no-answer": true, "failed": true},
		},
		{
			reason: "every known status is accepted",
			in:     KnownCallStatuses,
			want: map[string]bool{
				"busy": true, "no-answer": true, "failed": true, "error": true, "canceled": true, "timeout": true,
				"voicemail-hangup": true, "voicemail-message": true, "user-ended": true, "agent-ended": true, "api-ended": true,
			},
		},
		{
			reason: "nothing listed, nothing retried",
			in:     nil,
			want:   map[string]bool{},
		},
		{
			reason:  "every unknown value is named, so one edit fixes them all",
			in:      []string{"busy", "no_answer", "Busy", "ringing"},
			wantErr: []string{`"no_answer"`, `"Busy"`, `"ringing"`, "want one of busy, no-answer"},
		},
	}
	for _, c := range cases {
		got, err := ParseRetryOn(c.in)
		if c.wantErr != nil {
			if err == nil {
				t.Errorf("%s: ParseRetryOn(%q): no error, want one", c.reason, c.in)
				continue
			}
			for _, s := range c.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%s: ParseRetryOn(%q): error %q does not contain %q", c.reason, c.in, err, s)
				}
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: ParseRetryOn(%q): %v", c.reason, c.in, err)
			continue
		}
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("%s: ParseRetryOn(%q): -want, +got:\n%s", c.reason, c.in, diff)
		}
	}
}

func TestConnected(t *testing.T) {
	cases := []struct {
		reason string
		status string
		want   bool
	}{
		{"the callee hung up", "user-ended", true},
		{"the agent hung up", "agent-ended", true},
		{"ended through the API", "api-ended", true},
		{"the call ran to its time limit, so it was answered", "timeout", true},
		{"a voicemail picked up", "voicemail-hangup", true},
		{"a message was left", "voicemail-message", true},
		{"busy never connected", "busy", false},
		{"no answer", "no-answer", false},
		{"failed", "failed", false},
		{"error", "error", false},
		{"canceled before anyone answered", "canceled", false},
		{"the dial itself failed", "", false},
		{"not a terminal status", "in-progress", false},
	}
	for _, c := range cases {
		if got := Connected(c.status); got != c.want {
			t.Errorf("%s: Connected(%q) = %v, want %v", c.reason, c.status, got, c.want)
		}
	}
}

func TestRetryPolicyNext(t *testing.T) {
	ended := time.Date(2026, 3, 9, 14, 0, 0, 0, time.UTC)
	policy := RetryPolicy{
		MaxAttempts: 3,
		Backoff:     30 * time.Minute,
		RetryOn:     map[string]bool{"busy": true, "no-answer": true, "failed": true, "user-ended": true},
	}
	type want struct {
		retry bool
		at    time.Time
	}
	cases := []struct {
		reason  string
		policy  RetryPolicy
		attempt int
		status  string
		want    want
	}{
		{"busy is in retryOn: again after the backoff", policy, 1, "busy", want{true, ended.Add(30 * time.Minute)}},
		{"no answer on the second of three attempts: once more", policy, 2, "no-answer", want{true, ended.Add(30 * time.Minute)}},
		{"the last attempt is the last", policy, 3, "busy", want{false, time.Time{}}},
		{"past the last attempt (a raised count, say) is still the last", policy, 5, "busy", want{false, time.Time{}}},
		{"error is not in retryOn", policy, 1, "error", want{false, time.Time{}}},
		{"a connected call is never retried, even when retryOn names it", policy, 1, "user-ended", want{false, time.Time{}}},
		{"agent-ended is connected", policy, 1, "agent-ended", want{false, time.Time{}}},
		{"timeout is connected", RetryPolicy{MaxAttempts: 3, RetryOn: map[string]bool{"timeout": true}}, 1, "timeout", want{false, time.Time{}}},
		{"voicemail counts as answered by default", policy, 1, "voicemail-message", want{false, time.Time{}}},
		{
			"voicemail is retried when retryOn names that voicemail status",
			RetryPolicy{MaxAttempts: 2, Backoff: time.Hour, RetryOn: map[string]bool{"voicemail-hangup": true}},
			1, "voicemail-hangup", want{true, ended.Add(time.Hour)},
		},
		{
			"naming one voicemail status does not retry the other",
			RetryPolicy{MaxAttempts: 2, Backoff: time.Hour, RetryOn: map[string]bool{"voicemail-hangup": true}},
			1, "voicemail-message", want{false, time.Time{}},
		},
		{"a dial that failed terminally is never retried", RetryPolicy{MaxAttempts: 3, RetryOn: map[string]bool{"": true}}, 1, "", want{false, time.Time{}}},
		{"one attempt allowed: no retry", RetryPolicy{MaxAttempts: 1, RetryOn: map[string]bool{"busy": true}}, 1, "busy", want{false, time.Time{}}},
		{"zero max attempts means one attempt, not unlimited", RetryPolicy{RetryOn: map[string]bool{"busy": true}}, 1, "busy", want{false, time.Time{}}},
		{"no backoff: retry as soon as it ended", RetryPolicy{MaxAttempts: 2, RetryOn: map[string]bool{"busy": true}}, 1, "busy", want{true, ended}},
		{"a negative backoff never schedules into the past", RetryPolicy{MaxAttempts: 2, Backoff: -time.Hour, RetryOn: map[string]bool{"busy": true}}, 1, "busy", want{true, ended}},
		{"attempt 0 counts as the first", RetryPolicy{MaxAttempts: 2, Backoff: time.Minute, RetryOn: map[string]bool{"busy": true}}, 0, "busy", want{true, ended.Add(time.Minute)}},
		{"no retryOn: no retries", RetryPolicy{MaxAttempts: 5}, 1, "busy", want{false, time.Time{}}},
	}
	for _, c := range cases {
		retry, at := c.policy.Next(c.attempt, c.status, ended)
		if diff := cmp.Diff(c.want, want{retry, at}, cmp.AllowUnexported(want{})); diff != "" {
			t.Errorf("%s: Next(%d, %q): -want, +got:\n%s", c.reason, c.attempt, c.status, diff)
		}
	}
}
