package controllers_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	millisv1alpha1 "github.com/callops/millis-operator/api/v1alpha1"
	"github.com/callops/millis-operator/internal/argocd"
)

// These tests run the Argo CD health checks of config/argocd against the
// status the real reconcilers write, not against hand-made testdata.

var healthScripts = sync.OnceValues(func() (map[string][]byte, error) {
	checks, err := argocd.Load(filepath.Join("..", "config", "argocd"))
	if err != nil {
		return nil, err
	}
	scripts := map[string][]byte{}
	for _, c := range checks {
		scripts[c.Kind] = c.Script
	}
	return scripts, nil
})

// liveArgoHealth reads obj from the API server and runs its kind's health.lua
// on it, converted as Argo CD sees it.
func liveArgoHealth(g Gomega, obj client.Object) argocd.Result {
	g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)).To(Succeed())
	return argoHealth(g, obj)
}

func argoHealth(g Gomega, obj client.Object) argocd.Result {
	gvk, err := apiutil.GVKForObject(obj, k8s.Scheme())
	g.Expect(err).NotTo(HaveOccurred())
	scripts, err := healthScripts()
	g.Expect(err).NotTo(HaveOccurred())
	script, ok := scripts[gvk.Kind]
	g.Expect(ok).To(BeTrue(), "no health check for %s", gvk.Kind)
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	g.Expect(err).NotTo(HaveOccurred())
	u["apiVersion"], u["kind"] = gvk.GroupVersion().String(), gvk.Kind
	res, err := argocd.Health(script, u)
	g.Expect(err).NotTo(HaveOccurred())
	return res
}

// waitArgoHealth waits until obj's health has the status, and returns the object
// as it was then, with its health.
func waitArgoHealth[T client.Object](g Gomega, obj T, status argocd.Status) (T, argocd.Result) {
	var got argocd.Result
	g.Eventually(func(g Gomega) {
		got = liveArgoHealth(g, obj)
		g.Expect(got.Status).To(Equal(status), "health %+v", got)
	}, timeout, 100*time.Millisecond).Should(Succeed())
	return obj, got
}

// describedCondition is how the checks quote a condition: "<reason>: <message>".
func describedCondition(g Gomega, conds []metav1.Condition, typ string) string {
	c := meta.FindStatusCondition(conds, typ)
	g.Expect(c).NotTo(BeNil(), "no %s condition in %+v", typ, conds)
	return fmt.Sprintf("%s: %s", c.Reason, c.Message)
}

func TestArgoHealthMillisAccount(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, g)

	// As created, before the operator looked at it.
	created := createAccount(t, g, ns)
	g.Expect(argoHealth(g, created)).To(Equal(argocd.Result{Status: argocd.StatusProgressing,
		Message: "Waiting for the operator to verify generation 1"}))

	acct, res := waitArgoHealth(g, created, argocd.StatusHealthy)
	g.Expect(meta.IsStatusConditionTrue(acct.Status.Conditions, millisv1alpha1.ConditionReady)).To(BeTrue())
	g.Expect(res.Message).To(Equal(describedCondition(g, acct.Status.Conditions, millisv1alpha1.ConditionReady)))
	g.Expect(res.Message).To(HavePrefix(millisv1alpha1.ReasonVerified + ": "))

	// A key Millis rejects, and a Secret that does not exist: both Degraded.
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "bad-key", Namespace: ns},
		StringData: map[string]string{"apiKey": "not-a-millis-key"}})).To(Succeed())
	cases := []struct {
		name, secret, reason string
	}{
		{"bad-key", "bad-key", millisv1alpha1.ReasonInvalidCredentials},
		{"no-secret", "absent", millisv1alpha1.ReasonSecretNotFound},
	}
	for _, c := range cases {
		broken := createAccount(t, g, ns, func(a *millisv1alpha1.MillisAccount) {
			a.Name = c.name
			a.Spec.APIKeySecretRef.Name = c.secret
			a.Spec.Webhook = nil
		})
		acct, res := waitArgoHealth(g, broken, argocd.StatusDegraded)
		g.Expect(meta.FindStatusCondition(acct.Status.Conditions, millisv1alpha1.ConditionReady).Reason).To(Equal(c.reason))
		g.Expect(res.Message).To(Equal(describedCondition(g, acct.Status.Conditions, millisv1alpha1.ConditionReady)))
		g.Expect(res.Message).NotTo(ContainSubstring("not-a-millis-key"))
	}
}

func TestArgoHealthAgent(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, g)
	createAccount(t, g, ns)

	ready := newAgent(ns, "support")
	g.Expect(k8s.Create(ctx, ready)).To(Succeed())
	agent, res := waitArgoHealth(g, ready, argocd.StatusHealthy)
	g.Expect(agent.Status.AgentID).NotTo(BeEmpty())
	g.Expect(res.Message).To(Equal(describedCondition(g, agent.Status.Conditions, millisv1alpha1.ConditionSynced)))

	// Millis rejects the config: the operator waits for a spec change.
	rejected := newAgent(ns, "rejected")
	rejected.Spec.Config.Voice.Provider = "acme-voices"
	g.Expect(k8s.Create(ctx, rejected)).To(Succeed())
	agent, res = waitArgoHealth(g, rejected, argocd.StatusDegraded)
	g.Expect(syncedReason(agent)).To(Equal(millisv1alpha1.ReasonTerminal))
	g.Expect(res.Message).To(Equal(describedCondition(g, agent.Status.Conditions, millisv1alpha1.ConditionSynced)))

	// An adopted agent that does not exist at Millis.
	ghost := &millisv1alpha1.Agent{ObjectMeta: metav1.ObjectMeta{Name: "ghost", Namespace: ns},
		Spec: millisv1alpha1.AgentSpec{ExternalID: "-NoSuchAgent000000000", ManagementPolicy: millisv1alpha1.ManagementObserveOnly}}
	g.Expect(k8s.Create(ctx, ghost)).To(Succeed())
	agent, res = waitArgoHealth(g, ghost, argocd.StatusDegraded)
	g.Expect(syncedReason(agent)).To(Equal(millisv1alpha1.ReasonExternalNotFound))
	g.Expect(res.Message).To(ContainSubstring("-NoSuchAgent000000000"))

	// Waiting for an account whose key Millis rejects: Progressing here,
	// Degraded on the account.
	waitingNS := newNamespace(t, g)
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "bad-key", Namespace: waitingNS},
		StringData: map[string]string{"apiKey": "not-a-millis-key"}})).To(Succeed())
	createAccount(t, g, waitingNS, func(a *millisv1alpha1.MillisAccount) { a.Spec.APIKeySecretRef.Name = "bad-key" })
	waiting := newAgent(waitingNS, "waiting")
	g.Expect(k8s.Create(ctx, waiting)).To(Succeed())
	g.Eventually(func(g Gomega) {
		a := getAgent(g, waiting)
		g.Expect(syncedReason(a)).To(Equal(millisv1alpha1.ReasonAccountNotReady))
		res := argoHealth(g, a)
		g.Expect(res.Status).To(Equal(argocd.StatusProgressing))
		g.Expect(res.Message).To(Equal(describedCondition(g, a.Status.Conditions, millisv1alpha1.ConditionSynced)))
		g.Expect(res.Message).To(ContainSubstring(millisv1alpha1.ReasonInvalidCredentials))
	}, timeout).Should(Succeed())
	g.Consistently(func(g Gomega) argocd.Status { return liveArgoHealth(g, waiting).Status }, time.Second).Should(Equal(argocd.StatusProgressing))
}

func TestArgoHealthOutboundCall(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, g)
	createAccount(t, g, ns)
	vars := `{"userName":"Ana","company":"Acme"}`

	completed := newCall(ns, "completed", uniquePhone("10"), vars)
	busy := newCall(ns, "busy", uniquePhone("91"), vars)
	rejected := newCall(ns, "rejected", uniquePhone("10"), vars)
	rejected.Spec.FromPhone = "+15559999999" // not a number of the account
	missingVar := newCall(ns, "missing-var", uniquePhone("10"), `{"userName":"Ana"}`)
	talking := newCall(ns, "talking", uniquePhone("98"), vars) // stays in progress
	talking.Spec.TerminateOnDelete = true
	for _, c := range []*millisv1alpha1.OutboundCall{completed, busy, rejected, missingVar, talking} {
		g.Expect(k8s.Create(ctx, c)).To(Succeed())
	}

	call, res := waitArgoHealth(g, completed, argocd.StatusHealthy)
	g.Expect(call.Status.Phase).To(Equal(millisv1alpha1.CallSucceeded))
	g.Expect(res.Message).To(Equal(describedCondition(g, call.Status.Conditions, millisv1alpha1.ConditionComplete)))

	call, res = waitArgoHealth(g, busy, argocd.StatusDegraded)
	g.Expect(call.Status.Phase).To(Equal(millisv1alpha1.CallFailed))
	g.Expect(call.Status.CallStatus).To(Equal("busy"))
	g.Expect(res.Message).To(Equal(describedCondition(g, call.Status.Conditions, millisv1alpha1.ConditionFailed)))

	call, res = waitArgoHealth(g, rejected, argocd.StatusDegraded)
	g.Expect(call.Status.Phase).To(Equal(millisv1alpha1.CallFailed))
	g.Expect(dialedReason(call)).To(Equal(millisv1alpha1.ReasonMillisRejected))
	g.Expect(res.Message).To(Equal(describedCondition(g, call.Status.Conditions, millisv1alpha1.ConditionFailed)))

	// Pending on a template variable the metadata lacks: only a spec change helps.
	call, res = waitArgoHealth(g, missingVar, argocd.StatusDegraded)
	g.Expect(call.Status.Phase).To(Equal(millisv1alpha1.CallPending))
	g.Expect(dialedReason(call)).To(Equal(millisv1alpha1.ReasonTemplateError))
	g.Expect(res.Message).To(Equal(describedCondition(g, call.Status.Conditions, millisv1alpha1.ConditionDialed)))

	g.Eventually(func(g Gomega) {
		call = getCall(g, talking)
		g.Expect(call.Status.Phase).To(Equal(millisv1alpha1.CallInProgress))
		res = argoHealth(g, call)
		g.Expect(res.Status).To(Equal(argocd.StatusProgressing))
		g.Expect(res.Message).To(Equal(describedCondition(g, call.Status.Conditions, millisv1alpha1.ConditionDialed)))
	}, timeout).Should(Succeed())
	g.Expect(k8s.Delete(ctx, talking)).To(Succeed()) // hangs up

	// No account at all in its namespace: Pending, Progressing.
	lonely := newCall(newNamespace(t, g), "lonely", uniquePhone("10"), vars)
	g.Expect(k8s.Create(ctx, lonely)).To(Succeed())
	g.Eventually(func(g Gomega) {
		call := getCall(g, lonely)
		g.Expect(dialedReason(call)).To(Equal(millisv1alpha1.ReasonAccountNotFound))
		g.Expect(argoHealth(g, call)).To(Equal(argocd.Result{Status: argocd.StatusProgressing,
			Message: describedCondition(g, call.Status.Conditions, millisv1alpha1.ConditionDialed)}))
	}, timeout).Should(Succeed())
}

func TestArgoHealthCallCampaign(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, g)
	createAccount(t, g, ns)

	// Running: its one recipient stays on the line until hung up.
	running := newCampaign(ns, "running", uniquePhone("98"))
	g.Expect(k8s.Create(ctx, running)).To(Succeed())
	var camp *millisv1alpha1.CallCampaign
	g.Eventually(func(g Gomega) {
		camp = getCampaign(g, running)
		g.Expect(camp.Status.Active).To(BeEquivalentTo(1))
		g.Expect(meta.IsStatusConditionTrue(camp.Status.Conditions, millisv1alpha1.ConditionRunning)).To(BeTrue())
		g.Expect(argoHealth(g, camp)).To(Equal(argocd.Result{Status: argocd.StatusProgressing,
			Message: describedCondition(g, camp.Status.Conditions, millisv1alpha1.ConditionRunning)}))
	}, timeout).Should(Succeed())

	// Hang up the call: every recipient has finished, the campaign is Healthy.
	var children millisv1alpha1.OutboundCallList
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.List(ctx, &children, client.InNamespace(ns), client.MatchingLabels{millisv1alpha1.LabelCampaign: "running"})).To(Succeed())
		g.Expect(children.Items).To(HaveLen(1))
		g.Expect(children.Items[0].Status.SessionID).NotTo(BeEmpty())
	}, timeout).Should(Succeed())
	g.Expect(millisClient(g).TerminateSession(ctx, children.Items[0].Status.SessionID, "")).To(Succeed())
	camp, res := waitArgoHealth(g, running, argocd.StatusHealthy)
	g.Expect(meta.IsStatusConditionTrue(camp.Status.Conditions, millisv1alpha1.ConditionComplete)).To(BeTrue())
	g.Expect(res.Message).To(Equal(describedCondition(g, camp.Status.Conditions, millisv1alpha1.ConditionComplete)))

	// Suspended before it dialed anyone.
	to := uniquePhone("10")
	suspended := newCampaign(ns, "suspended", to)
	suspended.Spec.Suspend = true
	g.Expect(k8s.Create(ctx, suspended)).To(Succeed())
	g.Eventually(func(g Gomega) {
		camp = getCampaign(g, suspended)
		g.Expect(meta.IsStatusConditionTrue(camp.Status.Conditions, millisv1alpha1.ConditionSuspended)).To(BeTrue())
		g.Expect(argoHealth(g, camp)).To(Equal(argocd.Result{Status: argocd.StatusSuspended,
			Message: describedCondition(g, camp.Status.Conditions, millisv1alpha1.ConditionSuspended)}))
	}, timeout).Should(Succeed())
	g.Expect(sim.DialCount(to)).To(BeZero())

	// Waiting for the start time: Running, Progressing.
	later := newCampaign(ns, "later", uniquePhone("10"))
	later.Spec.Schedule.StartTime = time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	g.Expect(k8s.Create(ctx, later)).To(Succeed())
	g.Eventually(func(g Gomega) {
		camp := getCampaign(g, later)
		g.Expect(meta.FindStatusCondition(camp.Status.Conditions, millisv1alpha1.ConditionRunning)).NotTo(BeNil())
		g.Expect(meta.FindStatusCondition(camp.Status.Conditions, millisv1alpha1.ConditionRunning).Reason).To(Equal(millisv1alpha1.ReasonWaitingForWindow))
		g.Expect(argoHealth(g, camp)).To(Equal(argocd.Result{Status: argocd.StatusProgressing,
			Message: describedCondition(g, camp.Status.Conditions, millisv1alpha1.ConditionRunning)}))
	}, timeout).Should(Succeed())

	// A time zone admission cannot check: Failed, Degraded.
	badTZ := newCampaign(ns, "bad-tz", uniquePhone("10"))
	badTZ.Spec.Schedule.TimeZone = "Mars/Olympus"
	g.Expect(k8s.Create(ctx, badTZ)).To(Succeed())
	camp, res = waitArgoHealth(g, badTZ, argocd.StatusDegraded)
	g.Expect(meta.IsStatusConditionTrue(camp.Status.Conditions, millisv1alpha1.ConditionFailed)).To(BeTrue())
	g.Expect(res.Message).To(Equal(describedCondition(g, camp.Status.Conditions, millisv1alpha1.ConditionFailed)))
	g.Expect(res.Message).To(ContainSubstring("Mars/Olympus"))

	// A recipients ConfigMap that does not exist: Degraded until it does.
	noList := newCampaign(ns, "no-list")
	noList.Spec.RecipientsFrom = []millisv1alpha1.RecipientSource{{ConfigMapKeyRef: millisv1alpha1.ConfigMapKeySelector{Name: "absent", Key: "list.csv"}}}
	g.Expect(k8s.Create(ctx, noList)).To(Succeed())
	camp, res = waitArgoHealth(g, noList, argocd.StatusDegraded)
	g.Expect(meta.FindStatusCondition(camp.Status.Conditions, millisv1alpha1.ConditionRunning).Reason).To(Equal(millisv1alpha1.ReasonSourceNotFound))
	g.Expect(res.Message).To(Equal(describedCondition(g, camp.Status.Conditions, millisv1alpha1.ConditionRunning)))
}
