package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Region is a Millis region.
// +kubebuilder:validation:Enum=us-west;eu-west
type Region string

const (
	RegionUSWest Region = "us-west"
	RegionEUWest Region = "eu-west"
)

// UnconfirmedDialPolicy says what to do when the operator cannot tell whether
// Millis placed a call, and the call logs do not show it.
// +kubebuilder:validation:Enum=Redial;Fail
type UnconfirmedDialPolicy string

const (
	// UnconfirmedDialRedial dials again once the call logs show, after
	// callLogVisibilityDelay, that no call was placed.
	UnconfirmedDialRedial UnconfirmedDialPolicy = "Redial"
	// UnconfirmedDialFail marks the call Failed instead. Use it for accounts
	// that opt out of data collection: their calls never reach the call logs,
	// so absence there proves nothing.
	UnconfirmedDialFail UnconfirmedDialPolicy = "Fail"
)

// MillisAccountSpec defines how to reach a Millis account.
// +kubebuilder:validation:XValidation:rule="!(has(self.region) && has(self.baseURL))",message="set either region or baseURL, not both"
type MillisAccountSpec struct {
	// region selects the Millis API: us-west (https://api-west.millis.ai) or
	// eu-west (https://api-eu-west.millis.ai). Defaults to us-west when
	// neither region nor baseURL is set.
	// +optional
	Region Region `json:"region,omitempty"`

	// baseURL is an explicit Millis API base URL, for a simulator, a proxy
	// or a region this operator does not know yet.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.matches('^https?://[^\\\\s]+$')",message="must be an http:// or https:// URL"
	BaseURL string `json:"baseURL,omitempty"`

	// apiKeySecretRef selects the Secret key holding the Millis private API
	// key. It is sent as-is in the authorization header and never logged.
	// +required
	APIKeySecretRef SecretKeySelector `json:"apiKeySecretRef"`

	// webhook is where Millis reaches this operator's webhook receiver. When
	// set, calls carry end-of-call and prefetch webhooks pointing here, and
	// their results arrive within seconds; without it the operator learns
	// results by polling the call logs.
	// +optional
	Webhook *AccountWebhook `json:"webhook,omitempty"`

	// dialRecovery tunes how the operator proves that a call whose dial
	// outcome is unknown (a timeout, a crash, a 5xx) was or was not placed.
	// +optional
	DialRecovery *DialRecovery `json:"dialRecovery,omitempty"`

	// verifyInterval is how often the credentials and credit are re-checked
	// with GET /user/info. Defaults to 5m.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="must be a duration such as 30s, 10m or 1h"
	VerifyInterval *metav1.Duration `json:"verifyInterval,omitempty"`
}

// AccountWebhook configures the operator's webhook receiver for an account.
type AccountWebhook struct {
	// url is the public base URL of the operator's webhook receiver, as Millis
	// sees it (an Ingress with TLS in production, a tunnel in development).
	// The operator appends /millis/<namespace>/<account>/end-of-call and
	// /millis/<namespace>/<account>/prefetch.
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.matches('^https?://[^\\\\s]+$')",message="must be an http:// or https:// URL"
	URL string `json:"url"`

	// tokenSecretRef selects the Secret key holding the shared token Millis
	// sends back in the webhook header. Requests without it are rejected.
	// +required
	TokenSecretRef SecretKeySelector `json:"tokenSecretRef"`

	// header is the HTTP header that carries the token. Defaults to
	// X-Millis-Operator-Token.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9-]+$`
	Header string `json:"header,omitempty"`
}

// DialRecovery tunes the proof that an unconfirmed dial did not happen.
type DialRecovery struct {
	// callLogVisibilityDelay is how long after a dial attempt a placed call is
	// assumed to be visible in GET /call-logs. Only once it has passed does
	// absence from the call logs count as proof that no call was placed.
	// Defaults to 30s.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="must be a duration such as 30s, 10m or 1h"
	CallLogVisibilityDelay *metav1.Duration `json:"callLogVisibilityDelay,omitempty"`

	// onUnconfirmed is what happens when, after that delay, the call logs do
	// not show the call: Redial (default) or Fail.
	// +optional
	OnUnconfirmed UnconfirmedDialPolicy `json:"onUnconfirmed,omitempty"`
}

// MillisAccountStatus is what the operator last learnt about the account.
type MillisAccountStatus struct {
	// observedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// endpoint is the Millis API base URL in use.
	// +optional
	Endpoint string `json:"endpoint,omitempty"`

	// userID is the Millis user the key belongs to.
	// +optional
	UserID string `json:"userID,omitempty"`

	// credit is the remaining Millis credit, as reported by GET /user/info.
	// +optional
	Credit string `json:"credit,omitempty"`

	// usedCredit is the credit used so far.
	// +optional
	UsedCredit string `json:"usedCredit,omitempty"`

	// lastVerifiedTime is when Millis last accepted the credentials.
	// +optional
	LastVerifiedTime *metav1.Time `json:"lastVerifiedTime,omitempty"`
}

// Reasons for the MillisAccount Ready condition.
const (
	ReasonVerified           = "Verified"
	ReasonSecretNotFound     = "SecretNotFound"
	ReasonSecretKeyMissing   = "SecretKeyMissing"
	ReasonInvalidCredentials = "InvalidCredentials"
	ReasonInvalidEndpoint    = "InvalidEndpoint"
)

// MillisAccount holds the credentials and endpoints of one Millis account.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=macct,categories=millis
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.status.endpoint`
// +kubebuilder:printcolumn:name="Credit",type=string,JSONPath=`.status.credit`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type MillisAccount struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec MillisAccountSpec `json:"spec"`
	// +optional
	Status MillisAccountStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// MillisAccountList contains a list of MillisAccount.
type MillisAccountList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MillisAccount `json:"items"`
}

func init() {
	SchemeBuilder.Register(&MillisAccount{}, &MillisAccountList{})
}
