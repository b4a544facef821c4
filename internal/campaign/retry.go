package campaign

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Millis terminal call_status values a campaign can see.
const (
	StatusBusy             = "busy"
	StatusNoAnswer         = "no-answer"
	StatusFailed           = "failed"
	StatusError            = "error"
	StatusCanceled         = "canceled"
	StatusTimeout          = "timeout"
	StatusVoicemailHangup  = "voicemail-hangup"
	StatusVoicemailMessage = "voicemail-message"
	StatusUserEnded        = "user-ended"
	StatusAgentEnded       = "agent-ended"
	StatusAPIEnded         = "api-ended"
)

// KnownCallStatuses lists the Millis terminal call_status values valid in
// retryOn. Connected ones other than the voicemail statuses are accepted but
// have no effect: see RetryPolicy.Next.
var KnownCallStatuses = []string{
	StatusBusy, StatusNoAnswer, StatusFailed, StatusError, StatusCanceled, StatusTimeout,
	StatusVoicemailHangup, StatusVoicemailMessage, StatusUserEnded, StatusAgentEnded, StatusAPIEnded,
}

// ParseRetryOn turns the spec's retryOn list into a set, rejecting values that
// are not in KnownCallStatuses (and naming all of them), so a typo such as
// "no_answer" fails loudly instead of silently never retrying.
func ParseRetryOn(values []string) (map[string]bool, error) {
	set := make(map[string]bool, len(values))
	var unknown []string
	for _, v := range values {
		if !slices.Contains(KnownCallStatuses, v) {
			unknown = append(unknown, fmt.Sprintf("%q", v))
			continue
		}
		set[v] = true
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("retryOn: unknown call status %s: want one of %s",
			strings.Join(unknown, ", "), strings.Join(KnownCallStatuses, ", "))
	}
	return set, nil
}

// Connected reports whether a final call status means someone (or something)
// answered: user-ended, agent-ended, api-ended, timeout, voicemail-hangup,
// voicemail-message.
func Connected(status string) bool {
	switch status {
	case StatusUserEnded, StatusAgentEnded, StatusAPIEnded, StatusTimeout,
		StatusVoicemailHangup, StatusVoicemailMessage:
		return true
	}
	return false
}

func voicemail(status string) bool {
	return status == StatusVoicemailHangup || status == StatusVoicemailMessage
}

// RetryPolicy says when a recipient is called again.
type RetryPolicy struct {
	MaxAttempts int             // >= 1; values below 1 mean a single attempt
	Backoff     time.Duration   // wait after an attempt ends; negative means none
	RetryOn     map[string]bool // Millis call_status values, e.g. busy, no-answer, failed
}

// Next decides what follows a finished attempt. attempt is the 1-based number
// of the attempt just finished (values below 1 count as 1), status its final
// call_status and endedAt when it ended. It returns retry=false when the
// recipient is done, else the earliest time of the next attempt, endedAt plus
// Backoff. Fitting that time into a calling window is the caller's job
// (NextOpen).
//
// Never retried, whatever RetryOn says:
//   - status "": the dial itself failed terminally (for example Millis rejected
//     the request), and dialing the same request again would fail the same way;
//   - a connected call (see Connected): someone took it, and calling a person
//     again after they hung up is the harm this policy exists to prevent.
//
// Voicemail is the exception to the second rule. It counts as answered by
// default, because a message may have been left, but a campaign that wants to
// reach a person can name voicemail-hangup or voicemail-message in RetryOn,
// and only then is it retried. Other connected statuses in RetryOn are ignored.
func (p RetryPolicy) Next(attempt int, status string, endedAt time.Time) (retry bool, at time.Time) {
	attempt = max(attempt, 1)
	switch {
	case status == "":
		return false, time.Time{}
	case attempt >= p.MaxAttempts:
		return false, time.Time{}
	case !p.RetryOn[status]:
		return false, time.Time{}
	case Connected(status) && !voicemail(status):
		return false, time.Time{}
	}
	return true, endedAt.Add(max(p.Backoff, 0))
}
