// Package controllers holds one reconciler per kind. The work itself lives
// in internal/; reconcilers read like a table of contents.
package controllers

import (
	"context"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
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

// conflictRetry is how soon a reconcile that lost an update race runs
// again. The newer object's watch event normally triggers it sooner; this is
// the backstop. RequeueAfter, unlike Requeue, bypasses the workqueue's
// shared 10-per-second bucket, which a busy campaign would otherwise drain.
const conflictRetry = time.Second

// fastRateLimiter is the workqueue rate limiter of the high-volume
// controllers: per-item exponential backoff for errors, and an overall
// bucket sized for thousands of calls rather than controller-runtime's
// default of 10 per second.
func fastRateLimiter() workqueue.TypedRateLimiter[reconcile.Request] {
	return workqueue.NewTypedMaxOfRateLimiter(
		workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](5*time.Millisecond, 2*time.Minute),
		&workqueue.TypedBucketRateLimiter[reconcile.Request]{Limiter: rate.NewLimiter(rate.Limit(1000), 2000)},
	)
}

// patchMeta writes the metadata changes (finalizers, annotations) made to
// obj since before, as a merge patch checked against before's
// resourceVersion. An Update would send spec back re-encoded through the Go
// types ("10m" comes back "10m0s", an explicit false or empty list
// disappears), which Argo CD shows as OutOfSync (controllers/gitops_test.go).
func patchMeta(ctx context.Context, c client.Client, obj, before client.Object) error {
	return c.Patch(ctx, obj, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
}
