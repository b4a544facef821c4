package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	millisv1alpha1 "github.com/callops/millis-operator/api/v1alpha1"
	"github.com/callops/millis-operator/internal/millis"
)

// millisClient talks to the simulator directly, as the dashboard would.
func millisClient(g Gomega) millis.Interface {
	c, err := millis.New(simURL, apiKey)
	g.Expect(err).NotTo(HaveOccurred())
	return c
}

func newAgent(ns, name string) *millisv1alpha1.Agent {
	return &millisv1alpha1.Agent{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: millisv1alpha1.AgentSpec{
			DisplayName: "Support agent " + ns,
			Config: &millisv1alpha1.AgentConfig{
				Prompt:       "You help customers of {company}. The caller is {userName}.",
				FirstMessage: "Hi {userName}, this is Acme support.",
				Voice:        millisv1alpha1.Voice{Provider: "elevenlabs", VoiceID: "21m00Tcm4TlvDq8ikWAM"},
				Language:     "en-US",
				LLM:          &millisv1alpha1.LLM{Model: "gpt-4o-mini", Temperature: "0.2"},
			},
			ExtraConfig:        &apiextensionsv1.JSON{Raw: []byte(`{"flow":{"voicemail":{"action":"hangup"}}}`)},
			DriftCheckInterval: &metav1.Duration{Duration: time.Second},
		},
	}
}

func getAgent(g Gomega, a *millisv1alpha1.Agent) *millisv1alpha1.Agent {
	var out millisv1alpha1.Agent
	g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(a), &out)).To(Succeed())
	return &out
}

func waitAgentReady(g Gomega, a *millisv1alpha1.Agent) *millisv1alpha1.Agent {
	var got *millisv1alpha1.Agent
	g.Eventually(func(g Gomega) {
		got = getAgent(g, a)
		g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, millisv1alpha1.ConditionReady)).To(BeTrue(), "%+v", got.Status.Conditions)
		g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, millisv1alpha1.ConditionSynced)).To(BeTrue(), "%+v", got.Status.Conditions)
	}, timeout, 100*time.Millisecond).Should(Succeed())
	return got
}

// updateAgent applies mutate to the latest Agent, retrying conflicts with
// the controller's own writes.
func updateAgent(g Gomega, a *millisv1alpha1.Agent, mutate func(*millisv1alpha1.Agent)) {
	g.Eventually(func(g Gomega) {
		got := getAgent(g, a)
		mutate(got)
		g.Expect(k8s.Update(context.Background(), got)).To(Succeed())
	}, timeout).Should(Succeed())
}

func syncedReason(a *millisv1alpha1.Agent) string {
	if c := meta.FindStatusCondition(a.Status.Conditions, millisv1alpha1.ConditionSynced); c != nil {
		return c.Reason
	}
	return ""
}

func millisConfig(g Gomega, id string) map[string]any {
	agent, err := millisClient(g).GetAgent(context.Background(), id)
	g.Expect(err).NotTo(HaveOccurred())
	var cfg map[string]any
	g.Expect(json.Unmarshal(agent.Config, &cfg)).To(Succeed())
	return cfg
}

func TestAgentLifecycle(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, g)
	createAccount(t, g, ns)
	agent := newAgent(ns, "support")
	g.Expect(k8s.Create(ctx, agent)).To(Succeed())

	// Create: the ID is in status and in the annotation that survives a lost status.
	got := waitAgentReady(g, agent)
	id := got.Status.AgentID
	g.Expect(id).NotTo(BeEmpty())
	g.Expect(got.Annotations).To(HaveKeyWithValue(millisv1alpha1.AnnotationExternalID, id))
	g.Expect(got.Annotations).NotTo(HaveKey(millisv1alpha1.AnnotationCreatePending))
	g.Expect(got.Status.Variables).To(Equal([]string{"company", "userName"}))
	cfg := millisConfig(g, id)
	g.Expect(cfg).To(HaveKeyWithValue("prompt", agent.Spec.Config.Prompt))
	g.Expect(cfg).To(HaveKeyWithValue("first_message", agent.Spec.Config.FirstMessage))
	g.Expect(cfg["voice"]).To(HaveKeyWithValue("voice_id", "21m00Tcm4TlvDq8ikWAM"))
	g.Expect(cfg["llm"]).To(HaveKeyWithValue("temperature", 0.2))
	g.Expect(cfg["flow"]).To(HaveKeyWithValue("voicemail", HaveKeyWithValue("action", "hangup")), "extraConfig passes through")
	g.Expect(cfg["session_data_webhook"]).To(HaveKeyWithValue("url", ContainSubstring("/millis/"+ns+"/default/end-of-call")))

	// Update on spec change.
	updateAgent(g, agent, func(a *millisv1alpha1.Agent) { a.Spec.Config.FirstMessage = "Hello {userName}!" })
	g.Eventually(func(g Gomega) {
		g.Expect(millisConfig(g, id)).To(HaveKeyWithValue("first_message", "Hello {userName}!"))
	}, timeout).Should(Succeed())

	// Drift made in the dashboard is repaired; fields the operator does not
	// model (custom_vocabulary) survive.
	mc := millisClient(g)
	g.Expect(mc.UpdateAgent(ctx, id, agent.Spec.DisplayName, json.RawMessage(`{"prompt":"hacked","custom_vocabulary":{"keywords":{"Acme":5}}}`))).To(Succeed())
	g.Eventually(func(g Gomega) { g.Expect(millisConfig(g, id)).To(HaveKeyWithValue("prompt", agent.Spec.Config.Prompt)) }, timeout).Should(Succeed())
	g.Expect(millisConfig(g, id)).To(HaveKey("custom_vocabulary"))
	g.Eventually(func(g Gomega) { g.Expect(getAgent(g, agent).Status.Drift).To(BeEmpty()) }, timeout).Should(Succeed())

	// Delete removes the Millis agent.
	g.Expect(k8s.Delete(ctx, agent)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(agent), &millisv1alpha1.Agent{}))
	}, timeout).Should(BeTrue())
	_, err := mc.GetAgent(ctx, id)
	g.Expect(millis.IsNotFound(err)).To(BeTrue(), "got %v", err)
}

func TestAgentOrphanKeepsMillisAgent(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, g)
	createAccount(t, g, ns)
	agent := newAgent(ns, "orphan")
	agent.Spec.DeletionPolicy = millisv1alpha1.DeletionOrphan
	g.Expect(k8s.Create(ctx, agent)).To(Succeed())
	id := waitAgentReady(g, agent).Status.AgentID
	g.Expect(k8s.Delete(ctx, agent)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(agent), &millisv1alpha1.Agent{}))
	}, timeout).Should(BeTrue())
	_, err := millisClient(g).GetAgent(ctx, id)
	g.Expect(err).NotTo(HaveOccurred())
}

func TestAgentAdoptionAndObserveOnly(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, g)
	createAccount(t, g, ns)
	mc := millisClient(g)
	made, err := mc.CreateAgent(ctx, "made in the dashboard "+ns, json.RawMessage(`{"prompt":"Dashboard prompt for {userName}","voice":{"provider":"openai","voice_id":"alloy"}}`))
	g.Expect(err).NotTo(HaveOccurred())

	// The contract's legacy sample: only externalID and ObserveOnly.
	legacy := &millisv1alpha1.Agent{ObjectMeta: metav1.ObjectMeta{Name: "legacy", Namespace: ns},
		Spec: millisv1alpha1.AgentSpec{ExternalID: made.ID, ManagementPolicy: millisv1alpha1.ManagementObserveOnly}}
	g.Expect(k8s.Create(ctx, legacy)).To(Succeed())
	got := waitAgentReady(g, legacy)
	g.Expect(got.Status.AgentID).To(Equal(made.ID))
	g.Expect(got.Finalizers).To(BeEmpty(), "nothing to clean up under ObserveOnly")
	g.Expect(millisConfig(g, made.ID)).NotTo(HaveKey("session_data_webhook"), "ObserveOnly never writes")

	// An observed agent with a spec reports drift and still writes nothing.
	watched := &millisv1alpha1.Agent{ObjectMeta: metav1.ObjectMeta{Name: "watched", Namespace: ns},
		Spec: millisv1alpha1.AgentSpec{ExternalID: made.ID, ManagementPolicy: millisv1alpha1.ManagementObserveOnly,
			DisplayName: "made in the dashboard " + ns,
			Config:      &millisv1alpha1.AgentConfig{Prompt: "What git says", Voice: millisv1alpha1.Voice{Provider: "openai", VoiceID: "alloy"}}}}
	g.Expect(k8s.Create(ctx, watched)).To(Succeed())
	g.Eventually(func(g Gomega) {
		a := getAgent(g, watched)
		g.Expect(syncedReason(a)).To(Equal(millisv1alpha1.ReasonDrifted))
		g.Expect(a.Status.Drift).To(Equal([]string{"config.prompt"}))
	}, timeout).Should(Succeed())
	g.Expect(millisConfig(g, made.ID)).To(HaveKeyWithValue("prompt", "Dashboard prompt for {userName}"))

	// Two Agents fully managing one externalID: the second is a conflict.
	first := &millisv1alpha1.Agent{ObjectMeta: metav1.ObjectMeta{Name: "adopt-a", Namespace: ns},
		Spec: millisv1alpha1.AgentSpec{ExternalID: made.ID, Config: watched.Spec.Config.DeepCopy(), DriftCheckInterval: &metav1.Duration{Duration: time.Second}}}
	g.Expect(k8s.Create(ctx, first)).To(Succeed())
	second := first.DeepCopy()
	second.ObjectMeta = metav1.ObjectMeta{Name: "adopt-b", Namespace: ns}
	second.Spec.Config.Prompt = "a competing prompt"
	// A missing externalID is reported, not created.
	ghost := &millisv1alpha1.Agent{ObjectMeta: metav1.ObjectMeta{Name: "ghost", Namespace: ns},
		Spec: millisv1alpha1.AgentSpec{ExternalID: "-NoSuchAgent000000000", Config: watched.Spec.Config.DeepCopy()}}
	g.Expect(k8s.Create(ctx, ghost)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(syncedReason(getAgent(g, ghost))).To(Equal(millisv1alpha1.ReasonExternalNotFound))
	}, timeout).Should(Succeed())

	waitAgentReady(g, first)
	g.Eventually(func(g Gomega) { g.Expect(millisConfig(g, made.ID)).To(HaveKeyWithValue("prompt", "What git says")) }, timeout).Should(Succeed())
	time.Sleep(10 * time.Millisecond) // a strictly later creation timestamp is not needed: names break ties
	g.Expect(k8s.Create(ctx, second)).To(Succeed())
	g.Eventually(func(g Gomega) {
		a := getAgent(g, second)
		g.Expect(syncedReason(a)).To(Equal(millisv1alpha1.ReasonExternalConflict))
		g.Expect(meta.FindStatusCondition(a.Status.Conditions, millisv1alpha1.ConditionSynced).Message).To(ContainSubstring("adopt-a"))
	}, timeout).Should(Succeed())
	g.Consistently(func(g Gomega) map[string]any { return millisConfig(g, made.ID) }, 2*time.Second).Should(HaveKeyWithValue("prompt", "What git says"))
}

func TestAgentRejectsBadInputAtAdmission(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, g)
	noVoice := newAgent(ns, "no-voice")
	noVoice.Spec.Config.Voice = millisv1alpha1.Voice{}
	err := k8s.Create(context.Background(), noVoice)
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
	g.Expect(err.Error()).To(ContainSubstring("spec.config.voice"))

	noConfig := newAgent(ns, "no-config")
	noConfig.Spec.Config = nil
	err = k8s.Create(context.Background(), noConfig)
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
	g.Expect(err.Error()).To(ContainSubstring("config (with prompt and voice) is required"))
}

func TestAgentMillisRejectionIsTerminalAndVerbatim(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, g)
	createAccount(t, g, ns)
	// Admission passes enum values through (Millis's lists change); Millis
	// answers 422 for one it does not know, and that shows verbatim.
	agent := newAgent(ns, "rejected")
	agent.Spec.Config.Voice.Provider = "acme-voices"
	g.Expect(k8s.Create(ctx, agent)).To(Succeed())
	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		g.Expect(syncedReason(a)).To(Equal(millisv1alpha1.ReasonTerminal))
		g.Expect(meta.FindStatusCondition(a.Status.Conditions, millisv1alpha1.ConditionSynced).Message).To(ContainSubstring("HTTP 422"))
		g.Expect(meta.FindStatusCondition(a.Status.Conditions, millisv1alpha1.ConditionSynced).Message).To(ContainSubstring("voice.provider"))
		g.Expect(a.Status.AgentID).To(BeEmpty())
		g.Expect(a.Annotations).NotTo(HaveKey(millisv1alpha1.AnnotationCreatePending), "a rejected create leaves no intent")
	}, timeout).Should(Succeed())

	updateAgent(g, agent, func(a *millisv1alpha1.Agent) { a.Spec.Config.Voice.Provider = "elevenlabs" })
	waitAgentReady(g, agent)
}

func TestAgentPhoneBindingAndConflict(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, g)
	createAccount(t, g, ns)
	mc := millisClient(g)
	const phone = "+15550100003"

	a := newAgent(ns, "binder")
	a.Spec.PhoneNumbers = []millisv1alpha1.PhoneNumber{phone}
	g.Expect(k8s.Create(ctx, a)).To(Succeed())
	got := waitAgentReady(g, a)
	g.Expect(got.Status.PhoneNumbers).To(ConsistOf(millisv1alpha1.PhoneNumber(phone)))
	p, err := mc.GetPhone(ctx, phone)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(p.AgentID).To(Equal(got.Status.AgentID))

	// Another Agent claiming the number is a conflict, not a takeover.
	b := newAgent(ns, "thief")
	b.Spec.DisplayName = "thief " + ns
	b.Spec.PhoneNumbers = []millisv1alpha1.PhoneNumber{phone}
	g.Expect(k8s.Create(ctx, b)).To(Succeed())
	g.Eventually(func(g Gomega) { g.Expect(syncedReason(getAgent(g, b))).To(Equal(millisv1alpha1.ReasonPhoneConflict)) }, timeout).Should(Succeed())
	p, _ = mc.GetPhone(ctx, phone)
	g.Expect(p.AgentID).To(Equal(got.Status.AgentID))

	// Removing the number from the first unbinds it, and the second gets it.
	updateAgent(g, a, func(a *millisv1alpha1.Agent) { a.Spec.PhoneNumbers = nil })
	thiefID := ""
	g.Eventually(func(g Gomega) {
		bb := getAgent(g, b)
		g.Expect(syncedReason(bb)).To(Equal(millisv1alpha1.ReasonReconcileSuccess))
		thiefID = bb.Status.AgentID
	}, timeout).Should(Succeed())
	p, _ = mc.GetPhone(ctx, phone)
	g.Expect(p.AgentID).To(Equal(thiefID))

	// Deleting the holder unbinds its number.
	g.Expect(k8s.Delete(ctx, getAgent(g, b))).To(Succeed())
	g.Eventually(func(g Gomega) {
		p, err := mc.GetPhone(ctx, phone)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(p.AgentID).To(BeEmpty())
	}, timeout).Should(Succeed())
}

func TestCallWithAgentRefWaitsForAgent(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, g)
	createAccount(t, g, ns)
	to := uniquePhone("10")
	call := newCall(ns, "via-ref", to, `{"userName":"John"}`)
	call.Spec.AgentID = ""
	call.Spec.AgentRef = &millisv1alpha1.LocalObjectReference{Name: "support"}
	g.Expect(k8s.Create(ctx, call)).To(Succeed())
	g.Eventually(func(g Gomega) string { return dialedReason(getCall(g, call)) }, timeout).Should(Equal(millisv1alpha1.ReasonAgentNotReady))

	agent := newAgent(ns, "support")
	agent.Spec.PrefetchVariables = []string{"company"} // filled by the prefetch webhook
	g.Expect(k8s.Create(ctx, agent)).To(Succeed())
	id := waitAgentReady(g, agent).Status.AgentID
	waitPhase(g, call, millisv1alpha1.CallSucceeded)
	g.Expect(ledgerEntry(g, to).AgentID).To(Equal(id))

	both := newCall(ns, "both", uniquePhone("10"), "")
	both.Spec.AgentRef = &millisv1alpha1.LocalObjectReference{Name: "support"}
	err := k8s.Create(ctx, both)
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
	g.Expect(err.Error()).To(ContainSubstring("exactly one of agentID and agentRef"))
}

func TestAgentRelaysUserWebhook(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, g)
	createAccount(t, g, ns)
	var relayed atomic.Int32
	var header atomic.Value
	theirs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			relayed.Add(1)
			header.Store(r.Header.Get("X-Theirs"))
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"metadata":{"company":"Acme from their CRM"}}`)
	}))
	defer theirs.Close()

	agent := newAgent(ns, "relay")
	agent.Spec.PrefetchVariables = []string{"company"}
	agent.Spec.ExtraConfig = &apiextensionsv1.JSON{Raw: []byte(fmt.Sprintf(
		`{"session_data_webhook":{"url":%q,"headers":{"X-Theirs":"yes"}},"extra_prompt_webhook":%q}`, theirs.URL, theirs.URL))}
	g.Expect(k8s.Create(ctx, agent)).To(Succeed())
	id := waitAgentReady(g, agent).Status.AgentID
	g.Expect(millisConfig(g, id)["session_data_webhook"]).To(HaveKeyWithValue("url", ContainSubstring(webhookURL)), "ours in Millis")

	call := newCall(ns, "relayed", uniquePhone("10"), `{"userName":"Ana"}`)
	call.Spec.AgentID = ""
	call.Spec.AgentRef = &millisv1alpha1.LocalObjectReference{Name: "relay"}
	g.Expect(k8s.Create(ctx, call)).To(Succeed())
	got := waitPhase(g, call, millisv1alpha1.CallSucceeded)
	g.Expect(got.Status.ResultSource).To(Equal("Webhook"))
	g.Eventually(relayed.Load, timeout).Should(BeNumerically(">=", 1))
	g.Expect(header.Load()).To(Equal("yes"))
	g.Expect(string(got.Status.ResultMetadata.Raw)).To(ContainSubstring("Acme from their CRM"), "their prefetch answer reached Millis")
	g.Expect(strings.Count(string(got.Status.ResultMetadata.Raw), "_callops_ref")).To(Equal(1))
}
