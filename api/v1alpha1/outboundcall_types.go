package v1alpha1

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MaxMetadataBytes is the largest metadata object, serialised as JSON, that
// an OutboundCall may send to Millis. Metadata travels in every webhook and,
// with includeMetadataInPrompt, in every prompt, so it is kept small.
const MaxMetadataBytes = 16 * 1024

// OutboundCallSpec describes one outbound phone call placed by Millis.
// +kubebuilder:validation:XValidation:rule="has(self.agentID) != has(self.agentRef)",message="set exactly one of agentID and agentRef"
//
// Once the operator has started dialing (status.dial is set) the fields that
// shape the call can no longer change: a placed call cannot be re-shaped.
// The CRD's own rule freezes the scalar fields; the JSON fields (metadata,
// agentConfig) are frozen by the ValidatingAdmissionPolicy in
// config/admission, because CEL inside a CRD cannot afford to compare
// free-form JSON.
type OutboundCallSpec struct {
	// accountRef names the MillisAccount in this namespace that places the
	// call. Defaults to "default".
	// +optional
	AccountRef *LocalObjectReference `json:"accountRef,omitempty"`

	// agentID is the Millis agent that talks on the call. Exactly one of
	// agentID and agentRef is set.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	AgentID string `json:"agentID,omitempty"`

	// agentRef names an Agent in this namespace. The call waits until the
	// Agent is Ready, then uses its Millis agent ID.
	// +optional
	AgentRef *LocalObjectReference `json:"agentRef,omitempty"`

	// fromPhone is one of the account's Millis phone numbers, in E.164 form.
	// +required
	FromPhone PhoneNumber `json:"fromPhone"`

	// toPhone is the number to call, in E.164 form.
	// +required
	ToPhone PhoneNumber `json:"toPhone"`

	// metadata is any JSON object. It becomes the session's variables, is
	// sent to the prefetch and end-of-call webhooks and, with
	// includeMetadataInPrompt, is added to the prompt. String values may use
	// {name} templates, rendered by the operator from the other top-level
	// metadata values and from FromPhone and ToPhone before dialing. At most
	// 64 top-level keys and 16 KiB as JSON.
	// +optional
	// +kubebuilder:validation:Type=object
	// +kubebuilder:validation:MaxProperties=64
	// +kubebuilder:pruning:PreserveUnknownFields
	Metadata *apiextensionsv1.JSON `json:"metadata,omitempty"`

	// includeMetadataInPrompt adds the whole metadata object to the agent's
	// system prompt. Millis defaults it to false, and so does the operator.
	// +optional
	IncludeMetadataInPrompt bool `json:"includeMetadataInPrompt,omitempty"`

	// agentConfig overrides fields of the agent's config for this call only
	// (a Millis PartialAgentConfig, for example {"first_message": "Hi
	// {userName}"}). String values are rendered like metadata.
	// +optional
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	AgentConfig *apiextensionsv1.JSON `json:"agentConfig,omitempty"`

	// prefetch is the personalised data the operator's webhook receiver hands
	// to Millis when the call connects (the Millis prefetch-data webhook). It
	// is read at call time, so Secrets are never copied into the spec or the
	// Millis call request.
	// +optional
	Prefetch *PrefetchSpec `json:"prefetch,omitempty"`

	// terminateOnDelete hangs up a live call (POST
	// /sessions/{id}/terminate) when this OutboundCall is deleted. By default
	// deleting the resource never hangs up on a customer.
	// +optional
	TerminateOnDelete bool `json:"terminateOnDelete,omitempty"`
}

// PrefetchSpec is data served to Millis's prefetch-data webhook.
type PrefetchSpec struct {
	// metadataFrom lists ConfigMaps and Secrets whose keys are merged into the
	// session metadata when the call connects, in order (later wins).
	// +optional
	// +kubebuilder:validation:MaxItems=8
	// +listType=atomic
	MetadataFrom []MetadataSource `json:"metadataFrom,omitempty"`

	// extraPrompt is appended to the agent's prompt when the call connects.
	// It may use {name} templates.
	// +optional
	// +kubebuilder:validation:MaxLength=8192
	ExtraPrompt string `json:"extraPrompt,omitempty"`
}

// MetadataSource is a ConfigMap or a Secret; exactly one is set.
// +kubebuilder:validation:XValidation:rule="has(self.configMapRef) != has(self.secretRef)",message="set exactly one of configMapRef and secretRef"
type MetadataSource struct {
	// configMapRef names a ConfigMap in this namespace.
	// +optional
	ConfigMapRef *LocalObjectReference `json:"configMapRef,omitempty"`
	// secretRef names a Secret in this namespace.
	// +optional
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`
}

// CallPhase is where an OutboundCall is in its life.
// +kubebuilder:validation:Enum=Pending;Dialing;InProgress;Succeeded;Failed
type CallPhase string

const (
	// CallPending: not dialed yet (waiting for the account, templates, ...).
	CallPending CallPhase = "Pending"
	// CallDialing: the intent to dial is recorded; Millis has not confirmed.
	CallDialing CallPhase = "Dialing"
	// CallInProgress: Millis accepted the call; it has not ended.
	CallInProgress CallPhase = "InProgress"
	// CallSucceeded: the call connected and ended (user-ended, agent-ended,
	// api-ended, timeout, voicemail-*).
	CallSucceeded CallPhase = "Succeeded"
	// CallFailed: the call was rejected, or ended without connecting (busy,
	// no-answer, failed, error, canceled).
	CallFailed CallPhase = "Failed"
)

// IsFinished reports whether the phase is terminal.
func (p CallPhase) IsFinished() bool { return p == CallSucceeded || p == CallFailed }

// OutboundCallStatus is what the operator knows about the call.
type OutboundCallStatus struct {
	// observedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// phase: Pending, Dialing, InProgress, Succeeded or Failed.
	// +optional
	Phase CallPhase `json:"phase,omitempty"`

	// conditions: Dialed, Complete, Failed.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// dial is the recorded intent to dial, written before Millis is called.
	// Its presence freezes the spec.
	// +optional
	Dial *DialRecord `json:"dial,omitempty"`

	// sessionID is the Millis session ID of the call.
	// +optional
	SessionID string `json:"sessionID,omitempty"`

	// callID is the Millis call ID (the telephony provider's ID).
	// +optional
	CallID string `json:"callID,omitempty"`

	// callStatus is Millis's call_status, verbatim.
	// +optional
	CallStatus string `json:"callStatus,omitempty"`

	// dialedTime is when Millis accepted the call.
	// +optional
	DialedTime *metav1.Time `json:"dialedTime,omitempty"`

	// startTime is when the Millis session started (its ts).
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// endTime is when the operator learnt that the call ended, or startTime
	// plus duration when Millis reports both.
	// +optional
	EndTime *metav1.Time `json:"endTime,omitempty"`

	// durationSeconds is the talk time Millis reports, rounded to seconds.
	// +optional
	DurationSeconds *int64 `json:"durationSeconds,omitempty"`

	// cost is the sum of cost_breakdown[].credit, in Millis credits.
	// +optional
	Cost string `json:"cost,omitempty"`

	// recordingURL is the call recording, when the agent records calls.
	// +optional
	RecordingURL string `json:"recordingURL,omitempty"`

	// resultMetadata is the session metadata at the end of the call, after
	// prefetch merges.
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Type=object
	ResultMetadata *apiextensionsv1.JSON `json:"resultMetadata,omitempty"`

	// errorMessage is Millis's error_message, or the API's detail when Millis
	// rejected the call.
	// +optional
	ErrorMessage string `json:"errorMessage,omitempty"`

	// transcript holds the last turns of the conversation, each cut to 512
	// characters. The full transcript stays in the Millis call log
	// (GET /call-logs/{sessionID}).
	// +optional
	// +kubebuilder:validation:MaxItems=20
	// +listType=atomic
	Transcript []TranscriptTurn `json:"transcript,omitempty"`

	// transcriptTurns is how many turns the full transcript has.
	// +optional
	TranscriptTurns int32 `json:"transcriptTurns,omitempty"`

	// resultSource says where the result came from: Webhook or CallLog.
	// +optional
	ResultSource string `json:"resultSource,omitempty"`
}

// DialRecord is the operator's record of a dial attempt.
type DialRecord struct {
	// attempt counts dial attempts; it only grows past 1 when the call logs
	// proved that an earlier attempt placed no call.
	Attempt int32 `json:"attempt"`
	// ref is the value of the _callops_ref metadata key sent with the attempt.
	Ref string `json:"ref"`
	// intentTime is when the intent to dial was recorded.
	IntentTime metav1.Time `json:"intentTime"`
	// searchFrom, when set, is the earliest time the attempt can have been
	// dialed: the call's creation, for a campaign call whose dial was
	// claimed by a manager instance that has since stopped.
	// +optional
	SearchFrom *metav1.Time `json:"searchFrom,omitempty"`
}

// TranscriptTurn is one turn of a conversation.
type TranscriptTurn struct {
	// role: user, assistant or tool.
	Role string `json:"role"`
	// content, cut to 512 characters.
	Content string `json:"content"`
}

// Condition types of OutboundCall. Complete and Failed mirror a Job's, so
// `kubectl wait --for=condition=Complete` works.
const (
	// ConditionDialed is True once Millis accepted the call.
	ConditionDialed = "Dialed"
	// ConditionComplete is True when the call connected and ended.
	ConditionComplete = "Complete"
	// ConditionFailed is True when the call was rejected or did not connect.
	ConditionFailed = "Failed"
)

// Reasons of OutboundCall conditions.
const (
	ReasonAccountNotFound  = "AccountNotFound"
	ReasonAccountNotReady  = "AccountNotReady"
	ReasonTemplateError    = "TemplateError"
	ReasonMetadataTooLarge = "MetadataTooLarge"
	ReasonPrefetchNotFound = "PrefetchSourceNotFound"
	ReasonDialing          = "Dialing"
	ReasonDialUnconfirmed  = "DialUnconfirmed"
	ReasonRateLimited      = "RateLimited"
	ReasonAccepted         = "Accepted"
	ReasonRecovered        = "RecoveredFromCallLogs"
	ReasonMillisRejected   = "MillisRejected"
	ReasonUnauthorized     = "Unauthorized"
	ReasonCallEnded        = "CallEnded"
	ReasonCallNotConnected = "CallNotConnected"
	ReasonDialNotConfirmed = "DialNotConfirmed"
	ReasonAgentNotFound    = "AgentNotFound"
	ReasonSessionNotFound  = "SessionNotFound"
)

// OutboundCall is one phone call placed by a Millis voice agent.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ocall,categories=millis
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="To",type=string,JSONPath=`.spec.toPhone`
// +kubebuilder:printcolumn:name="Session",type=string,JSONPath=`.status.sessionID`
// +kubebuilder:printcolumn:name="Call-Status",type=string,JSONPath=`.status.callStatus`
// +kubebuilder:printcolumn:name="Duration",type=integer,JSONPath=`.status.durationSeconds`,priority=1
// +kubebuilder:printcolumn:name="Cost",type=string,JSONPath=`.status.cost`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.status) || !has(oldSelf.status.dial) || ((has(self.spec.accountRef) ? self.spec.accountRef.name : 'default') == (has(oldSelf.spec.accountRef) ? oldSelf.spec.accountRef.name : 'default') && (has(self.spec.agentID) ? self.spec.agentID : '-') == (has(oldSelf.spec.agentID) ? oldSelf.spec.agentID : '-') && (has(self.spec.agentRef) ? self.spec.agentRef.name : '-') == (has(oldSelf.spec.agentRef) ? oldSelf.spec.agentRef.name : '-') && self.spec.fromPhone == oldSelf.spec.fromPhone && self.spec.toPhone == oldSelf.spec.toPhone && (has(self.spec.includeMetadataInPrompt) && self.spec.includeMetadataInPrompt) == (has(oldSelf.spec.includeMetadataInPrompt) && oldSelf.spec.includeMetadataInPrompt))",fieldPath=".spec",message="the call has been dialed: accountRef, agentID, agentRef, fromPhone, toPhone and includeMetadataInPrompt cannot change any more (create a new OutboundCall instead)"
type OutboundCall struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec OutboundCallSpec `json:"spec"`
	// +optional
	Status OutboundCallStatus `json:"status,omitempty"`
}

// AccountName is the referenced MillisAccount, "default" when unset.
func (c *OutboundCall) AccountName() string {
	if c.Spec.AccountRef == nil || c.Spec.AccountRef.Name == "" {
		return "default"
	}
	return c.Spec.AccountRef.Name
}

// +kubebuilder:object:root=true

// OutboundCallList contains a list of OutboundCall.
type OutboundCallList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []OutboundCall `json:"items"`
}

func init() {
	SchemeBuilder.Register(&OutboundCall{}, &OutboundCallList{})
}
