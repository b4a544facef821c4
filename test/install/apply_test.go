package install

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"
)

// TestApply applies every install (kustomize and each chart case) to one
// real kube-apiserver with kubectl apply --server-side, then asks the API
// server's RBAC authorizer what each manager ServiceAccount may do.
//
// The chart's ServiceMonitor needs the Prometheus Operator's CRD; a minimal
// typed stand-in (testdata/servicemonitor-crd.yaml) is installed first, so
// that the ServiceMonitor is applied and validated like everything else
// instead of being left out.
func TestApply(t *testing.T) {
	type install struct {
		name string
		objs objects
		w    want
	}
	// Render first: a missing tool fails here, before the control plane starts.
	installs := []install{{"kustomize", renderKustomize(t), want{namespace: kustomizeNamespace, replicas: 2}}}
	for _, c := range chartCases {
		installs = append(installs, install{"helm/" + c.name, renderChart(t, c), c.want})
	}

	kubeconfig, cfg := startControlPlane(t)
	cs := kubernetes.NewForConfigOrDie(cfg)
	kubectl := func(args ...string) (string, error) {
		out, err := exec.Command("kubectl", append([]string{"--kubeconfig", kubeconfig}, args...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := kubectl("apply", "--server-side", "-f", filepath.Join(root, "test/install/testdata/servicemonitor-crd.yaml")); err != nil {
		t.Fatalf("ServiceMonitor CRD: %v\n%s", err, out)
	}
	if out, err := kubectl("wait", "--for=condition=Established", "--timeout=30s", "crd/servicemonitors.monitoring.coreos.com"); err != nil {
		t.Fatalf("ServiceMonitor CRD: %v\n%s", err, out)
	}

	dir, files := t.TempDir(), map[string]string{}
	apply := func(t *testing.T, in install) {
		t.Helper()
		g := NewWithT(t)
		if files[in.name] == "" {
			var manifest []byte
			for _, u := range in.objs {
				b, err := yaml.Marshal(u.Object)
				g.Expect(err).NotTo(HaveOccurred())
				manifest = append(append(manifest, "---\n"...), b...)
			}
			files[in.name] = filepath.Join(dir, strings.ReplaceAll(in.name, "/", "-")+".yaml")
			g.Expect(os.WriteFile(files[in.name], manifest, 0o600)).To(Succeed())
		}
		out, err := kubectl("apply", "--server-side", "--field-manager=millis-install-test", "-f", files[in.name])
		if err != nil {
			t.Fatalf("kubectl apply --server-side: %v\n%s", err, out)
		}
		g.Expect(strings.Count(out, " serverside-applied\n")).To(Equal(len(in.objs)), "every object is applied:\n%s", out)
		// Pod Security admission warns about a pod template that is not
		// "restricted" in a namespace labelled to warn.
		ns, err := cs.CoreV1().Namespaces().Get(context.Background(), in.w.namespace, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(ns.Labels).To(HaveKeyWithValue(podSecurityWarn, "restricted"))
		g.Expect(out).NotTo(ContainSubstring("Warning"), "no warnings, Pod Security included")
	}
	calls := policyProbe{dyn: dynamic.NewForConfigOrDie(cfg), namespace: kustomizeNamespace}

	for i, in := range installs {
		if i == 1 {
			// Only the kustomize install's policy exists yet.
			t.Run("kustomize/admission policy enforced", calls.checkEnforced)
		}
		t.Run(in.name, func(t *testing.T) {
			ctx := context.Background()
			// helm install --create-namespace, or the admin, creates these;
			// the kustomize install carries its own Namespace.
			for _, ns := range append([]string{in.w.namespace}, in.w.watch...) {
				if in.objs.find("Namespace", "", ns) != nil {
					continue
				}
				_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
					Name: ns, Labels: map[string]string{podSecurityWarn: "restricted"},
				}}, metav1.CreateOptions{})
				if err != nil && !apierrors.IsAlreadyExists(err) {
					t.Fatal(err)
				}
			}
			apply(t, in)
			dep := typed[appsv1.Deployment](t, in.objs.ofKind("Deployment")[0])
			leaderElect := slices.Contains(dep.Spec.Template.Spec.Containers[0].Args, "--leader-elect")
			checkAccess(t, cs, in.w, dep.Spec.Template.Spec.ServiceAccountName, leaderElect)
		})
	}

	t.Run("helm/admission policy enforced", func(t *testing.T) {
		// Remove every binding and wait until the API server has dropped them
		// all, then apply the chart's defaults again: its binding alone is
		// then in force.
		ctx := context.Background()
		err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
		NewWithT(t).Expect(err).NotTo(HaveOccurred())
		calls.checkNotEnforced(t)
		apply(t, installs[1])
		calls.checkEnforced(t)
	})
}

// startControlPlane starts kube-apiserver and etcd and returns an admin
// kubeconfig file and REST config.
func startControlPlane(t *testing.T) (string, *rest.Config) {
	t.Helper()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		out, err := run(filepath.Join(root, "hack", "control-plane.sh"))
		if err != nil {
			t.Fatalf("KUBEBUILDER_ASSETS is not set and hack/control-plane.sh failed: %v", err)
		}
		assets = strings.TrimSpace(string(out))
	}
	env := &envtest.Environment{BinaryAssetsDirectory: assets}
	cfg, err := env.Start()
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop control plane: %v", err)
		}
	})
	if err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	user, err := env.AddUser(envtest.User{Name: "install-test", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	return kubeconfig, cfg
}

// checkAccess asks the API server (SubjectAccessReview) whether the manager's
// ServiceAccount may do each verb of config/rbac/role.yaml where it must
// (everywhere, or in each watched namespace) and may not where it must not
// (outside the watched namespaces), and whether it holds the leader-election
// rules in its own namespace only.
func checkAccess(t *testing.T, cs kubernetes.Interface, w want, sa string, leaderElect bool) {
	t.Helper()
	user := "system:serviceaccount:" + w.namespace + ":" + sa
	groups := []string{"system:serviceaccounts", "system:serviceaccounts:" + w.namespace, "system:authenticated"}
	can := func(ns, verb, group, resource string) bool {
		res, sub, _ := strings.Cut(resource, "/")
		r, err := cs.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{User: user, Groups: groups, ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: ns, Verb: verb, Group: group, Resource: res, Subresource: sub,
			}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return r.Status.Allowed
	}
	expect := func(rules []rbacv1.PolicyRule, ns string, allowed bool) {
		t.Helper()
		for _, r := range rules {
			for _, group := range r.APIGroups {
				for _, res := range r.Resources {
					for _, verb := range r.Verbs {
						if can(ns, verb, group, res) != allowed {
							where := ns
							if where == "" {
								where = "cluster-wide"
							}
							t.Errorf("%s: %s %s.%s in %s: allowed=%v, want %v", user, verb, res, group, where, !allowed, allowed)
						}
					}
				}
			}
		}
	}
	manager, leader := managerRules(t), leaderElectionRules(t)
	if len(w.watch) == 0 {
		expect(manager, "", true) // the manager's cache lists and watches across namespaces
		expect(manager, "default", true)
	} else {
		for _, ns := range w.watch {
			expect(manager, ns, true)
		}
		expect(manager, "", false)
		expect(manager, "default", false)
	}
	if leaderElect {
		expect(leader, w.namespace, true)
	}
	expect([]rbacv1.PolicyRule{{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"create", "update"}}}, "default", false)
}

const podSecurityWarn = "pod-security.kubernetes.io/warn"

var outboundCalls = schema.GroupVersionResource{Group: "millis.callops.dev", Version: "v1alpha1", Resource: "outboundcalls"}

// policyProbe changes the metadata of OutboundCalls to see whether the
// admission policy is in force.
type policyProbe struct {
	dyn       dynamic.Interface
	namespace string
	n         int
}

// newCall creates an OutboundCall, with a dial record when dialed.
func (p *policyProbe) newCall(t *testing.T, dialed bool) string {
	g := NewWithT(t)
	ctx := context.Background()
	calls := p.dyn.Resource(outboundCalls).Namespace(p.namespace)
	p.n++
	u, err := calls.Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "millis.callops.dev/v1alpha1", "kind": "OutboundCall",
		"metadata": map[string]any{"name": fmt.Sprint("policy-probe-", p.n)},
		"spec": map[string]any{
			"agentID": "agent-1", "fromPhone": "+15550100001", "toPhone": "+15550100002",
			"metadata": map[string]any{"step": "created"},
		},
	}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	if dialed {
		g.Expect(unstructured.SetNestedMap(u.Object, map[string]any{
			"attempt": int64(1), "ref": "install-test", "intentTime": time.Now().UTC().Format(time.RFC3339),
		}, "status", "dial")).To(Succeed())
		_, err = calls.UpdateStatus(ctx, u, metav1.UpdateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
	}
	return u.GetName()
}

func (p *policyProbe) setMetadata(name string) error {
	ctx := context.Background()
	calls := p.dyn.Resource(outboundCalls).Namespace(p.namespace)
	cur, err := calls.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	p.n++
	if err := unstructured.SetNestedField(cur.Object, fmt.Sprint("changed-", p.n), "spec", "metadata", "step"); err != nil {
		return err
	}
	_, err = calls.Update(ctx, cur, metav1.UpdateOptions{})
	return err
}

// checkEnforced: a dialed call's metadata is frozen (once the API server has
// loaded the policy), an undialed call's is not.
func (p *policyProbe) checkEnforced(t *testing.T) {
	g := NewWithT(t)
	dialed := p.newCall(t, true)
	g.Eventually(func() error { return p.setMetadata(dialed) }, 20*time.Second, 200*time.Millisecond).
		Should(MatchError(ContainSubstring("the call has been dialed")))
	g.Expect(p.setMetadata(p.newCall(t, false))).To(Succeed(), "the policy allows changes before the dial")
}

// checkNotEnforced waits until no binding is in force.
func (p *policyProbe) checkNotEnforced(t *testing.T) {
	dialed := p.newCall(t, true)
	NewWithT(t).Eventually(func() error { return p.setMetadata(dialed) }, 20*time.Second, 200*time.Millisecond).Should(Succeed())
}
