package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	millisv1alpha1 "github.com/callops/millis-operator/api/v1alpha1"
	"github.com/callops/millis-operator/internal/accounts"
	"github.com/callops/millis-operator/internal/calls"
	"github.com/callops/millis-operator/internal/crashpoint"
	"github.com/callops/millis-operator/internal/metrics"
	"github.com/callops/millis-operator/internal/millis"
	"github.com/callops/millis-operator/internal/redact"
)

// TerminateFinalizer holds an OutboundCall with terminateOnDelete until its
// live call has been hung up.
const TerminateFinalizer = "millis.callops.dev/terminate-call"

// Defaults of MillisAccount.spec.dialRecovery.
const defaultVisibilityDelay = 30 * time.Second

// OutboundCallReconciler places each OutboundCall exactly once and follows
// it to its end.
//
// The dial protocol, in order:
//  1. status.dial (the intent) is written with an optimistic-locked update;
//  2. POST /start_outbound_call;
//  3. status.sessionID is written.
//
// A reconcile that finds status.dial without status.sessionID cannot know
// whether step 2 happened, so it searches the call logs for the call's
// _callops_ref before it ever dials again.
//
// Campaign children skip step 1: the campaign controller creates each one
// with a dial claim naming this manager instance (Instance), so the child's
// creation is the intent. The instance that claimed a child remembers, in
// memory, every child it has dialed; any other instance (a restarted or
// newly elected manager) first records an intent that searches the call
// logs from the child's creation, exactly as for an unconfirmed dial.
type OutboundCallReconciler struct {
	client.Client
	// APIReader reads around the cache, for conflict retries.
	APIReader client.Reader
	Accounts  *accounts.Resolver
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock

	// PollInterval is how often a live call's log is read, in case the
	// end-of-call webhook never comes.
	PollInterval time.Duration
	// RetryInterval is how soon a call waiting on something outside it
	// (account, Millis availability) is looked at again.
	RetryInterval time.Duration

	// Instance identifies this manager process in dial claims; it must be
	// unique per process start (main generates a random one).
	Instance string
	// SessionRecordDelay is how long the session of a placed call waits
	// before it is written: calls that end sooner (busy, no answer at once,
	// instant hang-ups) are then recorded by their end-of-call webhook in a
	// single status write. Zero writes the session at once.
	SessionRecordDelay time.Duration
	// placed holds calls Millis accepted whose session is not written yet.
	placed sync.Map
	// agents holds recent reads of Millis agents (see getAgent).
	agents sync.Map
	// dialed holds the claimed children this instance has dialed (UID to
	// the dial time) until the cache shows their status.dial.
	dialed sync.Map
}

// +kubebuilder:rbac:groups=millis.callops.dev,resources=outboundcalls,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=millis.callops.dev,resources=outboundcalls/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=millis.callops.dev,resources=outboundcalls/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get

func (r *OutboundCallReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var call millisv1alpha1.OutboundCall
	if err := r.Get(ctx, req.NamespacedName, &call); err != nil {
		if apierrors.IsNotFound(err) {
			r.sweep()
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if call.Status.Dial != nil || call.Status.Phase.IsFinished() || !call.DeletionTimestamp.IsZero() {
		r.dialed.Delete(call.UID) // the cache has caught up with our own write
	}
	if p, ok := r.placed.Load(call.UID); ok {
		if call.Status.SessionID == "" && call.DeletionTimestamp.IsZero() {
			return r.recordSession(ctx, &call, p.(placedCall))
		}
		r.placed.Delete(call.UID) // the end-of-call webhook recorded it
	}
	ctx = log.IntoContext(ctx, log.FromContext(ctx).WithValues("to", redact.Phone(string(call.Spec.ToPhone))))

	if !call.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, &call)
	}
	before := call.DeepCopy()
	if changed := r.syncFinalizer(&call); changed {
		return ctrl.Result{}, patchMeta(ctx, r.Client, &call, before)
	}

	switch {
	case call.Status.Phase.IsFinished():
		return ctrl.Result{}, nil
	case call.Status.SessionID != "":
		return r.track(ctx, &call)
	case call.Status.Dial != nil:
		return r.recoverDial(ctx, &call)
	case r.claimedElsewhere(&call):
		return r.takeOver(ctx, &call)
	default:
		return r.dial(ctx, &call, 1)
	}
}

// syncFinalizer keeps the finalizer only while a hang-up may be needed, so
// that deleting an ordinary call never waits on the operator.
func (r *OutboundCallReconciler) syncFinalizer(call *millisv1alpha1.OutboundCall) bool {
	if call.Spec.TerminateOnDelete && !call.Status.Phase.IsFinished() {
		return controllerutil.AddFinalizer(call, TerminateFinalizer)
	}
	return controllerutil.RemoveFinalizer(call, TerminateFinalizer)
}

// sweep forgets what is remembered of calls deleted before the cache
// showed their status; memory entries otherwise live for seconds.
func (r *OutboundCallReconciler) sweep() {
	old := r.Clock.Now().Add(-time.Hour)
	r.dialed.Range(func(k, v any) bool {
		if v.(time.Time).Before(old) {
			r.dialed.Delete(k)
		}
		return true
	})
	r.placed.Range(func(k, v any) bool {
		if v.(placedCall).at.Before(old) {
			r.placed.Delete(k)
		}
		return true
	})
}

// claimedElsewhere reports whether the call is a campaign child claimed by
// another manager instance, which may have dialed it before it stopped.
func (r *OutboundCallReconciler) claimedElsewhere(call *millisv1alpha1.OutboundCall) bool {
	claim, ok := call.Annotations[millisv1alpha1.AnnotationDialClaim]
	return ok && claim != r.Instance
}

// ownsClaim reports whether this instance created the call with its claim,
// so that its creation already stands for the dial intent.
func (r *OutboundCallReconciler) ownsClaim(call *millisv1alpha1.OutboundCall) bool {
	claim, ok := call.Annotations[millisv1alpha1.AnnotationDialClaim]
	return ok && r.Instance != "" && claim == r.Instance
}

// takeOver records an intent for a child claimed by another instance: the
// call logs from the child's creation on are searched before any dial.
func (r *OutboundCallReconciler) takeOver(ctx context.Context, call *millisv1alpha1.OutboundCall) (ctrl.Result, error) {
	created := call.CreationTimestamp
	call.Status.Dial = &millisv1alpha1.DialRecord{Attempt: 1, Ref: calls.Ref(string(call.UID), 1),
		IntentTime: metav1.NewTime(r.Clock.Now()), SearchFrom: &created}
	call.Status.Phase = millisv1alpha1.CallDialing
	call.Status.ObservedGeneration = call.Generation
	setCondition(&call.Status.Conditions, call.Generation, millisv1alpha1.ConditionDialed, metav1.ConditionFalse,
		millisv1alpha1.ReasonDialUnconfirmed,
		"created by another manager instance, which may have dialed it; checking the call logs before any dial")
	if err := r.Status().Update(ctx, call); err != nil {
		return requeueOnConflict(err, "record inherited dial intent")
	}
	log.FromContext(ctx).Info("Took over a campaign call claimed by another manager instance")
	return ctrl.Result{}, nil
}

// settleOwnDial handles a claimed child this instance has already dialed
// while the cache shows no record of it: either the cache is behind, or
// recording the session failed. In the second case the intent is written
// now, and the call logs decide.
func (r *OutboundCallReconciler) settleOwnDial(ctx context.Context, call *millisv1alpha1.OutboundCall, dialedAt time.Time) (ctrl.Result, error) {
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(call), call); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if call.Status.Dial != nil || call.Status.SessionID != "" || call.Status.Phase.IsFinished() {
		return ctrl.Result{RequeueAfter: conflictRetry}, nil
	}
	call.Status.Dial = &millisv1alpha1.DialRecord{Attempt: 1, Ref: calls.Ref(string(call.UID), 1), IntentTime: metav1.NewTime(dialedAt)}
	call.Status.Phase = millisv1alpha1.CallDialing
	call.Status.ObservedGeneration = call.Generation
	setCondition(&call.Status.Conditions, call.Generation, millisv1alpha1.ConditionDialed, metav1.ConditionFalse,
		millisv1alpha1.ReasonDialUnconfirmed, "the dial's outcome was not recorded; checking the call logs before any retry")
	if err := r.Status().Update(ctx, call); err != nil {
		return requeueOnConflict(err, "record unconfirmed dial")
	}
	return ctrl.Result{}, nil
}

// dial validates the call, persists the intent and calls Millis once.
func (r *OutboundCallReconciler) dial(ctx context.Context, call *millisv1alpha1.OutboundCall, attempt int32) (ctrl.Result, error) {
	logger := log.FromContext(ctx)
	claimed := attempt == 1 && r.ownsClaim(call)
	if claimed {
		if at, ok := r.dialed.Load(call.UID); ok {
			return r.settleOwnDial(ctx, call, at.(time.Time))
		}
	}
	res, wait := r.readyAccount(ctx, call)
	if res == nil {
		return r.waiting(ctx, call, wait)
	}

	agentID, declared, version, werr := r.agentOf(ctx, call)
	if werr != nil {
		return r.waiting(ctx, call, werr)
	}
	agent, err := r.getAgent(ctx, res, agentID, version)
	if err != nil {
		return r.waiting(ctx, call, r.classify(ctx, call, res, err, millisv1alpha1.ReasonAgentNotFound,
			fmt.Sprintf("agent %q", agentID)))
	}
	if call.Spec.Prefetch != nil && res.Webhooks == nil {
		// Nobody would serve the prefetch data: its variables would be
		// spoken as literal {name}s.
		return r.waiting(ctx, call, &waitReason{reason: millisv1alpha1.ReasonPrefetchNotFound, after: r.RetryInterval,
			message: fmt.Sprintf("spec.prefetch needs MillisAccount %s to set spec.webhook: Millis fetches prefetch data from the operator's webhook receiver; nothing was dialed", res.Account.Name)})
	}
	lateBound, werr := r.prefetchKeys(ctx, call)
	if werr != nil {
		return r.waiting(ctx, call, werr)
	}
	lateBound = append(lateBound, declared...)

	ref := calls.Ref(string(call.UID), attempt)
	request, err := calls.Build(calls.Input{
		Call: call, AgentID: agentID, AgentConfig: agent.Config, LateBound: lateBound, Webhooks: res.Webhooks, Ref: ref,
	})
	if err != nil {
		var in *calls.InputError
		if errors.As(err, &in) {
			// Bad input waits for a spec change; nothing is dialed.
			return r.waiting(ctx, call, &waitReason{reason: in.Reason, message: in.Message})
		}
		return ctrl.Result{}, err
	}

	// 1. Persist the intent. The update is optimistic-locked: if anyone else
	// (or a stale cache) got here first, it conflicts and nothing is dialed.
	// A claimed campaign child's creation is its intent; this instance's
	// memory of the dial stands in until the session is recorded.
	now := r.Clock.Now()
	intent := &millisv1alpha1.DialRecord{Attempt: attempt, Ref: ref, IntentTime: metav1.NewTime(now)}
	call.Status.Dial = intent
	call.Status.Phase = millisv1alpha1.CallDialing
	setCondition(&call.Status.Conditions, call.Generation, millisv1alpha1.ConditionDialed, metav1.ConditionFalse,
		millisv1alpha1.ReasonDialing, fmt.Sprintf("dialing, attempt %d", attempt))
	call.Status.ObservedGeneration = call.Generation
	if claimed {
		r.dialed.Store(call.UID, now)
	} else if err := r.Status().Update(ctx, call); err != nil {
		return requeueOnConflict(err, "record dial intent")
	}
	crashpoint.Hit(crashpoint.AfterIntent)

	// 2. Dial.
	logger.Info("Dialing", "attempt", attempt)
	reg, err := res.Millis.StartOutboundCall(ctx, request)
	crashpoint.Hit(crashpoint.AfterDial)
	if err != nil {
		return r.dialFailed(ctx, call, res, err)
	}
	metrics.CallsDialed.WithLabelValues(call.Namespace).Inc()
	if !calls.Quiet(call) {
		r.Recorder.Eventf(call, nil, corev1.EventTypeNormal, millisv1alpha1.ReasonAccepted, "Dial",
			"Millis accepted the call to %s, session %s", redact.Phone(request.ToPhone), reg.SessionID)
	}

	// 3. Record the session, after SessionRecordDelay: a call that ends
	// sooner is recorded whole by its end-of-call webhook, in one write.
	placed := placedCall{reg: *reg, intent: intent, at: now}
	if r.SessionRecordDelay > 0 {
		r.placed.Store(call.UID, placed)
		return ctrl.Result{RequeueAfter: r.SessionRecordDelay}, nil
	}
	return r.recordSession(ctx, call, placed)
}

// placedCall is a call Millis accepted whose session is not written yet.
// Losing it (a restart) loses nothing: the intent, or the child's claim,
// sends the next instance to the call logs, where the call is found.
type placedCall struct {
	reg    millis.CallRegistration
	intent *millisv1alpha1.DialRecord
	at     time.Time
}

// recordSession writes a placed call's session. A conflict usually means
// the end-of-call webhook wrote status first, so it merges into the latest
// object, and writes nothing when the webhook already recorded it all.
func (r *OutboundCallReconciler) recordSession(ctx context.Context, call *millisv1alpha1.OutboundCall, p placedCall) (ctrl.Result, error) {
	err := r.updateStatus(ctx, call, func(st *millisv1alpha1.OutboundCallStatus, gen int64) {
		if st.Dial == nil {
			st.Dial = p.intent
		}
		st.ObservedGeneration = gen
		calls.RecordAccepted(st, gen, p.reg, p.at, millisv1alpha1.ReasonAccepted)
	})
	if err != nil {
		// Kept in memory for the retry; a restart finds it in the call logs.
		r.placed.Store(call.UID, p)
		return ctrl.Result{}, fmt.Errorf("record session of a placed call: %w", err)
	}
	r.placed.Delete(call.UID)
	if call.Status.Phase.IsFinished() {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{RequeueAfter: r.PollInterval}, nil
}

// dialFailed handles an error from POST /start_outbound_call.
func (r *OutboundCallReconciler) dialFailed(ctx context.Context, call *millisv1alpha1.OutboundCall, res *accounts.Resolved, err error) (ctrl.Result, error) {
	if !millis.IsDefiniteRejection(err) {
		// Millis may have placed the call: keep the intent and prove it
		// either way from the call logs before anything else.
		delay := visibilityDelay(res.Account)
		setCondition(&call.Status.Conditions, call.Generation, millisv1alpha1.ConditionDialed, metav1.ConditionFalse,
			millisv1alpha1.ReasonDialUnconfirmed,
			fmt.Sprintf("Millis did not confirm the dial (%v); checking the call logs before any retry", err))
		r.Recorder.Eventf(call, nil, corev1.EventTypeWarning, millisv1alpha1.ReasonDialUnconfirmed, "Dial",
			"Millis did not confirm the dial: %v", err)
		if uerr := r.Status().Update(ctx, call); uerr != nil {
			return requeueOnConflict(uerr, "record unconfirmed dial")
		}
		return ctrl.Result{RequeueAfter: delay}, nil
	}

	// Millis answered 4xx: it did not act, so the intent is withdrawn.
	r.dialed.Delete(call.UID)
	call.Status.Dial = nil
	call.Status.Phase = millisv1alpha1.CallPending
	wait := r.classify(ctx, call, res, err, millisv1alpha1.ReasonMillisRejected, "POST /start_outbound_call")
	if wait.terminal {
		calls.Fail(&call.Status, call.Generation, millisv1alpha1.ReasonMillisRejected, apiDetail(err))
		metrics.CallsFailed.WithLabelValues(call.Namespace, millisv1alpha1.ReasonMillisRejected).Inc()
		r.Recorder.Eventf(call, nil, corev1.EventTypeWarning, millisv1alpha1.ReasonMillisRejected, "Dial",
			"Millis rejected the call: %s", apiDetail(err))
		if uerr := r.Status().Update(ctx, call); uerr != nil {
			return requeueOnConflict(uerr, "record rejected call")
		}
		return ctrl.Result{}, nil
	}
	return r.waiting(ctx, call, wait)
}

// recoverDial settles a dial whose outcome is unknown.
func (r *OutboundCallReconciler) recoverDial(ctx context.Context, call *millisv1alpha1.OutboundCall) (ctrl.Result, error) {
	logger := log.FromContext(ctx)
	// The cache may simply not have caught up with our own session write.
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(call), call); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if call.Status.SessionID != "" || call.Status.Phase.IsFinished() || call.Status.Dial == nil {
		// The cache was behind: the session is recorded, or the intent was
		// withdrawn (Millis refused the dial). Look again from the top.
		return ctrl.Result{RequeueAfter: conflictRetry}, nil
	}
	res, wait := r.account(ctx, call)
	if res == nil {
		return r.waiting(ctx, call, wait)
	}
	dialRec := call.Status.Dial
	since := dialRec.IntentTime.Time
	if dialRec.SearchFrom != nil && dialRec.SearchFrom.Before(&dialRec.IntentTime) {
		since = dialRec.SearchFrom.Time
	}
	found, err := calls.FindPlaced(ctx, res.Millis, string(call.Spec.ToPhone), string(call.UID), since)
	if err != nil {
		w := r.classify(ctx, call, res, err, millisv1alpha1.ReasonDialUnconfirmed, "searching the call logs")
		w.reason = millisv1alpha1.ReasonDialUnconfirmed
		return r.waiting(ctx, call, w)
	}
	now := r.Clock.Now()
	if found != nil {
		logger.Info("Found the placed call in the call logs", "session", found.SessionID)
		metrics.DialRetries.WithLabelValues(call.Namespace, "found").Inc()
		r.Recorder.Eventf(call, nil, corev1.EventTypeNormal, millisv1alpha1.ReasonRecovered, "Dial",
			"found the placed call in the Millis call logs: session %s", found.SessionID)
		if err := r.updateStatus(ctx, call, func(st *millisv1alpha1.OutboundCallStatus, gen int64) {
			calls.RecordAccepted(st, gen, millis.CallRegistration{SessionID: found.SessionID, CallID: found.CallID}, now, millisv1alpha1.ReasonRecovered)
			calls.ApplyHistory(st, gen, calls.OwnMetadata(found, call), calls.SourceCallLog, now)
		}); err != nil {
			return ctrl.Result{}, fmt.Errorf("record recovered session: %w", err)
		}
		return ctrl.Result{RequeueAfter: r.PollInterval}, nil
	}

	delay := visibilityDelay(res.Account)
	if waited := now.Sub(dialRec.IntentTime.Time); waited < delay {
		return r.waiting(ctx, call, &waitReason{reason: millisv1alpha1.ReasonDialUnconfirmed, after: delay - waited,
			message: fmt.Sprintf("attempt %d is not in the call logs yet; checking again before deciding", dialRec.Attempt)})
	}
	if policy := res.Account.Spec.DialRecovery; policy != nil && policy.OnUnconfirmed == millisv1alpha1.UnconfirmedDialFail {
		msg := fmt.Sprintf("attempt %d is not in the call logs %s after the dial; onUnconfirmed is Fail", dialRec.Attempt, delay)
		calls.Fail(&call.Status, call.Generation, millisv1alpha1.ReasonDialNotConfirmed, msg)
		metrics.CallsFailed.WithLabelValues(call.Namespace, millisv1alpha1.ReasonDialNotConfirmed).Inc()
		r.Recorder.Eventf(call, nil, corev1.EventTypeWarning, millisv1alpha1.ReasonDialNotConfirmed, "Dial", msg)
		if err := r.Status().Update(ctx, call); err != nil {
			return requeueOnConflict(err, "record unconfirmed call")
		}
		return ctrl.Result{}, nil
	}
	logger.Info("The call logs prove the earlier attempt placed no call; dialing again", "attempt", dialRec.Attempt+1)
	metrics.DialRetries.WithLabelValues(call.Namespace, "redialed").Inc()
	r.Recorder.Eventf(call, nil, corev1.EventTypeNormal, "Redialing", "Dial",
		"the call logs prove attempt %d placed no call; dialing attempt %d", dialRec.Attempt, dialRec.Attempt+1)
	return r.dial(ctx, call, dialRec.Attempt+1)
}

// track follows a placed call until it ends. The end-of-call webhook
// usually gets there first; the call log is the fallback.
func (r *OutboundCallReconciler) track(ctx context.Context, call *millisv1alpha1.OutboundCall) (ctrl.Result, error) {
	res, wait := r.account(ctx, call)
	if res == nil {
		return r.waiting(ctx, call, wait)
	}
	h, err := res.Millis.GetCallLog(ctx, call.Status.SessionID)
	if err != nil {
		if millis.IsNotFound(err) {
			// Accounts with data opt-out keep no call logs; the webhook is then
			// the only source, so keep waiting without alarming anyone.
			return ctrl.Result{RequeueAfter: r.PollInterval}, nil
		}
		log.FromContext(ctx).Info("Reading the call log failed", "error", err.Error())
		return ctrl.Result{RequeueAfter: r.PollInterval}, nil
	}
	before := call.Status.DeepCopy()
	finished := calls.ApplyHistory(&call.Status, call.Generation, calls.OwnMetadata(h, call), calls.SourceCallLog, r.Clock.Now())
	if !equality.Semantic.DeepEqual(before, &call.Status) {
		if err := r.Status().Update(ctx, call); err != nil {
			return requeueOnConflict(err, "record call result")
		}
		if finished {
			calls.RecordFinished(r.Recorder, call)
		}
	}
	if finished {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{RequeueAfter: r.PollInterval}, nil
}

// finalize hangs up a live call when asked to, then lets the object go.
func (r *OutboundCallReconciler) finalize(ctx context.Context, call *millisv1alpha1.OutboundCall) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(call, TerminateFinalizer) {
		return ctrl.Result{}, nil
	}
	if call.Spec.TerminateOnDelete && call.Status.SessionID != "" && !call.Status.Phase.IsFinished() {
		res, wait := r.account(ctx, call)
		if res == nil {
			r.Recorder.Eventf(call, nil, corev1.EventTypeWarning, wait.reason, "Terminate",
				"cannot hang up: %s", wait.message)
			return ctrl.Result{RequeueAfter: r.RetryInterval}, nil
		}
		err := res.Millis.TerminateSession(ctx, call.Status.SessionID, "")
		if err != nil && !millis.IsNotFound(err) {
			return ctrl.Result{}, fmt.Errorf("terminate session %s: %w", call.Status.SessionID, err)
		}
		r.Recorder.Eventf(call, nil, corev1.EventTypeNormal, "Terminated", "Terminate",
			"hung up session %s before deletion", call.Status.SessionID)
	}
	before := call.DeepCopy()
	controllerutil.RemoveFinalizer(call, TerminateFinalizer)
	return ctrl.Result{}, client.IgnoreNotFound(patchMeta(ctx, r.Client, call, before))
}

// waitReason is why a call is not progressing, and when to look again.
type waitReason struct {
	reason, message string
	after           time.Duration
	terminal        bool
}

// waiting records why the call waits (without churning status when nothing
// changed) and schedules the next look.
func (r *OutboundCallReconciler) waiting(ctx context.Context, call *millisv1alpha1.OutboundCall, w *waitReason) (ctrl.Result, error) {
	before := call.Status.DeepCopy()
	if call.Status.Phase == "" {
		call.Status.Phase = millisv1alpha1.CallPending
	}
	call.Status.ObservedGeneration = call.Generation
	if setCondition(&call.Status.Conditions, call.Generation, millisv1alpha1.ConditionDialed, metav1.ConditionFalse, w.reason, w.message) {
		log.FromContext(ctx).Info("Call waiting", "reason", w.reason, "message", w.message)
		r.Recorder.Eventf(call, nil, corev1.EventTypeWarning, w.reason, "Dial", w.message)
	}
	if !equality.Semantic.DeepEqual(before, &call.Status) {
		if err := r.Status().Update(ctx, call); err != nil {
			return requeueOnConflict(err, "record waiting reason")
		}
	}
	if w.after == 0 {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{RequeueAfter: w.after}, nil
}

// account resolves the call's account, whatever its Ready state: a call
// that is already placed must be followed even if the key went bad later.
func (r *OutboundCallReconciler) account(ctx context.Context, call *millisv1alpha1.OutboundCall) (*accounts.Resolved, *waitReason) {
	return resolveAccount(ctx, r.Accounts, call.Namespace, call.AccountName(), r.RetryInterval)
}

// readyAccount additionally requires Ready=True: new dials only go through
// verified accounts.
func (r *OutboundCallReconciler) readyAccount(ctx context.Context, call *millisv1alpha1.OutboundCall) (*accounts.Resolved, *waitReason) {
	return resolveReadyAccount(ctx, r.Accounts, call.Namespace, call.AccountName(), r.RetryInterval)
}

// classify maps a Millis error to a wait: 401 marks the account not ready,
// 429 and 5xx wait (Retry-After honoured), other 4xx use notFoundReason or
// are terminal.
func (r *OutboundCallReconciler) classify(ctx context.Context, call *millisv1alpha1.OutboundCall, res *accounts.Resolved, err error, terminalReason, what string) *waitReason {
	switch {
	case millis.IsUnauthorized(err):
		r.markAccountUnauthorized(ctx, res.Account, err)
		return &waitReason{reason: millisv1alpha1.ReasonUnauthorized, after: r.RetryInterval,
			message: fmt.Sprintf("Millis rejected the API key of MillisAccount %s (HTTP %d)", res.Account.Name, millis.StatusCode(err))}
	case millis.StatusCode(err) == 429:
		metrics.DialRetries.WithLabelValues(call.Namespace, "rate-limited").Inc()
		after, ok := millis.RetryAfter(err)
		if !ok || after <= 0 {
			after = r.RetryInterval
		}
		return &waitReason{reason: millisv1alpha1.ReasonRateLimited, after: after,
			message: fmt.Sprintf("Millis rate-limited %s; retrying in %s", what, after)}
	case millis.IsRetryable(err):
		metrics.DialRetries.WithLabelValues(call.Namespace, "unavailable").Inc()
		return &waitReason{reason: millisv1alpha1.ReasonMillisUnavailable, after: r.RetryInterval,
			message: fmt.Sprintf("%s: %v", what, err)}
	case millis.IsNotFound(err) && terminalReason == millisv1alpha1.ReasonAgentNotFound:
		return &waitReason{reason: terminalReason, after: r.RetryInterval,
			message: fmt.Sprintf("Millis has no %s; nothing was dialed", what)}
	default:
		return &waitReason{reason: terminalReason, terminal: true, message: fmt.Sprintf("%s: %s", what, apiDetail(err))}
	}
}

// markAccountUnauthorized flips the account's Ready condition at once; the
// account reconciler re-verifies it and clears it when the key is fixed.
func (r *OutboundCallReconciler) markAccountUnauthorized(ctx context.Context, acct *millisv1alpha1.MillisAccount, cause error) {
	r.Accounts.Forget(acct.Namespace, acct.Spec.APIKeySecretRef.Name)
	patch := client.MergeFrom(acct.DeepCopy())
	if !setCondition(&acct.Status.Conditions, acct.Generation, millisv1alpha1.ConditionReady, metav1.ConditionFalse,
		millisv1alpha1.ReasonInvalidCredentials, fmt.Sprintf("Millis answered HTTP %d to a call request", millis.StatusCode(cause))) {
		return
	}
	if err := r.Status().Patch(ctx, acct, patch); err != nil {
		log.FromContext(ctx).Info("Could not mark the account not ready", "error", err.Error())
	}
}

// agentCacheTTL bounds how long a Millis agent's config is reused between
// dials. Agents managed by an Agent resource are read again whenever that
// resource changes; an agent edited in the Millis dashboard is seen by new
// dials within this time.
const agentCacheTTL = 10 * time.Second

type cachedAgent struct {
	agent   *millis.Agent
	version string
	at      time.Time
}

// getAgent reads the agent's config, reusing a recent read: a campaign's
// thousands of dials would otherwise read the same agent thousands of times.
func (r *OutboundCallReconciler) getAgent(ctx context.Context, res *accounts.Resolved, agentID, version string) (*millis.Agent, error) {
	key := res.Account.Namespace + "/" + res.Account.Name + "/" + agentID
	now := r.Clock.Now()
	if v, ok := r.agents.Load(key); ok {
		if e := v.(cachedAgent); e.version == version && now.Sub(e.at) < agentCacheTTL {
			return e.agent, nil
		}
	}
	agent, err := res.Millis.GetAgent(ctx, agentID)
	if err != nil {
		r.agents.Delete(key)
		return nil, err
	}
	r.agents.Store(key, cachedAgent{agent: agent, version: version, at: now})
	return agent, nil
}

// agentOf returns the Millis agent ID of the call, the variables its Agent
// declares as filled at call time, and the Agent's resourceVersion (empty
// for an agentID). A referenced Agent must be Ready.
func (r *OutboundCallReconciler) agentOf(ctx context.Context, call *millisv1alpha1.OutboundCall) (string, []string, string, *waitReason) {
	if call.Spec.AgentRef == nil {
		return call.Spec.AgentID, nil, "", nil
	}
	var agent millisv1alpha1.Agent
	err := r.Get(ctx, client.ObjectKey{Namespace: call.Namespace, Name: call.Spec.AgentRef.Name}, &agent)
	if err != nil {
		msg := fmt.Sprintf("Agent %s: %v", call.Spec.AgentRef.Name, err)
		if apierrors.IsNotFound(err) {
			msg = fmt.Sprintf("Agent %s not found; nothing was dialed", call.Spec.AgentRef.Name)
		}
		return "", nil, "", &waitReason{reason: millisv1alpha1.ReasonAgentNotReady, message: msg, after: r.RetryInterval}
	}
	if !meta.IsStatusConditionTrue(agent.Status.Conditions, millisv1alpha1.ConditionReady) || agent.Status.AgentID == "" {
		msg := fmt.Sprintf("Agent %s is not Ready", agent.Name)
		if c := meta.FindStatusCondition(agent.Status.Conditions, millisv1alpha1.ConditionSynced); c != nil {
			msg += fmt.Sprintf(": %s: %s", c.Reason, c.Message)
		}
		return "", nil, "", &waitReason{reason: millisv1alpha1.ReasonAgentNotReady, message: msg + "; nothing was dialed", after: r.RetryInterval}
	}
	return agent.Status.AgentID, agent.Spec.PrefetchVariables, agent.ResourceVersion, nil
}

// prefetchKeys lists the variables the prefetch webhook will fill: the keys
// of the referenced ConfigMaps and Secrets. Values are read at call time.
func (r *OutboundCallReconciler) prefetchKeys(ctx context.Context, call *millisv1alpha1.OutboundCall) ([]string, *waitReason) {
	if call.Spec.Prefetch == nil {
		return nil, nil
	}
	var keys []string
	for _, src := range call.Spec.Prefetch.MetadataFrom {
		data, err := calls.ReadMetadataSource(ctx, r.APIReader, call.Namespace, src)
		if err != nil {
			return nil, &waitReason{reason: millisv1alpha1.ReasonPrefetchNotFound, message: err.Error(), after: r.RetryInterval}
		}
		for k := range data {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// updateStatus applies mutate to the latest object and writes it, retrying
// on conflicts with a fresh read from the API server.
func (r *OutboundCallReconciler) updateStatus(ctx context.Context, call *millisv1alpha1.OutboundCall, mutate func(*millisv1alpha1.OutboundCallStatus, int64)) error {
	first := true
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if !first {
			if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(call), call); err != nil {
				return err
			}
		}
		first = false
		before := call.Status.DeepCopy()
		mutate(&call.Status, call.Generation)
		if equality.Semantic.DeepEqual(before, &call.Status) {
			return nil // e.g. the end-of-call webhook already wrote all of it
		}
		return r.Status().Update(ctx, call)
	})
}

func visibilityDelay(acct *millisv1alpha1.MillisAccount) time.Duration {
	if p := acct.Spec.DialRecovery; p != nil && p.CallLogVisibilityDelay != nil && p.CallLogVisibilityDelay.Duration > 0 {
		return p.CallLogVisibilityDelay.Duration
	}
	return defaultVisibilityDelay
}

func apiDetail(err error) string {
	var apiErr *millis.APIError
	if errors.As(err, &apiErr) && apiErr.Detail != "" {
		return fmt.Sprintf("HTTP %d: %s", apiErr.StatusCode, apiErr.Detail)
	}
	return err.Error()
}

func requeueOnConflict(err error, what string) (ctrl.Result, error) {
	if apierrors.IsConflict(err) {
		return ctrl.Result{RequeueAfter: conflictRetry}, nil
	}
	return ctrl.Result{}, fmt.Errorf("%s: %w", what, err)
}

func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

// SetupWithManager registers the reconciler and its indexes.
func (r *OutboundCallReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager, workers int) error {
	if err := calls.IndexOutboundCalls(ctx, mgr.GetFieldIndexer()); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&millisv1alpha1.OutboundCall{}).
		Watches(&millisv1alpha1.MillisAccount{}, handler.EnqueueRequestsFromMapFunc(r.callsOfAccount)).
		Watches(&millisv1alpha1.Agent{}, handler.EnqueueRequestsFromMapFunc(r.callsOfAgent)).
		WithOptions(controller.Options{MaxConcurrentReconciles: workers, RateLimiter: fastRateLimiter()}).
		Named("outboundcall").
		Complete(r)
}

// callsOfAgent wakes the calls waiting for an Agent.
func (r *OutboundCallReconciler) callsOfAgent(ctx context.Context, obj client.Object) []reconcile.Request {
	return r.unfinishedCalls(ctx, obj.GetNamespace(), client.MatchingFields{calls.IndexAgentRef: obj.GetName()})
}

// callsOfAccount wakes the unfinished calls of an account when it changes,
// so that calls waiting for it dial as soon as it is Ready.
func (r *OutboundCallReconciler) callsOfAccount(ctx context.Context, obj client.Object) []reconcile.Request {
	return r.unfinishedCalls(ctx, obj.GetNamespace(), client.MatchingFields{calls.IndexAccount: obj.GetName()})
}

func (r *OutboundCallReconciler) unfinishedCalls(ctx context.Context, namespace string, fields client.MatchingFields) []reconcile.Request {
	var list millisv1alpha1.OutboundCallList
	if err := r.List(ctx, &list, client.InNamespace(namespace), fields); err != nil {
		log.FromContext(ctx).Error(err, "list calls to wake")
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		if !list.Items[i].Status.Phase.IsFinished() {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
	return reqs
}
