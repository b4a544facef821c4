package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// replicaProxy stands in for the receiver's Service in front of two
// replicas: it spreads deliveries round-robin and, like a Service whose
// endpoint went away, skips a replica that refuses connections.
type replicaProxy struct {
	backends []string
	next     atomic.Uint64
	served   []atomic.Int64 // 2xx answers per replica
	failed   atomic.Int64   // answers other than 2xx, from any replica
}

func (p *replicaProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	first := p.next.Add(1)
	for i := range p.backends {
		b := int((first + uint64(i)) % uint64(len(p.backends)))
		req, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+p.backends[b]+r.URL.RequestURI(), bytes.NewReader(body))
		if err != nil {
			break
		}
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			continue // a dead replica
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 300 {
			p.served[b].Add(1)
		} else {
			p.failed.Add(1)
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(out)
		return
	}
	p.failed.Add(1)
	http.Error(w, "no replica answered", http.StatusBadGateway)
}

// startReplica starts a manager with leader election and its own receiver.
func startReplica(t *testing.T, hook string) *proc {
	t.Helper()
	p, err := start("manager", []string{"KUBECONFIG=" + kubeconfig},
		"--millis-webhook-bind-address", hook, "--metrics-bind-address", "0",
		"--health-probe-bind-address", "127.0.0.1:0", "--call-poll-interval", "2s", "--retry-interval", "1s",
		"--leader-elect", "--leader-election-namespace", "default",
		"--leader-elect-lease-duration", "4s", "--leader-elect-renew-deadline", "3s", "--leader-elect-retry-period", "500ms",
		"--zap-log-level", "debug")
	if err != nil {
		t.Fatal(err)
	}
	if err := waitFor(20*time.Second, func() bool { return dialable(hook) }); err != nil {
		t.Fatalf("replica did not come up: %v\n%s", err, p.output())
	}
	return p
}

// TestLeaderFailover runs two replicas with leader election during a
// campaign, kills the leader (SIGKILL) while calls are in flight, and
// checks that the other takes over: every recipient dialed exactly as the
// retry policy allows, none lost, and the end-of-call webhooks written by
// both replicas' receivers, the non-leader's included.
func TestLeaderFailover(t *testing.T) {
	const n = 300
	ns := "ha"
	kubectl(t, "create", "namespace", ns)

	hooks := []string{freeAddr(), freeAddr()}
	proxy := &replicaProxy{backends: hooks, served: make([]atomic.Int64, len(hooks))}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	var csv strings.Builder
	csv.WriteString("phone,userName\n")
	for i := 0; i < n; i++ {
		suffix := "10" // answered: one dial
		if i%10 == 0 {
			suffix = "91" // busy: retried once
		}
		fmt.Fprintf(&csv, "+1888%05d%s,user%d\n", i, suffix, i)
	}
	cm, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]string{"name": "list", "namespace": ns}, "data": map[string]string{"list.csv": csv.String()}})
	applyStdin(t, string(cm))
	applyAccountWebhook(t, ns, ln.Addr().String())

	replicas := []*proc{startReplica(t, hooks[0]), startReplica(t, hooks[1])}
	defer func() {
		for _, r := range replicas {
			r.stop()
		}
	}()
	leader := -1
	if err := waitFor(30*time.Second, func() bool {
		for i, r := range replicas {
			if isLeader(r) {
				leader = i
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatalf("no replica became leader: %v\nreplica 0:\n%s\nreplica 1:\n%s", err, tail(replicas[0].output(), 15), tail(replicas[1].output(), 15))
	}

	applyStdin(t, fmt.Sprintf(`apiVersion: millis.callops.dev/v1alpha1
kind: CallCampaign
metadata: {name: failover, namespace: %[1]s}
spec:
  agentID: "-OKdqbqetEcM4ak369ym"
  fromPhone: "+15550100001"
  recipientsFrom: [{configMapKeyRef: {name: list, key: list.csv}}]
  schedule: {callingWindows: [{start: "00:00", end: "24:00"}]}
  maxConcurrency: 30
  retry: {maxAttempts: 2, backoff: 1s, retryOn: [busy]}
  childHistoryLimit: 50
`, ns))

	// Kill the leader once a third of the campaign is done, with calls in
	// flight and children it created and claimed but may not have dialed.
	if err := waitFor(120*time.Second, func() bool {
		out, _ := kubectlE("get", "-n", ns, "callcampaign/failover", "-o", "jsonpath={.status.succeeded}")
		var done int
		_, _ = fmt.Sscan(out, &done)
		return done >= n/3
	}); err != nil {
		t.Fatalf("the campaign did not progress under the first leader: %v", err)
	}
	servedBefore := []int64{proxy.served[0].Load(), proxy.served[1].Load()}
	_ = syscall.Kill(-replicas[leader].cmd.Process.Pid, syscall.SIGKILL)
	<-replicas[leader].done
	survivor := replicas[1-leader]

	if out, err := kubectlE("wait", "-n", ns, "callcampaign/failover", "--for=condition=Complete", "--timeout=300s"); err != nil {
		status, _ := kubectlE("get", "-n", ns, "callcampaign/failover", "-o", "yaml")
		t.Fatalf("campaign did not complete after the failover: %v\n%s\n%s\nsurvivor log tail:\n%s", err, out, status, tail(survivor.output(), 40))
	}
	if !isLeader(survivor) {
		t.Error("the surviving replica never became leader")
	}
	if got := jsonpath(t, ns, "callcampaign/failover", ".status.succeeded"); got != fmt.Sprint(n-n/10) {
		t.Errorf("succeeded = %s, want %d", got, n-n/10)
	}
	if got := jsonpath(t, ns, "callcampaign/failover", ".status.failed"); got != fmt.Sprint(n/10) {
		t.Errorf("failed = %s, want %d (busy twice)", got, n/10)
	}
	wrong := 0
	for i := 0; i < n; i++ {
		suffix, want := "10", 1
		if i%10 == 0 {
			suffix, want = "91", 2
		}
		if got := simDials(t, fmt.Sprintf("+1888%05d%s", i, suffix)); got != want {
			wrong++
			if wrong <= 5 {
				t.Errorf("recipient %d dialed %d times, want %d", i, got, want)
			}
		}
	}
	if wrong > 0 {
		t.Errorf("%d of %d recipients dialed a wrong number of times", wrong, n)
	}

	// Both receivers recorded results while both ran: the non-leader's
	// writes count as much as the leader's.
	follower := 1 - leader
	if servedBefore[follower] == 0 || servedBefore[leader] == 0 {
		t.Errorf("deliveries before the kill: leader %d, follower %d; want both > 0", servedBefore[leader], servedBefore[follower])
	}
	if after := proxy.served[follower].Load(); after <= servedBefore[follower] {
		t.Errorf("the surviving replica answered no deliveries after the kill (%d before, %d after)", servedBefore[follower], after)
	}
	if f := proxy.failed.Load(); f > 0 {
		t.Errorf("%d webhook deliveries got no 2xx answer from any replica", f)
	}
	assertNoSecretsInLog(t, survivor.output(), nil)
	t.Logf("deliveries recorded: leader %d before the kill; follower %d before, %d in all", servedBefore[leader], servedBefore[follower], proxy.served[follower].Load())
}

// isLeader reports whether a replica won the lease: controllers start
// their workers only on the leader.
func isLeader(p *proc) bool {
	return strings.Contains(p.output(), `"msg":"Starting workers"`)
}

func tail(s string, lines int) string {
	parts := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}
