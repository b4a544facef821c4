package install

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// chartCase is one combination of chart values.
type chartCase struct {
	name      string
	release   string
	namespace string
	values    string // values.yaml content
	want      want
	check     func(t *testing.T, objs objects, dep *appsv1.Deployment)
}

// chartCases are the value combinations rendered, linted and applied. Each
// release has its own namespace and names, so that all of them can be
// applied to one cluster.
var chartCases = []chartCase{{
	name: "defaults", release: "millis", namespace: "millis-system",
	want: want{namespace: "millis-system", replicas: 2},
	check: func(t *testing.T, objs objects, dep *appsv1.Deployment) {
		g := NewWithT(t)
		for _, kind := range []string{"Ingress", "ServiceMonitor", "NetworkPolicy"} {
			g.Expect(objs.ofKind(kind)).To(BeEmpty(), "no %s by default", kind)
		}
		b, err := os.ReadFile(filepath.Join(root, chartDir, "Chart.yaml"))
		g.Expect(err).NotTo(HaveOccurred())
		var chart struct {
			AppVersion string `json:"appVersion"`
		}
		g.Expect(yaml.Unmarshal(b, &chart)).To(Succeed())
		g.Expect(chart.AppVersion).NotTo(BeEmpty())
		g.Expect(dep.Spec.Template.Spec.Containers[0].Image).To(Equal("ghcr.io/callops/millis-operator:"+chart.AppVersion), "the image tag defaults to appVersion")
		g.Expect(dep.Spec.Template.Spec.Containers[0].ImagePullPolicy).To(Equal(corev1.PullIfNotPresent))
	},
}, {
	name: "ingress-tls", release: "edge", namespace: "millis-edge",
	values: `
ingress:
  enabled: true
  className: nginx
  host: millis-hooks.example.com
  annotations:
    cert-manager.io/cluster-issuer: letsencrypt
  tls:
    secretName: millis-hooks-tls
webhookReceiver:
  trustedProxies: [10.42.0.0/16, 192.168.7.1]
image:
  repository: registry.example.com/millis-operator
  tag: v9.9.9
  pullPolicy: Always
`,
	want: want{namespace: "millis-edge", replicas: 2},
	check: func(t *testing.T, objs objects, dep *appsv1.Deployment) {
		g := NewWithT(t)
		c := dep.Spec.Template.Spec.Containers[0]
		g.Expect(c.Image).To(Equal("registry.example.com/millis-operator:v9.9.9"))
		g.Expect(c.ImagePullPolicy).To(Equal(corev1.PullAlways))
		g.Expect(c.Args).To(ContainElement("--millis-webhook-trusted-proxies=10.42.0.0/16,192.168.7.1"), "behind the Ingress, its proxies are trusted")
		ings := allTyped[networkingv1.Ingress](t, objs, "Ingress")
		g.Expect(ings).To(HaveLen(1))
		ing := ings[0]
		g.Expect(ing.Spec.IngressClassName).To(HaveValue(Equal("nginx")))
		g.Expect(ing.Annotations).To(HaveKeyWithValue("cert-manager.io/cluster-issuer", "letsencrypt"))
		g.Expect(ing.Spec.TLS).To(ConsistOf(networkingv1.IngressTLS{Hosts: []string{"millis-hooks.example.com"}, SecretName: "millis-hooks-tls"}))
		g.Expect(ing.Spec.Rules).To(HaveLen(1))
		g.Expect(ing.Spec.Rules[0].Host).To(Equal("millis-hooks.example.com"))
		paths := ing.Spec.Rules[0].HTTP.Paths
		g.Expect(paths).To(HaveLen(1))
		// The receiver serves /millis/<namespace>/<account>/...: the Ingress
		// routes exactly that prefix to the receiver's Service port.
		g.Expect(paths[0].Path).To(Equal("/millis"))
		g.Expect(paths[0].PathType).To(HaveValue(Equal(networkingv1.PathTypePrefix)))
		hook := serviceFor(t, objs, "millis-edge", dep.Spec.Template.Labels, c, containerPort(c, intstr.FromString("millis-webhook")))
		g.Expect(paths[0].Backend.Service).NotTo(BeNil())
		g.Expect(paths[0].Backend.Service.Name).To(Equal(hook.Name), "the Ingress routes to the receiver's Service")
		g.Expect(paths[0].Backend.Service.Port.Name).To(Equal(hook.Spec.Ports[0].Name), "the Ingress names the receiver's Service port")
	},
}, {
	name: "servicemonitor-networkpolicy", release: "watch", namespace: "millis-monitoring",
	values: `
ports: {metrics: 9090, health: 9091, webhook: 9443}
metrics:
  service: {port: 8443}
  serviceMonitor:
    enabled: true
    labels: {release: prometheus}
    interval: 15s
networkPolicy:
  enabled: true
  webhook:
    from:
    - namespaceSelector:
        matchLabels: {kubernetes.io/metadata.name: ingress-nginx}
  metrics:
    namespaceSelector:
      matchLabels: {kubernetes.io/metadata.name: observability}
    podSelector:
      matchLabels: {app.kubernetes.io/name: prometheus}
  egress:
    apiServer:
    - ipBlock: {cidr: 10.0.0.10/32}
`,
	want: want{namespace: "millis-monitoring", replicas: 2},
	check: func(t *testing.T, objs objects, dep *appsv1.Deployment) {
		g := NewWithT(t)
		c := dep.Spec.Template.Spec.Containers[0]
		podLabels := labels.Set(dep.Spec.Template.Labels)
		metricsSvc := serviceFor(t, objs, "millis-monitoring", podLabels, c, 9090)
		hookSvc := serviceFor(t, objs, "millis-monitoring", podLabels, c, 9443)
		g.Expect(metricsSvc.Spec.Ports[0].Port).To(Equal(int32(8443)))

		sms := objs.ofKind("ServiceMonitor")
		g.Expect(sms).To(HaveLen(1))
		sm := sms[0]
		g.Expect(sm.GetAPIVersion()).To(Equal("monitoring.coreos.com/v1"))
		g.Expect(sm.GetLabels()).To(HaveKeyWithValue("release", "prometheus"))
		sel := nestedSelector(t, sm, "spec", "selector")
		g.Expect(sel.Matches(labels.Set(metricsSvc.Labels))).To(BeTrue(), "the ServiceMonitor selects the metrics Service")
		g.Expect(sel.Matches(labels.Set(hookSvc.Labels))).To(BeFalse(), "the ServiceMonitor does not scrape the receiver")
		names, _, _ := unstructured.NestedStringSlice(sm.Object, "spec", "namespaceSelector", "matchNames")
		g.Expect(names).To(Equal([]string{"millis-monitoring"}))
		endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
		g.Expect(endpoints).To(HaveLen(1))
		ep := endpoints[0].(map[string]any)
		g.Expect(ep).To(HaveKeyWithValue("port", metricsSvc.Spec.Ports[0].Name), "the ServiceMonitor scrapes the metrics Service port")
		g.Expect(ep).To(HaveKeyWithValue("honorLabels", true), "the operator's namespace label must survive the scrape")
		g.Expect(ep).To(HaveKeyWithValue("interval", "15s"))

		nps := allTyped[networkingv1.NetworkPolicy](t, objs, "NetworkPolicy")
		g.Expect(nps).To(HaveLen(1))
		np := nps[0]
		npSel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(npSel.Matches(podLabels)).To(BeTrue(), "the NetworkPolicy applies to the manager pods")
		g.Expect(npSel.Empty()).To(BeFalse(), "the NetworkPolicy applies to nothing else in the namespace")
		g.Expect(np.Spec.PolicyTypes).To(ConsistOf(networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress))
		from := map[int32][]networkingv1.NetworkPolicyPeer{}
		for _, r := range np.Spec.Ingress {
			for _, p := range r.Ports {
				g.Expect(p.Port).NotTo(BeNil())
				port := containerPort(c, *p.Port)
				g.Expect(port).NotTo(BeZero(), "ingress port %s is a port of the manager", p.Port.String())
				from[port] = append(from[port], r.From...)
			}
		}
		g.Expect(from).To(HaveLen(2), "ingress only to the receiver and metrics ports")
		g.Expect(from[9443]).To(Equal([]networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "ingress-nginx"}}}}))
		g.Expect(from[9090]).To(Equal([]networkingv1.NetworkPolicyPeer{{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "observability"}},
			PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "prometheus"}},
		}}))
		egress := map[string][]networkingv1.NetworkPolicyPeer{}
		for _, r := range np.Spec.Egress {
			for _, p := range r.Ports {
				key := string(*p.Protocol) + "/" + p.Port.String()
				egress[key] = append(egress[key], r.To...)
			}
		}
		g.Expect(egress).To(HaveKey("TCP/443"), "egress to HTTPS: the Millis API")
		g.Expect(egress).To(HaveKeyWithValue("TCP/6443", []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.10/32"}}}), "egress to the API server endpoint")
		g.Expect(egress).To(HaveKey("UDP/53"), "egress to DNS")
		g.Expect(egress).To(HaveKey("TCP/53"), "egress to DNS")
	},
}, {
	name: "namespaced", release: "tenant", namespace: "millis-tenant",
	values: `
watchNamespaces: [sales, support]
`,
	want: want{namespace: "millis-tenant", watch: []string{"sales", "support"}, replicas: 2},
}, {
	name: "single-replica-tuned", release: "solo", namespace: "millis-solo",
	values: `
replicaCount: 1
leaderElection: {enabled: false}
config:
  callPollInterval: 45s
  maxConcurrentReconciles: 16
  kubeAPIQPS: 75.5
  kubeAPIBurst: 1048576
  logLevel: debug
webhookReceiver:
  maxBodyBytes: 2097152
  failureRate: 0.5
extraArgs: [--pprof-bind-address=127.0.0.1:6060]
`,
	want: want{namespace: "millis-solo", replicas: 1},
	check: func(t *testing.T, objs objects, dep *appsv1.Deployment) {
		g := NewWithT(t)
		args := dep.Spec.Template.Spec.Containers[0].Args
		g.Expect(args).NotTo(ContainElement(HavePrefix("--leader-elect")))
		g.Expect(args).To(ContainElements("--call-poll-interval=45s", "--max-concurrent-reconciles=16",
			"--kube-api-qps=75.5", "--kube-api-burst=1048576", "--zap-log-level=debug", "--pprof-bind-address=127.0.0.1:6060",
			"--millis-webhook-max-body-bytes=2097152", "--millis-webhook-failure-rate=0.5"))
		for _, r := range allTyped[rbacv1.Role](t, objs, "Role") {
			g.Expect(r.Name).NotTo(ContainSubstring("leader"), "no leader-election Role without leader election")
		}
	},
}}

// renderChart runs helm template for a case, CRDs included.
func renderChart(t *testing.T, c chartCase) objects {
	t.Helper()
	helm := helmBin(t)
	out, err := renders.get("helm/"+c.name, func() ([]byte, error) {
		return helmTemplate(helm, c.release, c.namespace, c.values)
	})
	if err != nil {
		t.Fatal(err)
	}
	objs, err := parseManifests(out)
	if err != nil {
		t.Fatalf("helm template output: %v", err)
	}
	return objs
}

func helmTemplate(helm, release, namespace, values string) ([]byte, error) {
	f, err := os.CreateTemp("", "millis-values-*.yaml")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(values); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return run(helm, "template", release, chartDir, "--namespace", namespace, "--include-crds", "--values", f.Name())
}

func TestChartTemplate(t *testing.T) {
	for _, c := range chartCases {
		t.Run(c.name, func(t *testing.T) {
			objs := renderChart(t, c)
			dep := checkInstall(t, objs, c.want)
			for _, u := range objs {
				if u.GetKind() == "CustomResourceDefinition" {
					continue
				}
				NewWithT(t).Expect(u.GetLabels()).To(HaveKeyWithValue("app.kubernetes.io/instance", c.release), "%s %s carries the release labels", u.GetKind(), u.GetName())
			}
			if c.check != nil {
				c.check(t, objs, dep)
			}
		})
	}
}

func TestChartLint(t *testing.T) {
	helm := helmBin(t)
	for _, c := range chartCases {
		t.Run(c.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "values.yaml")
			if err := os.WriteFile(f, []byte(c.values), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := run(helm, "lint", "--strict", chartDir, "--namespace", c.namespace, "--values", f)
			if err != nil {
				t.Fatal(err)
			}
			NewWithT(t).Expect(string(out)).To(ContainSubstring("0 chart(s) failed"))
		})
	}
}

// TestChartRefuses checks the value combinations the chart refuses to render.
func TestChartRefuses(t *testing.T) {
	helm := helmBin(t)
	for _, c := range []struct{ name, values, message string }{
		{"replicas without leader election", "replicaCount: 2\nleaderElection: {enabled: false}\n", "replicaCount > 1 requires leaderElection.enabled"},
		{"ingress without host", "ingress: {enabled: true}\n", "ingress.enabled requires ingress.host"},
		{"bad namespace", "watchNamespaces: [Sales]\n", `"Sales" is not a namespace name`},
		{"existing service account without name", "serviceAccount: {create: false}\n", "serviceAccount.name is required"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := helmTemplate(helm, "bad", "millis-system", c.values)
			g := NewWithT(t)
			g.Expect(err).To(HaveOccurred())
			g.Expect(err.Error()).To(ContainSubstring(c.message))
		})
	}
}

// TestChartSync fails when the chart's copies of config/ drift: run
// `make chart-sync` after `make manifests`.
func TestChartSync(t *testing.T) {
	pairs := map[string]string{
		"config/rbac/role.yaml":                          chartDir + "/files/role.yaml",
		"config/rbac/leader_election_role.yaml":          chartDir + "/files/leader_election_role.yaml",
		"config/admission/outboundcall-dialed-spec.yaml": chartDir + "/files/outboundcall-dialed-spec.yaml",
	}
	crds, err := filepath.Glob(filepath.Join(root, "config/crd/bases/*.yaml"))
	if err != nil || len(crds) == 0 {
		t.Fatalf("no CRDs in config/crd/bases: %v", err)
	}
	for _, f := range crds {
		pairs["config/crd/bases/"+filepath.Base(f)] = chartDir + "/crds/" + filepath.Base(f)
	}
	copies, err := filepath.Glob(filepath.Join(root, chartDir, "crds", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range copies {
		if !slices.Contains(crds, filepath.Join(root, "config/crd/bases", filepath.Base(f))) {
			t.Errorf("%s/crds/%s has no source in config/crd/bases: run make chart-sync", chartDir, filepath.Base(f))
		}
	}
	for src, dst := range pairs {
		a, err := os.ReadFile(filepath.Join(root, src))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(root, dst))
		if err != nil {
			t.Errorf("%s: %v: run make chart-sync", dst, err)
			continue
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs from %s: run make chart-sync\n%s", dst, src, cmp.Diff(strings.Split(string(a), "\n"), strings.Split(string(b), "\n")))
		}
	}
}

// nestedSelector reads a metav1.LabelSelector out of an unstructured object.
func nestedSelector(t *testing.T, u *unstructured.Unstructured, fields ...string) labels.Selector {
	t.Helper()
	m, ok, err := unstructured.NestedMap(u.Object, fields...)
	if err != nil || !ok {
		t.Fatalf("%s %s: no %s: %v", u.GetKind(), u.GetName(), strings.Join(fields, "."), err)
	}
	b, err := yaml.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var ls metav1.LabelSelector
	if err := yaml.UnmarshalStrict(b, &ls); err != nil {
		t.Fatal(err)
	}
	sel, err := metav1.LabelSelectorAsSelector(&ls)
	if err != nil {
		t.Fatal(err)
	}
	return sel
}

// TestValuesDocumented fails when a value of values.yaml is missing from the
// values table of docs/install.md (a value, or a map that holds it, named in
// backquotes).
func TestValuesDocumented(t *testing.T) {
	values := readYAML[map[string]any](t, chartDir+"/values.yaml")
	doc, err := os.ReadFile(filepath.Join(root, "docs/install.md"))
	if err != nil {
		t.Fatal(err)
	}
	var leaves []string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		m, ok := v.(map[string]any)
		if !ok || len(m) == 0 {
			leaves = append(leaves, prefix)
			return
		}
		for k, child := range m {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			walk(p, child)
		}
	}
	walk("", *values)
	if len(leaves) < 20 {
		t.Fatalf("found only %d values in values.yaml", len(leaves))
	}
	for _, leaf := range leaves {
		documented := false
		for p := leaf; p != ""; {
			if bytes.Contains(doc, []byte("| `"+p+"`")) || bytes.Contains(doc, []byte(", `"+p+"`")) {
				documented = true
				break
			}
			i := strings.LastIndex(p, ".")
			if i < 0 {
				break
			}
			p = p[:i]
		}
		if !documented {
			t.Errorf("value %s is not in the values table of docs/install.md", leaf)
		}
	}
}
