// Package millis is the operator's seam to the Millis AI REST API: one
// context-first interface, its HTTP implementation, and the wire types.
//
// Sources for every shape are in docs/millis-api-assumptions.md, which also
// lists what the Millis docs leave unsaid and what this package assumes.
package millis

import (
	"context"
	"encoding/json"
)

// Interface is everything the operator asks of Millis. Every method is safe
// for concurrent use and honours ctx deadlines; the HTTP implementation also
// applies its own per-request timeout.
//
// Errors are *APIError for an HTTP answer that is not 2xx, and wrapped
// transport errors otherwise. Use IsRetryable, IsNotFound, IsUnauthorized and
// RetryAfter to classify them; never compare strings.
type Interface interface {
	// StartOutboundCall places a real, billed phone call. It is not idempotent:
	// callers must persist their intent first and, on any error that is not a
	// definite rejection (see IsDefiniteRejection), look the call up in the
	// call logs before trying again.
	StartOutboundCall(ctx context.Context, req StartOutboundCallRequest) (*CallRegistration, error)
	GetCallLog(ctx context.Context, sessionID string) (*CallHistory, error)
	ListCallLogs(ctx context.Context, opts ListCallLogsOptions) (*CallHistoryPage, error)
	TerminateSession(ctx context.Context, sessionID string, message string) error
	GetUserInfo(ctx context.Context) (*UserInfo, error)

	ListAgents(ctx context.Context) ([]Agent, error)
	GetAgent(ctx context.Context, agentID string) (*Agent, error)
	CreateAgent(ctx context.Context, name string, config json.RawMessage) (*Agent, error)
	UpdateAgent(ctx context.Context, agentID, name string, config json.RawMessage) error
	DeleteAgent(ctx context.Context, agentID string) error

	ListPhones(ctx context.Context) ([]Phone, error)
	GetPhone(ctx context.Context, phone string) (*Phone, error)
	// SetPhoneAgent binds phone to agentID; an empty agentID unbinds it (sends null).
	SetPhoneAgent(ctx context.Context, phone, agentID string) error
}

// StartOutboundCallRequest is the body of POST /start_outbound_call.
type StartOutboundCallRequest struct {
	FromPhone string `json:"from_phone"`
	ToPhone   string `json:"to_phone"`
	AgentID   string `json:"agent_id,omitempty"`
	// AgentConfig is a PartialAgentConfig that overrides the stored agent's
	// config for this call only. Raw so that any field passes through.
	AgentConfig json.RawMessage `json:"agent_config,omitempty"`
	// Metadata is any JSON object; it becomes session variables and travels to
	// the prefetch and end-of-call webhooks.
	Metadata json.RawMessage `json:"metadata,omitempty"`
	// IncludeMetadataInPrompt is always sent, so that the Millis default
	// (false) never has to be guessed at.
	IncludeMetadataInPrompt bool            `json:"include_metadata_in_prompt"`
	SessionContinuation     json.RawMessage `json:"session_continuation,omitempty"`
}

// CallRegistration is the 200 answer of POST /start_outbound_call.
type CallRegistration struct {
	CallID    string `json:"call_id"`
	SessionID string `json:"session_id"`
}

// ListCallLogsOptions are the query parameters of GET /call-logs. Zero values
// are left out of the query.
type ListCallLogsOptions struct {
	Limit        int     // 1..100; 0 means the server default (20)
	StartAfterTS float64 // the previous page's NextCursor
	StartTime    float64 // Unix seconds
	EndTime      float64 // Unix seconds
	AgentID      string
	CallStatus   string
	PhoneNumber  string // searches the voip from/to fields
}

// CallHistoryPage is the answer of GET /call-logs.
type CallHistoryPage struct {
	Histories []CallHistory `json:"histories"`
	// NextCursor is nil on the last page.
	NextCursor *float64 `json:"next_cursor"`
}

// CallHistory is a call log entry, and also the end-of-call webhook body
// (which adds ErrorMessage). Every field is optional on the wire.
//
// Unknown fields survive a decode/encode round trip through Extra.
type CallHistory struct {
	SessionID     string          `json:"session_id,omitempty"`
	CallID        string          `json:"call_id,omitempty"`
	AgentID       string          `json:"agent_id,omitempty"`
	AgentConfig   json.RawMessage `json:"agent_config,omitempty"`
	TS            float64         `json:"ts,omitempty"`
	Duration      float64         `json:"duration,omitempty"`
	Chat          Chat            `json:"chat,omitempty"`
	CharsUsed     int64           `json:"chars_used,omitempty"`
	CostBreakdown []CostItem      `json:"cost_breakdown,omitempty"`
	VoIP          *VoIP           `json:"voip,omitempty"`
	Recording     *Recording      `json:"recording,omitempty"`
	Metadata      json.RawMessage `json:"metadata,omitempty"`
	FunctionCalls json.RawMessage `json:"function_calls,omitempty"`
	CallStatus    string          `json:"call_status,omitempty"`
	// ErrorMessage is only present on the end-of-call webhook.
	ErrorMessage *string `json:"error_message,omitempty"`

	// Extra holds the fields this package does not model, verbatim.
	Extra map[string]json.RawMessage `json:"-"`
}

// TotalCredit sums cost_breakdown[].credit.
func (h *CallHistory) TotalCredit() float64 {
	var sum float64
	for _, c := range h.CostBreakdown {
		sum += c.Credit
	}
	return sum
}

// ChatMessage is one transcript turn.
type ChatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Chat is the transcript. On the wire it is either a JSON-encoded string of
// an array of messages (current docs) or the array itself (older docs); both
// decode to the same value. It encodes as an array.
type Chat []ChatMessage

type CostItem struct {
	Type     string  `json:"type,omitempty"`
	Provider string  `json:"provider,omitempty"`
	Credit   float64 `json:"credit"`
}

type VoIP struct {
	Provider string `json:"provider,omitempty"`
	From     string `json:"from,omitempty"`
	To       string `json:"to,omitempty"`
}

type Recording struct {
	RecordingURL string `json:"recording_url,omitempty"`
}

// UserInfo is the answer of GET /user/info.
type UserInfo struct {
	UserID     string          `json:"user_id"`
	Credit     float64         `json:"credit"`
	UsedCredit float64         `json:"used_credit"`
	AutoRefill json.RawMessage `json:"auto_refill,omitempty"`
}

// Agent is a Millis agent. Config is kept raw so that fields the operator
// does not model survive a read-modify-write.
type Agent struct {
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Config    json.RawMessage `json:"config"`
	CreatedAt float64         `json:"created_at,omitempty"`
}

// Phone is a Millis phone number; ID is the E.164 number itself.
type Phone struct {
	ID                  string          `json:"id"`
	CreateAt            float64         `json:"create_at,omitempty"`
	Status              string          `json:"status,omitempty"`
	AgentID             string          `json:"agent_id,omitempty"`
	AgentConfigOverride json.RawMessage `json:"agent_config_override,omitempty"`
	Tags                []string        `json:"tags,omitempty"`
}
