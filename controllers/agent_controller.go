package controllers

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
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
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	millisv1alpha1 "github.com/callops/millis-operator/api/v1alpha1"
	"github.com/callops/millis-operator/internal/accounts"
	"github.com/callops/millis-operator/internal/agents"
	"github.com/callops/millis-operator/internal/crashpoint"
	"github.com/callops/millis-operator/internal/millis"
	"github.com/callops/millis-operator/internal/redact"
)

// AgentFinalizer holds an Agent until its Millis agent is deleted and its
// numbers unbound (or orphaned, by policy).
const AgentFinalizer = "millis.callops.dev/agent"

// AgentReconciler mirrors Agents to Millis agents, Crossplane style: observe,
// then create, update or do nothing.
type AgentReconciler struct {
	client.Client
	APIReader client.Reader
	Accounts  *accounts.Resolver
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock

	// DriftInterval is the default interval between drift checks.
	DriftInterval time.Duration
	// RetryInterval is how soon a waiting or failing Agent is looked at again.
	RetryInterval time.Duration
	// CreateVisibilityDelay is how long after an unconfirmed create a new
	// agent is assumed to be visible in GET /agents.
	CreateVisibilityDelay time.Duration
}

// +kubebuilder:rbac:groups=millis.callops.dev,resources=agents,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=millis.callops.dev,resources=agents/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=millis.callops.dev,resources=agents/finalizers,verbs=update

func (r *AgentReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var agent millisv1alpha1.Agent
	if err := r.Get(ctx, req.NamespacedName, &agent); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !agent.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, &agent)
	}
	if !agent.ObserveOnly() && !controllerutil.ContainsFinalizer(&agent, AgentFinalizer) {
		return ctrl.Result{}, r.writeMeta(ctx, &agent, func(a *millisv1alpha1.Agent) {
			controllerutil.AddFinalizer(a, AgentFinalizer)
		})
	}

	before := agent.Status.DeepCopy()
	result, err := r.reconcile(ctx, &agent)
	agent.Status.ObservedGeneration = agent.Generation
	if !equality.Semantic.DeepEqual(before, &agent.Status) {
		if uerr := r.Status().Update(ctx, &agent); uerr != nil {
			if apierrors.IsConflict(uerr) {
				return ctrl.Result{RequeueAfter: conflictRetry}, nil
			}
			return ctrl.Result{}, fmt.Errorf("update Agent status: %w", uerr)
		}
	}
	return result, err
}

// reconcile runs the phases and records the outcome in conditions.
func (r *AgentReconciler) reconcile(ctx context.Context, agent *millisv1alpha1.Agent) (ctrl.Result, error) {
	res, wait := r.account(ctx, agent)
	if res == nil {
		r.synced(agent, metav1.ConditionFalse, wait.reason, wait.message)
		return ctrl.Result{RequeueAfter: r.RetryInterval}, nil
	}
	if conflict, err := r.externalIDConflict(ctx, agent); err != nil || conflict != "" {
		if err != nil {
			return ctrl.Result{}, err
		}
		r.synced(agent, metav1.ConditionFalse, millisv1alpha1.ReasonExternalConflict, conflict)
		return ctrl.Result{}, nil
	}
	hooks := res.Webhooks
	if agent.ObserveOnly() {
		hooks = nil // never expected of, nor written to, an observed agent
	}
	desired, err := agents.Desired(agent, hooks)
	if err != nil {
		r.synced(agent, metav1.ConditionFalse, millisv1alpha1.ReasonTerminal, err.Error())
		return ctrl.Result{}, nil
	}
	if vars, err := agents.Variables(desired); err == nil {
		agent.Status.Variables = vars
	}

	id := agents.ID(agent)
	if id == "" {
		if agent.ObserveOnly() {
			r.synced(agent, metav1.ConditionFalse, millisv1alpha1.ReasonTerminal, "ObserveOnly needs spec.externalID")
			return ctrl.Result{}, nil
		}
		return r.create(ctx, agent, res, desired)
	}
	return r.observe(ctx, agent, res, id, desired)
}

// create makes the Millis agent, guarded so that a crash cannot make two.
func (r *AgentReconciler) create(ctx context.Context, agent *millisv1alpha1.Agent, res *accounts.Resolved, desired agents.Config) (ctrl.Result, error) {
	logger := log.FromContext(ctx)
	if pending, ok := agent.Annotations[millisv1alpha1.AnnotationCreatePending]; ok {
		return r.recoverCreate(ctx, agent, res, pending)
	}
	// Persist the intent first, conflict-checked, as Crossplane does.
	intent := r.Clock.Now().UTC().Format(time.RFC3339)
	if err := r.writeMeta(ctx, agent, func(a *millisv1alpha1.Agent) {
		metav1.SetMetaDataAnnotation(&a.ObjectMeta, millisv1alpha1.AnnotationCreatePending, intent)
	}); err != nil {
		return requeueOnConflict(err, "record create intent")
	}
	crashpoint.Hit(crashpoint.AgentAfterIntent)

	created, err := res.Millis.CreateAgent(ctx, agent.MillisName(), desired.JSON())
	crashpoint.Hit(crashpoint.AgentAfterCreate)
	if err != nil {
		if !millis.IsDefiniteRejection(err) {
			// It may exist now: the next reconcile looks before creating.
			r.synced(agent, metav1.ConditionFalse, millisv1alpha1.ReasonCreateUncertain,
				fmt.Sprintf("Millis did not confirm the create (%v); looking for the agent before any retry", err))
			return ctrl.Result{RequeueAfter: r.CreateVisibilityDelay}, nil
		}
		if uerr := r.setAnnotations(ctx, agent, "", true); uerr != nil {
			return ctrl.Result{}, uerr
		}
		return r.writeFailed(agent, err, "create the Millis agent")
	}
	logger.Info("Created Millis agent", "agentID", created.ID)
	r.Recorder.Eventf(agent, nil, corev1.EventTypeNormal, "Created", "Create", "created Millis agent %s", created.ID)
	if err := r.setAnnotations(ctx, agent, created.ID, true); err != nil {
		// The agent exists; the pending annotation stays and the next
		// reconcile finds it by name.
		return ctrl.Result{}, fmt.Errorf("record external ID of a created agent: %w", err)
	}
	return r.observe(ctx, agent, res, created.ID, desired)
}

// recoverCreate settles a create whose outcome is unknown: it looks for an
// agent of this name created since the intent.
func (r *AgentReconciler) recoverCreate(ctx context.Context, agent *millisv1alpha1.Agent, res *accounts.Resolved, pending string) (ctrl.Result, error) {
	since, _ := time.Parse(time.RFC3339, pending)
	list, err := res.Millis.ListAgents(ctx)
	if err != nil {
		return r.writeFailed(agent, err, "list Millis agents to settle an unconfirmed create")
	}
	var matches []millis.Agent
	for _, a := range list {
		if a.Name == agent.MillisName() && (a.CreatedAt == 0 || a.CreatedAt >= float64(since.Add(-2*time.Minute).Unix())) {
			matches = append(matches, a)
		}
	}
	switch {
	case len(matches) == 1:
		r.Recorder.Eventf(agent, nil, corev1.EventTypeNormal, "Recovered", "Create",
			"found the agent created before a crash: %s", matches[0].ID)
		if err := r.setAnnotations(ctx, agent, matches[0].ID, true); err != nil {
			return ctrl.Result{}, err
		}
		return ctrl.Result{RequeueAfter: conflictRetry}, nil
	case len(matches) > 1:
		ids := make([]string, 0, len(matches))
		for _, m := range matches {
			ids = append(ids, m.ID)
		}
		r.synced(agent, metav1.ConditionFalse, millisv1alpha1.ReasonCreateUncertain,
			fmt.Sprintf("several Millis agents named %q were created since the create intent (%s); set spec.externalID to the right one",
				agent.MillisName(), strings.Join(ids, ", ")))
		return ctrl.Result{}, nil
	}
	if waited := r.Clock.Now().Sub(since); waited < r.CreateVisibilityDelay {
		r.synced(agent, metav1.ConditionFalse, millisv1alpha1.ReasonCreateUncertain, "checking whether an earlier create happened")
		return ctrl.Result{RequeueAfter: r.CreateVisibilityDelay - waited}, nil
	}
	// Proven absent: withdraw the intent; the next reconcile creates.
	if err := r.setAnnotations(ctx, agent, "", true); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: conflictRetry}, nil
}

// observe reads the Millis agent, repairs or reports drift, binds numbers.
func (r *AgentReconciler) observe(ctx context.Context, agent *millisv1alpha1.Agent, res *accounts.Resolved, id string, desired agents.Config) (ctrl.Result, error) {
	actual, err := res.Millis.GetAgent(ctx, id)
	if err != nil {
		if millis.IsNotFound(err) {
			return r.missing(ctx, agent, id)
		}
		return r.writeFailed(agent, err, "read the Millis agent")
	}
	now := metav1.NewTime(r.Clock.Now())
	agent.Status.AgentID = id
	agent.Status.LastObservedTime = &now
	setCondition(&agent.Status.Conditions, agent.Generation, millisv1alpha1.ConditionReady, metav1.ConditionTrue,
		millisv1alpha1.ReasonAvailable, "the Millis agent exists")

	drift := agents.Diff(desired, actual.Config)
	if !agent.ObserveOnly() && actual.Name != agent.MillisName() {
		drift = append(drift, "name")
	}
	if agent.ObserveOnly() {
		// Observe-only agents define nothing, so only the spec's own
		// fields (if any) can drift.
		if agent.Spec.Config == nil && agent.Spec.ExtraConfig == nil {
			drift = nil
		}
		agent.Status.Drift = capList(drift)
		if len(drift) > 0 {
			r.synced(agent, metav1.ConditionFalse, millisv1alpha1.ReasonDrifted, "differs from the spec: "+strings.Join(drift, ", "))
		} else {
			r.synced(agent, metav1.ConditionTrue, millisv1alpha1.ReasonReconcileSuccess, "observed; nothing is written under ObserveOnly")
		}
		agent.Status.PhoneNumbers = nil // observers bind nothing
		return ctrl.Result{RequeueAfter: r.driftInterval(agent)}, nil
	}

	if len(drift) > 0 {
		if err := res.Millis.UpdateAgent(ctx, id, agent.MillisName(), agents.Merge(actual.Config, desired)); err != nil {
			return r.writeFailed(agent, err, "update the Millis agent")
		}
		reason, verb := "Updated", "updated"
		if agent.Status.ObservedGeneration == agent.Generation {
			reason, verb = "DriftRepaired", "repaired drift in"
		}
		r.Recorder.Eventf(agent, nil, corev1.EventTypeNormal, reason, "Update", "%s %s", verb, strings.Join(drift, ", "))
	}
	agent.Status.Drift = capList(drift)
	if msg := r.bindPhones(ctx, agent, res, id); msg != "" {
		r.synced(agent, metav1.ConditionFalse, millisv1alpha1.ReasonPhoneConflict, msg)
		return ctrl.Result{RequeueAfter: r.RetryInterval}, nil
	}
	r.synced(agent, metav1.ConditionTrue, millisv1alpha1.ReasonReconcileSuccess, "the Millis agent matches the spec")
	return ctrl.Result{RequeueAfter: r.driftInterval(agent)}, nil
}

// missing handles a Millis agent that is gone, by policy.
func (r *AgentReconciler) missing(ctx context.Context, agent *millisv1alpha1.Agent, id string) (ctrl.Result, error) {
	policy := agent.Spec.OnMissing
	if policy == "" {
		policy = millisv1alpha1.MissingRecreate
		if agent.Spec.ExternalID != "" {
			policy = millisv1alpha1.MissingReport
		}
	}
	if agent.ObserveOnly() || policy == millisv1alpha1.MissingReport || agent.Spec.ExternalID != "" {
		msg := fmt.Sprintf("Millis has no agent %s (onMissing: %s)", id, policy)
		setCondition(&agent.Status.Conditions, agent.Generation, millisv1alpha1.ConditionReady, metav1.ConditionFalse,
			millisv1alpha1.ReasonExternalNotFound, msg)
		r.synced(agent, metav1.ConditionFalse, millisv1alpha1.ReasonExternalNotFound, msg)
		return ctrl.Result{RequeueAfter: r.driftInterval(agent)}, nil
	}
	r.Recorder.Eventf(agent, nil, corev1.EventTypeWarning, millisv1alpha1.ReasonExternalNotFound, "Observe",
		"Millis agent %s is gone; creating it again (onMissing: Recreate)", id)
	agent.Status.AgentID = ""
	agent.Status.PhoneNumbers = nil
	if err := r.setAnnotations(ctx, agent, "", false); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: conflictRetry}, nil
}

// bindPhones binds spec.phoneNumbers to the agent and unbinds removed ones.
// It returns a conflict message, or "".
func (r *AgentReconciler) bindPhones(ctx context.Context, agent *millisv1alpha1.Agent, res *accounts.Resolved, id string) string {
	var conflicts []string
	bound := []millisv1alpha1.PhoneNumber{}
	for _, p := range agent.Spec.PhoneNumbers {
		if owner := r.phoneOwner(ctx, agent, res, string(p)); owner != "" {
			conflicts = append(conflicts, fmt.Sprintf("%s is bound to Agent %s", p, owner))
			continue
		}
		phone, err := res.Millis.GetPhone(ctx, string(p))
		if err != nil {
			conflicts = append(conflicts, fmt.Sprintf("%s: %s", p, apiDetail(err)))
			continue
		}
		if phone.AgentID != id {
			if err := res.Millis.SetPhoneAgent(ctx, string(p), id); err != nil {
				conflicts = append(conflicts, fmt.Sprintf("%s: %s", p, apiDetail(err)))
				continue
			}
			r.Recorder.Eventf(agent, nil, corev1.EventTypeNormal, "PhoneBound", "Bind", "bound %s", redact.Phone(string(p)))
		}
		bound = append(bound, p)
	}
	for _, p := range agent.Status.PhoneNumbers {
		if slices.Contains(agent.Spec.PhoneNumbers, p) {
			continue
		}
		if r.unbind(ctx, res, string(p), id) != nil {
			bound = append(bound, p) // try again next time
		} else {
			r.Recorder.Eventf(agent, nil, corev1.EventTypeNormal, "PhoneUnbound", "Bind", "unbound %s", redact.Phone(string(p)))
		}
	}
	agent.Status.PhoneNumbers = bound
	if len(conflicts) > 0 {
		return strings.Join(conflicts, "; ")
	}
	return ""
}

// phoneOwner names another Agent that holds the number, or "".
func (r *AgentReconciler) phoneOwner(ctx context.Context, agent *millisv1alpha1.Agent, res *accounts.Resolved, phone string) string {
	var list millisv1alpha1.AgentList
	if err := r.List(ctx, &list, client.InNamespace(agent.Namespace), client.MatchingFields{agents.IndexPhones: phone}); err != nil {
		return ""
	}
	for _, other := range list.Items {
		if other.UID != agent.UID && other.AccountName() == agent.AccountName() {
			return other.Name
		}
	}
	return ""
}

// unbind detaches a number, only if it is still bound to this agent.
func (r *AgentReconciler) unbind(ctx context.Context, res *accounts.Resolved, phone, id string) error {
	p, err := res.Millis.GetPhone(ctx, phone)
	if err != nil {
		if millis.IsNotFound(err) {
			return nil
		}
		return err
	}
	if p.AgentID != id {
		return nil
	}
	return res.Millis.SetPhoneAgent(ctx, phone, "")
}

// finalize deletes the Millis agent and unbinds its numbers, unless orphaned.
func (r *AgentReconciler) finalize(ctx context.Context, agent *millisv1alpha1.Agent) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(agent, AgentFinalizer) {
		return ctrl.Result{}, nil
	}
	id := agents.ID(agent)
	if id != "" && !agent.ObserveOnly() && agent.Spec.DeletionPolicy != millisv1alpha1.DeletionOrphan {
		res, wait := r.account(ctx, agent)
		if res == nil {
			r.Recorder.Eventf(agent, nil, corev1.EventTypeWarning, wait.reason, "Delete", "cannot delete the Millis agent: %s", wait.message)
			return ctrl.Result{RequeueAfter: r.RetryInterval}, nil
		}
		for _, p := range agent.Status.PhoneNumbers {
			if err := r.unbind(ctx, res, string(p), id); err != nil {
				return ctrl.Result{}, fmt.Errorf("unbind %s: %w", redact.Phone(string(p)), err)
			}
		}
		if err := res.Millis.DeleteAgent(ctx, id); err != nil && !millis.IsNotFound(err) {
			return ctrl.Result{}, fmt.Errorf("delete Millis agent %s: %w", id, err)
		}
		r.Recorder.Eventf(agent, nil, corev1.EventTypeNormal, "Deleted", "Delete", "deleted Millis agent %s", id)
	}
	return ctrl.Result{}, client.IgnoreNotFound(r.writeMeta(ctx, agent, func(a *millisv1alpha1.Agent) {
		controllerutil.RemoveFinalizer(a, AgentFinalizer)
	}))
}

// externalIDConflict reports another, older Agent that manages the same
// Millis agent.
func (r *AgentReconciler) externalIDConflict(ctx context.Context, agent *millisv1alpha1.Agent) (string, error) {
	id := agents.ID(agent)
	if id == "" || agent.ObserveOnly() {
		return "", nil // observers never write, so any number may watch
	}
	var list millisv1alpha1.AgentList
	if err := r.List(ctx, &list, client.InNamespace(agent.Namespace), client.MatchingFields{agents.IndexMillisID: id}); err != nil {
		return "", fmt.Errorf("list Agents by Millis ID: %w", err)
	}
	for _, other := range list.Items {
		if other.UID == agent.UID || other.AccountName() != agent.AccountName() || other.ObserveOnly() {
			continue
		}
		if other.CreationTimestamp.Before(&agent.CreationTimestamp) ||
			(other.CreationTimestamp.Equal(&agent.CreationTimestamp) && other.Name < agent.Name) {
			return fmt.Sprintf("Agent %s already manages Millis agent %s; nothing is written", other.Name, id), nil
		}
	}
	return "", nil
}

// setAnnotations records the external ID and/or clears the create intent,
// retrying conflicts on a fresh copy.
func (r *AgentReconciler) setAnnotations(ctx context.Context, agent *millisv1alpha1.Agent, id string, clearPending bool) error {
	first := true
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if !first {
			status := agent.Status
			if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(agent), agent); err != nil {
				return err
			}
			agent.Status = status // the fresh copy's status is older than ours
		}
		first = false
		return r.writeMeta(ctx, agent, func(a *millisv1alpha1.Agent) {
			if a.Annotations == nil {
				a.Annotations = map[string]string{}
			}
			if id != "" {
				a.Annotations[millisv1alpha1.AnnotationExternalID] = id
			} else if !clearPending {
				delete(a.Annotations, millisv1alpha1.AnnotationExternalID)
			}
			if clearPending {
				delete(a.Annotations, millisv1alpha1.AnnotationCreatePending)
			}
		})
	})
}

// writeMeta writes what mutate changes in the Agent's metadata (finalizers,
// annotations) and nothing else, conflict-checked on resourceVersion.
//
// It goes through patchMeta, never an Update. The patch returns the stored
// status, which is older than the one this round computed and writes at its
// end, so that one is kept.
func (r *AgentReconciler) writeMeta(ctx context.Context, agent *millisv1alpha1.Agent, mutate func(*millisv1alpha1.Agent)) error {
	before := agent.DeepCopy()
	mutate(agent)
	status := agent.Status
	err := patchMeta(ctx, r.Client, agent, before)
	agent.Status = status
	return err
}

// writeFailed records a Millis error: terminal errors wait for a spec
// change, others retry (Retry-After honoured).
func (r *AgentReconciler) writeFailed(agent *millisv1alpha1.Agent, err error, what string) (ctrl.Result, error) {
	msg := fmt.Sprintf("%s: %s", what, apiDetail(err))
	switch {
	case millis.IsUnauthorized(err):
		r.synced(agent, metav1.ConditionFalse, millisv1alpha1.ReasonUnauthorized, msg)
	case millis.IsRetryable(err):
		r.synced(agent, metav1.ConditionFalse, millisv1alpha1.ReasonMillisUnavailable, msg)
		if after, ok := millis.RetryAfter(err); ok && after > 0 {
			return ctrl.Result{RequeueAfter: after}, nil
		}
	default:
		r.synced(agent, metav1.ConditionFalse, millisv1alpha1.ReasonTerminal, msg)
		r.Recorder.Eventf(agent, nil, corev1.EventTypeWarning, millisv1alpha1.ReasonTerminal, "Sync", msg)
		return ctrl.Result{}, nil
	}
	return ctrl.Result{RequeueAfter: r.RetryInterval}, nil
}

func (r *AgentReconciler) synced(agent *millisv1alpha1.Agent, status metav1.ConditionStatus, reason, msg string) {
	setCondition(&agent.Status.Conditions, agent.Generation, millisv1alpha1.ConditionSynced, status, reason, msg)
	if meta.FindStatusCondition(agent.Status.Conditions, millisv1alpha1.ConditionReady) == nil {
		setCondition(&agent.Status.Conditions, agent.Generation, millisv1alpha1.ConditionReady, metav1.ConditionFalse, reason, msg)
	}
}

func (r *AgentReconciler) account(ctx context.Context, agent *millisv1alpha1.Agent) (*accounts.Resolved, *waitReason) {
	return resolveReadyAccount(ctx, r.Accounts, agent.Namespace, agent.AccountName(), r.RetryInterval)
}

// driftInterval is the per-Agent or default interval, jittered by up to
// 10% so that many Agents do not all hit Millis at once.
func (r *AgentReconciler) driftInterval(agent *millisv1alpha1.Agent) time.Duration {
	d := r.DriftInterval
	if agent.Spec.DriftCheckInterval != nil && agent.Spec.DriftCheckInterval.Duration > 0 {
		d = agent.Spec.DriftCheckInterval.Duration
	}
	return d + time.Duration(rand.Int64N(int64(d)/10+1))
}

func capList(s []string) []string {
	if len(s) > 32 {
		return append(s[:31:31], fmt.Sprintf("... and %d more", len(s)-31))
	}
	return s
}

// SetupWithManager registers the reconciler and its indexes.
func (r *AgentReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if err := agents.Index(ctx, mgr.GetFieldIndexer()); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&millisv1alpha1.Agent{}).
		Watches(&millisv1alpha1.MillisAccount{}, handler.EnqueueRequestsFromMapFunc(r.agentsOfAccount)).
		Named("agent").
		Complete(r)
}

func (r *AgentReconciler) agentsOfAccount(ctx context.Context, obj client.Object) []reconcile.Request {
	var list millisv1alpha1.AgentList
	if err := r.List(ctx, &list, client.InNamespace(obj.GetNamespace())); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		if list.Items[i].AccountName() == obj.GetName() && !meta.IsStatusConditionTrue(list.Items[i].Status.Conditions, millisv1alpha1.ConditionReady) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
	return reqs
}
