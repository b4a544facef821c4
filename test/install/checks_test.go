package install

import (
	"flag"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	. "github.com/onsi/gomega"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/callops/millis-operator/internal/webhook"
)

// want is what an install must look like.
type want struct {
	namespace string   // where the manager runs
	watch     []string // namespaced mode: the watched namespaces
	replicas  int32
}

// clusterScoped are the kinds of the installs that have no namespace.
var clusterScoped = map[string]bool{
	"Namespace": true, "CustomResourceDefinition": true, "ClusterRole": true, "ClusterRoleBinding": true,
	"ValidatingAdmissionPolicy": true, "ValidatingAdmissionPolicyBinding": true,
}

// checkInstall asserts what every production install needs, whichever tool
// rendered it, and returns the manager Deployment for further checks.
func checkInstall(t *testing.T, objs objects, w want) *appsv1.Deployment {
	g := NewWithT(t)

	deps := allTyped[appsv1.Deployment](t, objs, "Deployment")
	g.Expect(deps).To(HaveLen(1), "one manager Deployment")
	dep := deps[0]
	g.Expect(dep.Namespace).To(Equal(w.namespace), "Deployment namespace")
	g.Expect(dep.Spec.Replicas).NotTo(BeNil())
	g.Expect(*dep.Spec.Replicas).To(Equal(w.replicas), "replicas")
	pod := dep.Spec.Template
	sel, err := metav1.LabelSelectorAsSelector(dep.Spec.Selector)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(sel.Matches(labels.Set(pod.Labels))).To(BeTrue(), "the Deployment selector matches its pods")
	g.Expect(pod.Spec.Containers).To(HaveLen(1), "one container")
	c := pod.Spec.Containers[0]

	checkSecurity(t, pod.Spec, c)
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		g.Expect(c.Resources.Requests).To(HaveKey(r), "resources.requests")
		g.Expect(c.Resources.Limits).To(HaveKey(r), "resources.limits")
		req, limit := c.Resources.Requests[r], c.Resources.Limits[r]
		g.Expect(req.IsZero()).To(BeFalse(), "a %s request", r)
		g.Expect(req.Cmp(limit)).To(BeNumerically("<=", 0), "request <= limit for %s", r)
	}

	args := managerArgs(t, c)
	if w.replicas > 1 {
		g.Expect(args).To(HaveKeyWithValue("leader-elect", "true"), "more than one replica needs --leader-elect")
	}
	if len(w.watch) > 0 {
		g.Expect(args).To(HaveKeyWithValue("watch-namespaces", strings.Join(w.watch, ",")), "--watch-namespaces")
	} else {
		g.Expect(args["watch-namespaces"]).To(BeEmpty(), "cluster mode watches all namespaces")
	}
	// Each listener's flag, container port and Service agree.
	ports := map[string]int32{}
	for name, flagName := range map[string]string{"metrics": "metrics-bind-address", "health": "health-probe-bind-address", "millis-webhook": "millis-webhook-bind-address"} {
		g.Expect(args).To(HaveKey(flagName), "the Deployment sets --%s", flagName)
		ports[name] = bindPort(t, args[flagName])
		cp := containerPort(c, intstr.FromString(name))
		g.Expect(cp).To(Equal(ports[name]), "container port %q serves --%s=%s", name, flagName, args[flagName])
	}
	g.Expect(c.LivenessProbe).NotTo(BeNil(), "liveness probe")
	g.Expect(c.LivenessProbe.HTTPGet).NotTo(BeNil())
	g.Expect(c.LivenessProbe.HTTPGet.Path).To(Equal("/healthz"))
	g.Expect(containerPort(c, c.LivenessProbe.HTTPGet.Port)).To(Equal(ports["health"]), "liveness probe on the health port")
	g.Expect(c.ReadinessProbe).NotTo(BeNil(), "readiness probe")
	g.Expect(c.ReadinessProbe.HTTPGet).NotTo(BeNil())
	g.Expect(c.ReadinessProbe.HTTPGet.Path).To(Equal("/readyz"))
	g.Expect(containerPort(c, c.ReadinessProbe.HTTPGet.Port)).To(Equal(ports["health"]), "readiness probe on the health port")

	webhookSvc := serviceFor(t, objs, w.namespace, pod.Labels, c, ports["millis-webhook"])
	metricsSvc := serviceFor(t, objs, w.namespace, pod.Labels, c, ports["metrics"])
	g.Expect(webhookSvc.Name).NotTo(Equal(metricsSvc.Name), "the receiver has its own Service, separate from metrics")
	g.Expect(webhookSvc.Spec.Ports).To(HaveLen(1), "the receiver Service exposes only the receiver")
	g.Expect(metricsSvc.Spec.Ports).To(HaveLen(1), "the metrics Service exposes only metrics")
	for _, s := range allTyped[corev1.Service](t, objs, "Service") {
		for _, p := range s.Spec.Ports {
			g.Expect(containerPort(c, p.TargetPort)).NotTo(Equal(ports["health"]), "Service %s does not expose the probes", s.Name)
		}
	}

	sas := allTyped[corev1.ServiceAccount](t, objs, "ServiceAccount")
	g.Expect(sas).To(ContainElement(HaveField("ObjectMeta.Name", pod.Spec.ServiceAccountName)), "the ServiceAccount the pods run as is installed")
	checkRBAC(t, objs, w, rbacv1.Subject{Kind: "ServiceAccount", Name: pod.Spec.ServiceAccountName, Namespace: w.namespace}, args["leader-elect"] == "true")

	pdbs := allTyped[policyv1.PodDisruptionBudget](t, objs, "PodDisruptionBudget")
	if w.replicas > 1 {
		g.Expect(pdbs).To(HaveLen(1), "a PodDisruptionBudget with more than one replica")
		pdbSel, err := metav1.LabelSelectorAsSelector(pdbs[0].Spec.Selector)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(pdbSel.Matches(labels.Set(pod.Labels))).To(BeTrue(), "the PodDisruptionBudget selects the manager pods")
		g.Expect(pdbs[0].Spec.MinAvailable).NotTo(BeNil())
		g.Expect(pdbs[0].Spec.MinAvailable.IntValue()).To(BeNumerically("<", int(w.replicas)), "minAvailable below replicas, or no drain could ever evict")
	} else {
		g.Expect(pdbs).To(BeEmpty(), "no PodDisruptionBudget for a single replica: it would block every drain")
	}

	checkCRDs(t, objs)
	checkAdmissionPolicy(t, objs)
	for _, u := range objs {
		switch {
		case clusterScoped[u.GetKind()]:
			g.Expect(u.GetNamespace()).To(BeEmpty(), "%s %s is cluster-scoped", u.GetKind(), u.GetName())
		case (u.GetKind() == "Role" || u.GetKind() == "RoleBinding") && slices.Contains(w.watch, u.GetNamespace()):
		default:
			g.Expect(u.GetNamespace()).To(Equal(w.namespace), "%s %s is in the operator's namespace", u.GetKind(), u.GetName())
		}
	}
	return dep
}

// checkedDeployment returns the one Deployment of an install.
func checkedDeployment(t *testing.T, objs objects) *appsv1.Deployment {
	t.Helper()
	deps := allTyped[appsv1.Deployment](t, objs, "Deployment")
	if len(deps) != 1 {
		t.Fatalf("want one Deployment, found %d", len(deps))
	}
	return deps[0]
}

// checkSecurity asserts the Pod Security Standard "restricted" settings and
// a read-only root filesystem; container settings override the pod's.
func checkSecurity(t *testing.T, spec corev1.PodSpec, c corev1.Container) {
	g := NewWithT(t)
	psc := spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	sc := c.SecurityContext
	g.Expect(sc).NotTo(BeNil(), "container securityContext")
	nonRoot := psc.RunAsNonRoot
	if sc.RunAsNonRoot != nil {
		nonRoot = sc.RunAsNonRoot
	}
	g.Expect(nonRoot).To(HaveValue(BeTrue()), "runAsNonRoot")
	for _, uid := range []*int64{psc.RunAsUser, sc.RunAsUser} {
		if uid != nil {
			g.Expect(*uid).NotTo(BeZero(), "runAsUser is not root")
		}
	}
	seccomp := psc.SeccompProfile
	if sc.SeccompProfile != nil {
		seccomp = sc.SeccompProfile
	}
	g.Expect(seccomp).NotTo(BeNil(), "seccompProfile")
	g.Expect(seccomp.Type).To(Equal(corev1.SeccompProfileTypeRuntimeDefault), "seccompProfile")
	g.Expect(sc.ReadOnlyRootFilesystem).To(HaveValue(BeTrue()), "readOnlyRootFilesystem")
	g.Expect(sc.AllowPrivilegeEscalation).To(HaveValue(BeFalse()), "allowPrivilegeEscalation")
	g.Expect(sc.Privileged == nil || !*sc.Privileged).To(BeTrue(), "not privileged")
	g.Expect(sc.Capabilities).NotTo(BeNil(), "capabilities")
	g.Expect(sc.Capabilities.Drop).To(ContainElement(corev1.Capability("ALL")), "capabilities drop ALL")
	g.Expect(sc.Capabilities.Add).To(BeEmpty(), "no capabilities added")
	g.Expect(spec.HostNetwork || spec.HostPID || spec.HostIPC).To(BeFalse(), "no host namespaces")
	for _, v := range spec.Volumes {
		g.Expect(v.HostPath).To(BeNil(), "no hostPath volume %s", v.Name)
	}
}

// managerFlags is a flag set with the flags of the manager binary: the
// flag.*Var calls of main.go (read from the source, with their types), and
// the webhook receiver and zap logging flags main.go binds.
func managerFlags(t *testing.T) *flag.FlagSet {
	src, err := os.ReadFile(filepath.Join(root, "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	for _, m := range regexp.MustCompile(`flag\.(\w+)Var\(&\w+,\s*"([a-z0-9-]+)"`).FindAllStringSubmatch(string(src), -1) {
		switch kind, name := m[1], m[2]; kind {
		case "String":
			fs.String(name, "", "")
		case "Bool":
			fs.Bool(name, false, "")
		case "Duration":
			fs.Duration(name, 0, "")
		case "Int":
			fs.Int(name, 0, "")
		case "Int64":
			fs.Int64(name, 0, "")
		case "Float64":
			fs.Float64(name, 0, "")
		default:
			t.Fatalf("main.go: flag --%s of kind %s: teach managerFlags about it", name, kind)
		}
	}
	if fs.Lookup("leader-elect") == nil || fs.Lookup("metrics-bind-address") == nil {
		t.Fatal("main.go: found no --leader-elect or --metrics-bind-address: has its flag style changed?")
	}
	hooks := webhook.DefaultOptions()
	hooks.BindFlags(fs)
	(&zap.Options{}).BindFlags(fs)
	return fs
}

// managerArgs parses the manager's command line into flag -> value ("true"
// for a bare boolean flag), asserting that the manager defines every flag
// and accepts its value.
func managerArgs(t *testing.T, c corev1.Container) map[string]string {
	g := NewWithT(t)
	g.Expect(c.Command).To(Equal([]string{"/manager"}), "the image's manager binary")
	fs := managerFlags(t)
	args := map[string]string{}
	for _, a := range c.Args {
		g.Expect(a).To(HavePrefix("--"), "argument %q is a --flag", a)
		name, value, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !ok {
			value = "true"
		}
		g.Expect(fs.Lookup(name)).NotTo(BeNil(), "--%s is a flag of the manager (main.go)", name)
		g.Expect(fs.Set(name, value)).To(Succeed(), "the manager accepts %s", a)
		g.Expect(args).NotTo(HaveKey(name), "--%s is given once", name)
		args[name] = value
	}
	return args
}

func bindPort(t *testing.T, addr string) int32 {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("bind address %q: %v", addr, err)
	}
	p, err := strconv.ParseInt(port, 10, 32)
	if err != nil {
		t.Fatalf("bind address %q: %v", addr, err)
	}
	return int32(p)
}

// containerPort resolves a port reference (a name or a number) against the
// container's ports; 0 when it names no port of the container.
func containerPort(c corev1.Container, ref intstr.IntOrString) int32 {
	for _, p := range c.Ports {
		if (ref.Type == intstr.String && p.Name == ref.StrVal) || (ref.Type == intstr.Int && p.ContainerPort == ref.IntVal) {
			return p.ContainerPort
		}
	}
	return 0
}

// serviceFor finds the one Service that routes to a container port of the
// manager pods.
func serviceFor(t *testing.T, objs objects, ns string, podLabels map[string]string, c corev1.Container, port int32) *corev1.Service {
	t.Helper()
	var found []*corev1.Service
	for _, s := range allTyped[corev1.Service](t, objs, "Service") {
		if s.Namespace != ns || len(s.Spec.Selector) == 0 || !labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(podLabels)) {
			continue
		}
		for _, p := range s.Spec.Ports {
			if containerPort(c, p.TargetPort) == port {
				found = append(found, s)
			}
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one Service routing to container port %d of the manager pods, found %d", port, len(found))
	}
	return found[0]
}

// Rules from the repository: what controller-gen generated and the
// leader-election Role.
func managerRules(t *testing.T) []rbacv1.PolicyRule {
	t.Helper()
	r := readYAML[rbacv1.ClusterRole](t, "config/rbac/role.yaml").Rules
	if len(r) == 0 {
		t.Fatal("config/rbac/role.yaml has no rules")
	}
	return r
}

func leaderElectionRules(t *testing.T) []rbacv1.PolicyRule {
	t.Helper()
	r := readYAML[rbacv1.Role](t, "config/rbac/leader_election_role.yaml").Rules
	if len(r) == 0 {
		t.Fatal("config/rbac/leader_election_role.yaml has no rules")
	}
	return r
}

func hasSubject(subjects []rbacv1.Subject, s rbacv1.Subject) bool {
	for _, x := range subjects {
		if x.Kind == s.Kind && x.Name == s.Name && x.Namespace == s.Namespace {
			return true
		}
	}
	return false
}

// checkRBAC asserts that the manager's ServiceAccount is granted exactly the
// generated rules, cluster-wide or in each watched namespace, and the
// leader-election rules in its own namespace.
func checkRBAC(t *testing.T, objs objects, w want, sa rbacv1.Subject, leaderElect bool) {
	g := NewWithT(t)
	wantRules := managerRules(t)
	var crbs []*rbacv1.ClusterRoleBinding
	for _, b := range allTyped[rbacv1.ClusterRoleBinding](t, objs, "ClusterRoleBinding") {
		if hasSubject(b.Subjects, sa) {
			crbs = append(crbs, b)
		}
	}
	roleBindings := map[string][]*rbacv1.RoleBinding{}
	for _, b := range allTyped[rbacv1.RoleBinding](t, objs, "RoleBinding") {
		if hasSubject(b.Subjects, sa) {
			roleBindings[b.Namespace] = append(roleBindings[b.Namespace], b)
		}
	}
	roleRules := func(ns string, ref rbacv1.RoleRef) []rbacv1.PolicyRule {
		g.Expect(ref.APIGroup).To(Equal(rbacv1.GroupName))
		kind := ref.Kind
		if kind == "ClusterRole" {
			ns = ""
		}
		u := objs.find(kind, ns, ref.Name)
		g.Expect(u).NotTo(BeNil(), "the bound %s %s/%s is installed", kind, ns, ref.Name)
		if kind == "ClusterRole" {
			return typed[rbacv1.ClusterRole](t, u).Rules
		}
		return typed[rbacv1.Role](t, u).Rules
	}

	if len(w.watch) == 0 {
		g.Expect(crbs).To(HaveLen(1), "cluster mode: one ClusterRoleBinding for %s", sa.Name)
		g.Expect(crbs[0].RoleRef.Kind).To(Equal("ClusterRole"))
		if d := cmp.Diff(wantRules, roleRules("", crbs[0].RoleRef)); d != "" {
			t.Errorf("ClusterRole %s differs from config/rbac/role.yaml (-want +got; run make chart-sync):\n%s", crbs[0].RoleRef.Name, d)
		}
	} else {
		g.Expect(crbs).To(BeEmpty(), "namespaced mode: nothing bound cluster-wide")
		g.Expect(objs.ofKind("ClusterRole")).To(BeEmpty(), "namespaced mode: no ClusterRole")
		for _, ns := range w.watch {
			var managers int
			for _, b := range roleBindings[ns] {
				g.Expect(b.RoleRef.Kind).To(Equal("Role"), "namespaced mode binds a Role in %s", ns)
				if cmp.Equal(wantRules, roleRules(ns, b.RoleRef)) {
					managers++
				}
			}
			g.Expect(managers).To(Equal(1), "namespaced mode: one Role with the rules of config/rbac/role.yaml bound in %s", ns)
		}
	}

	leader := roleBindings[w.namespace]
	if !leaderElect {
		return
	}
	var found bool
	for _, b := range leader {
		if b.RoleRef.Kind == "Role" && cmp.Equal(leaderElectionRules(t), roleRules(w.namespace, b.RoleRef)) {
			found = true
		}
	}
	g.Expect(found).To(BeTrue(), "a Role with the rules of config/rbac/leader_election_role.yaml is bound in %s", w.namespace)
}

// checkCRDs asserts that the install carries exactly the generated CRDs.
func checkCRDs(t *testing.T, objs objects) {
	wantCRDs := map[string]*apiextensionsv1.CustomResourceDefinition{}
	files, err := filepath.Glob(filepath.Join(root, "config/crd/bases/*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs in config/crd/bases: %v", err)
	}
	for _, f := range files {
		crd := readYAML[apiextensionsv1.CustomResourceDefinition](t, strings.TrimPrefix(f, root+"/"))
		wantCRDs[crd.Name] = crd
	}
	got := allTyped[apiextensionsv1.CustomResourceDefinition](t, objs, "CustomResourceDefinition")
	if len(got) != len(wantCRDs) {
		t.Errorf("the install has %d CRDs, config/crd/bases %d", len(got), len(wantCRDs))
	}
	for _, crd := range got {
		w, ok := wantCRDs[crd.Name]
		if !ok {
			t.Errorf("CRD %s is not in config/crd/bases", crd.Name)
			continue
		}
		if d := cmp.Diff(w.Spec, crd.Spec); d != "" {
			t.Errorf("CRD %s differs from config/crd/bases (-want +got; run make chart-sync):\n%s", crd.Name, d)
		}
	}
}

// checkAdmissionPolicy asserts that the install carries the policy of
// config/admission (renamed is fine), with a binding to it.
func checkAdmissionPolicy(t *testing.T, objs objects) {
	g := NewWithT(t)
	src := readObjects(t, "config/admission/outboundcall-dialed-spec.yaml")
	wantPolicy := typed[admissionv1.ValidatingAdmissionPolicy](t, src.ofKind("ValidatingAdmissionPolicy")[0])
	wantBinding := typed[admissionv1.ValidatingAdmissionPolicyBinding](t, src.ofKind("ValidatingAdmissionPolicyBinding")[0])

	policies := allTyped[admissionv1.ValidatingAdmissionPolicy](t, objs, "ValidatingAdmissionPolicy")
	g.Expect(policies).To(HaveLen(1), "the ValidatingAdmissionPolicy of config/admission")
	bindings := allTyped[admissionv1.ValidatingAdmissionPolicyBinding](t, objs, "ValidatingAdmissionPolicyBinding")
	g.Expect(bindings).To(HaveLen(1), "its binding")
	g.Expect(policies[0].Name).To(HaveSuffix(wantPolicy.Name))
	// YAML tools may re-fold a multi-line expression; CEL ignores the blanks.
	normalize := func(s admissionv1.ValidatingAdmissionPolicySpec) admissionv1.ValidatingAdmissionPolicySpec {
		s = *s.DeepCopy()
		for i := range s.Validations {
			s.Validations[i].Expression = strings.Join(strings.Fields(s.Validations[i].Expression), " ")
		}
		return s
	}
	if d := cmp.Diff(normalize(wantPolicy.Spec), normalize(policies[0].Spec)); d != "" {
		t.Errorf("ValidatingAdmissionPolicy %s differs from config/admission (-want +got):\n%s", policies[0].Name, d)
	}
	g.Expect(bindings[0].Spec.PolicyName).To(Equal(policies[0].Name), "the binding names the installed policy")
	b := bindings[0].Spec.DeepCopy()
	b.PolicyName = wantBinding.Spec.PolicyName
	if d := cmp.Diff(wantBinding.Spec, *b); d != "" {
		t.Errorf("ValidatingAdmissionPolicyBinding differs from config/admission (-want +got):\n%s", d)
	}
}
