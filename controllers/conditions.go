// Package controllers holds one reconciler per kind. The work itself lives
// in internal/; reconcilers read like a table of contents.
package controllers

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// setCondition sets a condition stamped with the generation it describes and
// reports whether anything but the timestamp changed.
func setCondition(conds *[]metav1.Condition, generation int64, typ string, status metav1.ConditionStatus, reason, msg string) bool {
	const maxMessage = 1024
	if len(msg) > maxMessage {
		msg = msg[:maxMessage-3] + "..."
	}
	return meta.SetStatusCondition(conds, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: generation,
	})
}
