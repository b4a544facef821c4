package millis

// Call statuses, verbatim from the Millis CallStatus enum
// (docs/millis-api-assumptions.md, "Call status").
const (
	StatusRegistered     = "registered"
	StatusQueued         = "queued"
	StatusDispatching    = "dispatching"
	StatusProviderQueued = "provider_queued"
	StatusInitiated      = "initiated"
	StatusRinging        = "ringing"
	StatusInProgress     = "in-progress"
	StatusUserEnded      = "user-ended"
	StatusAgentEnded     = "agent-ended"
	StatusAPIEnded       = "api-ended"
	StatusVoicemailHang  = "voicemail-hangup"
	StatusVoicemailMsg   = "voicemail-message"
	StatusTimeout        = "timeout"
	StatusCanceled       = "canceled"
	StatusBusy           = "busy"
	StatusNoAnswer       = "no-answer"
	StatusFailed         = "failed"
	StatusError          = "error"
	StatusUnknown        = "unknown"
	StatusChatCompletion = "chat_completion"
)

// IsTerminal reports whether a call in this status will not change again.
// "unknown" is treated as not terminal: the docs give it no meaning, so the
// operator keeps polling rather than guessing an outcome.
func IsTerminal(status string) bool {
	switch status {
	case StatusUserEnded, StatusAgentEnded, StatusAPIEnded, StatusVoicemailHang, StatusVoicemailMsg,
		StatusTimeout, StatusCanceled, StatusBusy, StatusNoAnswer, StatusFailed, StatusError, StatusChatCompletion:
		return true
	}
	return false
}

// IsConnected reports whether a terminal status means a conversation took
// place (the callee or their voicemail answered). Such calls are never retried.
func IsConnected(status string) bool {
	switch status {
	case StatusUserEnded, StatusAgentEnded, StatusAPIEnded, StatusVoicemailHang, StatusVoicemailMsg,
		StatusTimeout, StatusChatCompletion:
		return true
	}
	return false
}

// IsLive reports whether the status is a known, not yet terminal one.
func IsLive(status string) bool {
	switch status {
	case StatusRegistered, StatusQueued, StatusDispatching, StatusProviderQueued, StatusInitiated,
		StatusRinging, StatusInProgress:
		return true
	}
	return false
}
