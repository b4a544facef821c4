package calls

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	millisv1alpha1 "github.com/callops/millis-operator/api/v1alpha1"
	"github.com/callops/millis-operator/internal/millis"
)

// Result sources.
const (
	SourceWebhook = "Webhook"
	SourceCallLog = "CallLog"
)

// Transcript bounds: status keeps the last turns only, so that one chatty
// call cannot push the object towards etcd's size limit.
const (
	MaxTranscriptTurns = 20
	MaxTurnChars       = 512
)

// RecordAccepted records that Millis accepted the call. It is idempotent and
// never moves a finished call backwards, so it is safe to apply after an
// end-of-call webhook already finished the call.
func RecordAccepted(st *millisv1alpha1.OutboundCallStatus, generation int64, reg millis.CallRegistration, now time.Time, reason string) {
	if st.SessionID == "" {
		st.SessionID = reg.SessionID
	}
	if st.CallID == "" {
		st.CallID = reg.CallID
	}
	if st.DialedTime == nil {
		t := metav1.NewTime(now)
		st.DialedTime = &t
	}
	setCond(st, generation, millisv1alpha1.ConditionDialed, metav1.ConditionTrue, reason, "Millis accepted the call")
	if !st.Phase.IsFinished() {
		st.Phase = millisv1alpha1.CallInProgress
	}
}

// ApplyHistory folds a Millis call log or end-of-call webhook into status.
// It reports whether the call is now finished. A finished call is never
// changed again, so duplicate and out-of-order deliveries are harmless.
func ApplyHistory(st *millisv1alpha1.OutboundCallStatus, generation int64, h *millis.CallHistory, source string, now time.Time) bool {
	if st.Phase.IsFinished() {
		return true
	}
	if h.SessionID != "" && st.SessionID == "" {
		// The webhook of a short call can come before the session is
		// written; the call logs are the recovery path.
		reason := millisv1alpha1.ReasonAccepted
		if source == SourceCallLog {
			reason = millisv1alpha1.ReasonRecovered
		}
		RecordAccepted(st, generation, millis.CallRegistration{SessionID: h.SessionID, CallID: h.CallID}, now, reason)
	}
	if st.Dial == nil {
		if ref := RefOf(h.Metadata); ref != "" {
			st.Dial = dialOfRef(ref, now)
		}
	}
	if st.CallID == "" {
		st.CallID = h.CallID
	}
	if h.CallStatus != "" {
		st.CallStatus = h.CallStatus
	}
	if h.TS > 0 && st.StartTime == nil {
		t := metav1.NewTime(fromUnix(h.TS))
		st.StartTime = &t
	}
	if !millis.IsTerminal(h.CallStatus) {
		return false
	}

	d := int64(math.Round(h.Duration))
	st.DurationSeconds = &d
	end := now
	if st.StartTime != nil && h.Duration > 0 {
		end = st.StartTime.Add(time.Duration(h.Duration * float64(time.Second)))
	}
	endTime := metav1.NewTime(end)
	st.EndTime = &endTime
	st.Cost = strconv.FormatFloat(h.TotalCredit(), 'f', -1, 64)
	if h.Recording != nil {
		st.RecordingURL = h.Recording.RecordingURL
	}
	if len(h.Metadata) > 0 && string(h.Metadata) != "null" {
		st.ResultMetadata = &apiextensionsv1.JSON{Raw: append([]byte(nil), h.Metadata...)}
	}
	if h.ErrorMessage != nil {
		st.ErrorMessage = *h.ErrorMessage
	}
	st.Transcript, st.TranscriptTurns = boundTranscript(h.Chat)
	st.ResultSource = source

	if millis.IsConnected(h.CallStatus) {
		st.Phase = millisv1alpha1.CallSucceeded
		setCond(st, generation, millisv1alpha1.ConditionComplete, metav1.ConditionTrue, millisv1alpha1.ReasonCallEnded,
			fmt.Sprintf("the call ended: %s", h.CallStatus))
	} else {
		st.Phase = millisv1alpha1.CallFailed
		msg := fmt.Sprintf("the call did not connect: %s", h.CallStatus)
		if st.ErrorMessage != "" {
			msg += ": " + st.ErrorMessage
		}
		setCond(st, generation, millisv1alpha1.ConditionFailed, metav1.ConditionTrue, millisv1alpha1.ReasonCallNotConnected, msg)
	}
	return true
}

// Fail marks a call Failed before or without a Millis result.
func Fail(st *millisv1alpha1.OutboundCallStatus, generation int64, reason, msg string) {
	st.Phase = millisv1alpha1.CallFailed
	st.ErrorMessage = msg
	setCond(st, generation, millisv1alpha1.ConditionDialed, metav1.ConditionFalse, reason, msg)
	setCond(st, generation, millisv1alpha1.ConditionFailed, metav1.ConditionTrue, reason, msg)
}

func boundTranscript(chat millis.Chat) ([]millisv1alpha1.TranscriptTurn, int32) {
	if len(chat) == 0 {
		return nil, 0
	}
	start := 0
	if len(chat) > MaxTranscriptTurns {
		start = len(chat) - MaxTranscriptTurns
	}
	out := make([]millisv1alpha1.TranscriptTurn, 0, len(chat)-start)
	for _, m := range chat[start:] {
		content := m.Content
		if r := []rune(content); len(r) > MaxTurnChars {
			content = string(r[:MaxTurnChars-1]) + "…"
		}
		out = append(out, millisv1alpha1.TranscriptTurn{Role: m.Role, Content: content})
	}
	return out, int32(len(chat))
}

func fromUnix(ts float64) time.Time {
	sec, frac := math.Modf(ts)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC()
}

func setCond(st *millisv1alpha1.OutboundCallStatus, generation int64, typ string, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: generation,
	})
}

// Lookup bounds: how far before the recorded intent to search (clock skew
// between us and Millis), and how many pages to read at most.
const (
	lookupSkew     = 2 * time.Minute
	lookupMaxPages = 50
)

// FindPlaced searches the call logs for a call placed by any attempt of the
// OutboundCall with this UID: calls to toPhone since the intent, whose
// metadata carries our _callops_ref. It returns nil when there is none.
func FindPlaced(ctx context.Context, mc millis.Interface, toPhone, uid string, since time.Time) (*millis.CallHistory, error) {
	opts := millis.ListCallLogsOptions{
		Limit:       100,
		PhoneNumber: toPhone,
		StartTime:   float64(since.Add(-lookupSkew).Unix()),
	}
	for page := 0; page < lookupMaxPages; page++ {
		res, err := mc.ListCallLogs(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("list call logs: %w", err)
		}
		for i := range res.Histories {
			h := &res.Histories[i]
			if RefUID(RefOf(h.Metadata)) == uid {
				return h, nil
			}
		}
		if res.NextCursor == nil || len(res.Histories) == 0 {
			return nil, nil
		}
		opts.StartAfterTS = *res.NextCursor
	}
	return nil, fmt.Errorf("list call logs: more than %d pages of calls to this number since the dial; cannot prove the call was not placed", lookupMaxPages)
}

// RefOf returns the _callops_ref value in a metadata object, or "".
func RefOf(metadata json.RawMessage) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(metadata, &m) != nil {
		return ""
	}
	var ref string
	_ = json.Unmarshal(m[millisv1alpha1.MetadataKeyCallRef], &ref)
	return ref
}

// dialOfRef is the dial record of a call whose session was first learnt
// from Millis (a webhook or the call logs) rather than from the dial.
func dialOfRef(ref string, now time.Time) *millisv1alpha1.DialRecord {
	attempt := int32(1)
	if i := strings.LastIndexByte(ref, '/'); i >= 0 {
		if n, err := strconv.ParseInt(ref[i+1:], 10, 32); err == nil && n > 0 {
			attempt = int32(n)
		}
	}
	return &millisv1alpha1.DialRecord{Attempt: attempt, Ref: ref, IntentTime: metav1.NewTime(now)}
}

// OwnMetadata returns h with its metadata cut down to the keys the call
// itself sent (its spec.metadata and the operator's _callops_ref). Millis
// reports the metadata after its prefetch merge, and prefetch data can come
// from Secrets: status must not republish it to everyone who can read
// OutboundCalls.
func OwnMetadata(h *millis.CallHistory, call *millisv1alpha1.OutboundCall) *millis.CallHistory {
	if len(h.Metadata) == 0 || call.Spec.Prefetch == nil {
		return h
	}
	var got map[string]json.RawMessage
	if json.Unmarshal(h.Metadata, &got) != nil {
		return h
	}
	sent := map[string]json.RawMessage{}
	if call.Spec.Metadata != nil && len(call.Spec.Metadata.Raw) > 0 {
		_ = json.Unmarshal(call.Spec.Metadata.Raw, &sent)
	}
	kept := make(map[string]json.RawMessage, len(sent)+1)
	for k, v := range got {
		if _, ok := sent[k]; ok || k == millisv1alpha1.MetadataKeyCallRef {
			kept[k] = v
		}
	}
	out := *h
	out.Metadata, _ = json.Marshal(kept)
	return &out
}
