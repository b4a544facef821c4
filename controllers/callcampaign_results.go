package controllers

import (
	"context"
	"fmt"
	"golang.org/x/sync/errgroup"
	"slices"
	"sort"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	millisv1alpha1 "github.com/callops/millis-operator/api/v1alpha1"
	"github.com/callops/millis-operator/internal/campaign"
	"github.com/callops/millis-operator/internal/dispatch"
	"github.com/callops/millis-operator/internal/metrics"
)

// ResultsKey is the key of the CSV in each results ConfigMap.
const ResultsKey = "results.csv"

func resultsName(c *millisv1alpha1.CallCampaign, i int) string {
	return fmt.Sprintf("%s-results-%d", c.Name, i)
}

func (r *CallCampaignReconciler) memoryOf(uid types.UID, nn types.NamespacedName) *campaignMemory {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.memory == nil {
		r.memory = map[types.UID]*campaignMemory{}
	}
	m, ok := r.memory[uid]
	if !ok {
		m = &campaignMemory{name: nn, expected: map[string]expectedChild{}, results: map[string]string{}}
		r.memory[uid] = m
	}
	return m
}

// forget drops the memory of a deleted campaign.
func (r *CallCampaignReconciler) forget(nn types.NamespacedName) {
	metrics.ForgetCampaign(nn.Namespace, nn.Name)
	r.mu.Lock()
	defer r.mu.Unlock()
	for uid, m := range r.memory {
		if m.name == nn {
			delete(r.memory, uid)
		}
	}
}

// loadResults reads the export once per replica lifetime: it is the memory
// of attempts whose children were pruned.
func (r *CallCampaignReconciler) loadResults(ctx context.Context, c *millisv1alpha1.CallCampaign, mem *campaignMemory) error {
	if mem.loaded {
		return nil
	}
	mem.rows = map[string]dispatch.Row{}
	for i := 0; ; i++ {
		var cm corev1.ConfigMap
		err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: c.Namespace, Name: resultsName(c, i)}, &cm)
		if apierrors.IsNotFound(err) {
			break
		}
		if err != nil {
			return fmt.Errorf("read results %s: %w", resultsName(c, i), err)
		}
		if !metav1.IsControlledBy(&cm, c) {
			break
		}
		rows, err := dispatch.DecodeCSV(cm.Data[ResultsKey])
		if err != nil {
			return fmt.Errorf("results %s: %w", cm.Name, err)
		}
		for _, row := range rows {
			if row.Outcome == dispatch.Invalid {
				continue
			}
			if _, dup := mem.rows[row.Phone]; !dup {
				mem.rows[row.Phone] = row
			}
		}
		mem.results[cm.Name] = cm.Data[ResultsKey]
	}
	mem.loaded = true
	return nil
}

// flushResults writes the export when it changed and is due. It reports
// whether the export on the server now matches rows.
func (r *CallCampaignReconciler) flushResults(ctx context.Context, c *millisv1alpha1.CallCampaign, mem *campaignMemory, buildRows func() []dispatch.Row, done bool, now time.Time) (bool, error) {
	if !done && now.Sub(mem.flushedAt) < flushInterval(mem) {
		mem.flushDue = true
		return false, nil
	}
	mem.flushDue = false
	rows := buildRows() // O(recipients): only when a flush is due
	chunks := dispatch.EncodeChunks(rows)
	names := make([]string, len(chunks))
	for i, data := range chunks {
		names[i] = resultsName(c, i)
		if mem.results[names[i]] == data {
			continue
		}
		if err := r.writeResults(ctx, c, names[i], data); err != nil {
			return false, err
		}
		mem.results[names[i]] = data
	}
	for name := range mem.results {
		if !slices.Contains(names, name) {
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: c.Namespace}}
			if err := r.Delete(ctx, cm); client.IgnoreNotFound(err) != nil {
				return false, fmt.Errorf("delete stale results %s: %w", name, err)
			}
			delete(mem.results, name)
		}
	}
	next := make(map[string]dispatch.Row, len(rows))
	for _, row := range rows {
		if row.Outcome == dispatch.Invalid {
			continue
		}
		if _, dup := next[row.Phone]; !dup {
			next[row.Phone] = row
		}
	}
	mem.rows = next
	mem.flushedAt = now
	c.Status.Results = names
	return true, nil
}

// flushInterval grows with the export: rewriting a megabyte of CSV every
// two seconds would cost the API server (and etcd's history) more than the
// calls themselves. It stays within a pruning bucket, so children are not
// kept much longer for it.
func flushInterval(mem *campaignMemory) time.Duration {
	size := 0
	for _, data := range mem.results {
		size += len(data)
	}
	return min(resultsFlushInterval*time.Duration(1+size/(256<<10)), bucketSeconds*time.Second)
}

// writeResults writes one chunk of the export. The chunk is replaced whole
// (no read of the old one, which can be most of a megabyte); a ConfigMap of
// that name that the campaign does not own is never overwritten.
func (r *CallCampaignReconciler) writeResults(ctx context.Context, c *millisv1alpha1.CallCampaign, name, data string) error {
	meta := configMapMeta()
	err := r.Get(ctx, client.ObjectKey{Namespace: c.Namespace, Name: name}, meta)
	exists := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("write results %s: %w", name, err)
	}
	if exists && !metav1.IsControlledBy(meta, c) {
		return fmt.Errorf("write results: ConfigMap %s exists and is not this campaign's; rename it or the campaign", name)
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: c.Namespace, Labels: map[string]string{millisv1alpha1.LabelCampaign: c.Name}},
		Data:       map[string]string{ResultsKey: data},
	}
	if err := controllerutil.SetControllerReference(c, cm, r.Scheme()); err != nil {
		return err
	}
	if exists {
		err = r.Update(ctx, cm) // no resourceVersion: the campaign is the only writer
	} else if err = r.Create(ctx, cm); apierrors.IsAlreadyExists(err) {
		err = r.Update(ctx, cm) // the metadata cache was behind our own create
	}
	if err != nil {
		return fmt.Errorf("write results %s: %w", name, err)
	}
	return nil
}

// configMapMeta is an empty ConfigMap metadata object: reads through the
// cache with it use the metadata-only informer.
func configMapMeta() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ConfigMap"))
	return m
}

// resultsDirty: a flush was skipped because the last one was too recent.
func (r *CallCampaignReconciler) resultsDirty(mem *campaignMemory) bool { return mem.flushDue }

// prune deletes finished children beyond the history limit, oldest first,
// once their results are in the export. Children are created with a bucket
// label (their creation time in 5-second steps) and pruned a whole bucket
// at a time with one delete-collection request, so pruning costs the API
// server about one write request per bucket instead of one per call. A
// bucket is only pruned once all of it has finished, has been exported,
// and its 5 seconds are over (so the cache surely shows every child
// created in it); with callsPerMinute, also not before its children have
// left the rate window, where they still count.
func (r *CallCampaignReconciler) prune(ctx context.Context, c *millisv1alpha1.CallCampaign, mem *campaignMemory, children []millisv1alpha1.OutboundCall, now time.Time) error {
	limit := historyLimit(c)
	type bucket struct {
		key      string
		children []*millisv1alpha1.OutboundCall
		blocked  bool
	}
	buckets := map[string]*bucket{}
	finished := 0
	for i := range children {
		ch := &children[i]
		key := ch.Labels[millisv1alpha1.LabelBucket]
		b := buckets[key]
		if b == nil {
			b = &bucket{key: key}
			buckets[key] = b
		}
		b.children = append(b.children, ch)
		row, exported := mem.rows[string(ch.Spec.ToPhone)]
		switch {
		case !ch.Status.Phase.IsFinished() || !ch.DeletionTimestamp.IsZero():
			b.blocked = true
		case !exported || row.Attempts < attemptOf(ch):
			b.blocked = true
			finished++
		default:
			finished++
		}
	}
	// A bucket is complete once its 5 seconds are over; with a rate limit
	// its children also count against callsPerMinute for a minute more.
	minAge := bucketSeconds * time.Second
	if c.Spec.CallsPerMinute > 0 {
		minAge += rateWindow
	}
	keys := make([]string, 0, len(buckets))
	for k, b := range buckets {
		start, err := strconv.ParseInt(k, 10, 64)
		if k == "" || err != nil || b.blocked || now.Sub(time.Unix(start*bucketSeconds, 0)) < minAge {
			continue
		}
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return len(keys[i]) < len(keys[j]) || (len(keys[i]) == len(keys[j]) && keys[i] < keys[j])
	})
	var prunable []string
	for _, k := range keys {
		if finished-len(buckets[k].children) < limit {
			break
		}
		prunable = append(prunable, k)
		finished -= len(buckets[k].children)
	}
	if len(prunable) == 0 || !mem.pruning.CompareAndSwap(false, true) {
		return nil // nothing to prune, or the last round is still deleting
	}
	// The API server deletes a collection one object at a time; waiting for
	// it here would hold up new calls (and the slots of finished ones) for
	// as long. Deleting in the background only delays what is already
	// exported and no longer counted.
	namespace, name := c.Namespace, c.Name
	logger := log.FromContext(ctx)
	go func() {
		defer mem.pruning.Store(false)
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
		defer cancel()
		// Each request is deleted by one API server worker; a few buckets
		// at once keep pruning up with a fast campaign.
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(pruneParallelism)
		for _, k := range prunable {
			g.Go(func() error {
				err := r.DeleteAllOf(gctx, &millisv1alpha1.OutboundCall{}, client.InNamespace(namespace),
					client.MatchingLabels{millisv1alpha1.LabelCampaign: name, millisv1alpha1.LabelBucket: k})
				if err != nil {
					return fmt.Errorf("bucket %s: %w", k, err)
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			logger.Error(err, "Pruning finished campaign calls failed; retrying at the next results flush")
		}
	}()
	return nil
}

// historyLimit is how many finished children the campaign keeps.
func historyLimit(c *millisv1alpha1.CallCampaign) int {
	if c.Spec.ChildHistoryLimit != nil {
		return int(*c.Spec.ChildHistoryLimit)
	}
	return defaultHistoryLimit
}

func endOf(ch *millisv1alpha1.OutboundCall) time.Time {
	if ch.Status.EndTime != nil {
		return ch.Status.EndTime.Time
	}
	return ch.CreationTimestamp.Time
}

// report writes counters and conditions.
func (r *CallCampaignReconciler) report(c *millisv1alpha1.CallCampaign, plan dispatch.Plan, problems []campaign.Problem, invalid map[string]string, dialed, dials int, now time.Time) {
	st := &c.Status
	n := plan.Counts
	st.Total, st.Pending, st.Active = int32(n.Total), int32(n.Pending), int32(n.Active+dialed)
	st.Pending -= int32(dialed)
	if int32(n.Skipped) > st.Skipped {
		r.Recorder.Eventf(c, nil, corev1.EventTypeNormal, "Skipped", "Plan",
			"%d recipients are on the do-not-call list and will not be called", int32(n.Skipped)-st.Skipped)
	}
	st.Succeeded, st.Failed, st.Skipped, st.Expired = int32(n.Succeeded), int32(n.Failed), int32(n.Skipped), int32(n.Expired)
	st.Invalid = int32(n.Invalid + countInvalidProblems(problems))
	st.Duplicates = int32(countDuplicates(problems))
	st.Dials = int32(dials)
	st.Progress = fmt.Sprintf("%d/%d", n.Finished()-n.Invalid, n.Total-n.Invalid)
	metrics.SetCampaign(c.Namespace, c.Name, []int64{int64(st.Total), int64(st.Pending), int64(st.Active),
		int64(st.Succeeded), int64(st.Failed), int64(st.Skipped), int64(st.Expired), int64(st.Invalid)})
	st.Problems = problemSample(problems, invalid)
	if plan.NextWindow.IsZero() {
		st.NextWindowTime = nil
	} else {
		t := metav1.NewTime(plan.NextWindow)
		st.NextWindowTime = &t
	}
	r.condition(c, millisv1alpha1.ConditionFailed, metav1.ConditionFalse, "NoFailure", "the campaign can run")

	if c.Spec.Suspend {
		r.condition(c, millisv1alpha1.ConditionSuspended, metav1.ConditionTrue, millisv1alpha1.ReasonSuspended, "no new calls start; calls in flight go on")
	} else {
		r.condition(c, millisv1alpha1.ConditionSuspended, metav1.ConditionFalse, "Resumed", "not suspended")
	}
	switch {
	case plan.Done && dialed == 0:
		reason, msg := millisv1alpha1.ReasonAllFinished, "every recipient has finished"
		if n.Expired > 0 {
			reason, msg = millisv1alpha1.ReasonDeadline, fmt.Sprintf("the deadline passed; %d recipients expired", n.Expired)
		}
		if n.Total == 0 {
			reason, msg = millisv1alpha1.ReasonNoRecipients, "no valid recipients"
		}
		if st.CompletionTime == nil {
			t := metav1.NewTime(now)
			st.CompletionTime = &t
			r.Recorder.Eventf(c, nil, corev1.EventTypeNormal, reason, "Complete",
				"%s: %d succeeded, %d failed, %d skipped, %d expired, %d invalid, %d dials",
				msg, n.Succeeded, n.Failed, n.Skipped, n.Expired, st.Invalid, st.Dials)
		}
		r.condition(c, millisv1alpha1.ConditionComplete, metav1.ConditionTrue, reason, msg)
		r.condition(c, millisv1alpha1.ConditionRunning, metav1.ConditionFalse, reason, msg)
	case c.Spec.Suspend:
		r.condition(c, millisv1alpha1.ConditionComplete, metav1.ConditionFalse, millisv1alpha1.ReasonSuspended, "suspended")
		r.condition(c, millisv1alpha1.ConditionRunning, metav1.ConditionFalse, millisv1alpha1.ReasonSuspended, "suspended")
	default:
		st.CompletionTime = nil
		r.condition(c, millisv1alpha1.ConditionComplete, metav1.ConditionFalse, "InProgress", st.Progress+" finished")
		reason, msg := millisv1alpha1.ReasonDialing, fmt.Sprintf("%d calls in flight", st.Active)
		if st.Active == 0 && plan.Eligible == 0 {
			reason, msg = millisv1alpha1.ReasonWaitingForWindow, "waiting for a calling window, a retry backoff or the start time"
			if st.NextWindowTime != nil {
				msg = "next calling window opens at " + st.NextWindowTime.UTC().Format(time.RFC3339)
			}
		}
		r.condition(c, millisv1alpha1.ConditionRunning, metav1.ConditionTrue, reason, msg)
	}
}

// condition sets a condition; a campaign that starts waiting on something
// outside it (a ConfigMap, an Agent, a bad spec) also gets a Warning event.
func (r *CallCampaignReconciler) condition(c *millisv1alpha1.CallCampaign, typ string, status metav1.ConditionStatus, reason, msg string) {
	prev := meta.FindStatusCondition(c.Status.Conditions, typ)
	changed := prev == nil || prev.Reason != reason || prev.Status != status
	setCondition(&c.Status.Conditions, c.Generation, typ, status, reason, msg)
	if changed && waitingReasons[reason] {
		r.Recorder.Eventf(c, nil, corev1.EventTypeWarning, reason, "Run", msg)
	}
}

var waitingReasons = map[string]bool{
	millisv1alpha1.ReasonSourceNotFound: true, millisv1alpha1.ReasonAgentNotReady: true,
	millisv1alpha1.ReasonInvalidSpec: true, millisv1alpha1.ReasonAccountNotReady: true,
	millisv1alpha1.ReasonAgentNotFound: true,
}

func countInvalidProblems(problems []campaign.Problem) int {
	n := 0
	for _, p := range problems {
		if !isDuplicate(p) {
			n++
		}
	}
	return n
}

func countDuplicates(problems []campaign.Problem) int {
	return len(problems) - countInvalidProblems(problems)
}

func isDuplicate(p campaign.Problem) bool {
	return len(p.Reason) > 12 && p.Reason[:12] == "duplicate of"
}

// problemSample keeps the first problems for status; all are in the export.
func problemSample(problems []campaign.Problem, invalid map[string]string) []millisv1alpha1.RecipientProblem {
	var out []millisv1alpha1.RecipientProblem
	for _, p := range problems {
		if len(out) == problemsInView {
			return out
		}
		out = append(out, millisv1alpha1.RecipientProblem{Source: p.Source, Row: int32(p.Row), Phone: p.Phone, Reason: p.Reason})
	}
	phones := make([]string, 0, len(invalid))
	for p := range invalid {
		phones = append(phones, p)
	}
	sort.Strings(phones)
	for _, p := range phones {
		if len(out) == problemsInView {
			break
		}
		out = append(out, millisv1alpha1.RecipientProblem{Source: "variables", Phone: p, Reason: invalid[p]})
	}
	return out
}

// SetupWithManager registers the reconciler. Children wake their campaign
// on every status change, so a finished call frees its slot at once.
func (r *CallCampaignReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager, workers int) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &millisv1alpha1.CallCampaign{}, IndexCampaignConfigMaps, func(o client.Object) []string {
		c := o.(*millisv1alpha1.CallCampaign)
		var names []string
		for _, s := range append(append([]millisv1alpha1.RecipientSource{}, c.Spec.RecipientsFrom...), c.Spec.DoNotCall...) {
			names = append(names, s.ConfigMapKeyRef.Name)
		}
		return names
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &millisv1alpha1.CallCampaign{}, IndexCampaignAgentRef, func(o client.Object) []string {
		if ref := o.(*millisv1alpha1.CallCampaign).Spec.AgentRef; ref != nil {
			return []string{ref.Name}
		}
		return nil
	}); err != nil {
		return err
	}
	byField := func(field string) handler.MapFunc {
		return func(ctx context.Context, obj client.Object) []reconcile.Request {
			var list millisv1alpha1.CallCampaignList
			if err := r.List(ctx, &list, client.InNamespace(obj.GetNamespace()), client.MatchingFields{field: obj.GetName()}); err != nil {
				return nil
			}
			reqs := make([]reconcile.Request, 0, len(list.Items))
			for i := range list.Items {
				reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
			}
			return reqs
		}
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&millisv1alpha1.CallCampaign{}).
		Owns(&millisv1alpha1.OutboundCall{}, builder.WithPredicates(predicate.ResourceVersionChangedPredicate{})).
		Watches(configMapMeta(), handler.EnqueueRequestsFromMapFunc(byField(IndexCampaignConfigMaps)), builder.OnlyMetadata).
		Watches(&millisv1alpha1.Agent{}, handler.EnqueueRequestsFromMapFunc(byField(IndexCampaignAgentRef))).
		WithOptions(controller.Options{MaxConcurrentReconciles: workers, RateLimiter: fastRateLimiter()}).
		Named("callcampaign").
		Complete(r)
}
