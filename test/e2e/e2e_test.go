// Package e2e runs the operator as a user would: the local control plane,
// the Millis simulator and the manager as separate processes, driven with
// kubectl and the sample YAML.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

var (
	root       string // repository root
	binDir     string
	kubeconfig string
	// The samples name 127.0.0.1:18080 and :8082; the tests use free ports
	// instead (see applySamples) so that they never collide with a demo.
	simAddr  = freeAddr()
	hookAddr = freeAddr()
	logsDir  string
)

const (
	sampleAPIKey   = "sim-private-key"
	sampleWebhook  = "demo-webhook-token"
	waitTimeout    = "90s"
	managerLogName = "manager.log"
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	var err error
	if root, err = filepath.Abs(filepath.Join("..", "..")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	tmp, err := os.MkdirTemp("", "millis-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	binDir, logsDir = filepath.Join(tmp, "bin"), filepath.Join(tmp, "logs")
	kubeconfig = filepath.Join(tmp, "kubeconfig")
	_ = os.MkdirAll(logsDir, 0o755)
	defer func() {
		if os.Getenv("E2E_KEEP_LOGS") != "" {
			fmt.Fprintf(os.Stderr, "e2e logs kept in %s\n", logsDir)
		}
	}()

	for name, pkg := range map[string]string{"manager": ".", "millis-simulator": "./hack/millis-simulator", "local-control-plane": "./hack/local-control-plane"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, name), pkg)
		cmd.Dir, cmd.Stdout, cmd.Stderr = root, os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n", name, err)
			return 1
		}
	}
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		out, err := exec.Command(filepath.Join(root, "hack", "control-plane.sh")).Output()
		if err != nil {
			fmt.Fprintf(os.Stderr, "hack/control-plane.sh: %v\n", err)
			return 1
		}
		assets = strings.TrimSpace(string(out))
	}

	cp, err := start("local-control-plane", []string{"KUBEBUILDER_ASSETS=" + assets},
		"--crds", filepath.Join(root, "config", "crd", "bases"), "--kubeconfig", kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cp.stop()
	if err := waitFor(60*time.Second, func() bool {
		_, err := os.Stat(kubeconfig)
		return err == nil && exec.Command("kubectl", "--kubeconfig", kubeconfig, "get", "--raw", "/readyz").Run() == nil
	}); err != nil {
		fmt.Fprintf(os.Stderr, "control plane did not come up: %v\n%s", err, cp.output())
		return 1
	}
	sim, err := start("millis-simulator", nil, "--addr", simAddr, "--ring", "500ms", "--talk", "1s")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer sim.stop()
	if err := waitFor(20*time.Second, func() bool { return dialable(simAddr) }); err != nil {
		fmt.Fprintf(os.Stderr, "simulator did not come up: %v\n%s", err, sim.output())
		return 1
	}
	return m.Run()
}

// proc is a child process with its output in a log file.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func start(name string, env []string, args ...string) (*proc, error) {
	logPath := filepath.Join(logsDir, fmt.Sprintf("%s-%d.log", name, time.Now().UnixNano()))
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(binDir, name), args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); f.Close(); close(p.done) }()
	return p, nil
}

func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

func (p *proc) output() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// exitCode waits for the process to end on its own and returns its code.
func (p *proc) exitCode(timeout time.Duration) (int, error) {
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode(), nil
	case <-time.After(timeout):
		return 0, fmt.Errorf("%s still running after %s", p.name, timeout)
	}
}

func startManager(t *testing.T, env ...string) *proc {
	t.Helper()
	p, err := start("manager", append([]string{"KUBECONFIG=" + kubeconfig}, env...),
		"--millis-webhook-bind-address", hookAddr, "--metrics-bind-address", "0",
		"--health-probe-bind-address", "127.0.0.1:0", "--call-poll-interval", "2s", "--retry-interval", "1s", "--agent-create-visibility-delay", "2s",
		"--zap-log-level", "debug")
	if err != nil {
		t.Fatal(err)
	}
	if err := waitFor(20*time.Second, func() bool { return dialable(hookAddr) }); err != nil {
		t.Fatalf("manager did not come up: %v\n%s", err, p.output())
	}
	return p
}

func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := kubectlE(args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func kubectlE(args ...string) (string, error) {
	cmd := exec.Command("kubectl", append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Dir = root
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return buf.String(), err
}

func waitFor(timeout time.Duration, ok func() bool) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if ok() {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("timed out after %s", timeout)
}

func dialable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// simDials counts the calls the simulator placed to a number.
func simDials(t *testing.T, to string) int {
	t.Helper()
	resp, err := http.Get("http://" + simAddr + "/_sim/ledger?to=" + strings.ReplaceAll(to, "+", "%2B"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ledger struct {
		Total int `json:"total"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ledger); err != nil {
		t.Fatal(err)
	}
	return ledger.Total
}

// simAgentsNamed counts the simulator's agents with a name, through the API.
func simAgentsNamed(t *testing.T, name string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+simAddr+"/agents", nil)
	req.Header.Set("authorization", sampleAPIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list []struct {
		Name string `json:"name"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, a := range list {
		if a.Name == name {
			n++
		}
	}
	return n
}

func setFaults(t *testing.T, faults string) {
	t.Helper()
	resp, err := http.Post("http://"+simAddr+"/_sim/faults", "application/json", strings.NewReader(faults))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("set faults %s: HTTP %d", faults, resp.StatusCode)
	}
}

func waitPhase(t *testing.T, ns, name, phase string) {
	t.Helper()
	if out, err := kubectlE("wait", "-n", ns, "outboundcall/"+name, "--for=jsonpath={.status.phase}="+phase, "--timeout="+waitTimeout); err != nil {
		status, _ := kubectlE("get", "-n", ns, "outboundcall/"+name, "-o", "yaml")
		t.Fatalf("%s/%s did not reach %s: %v\n%s\n%s", ns, name, phase, err, out, status)
	}
}

func jsonpath(t *testing.T, ns, obj, path string) string {
	t.Helper()
	return kubectl(t, "get", "-n", ns, obj, "-o", "jsonpath={"+path+"}")
}

func TestSamplesEndToEnd(t *testing.T) {
	mgr := startManager(t)
	defer mgr.stop()

	applySamples(t)
	if out, err := kubectlE("wait", "-n", "sales", "millisaccount/default", "--for=condition=Ready", "--timeout="+waitTimeout); err != nil {
		t.Fatalf("account not Ready: %v\n%s\n%s", err, out, mgr.output())
	}
	if credit := jsonpath(t, "sales", "millisaccount/default", ".status.credit"); credit == "" {
		t.Error("the account shows no credit")
	}

	for _, agent := range []string{"support", "legacy"} {
		if out, err := kubectlE("wait", "-n", "sales", "agent/"+agent, "--for=condition=Ready", "--timeout="+waitTimeout); err != nil {
			t.Fatalf("Agent %s not Ready: %v\n%s", agent, err, out)
		}
	}
	if n := simAgentsNamed(t, "Support agent"); n != 1 {
		t.Errorf("%d Millis agents named \"Support agent\", want 1", n)
	}
	waitPhase(t, "sales", "welcome-john", "Succeeded")
	if got := jsonpath(t, "sales", "outboundcall/welcome-john", ".status.callStatus"); got != "user-ended" {
		t.Errorf("welcome-john callStatus = %q, want user-ended", got)
	}
	if got := jsonpath(t, "sales", "outboundcall/welcome-john", ".status.sessionID"); got == "" {
		t.Error("welcome-john has no session ID")
	}
	if n := simDials(t, "+15550100002"); n != 1 {
		t.Errorf("welcome-john was dialed %d times, want 1", n)
	}
	if out, err := kubectlE("wait", "-n", "sales", "outboundcall/welcome-john", "--for=condition=Complete", "--timeout=5s"); err != nil {
		t.Errorf("kubectl wait --for=condition=Complete: %v\n%s", err, out)
	}

	// The demo campaign completes, each recipient dialed as its policy allows.
	if out, err := kubectlE("wait", "-n", "sales", "callcampaign/demo-campaign", "--for=condition=Complete", "--timeout="+waitTimeout); err != nil {
		status, _ := kubectlE("get", "-n", "sales", "callcampaign/demo-campaign", "-o", "yaml")
		t.Fatalf("demo-campaign did not complete: %v\n%s\n%s", err, out, status)
	}
	for to, want := range map[string]int{
		"+15550100110": 1, // listed twice, called once
		"+15550100191": 2, // busy, retried once
		"+15550100192": 2, // no-answer, retried once
		"+15550100120": 1,
		"+15550100140": 0, // do-not-call
	} {
		if n := simDials(t, to); n != want {
			t.Errorf("demo-campaign dialed %s %d times, want %d", to, n, want)
		}
	}
	if got := jsonpath(t, "sales", "callcampaign/demo-campaign", ".status.progress"); got != "6/6" {
		t.Errorf("demo-campaign progress %q, want 6/6 (7 rows, one a duplicate)", got)
	}
	// The contract campaign starts on 2026-12-01: it waits and dials nobody.
	if start, _ := time.Parse(time.RFC3339, "2026-12-01T09:00:00Z"); time.Now().Before(start) && simDials(t, "+15550100030") != 0 {
		t.Errorf("renewal-nov dialed before its start time")
	}

	// Every other sample call finishes too, each dialed once.
	names := strings.Fields(kubectl(t, "get", "outboundcalls", "-n", "sales", "-l", "!"+"millis.callops.dev/campaign", "-o", "jsonpath={.items[*].metadata.name}"))
	for _, name := range names {
		if err := waitFor(90*time.Second, func() bool {
			p := jsonpath(t, "sales", "outboundcall/"+name, ".status.phase")
			return p == "Succeeded" || p == "Failed"
		}); err != nil {
			t.Errorf("%s did not finish", name)
			continue
		}
		to := jsonpath(t, "sales", "outboundcall/"+name, ".spec.toPhone")
		if n := simDials(t, to); n != 1 {
			t.Errorf("%s was dialed %d times, want 1", name, n)
		}
	}
	// kubectl shows the printer columns.
	table := kubectl(t, "get", "ocall", "-n", "sales")
	for _, col := range []string{"PHASE", "TO", "SESSION", "CALL-STATUS", "AGE"} {
		if !strings.Contains(table, col) {
			t.Errorf("kubectl get ocall lacks column %s:\n%s", col, table)
		}
	}

	mgr.stop()
	assertNoSecretsInLog(t, mgr.output(), names)
	assertNoSecretsInEvents(t, names)
}

// assertNoSecretsInEvents checks every Event in the cluster (both event
// APIs) for the API key, the webhook token and the calls' full numbers.
func assertNoSecretsInEvents(t *testing.T, callNames []string) {
	t.Helper()
	events := kubectl(t, "get", "events.events.k8s.io", "-A", "-o", "json") + kubectl(t, "get", "events", "-A", "-o", "json")
	if !strings.Contains(events, "millis-operator") {
		t.Fatalf("no events from the operator; the check would prove nothing:\n%.2000s", events)
	}
	assertNoSecretsIn(t, "an event", events, callNames)
}

// assertNoSecretsInLog checks the manager's own log for the API key, the
// webhook token and full phone numbers.
func assertNoSecretsInLog(t *testing.T, log string, callNames []string) {
	t.Helper()
	if !strings.Contains(log, "Dialing") {
		t.Fatalf("the manager log looks empty; the check would prove nothing:\n%s", log)
	}
	assertNoSecretsIn(t, "the manager log", log, callNames)
}

// assertNoSecretsIn fails if text holds the API key, the webhook token or
// the full number of one of the sample calls.
func assertNoSecretsIn(t *testing.T, what, text string, callNames []string) {
	t.Helper()
	for _, secret := range []string{sampleAPIKey, sampleWebhook} {
		if strings.Contains(text, secret) {
			t.Errorf("%s contains a secret value %q", what, secret)
		}
	}
	for _, name := range callNames {
		to, _ := kubectlE("get", "-n", "sales", "outboundcall/"+name, "-o", "jsonpath={.spec.toPhone}")
		if to != "" && strings.Contains(text, to) {
			t.Errorf("%s contains the full phone number of %s", what, name)
		}
	}
}

// TestCrashRecovery kills the manager at each point of the dial protocol,
// restarts it, and checks that every call ends with exactly one dial.
func TestCrashRecovery(t *testing.T) {
	kubectl(t, "create", "namespace", "crash")
	applyAccount(t, "crash")

	cases := []struct {
		name, to, crashpoint, faults string
	}{
		{"after-intent", "+15550200010", "after-intent", ""},
		{"after-dial", "+15550200020", "after-dial", ""},
		{"created-then-500", "+15550200030", "", `{"create_then_500_next": 1}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.faults != "" {
				setFaults(t, c.faults)
				defer setFaults(t, `{}`)
			}
			var env []string
			if c.crashpoint != "" {
				env = []string{"MILLIS_OPERATOR_CRASHPOINTS=" + c.crashpoint}
			}
			mgr := startManager(t, env...)
			if _, err := kubectlE("wait", "-n", "crash", "millisaccount/default", "--for=condition=Ready", "--timeout=30s"); err != nil {
				t.Fatalf("account not Ready:\n%s", mgr.output())
			}
			applyStdin(t, fmt.Sprintf(`apiVersion: millis.callops.dev/v1alpha1
kind: OutboundCall
metadata: {name: %s, namespace: crash}
spec:
  agentID: "-OKdqbqetEcM4ak369ym"
  fromPhone: "+15550100001"
  toPhone: %q
  metadata: {userName: Crash}
`, c.name, c.to))
			if c.crashpoint != "" {
				code, err := mgr.exitCode(30 * time.Second)
				if err != nil || code != 97 {
					mgr.stop()
					t.Fatalf("manager did not crash at %s (code %d, %v):\n%s", c.crashpoint, code, err, mgr.output())
				}
				mgr = startManager(t)
			}
			defer mgr.stop()
			waitPhase(t, "crash", c.name, "Succeeded")
			if n := simDials(t, c.to); n != 1 {
				t.Errorf("%s: %d dials, want exactly 1", c.name, n)
			}
			if got := jsonpath(t, "crash", "outboundcall/"+c.name, ".status.dial.attempt"); c.crashpoint == "after-intent" && got != "2" {
				t.Errorf("after-intent: dial attempt = %s, want 2 (the first attempt was proven absent, then redialed)", got)
			}
		})
	}
}

// applySamples applies config/samples as written, except for the two local
// addresses, which point at this test's simulator and receiver.
func applySamples(t *testing.T) {
	t.Helper()
	rendered := kubectl(t, "kustomize", "config/samples/")
	rendered = strings.ReplaceAll(rendered, "127.0.0.1:18080", simAddr)
	rendered = strings.ReplaceAll(rendered, "127.0.0.1:8082", hookAddr)
	applyStdin(t, rendered)
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestAgentCreateCrash kills the manager right after Millis created an
// agent, before the operator recorded its ID: the restarted manager finds it
// instead of creating a second one.
func TestAgentCreateCrash(t *testing.T) {
	for _, point := range []string{"agent-after-intent", "agent-after-create"} {
		t.Run(point, func(t *testing.T) {
			ns := "agent-" + point
			kubectl(t, "create", "namespace", ns)
			name := "Crash agent " + point
			mgr := startManager(t, "MILLIS_OPERATOR_CRASHPOINTS="+point)
			applyAccount(t, ns)
			applyStdin(t, fmt.Sprintf(`apiVersion: millis.callops.dev/v1alpha1
kind: Agent
metadata: {name: crashy, namespace: %[1]s}
spec:
  displayName: %[2]q
  config:
    prompt: "You help {userName}."
    voice: {provider: elevenlabs, voiceID: "21m00Tcm4TlvDq8ikWAM"}
`, ns, name))
			code, err := mgr.exitCode(30 * time.Second)
			if err != nil || code != 97 {
				mgr.stop()
				t.Fatalf("manager did not crash at %s (code %d, %v):\n%s", point, code, err, mgr.output())
			}
			mgr = startManager(t)
			defer mgr.stop()
			if out, err := kubectlE("wait", "-n", ns, "agent/crashy", "--for=condition=Ready", "--timeout="+waitTimeout); err != nil {
				t.Fatalf("Agent not Ready after restart: %v\n%s\n%s", err, out, mgr.output())
			}
			if n := simAgentsNamed(t, name); n != 1 {
				t.Errorf("%s: %d Millis agents named %q, want exactly 1", point, n, name)
			}
			id := jsonpath(t, ns, "agent/crashy", ".status.agentID")
			if ann := jsonpath(t, ns, "agent/crashy", `.metadata.annotations.millis\.callops\.dev/external-id`); ann != id || id == "" {
				t.Errorf("external-id annotation %q, status.agentID %q", ann, id)
			}
		})
	}
}

// applyAccount creates the credentials and a Ready-able MillisAccount
// "default" in namespace ns, pointing at this test's simulator and receiver.
func applyAccount(t *testing.T, ns string) {
	t.Helper()
	applyAccountWebhook(t, ns, hookAddr)
}

// applyAccountWebhook is applyAccount with Millis's webhooks sent to hook.
func applyAccountWebhook(t *testing.T, ns, hook string) {
	t.Helper()
	applyStdin(t, fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: millis-credentials, namespace: %[1]s}
stringData: {apiKey: %[2]s, webhookToken: %[3]s}
---
apiVersion: millis.callops.dev/v1alpha1
kind: MillisAccount
metadata: {name: default, namespace: %[1]s}
spec:
  baseURL: http://%[4]s
  apiKeySecretRef: {name: millis-credentials, key: apiKey}
  webhook:
    url: http://%[5]s
    tokenSecretRef: {name: millis-credentials, key: webhookToken}
  dialRecovery:
    callLogVisibilityDelay: 2s
`, ns, sampleAPIKey, sampleWebhook, simAddr, hook))
}

func applyStdin(t *testing.T, yaml string) {
	t.Helper()
	cmd := exec.CommandContext(context.Background(), "kubectl", "--kubeconfig", kubeconfig, "apply", "-f", "-")
	cmd.Stdin = strings.NewReader(yaml)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
}

// TestCampaignSurvivesManagerKills kills the manager (SIGKILL) several times
// during a 1,000-recipient campaign. Every recipient must be dialed exactly
// as often as the retry policy allows, and none lost.
func TestCampaignSurvivesManagerKills(t *testing.T) {
	const n = 1000
	ns := "kills"
	kubectl(t, "create", "namespace", ns)
	var csv strings.Builder
	csv.WriteString("phone,userName\n")
	for i := 0; i < n; i++ {
		suffix := "10" // answered: one dial
		if i%10 == 0 {
			suffix = "91" // busy: retried once, so two dials
		}
		fmt.Fprintf(&csv, "+1777%05d%s,user%d\n", i, suffix, i)
	}
	cm, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]string{"name": "list", "namespace": ns}, "data": map[string]string{"list.csv": csv.String()}})
	applyStdin(t, string(cm))
	applyAccount(t, ns)
	applyStdin(t, fmt.Sprintf(`apiVersion: millis.callops.dev/v1alpha1
kind: CallCampaign
metadata: {name: survivor, namespace: %[1]s}
spec:
  agentID: "-OKdqbqetEcM4ak369ym"
  fromPhone: "+15550100001"
  recipientsFrom: [{configMapKeyRef: {name: list, key: list.csv}}]
  schedule: {callingWindows: [{start: "00:00", end: "24:00"}]}
  maxConcurrency: 50
  retry: {maxAttempts: 2, backoff: 1s, retryOn: [busy]}
  childHistoryLimit: 50
`, ns))

	for kill := 0; kill < 4; kill++ {
		mgr := startManager(t)
		time.Sleep(time.Duration(3+kill*2) * time.Second)
		_ = syscall.Kill(-mgr.cmd.Process.Pid, syscall.SIGKILL)
		<-mgr.done
	}
	mgr := startManager(t)
	defer mgr.stop()
	if out, err := kubectlE("wait", "-n", ns, "callcampaign/survivor", "--for=condition=Complete", "--timeout=600s"); err != nil {
		status, _ := kubectlE("get", "-n", ns, "callcampaign/survivor", "-o", "yaml")
		t.Fatalf("campaign did not complete: %v\n%s\n%s", err, out, status)
	}
	if got := jsonpath(t, ns, "callcampaign/survivor", ".status.succeeded"); got != "900" {
		t.Errorf("succeeded = %s, want 900", got)
	}
	if got := jsonpath(t, ns, "callcampaign/survivor", ".status.failed"); got != "100" {
		t.Errorf("failed = %s, want 100 (busy twice)", got)
	}
	wrong := 0
	for i := 0; i < n; i++ {
		suffix, want := "10", 1
		if i%10 == 0 {
			suffix, want = "91", 2
		}
		if got := simDials(t, fmt.Sprintf("+1777%05d%s", i, suffix)); got != want {
			wrong++
			if wrong <= 5 {
				t.Errorf("recipient %d dialed %d times, want %d", i, got, want)
			}
		}
	}
	if wrong > 0 {
		t.Errorf("%d of %d recipients dialed a wrong number of times", wrong, n)
	}
}
