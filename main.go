// Command manager runs the millis-operator controllers and the Millis
// webhook receiver. It wires things together and holds no logic.
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	millisv1alpha1 "github.com/callops/millis-operator/api/v1alpha1"
	"github.com/callops/millis-operator/controllers"
	"github.com/callops/millis-operator/internal/accounts"
	"github.com/callops/millis-operator/internal/metrics"
	"github.com/callops/millis-operator/internal/millis"
	"github.com/callops/millis-operator/internal/webhook"
)

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(millisv1alpha1.AddToScheme(scheme))
}

func main() {
	var (
		metricsAddr, probeAddr, webhookAddr, watchNamespaces string
		leaderElect                                          bool
		pollInterval, retryInterval, verifyInterval, timeout time.Duration
		driftInterval, createDelay, sessionDelay             time.Duration
		workers                                              int
		qps                                                  float64
		pprofAddr                                            string
		burst                                                int
		leaseNamespace                                       string
		leaseDuration, renewDeadline, retryPeriod            time.Duration
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "Address of the Prometheus metrics endpoint; \"0\" disables it.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address of the health and readiness probes.")
	flag.StringVar(&webhookAddr, "millis-webhook-bind-address", ":8082", "Address of the Millis webhook receiver (end-of-call and prefetch).")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader so that only one replica reconciles; all replicas receive webhooks.")
	flag.StringVar(&leaseNamespace, "leader-election-namespace", "", "Namespace of the leader election Lease; empty means the pod's own namespace (required when running outside a cluster).")
	flag.DurationVar(&leaseDuration, "leader-elect-lease-duration", 15*time.Second, "How long a leader's Lease lasts without renewal; a new leader takes over at most this long after the old one dies.")
	flag.DurationVar(&renewDeadline, "leader-elect-renew-deadline", 10*time.Second, "How long the leader keeps trying to renew before it gives up leadership (and exits).")
	flag.DurationVar(&retryPeriod, "leader-elect-retry-period", 2*time.Second, "How often candidates try to acquire or renew the Lease.")
	flag.StringVar(&watchNamespaces, "watch-namespaces", "", "Comma-separated namespaces to watch; empty watches all.")
	flag.DurationVar(&pollInterval, "call-poll-interval", 30*time.Second, "How often a live call's Millis call log is read, in case no end-of-call webhook arrives.")
	flag.DurationVar(&retryInterval, "retry-interval", 15*time.Second, "How soon something waiting on an account, a Secret or Millis is retried.")
	flag.DurationVar(&verifyInterval, "account-verify-interval", 5*time.Minute, "Default interval for re-verifying account credentials and credit.")
	flag.DurationVar(&timeout, "millis-request-timeout", millis.DefaultTimeout, "Timeout of each Millis API request.")
	flag.DurationVar(&driftInterval, "agent-drift-interval", 10*time.Minute, "Default interval between drift checks of each Agent (jittered by up to 10%).")
	flag.DurationVar(&sessionDelay, "session-record-delay", 3*time.Second, "How long a placed call's session waits before it is written to status; calls that end sooner are recorded by their end-of-call webhook in one write. 0 writes it at once.")
	flag.DurationVar(&createDelay, "agent-create-visibility-delay", 30*time.Second, "How long after an unconfirmed agent create a new agent is assumed visible in GET /agents; only then does its absence prove no agent was created.")
	flag.IntVar(&workers, "max-concurrent-reconciles", 8, "OutboundCall reconciles run in parallel.")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "", "Address of the pprof endpoint; empty disables it.")
	flag.Float64Var(&qps, "kube-api-qps", 50, "Queries per second to the Kubernetes API server.")
	flag.IntVar(&burst, "kube-api-burst", 100, "Burst of queries to the Kubernetes API server.")
	webhookOpts := webhook.DefaultOptions()
	webhookOpts.BindFlags(flag.CommandLine)
	opts := zap.Options{Development: false}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	setupLog := ctrl.Log.WithName("setup")

	// managedFields are never read by the controllers; leaving them out of
	// the cache saves about a kilobyte per cached object (writes omit them,
	// and the API server then keeps what it has).
	cacheOpts := cache.Options{DefaultTransform: cache.TransformStripManagedFields()}
	if watchNamespaces != "" {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range strings.Split(watchNamespaces, ",") {
			cacheOpts.DefaultNamespaces[strings.TrimSpace(ns)] = cache.Config{}
		}
	}
	restConfig := ctrl.GetConfigOrDie()
	restConfig.QPS, restConfig.Burst = float32(qps), burst
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                  scheme,
		Cache:                   cacheOpts,
		Metrics:                 metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress:  probeAddr,
		PprofBindAddress:        pprofAddr,
		LeaderElection:          leaderElect,
		LeaderElectionID:        "millis-operator.callops.dev",
		LeaderElectionNamespace: leaseNamespace,
		LeaseDuration:           &leaseDuration,
		RenewDeadline:           &renewDeadline,
		RetryPeriod:             &retryPeriod,
		// The process exits as soon as the manager stops, so releasing the
		// Lease on shutdown is safe, and a rolling update hands over at once
		// instead of after a lease duration.
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		setupLog.Error(err, "unable to create manager")
		os.Exit(1)
	}

	clk := clock.RealClock{}
	resolver := &accounts.Resolver{
		Client:    mgr.GetClient(),
		Secrets:   mgr.GetAPIReader(),
		SecretTTL: 10 * time.Second,
		Clock:     clk,
		NewClient: func(baseURL, apiKey string) (millis.Interface, error) {
			return millis.New(baseURL, apiKey, millis.WithTimeout(timeout), millis.WithObserver(metrics.ObserveMillis))
		},
	}
	ctx := ctrl.SetupSignalHandler()
	if err := setup(ctx, mgr, resolver, clk, webhookAddr, webhookOpts, intervals{
		poll: pollInterval, retry: retryInterval, verify: verifyInterval, drift: driftInterval, createDelay: createDelay,
		session: sessionDelay,
	}, workers); err != nil {
		setupLog.Error(err, "unable to set up the manager")
		os.Exit(1)
	}
	setupLog.Info("starting manager")
	if err := mgr.Start(ctx); err != nil {
		setupLog.Error(err, "problem running manager")
		os.Exit(1)
	}
}

// intervals are the manager's timing flags.
type intervals struct{ poll, retry, verify, drift, createDelay, session time.Duration }

func setup(ctx context.Context, mgr ctrl.Manager, resolver *accounts.Resolver, clk clock.Clock, webhookAddr string,
	webhookOpts webhook.Options, iv intervals, workers int) error {
	if err := (&controllers.MillisAccountReconciler{
		Client:         mgr.GetClient(),
		Accounts:       resolver,
		Recorder:       mgr.GetEventRecorder("millis-operator"),
		Clock:          clk,
		VerifyInterval: iv.verify,
		RetryInterval:  iv.retry,
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	// Campaign children are claimed by this process: see
	// OutboundCallReconciler.Instance.
	instance := rand.Text()
	if err := (&controllers.OutboundCallReconciler{
		Instance:           instance,
		SessionRecordDelay: iv.session,
		Client:             mgr.GetClient(),
		APIReader:          mgr.GetAPIReader(),
		Accounts:           resolver,
		Recorder:           mgr.GetEventRecorder("millis-operator"),
		Clock:              clk,
		PollInterval:       iv.poll,
		RetryInterval:      iv.retry,
	}).SetupWithManager(ctx, mgr, workers); err != nil {
		return err
	}
	if err := (&controllers.AgentReconciler{
		Client:                mgr.GetClient(),
		APIReader:             mgr.GetAPIReader(),
		Accounts:              resolver,
		Recorder:              mgr.GetEventRecorder("millis-operator"),
		Clock:                 clk,
		DriftInterval:         iv.drift,
		RetryInterval:         iv.retry,
		CreateVisibilityDelay: iv.createDelay,
	}).SetupWithManager(ctx, mgr); err != nil {
		return err
	}
	if err := (&controllers.CallCampaignReconciler{
		Instance:      instance,
		Client:        mgr.GetClient(),
		APIReader:     mgr.GetAPIReader(),
		Accounts:      resolver,
		Recorder:      mgr.GetEventRecorder("millis-operator"),
		Clock:         clk,
		RetryInterval: iv.retry,
	}).SetupWithManager(ctx, mgr, 4); err != nil {
		return err
	}
	receiver := &webhook.Receiver{
		Client:   mgr.GetClient(),
		Reader:   mgr.GetAPIReader(),
		Accounts: resolver,
		Recorder: mgr.GetEventRecorder("millis-operator-webhook"),
		Clock:    clk,
		Log:      ctrl.Log.WithName("webhook"),

		MaxBodyBytes: webhookOpts.MaxBodyBytes,
		Observe:      webhook.RecordOutcome,
	}
	if err := mgr.Add(&webhook.Server{Addr: webhookAddr, Handler: receiver.Handler(), Options: webhookOpts,
		Log: ctrl.Log.WithName("webhook")}); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	return mgr.AddReadyzCheck("readyz", healthz.Ping)
}
