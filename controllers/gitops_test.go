package controllers_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	millisv1alpha1 "github.com/callops/millis-operator/api/v1alpha1"
	"github.com/callops/millis-operator/internal/argocd"
)

// These tests hold the operator to what a GitOps tool needs from it, with
// config/samples applied the way Argo CD applies with server-side apply:
//
//   - the operator never writes spec (nor the data of what it did not create);
//   - applying the same manifests again changes nothing;
//   - what is applied reads back unchanged: no server-side defaults;
//   - once settled, objects stay still: no status churn.

// applier is the field manager Argo CD uses for server-side apply.
const applier = "argocd-controller"

// Argo CD marks what an Application manages with a tracking annotation (or,
// in label mode, a label), written into each manifest it applies.
const (
	trackingAnnotation = "argocd.argoproj.io/tracking-id"
	trackingLabel      = "app.kubernetes.io/instance"
	trackedApp         = "millis-samples"
)

// track marks u as Argo CD does before applying it.
func track(u *unstructured.Unstructured) {
	gvk := u.GroupVersionKind()
	annotations := u.GetAnnotations()
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[trackingAnnotation] = fmt.Sprintf("%s:%s/%s:%s/%s", trackedApp, gvk.Group, gvk.Kind, u.GetNamespace(), u.GetName())
	u.SetAnnotations(annotations)
	labels := u.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[trackingLabel] = trackedApp
	u.SetLabels(labels)
}

// heartbeatFields are the status fields the operator refreshes on a timer
// (an account's verifyInterval, an agent's driftCheckInterval). A write that
// changes only these is a heartbeat, not churn.
var heartbeatFields = [][]string{
	{"status", "lastVerifiedTime"}, {"status", "lastObservedTime"},
	{"status", "credit"}, {"status", "usedCredit"},
}

// readSamples reads config/samples as kustomize renders it, in a namespace of
// its own and with the account pointed at this suite's simulator and webhook
// receiver (the samples name 127.0.0.1 ports, as the e2e tests do).
func readSamples(t *testing.T, g Gomega, ns string) []*unstructured.Unstructured {
	t.Helper()
	dir := filepath.Join("..", "config", "samples")
	data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	var kustomization map[string]any
	g.Expect(yaml.Unmarshal(data, &kustomization)).To(Succeed())
	resources, _ := kustomization["resources"].([]any)
	delete(kustomization, "resources")
	// With nothing but resources, kustomize renders the files in order.
	g.Expect(kustomization).To(BeEmpty(), "config/samples/kustomization.yaml uses more than resources; render it with kustomize here")
	g.Expect(resources).NotTo(BeEmpty())

	var objs []*unstructured.Unstructured
	for _, r := range resources {
		data, err := os.ReadFile(filepath.Join(dir, r.(string)))
		g.Expect(err).NotTo(HaveOccurred())
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			u := &unstructured.Unstructured{}
			if err := dec.Decode(&u.Object); err != nil {
				g.Expect(errors.Is(err, io.EOF)).To(BeTrue(), "%s: %v", r, err)
				break
			}
			if len(u.Object) == 0 {
				continue
			}
			if u.GetKind() == "Namespace" {
				u.SetName(ns)
			} else {
				u.SetNamespace(ns)
			}
			if u.GetKind() == "MillisAccount" {
				g.Expect(unstructured.SetNestedField(u.Object, simURL, "spec", "baseURL")).To(Succeed())
				if _, ok, _ := unstructured.NestedMap(u.Object, "spec", "webhook"); ok {
					g.Expect(unstructured.SetNestedField(u.Object, webhookURL, "spec", "webhook", "url")).To(Succeed())
				}
			}
			objs = append(objs, u)
		}
	}
	return objs
}

func objKey(u *unstructured.Unstructured) string {
	return fmt.Sprintf("%s %s/%s", u.GetKind(), u.GetNamespace(), u.GetName())
}

func isMillis(u *unstructured.Unstructured) bool {
	return u.GroupVersionKind().Group == millisv1alpha1.GroupVersion.Group
}

// ssaApply server-side applies desired as Argo CD would, returning what the
// API server stored.
func ssaApply(g Gomega, desired *unstructured.Unstructured) *unstructured.Unstructured {
	u := desired.DeepCopy()
	g.Expect(k8s.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(u),
		client.FieldOwner(applier), client.ForceOwnership)).To(Succeed(), objKey(desired))
	return u
}

// liveObject reads an object from the API server (unstructured reads bypass the
// manager's cache).
func liveObject(g Gomega, like *unstructured.Unstructured) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(like.GroupVersionKind())
	g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(like), u)).To(Succeed())
	return u
}

// compared is what a GitOps tool compares: every top-level field but
// apiVersion, kind, metadata and status, with numbers as JSON has them (YAML
// decodes 600 as a float, the API server returns an integer).
func compared(u *unstructured.Unstructured) map[string]any {
	out := map[string]any{}
	for k, v := range u.Object {
		switch k {
		case "apiVersion", "kind", "metadata", "status":
		default:
			out[k] = v
		}
	}
	data, err := json.Marshal(out)
	if err != nil {
		panic(err)
	}
	out = map[string]any{}
	if err := json.Unmarshal(data, &out); err != nil {
		panic(err)
	}
	return out
}

// fieldOwners returns the top-level fields each manager owns, e.g.
// {"argocd-controller": ["f:spec"], "manager (status)": ["f:status"]}.
func fieldOwners(g Gomega, u *unstructured.Unstructured) map[string][]string {
	out := map[string][]string{}
	for _, e := range u.GetManagedFields() {
		name := e.Manager
		if e.Subresource != "" {
			name += " (" + e.Subresource + ")"
		}
		if e.FieldsV1 == nil {
			continue
		}
		var fields map[string]any
		g.Expect(json.Unmarshal(e.FieldsV1.Raw, &fields)).To(Succeed())
		for f := range fields {
			out[name] = append(out[name], f)
		}
	}
	return out
}

// applierFields is the field set the applier owns, "" when it owns none
// (a Namespace applied with nothing but its name).
func applierFields(g Gomega, u *unstructured.Unstructured) string {
	for _, e := range u.GetManagedFields() {
		if e.Manager == applier && e.Operation == metav1.ManagedFieldsOperationApply {
			g.Expect(e.FieldsV1).NotTo(BeNil())
			return string(e.FieldsV1.Raw)
		}
	}
	return ""
}

// withoutHeartbeat drops what changes on every write or on a timer.
func withoutHeartbeat(u *unstructured.Unstructured) map[string]any {
	c := u.DeepCopy()
	c.SetResourceVersion("")
	c.SetManagedFields(nil)
	for _, f := range heartbeatFields {
		unstructured.RemoveNestedField(c.Object, f...)
	}
	return c.Object
}

// waitSettled waits until no object has changed for quiet, and returns them.
func waitSettled(g Gomega, objs []*unstructured.Unstructured, quiet, limit time.Duration) map[string]*unstructured.Unstructured {
	last := map[string]*unstructured.Unstructured{}
	since := time.Now()
	deadline := time.Now().Add(limit)
	for {
		changed := ""
		for _, o := range objs {
			u := liveObject(g, o)
			if prev, ok := last[objKey(o)]; !ok || prev.GetResourceVersion() != u.GetResourceVersion() {
				changed = objKey(o)
			}
			last[objKey(o)] = u
		}
		if changed != "" {
			since = time.Now()
		}
		if time.Since(since) >= quiet {
			return last
		}
		g.Expect(time.Now().Before(deadline)).To(BeTrue(), "not settled after %v: %s still changing", limit, changed)
		time.Sleep(250 * time.Millisecond)
	}
}

func TestGitOpsSamples(t *testing.T) {
	g := NewWithT(t)
	ns := "gitops-" + utilrand.String(5)
	desired := readSamples(t, g, ns)
	for _, d := range desired {
		track(d)
	}

	first := map[string]*unstructured.Unstructured{}
	for _, d := range desired {
		first[objKey(d)] = ssaApply(g, d)
	}

	// No defaulting drift: each object as stored is what was applied, so an
	// Argo CD diff shows nothing. Custom resources match exactly (no field
	// the user left out appears); built-in kinds at least hold what was set.
	for _, d := range desired {
		stored := first[objKey(d)]
		want, got := compared(d), compared(stored)
		if data, ok := want["stringData"].(map[string]any); ok {
			// Secrets store stringData base64-encoded under data.
			delete(want, "stringData")
			encoded := map[string]any{}
			for k, v := range data {
				encoded[k] = base64.StdEncoding.EncodeToString([]byte(v.(string)))
			}
			want["data"] = encoded
		}
		for k, v := range d.GetLabels() {
			g.Expect(stored.GetLabels()).To(HaveKeyWithValue(k, v), "%s: label", objKey(d))
		}
		for k, v := range d.GetAnnotations() {
			g.Expect(stored.GetAnnotations()).To(HaveKeyWithValue(k, v), "%s: annotation", objKey(d))
		}
		if isMillis(d) {
			g.Expect(cmp.Diff(want, got)).To(BeEmpty(), "%s: the stored object differs from the applied one (-applied +stored)", objKey(d))
			continue
		}
		for k, v := range want {
			g.Expect(got).To(HaveKeyWithValue(k, v), "%s: %s", objKey(d), k)
		}
	}

	// Let the operator do everything it will do with the samples: verify the
	// account, create the agents, place the calls, run the demo campaign.
	settled := waitSettled(g, desired, 4*time.Second, 2*time.Minute)
	for _, d := range desired {
		if !isMillis(d) {
			continue
		}
		obj := settled[objKey(d)]
		res, err := luaHealth(obj)
		g.Expect(err).NotTo(HaveOccurred())
		t.Logf("%s: %s: %s", objKey(d), res.Status, res.Message)
		switch d.GetKind() {
		case "MillisAccount", "Agent":
			g.Expect(res.Status).To(Equal(argocd.StatusHealthy), "%s settled as %+v", objKey(d), res)
		case "OutboundCall":
			g.Expect(res.Status).NotTo(Equal(argocd.StatusProgressing), "%s settled as %+v", objKey(d), res)
		case "CallCampaign":
			if res.Status == argocd.StatusProgressing {
				g.Expect(res.Message).To(HavePrefix(millisv1alpha1.ReasonWaitingForWindow+": "), "%s settled as %+v", objKey(d), res)
			} else {
				g.Expect(res.Status).To(Equal(argocd.StatusHealthy), "%s settled as %+v", objKey(d), res)
			}
		}
	}

	// The operator never wrote spec (or a ConfigMap's data): only the
	// applier owns those fields, the applier still owns all it applied, and
	// metadata.generation, which counts spec changes, did not move.
	for _, d := range desired {
		obj := settled[objKey(d)]
		for manager, fields := range fieldOwners(g, obj) {
			if manager == applier {
				continue
			}
			for f := range compared(d) {
				g.Expect(fields).NotTo(ContainElement("f:"+f), "%s: %s wrote %s", objKey(d), manager, f)
			}
		}
		applied := applierFields(g, first[objKey(d)])
		for f := range compared(d) {
			g.Expect(applied).To(ContainSubstring(`"f:`+f+`"`), "%s: the apply did not record %s as the applier's", objKey(d), f)
		}
		g.Expect(applierFields(g, obj)).To(Equal(applied), "%s: someone took over fields the applier set", objKey(d))
		g.Expect(obj.GetGeneration()).To(Equal(first[objKey(d)].GetGeneration()), "%s: the spec changed after apply", objKey(d))
		if isMillis(d) {
			g.Expect(cmp.Diff(compared(first[objKey(d)]), compared(obj))).To(BeEmpty(), "%s: the spec changed after apply", objKey(d))
		}
	}

	// What the operator creates (campaign calls, results ConfigMaps) is
	// not in git: it must not look tracked, or Argo CD would show it
	// OutOfSync and prune it. It hangs off a tracked object by a controller
	// reference instead, so it shows in the tree under its campaign.
	tracked := map[string]bool{}
	for _, d := range desired {
		tracked[string(settled[objKey(d)].GetUID())] = true
	}
	generated := map[string]int{}
	for _, gvk := range []schema.GroupVersionKind{
		corev1.SchemeGroupVersion.WithKind("ConfigMapList"), millisv1alpha1.GroupVersion.WithKind("OutboundCallList"),
	} {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(gvk)
		g.Expect(k8s.List(context.Background(), list, client.InNamespace(ns))).To(Succeed())
		for _, item := range list.Items {
			if tracked[string(item.GetUID())] {
				continue
			}
			generated[item.GetKind()]++
			g.Expect(item.GetLabels()).NotTo(HaveKey(trackingLabel), "%s %s", item.GetKind(), item.GetName())
			g.Expect(item.GetAnnotations()).NotTo(HaveKey(trackingAnnotation), "%s %s", item.GetKind(), item.GetName())
			owner := metav1.GetControllerOf(&item)
			g.Expect(owner).NotTo(BeNil(), "%s %s has no controller", item.GetKind(), item.GetName())
			g.Expect(tracked[string(owner.UID)]).To(BeTrue(), "%s %s: its controller is not tracked", item.GetKind(), item.GetName())
		}
	}
	g.Expect(generated).To(HaveKeyWithValue("ConfigMap", BeNumerically(">", 0)), "the demo campaign writes its results")
	g.Expect(generated).To(HaveKeyWithValue("OutboundCall", BeNumerically(">", 0)), "the demo campaign creates calls")

	// No churn: settled objects stay still. Only a timer's heartbeat may
	// write (at most once here: the suite's timers are a minute), and it
	// changes nothing a GitOps tool compares.
	deadline := time.Now().Add(5 * time.Second)
	heartbeats := map[string]int{}
	for time.Now().Before(deadline) {
		for _, d := range desired {
			now := liveObject(g, d)
			before := settled[objKey(d)]
			if now.GetResourceVersion() == before.GetResourceVersion() {
				continue
			}
			g.Expect(cmp.Diff(withoutHeartbeat(before), withoutHeartbeat(now))).To(BeEmpty(), "%s changed after it settled", objKey(d))
			heartbeats[objKey(d)]++
			g.Expect(heartbeats[objKey(d)]).To(Equal(1), "%s: heartbeats in a row", objKey(d))
			settled[objKey(d)] = now
		}
		time.Sleep(250 * time.Millisecond)
	}

	// Applying the same manifests again is a no-op: nothing is written, so
	// resourceVersion stays. A heartbeat between the read and the apply
	// would move it, so that case is read and applied again.
	for _, d := range desired {
		for attempt := 1; ; attempt++ {
			before := liveObject(g, d)
			after := ssaApply(g, d)
			if after.GetResourceVersion() == before.GetResourceVersion() {
				break
			}
			diff := cmp.Diff(withoutHeartbeat(before), withoutHeartbeat(after))
			g.Expect(diff).To(BeEmpty(), "%s: applying it again changed it", objKey(d))
			g.Expect(attempt).To(BeNumerically("<", 3), "%s: applying it again always writes", objKey(d))
		}
	}
}

// luaHealth runs the Argo CD health check of u's kind.
func luaHealth(u *unstructured.Unstructured) (argocd.Result, error) {
	scripts, err := healthScripts()
	if err != nil {
		return argocd.Result{}, err
	}
	script, ok := scripts[u.GetKind()]
	if !ok {
		return argocd.Result{}, fmt.Errorf("no health check for %s", u.GetKind())
	}
	return argocd.Health(script, u.Object)
}

// TestGitOpsSpecAsWritten applies manifests as people write them, not as Go
// would print them: durations in short form ("10m", Go prints "10m0s") and
// explicit zero values (Go omits them). A controller that writes the whole
// object back (an Update to add a finalizer or an annotation) would rewrite
// them, and Argo CD would show the object OutOfSync until the next sync.
func TestGitOpsSpecAsWritten(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, g)
	createAccount(t, g, ns)
	manifests := fmt.Sprintf(`
apiVersion: millis.callops.dev/v1alpha1
kind: MillisAccount
metadata: {name: written, namespace: %[1]s}
spec:
  baseURL: %[2]s
  apiKeySecretRef: {name: millis-credentials, key: apiKey}
  verifyInterval: 5m
  dialRecovery: {callLogVisibilityDelay: 30s, onUnconfirmed: Redial}
---
apiVersion: millis.callops.dev/v1alpha1
kind: Agent
metadata: {name: written, namespace: %[1]s}
spec:
  displayName: Written agent %[1]s
  config:
    prompt: "You help customers of {company}. The caller is {userName}."
    voice: {provider: elevenlabs, voiceID: "21m00Tcm4TlvDq8ikWAM"}
    enableRecording: false
  driftCheckInterval: 10m
  managementPolicy: Full
  deletionPolicy: Delete
  prefetchVariables: []
---
apiVersion: millis.callops.dev/v1alpha1
kind: OutboundCall
metadata: {name: written, namespace: %[1]s}
spec:
  agentID: %[3]q
  fromPhone: %[4]q
  toPhone: %[5]q
  metadata: {userName: Ana, company: Acme}
  includeMetadataInPrompt: false
  terminateOnDelete: true
---
apiVersion: millis.callops.dev/v1alpha1
kind: CallCampaign
metadata: {name: written, namespace: %[1]s}
spec:
  agentID: %[3]q
  fromPhone: %[4]q
  metadata: {company: Acme, userName: friend}
  recipients: [{phone: %[6]q}]
  schedule: {callingWindows: [{start: "00:00", end: "24:00"}]}
  retry: {maxAttempts: 1, backoff: 1h}
  callsPerMinute: 0
  suspend: false
`, ns, simURL, agentID, fromPhone, uniquePhone("10"), uniquePhone("10"))

	var desired []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifests), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			g.Expect(errors.Is(err, io.EOF)).To(BeTrue(), "%v", err)
			break
		}
		if len(u.Object) > 0 {
			desired = append(desired, u)
		}
	}
	g.Expect(desired).To(HaveLen(4))
	first := map[string]*unstructured.Unstructured{}
	for _, d := range desired {
		first[objKey(d)] = ssaApply(g, d)
		g.Expect(cmp.Diff(compared(d), compared(first[objKey(d)]))).To(BeEmpty(), "%s: stored differs from applied (-applied +stored)", objKey(d))
	}
	settled := waitSettled(g, desired, 3*time.Second, time.Minute)
	for _, d := range desired {
		t.Run(d.GetKind(), func(t *testing.T) {
			g := NewWithT(t)
			obj := settled[objKey(d)]
			_, hasStatus := obj.Object["status"]
			g.Expect(hasStatus).To(BeTrue(), "%s was never reconciled", objKey(d))
			g.Expect(cmp.Diff(compared(d), compared(obj))).To(BeEmpty(), "%s: the operator rewrote the spec (-applied +live)", objKey(d))
			g.Expect(obj.GetGeneration()).To(Equal(first[objKey(d)].GetGeneration()), "%s: the spec changed after apply", objKey(d))
		})
	}
}
