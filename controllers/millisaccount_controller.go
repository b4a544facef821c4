package controllers

import (
	"context"
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	millisv1alpha1 "github.com/callops/millis-operator/api/v1alpha1"
	"github.com/callops/millis-operator/internal/accounts"
	"github.com/callops/millis-operator/internal/millis"
)

// MillisAccountReconciler verifies account credentials with GET /user/info
// and reports credit.
type MillisAccountReconciler struct {
	client.Client
	Accounts *accounts.Resolver
	Recorder events.EventRecorder
	Clock    clock.PassiveClock

	// VerifyInterval is the default re-verification interval.
	VerifyInterval time.Duration
	// RetryInterval is how soon a broken account (missing Secret, wrong key,
	// unreachable API) is checked again, so it recovers by itself once fixed.
	RetryInterval time.Duration
}

// +kubebuilder:rbac:groups=millis.callops.dev,resources=millisaccounts,verbs=get;list;watch
// +kubebuilder:rbac:groups=millis.callops.dev,resources=millisaccounts/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

func (r *MillisAccountReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var acct millisv1alpha1.MillisAccount
	if err := r.Get(ctx, req.NamespacedName, &acct); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := acct.Status.DeepCopy()

	result := r.verify(ctx, &acct)
	acct.Status.ObservedGeneration = acct.Generation
	if equality.Semantic.DeepEqual(before, &acct.Status) {
		return result, nil
	}
	if err := r.Status().Update(ctx, &acct); err != nil {
		if apierrors.IsConflict(err) {
			return ctrl.Result{RequeueAfter: conflictRetry}, nil
		}
		return ctrl.Result{}, fmt.Errorf("update MillisAccount status: %w", err)
	}
	return result, nil
}

// verify checks the credentials and sets Ready, returning when to check again.
func (r *MillisAccountReconciler) verify(ctx context.Context, acct *millisv1alpha1.MillisAccount) ctrl.Result {
	logger := log.FromContext(ctx)
	wasReady := meta.IsStatusConditionTrue(acct.Status.Conditions, millisv1alpha1.ConditionReady)

	res, err := r.Accounts.Resolve(ctx, acct)
	if err != nil {
		reason := accounts.ReasonOf(err)
		if reason == "" {
			reason = millisv1alpha1.ReasonReconcileError
		}
		r.notReady(acct, reason, err.Error(), wasReady)
		return ctrl.Result{RequeueAfter: r.RetryInterval}
	}
	acct.Status.Endpoint = res.BaseURL

	info, err := res.Millis.GetUserInfo(ctx)
	switch {
	case err == nil:
	case millis.IsUnauthorized(err):
		// The Secret may be fixed at any moment; read it afresh next time.
		r.Accounts.Forget(acct.Namespace, acct.Spec.APIKeySecretRef.Name)
		r.notReady(acct, millisv1alpha1.ReasonInvalidCredentials,
			fmt.Sprintf("Millis rejected the API key in Secret %s key %q (HTTP %d)",
				acct.Spec.APIKeySecretRef.Name, acct.Spec.APIKeySecretRef.Key, millis.StatusCode(err)), wasReady)
		return ctrl.Result{RequeueAfter: r.RetryInterval}
	default:
		logger.Info("Millis account check failed", "error", err.Error())
		r.notReady(acct, millisv1alpha1.ReasonMillisUnavailable, fmt.Sprintf("GET /user/info: %v", err), wasReady)
		return ctrl.Result{RequeueAfter: r.RetryInterval}
	}

	now := metav1.NewTime(r.Clock.Now())
	acct.Status.UserID = info.UserID
	acct.Status.Credit = formatCredit(info.Credit)
	acct.Status.UsedCredit = formatCredit(info.UsedCredit)
	acct.Status.LastVerifiedTime = &now
	setCondition(&acct.Status.Conditions, acct.Generation, millisv1alpha1.ConditionReady, metav1.ConditionTrue,
		millisv1alpha1.ReasonVerified, "Millis accepted the API key")
	if !wasReady {
		r.Recorder.Eventf(acct, nil, corev1.EventTypeNormal, millisv1alpha1.ReasonVerified, "Verify",
			"Millis accepted the API key; credit %s", acct.Status.Credit)
	}
	interval := r.VerifyInterval
	if acct.Spec.VerifyInterval != nil && acct.Spec.VerifyInterval.Duration > 0 {
		interval = acct.Spec.VerifyInterval.Duration
	}
	return ctrl.Result{RequeueAfter: interval}
}

func (r *MillisAccountReconciler) notReady(acct *millisv1alpha1.MillisAccount, reason, msg string, wasReady bool) {
	changed := setCondition(&acct.Status.Conditions, acct.Generation, millisv1alpha1.ConditionReady,
		metav1.ConditionFalse, reason, msg)
	if changed || wasReady {
		r.Recorder.Eventf(acct, nil, corev1.EventTypeWarning, reason, "Verify", msg)
	}
}

func formatCredit(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// SetupWithManager registers the reconciler.
func (r *MillisAccountReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&millisv1alpha1.MillisAccount{}).
		Named("millisaccount").
		Complete(r)
}
