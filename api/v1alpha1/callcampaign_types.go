package v1alpha1

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CallCampaignSpec declares a batch of outbound calls. Each attempt is an
// OutboundCall child, so every guarantee of a single call holds here too.
// +kubebuilder:validation:XValidation:rule="has(self.agentID) != has(self.agentRef)",message="set exactly one of agentID and agentRef"
// +kubebuilder:validation:XValidation:rule="(has(self.recipients) && size(self.recipients) > 0) || (has(self.recipientsFrom) && size(self.recipientsFrom) > 0)",message="set recipients or recipientsFrom: a campaign needs someone to call"
type CallCampaignSpec struct {
	// accountRef names the MillisAccount. Defaults to "default".
	// +optional
	AccountRef *LocalObjectReference `json:"accountRef,omitempty"`

	// agentID is the Millis agent; exactly one of agentID and agentRef.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	AgentID string `json:"agentID,omitempty"`

	// agentRef names an Agent in this namespace.
	// +optional
	AgentRef *LocalObjectReference `json:"agentRef,omitempty"`

	// fromPhone is the account's Millis number the calls come from.
	// +required
	FromPhone PhoneNumber `json:"fromPhone"`

	// includeMetadataInPrompt is passed to every call (Millis default false).
	// +optional
	IncludeMetadataInPrompt bool `json:"includeMetadataInPrompt,omitempty"`

	// metadata is shared by every call; per-recipient keys win.
	// +optional
	// +kubebuilder:validation:Type=object
	// +kubebuilder:validation:MaxProperties=64
	// +kubebuilder:pruning:PreserveUnknownFields
	Metadata *apiextensionsv1.JSON `json:"metadata,omitempty"`

	// recipients listed inline.
	// +optional
	// +kubebuilder:validation:MaxItems=1000
	// +listType=atomic
	Recipients []CampaignRecipient `json:"recipients,omitempty"`

	// recipientsFrom are CSV files in ConfigMaps. The header names the
	// columns: phone (required), timeZone (optional), and metadata columns.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	RecipientsFrom []RecipientSource `json:"recipientsFrom,omitempty"`

	// schedule says when calls may be placed.
	// +optional
	Schedule *CampaignSchedule `json:"schedule,omitempty"`

	// maxConcurrency is the most calls in flight at once. Defaults to 10.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	MaxConcurrency *int32 `json:"maxConcurrency,omitempty"`

	// callsPerMinute is the most calls started in any 60 seconds. 0 or unset
	// means no limit beyond maxConcurrency.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100000
	CallsPerMinute int32 `json:"callsPerMinute,omitempty"`

	// retry is the per-recipient retry policy. Defaults to one attempt.
	// +optional
	Retry *RetrySpec `json:"retry,omitempty"`

	// doNotCall lists numbers never to call: ConfigMap keys with one number
	// per line (or a CSV with a phone column). They are counted as Skipped.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	DoNotCall []RecipientSource `json:"doNotCall,omitempty"`

	// suspend stops starting calls; calls in flight go on. Resuming continues
	// where it stopped.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// terminateOnDelete hangs up calls in flight when the campaign is
	// deleted. By default deleting a campaign stops new dials only.
	// +optional
	TerminateOnDelete bool `json:"terminateOnDelete,omitempty"`

	// childHistoryLimit is how many finished OutboundCall children are kept;
	// older ones are deleted once their result is in the results export.
	// Defaults to 100.
	// +optional
	// +kubebuilder:validation:Minimum=0
	ChildHistoryLimit *int32 `json:"childHistoryLimit,omitempty"`
}

// CampaignRecipient is one recipient given inline.
type CampaignRecipient struct {
	// phone in E.164 form.
	// +required
	Phone PhoneNumber `json:"phone"`
	// timeZone is the recipient's IANA time zone, for calling windows.
	// Defaults to schedule.timeZone.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	TimeZone string `json:"timeZone,omitempty"`
	// metadata for this recipient; wins over the campaign's.
	// +optional
	// +kubebuilder:validation:Type=object
	// +kubebuilder:validation:MaxProperties=64
	// +kubebuilder:pruning:PreserveUnknownFields
	Metadata *apiextensionsv1.JSON `json:"metadata,omitempty"`
}

// RecipientSource is a key of a ConfigMap in this namespace.
type RecipientSource struct {
	// configMapKeyRef selects the ConfigMap and key.
	// +required
	ConfigMapKeyRef ConfigMapKeySelector `json:"configMapKeyRef"`
}

// ConfigMapKeySelector selects a key of a ConfigMap.
// +structType=atomic
type ConfigMapKeySelector struct {
	// name of the ConfigMap.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// key in the ConfigMap's data.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}

// CampaignSchedule says when calls may be placed.
// +kubebuilder:validation:XValidation:rule="!has(self.startTime) || !has(self.deadline) || timestamp(self.deadline) > timestamp(self.startTime)",message="deadline must be after startTime"
type CampaignSchedule struct {
	// startTime is when dialing may begin (RFC 3339). Defaults to now.
	// +optional
	// +kubebuilder:validation:Format=date-time
	StartTime string `json:"startTime,omitempty"`
	// deadline ends the campaign (RFC 3339): recipients not reached by then
	// end as Expired. Calls in flight go on.
	// +optional
	// +kubebuilder:validation:Format=date-time
	Deadline string `json:"deadline,omitempty"`
	// timeZone is the IANA time zone of recipients without their own.
	// Defaults to UTC.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	TimeZone string `json:"timeZone,omitempty"`
	// callingWindows are the local times calls may start, in each
	// recipient's time zone. Defaults to every day 08:00-21:00 (the hours
	// the US TCPA permits).
	// +optional
	// +kubebuilder:validation:MaxItems=14
	// +listType=atomic
	CallingWindows []CallingWindow `json:"callingWindows,omitempty"`
}

// Weekday is a day of the week.
// +kubebuilder:validation:Enum=Mon;Tue;Wed;Thu;Fri;Sat;Sun
type Weekday string

// CallingWindow is a daily span of local time.
// +kubebuilder:validation:XValidation:rule="self.end > self.start",message="end must be after start (windows do not cross midnight; use two windows)"
type CallingWindow struct {
	// days the window applies to. Defaults to every day.
	// +optional
	// +kubebuilder:validation:MaxItems=7
	// +listType=set
	Days []Weekday `json:"days,omitempty"`
	// start is the local opening time, "HH:MM" (24h).
	// +required
	// +kubebuilder:validation:Pattern=`^([01][0-9]|2[0-3]):[0-5][0-9]$`
	Start string `json:"start"`
	// end is the local closing time, "HH:MM" (24h), or "24:00".
	// +required
	// +kubebuilder:validation:Pattern=`^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$`
	End string `json:"end"`
}

// RetrySpec is the per-recipient retry policy.
type RetrySpec struct {
	// maxAttempts per recipient, the first included. Defaults to 1.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10
	MaxAttempts int32 `json:"maxAttempts,omitempty"`
	// backoff between attempts. Defaults to 1h.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="must be a duration such as 30s, 10m or 1h"
	Backoff *metav1.Duration `json:"backoff,omitempty"`
	// retryOn lists the Millis call_status values that are retried.
	// Answered calls are never retried. Defaults to [busy, no-answer].
	// +optional
	// +kubebuilder:validation:MaxItems=12
	// +listType=set
	RetryOn []RetryableStatus `json:"retryOn,omitempty"`
}

// RetryableStatus is a Millis call_status a campaign may retry.
// +kubebuilder:validation:Enum=busy;no-answer;failed;error;canceled;voicemail-hangup;voicemail-message
type RetryableStatus string

// CallCampaignStatus is the campaign's progress. It stays small at any
// recipient count: per-recipient results are in the results ConfigMaps.
type CallCampaignStatus struct {
	// observedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// conditions: Running, Suspended, Complete, Failed.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// total recipients (valid, deduplicated), and how they stand.
	// +optional
	Total int32 `json:"total"`
	// +optional
	Pending int32 `json:"pending"`
	// +optional
	Active int32 `json:"active"`
	// +optional
	Succeeded int32 `json:"succeeded"`
	// +optional
	Failed int32 `json:"failed"`
	// +optional
	Skipped int32 `json:"skipped"`
	// +optional
	Expired int32 `json:"expired"`
	// invalid rows (bad number, time zone, columns, missing variables).
	// +optional
	Invalid int32 `json:"invalid"`
	// duplicates are numbers listed more than once; each is called once.
	// +optional
	Duplicates int32 `json:"duplicates"`
	// dials is the number of OutboundCalls created, retries included.
	// +optional
	Dials int32 `json:"dials"`

	// progress is "finished/total", for kubectl.
	// +optional
	Progress string `json:"progress,omitempty"`

	// startTime is when the first call was started.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// completionTime is when the last recipient finished.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// nextWindowTime is when the next waiting recipient's window opens.
	// +optional
	NextWindowTime *metav1.Time `json:"nextWindowTime,omitempty"`

	// problems are the first recipient problems (invalid rows, duplicates,
	// missing variables), with their source and row. All of them are in the
	// results export.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=20
	Problems []RecipientProblem `json:"problems,omitempty"`

	// results names the ConfigMaps holding per-recipient results as CSV
	// (key results.csv), in order.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=1000
	Results []string `json:"results,omitempty"`
}

// RecipientProblem is one recipient that cannot be called as given.
type RecipientProblem struct {
	// source: "inline" or "configmap/<name>/<key>".
	Source string `json:"source"`
	// row: the 1-based line (CSV, header is line 1) or list index (inline).
	Row int32 `json:"row"`
	// phone, as given.
	// +optional
	Phone string `json:"phone,omitempty"`
	// reason, e.g. "not an E.164 number".
	Reason string `json:"reason"`
}

// Condition types and reasons of CallCampaign.
const (
	ConditionRunning   = "Running"
	ConditionSuspended = "Suspended"
	// ConditionComplete and ConditionFailed are shared with OutboundCall.

	ReasonWaitingForWindow = "WaitingForWindow"
	ReasonWaitingForStart  = "WaitingForStart"
	ReasonSuspended        = "Suspended"
	ReasonAllFinished      = "AllRecipientsFinished"
	ReasonDeadline         = "DeadlineExceeded"
	ReasonInvalidSpec      = "InvalidSpec"
	ReasonSourceNotFound   = "RecipientSourceNotFound"
	ReasonNoRecipients     = "NoValidRecipients"
)

// Labels on campaign children.
const (
	LabelCampaign = "millis.callops.dev/campaign"
	// LabelBucket groups a campaign's children by creation time (5-second
	// steps), so that they are pruned a bucket at a time.
	LabelBucket = "millis.callops.dev/bucket"
	// AnnotationAttempt is the campaign attempt a child places.
	AnnotationAttempt = "millis.callops.dev/attempt"
	// AnnotationDialClaim names the manager instance that created a
	// campaign child. That instance dials it without first recording a dial
	// intent (the child's creation is the intent); any other instance treats
	// the child as possibly dialed and proves otherwise from the call logs.
	AnnotationDialClaim = "millis.callops.dev/dial-claim"
)

// CallCampaign calls many recipients, creating OutboundCalls the way a Job
// creates Pods.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=campaign,categories=millis
// +kubebuilder:printcolumn:name="Progress",type=string,JSONPath=`.status.progress`
// +kubebuilder:printcolumn:name="Active",type=integer,JSONPath=`.status.active`
// +kubebuilder:printcolumn:name="Succeeded",type=integer,JSONPath=`.status.succeeded`
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.failed`
// +kubebuilder:printcolumn:name="Running",type=string,JSONPath=`.status.conditions[?(@.type=="Running")].status`
// +kubebuilder:printcolumn:name="Complete",type=string,JSONPath=`.status.conditions[?(@.type=="Complete")].status`
// +kubebuilder:printcolumn:name="Skipped",type=integer,JSONPath=`.status.skipped`,priority=1
// +kubebuilder:printcolumn:name="Expired",type=integer,JSONPath=`.status.expired`,priority=1
// +kubebuilder:printcolumn:name="Invalid",type=integer,JSONPath=`.status.invalid`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type CallCampaign struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec CallCampaignSpec `json:"spec"`
	// +optional
	Status CallCampaignStatus `json:"status,omitempty"`
}

// AccountName is the referenced MillisAccount, "default" when unset.
func (c *CallCampaign) AccountName() string {
	if c.Spec.AccountRef == nil || c.Spec.AccountRef.Name == "" {
		return "default"
	}
	return c.Spec.AccountRef.Name
}

// +kubebuilder:object:root=true

// CallCampaignList contains a list of CallCampaign.
type CallCampaignList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CallCampaign `json:"items"`
}

func init() {
	SchemeBuilder.Register(&CallCampaign{}, &CallCampaignList{})
}
