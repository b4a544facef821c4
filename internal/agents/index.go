package agents

import (
	"context"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	millisv1alpha1 "github.com/callops/millis-operator/api/v1alpha1"
)

// Field indexes on Agents, used by the reconcilers and the webhook receiver.
const (
	IndexMillisID = "agent.millisID"
	IndexPhones   = "status.phoneNumbers"
)

// ID is the Millis agent ID of an Agent: the adopted one, or the one
// recorded when the operator created it (the annotation survives a lost
// status), or "".
func ID(agent *millisv1alpha1.Agent) string {
	if agent.Spec.ExternalID != "" {
		return agent.Spec.ExternalID
	}
	if id := agent.Annotations[millisv1alpha1.AnnotationExternalID]; id != "" {
		return id
	}
	return agent.Status.AgentID
}

// Index registers the Agent field indexes.
func Index(ctx context.Context, idx client.FieldIndexer) error {
	if err := idx.IndexField(ctx, &millisv1alpha1.Agent{}, IndexMillisID, func(o client.Object) []string {
		if id := ID(o.(*millisv1alpha1.Agent)); id != "" {
			return []string{id}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("index Agent %s: %w", IndexMillisID, err)
	}
	if err := idx.IndexField(ctx, &millisv1alpha1.Agent{}, IndexPhones, func(o client.Object) []string {
		var out []string
		for _, p := range o.(*millisv1alpha1.Agent).Status.PhoneNumbers {
			out = append(out, string(p))
		}
		return out
	}); err != nil {
		return fmt.Errorf("index Agent %s: %w", IndexPhones, err)
	}
	return nil
}
