package v1alpha1

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ManagementPolicy says what the operator may do to the Millis agent.
// +kubebuilder:validation:Enum=Full;ObserveOnly
type ManagementPolicy string

const (
	// ManagementFull creates, updates, repairs and deletes the agent.
	ManagementFull ManagementPolicy = "Full"
	// ManagementObserveOnly reads the agent and reports drift; it never writes.
	ManagementObserveOnly ManagementPolicy = "ObserveOnly"
)

// DeletionPolicy says what happens to the Millis agent when the Agent is deleted.
// +kubebuilder:validation:Enum=Delete;Orphan
type DeletionPolicy string

const (
	DeletionDelete DeletionPolicy = "Delete"
	DeletionOrphan DeletionPolicy = "Orphan"
)

// MissingPolicy says what to do when the Millis agent disappears (deleted in
// the dashboard, or an externalID that does not exist).
// +kubebuilder:validation:Enum=Recreate;Report
type MissingPolicy string

const (
	MissingRecreate MissingPolicy = "Recreate"
	MissingReport   MissingPolicy = "Report"
)

// AgentSpec declares a Millis voice agent.
// +kubebuilder:validation:XValidation:rule="(has(self.managementPolicy) && self.managementPolicy == 'ObserveOnly') || has(self.config)",message="config (with prompt and voice) is required unless managementPolicy is ObserveOnly"
// +kubebuilder:validation:XValidation:rule="(has(self.managementPolicy) && self.managementPolicy == 'ObserveOnly') ? has(self.externalID) : true",message="ObserveOnly needs externalID: the agent to observe"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.externalID) || (has(self.externalID) && self.externalID == oldSelf.externalID)",message="externalID cannot change; create a new Agent to manage another Millis agent"
type AgentSpec struct {
	// accountRef names the MillisAccount in this namespace. Defaults to "default".
	// +optional
	AccountRef *LocalObjectReference `json:"accountRef,omitempty"`

	// displayName is the Millis agent name. Defaults to the Agent's metadata.name.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	DisplayName string `json:"displayName,omitempty"`

	// config is the agent's configuration. Fields use Kubernetes camelCase;
	// they map to the Millis AgentConfig's snake_case fields.
	// +optional
	Config *AgentConfig `json:"config,omitempty"`

	// extraConfig holds any other Millis AgentConfig field, passed through as
	// JSON in Millis's own snake_case (for example {"flow": {"voicemail":
	// {"action": "hangup"}}}). Typed config fields win over the same key here.
	// A session_data_webhook or extra_prompt_webhook set here is kept: the
	// operator points Millis at its own receiver and relays to it.
	// +optional
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	ExtraConfig *apiextensionsv1.JSON `json:"extraConfig,omitempty"`

	// phoneNumbers are the account's Millis numbers that answer and call with
	// this agent (POST /phones/{phone}/set_agent).
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=set
	PhoneNumbers []PhoneNumber `json:"phoneNumbers,omitempty"`

	// externalID adopts an existing Millis agent (made in the dashboard)
	// instead of creating one.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	ExternalID string `json:"externalID,omitempty"`

	// managementPolicy: Full (default) or ObserveOnly (read and report, never write).
	// +optional
	ManagementPolicy ManagementPolicy `json:"managementPolicy,omitempty"`

	// deletionPolicy: Delete (default) deletes the Millis agent and unbinds
	// its numbers when the Agent is deleted; Orphan leaves them.
	// ObserveOnly agents are never deleted.
	// +optional
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`

	// onMissing: what to do when the Millis agent is gone. Recreate (default
	// for agents the operator created) or Report (default for adopted agents).
	// +optional
	OnMissing MissingPolicy `json:"onMissing,omitempty"`

	// driftCheckInterval is how often the Millis agent is re-read for drift
	// (jittered by up to 10%). Defaults to the manager's
	// --agent-drift-interval (10m).
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="must be a duration such as 30s, 10m or 1h"
	DriftCheckInterval *metav1.Duration `json:"driftCheckInterval,omitempty"`

	// prefetchVariables are {name} variables filled at call time by the
	// prefetch webhook; calls need not provide them.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=set
	PrefetchVariables []string `json:"prefetchVariables,omitempty"`
}

// AgentConfig is the part of a Millis AgentConfig the operator models.
type AgentConfig struct {
	// prompt is the system prompt (Millis prompt). May use {name} variables.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=65536
	Prompt string `json:"prompt"`

	// firstMessage is the greeting (Millis first_message). May use {name} variables.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	FirstMessage string `json:"firstMessage,omitempty"`

	// voice is the text-to-speech voice (Millis voice).
	// +required
	Voice Voice `json:"voice"`

	// language is a Millis language code such as en-US (Millis language).
	// Not restricted here: Millis's list changes, and it rejects what it
	// does not know.
	// +optional
	// +kubebuilder:validation:MaxLength=16
	Language string `json:"language,omitempty"`

	// llm selects the language model (Millis llm).
	// +optional
	LLM *LLM `json:"llm,omitempty"`

	// sessionTimeout ends idle or long calls (Millis session_timeout).
	// +optional
	SessionTimeout *SessionTimeout `json:"sessionTimeout,omitempty"`

	// timezone is the agent's time zone (Millis timezone).
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Timezone string `json:"timezone,omitempty"`

	// enableRecording records calls (Millis call_settings.enable_recording).
	// +optional
	EnableRecording *bool `json:"enableRecording,omitempty"`
}

// Voice is a Millis voice.
type Voice struct {
	// provider such as elevenlabs, openai, cartesia, playht, deepgram, rime
	// (Millis voice.provider). Passed through: Millis decides.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	Provider string `json:"provider"`
	// voiceID is the provider's voice (Millis voice.voice_id).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	VoiceID string `json:"voiceID"`
	// model is the provider's model, e.g. eleven_turbo_v2_5 (Millis voice.model).
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Model string `json:"model,omitempty"`
}

// LLM is a Millis llm setting.
type LLM struct {
	// model such as gpt-4o-mini (Millis llm.model). Passed through.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Model string `json:"model"`
	// temperature as a decimal string, e.g. "0.2" (Millis llm.temperature).
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9]+(\.[0-9]+)?$`
	// +kubebuilder:validation:MaxLength=8
	Temperature string `json:"temperature,omitempty"`
}

// SessionTimeout is a Millis session_timeout.
type SessionTimeout struct {
	// maxDuration ends the call after this many seconds (Millis max_duration).
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxDuration *int32 `json:"maxDuration,omitempty"`
	// maxIdle ends the call after this many idle seconds (Millis max_idle).
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxIdle *int32 `json:"maxIdle,omitempty"`
	// message is said before the timeout hangs up (Millis message).
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
}

// AgentStatus is what the operator last observed.
type AgentStatus struct {
	// observedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready (the agent exists at Millis) and Synced (it matches
	// the spec, or, under ObserveOnly, whether it drifted).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// agentID is the Millis agent ID. It is also kept in the
	// millis.callops.dev/external-id annotation, which survives a lost status.
	// +optional
	AgentID string `json:"agentID,omitempty"`

	// variables are the {name} variables the agent speaks (prompt, first
	// message and other messages). Calls must provide them, except
	// prefetchVariables.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=128
	Variables []string `json:"variables,omitempty"`

	// phoneNumbers are the numbers currently bound to this agent by the operator.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	PhoneNumbers []PhoneNumber `json:"phoneNumbers,omitempty"`

	// drift lists the fields that differed at the last observation, e.g.
	// "config.prompt".
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	Drift []string `json:"drift,omitempty"`

	// lastObservedTime is when the Millis agent was last read.
	// +optional
	LastObservedTime *metav1.Time `json:"lastObservedTime,omitempty"`
}

// Condition types and reasons of Agent.
const (
	// ConditionSynced is True when the last reconcile brought (or found) the
	// Millis agent in line with the spec.
	ConditionSynced = "Synced"

	ReasonAvailable        = "Available"
	ReasonCreating         = "Creating"
	ReasonReconcileSuccess = "ReconcileSuccess"
	ReasonDrifted          = "Drifted"
	ReasonTerminal         = "TerminalError"
	ReasonExternalNotFound = "ExternalAgentNotFound"
	ReasonExternalConflict = "ExternalIDConflict"
	ReasonPhoneConflict    = "PhoneNumberConflict"
	ReasonCreateUncertain  = "CreateUncertain"
	ReasonDeleting         = "Deleting"
	ReasonAgentNotReady    = "AgentNotReady"
)

// Annotations the Agent controller keeps on Agents, as Crossplane does.
const (
	// AnnotationExternalID is the Millis agent ID.
	AnnotationExternalID = "millis.callops.dev/external-id"
	// AnnotationCreatePending is written, conflict-checked, before POST
	// /agents; with no external ID beside it, a create may have happened.
	AnnotationCreatePending = "millis.callops.dev/external-create-pending"
)

// Agent is a Millis voice agent.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=magent,categories=millis
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Synced",type=string,JSONPath=`.status.conditions[?(@.type=="Synced")].status`
// +kubebuilder:printcolumn:name="Agent-ID",type=string,JSONPath=`.status.agentID`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Synced")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Agent struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec AgentSpec `json:"spec"`
	// +optional
	Status AgentStatus `json:"status,omitempty"`
}

// AccountName is the referenced MillisAccount, "default" when unset.
func (a *Agent) AccountName() string {
	if a.Spec.AccountRef == nil || a.Spec.AccountRef.Name == "" {
		return "default"
	}
	return a.Spec.AccountRef.Name
}

// MillisName is the Millis agent name.
func (a *Agent) MillisName() string {
	if a.Spec.DisplayName != "" {
		return a.Spec.DisplayName
	}
	return a.Name
}

// ObserveOnly reports whether the operator must never write the agent.
func (a *Agent) ObserveOnly() bool { return a.Spec.ManagementPolicy == ManagementObserveOnly }

// +kubebuilder:object:root=true

// AgentList contains a list of Agent.
type AgentList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Agent `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Agent{}, &AgentList{})
}
