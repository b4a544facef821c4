package controllers_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	millisv1alpha1 "github.com/callops/millis-operator/api/v1alpha1"
	"github.com/callops/millis-operator/controllers"
	"github.com/callops/millis-operator/internal/accounts"
	"github.com/callops/millis-operator/internal/millis"
	"github.com/callops/millis-operator/internal/simulator"
	"github.com/callops/millis-operator/internal/webhook"
)

// The suite runs the real reconcilers and webhook receiver against a real
// kube-apiserver and etcd (envtest) and the Millis simulator over HTTP.
var (
	k8s        client.Client
	sim        *simulator.Server
	simURL     string
	webhookURL string
)

// campaignClock is the campaign reconciler's clock: real time plus an
// offset a test may move forward, to jump to a calling window.
var campaignClock = &shiftClock{}

type shiftClock struct {
	clock.RealClock
	offset atomic.Int64
}

func (c *shiftClock) Now() time.Time                  { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *shiftClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// jumpTo moves the campaign clock so that it reads t now.
func (c *shiftClock) jumpTo(t time.Time) { c.offset.Store(int64(time.Until(t))) }

const (
	apiKey = "sim-private-key"
	// testInstance is the manager instance's dial claim on campaign children.
	testInstance = "test-instance"
	webhookToken = "suite-webhook-token"
	agentID      = "-OKdqbqetEcM4ak369ym"
	fromPhone    = "+15550100001"
	// timeout bounds every Eventually: calls take ~1.5s in the simulator here.
	timeout = 30 * time.Second
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(os.Stderr), zap.Level(zapLevel())))
	assets, err := controlPlaneAssets()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	cfg, err := env.Start()
	if err != nil {
		_ = env.Stop() // a rejected CRD leaves kube-apiserver and etcd running
		fmt.Fprintf(os.Stderr, "start control plane: %v\n", err)
		return 1
	}
	defer func() { _ = env.Stop() }()

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(millisv1alpha1.AddToScheme(scheme))

	sim = simulator.New(simulator.Config{
		APIKeys:   []string{apiKey},
		StageTime: 20 * time.Millisecond,
		RingTime:  200 * time.Millisecond,
		TalkTime:  time.Second,
		Agents: []simulator.AgentSeed{{ID: agentID, Name: "seed-agent",
			Config: []byte(`{"prompt":"You help {company} customers.","first_message":"Hello {userName}!","voice":{"provider":"elevenlabs","voice_id":"x"}}`)}},
	})
	defer sim.Close()
	simServer := httptest.NewServer(sim)
	defer simServer.Close()
	simURL = simServer.URL

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		fmt.Fprintf(os.Stderr, "manager: %v\n", err)
		return 1
	}
	resolver := &accounts.Resolver{
		Client: mgr.GetClient(), Secrets: mgr.GetAPIReader(), SecretTTL: 0, Clock: clock.RealClock{},
		NewClient: func(base, key string) (millis.Interface, error) {
			return millis.New(base, key, millis.WithTimeout(5*time.Second))
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := (&controllers.MillisAccountReconciler{
		Client: mgr.GetClient(), Accounts: resolver, Recorder: mgr.GetEventRecorder("test"),
		Clock: clock.RealClock{}, VerifyInterval: time.Minute, RetryInterval: 500 * time.Millisecond,
	}).SetupWithManager(mgr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := (&controllers.OutboundCallReconciler{
		Instance: testInstance, SessionRecordDelay: 500 * time.Millisecond,
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Accounts: resolver, Recorder: mgr.GetEventRecorder("test"),
		Clock: clock.RealClock{}, PollInterval: 2 * time.Second, RetryInterval: 500 * time.Millisecond,
	}).SetupWithManager(ctx, mgr, 4); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := (&controllers.AgentReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Accounts: resolver, Recorder: mgr.GetEventRecorder("test"),
		Clock: clock.RealClock{}, DriftInterval: time.Minute, RetryInterval: 500 * time.Millisecond,
		CreateVisibilityDelay: 2 * time.Second,
	}).SetupWithManager(ctx, mgr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := (&controllers.CallCampaignReconciler{
		Instance: testInstance, APIReader: mgr.GetAPIReader(),
		Client: mgr.GetClient(), Accounts: resolver, Recorder: mgr.GetEventRecorder("test"),
		Clock: campaignClock, RetryInterval: 500 * time.Millisecond,
	}).SetupWithManager(ctx, mgr, 2); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	receiver := &webhook.Receiver{
		Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Accounts: resolver,
		Recorder: mgr.GetEventRecorder("test"), Clock: clock.RealClock{}, Log: ctrl.Log.WithName("webhook"),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	webhookURL = "http://" + ln.Addr().String()
	go func() { _ = http.Serve(ln, receiver.Handler()) }()
	defer ln.Close()

	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "manager stopped: %v\n", err)
		}
	}()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		fmt.Fprintln(os.Stderr, "cache did not sync")
		return 1
	}
	k8s = mgr.GetClient()
	if err := applyDir(ctx, filepath.Join("..", "config", "admission")); err != nil {
		fmt.Fprintf(os.Stderr, "install admission policies: %v\n", err)
		return 1
	}
	return m.Run()
}

// applyDir creates every object of every YAML file in dir, as the install
// does (the admission policies are not CRDs, so envtest does not).
func applyDir(ctx context.Context, dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return err
	}
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			var u unstructured.Unstructured
			if err := dec.Decode(&u.Object); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return fmt.Errorf("%s: %w", f, err)
			}
			if len(u.Object) == 0 {
				continue
			}
			if err := k8s.Create(ctx, &u); err != nil {
				return fmt.Errorf("%s: create %s: %w", f, u.GetName(), err)
			}
		}
	}
	return nil
}

// controlPlaneAssets finds kube-apiserver and etcd: KUBEBUILDER_ASSETS, or
// the project's own build (hack/control-plane.sh builds and caches it).
func controlPlaneAssets() (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	out, err := exec.Command(filepath.Join("..", "hack", "control-plane.sh")).Output()
	if err != nil {
		return "", fmt.Errorf("build the local control plane (hack/control-plane.sh): %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// zapLevel keeps the suite's output to errors unless TEST_VERBOSE is set.
func zapLevel() zapcore.Level {
	if os.Getenv("TEST_VERBOSE") != "" {
		return zapcore.DebugLevel
	}
	return zapcore.ErrorLevel
}

// newNamespace gives each test its own namespace with a Ready account.
func newNamespace(t *testing.T, g Gomega) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "t-"}}
	g.Expect(k8s.Create(context.Background(), ns)).To(Succeed())
	return ns.Name
}

func createAccount(t *testing.T, g Gomega, ns string, mutate ...func(*millisv1alpha1.MillisAccount)) *millisv1alpha1.MillisAccount {
	t.Helper()
	ctx := context.Background()
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "millis-credentials", Namespace: ns},
		StringData: map[string]string{"apiKey": apiKey, "webhookToken": webhookToken},
	}
	g.Expect(client.IgnoreAlreadyExists(k8s.Create(ctx, secret))).To(Succeed())
	acct := &millisv1alpha1.MillisAccount{
		ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns},
		Spec: millisv1alpha1.MillisAccountSpec{
			BaseURL:         simURL,
			APIKeySecretRef: millisv1alpha1.SecretKeySelector{Name: "millis-credentials", Key: "apiKey"},
			Webhook: &millisv1alpha1.AccountWebhook{
				URL:            webhookURL,
				TokenSecretRef: millisv1alpha1.SecretKeySelector{Name: "millis-credentials", Key: "webhookToken"},
			},
			DialRecovery: &millisv1alpha1.DialRecovery{CallLogVisibilityDelay: &metav1.Duration{Duration: 2 * time.Second}},
		},
	}
	for _, m := range mutate {
		m(acct)
	}
	g.Expect(k8s.Create(ctx, acct)).To(Succeed())
	return acct
}
