package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	millisv1alpha1 "github.com/callops/millis-operator/api/v1alpha1"
	"github.com/callops/millis-operator/internal/accounts"
	"github.com/callops/millis-operator/internal/campaign"
	"github.com/callops/millis-operator/internal/dispatch"
	"github.com/callops/millis-operator/internal/millis"
	"github.com/callops/millis-operator/internal/template"
)

// Campaign defaults.
const (
	defaultMaxConcurrency = 10
	defaultHistoryLimit   = 100
	defaultBackoff        = time.Hour
	// resultsFlushInterval bounds how often the results export is rewritten
	// while calls finish; it is always written before children are pruned
	// and when the campaign completes.
	resultsFlushInterval = 2 * time.Second
	// rateWindow is the callsPerMinute window; children younger than this
	// are never pruned, because they count against it.
	rateWindow     = time.Minute
	problemsInView = 20
	statusInterval = time.Second
	// bucketSeconds groups children by creation time for pruning.
	bucketSeconds = 5
	// maxUnprunedChildren bounds a campaign's finished children waiting to
	// be pruned; beyond it no new calls start until pruning catches up.
	maxUnprunedChildren = 10000
	// pruneParallelism is how many buckets are deleted at once: pruning
	// runs behind dispatch and must not take the API server from it.
	pruneParallelism = 1
	// maxCreateBatch bounds the concurrent creates of one reconcile.
	maxCreateBatch = 16
)

// Indexes for campaigns.
const (
	IndexCampaignConfigMaps = "campaign.configMaps"
	IndexCampaignAgentRef   = "campaign.agentRef"
)

// CallCampaignReconciler runs campaigns: it creates an OutboundCall per
// attempt, within windows, concurrency, rate and retry limits, and exports
// per-recipient results.
type CallCampaignReconciler struct {
	client.Client
	// APIReader reads ConfigMaps (recipients, do-not-call lists, results),
	// which are cached metadata-only.
	APIReader client.Reader
	Accounts  *accounts.Resolver
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock

	RetryInterval time.Duration
	// Instance is the dial claim put on every child: the OutboundCall
	// reconciler of the same instance dials it without a separate intent
	// write. Empty leaves children unclaimed (an intent write each).
	Instance string

	mu      sync.Mutex
	sources map[string]parsedSource // by namespace/name/key
	memory  map[types.UID]*campaignMemory
}

type parsedSource struct {
	resourceVersion string
	recipients      []campaign.Recipient
	problems        []campaign.Problem
	dnc             map[string]struct{}
	err             error
}

// campaignMemory is what a replica keeps between reconciles of a campaign.
// All of it can be rebuilt from the API server.
type campaignMemory struct {
	name types.NamespacedName
	// expected are children created but not yet seen in the cache, with
	// their creation time: they count as in flight and against the rate.
	expected map[string]expectedChild
	// results is the last written export, by ConfigMap name.
	results   map[string]string
	flushedAt time.Time
	flushDue  bool
	statusAt  time.Time
	loaded    bool
	rows      map[string]dispatch.Row // by phone, from the export
	agentVars agentVarsCache
	// pruning is set while finished children are deleted in the background.
	pruning atomic.Bool
	// retriesUnreported counts retry attempts since the last Retrying event.
	retriesUnreported int
	retriesReportedAt time.Time
}

// expectedChild is a child this replica created, until the cache shows it.
type expectedChild struct {
	at      time.Time
	phone   string
	attempt int
}

type agentVarsCache struct {
	key     string
	vars    []string
	late    []string
	fetched time.Time
}

// +kubebuilder:rbac:groups=millis.callops.dev,resources=callcampaigns,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=millis.callops.dev,resources=callcampaigns/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=millis.callops.dev,resources=outboundcalls,verbs=create;delete;deletecollection
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;update;patch;delete

func (r *CallCampaignReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var c millisv1alpha1.CallCampaign
	if err := r.Get(ctx, req.NamespacedName, &c); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !c.DeletionTimestamp.IsZero() {
		// Children are owned: the garbage collector deletes them, and each
		// hangs up only if the campaign asked for it (terminateOnDelete).
		return ctrl.Result{}, nil
	}
	before := c.Status.DeepCopy()
	result, err := r.run(ctx, &c)
	c.Status.ObservedGeneration = c.Generation
	if !equality.Semantic.DeepEqual(before, &c.Status) {
		// Counters move with every finished call; writing them at most once
		// a second keeps a busy campaign from doubling the API writes. State
		// changes (conditions, results, completion) are written at once.
		mem := r.memoryOf(c.UID, req.NamespacedName)
		now := r.Clock.Now()
		if sameState(before, &c.Status) && now.Sub(mem.statusAt) < statusInterval {
			return minResult(result, statusInterval-now.Sub(mem.statusAt)), err
		}
		mem.statusAt = now
		if uerr := r.Status().Update(ctx, &c); uerr != nil {
			if apierrors.IsConflict(uerr) {
				return ctrl.Result{RequeueAfter: conflictRetry}, nil
			}
			return ctrl.Result{}, fmt.Errorf("update CallCampaign status: %w", uerr)
		}
	}
	return result, err
}

// run is one round: read everything, plan, act, report.
func (r *CallCampaignReconciler) run(ctx context.Context, c *millisv1alpha1.CallCampaign) (ctrl.Result, error) {
	now := r.Clock.Now()
	spec, err := parseCampaignSpec(c)
	if err != nil {
		r.condition(c, millisv1alpha1.ConditionFailed, metav1.ConditionTrue, millisv1alpha1.ReasonInvalidSpec, err.Error())
		r.condition(c, millisv1alpha1.ConditionRunning, metav1.ConditionFalse, millisv1alpha1.ReasonInvalidSpec, err.Error())
		return ctrl.Result{}, nil
	}
	recipients, problems, dnc, wait := r.recipients(ctx, c)
	if wait != nil {
		r.condition(c, millisv1alpha1.ConditionRunning, metav1.ConditionFalse, wait.reason, wait.message)
		return ctrl.Result{RequeueAfter: r.RetryInterval}, nil
	}
	mem := r.memoryOf(c.UID, client.ObjectKeyFromObject(c))
	if err := r.loadResults(ctx, c, mem); err != nil {
		return ctrl.Result{}, err
	}
	invalid, wait := r.missingVariables(ctx, c, mem, recipients)
	if wait != nil {
		r.condition(c, millisv1alpha1.ConditionRunning, metav1.ConditionFalse, wait.reason, wait.message)
		return ctrl.Result{RequeueAfter: r.RetryInterval}, nil
	}
	children, err := r.children(ctx, c)
	if err != nil {
		return ctrl.Result{}, err
	}
	states, inFlight, recent := r.states(c, mem, children, now)

	maxConc := defaultMaxConcurrency
	if c.Spec.MaxConcurrency != nil {
		maxConc = int(*c.Spec.MaxConcurrency)
	}
	rate := -1
	if c.Spec.CallsPerMinute > 0 {
		rate = max(0, int(c.Spec.CallsPerMinute)-len(recent))
	}
	slots := max(0, maxConc-inFlight)
	if backlog := len(children) - inFlight - historyLimit(c); backlog > maxUnprunedChildren {
		// Pruning has fallen behind: hold new calls until it catches up,
		// so that neither etcd nor this manager's cache grows without bound.
		slots = 0
	}
	plan := dispatch.Decide(dispatch.Input{
		Now: now, Recipients: recipients, States: states, DoNotCall: dnc, Invalid: invalid,
		DefaultLoc: spec.loc, Windows: spec.windows, Retry: spec.retry, Start: spec.start, Deadline: spec.deadline,
		Suspended: c.Spec.Suspend, Slots: slots, RateBudget: rate,
	})

	if err := r.createChildren(ctx, c, mem, recipients, plan.Dials, now); err != nil {
		return ctrl.Result{}, err
	}
	r.reportRetries(c, mem, plan.Dials, now)
	if len(plan.Dials) > 0 && c.Status.StartTime == nil {
		t := metav1.NewTime(now)
		c.Status.StartTime = &t
		r.Recorder.Eventf(c, nil, corev1.EventTypeNormal, "Started", "Run", "started dialing %d recipients", len(recipients))
	}

	flushed, err := r.flushResults(ctx, c, mem, func() []dispatch.Row {
		return resultRows(recipients, problems, invalid, plan, states, children, mem.rows)
	}, plan.Done, now)
	if err != nil {
		return ctrl.Result{}, err
	}
	if flushed {
		if err := r.prune(ctx, c, mem, children, now); err != nil {
			return ctrl.Result{}, err
		}
	}
	dials := len(plan.Dials)
	for _, st := range states {
		dials += st.Attempts
	}
	r.report(c, plan, problems, invalid, len(plan.Dials), dials, now)

	return ctrl.Result{RequeueAfter: r.nextWake(c, plan, recent, mem, now, maxConc)}, nil
}

// nextWake is when to look again without an event: the next eligible
// recipient, the rate window sliding, or a pending results flush.
func (r *CallCampaignReconciler) nextWake(c *millisv1alpha1.CallCampaign, plan dispatch.Plan, recent []time.Time, mem *campaignMemory, now time.Time, maxConc int) time.Duration {
	var wake time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (wake.IsZero() || t.Before(wake)) {
			wake = t
		}
	}
	consider(plan.NextWake)
	if plan.Eligible > len(plan.Dials) && c.Spec.CallsPerMinute > 0 && len(recent) > 0 && plan.Counts.Active < maxConc {
		consider(recent[0].Add(rateWindow)) // the oldest start leaves the window
	}
	if pending := r.resultsDirty(mem); pending {
		consider(mem.flushedAt.Add(flushInterval(mem)))
	}
	if wake.IsZero() {
		return 0
	}
	if d := wake.Sub(now); d > 0 {
		return d
	}
	return time.Second
}

// campaignSpec is the parsed, validated spec.
type campaignSpec struct {
	loc             *time.Location
	windows         []campaign.Window
	retry           campaign.RetryPolicy
	start, deadline time.Time
}

// ValidateCampaignSpec reports the first problem in a campaign's schedule
// or retry policy that admission cannot catch (an unknown time zone, say),
// as the reconciler would report it.
func ValidateCampaignSpec(c *millisv1alpha1.CallCampaign) error {
	_, err := parseCampaignSpec(c)
	return err
}

func parseCampaignSpec(c *millisv1alpha1.CallCampaign) (campaignSpec, error) {
	var s campaignSpec
	var err error
	sched := c.Spec.Schedule
	if sched == nil {
		sched = &millisv1alpha1.CampaignSchedule{}
	}
	if s.loc, err = campaign.LoadLocation(sched.TimeZone); err != nil {
		return s, fmt.Errorf("spec.schedule.timeZone %q is not a known time zone", sched.TimeZone)
	}
	s.windows = campaign.DefaultWindows
	if len(sched.CallingWindows) > 0 {
		specs := make([]campaign.WindowSpec, 0, len(sched.CallingWindows))
		for _, w := range sched.CallingWindows {
			days := make([]string, 0, len(w.Days))
			for _, d := range w.Days {
				days = append(days, string(d))
			}
			if len(days) == 0 {
				days = []string{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}
			}
			specs = append(specs, campaign.WindowSpec{Days: days, Start: w.Start, End: w.End})
		}
		if s.windows, err = campaign.ParseWindows(specs); err != nil {
			return s, fmt.Errorf("spec.schedule.callingWindows: %w", err)
		}
	}
	if sched.StartTime != "" {
		if s.start, err = time.Parse(time.RFC3339, sched.StartTime); err != nil {
			return s, fmt.Errorf("spec.schedule.startTime: %w", err)
		}
	}
	if sched.Deadline != "" {
		if s.deadline, err = time.Parse(time.RFC3339, sched.Deadline); err != nil {
			return s, fmt.Errorf("spec.schedule.deadline: %w", err)
		}
	}
	s.retry = campaign.RetryPolicy{MaxAttempts: 1, Backoff: defaultBackoff, RetryOn: map[string]bool{"busy": true, "no-answer": true}}
	if rt := c.Spec.Retry; rt != nil {
		if rt.MaxAttempts > 0 {
			s.retry.MaxAttempts = int(rt.MaxAttempts)
		}
		if rt.Backoff != nil {
			s.retry.Backoff = rt.Backoff.Duration
		}
		if len(rt.RetryOn) > 0 {
			values := make([]string, 0, len(rt.RetryOn))
			for _, v := range rt.RetryOn {
				values = append(values, string(v))
			}
			if s.retry.RetryOn, err = campaign.ParseRetryOn(values); err != nil {
				return s, fmt.Errorf("spec.retry.retryOn: %w", err)
			}
		}
	}
	return s, nil
}

// recipients gathers inline and ConfigMap recipients, deduplicated, and the
// do-not-call set. A missing ConfigMap holds the whole campaign: calling
// part of a list is worse than waiting for all of it.
func (r *CallCampaignReconciler) recipients(ctx context.Context, c *millisv1alpha1.CallCampaign) ([]campaign.Recipient, []campaign.Problem, map[string]struct{}, *waitReason) {
	var all []campaign.Recipient
	var problems []campaign.Problem
	for i, in := range c.Spec.Recipients {
		rec := campaign.Recipient{Phone: string(in.Phone), TimeZone: in.TimeZone, Source: "inline", Row: i + 1}
		if in.TimeZone != "" && !campaign.ValidTimeZone(in.TimeZone) {
			problems = append(problems, campaign.Problem{Source: "inline", Row: i + 1, Phone: rec.Phone, Reason: fmt.Sprintf("unknown time zone %q", in.TimeZone)})
			continue
		}
		if in.Metadata != nil && len(in.Metadata.Raw) > 0 {
			if err := json.Unmarshal(in.Metadata.Raw, &rec.Metadata); err != nil {
				problems = append(problems, campaign.Problem{Source: "inline", Row: i + 1, Phone: rec.Phone, Reason: "metadata is not a JSON object"})
				continue
			}
		}
		all = append(all, rec)
	}
	for _, src := range c.Spec.RecipientsFrom {
		p, err := r.source(ctx, c.Namespace, src.ConfigMapKeyRef, false)
		if err != nil {
			return nil, nil, nil, &waitReason{reason: millisv1alpha1.ReasonSourceNotFound, message: err.Error()}
		}
		if p.err != nil {
			return nil, nil, nil, &waitReason{reason: millisv1alpha1.ReasonSourceNotFound, message: p.err.Error()}
		}
		all = append(all, p.recipients...)
		problems = append(problems, p.problems...)
	}
	all, dups := campaign.Dedupe(all)
	for _, d := range dups {
		problems = append(problems, campaign.Problem{Source: d.Source, Row: d.Row, Phone: d.Phone,
			Reason: fmt.Sprintf("duplicate of %s row %d; called once", d.FirstSource, d.FirstRow)})
	}
	dnc := map[string]struct{}{}
	for _, src := range c.Spec.DoNotCall {
		p, err := r.source(ctx, c.Namespace, src.ConfigMapKeyRef, true)
		if err != nil {
			return nil, nil, nil, &waitReason{reason: millisv1alpha1.ReasonSourceNotFound, message: err.Error()}
		}
		if p.err != nil {
			return nil, nil, nil, &waitReason{reason: millisv1alpha1.ReasonSourceNotFound, message: p.err.Error()}
		}
		for n := range p.dnc {
			dnc[n] = struct{}{}
		}
	}
	return all, problems, dnc, nil
}

// source parses a ConfigMap key, once per resourceVersion. ConfigMaps are
// watched metadata-only (configMapMeta): a cluster's ConfigMaps, and the
// campaigns' own results exports, are never held in memory; a list is read
// from the API server only when its resourceVersion moved.
func (r *CallCampaignReconciler) source(ctx context.Context, namespace string, sel millisv1alpha1.ConfigMapKeySelector, dnc bool) (parsedSource, error) {
	objKey := client.ObjectKey{Namespace: namespace, Name: sel.Name}
	meta := configMapMeta()
	if err := r.Get(ctx, objKey, meta); err != nil {
		if apierrors.IsNotFound(err) {
			return parsedSource{}, fmt.Errorf("ConfigMap %s not found; waiting for it", sel.Name)
		}
		return parsedSource{}, fmt.Errorf("get ConfigMap %s: %w", sel.Name, err)
	}
	key := fmt.Sprintf("%s/%s/%s/%t", namespace, sel.Name, sel.Key, dnc)
	r.mu.Lock()
	cached, ok := r.sources[key]
	r.mu.Unlock()
	if ok && cached.resourceVersion == meta.ResourceVersion {
		return cached, nil
	}
	var cm corev1.ConfigMap
	if err := r.APIReader.Get(ctx, objKey, &cm); err != nil {
		if apierrors.IsNotFound(err) {
			return parsedSource{}, fmt.Errorf("ConfigMap %s not found; waiting for it", sel.Name)
		}
		return parsedSource{}, fmt.Errorf("get ConfigMap %s: %w", sel.Name, err)
	}
	data, ok := cm.Data[sel.Key]
	name := fmt.Sprintf("configmap/%s/%s", sel.Name, sel.Key)
	p := parsedSource{resourceVersion: cm.ResourceVersion}
	switch {
	case !ok:
		p.err = fmt.Errorf("ConfigMap %s has no key %q", sel.Name, sel.Key)
	case dnc:
		p.dnc, p.problems, p.err = campaign.ParseDoNotCall(name, strings.NewReader(data))
	default:
		p.recipients, p.problems, p.err = campaign.ParseCSV(name, strings.NewReader(data))
	}
	r.mu.Lock()
	if r.sources == nil {
		r.sources = map[string]parsedSource{}
	}
	r.sources[key] = p
	r.mu.Unlock()
	return p, nil
}

// missingVariables finds recipients whose merged metadata lacks a variable
// the agent speaks. They are reported per recipient and never dialed: a
// child stuck on a template error would hold a slot forever.
func (r *CallCampaignReconciler) missingVariables(ctx context.Context, c *millisv1alpha1.CallCampaign, mem *campaignMemory, recipients []campaign.Recipient) (map[string]string, *waitReason) {
	vars, late, wait := r.agentVariables(ctx, c, mem)
	if wait != nil {
		return nil, wait
	}
	shared := map[string]json.RawMessage{}
	if c.Spec.Metadata != nil && len(c.Spec.Metadata.Raw) > 0 {
		_ = json.Unmarshal(c.Spec.Metadata.Raw, &shared)
	}
	need := make([]string, 0, len(vars))
	for _, v := range vars {
		if v == template.VarFromPhone || v == template.VarToPhone || slices.Contains(late, v) {
			continue
		}
		if _, ok := shared[v]; ok {
			continue
		}
		need = append(need, v)
	}
	invalid := map[string]string{}
	if len(need) == 0 {
		return invalid, nil
	}
	for i := range recipients {
		var missing []string
		for _, v := range need {
			if _, ok := recipients[i].Metadata[v]; !ok {
				missing = append(missing, v)
			}
		}
		if len(missing) > 0 {
			invalid[recipients[i].Phone] = fmt.Sprintf("metadata lacks {%s}, which the agent speaks", strings.Join(missing, "}, {"))
		}
	}
	return invalid, nil
}

// agentVariables returns the variables the agent speaks and those filled at
// call time, cached for a minute.
func (r *CallCampaignReconciler) agentVariables(ctx context.Context, c *millisv1alpha1.CallCampaign, mem *campaignMemory) ([]string, []string, *waitReason) {
	now := r.Clock.Now()
	if c.Spec.AgentRef != nil {
		var agent millisv1alpha1.Agent
		if err := r.Get(ctx, client.ObjectKey{Namespace: c.Namespace, Name: c.Spec.AgentRef.Name}, &agent); err != nil {
			return nil, nil, &waitReason{reason: millisv1alpha1.ReasonAgentNotReady, message: fmt.Sprintf("Agent %s: %v", c.Spec.AgentRef.Name, client.IgnoreNotFound(err))}
		}
		if !meta.IsStatusConditionTrue(agent.Status.Conditions, millisv1alpha1.ConditionReady) {
			return nil, nil, &waitReason{reason: millisv1alpha1.ReasonAgentNotReady, message: fmt.Sprintf("Agent %s is not Ready; nothing is dialed", agent.Name)}
		}
		return agent.Status.Variables, agent.Spec.PrefetchVariables, nil
	}
	key := c.Spec.AgentID
	if mem.agentVars.key == key && now.Sub(mem.agentVars.fetched) < time.Minute {
		return mem.agentVars.vars, mem.agentVars.late, nil
	}
	res, wait := resolveReadyAccount(ctx, r.Accounts, c.Namespace, c.AccountName(), r.RetryInterval)
	if res == nil {
		return nil, nil, wait
	}
	agent, err := res.Millis.GetAgent(ctx, c.Spec.AgentID)
	if err != nil {
		reason := millisv1alpha1.ReasonMillisUnavailable // a 5xx, a timeout: waiting, not broken
		if millis.IsNotFound(err) {
			reason = millisv1alpha1.ReasonAgentNotFound
		}
		return nil, nil, &waitReason{reason: reason, message: fmt.Sprintf("agent %q: %s", c.Spec.AgentID, apiDetail(err))}
	}
	vars, _ := template.SpokenVariables(agent.Config)
	mem.agentVars = agentVarsCache{key: key, vars: vars, fetched: now}
	return vars, nil, nil
}

func (r *CallCampaignReconciler) children(ctx context.Context, c *millisv1alpha1.CallCampaign) ([]millisv1alpha1.OutboundCall, error) {
	var list millisv1alpha1.OutboundCallList
	// Read-only: skipping the cache's deep copy matters with thousands of
	// children and a reconcile per finished call.
	if err := r.List(ctx, &list, client.InNamespace(c.Namespace), client.MatchingLabels{millisv1alpha1.LabelCampaign: c.Name},
		client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("list campaign calls: %w", err)
	}
	out := list.Items[:0]
	for _, ch := range list.Items {
		if metav1.IsControlledBy(&ch, c) {
			out = append(out, ch)
		}
	}
	return out, nil
}

// states merges the results export with the children: children are newer.
// It also returns the calls in flight and the start times inside the rate
// window (oldest first), both counting creates the cache has not shown yet.
func (r *CallCampaignReconciler) states(c *millisv1alpha1.CallCampaign, mem *campaignMemory, children []millisv1alpha1.OutboundCall, now time.Time) (map[string]*dispatch.State, int, []time.Time) {
	states := make(map[string]*dispatch.State, len(mem.rows)+len(children))
	for phone, row := range mem.rows {
		st := &dispatch.State{Attempts: row.Attempts, LastStatus: row.CallStatus, LastEnd: row.LastEnd}
		switch row.Outcome {
		case dispatch.Succeeded, dispatch.Failed, dispatch.Skipped, dispatch.Expired:
			st.Outcome = row.Outcome
		}
		if row.Outcome == dispatch.Failed && row.CallStatus == "" && row.Attempts > 0 {
			st.Rejected = true
		}
		states[phone] = st
	}
	inFlight := 0
	var recent []time.Time
	seen := map[string]bool{}
	for i := range children {
		ch := &children[i]
		seen[ch.Name] = true
		attempt := attemptOf(ch)
		if created := ch.CreationTimestamp.Time; now.Sub(created) < rateWindow {
			recent = append(recent, created)
		}
		phone := string(ch.Spec.ToPhone)
		st := states[phone]
		if st == nil {
			st = &dispatch.State{}
			states[phone] = st
		}
		if attempt < st.Attempts {
			continue
		}
		st.Attempts = attempt
		st.Outcome = dispatch.Open
		st.Active = !ch.Status.Phase.IsFinished()
		if st.Active {
			inFlight++
			continue
		}
		st.LastStatus = ch.Status.CallStatus
		st.Rejected = ch.Status.Phase == millisv1alpha1.CallFailed && ch.Status.CallStatus == ""
		st.LastEnd = now
		if ch.Status.EndTime != nil {
			st.LastEnd = ch.Status.EndTime.Time
		}
	}
	r.mu.Lock()
	for name, e := range mem.expected {
		switch {
		case seen[name] || now.Sub(e.at) > 2*time.Minute:
			delete(mem.expected, name)
		default:
			// Created, not in the cache yet: in flight, and its recipient
			// must not be planned again from a stale view.
			inFlight++
			recent = append(recent, e.at)
			st := states[e.phone]
			if st == nil {
				st = &dispatch.State{}
				states[e.phone] = st
			}
			if e.attempt >= st.Attempts {
				st.Attempts, st.Outcome, st.Active = e.attempt, dispatch.Open, true
			}
		}
	}
	r.mu.Unlock()
	sort.Slice(recent, func(i, j int) bool { return recent[i].Before(recent[j]) })
	return states, inFlight, recent
}

// dial creates the OutboundCall of one attempt. Its name is deterministic,
// so a create repeated from a stale cache is an AlreadyExists, never a
// second call.
func (r *CallCampaignReconciler) dial(ctx context.Context, c *millisv1alpha1.CallCampaign, mem *campaignMemory, rec *campaign.Recipient, attempt int, now time.Time) error {
	meta := map[string]json.RawMessage{}
	if c.Spec.Metadata != nil && len(c.Spec.Metadata.Raw) > 0 {
		_ = json.Unmarshal(c.Spec.Metadata.Raw, &meta)
	}
	for k, v := range rec.Metadata {
		meta[k] = v
	}
	raw, _ := json.Marshal(meta)
	call := &millisv1alpha1.OutboundCall{
		ObjectMeta: metav1.ObjectMeta{
			Name:      ChildName(c.Name, rec.Phone, attempt),
			Namespace: c.Namespace,
			Labels: map[string]string{
				millisv1alpha1.LabelCampaign: c.Name,
				millisv1alpha1.LabelBucket:   strconv.FormatInt(now.Unix()/bucketSeconds, 10),
			},
			Annotations: map[string]string{millisv1alpha1.AnnotationAttempt: strconv.Itoa(attempt)},
		},
		Spec: millisv1alpha1.OutboundCallSpec{
			AccountRef:              c.Spec.AccountRef,
			AgentID:                 c.Spec.AgentID,
			AgentRef:                c.Spec.AgentRef,
			FromPhone:               c.Spec.FromPhone,
			ToPhone:                 millisv1alpha1.PhoneNumber(rec.Phone),
			IncludeMetadataInPrompt: c.Spec.IncludeMetadataInPrompt,
			TerminateOnDelete:       c.Spec.TerminateOnDelete,
		},
	}
	if len(meta) > 0 {
		call.Spec.Metadata = &apiextensionsv1.JSON{Raw: raw}
	}
	if r.Instance != "" {
		call.Annotations[millisv1alpha1.AnnotationDialClaim] = r.Instance
	}
	if err := controllerutil.SetControllerReference(c, call, r.Scheme()); err != nil {
		return err
	}
	if err := r.Create(ctx, call); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create call %s: %w", call.Name, err)
	}
	r.mu.Lock()
	if mem.expected == nil {
		mem.expected = map[string]expectedChild{}
	}
	mem.expected[call.Name] = expectedChild{at: now, phone: rec.Phone, attempt: attempt}
	r.mu.Unlock()
	log.FromContext(ctx).V(1).Info("Started campaign call", "call", call.Name, "attempt", attempt)
	return nil
}

// reportRetries emits a Retrying event for retry attempts started, at most
// once a minute per campaign, so that a large campaign's retries are one
// readable line a minute rather than an event per call.
func (r *CallCampaignReconciler) reportRetries(c *millisv1alpha1.CallCampaign, mem *campaignMemory, dials []dispatch.Dial, now time.Time) {
	for _, d := range dials {
		if d.Attempt > 1 {
			mem.retriesUnreported++
		}
	}
	if mem.retriesUnreported == 0 || now.Sub(mem.retriesReportedAt) < time.Minute {
		return
	}
	r.Recorder.Eventf(c, nil, corev1.EventTypeNormal, "Retrying", "Dial",
		"started %d retry attempts (retryOn outcomes, after backoff)", mem.retriesUnreported)
	mem.retriesUnreported, mem.retriesReportedAt = 0, now
}

// createChildren creates the planned attempts: the first alone, as a
// probe (a campaign that cannot create children, say over quota, fails on
// one request, not hundreds), then the rest from a pool of maxCreateBatch
// concurrent creates that stops starting new ones at the first error.
func (r *CallCampaignReconciler) createChildren(ctx context.Context, c *millisv1alpha1.CallCampaign, mem *campaignMemory,
	recipients []campaign.Recipient, dials []dispatch.Dial, now time.Time) error {
	if len(dials) == 0 {
		return nil
	}
	if err := r.dial(ctx, c, mem, &recipients[dials[0].Index], dials[0].Attempt, now); err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(maxCreateBatch)
	for _, d := range dials[1:] {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error { return r.dial(gctx, c, mem, &recipients[d.Index], d.Attempt, now) })
	}
	return g.Wait()
}

// ChildName is the deterministic name of an attempt's OutboundCall: the
// campaign name, a hash of the number (never the number itself: names show
// up everywhere) and the attempt.
func ChildName(campaignName, phone string, attempt int) string {
	sum := sha256.Sum256([]byte(phone))
	prefix := campaignName
	if len(prefix) > 200 {
		prefix = prefix[:200]
	}
	return fmt.Sprintf("%s-%s-%d", prefix, hex.EncodeToString(sum[:8]), attempt)
}

// resultRows builds the export: every recipient in order, then the problems.
func resultRows(recipients []campaign.Recipient, problems []campaign.Problem, invalid map[string]string, plan dispatch.Plan,
	states map[string]*dispatch.State, children []millisv1alpha1.OutboundCall, previous map[string]dispatch.Row) []dispatch.Row {
	latest := map[string]*millisv1alpha1.OutboundCall{}
	for i := range children {
		ch := &children[i]
		if cur, ok := latest[string(ch.Spec.ToPhone)]; !ok || attemptOf(ch) > attemptOf(cur) {
			latest[string(ch.Spec.ToPhone)] = ch
		}
	}
	rows := make([]dispatch.Row, 0, len(recipients)+len(problems))
	for i := range recipients {
		rec := &recipients[i]
		row := dispatch.Row{Phone: rec.Phone, Outcome: plan.Outcomes[i], Source: rec.Source, Line: rec.Row}
		if st := states[rec.Phone]; st != nil {
			row.Attempts, row.CallStatus, row.LastEnd = st.Attempts, st.LastStatus, st.LastEnd
		}
		if prev, ok := previous[rec.Phone]; ok { // the child may be pruned
			row.SessionID, row.Cost, row.DurationSeconds, row.Reason = prev.SessionID, prev.Cost, prev.DurationSeconds, prev.Reason
		}
		if ch := latest[rec.Phone]; ch != nil {
			row.SessionID, row.Cost = ch.Status.SessionID, ch.Status.Cost
			if ch.Status.DurationSeconds != nil {
				row.DurationSeconds = *ch.Status.DurationSeconds
			}
			if ch.Status.Phase == millisv1alpha1.CallFailed && ch.Status.CallStatus == "" {
				row.Reason = ch.Status.ErrorMessage
			}
		}
		if row.Outcome == dispatch.Invalid {
			row.Reason = invalid[rec.Phone]
		}
		if row.Outcome == dispatch.Skipped {
			row.Reason = "on the do-not-call list"
		}
		rows = append(rows, row)
	}
	for _, p := range problems {
		rows = append(rows, dispatch.Row{Phone: p.Phone, Outcome: dispatch.Invalid, Source: p.Source, Line: p.Row, Reason: p.Reason})
	}
	return rows
}

func attemptOf(ch *millisv1alpha1.OutboundCall) int {
	n, _ := strconv.Atoi(ch.Annotations[millisv1alpha1.AnnotationAttempt])
	return n
}

// sameState reports whether two statuses differ only in counters and
// condition messages.
func sameState(a, b *millisv1alpha1.CallCampaignStatus) bool {
	if len(a.Conditions) != len(b.Conditions) || len(a.Results) != len(b.Results) ||
		(a.CompletionTime == nil) != (b.CompletionTime == nil) || (a.StartTime == nil) != (b.StartTime == nil) {
		return false
	}
	for i := range a.Conditions {
		x, y := a.Conditions[i], b.Conditions[i]
		if x.Type != y.Type || x.Status != y.Status || x.Reason != y.Reason {
			return false
		}
	}
	for i := range a.Results {
		if a.Results[i] != b.Results[i] {
			return false
		}
	}
	return true
}

func minResult(r ctrl.Result, d time.Duration) ctrl.Result {
	if r.RequeueAfter == 0 || d < r.RequeueAfter {
		r.RequeueAfter = d
	}
	return r
}
