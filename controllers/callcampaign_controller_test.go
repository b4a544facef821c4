package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	millisv1alpha1 "github.com/callops/millis-operator/api/v1alpha1"
	"github.com/callops/millis-operator/controllers"
	"github.com/callops/millis-operator/internal/dispatch"
)

func int32p(v int32) *int32 { return &v }

// anyTimeWindows makes a campaign callable at any hour, so that tests that
// are not about windows do not depend on when they run.
var anyTimeWindows = &millisv1alpha1.CampaignSchedule{CallingWindows: []millisv1alpha1.CallingWindow{{Start: "00:00", End: "24:00"}}}

func newCampaign(ns, name string, phones ...string) *millisv1alpha1.CallCampaign {
	c := &millisv1alpha1.CallCampaign{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: millisv1alpha1.CallCampaignSpec{
			AgentID:        agentID,
			FromPhone:      fromPhone,
			Metadata:       &apiextensionsv1.JSON{Raw: []byte(`{"company":"Acme","userName":"friend"}`)},
			MaxConcurrency: int32p(5),
			Schedule:       anyTimeWindows.DeepCopy(),
		},
	}
	for _, p := range phones {
		c.Spec.Recipients = append(c.Spec.Recipients, millisv1alpha1.CampaignRecipient{Phone: millisv1alpha1.PhoneNumber(p)})
	}
	return c
}

func getCampaign(g Gomega, c *millisv1alpha1.CallCampaign) *millisv1alpha1.CallCampaign {
	var out millisv1alpha1.CallCampaign
	g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(c), &out)).To(Succeed())
	return &out
}

func waitCampaignComplete(g Gomega, c *millisv1alpha1.CallCampaign) *millisv1alpha1.CallCampaign {
	var got *millisv1alpha1.CallCampaign
	g.Eventually(func(g Gomega) {
		got = getCampaign(g, c)
		g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, millisv1alpha1.ConditionComplete)).To(BeTrue(),
			"progress %s, conditions %+v", got.Status.Progress, got.Status.Conditions)
	}, 60*time.Second, 200*time.Millisecond).Should(Succeed())
	return got
}

// results reads the campaign's export.
func results(g Gomega, c *millisv1alpha1.CallCampaign) map[string]dispatch.Row {
	got := getCampaign(g, c)
	out := map[string]dispatch.Row{}
	for _, name := range got.Status.Results {
		var cm corev1.ConfigMap
		g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: c.Namespace, Name: name}, &cm)).To(Succeed())
		rows, err := dispatch.DecodeCSV(cm.Data[controllers.ResultsKey])
		g.Expect(err).NotTo(HaveOccurred())
		for _, r := range rows {
			key := r.Phone
			if r.Outcome == dispatch.Invalid {
				key = fmt.Sprintf("%s#%d", r.Source, r.Line)
			}
			out[key] = r
		}
	}
	return out
}

func TestCampaignCallsEveryoneOnceAndRetries(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, g)
	createAccount(t, g, ns)
	ok1, ok2, busy, noAnswer, dnc := uniquePhone("10"), uniquePhone("10"), uniquePhone("91"), uniquePhone("92"), uniquePhone("10")
	g.Expect(k8s.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "list", Namespace: ns}, Data: map[string]string{
		"recipients.csv": "phone,timeZone,userName\n" + ok2 + ",America/New_York,Ana\n" + busy + ",,Bob\nnot-a-number,,Eve\n" + ok1 + ",,Dup\n" + noAnswer + ",Mars/Olympus,Zed\n",
	}})).To(Succeed())
	g.Expect(k8s.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "dnc", Namespace: ns},
		Data: map[string]string{"numbers.txt": "# never call\n" + dnc + "\n"}})).To(Succeed())

	c := newCampaign(ns, "renewal", ok1, dnc, noAnswer)
	c.Spec.RecipientsFrom = []millisv1alpha1.RecipientSource{{ConfigMapKeyRef: millisv1alpha1.ConfigMapKeySelector{Name: "list", Key: "recipients.csv"}}}
	c.Spec.DoNotCall = []millisv1alpha1.RecipientSource{{ConfigMapKeyRef: millisv1alpha1.ConfigMapKeySelector{Name: "dnc", Key: "numbers.txt"}}}
	c.Spec.Retry = &millisv1alpha1.RetrySpec{MaxAttempts: 2, Backoff: &metav1.Duration{Duration: time.Second},
		RetryOn: []millisv1alpha1.RetryableStatus{"busy", "no-answer"}}
	g.Expect(k8s.Create(ctx, c)).To(Succeed())

	got := waitCampaignComplete(g, c)
	// Recipients: ok1, dnc, noAnswer inline; ok2, busy from the CSV (ok1 again
	// is a duplicate; the bad number and the bad time zone are invalid).
	g.Expect(got.Status.Total).To(BeEquivalentTo(5))
	g.Expect(got.Status.Succeeded).To(BeEquivalentTo(2))
	g.Expect(got.Status.Failed).To(BeEquivalentTo(2))
	g.Expect(got.Status.Skipped).To(BeEquivalentTo(1))
	g.Expect(got.Status.Invalid).To(BeEquivalentTo(2))
	g.Expect(got.Status.Duplicates).To(BeEquivalentTo(1))
	g.Expect(got.Status.Progress).To(Equal("5/5"))
	g.Expect(got.Status.Dials).To(BeEquivalentTo(6), "2 answered once, busy and no-answer twice each")
	g.Expect(got.Status.CompletionTime).NotTo(BeNil())

	g.Expect(sim.DialCount(ok1)).To(Equal(1), "a duplicate is called once")
	g.Expect(sim.DialCount(ok2)).To(Equal(1))
	g.Expect(sim.DialCount(busy)).To(Equal(2), "busy is retried up to maxAttempts")
	g.Expect(sim.DialCount(noAnswer)).To(Equal(2))
	g.Expect(sim.DialCount(dnc)).To(BeZero(), "do-not-call numbers are never dialed")

	rows := results(g, c)
	g.Expect(rows[busy].Attempts).To(Equal(2))
	g.Expect(rows[busy].CallStatus).To(Equal("busy"))
	g.Expect(rows[busy].Outcome).To(Equal(dispatch.Failed))
	g.Expect(rows[ok2].SessionID).NotTo(BeEmpty())
	g.Expect(rows[ok2].Outcome).To(Equal(dispatch.Succeeded))
	g.Expect(rows[dnc].Outcome).To(Equal(dispatch.Skipped))
	bad := rows["configmap/list/recipients.csv#4"]
	g.Expect(bad.Reason).To(ContainSubstring("E.164"), "the bad row is reported with its source and line")
	g.Expect(rows["configmap/list/recipients.csv#6"].Reason).To(ContainSubstring("Mars/Olympus"))
	g.Expect(rows["configmap/list/recipients.csv#5"].Reason).To(ContainSubstring("duplicate"))

	// The campaign reports its start and end as events.
	g.Eventually(func(g Gomega) []string {
		var evs eventsv1.EventList
		g.Expect(k8s.List(ctx, &evs, client.InNamespace(ns))).To(Succeed())
		var reasons []string
		for _, e := range evs.Items {
			if e.Regarding.Name == "renewal" {
				reasons = append(reasons, e.Reason)
			}
		}
		return reasons
	}, timeout).Should(ContainElements("Started", millisv1alpha1.ReasonAllFinished))

	// Children carry the campaign label and an owner reference.
	var calls millisv1alpha1.OutboundCallList
	g.Expect(k8s.List(ctx, &calls, client.InNamespace(ns), client.MatchingLabels{millisv1alpha1.LabelCampaign: "renewal"})).To(Succeed())
	g.Expect(calls.Items).To(HaveLen(6))
	for _, ch := range calls.Items {
		g.Expect(metav1.IsControlledBy(&ch, got)).To(BeTrue())
		g.Expect(ch.Name).NotTo(ContainSubstring(strings.TrimPrefix(string(ch.Spec.ToPhone), "+")), "names never carry the number")
	}
}

func TestCampaignRespectsConcurrency(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, g)
	createAccount(t, g, ns)
	var phones []string
	for i := 0; i < 12; i++ {
		phones = append(phones, uniquePhone("10"))
	}
	c := newCampaign(ns, "limited", phones...)
	c.Spec.MaxConcurrency = int32p(3)
	g.Expect(k8s.Create(ctx, c)).To(Succeed())

	peak := 0
	g.Eventually(func(g Gomega) {
		var calls millisv1alpha1.OutboundCallList
		g.Expect(k8s.List(ctx, &calls, client.InNamespace(ns))).To(Succeed())
		live := 0
		for _, ch := range calls.Items {
			if !ch.Status.Phase.IsFinished() {
				live++
			}
		}
		peak = max(peak, live)
		got := getCampaign(g, c)
		g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, millisv1alpha1.ConditionComplete)).To(BeTrue())
	}, 60*time.Second, 50*time.Millisecond).Should(Succeed())
	g.Expect(peak).To(BeNumerically("<=", 3), "maxConcurrency is never exceeded")
	g.Expect(peak).To(BeNumerically(">=", 2), "slots are used")
	for _, p := range phones {
		g.Expect(sim.DialCount(p)).To(Equal(1))
	}
}

func TestCampaignSuspendResumeAndAddedRecipients(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, g)
	createAccount(t, g, ns)
	first, second, added := uniquePhone("10"), uniquePhone("10"), uniquePhone("10")
	c := newCampaign(ns, "paused", first, second)
	c.Spec.Suspend = true
	g.Expect(k8s.Create(ctx, c)).To(Succeed())
	g.Eventually(func(g Gomega) {
		got := getCampaign(g, c)
		g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, millisv1alpha1.ConditionSuspended)).To(BeTrue())
		g.Expect(got.Status.Pending).To(BeEquivalentTo(2))
	}, timeout).Should(Succeed())
	g.Consistently(func() int { return sim.DialCount(first) + sim.DialCount(second) }, 2*time.Second).Should(BeZero())

	// Resume, and add a recipient while it runs.
	g.Eventually(func(g Gomega) {
		got := getCampaign(g, c)
		got.Spec.Suspend = false
		got.Spec.Recipients = append(got.Spec.Recipients, millisv1alpha1.CampaignRecipient{Phone: millisv1alpha1.PhoneNumber(added)})
		g.Expect(k8s.Update(ctx, got)).To(Succeed())
	}, timeout).Should(Succeed())
	got := waitCampaignComplete(g, c)
	g.Expect(got.Status.Succeeded).To(BeEquivalentTo(3))
	for _, p := range []string{first, second, added} {
		g.Expect(sim.DialCount(p)).To(Equal(1))
	}
}

func TestCampaignWaitsForItsWindow(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, g)
	createAccount(t, g, ns)
	defer campaignClock.jumpTo(time.Now())

	ny, err := time.LoadLocation("America/New_York")
	g.Expect(err).NotTo(HaveOccurred())
	// Saturday 2026-12-05 10:00 in New York: outside a weekday window.
	campaignClock.jumpTo(time.Date(2026, 12, 5, 10, 0, 0, 0, ny))
	to := uniquePhone("10")
	c := newCampaign(ns, "weekdays")
	c.Spec.Recipients = []millisv1alpha1.CampaignRecipient{{Phone: millisv1alpha1.PhoneNumber(to), TimeZone: "America/New_York"}}
	c.Spec.Schedule = &millisv1alpha1.CampaignSchedule{TimeZone: "America/Chicago", CallingWindows: []millisv1alpha1.CallingWindow{
		{Days: []millisv1alpha1.Weekday{"Mon", "Tue", "Wed", "Thu", "Fri"}, Start: "09:00", End: "20:00"}}}
	g.Expect(k8s.Create(ctx, c)).To(Succeed())

	monday9 := time.Date(2026, 12, 7, 9, 0, 0, 0, ny)
	g.Eventually(func(g Gomega) {
		got := getCampaign(g, c)
		g.Expect(got.Status.NextWindowTime).NotTo(BeNil())
		g.Expect(got.Status.NextWindowTime.Time.Equal(monday9)).To(BeTrue(), "next window %v", got.Status.NextWindowTime)
		g.Expect(meta.FindStatusCondition(got.Status.Conditions, millisv1alpha1.ConditionRunning).Reason).To(Equal(millisv1alpha1.ReasonWaitingForWindow))
	}, timeout).Should(Succeed())
	g.Consistently(func() int { return sim.DialCount(to) }, time.Second).Should(BeZero(), "never dial outside a window")

	// Monday 09:00:01 New York time: the window is open.
	campaignClock.jumpTo(monday9.Add(time.Second))
	g.Eventually(func(g Gomega) {
		var got millisv1alpha1.CallCampaign
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(c), &got)).To(Succeed())
		got.Annotations = map[string]string{"poke": "1"} // wake it; a real clock would have
		g.Expect(k8s.Update(ctx, &got)).To(Succeed())
	}, timeout).Should(Succeed())
	waitCampaignComplete(g, c)
	g.Expect(sim.DialCount(to)).To(Equal(1))
}

func TestCampaignDeadlineExpiresTheRest(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, g)
	createAccount(t, g, ns)
	to := uniquePhone("10")
	c := newCampaign(ns, "too-late", to)
	c.Spec.Schedule.Deadline = time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	g.Expect(k8s.Create(ctx, c)).To(Succeed())
	got := waitCampaignComplete(g, c)
	g.Expect(got.Status.Expired).To(BeEquivalentTo(1))
	g.Expect(meta.FindStatusCondition(got.Status.Conditions, millisv1alpha1.ConditionComplete).Reason).To(Equal(millisv1alpha1.ReasonDeadline))
	g.Expect(sim.DialCount(to)).To(BeZero())
}

func TestCampaignWaitsForConfigMapAndChecksVariables(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, g)
	createAccount(t, g, ns)
	withName, withoutName := uniquePhone("10"), uniquePhone("10")
	c := newCampaign(ns, "late-list")
	c.Spec.Metadata = &apiextensionsv1.JSON{Raw: []byte(`{"company":"Acme"}`)} // userName must come per recipient
	c.Spec.RecipientsFrom = []millisv1alpha1.RecipientSource{{ConfigMapKeyRef: millisv1alpha1.ConfigMapKeySelector{Name: "later", Key: "list.csv"}}}
	g.Expect(k8s.Create(ctx, c)).To(Succeed())
	g.Eventually(func(g Gomega) {
		cond := meta.FindStatusCondition(getCampaign(g, c).Status.Conditions, millisv1alpha1.ConditionRunning)
		g.Expect(cond).NotTo(BeNil())
		g.Expect(cond.Reason).To(Equal(millisv1alpha1.ReasonSourceNotFound))
	}, timeout).Should(Succeed())

	g.Expect(k8s.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "later", Namespace: ns},
		Data: map[string]string{"list.csv": "phone,userName\n" + withName + ",Ana\n" + withoutName + ",\n"}})).To(Succeed())
	got := waitCampaignComplete(g, c)
	g.Expect(got.Status.Succeeded).To(BeEquivalentTo(1))
	g.Expect(got.Status.Invalid).To(BeEquivalentTo(1))
	g.Expect(sim.DialCount(withoutName)).To(BeZero(), "a recipient missing a spoken variable is never dialed")
	g.Expect(results(g, c)["configmap/later/list.csv#3"].Reason).To(ContainSubstring("{userName}"))
}

func TestCampaignAdmission(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, g)
	ctx := context.Background()
	cases := []struct {
		reason, want string
		mutate       func(*millisv1alpha1.CallCampaign)
	}{
		{"empty recipients", "a campaign needs someone to call", func(c *millisv1alpha1.CallCampaign) { c.Spec.Recipients = nil }},
		{"maxConcurrency 0", "maxConcurrency", func(c *millisv1alpha1.CallCampaign) { c.Spec.MaxConcurrency = int32p(0) }},
		{"window end before start", "end must be after start", func(c *millisv1alpha1.CallCampaign) {
			c.Spec.Schedule.CallingWindows = []millisv1alpha1.CallingWindow{{Start: "20:00", End: "09:00"}}
		}},
		{"unknown day", "Mon", func(c *millisv1alpha1.CallCampaign) {
			c.Spec.Schedule.CallingWindows = []millisv1alpha1.CallingWindow{{Days: []millisv1alpha1.Weekday{"Funday"}, Start: "09:00", End: "10:00"}}
		}},
		{"deadline before start", "deadline must be after startTime", func(c *millisv1alpha1.CallCampaign) {
			c.Spec.Schedule.StartTime, c.Spec.Schedule.Deadline = "2026-12-05T00:00:00Z", "2026-12-01T09:00:00Z"
		}},
		{"unknown retryOn status", "retryOn", func(c *millisv1alpha1.CallCampaign) {
			c.Spec.Retry = &millisv1alpha1.RetrySpec{RetryOn: []millisv1alpha1.RetryableStatus{"sleepy"}}
		}},
	}
	for i, tc := range cases {
		c := newCampaign(ns, fmt.Sprintf("bad-%d", i), uniquePhone("10"))
		tc.mutate(c)
		err := k8s.Create(ctx, c)
		g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%s: got %v", tc.reason, err)
		g.Expect(err.Error()).To(ContainSubstring(tc.want), tc.reason)
	}

	// A duration the manager could not decode is refused before it is
	// stored (a stored one would break the whole kind's cache).
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(millisv1alpha1.GroupVersion.WithKind("CallCampaign"))
	u.SetNamespace(ns)
	u.SetName("bad-backoff")
	u.Object["spec"] = map[string]any{
		"agentID": agentID, "fromPhone": fromPhone,
		"recipients": []any{map[string]any{"phone": uniquePhone("10")}},
		"retry":      map[string]any{"backoff": "5 minutes"},
	}
	err := k8s.Create(ctx, u)
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "a backoff of 5 minutes: got %v", err)
	g.Expect(err.Error()).To(ContainSubstring("must be a duration such as 30s, 10m or 1h"))
	u.Object["spec"].(map[string]any)["retry"] = map[string]any{"backoff": "90m"}
	g.Expect(k8s.Create(ctx, u)).To(Succeed(), "a Go duration is accepted")

	// An unknown time zone cannot be checked at admission: a Failed condition.
	c := newCampaign(ns, "bad-tz", uniquePhone("10"))
	c.Spec.Schedule.TimeZone = "Mars/Olympus"
	g.Expect(k8s.Create(ctx, c)).To(Succeed())
	g.Eventually(func(g Gomega) {
		cond := meta.FindStatusCondition(getCampaign(g, c).Status.Conditions, millisv1alpha1.ConditionFailed)
		g.Expect(cond).NotTo(BeNil())
		g.Expect(cond.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(cond.Message).To(ContainSubstring("Mars/Olympus"))
	}, timeout).Should(Succeed())
}

func TestCampaignPrunesChildrenAndKeepsResults(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, g)
	createAccount(t, g, ns)
	phones := []string{uniquePhone("10"), uniquePhone("10"), uniquePhone("91")}
	c := newCampaign(ns, "pruned", phones...)
	c.Spec.ChildHistoryLimit = int32p(0)
	// With a rate limit, children count against it for a minute, so young
	// ones are kept; without one they go once their 5-second bucket is over.
	c.Spec.CallsPerMinute = 600
	g.Expect(k8s.Create(ctx, c)).To(Succeed())
	waitCampaignComplete(g, c)
	listChildren := func(g Gomega) []millisv1alpha1.OutboundCall {
		var calls millisv1alpha1.OutboundCallList
		g.Expect(k8s.List(ctx, &calls, client.InNamespace(ns), client.MatchingLabels{millisv1alpha1.LabelCampaign: "pruned"})).To(Succeed())
		return calls.Items
	}
	g.Expect(listChildren(g)).To(HaveLen(3), "young children are kept: they may still count against the rate window")

	// Three minutes later the children's bucket is old enough to prune.
	defer campaignClock.jumpTo(time.Now())
	campaignClock.jumpTo(time.Now().Add(3 * time.Minute))
	g.Eventually(func(g Gomega) []millisv1alpha1.OutboundCall {
		got := getCampaign(g, c)
		got.Annotations = map[string]string{"poke": time.Now().String()}
		g.Expect(k8s.Update(ctx, got)).To(Succeed())
		return listChildren(g)
	}, timeout, time.Second).Should(BeEmpty())

	// The outcomes outlive the children, and nobody is called again.
	got := getCampaign(g, c)
	g.Expect(got.Status.Succeeded).To(BeEquivalentTo(2))
	g.Expect(got.Status.Failed).To(BeEquivalentTo(1))
	g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, millisv1alpha1.ConditionComplete)).To(BeTrue())
	rows := results(g, c)
	g.Expect(rows[phones[0]].SessionID).NotTo(BeEmpty())
	g.Expect(rows[phones[2]].CallStatus).To(Equal("busy"))
	g.Consistently(func() []int {
		return []int{sim.DialCount(phones[0]), sim.DialCount(phones[1]), sim.DialCount(phones[2])}
	}, 2*time.Second).Should(Equal([]int{1, 1, 1}))
}
