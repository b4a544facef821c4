// Command bench runs CallCampaigns on the local control plane against the
// Millis simulator and prints a table: dispatch rate, apiserver writes per
// call, operator memory, slot utilisation, and a 100,000-recipient run.
//
// The manager runs as its own process (bin/manager), so its RSS is its own;
// writes are read from its client-go metrics (rest_client_requests_total).
// Usage: go run ./hack/bench --manager bin/manager [--quick]
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	millisv1alpha1 "github.com/callops/millis-operator/api/v1alpha1"
	"github.com/callops/millis-operator/internal/simulator"
)

const (
	apiKey   = "bench-key"
	agentID  = "-OKdqbqetEcM4ak369ym"
	from     = "+15550100001"
	maxConcy = 1000
)

type row struct{ name, value, target string }

func main() {
	managerBin := flag.String("manager", "bin/manager", "manager binary")
	quick := flag.Bool("quick", false, "smaller runs (for a smoke test)")
	flag.IntVar(&sizes.dispatch, "dispatch", 10_000, "recipients of the dispatch run")
	flag.IntVar(&sizes.slots, "slots", 1_000, "recipients of the slot-utilisation run")
	flag.IntVar(&sizes.big, "big", 100_000, "recipients of the large run")
	flag.Parse()
	if err := run(*managerBin, *quick); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

var sizes struct{ dispatch, slots, big int }

func run(managerBin string, quick bool) error {
	dispatchN, slotN, bigN := sizes.dispatch, sizes.slots, sizes.big
	if quick {
		dispatchN, slotN, bigN = 500, 100, 2_000
	}
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(millisv1alpha1.AddToScheme(scheme))

	env := &envtest.Environment{CRDDirectoryPaths: []string{"config/crd/bases"}, ErrorIfCRDPathMissing: true}
	cfg, err := env.Start()
	if err != nil {
		_ = env.Stop()
		return fmt.Errorf("start control plane: %w", err)
	}
	defer func() { _ = env.Stop() }()
	go func() { // Ctrl-C: leave no kube-apiserver or etcd behind
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		_ = env.Stop()
		os.Exit(130)
	}()
	user, err := env.AddUser(envtest.User{Name: "bench", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "millis-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	kubeconfig := filepath.Join(tmp, "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		return err
	}
	k8s, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}

	var table []row
	printed := 0
	flush := func() { // print rows as they are measured: a long run shows progress
		if printed == 0 {
			fmt.Printf("%-52s %-44s %s\n", "measure", "value", "target")
			fmt.Printf("%-52s %-44s %s\n", strings.Repeat("-", 52), strings.Repeat("-", 44), strings.Repeat("-", 12))
		}
		for ; printed < len(table); printed++ {
			fmt.Printf("%-52s %-44s %s\n", table[printed].name, table[printed].value, table[printed].target)
		}
	}
	rawRate := rawCreateRate(cfg, scheme, false)
	table = append(table, row{"apiserver raw create rate, ConfigMaps (32 clients)", fmt.Sprintf("%.0f objects/s", rawRate), "ceiling"})
	crdRate := rawCreateRate(cfg, scheme, true)
	table = append(table, row{"apiserver raw create rate, OutboundCalls (32 clients)", fmt.Sprintf("%.0f objects/s", crdRate), "ceiling for CRD writes"})

	// Instant calls: dispatch is all that is measured.
	if dispatchN > 0 {
		if err := benchDispatch(&table, managerBin, kubeconfig, tmp, k8s, dispatchN); err != nil {
			return err
		}
		flush()
	}

	// Slot utilisation: 2-second calls, maxConcurrency 50.
	if slotN > 0 {
		if err := benchSlots(&table, managerBin, kubeconfig, tmp, k8s, slotN); err != nil {
			return err
		}
		flush()
	}

	// 100,000 recipients from several ConfigMaps.
	if bigN == 0 {
		return nil
	}
	sim, simAddr, stopSim, err := startSimulator(time.Millisecond, time.Millisecond)
	if err != nil {
		return err
	}
	defer stopSim()
	mgr, err := startManager(managerBin, kubeconfig, tmp)
	if err != nil {
		return err
	}
	defer mgr.stop()
	ns := "big"
	if err := setup(k8s, ns, simAddr, mgr.webhookAddr); err != nil {
		return err
	}
	elapsed, err := runCampaign(k8s, ns, "big", bigN, 5, maxConcy)
	if err != nil {
		return err
	}
	var c millisv1alpha1.CallCampaign
	_ = k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "big"}, &c)
	statusBytes := jsonSize(c.Status)
	largest := 0
	for _, name := range c.Status.Results {
		var cm corev1.ConfigMap
		if k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &cm) == nil {
			largest = max(largest, len(cm.Data["results.csv"]))
		}
	}
	table = append(table,
		row{fmt.Sprintf("big: %d recipients from 5 ConfigMaps", bigN), fmt.Sprintf("%.1fs, %.0f calls/s, %d dials", elapsed.Seconds(), float64(bigN)/elapsed.Seconds(), len(sim.Ledger())), "completes"},
		row{"big: operator peak RSS", fmt.Sprintf("%.0f MiB", mgr.peakRSSMiB()), "report"},
		row{"big: campaign status size", fmt.Sprintf("%d bytes", statusBytes), "< 1.5 MiB"},
		row{"big: results export", fmt.Sprintf("%d ConfigMaps, largest %d KiB", len(c.Status.Results), largest/1024), "each < 1 MiB"},
	)

	flush()
	return nil
}

// benchSlots runs the slot utilisation scenario: 2-second calls,
// maxConcurrency 50.
func benchSlots(table *[]row, managerBin, kubeconfig, tmp string, k8s client.Client, slotN int) error {
	sim, simAddr, stopSim, err := startSimulator(time.Millisecond, 2*time.Second)
	if err != nil {
		return err
	}
	mgr, err := startManager(managerBin, kubeconfig, tmp)
	if err != nil {
		return err
	}
	ns := "slots"
	if err := setup(k8s, ns, simAddr, mgr.webhookAddr); err != nil {
		return err
	}
	elapsed, err := runCampaign(k8s, ns, "slots", slotN, 1, 50)
	if err != nil {
		return err
	}
	ideal := time.Duration(slotN/50) * 2 * time.Second
	_, peak := sim.Concurrency()
	*table = append(*table,
		row{fmt.Sprintf("slots: %d recipients, 50 at a time, 2s calls", slotN), fmt.Sprintf("%.1fs vs ideal %.0fs (+%.1f%%)", elapsed.Seconds(), ideal.Seconds(), 100*(elapsed.Seconds()/ideal.Seconds()-1)), "within 5%"},
		row{"  where the time over ideal went", slotBreakdown(sim.Ledger(), time.Now().Add(-elapsed), elapsed, 50, 2*time.Second), ""},
		row{"slots: simulator peak concurrency", strconv.Itoa(peak), "<= 50"},
	)
	mgr.stop()
	stopSim()

	return nil
}

// benchDispatch runs the dispatch scenario: instant calls, no limits but
// maxConcurrency 1000.
func benchDispatch(table *[]row, managerBin, kubeconfig, tmp string, k8s client.Client, dispatchN int) error {
	sim, simAddr, stopSim, err := startSimulator(time.Millisecond, time.Millisecond)
	if err != nil {
		return err
	}
	mgr, err := startManager(managerBin, kubeconfig, tmp)
	if err != nil {
		return err
	}
	ns := "bench"
	if err := setup(k8s, ns, simAddr, mgr.webhookAddr); err != nil {
		return err
	}
	before := mgr.writesByKind()
	elapsed, err := runCampaign(k8s, ns, "dispatch", dispatchN, 1, maxConcy)
	if err != nil {
		return err
	}
	after := mgr.writesByKind()
	var writes int64
	var kinds []string
	for k, n := range after {
		if d := n - before[k]; d > 0 {
			writes += d
			kinds = append(kinds, fmt.Sprintf("%s %.2f", k, float64(d)/float64(dispatchN)))
		}
	}
	sort.Strings(kinds)
	*table = append(*table,
		row{fmt.Sprintf("dispatch: %d recipients, instant calls", dispatchN), fmt.Sprintf("%.1fs, %.0f calls/s", elapsed.Seconds(), float64(dispatchN)/elapsed.Seconds()), "< 60s"},
		row{"apiserver writes per call (operator)", fmt.Sprintf("%.2f", float64(writes)/float64(dispatchN)), "<= 4"},
		row{"  by method and status code, per call", strings.Join(kinds, ", "), ""},
		row{"operator peak RSS (dispatch)", fmt.Sprintf("%.0f MiB", mgr.peakRSSMiB()), "< 200 MiB"},
	)
	if n := len(sim.Ledger()); n != dispatchN {
		*table = append(*table, row{"dispatch: simulator dials", strconv.Itoa(n), fmt.Sprintf("exactly %d", dispatchN)})
	}
	mgr.stop()
	stopSim()

	return nil
}

// slotBreakdown splits a slot run's wall time from the simulator's ledger:
// the time to the first dial, the mean idle gap between a call's end and
// the next dial in its slot, and the time from the last call's end to the
// campaign's Complete condition (as seen by a 50 ms poll). The time between
// the end of the first call and the placement of the last one is approximated.
func slotBreakdown(ledger []simulator.LedgerEntry, start time.Time, elapsed time.Duration, slots int, call time.Duration) string {
	if len(ledger) == 0 {
		return "no calls"
	}
	first, last := ledger[0].PlacedAt, ledger[0].PlacedAt
	for _, e := range ledger {
		if e.PlacedAt.Before(first) {
			first = e.PlacedAt
		}
		if e.PlacedAt.After(last) {
			last = e.PlacedAt
		}
	}
	lastEnd := last.Add(call)
	busy := time.Duration(len(ledger)) * call
	idle := time.Duration(slots)*lastEnd.Sub(first) - busy
	return fmt.Sprintf("first dial after %.2fs; mean idle per call %.0fms; Complete seen %.2fs after the last call ended",
		first.Sub(start).Seconds(), float64(idle.Milliseconds())/float64(len(ledger)), start.Add(elapsed).Sub(lastEnd).Seconds())
}

func jsonSize(v any) int {
	b, _ := json.Marshal(v)
	return len(b)
}

// rawCreateRate measures how fast this apiserver takes creates from 32
// clients for 5 seconds: ConfigMaps, or OutboundCalls (CRD objects with CEL
// validation, which cost the apiserver more). It is the ceiling any
// operator works under here. The objects are deleted afterwards.
func rawCreateRate(cfg *rest.Config, scheme *runtime.Scheme, crd bool) float64 {
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst = 10000, 10000
	k8s, _ := client.New(c, client.Options{Scheme: scheme})
	ctx := context.Background()
	_ = k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "raw"}})
	var n atomic.Int64
	deadline := time.Now().Add(5 * time.Second)
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				meta := metav1.ObjectMeta{Namespace: "raw", Name: fmt.Sprintf("raw-%d-%d", w, i)}
				var obj client.Object = &corev1.ConfigMap{ObjectMeta: meta}
				if crd {
					obj = &millisv1alpha1.OutboundCall{ObjectMeta: meta, Spec: millisv1alpha1.OutboundCallSpec{
						AgentID: agentID, FromPhone: from, ToPhone: "+15550100010",
						Metadata: &apiextensionsv1.JSON{Raw: []byte(`{"userName":"friend"}`)}}}
				}
				if k8s.Create(ctx, obj) == nil {
					n.Add(1)
				}
			}
		}(w)
	}
	wg.Wait()
	if crd {
		_ = k8s.DeleteAllOf(ctx, &millisv1alpha1.OutboundCall{}, client.InNamespace("raw"))
	}
	return float64(n.Load()) / 5
}

func startSimulator(ring, talk time.Duration) (*simulator.Server, string, func(), error) {
	var phones []string
	sim := simulator.New(simulator.Config{
		APIKeys: []string{apiKey}, StageTime: time.Millisecond, RingTime: ring, TalkTime: talk, InitialCredit: 1e9,
		Phones: append(phones, from), Agents: []simulator.AgentSeed{simulator.SeedAgent(from)},
		WebhookWorkers: 32,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", nil, err
	}
	srv := &http.Server{Handler: sim}
	go func() { _ = srv.Serve(ln) }()
	return sim, ln.Addr().String(), func() { _ = srv.Close(); sim.Close() }, nil
}

type manager struct {
	cmd         *exec.Cmd
	metricsAddr string
	webhookAddr string
	peak        atomic.Int64
	done        chan struct{}
}

func freeAddr() string {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	defer l.Close()
	return l.Addr().String()
}

func startManager(bin, kubeconfig, dir string) (*manager, error) {
	m := &manager{metricsAddr: freeAddr(), webhookAddr: freeAddr(), done: make(chan struct{})}
	logf, err := os.Create(filepath.Join(dir, "manager.log"))
	if err != nil {
		return nil, err
	}
	m.cmd = exec.Command(bin, "--metrics-bind-address", m.metricsAddr, "--health-probe-bind-address", "127.0.0.1:0",
		"--millis-webhook-bind-address", m.webhookAddr, "--call-poll-interval", "5s", "--retry-interval", "1s",
		"--max-concurrent-reconciles", "16", "--pprof-bind-address", os.Getenv("BENCH_PPROF"), "--kube-api-qps", "2000", "--kube-api-burst", "4000")
	m.cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	m.cmd.Stdout, m.cmd.Stderr = logf, logf
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := m.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = m.cmd.Wait(); close(m.done) }()
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-m.done:
				return
			case <-t.C:
				if kb := vmHWM(m.cmd.Process.Pid); kb > m.peak.Load() {
					m.peak.Store(kb)
				}
			}
		}
	}()
	for i := 0; i < 100; i++ {
		if c, err := net.DialTimeout("tcp", m.webhookAddr, 100*time.Millisecond); err == nil {
			c.Close()
			return m, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil, fmt.Errorf("manager did not start; see %s", filepath.Join(dir, "manager.log"))
}

func (m *manager) stop() {
	_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGTERM)
	<-m.done
}

func (m *manager) peakRSSMiB() float64 { return float64(m.peak.Load()) / 1024 }

// writes sums the manager's mutating requests to the apiserver.
func (m *manager) writes() int64 {
	var total int64
	for _, n := range m.writesByKind() {
		total += n
	}
	return total
}

// writesByKind counts the manager's mutating requests by "METHOD code",
// from client-go's rest_client_requests_total.
func (m *manager) writesByKind() map[string]int64 {
	out := map[string]int64{}
	resp, err := http.Get("http://" + m.metricsAddr + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "rest_client_requests_total{") {
			continue
		}
		method, code := label(line, "method"), label(line, "code")
		if method != "POST" && method != "PUT" && method != "PATCH" && method != "DELETE" {
			continue
		}
		f, _ := strconv.ParseFloat(line[strings.LastIndex(line, " ")+1:], 64)
		out[method+" "+code] += int64(f)
	}
	return out
}

func label(line, name string) string {
	i := strings.Index(line, name+`="`)
	if i < 0 {
		return ""
	}
	rest := line[i+len(name)+2:]
	return rest[:strings.IndexByte(rest, '"')]
}

func vmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb
		}
	}
	return 0
}

func setup(k8s client.Client, ns, simAddr, hookAddr string) error {
	ctx := context.Background()
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "millis", Namespace: ns}, StringData: map[string]string{"apiKey": apiKey, "token": "bench-token"}},
		&millisv1alpha1.MillisAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns}, Spec: millisv1alpha1.MillisAccountSpec{
			BaseURL:         "http://" + simAddr,
			APIKeySecretRef: millisv1alpha1.SecretKeySelector{Name: "millis", Key: "apiKey"},
			Webhook: &millisv1alpha1.AccountWebhook{URL: "http://" + hookAddr,
				TokenSecretRef: millisv1alpha1.SecretKeySelector{Name: "millis", Key: "token"}},
		}},
	}
	for _, o := range objs {
		if err := k8s.Create(ctx, o); err != nil {
			return fmt.Errorf("create %s: %w", o.GetName(), err)
		}
	}
	// Campaigns start against a verified account, as they would in use:
	// the account's first check is not part of any campaign's time.
	deadline := time.Now().Add(time.Minute)
	for {
		var acct millisv1alpha1.MillisAccount
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "default"}, &acct); err == nil &&
			meta.IsStatusConditionTrue(acct.Status.Conditions, millisv1alpha1.ConditionReady) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("MillisAccount %s/default never became Ready", ns)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runCampaign creates n recipients in `sources` ConfigMaps and a campaign
// over them, and returns how long it took to complete.
func runCampaign(k8s client.Client, ns, name string, n, sources, concurrency int) (time.Duration, error) {
	ctx := context.Background()
	c := &millisv1alpha1.CallCampaign{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: millisv1alpha1.CallCampaignSpec{
			AgentID: agentID, FromPhone: from,
			Metadata:       &apiextensionsv1.JSON{Raw: []byte(`{"userName":"friend"}`)},
			MaxConcurrency: ptr(int32(concurrency)),
			Schedule:       &millisv1alpha1.CampaignSchedule{CallingWindows: []millisv1alpha1.CallingWindow{{Start: "00:00", End: "24:00"}}},
		},
	}
	per := (n + sources - 1) / sources
	for s := 0; s < sources; s++ {
		var b strings.Builder
		b.WriteString("phone,userName\n")
		for i := s * per; i < min(n, (s+1)*per); i++ {
			fmt.Fprintf(&b, "+1666%05d10,user%d\n", i, i) // ends in 10: the simulator answers, talks and hangs up
		}
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-list-%d", name, s), Namespace: ns},
			Data: map[string]string{"list.csv": b.String()}}
		if err := k8s.Create(ctx, cm); err != nil {
			return 0, err
		}
		c.Spec.RecipientsFrom = append(c.Spec.RecipientsFrom, millisv1alpha1.RecipientSource{
			ConfigMapKeyRef: millisv1alpha1.ConfigMapKeySelector{Name: cm.Name, Key: "list.csv"}})
	}
	start := time.Now()
	if err := k8s.Create(ctx, c); err != nil {
		return 0, err
	}
	for {
		time.Sleep(50 * time.Millisecond)
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(c), c); err != nil {
			return 0, err
		}
		if meta.IsStatusConditionTrue(c.Status.Conditions, millisv1alpha1.ConditionComplete) {
			return time.Since(start), nil
		}
		if time.Since(start) > 30*time.Minute {
			return 0, fmt.Errorf("campaign %s did not complete: %s", name, c.Status.Progress)
		}
	}
}

func ptr[T any](v T) *T { return &v }
