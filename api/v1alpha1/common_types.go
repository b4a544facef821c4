package v1alpha1

// PhoneNumber is a phone number in E.164 form: a leading '+', the country
// code and the subscriber number, digits only (for example +15550100002).
// Millis accepts nothing else.
// +kubebuilder:validation:MaxLength=16
// +kubebuilder:validation:XValidation:rule="self.matches('^\\\\+[1-9][0-9]{6,14}$')",message="must be an E.164 phone number: '+', country code and number, digits only (for example +15550100002)"
type PhoneNumber string

// LocalObjectReference names an object in the same namespace.
// +structType=atomic
type LocalObjectReference struct {
	// name of the referent.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// SecretKeySelector selects a key of a Secret in the same namespace.
// +structType=atomic
type SecretKeySelector struct {
	// name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// key within the Secret's data.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}

// Condition types and reasons shared by every kind.
const (
	// ConditionReady is True when the resource is usable: an account whose
	// credentials Millis accepted, an agent that exists at Millis.
	ConditionReady = "Ready"

	// ReasonReconcileError means an unexpected error; the message says which.
	ReasonReconcileError = "ReconcileError"
	// ReasonMillisUnavailable means Millis answered 5xx or 429, or did not
	// answer at all. The operator retries with backoff.
	ReasonMillisUnavailable = "MillisUnavailable"
)

// LabelManagedBy and friends are the labels and annotations the operator
// puts on objects it creates, and the metadata key it adds to Millis calls.
const (
	// MetadataKeyCallRef is the only key the operator adds to a call's Millis
	// metadata. Its value is "<OutboundCall UID>/<attempt>". It lets the
	// operator find a call in the Millis call logs when it cannot tell whether
	// a dial happened, and match webhooks to calls. With
	// includeMetadataInPrompt it reaches the prompt, so it carries no name,
	// namespace or personal data.
	MetadataKeyCallRef = "_callops_ref"
)
