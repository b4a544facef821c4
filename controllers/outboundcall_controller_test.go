package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	millisv1alpha1 "github.com/callops/millis-operator/api/v1alpha1"
	"github.com/callops/millis-operator/internal/millis"
	"github.com/callops/millis-operator/internal/simulator"
)

func newCall(ns, name, to string, meta string) *millisv1alpha1.OutboundCall {
	c := &millisv1alpha1.OutboundCall{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: millisv1alpha1.OutboundCallSpec{
			AgentID:   agentID,
			FromPhone: fromPhone,
			ToPhone:   millisv1alpha1.PhoneNumber(to),
		},
	}
	if meta != "" {
		c.Spec.Metadata = &apiextensionsv1.JSON{Raw: []byte(meta)}
	}
	return c
}

func getCall(g Gomega, c *millisv1alpha1.OutboundCall) *millisv1alpha1.OutboundCall {
	var out millisv1alpha1.OutboundCall
	g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(c), &out)).To(Succeed())
	return &out
}

func waitPhase(g Gomega, c *millisv1alpha1.OutboundCall, phase millisv1alpha1.CallPhase) *millisv1alpha1.OutboundCall {
	var got *millisv1alpha1.OutboundCall
	g.Eventually(func(g Gomega) {
		got = getCall(g, c)
		g.Expect(got.Status.Phase).To(Equal(phase), "conditions: %+v", got.Status.Conditions)
	}, timeout, 100*time.Millisecond).Should(Succeed())
	return got
}

func dialedReason(c *millisv1alpha1.OutboundCall) string {
	if cond := meta.FindStatusCondition(c.Status.Conditions, millisv1alpha1.ConditionDialed); cond != nil {
		return cond.Reason
	}
	return ""
}

// uniquePhone gives each test its own destination, keeping the two-digit
// outcome suffix, so the simulator's per-number ledger counts are per test.
var phoneSeq = 100

func uniquePhone(suffix string) string {
	phoneSeq++
	return fmt.Sprintf("+1555%04d%s", phoneSeq, suffix)
}

func TestOutboundCallSucceedsThroughWebhook(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, g)
	createAccount(t, g, ns)
	to := uniquePhone("10")
	call := newCall(ns, "welcome-john", to, `{"userName":"John","company":"Acme","visits":3,"greeting":"Hi {userName} from {company}"}`)
	call.Spec.IncludeMetadataInPrompt = true
	g.Expect(k8s.Create(context.Background(), call)).To(Succeed())

	got := waitPhase(g, call, millisv1alpha1.CallSucceeded)
	g.Expect(got.Status.SessionID).NotTo(BeEmpty())
	g.Expect(got.Status.CallID).NotTo(BeEmpty())
	g.Expect(got.Status.CallStatus).To(Equal("user-ended"))
	g.Expect(got.Status.ResultSource).To(Equal("Webhook"), "the end-of-call webhook should beat 2s polling")
	g.Expect(got.Status.DurationSeconds).NotTo(BeNil())
	g.Expect(*got.Status.DurationSeconds).To(BeNumerically(">", 0))
	g.Expect(got.Status.Cost).NotTo(BeEmpty())
	g.Expect(got.Status.Transcript).NotTo(BeEmpty())
	g.Expect(got.Status.Transcript[0].Content).To(Equal("Hello John!"), "the agent's first message must be rendered")
	g.Expect(got.Status.EndTime).NotTo(BeNil())
	g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, millisv1alpha1.ConditionComplete)).To(BeTrue())

	g.Expect(sim.DialCount(to)).To(Equal(1))
	entry := ledgerEntry(g, to)
	g.Expect(entry.IncludeMetadataInPrompt).To(BeTrue())
	var sent map[string]any
	g.Expect(json.Unmarshal(entry.Metadata, &sent)).To(Succeed())
	g.Expect(sent).To(HaveKeyWithValue("userName", "John"))
	g.Expect(sent).To(HaveKeyWithValue("visits", BeNumerically("==", 3)), "numbers reach Millis as numbers")
	g.Expect(sent).To(HaveKeyWithValue("greeting", "Hi John from Acme"), "templates in metadata are rendered")
	g.Expect(sent).To(HaveKeyWithValue(millisv1alpha1.MetadataKeyCallRef, string(got.UID)+"/1"))
	g.Expect(sent).To(HaveLen(5), "the operator adds exactly one key")
}

func ledgerEntry(g Gomega, to string) simulator.LedgerEntry {
	for _, e := range sim.Ledger() {
		if e.To == to {
			return e
		}
	}
	g.Expect(fmt.Errorf("no call to %s in the ledger", to)).NotTo(HaveOccurred())
	return simulator.LedgerEntry{}
}

func TestOutboundCallOutcomes(t *testing.T) {
	cases := []struct {
		reason, suffix string
		phase          millisv1alpha1.CallPhase
		callStatus     string
	}{
		{"busy does not connect", "91", millisv1alpha1.CallFailed, "busy"},
		{"no-answer does not connect", "92", millisv1alpha1.CallFailed, "no-answer"},
		{"agent-ended connected", "97", millisv1alpha1.CallSucceeded, "agent-ended"},
		{"voicemail counts as connected", "94", millisv1alpha1.CallSucceeded, "voicemail-hangup"},
	}
	g := NewWithT(t)
	ns := newNamespace(t, g)
	createAccount(t, g, ns)
	for i, c := range cases {
		t.Run(c.callStatus, func(t *testing.T) {
			g := NewWithT(t)
			to := uniquePhone(c.suffix)
			call := newCall(ns, fmt.Sprintf("outcome-%d", i), to, `{"userName":"Ana","company":"Acme"}`)
			g.Expect(k8s.Create(context.Background(), call)).To(Succeed())
			got := waitPhase(g, call, c.phase)
			g.Expect(got.Status.CallStatus).To(Equal(c.callStatus), c.reason)
			cond := millisv1alpha1.ConditionComplete
			if c.phase == millisv1alpha1.CallFailed {
				cond = millisv1alpha1.ConditionFailed
			}
			g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, cond)).To(BeTrue(), c.reason)
			g.Expect(sim.DialCount(to)).To(Equal(1), c.reason)
		})
	}
}

func TestOutboundCallFallsBackToCallLogWhenWebhooksAreLost(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, g)
	createAccount(t, g, ns)
	sim.SetFaults(simulator.Faults{DropWebhooks: 2}) // this call's prefetch and end-of-call
	defer sim.SetFaults(simulator.Faults{})
	to := uniquePhone("10")
	call := newCall(ns, "no-webhook", to, `{"userName":"Ana","company":"Acme"}`)
	g.Expect(k8s.Create(context.Background(), call)).To(Succeed())
	got := waitPhase(g, call, millisv1alpha1.CallSucceeded)
	g.Expect(got.Status.ResultSource).To(Equal("CallLog"))
	g.Expect(got.Status.CallStatus).To(Equal("user-ended"))
	g.Expect(sim.DialCount(to)).To(Equal(1))
}

func TestOutboundCallNeverDialsTwice(t *testing.T) {
	cases := []struct {
		reason string
		faults simulator.Faults
	}{
		{"created, then answered 500: found in the call logs", simulator.Faults{CreateThen500Next: 1}},
		{"500 without creating: proven absent, then redialed once", simulator.Faults{FailNext: map[string]int{"POST /start_outbound_call": 1}}},
		{"429 with Retry-After: retried after the delay", simulator.Faults{RateLimitNext: map[string]int{"POST /start_outbound_call": 1}, RetryAfterSeconds: 1}},
		{"duplicated end-of-call webhook is idempotent", simulator.Faults{DuplicateWebhooks: 1}},
	}
	g := NewWithT(t)
	ns := newNamespace(t, g)
	createAccount(t, g, ns)
	for i, c := range cases {
		// Faults are global to the simulator, so these run one at a time.
		g := NewWithT(t)
		to := uniquePhone("10")
		sim.SetFaults(c.faults)
		call := newCall(ns, fmt.Sprintf("once-%d", i), to, `{"userName":"Ana","company":"Acme"}`)
		g.Expect(k8s.Create(context.Background(), call)).To(Succeed())
		got := waitPhase(g, call, millisv1alpha1.CallSucceeded)
		sim.SetFaults(simulator.Faults{})
		g.Expect(sim.DialCount(to)).To(Equal(1), c.reason)
		g.Expect(got.Status.SessionID).To(Equal(ledgerEntry(g, to).SessionID), c.reason)
	}
}

func TestOutboundCallRejectedByMillisIsTerminal(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, g)
	createAccount(t, g, ns)
	call := newCall(ns, "not-our-number", uniquePhone("10"), `{"userName":"Ana","company":"Acme"}`)
	call.Spec.FromPhone = "+15559999999" // not a number of this Millis account
	g.Expect(k8s.Create(context.Background(), call)).To(Succeed())
	got := waitPhase(g, call, millisv1alpha1.CallFailed)
	g.Expect(dialedReason(got)).To(Equal(millisv1alpha1.ReasonMillisRejected))
	g.Expect(got.Status.ErrorMessage).To(ContainSubstring("HTTP 4"))
	g.Expect(got.Status.Dial).To(BeNil(), "a rejected call leaves no dial record")
	g.Consistently(func(g Gomega) millisv1alpha1.CallPhase { return getCall(g, call).Status.Phase }, 2*time.Second).Should(Equal(millisv1alpha1.CallFailed))
}

func TestOutboundCallWaitsForTemplateVariables(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, g)
	createAccount(t, g, ns)
	to := uniquePhone("10")
	// The agent speaks {company} and {userName}; company is missing.
	call := newCall(ns, "missing-var", to, `{"userName":"Ana"}`)
	g.Expect(k8s.Create(context.Background(), call)).To(Succeed())
	g.Eventually(func(g Gomega) {
		got := getCall(g, call)
		g.Expect(dialedReason(got)).To(Equal(millisv1alpha1.ReasonTemplateError))
		g.Expect(meta.FindStatusCondition(got.Status.Conditions, millisv1alpha1.ConditionDialed).Message).To(ContainSubstring("{company}"))
	}, timeout).Should(Succeed())
	g.Consistently(func() int { return sim.DialCount(to) }, time.Second).Should(BeZero())

	got := getCall(g, call)
	got.Spec.Metadata = &apiextensionsv1.JSON{Raw: []byte(`{"userName":"Ana","company":"Acme"}`)}
	g.Expect(k8s.Update(context.Background(), got)).To(Succeed())
	waitPhase(g, call, millisv1alpha1.CallSucceeded)
	g.Expect(sim.DialCount(to)).To(Equal(1))
}

func TestOutboundCallWaitsForAccountAndSecret(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, g)
	to := uniquePhone("10")
	call := newCall(ns, "early", to, `{"userName":"Ana","company":"Acme"}`)
	g.Expect(k8s.Create(ctx, call)).To(Succeed())
	g.Eventually(func(g Gomega) string { return dialedReason(getCall(g, call)) }, timeout).Should(Equal(millisv1alpha1.ReasonAccountNotFound))

	// The account arrives before its Secret.
	acct := &millisv1alpha1.MillisAccount{
		ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns},
		Spec: millisv1alpha1.MillisAccountSpec{
			BaseURL:         simURL,
			APIKeySecretRef: millisv1alpha1.SecretKeySelector{Name: "millis-credentials", Key: "apiKey"},
		},
	}
	g.Expect(k8s.Create(ctx, acct)).To(Succeed())
	g.Eventually(func(g Gomega) {
		var a millisv1alpha1.MillisAccount
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(acct), &a)).To(Succeed())
		g.Expect(meta.FindStatusCondition(a.Status.Conditions, millisv1alpha1.ConditionReady)).NotTo(BeNil())
		g.Expect(meta.FindStatusCondition(a.Status.Conditions, millisv1alpha1.ConditionReady).Reason).To(Equal(millisv1alpha1.ReasonSecretNotFound))
	}, timeout).Should(Succeed())
	g.Eventually(func(g Gomega) string { return dialedReason(getCall(g, call)) }, timeout).Should(Equal(millisv1alpha1.ReasonAccountNotReady))
	g.Expect(sim.DialCount(to)).To(BeZero())

	// A wrong key: InvalidCredentials, still no dial.
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "millis-credentials", Namespace: ns},
		StringData: map[string]string{"apiKey": "wrong-key"}}
	g.Expect(k8s.Create(ctx, secret)).To(Succeed())
	g.Eventually(func(g Gomega) {
		var a millisv1alpha1.MillisAccount
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(acct), &a)).To(Succeed())
		g.Expect(meta.FindStatusCondition(a.Status.Conditions, millisv1alpha1.ConditionReady).Reason).To(Equal(millisv1alpha1.ReasonInvalidCredentials))
		g.Expect(meta.FindStatusCondition(a.Status.Conditions, millisv1alpha1.ConditionReady).Message).NotTo(ContainSubstring("wrong-key"))
	}, timeout).Should(Succeed())
	g.Expect(sim.DialCount(to)).To(BeZero())

	// Fixed: the account recovers by itself and the call dials once.
	secret.StringData = map[string]string{"apiKey": apiKey}
	g.Expect(k8s.Update(ctx, secret)).To(Succeed())
	waitPhase(g, call, millisv1alpha1.CallSucceeded)
	g.Expect(sim.DialCount(to)).To(Equal(1))
	var a millisv1alpha1.MillisAccount
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(acct), &a)).To(Succeed())
	g.Expect(a.Status.Credit).NotTo(BeEmpty())
	g.Expect(a.Status.UserID).NotTo(BeEmpty())
}

func TestMillisAccountUnreachable(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, g)
	acct := createAccount(t, g, ns, func(a *millisv1alpha1.MillisAccount) { a.Spec.BaseURL = "http://127.0.0.1:1" })
	g.Eventually(func(g Gomega) {
		var a millisv1alpha1.MillisAccount
		g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(acct), &a)).To(Succeed())
		g.Expect(meta.FindStatusCondition(a.Status.Conditions, millisv1alpha1.ConditionReady)).NotTo(BeNil())
		g.Expect(meta.FindStatusCondition(a.Status.Conditions, millisv1alpha1.ConditionReady).Reason).To(Equal(millisv1alpha1.ReasonMillisUnavailable))
	}, timeout).Should(Succeed())
}

func TestAdmissionRejectsBadInput(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, g)
	ctx := context.Background()

	bad := newCall(ns, "bad-phone", "555-0100", "")
	err := k8s.Create(ctx, bad)
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
	g.Expect(err.Error()).To(ContainSubstring("spec.toPhone"))
	g.Expect(err.Error()).To(ContainSubstring("E.164"))

	keys := make([]string, 65)
	for i := range keys {
		keys[i] = fmt.Sprintf(`"k%d":"v"`, i)
	}
	big := newCall(ns, "big-meta", uniquePhone("10"), "{"+strings.Join(keys, ",")+"}")
	err = k8s.Create(ctx, big)
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
	g.Expect(err.Error()).To(ContainSubstring("spec.metadata"))
	g.Expect(err.Error()).To(ContainSubstring("64"))

	both := &millisv1alpha1.MillisAccount{ObjectMeta: metav1.ObjectMeta{Name: "both", Namespace: ns},
		Spec: millisv1alpha1.MillisAccountSpec{Region: "us-west", BaseURL: simURL,
			APIKeySecretRef: millisv1alpha1.SecretKeySelector{Name: "s", Key: "k"}}}
	err = k8s.Create(ctx, both)
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
	g.Expect(err.Error()).To(ContainSubstring("not both"))
}

func TestDialedSpecIsImmutable(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, g)
	createAccount(t, g, ns)
	call := newCall(ns, "frozen", uniquePhone("10"), `{"userName":"Ana","company":"Acme"}`)
	g.Expect(k8s.Create(context.Background(), call)).To(Succeed())
	got := waitPhase(g, call, millisv1alpha1.CallSucceeded)

	got.Spec.ToPhone = millisv1alpha1.PhoneNumber(uniquePhone("10"))
	err := k8s.Update(context.Background(), got)
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
	g.Expect(err.Error()).To(ContainSubstring("has been dialed"))

	got = getCall(g, call)
	got.Spec.Metadata = &apiextensionsv1.JSON{Raw: []byte(`{"userName":"Bob","company":"Acme"}`)}
	err = k8s.Update(context.Background(), got)
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
	g.Expect(err.Error()).To(ContainSubstring("spec.metadata and spec.agentConfig cannot change"))

	got = getCall(g, call)
	got.Spec.TerminateOnDelete = true // lifecycle knobs stay editable
	g.Expect(k8s.Update(context.Background(), got)).To(Succeed())
}

func TestDeletingLiveCallHangsUpOnlyWhenAsked(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, g)
	createAccount(t, g, ns)

	keep := newCall(ns, "keep-talking", uniquePhone("98"), `{"userName":"Ana","company":"Acme"}`)
	hang := newCall(ns, "hang-up", uniquePhone("98"), `{"userName":"Ana","company":"Acme"}`)
	hang.Spec.TerminateOnDelete = true
	g.Expect(k8s.Create(ctx, keep)).To(Succeed())
	g.Expect(k8s.Create(ctx, hang)).To(Succeed())
	keepSession := waitPhase(g, keep, millisv1alpha1.CallInProgress).Status.SessionID
	hangSession := waitPhase(g, hang, millisv1alpha1.CallInProgress).Status.SessionID
	g.Eventually(func() string { s, _ := sim.Status(hangSession); return s }, timeout).Should(Equal("in-progress"))

	g.Expect(k8s.Delete(ctx, keep)).To(Succeed())
	g.Expect(k8s.Delete(ctx, hang)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(hang), &millisv1alpha1.OutboundCall{}))
	}, timeout).Should(BeTrue())
	s, _ := sim.Status(hangSession)
	g.Expect(s).To(Equal("api-ended"))
	s, _ = sim.Status(keepSession)
	g.Expect(s).To(Equal("in-progress"), "deleting without terminateOnDelete never hangs up")
}

func TestPrefetchServesCallTimeData(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, g)
	createAccount(t, g, ns)
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "crm", Namespace: ns},
		StringData: map[string]string{"balance": "42.10"}})).To(Succeed())
	call := newCall(ns, "prefetch", uniquePhone("10"), `{"userName":"Ana","company":"Acme"}`)
	call.Spec.Prefetch = &millisv1alpha1.PrefetchSpec{
		MetadataFrom: []millisv1alpha1.MetadataSource{{SecretRef: &millisv1alpha1.LocalObjectReference{Name: "crm"}}},
		ExtraPrompt:  "The balance of {userName} is {balance}.",
	}
	g.Expect(k8s.Create(ctx, call)).To(Succeed())
	got := waitPhase(g, call, millisv1alpha1.CallSucceeded)
	// Millis merged the prefetched value into the call's metadata...
	mc, err := millis.New(simURL, apiKey)
	g.Expect(err).NotTo(HaveOccurred())
	h, err := mc.GetCallLog(ctx, got.Status.SessionID)
	g.Expect(err).NotTo(HaveOccurred())
	var merged map[string]any
	g.Expect(json.Unmarshal(h.Metadata, &merged)).To(Succeed())
	g.Expect(merged).To(HaveKeyWithValue("balance", "42.10"), "prefetch metadata is merged by Millis")
	// ...but status, readable by anyone who can get OutboundCalls, never
	// republishes what came from the Secret.
	var final map[string]any
	g.Expect(json.Unmarshal(got.Status.ResultMetadata.Raw, &final)).To(Succeed())
	g.Expect(final).NotTo(HaveKey("balance"), "Secret data never lands in status")
	g.Expect(final).To(HaveKeyWithValue("userName", "Ana"))
	var sent map[string]any
	g.Expect(json.Unmarshal(ledgerEntry(g, string(call.Spec.ToPhone)).Metadata, &sent)).To(Succeed())
	g.Expect(sent).NotTo(HaveKey("balance"), "Secret data never travels in the call request")
}

func TestWebhookReceiverRejectsBadRequests(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, g)
	createAccount(t, g, ns)
	url := fmt.Sprintf("%s/millis/%s/default/end-of-call", webhookURL, ns)
	post := func(token, body string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		if token != "" {
			req.Header.Set("X-Millis-Operator-Token", token)
		}
		resp, err := http.DefaultClient.Do(req)
		g.Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	cases := []struct {
		reason, token, body string
		code                int
	}{
		{"missing token", "", `{"session_id":"x","call_status":"user-ended"}`, http.StatusUnauthorized},
		{"wrong token", "nope", `{"session_id":"x","call_status":"user-ended"}`, http.StatusUnauthorized},
		{"malformed body", webhookToken, `{"session_id":`, http.StatusBadRequest},
		{"no session", webhookToken, `{"call_status":"user-ended"}`, http.StatusBadRequest},
		{"unknown session changes nothing", webhookToken, `{"session_id":"-Nope","call_status":"user-ended"}`, http.StatusAccepted},
		{"oversized body", webhookToken, `{"session_id":"x","chat":"` + strings.Repeat("a", 2<<20) + `"}`, http.StatusRequestEntityTooLarge},
	}
	for _, c := range cases {
		code, body := post(c.token, c.body)
		g.Expect(code).To(Equal(c.code), "%s: %s", c.reason, body)
		g.Expect(body).NotTo(ContainSubstring(webhookToken), c.reason)
	}

	// A forged result for a real session with the wrong token changes nothing.
	call := newCall(ns, "real", uniquePhone("98"), `{"userName":"Ana","company":"Acme"}`)
	g.Expect(k8s.Create(context.Background(), call)).To(Succeed())
	got := waitPhase(g, call, millisv1alpha1.CallInProgress)
	code, _ := post("nope", fmt.Sprintf(`{"session_id":%q,"call_status":"busy"}`, got.Status.SessionID))
	g.Expect(code).To(Equal(http.StatusUnauthorized))
	g.Consistently(func(g Gomega) millisv1alpha1.CallPhase { return getCall(g, call).Status.Phase }, time.Second).Should(Equal(millisv1alpha1.CallInProgress))
}

func TestUnauthorizedDialMarksAccountNotReady(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, g)
	acct := createAccount(t, g, ns)
	g.Eventually(func(g Gomega) {
		var a millisv1alpha1.MillisAccount
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(acct), &a)).To(Succeed())
		g.Expect(meta.IsStatusConditionTrue(a.Status.Conditions, millisv1alpha1.ConditionReady)).To(BeTrue())
	}, timeout).Should(Succeed())

	// The key is revoked while the account still shows Ready (it is only
	// re-verified every minute here): the first 401 flips it.
	var secret corev1.Secret
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "millis-credentials"}, &secret)).To(Succeed())
	secret.Data["apiKey"] = []byte("revoked-key")
	g.Expect(k8s.Update(ctx, &secret)).To(Succeed())

	to := uniquePhone("10")
	call := newCall(ns, "after-revoke", to, `{"userName":"Ana","company":"Acme"}`)
	g.Expect(k8s.Create(ctx, call)).To(Succeed())
	g.Eventually(func(g Gomega) {
		var a millisv1alpha1.MillisAccount
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(acct), &a)).To(Succeed())
		ready := meta.FindStatusCondition(a.Status.Conditions, millisv1alpha1.ConditionReady)
		g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(ready.Reason).To(Equal(millisv1alpha1.ReasonInvalidCredentials))
	}, timeout).Should(Succeed())
	g.Consistently(func() int { return sim.DialCount(to) }, time.Second).Should(BeZero())
	g.Expect(getCall(g, call).Status.Phase).To(Equal(millisv1alpha1.CallPending))

	secret.Data["apiKey"] = []byte(apiKey)
	g.Expect(k8s.Update(ctx, &secret)).To(Succeed())
	waitPhase(g, call, millisv1alpha1.CallSucceeded)
	g.Expect(sim.DialCount(to)).To(Equal(1))
}

// A campaign child claimed by another manager instance (one that has
// stopped) may already be dialed. It is looked for in the call logs from its
// creation on, and dialed only once they prove it absent.
func TestCallClaimedByAnotherInstance(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, g)
	createAccount(t, g, ns)
	ctx := context.Background()
	claimed := func(name, to string) *millisv1alpha1.OutboundCall {
		c := newCall(ns, name, to, `{"userName":"Ana","company":"Acme"}`)
		c.Annotations = map[string]string{millisv1alpha1.AnnotationDialClaim: "a-stopped-instance"}
		g.Expect(k8s.Create(ctx, c)).To(Succeed())
		return c
	}

	// Never dialed by its claimant: dialed once, after the proof.
	absent := uniquePhone("10")
	c1 := claimed("claimed-absent", absent)
	got := waitPhase(g, c1, millisv1alpha1.CallSucceeded)
	g.Expect(got.Status.Dial).NotTo(BeNil())
	g.Expect(got.Status.Dial.Attempt).To(Equal(int32(2)), "attempt 1 was the claimant's, proven absent")
	g.Expect(sim.DialCount(absent)).To(Equal(1))

	// Dialed by its claimant just before it stopped: found, never redialed.
	placed := uniquePhone("10")
	c2 := claimed("claimed-placed", placed)
	mc, err := millis.New(simURL, apiKey)
	g.Expect(err).NotTo(HaveOccurred())
	meta, _ := json.Marshal(map[string]string{millisv1alpha1.MetadataKeyCallRef: string(c2.UID) + "/1", "userName": "Ana"})
	_, err = mc.StartOutboundCall(ctx, millis.StartOutboundCallRequest{FromPhone: fromPhone, ToPhone: placed, AgentID: agentID, Metadata: meta})
	g.Expect(err).NotTo(HaveOccurred())
	got = waitPhase(g, c2, millisv1alpha1.CallSucceeded)
	g.Expect(sim.DialCount(placed)).To(Equal(1), "the claimant's dial is found in the call logs")
	g.Expect(got.Status.SessionID).To(Equal(ledgerEntry(g, placed).SessionID))
	g.Expect(got.Status.Dial.Attempt).To(Equal(int32(1)))
	g.Expect(got.Status.Dial.SearchFrom).NotTo(BeNil(), "the search starts at the child's creation")
	g.Expect(got.Status.Dial.SearchFrom.Time).To(BeTemporally("~", got.CreationTimestamp.Time, time.Second))
	g.Expect(dialedReason(got)).To(Equal(millisv1alpha1.ReasonRecovered))
}
