package calls

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	millisv1alpha1 "github.com/callops/millis-operator/api/v1alpha1"
	"github.com/callops/millis-operator/internal/metrics"
)

// Field indexes on OutboundCalls, used by the reconciler and the webhook
// receiver (which runs on every replica, leader or not).
const (
	IndexSessionID = "status.sessionID"
	IndexUID       = "metadata.uid"
	IndexAccount   = "spec.accountRef.name"
	IndexAgentRef  = "spec.agentRef.name"
)

// IndexOutboundCalls registers the field indexes.
func IndexOutboundCalls(ctx context.Context, idx client.FieldIndexer) error {
	for name, fn := range map[string]client.IndexerFunc{
		IndexSessionID: func(o client.Object) []string { return nonEmpty(o.(*millisv1alpha1.OutboundCall).Status.SessionID) },
		IndexUID:       func(o client.Object) []string { return nonEmpty(string(o.GetUID())) },
		IndexAccount:   func(o client.Object) []string { return nonEmpty(o.(*millisv1alpha1.OutboundCall).AccountName()) },
		IndexAgentRef: func(o client.Object) []string {
			if ref := o.(*millisv1alpha1.OutboundCall).Spec.AgentRef; ref != nil {
				return nonEmpty(ref.Name)
			}
			return nil
		},
	} {
		if err := idx.IndexField(ctx, &millisv1alpha1.OutboundCall{}, name, fn); err != nil {
			return fmt.Errorf("index OutboundCall %s: %w", name, err)
		}
	}
	return nil
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// ReadMetadataSource reads a prefetch ConfigMap or Secret as string values.
// Error messages name the object, never its values.
func ReadMetadataSource(ctx context.Context, reader client.Reader, namespace string, src millisv1alpha1.MetadataSource) (map[string]string, error) {
	out := map[string]string{}
	switch {
	case src.ConfigMapRef != nil:
		var cm corev1.ConfigMap
		if err := reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: src.ConfigMapRef.Name}, &cm); err != nil {
			return nil, fmt.Errorf("prefetch ConfigMap %s: %w", src.ConfigMapRef.Name, err)
		}
		for k, v := range cm.Data {
			out[k] = v
		}
	case src.SecretRef != nil:
		var s corev1.Secret
		if err := reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: src.SecretRef.Name}, &s); err != nil {
			return nil, fmt.Errorf("prefetch Secret %s: %w", src.SecretRef.Name, err)
		}
		for k, v := range s.Data {
			out[k] = string(v)
		}
	}
	return out, nil
}

// Quiet reports whether routine (Normal) events are left out for a call:
// a campaign's children report through the campaign's status and results
// export instead, since two events per call would double the API writes of
// a 100,000-call campaign. Warnings are always emitted.
func Quiet(call *millisv1alpha1.OutboundCall) bool {
	_, ok := call.Labels[millisv1alpha1.LabelCampaign]
	return ok
}

// RecordFinished counts a call that just finished and emits its event.
func RecordFinished(rec events.EventRecorder, call *millisv1alpha1.OutboundCall) {
	metrics.CallsFinished.WithLabelValues(call.Namespace, call.Status.CallStatus, call.Status.ResultSource).Inc()
	if Quiet(call) && call.Status.Phase == millisv1alpha1.CallSucceeded {
		return
	}
	if call.Status.Phase == millisv1alpha1.CallSucceeded {
		var d int64
		if call.Status.DurationSeconds != nil {
			d = *call.Status.DurationSeconds
		}
		rec.Eventf(call, nil, corev1.EventTypeNormal, millisv1alpha1.ReasonCallEnded, "Complete",
			"the call ended: %s after %ds (%s)", call.Status.CallStatus, d, call.Status.ResultSource)
		return
	}
	rec.Eventf(call, nil, corev1.EventTypeWarning, millisv1alpha1.ReasonCallNotConnected, "Complete",
		"the call did not connect: %s (%s)", call.Status.CallStatus, call.Status.ResultSource)
}
