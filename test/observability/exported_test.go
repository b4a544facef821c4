package observability

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/utils/ptr"
	_ "sigs.k8s.io/controller-runtime" // the manager imports it: its init()s register the built-in metrics
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/callops/millis-operator/internal/metrics"
	"github.com/callops/millis-operator/internal/webhook"
)

// exportedMetrics maps each metric family the manager serves to its type.
type exportedMetrics map[string]dto.MetricType

var (
	exportedOnce sync.Once
	exported     exportedMetrics
	exportedErr  error
)

// managerMetrics returns the families the manager's /metrics endpoint serves.
// It is built from the registry the manager serves,
// controller-runtime's metrics.Registry, in two ways:
//
//   - the operator's own collectors (internal/metrics and internal/webhook)
//     are described, after checking that each is registered there: a vector
//     has no samples until a label set is used, but its Desc is complete;
//   - everything else registered there (controller-runtime's reconcile and
//     workqueue metrics, client-go's REST client and leader election metrics,
//     the process and Go collectors) is gathered after doing, without a
//     cluster, what creates their series in the manager: running a
//     controller that reconciles one request, creating a leader elector, and
//     sending one request to an API server.
//
// Nothing is listed by hand: a family that no code registers is not found.
func managerMetrics(t *testing.T) exportedMetrics {
	t.Helper()
	exportedOnce.Do(func() { exported, exportedErr = buildManagerMetrics() })
	if exportedErr != nil {
		t.Fatal(exportedErr)
	}
	return exported
}

func buildManagerMetrics() (exportedMetrics, error) {
	log.SetLogger(logr.Discard())
	out := exportedMetrics{}

	own := append(metrics.Collectors(), webhook.Collectors()...)
	if len(own) == 0 {
		return nil, errors.New("internal/metrics and internal/webhook list no collectors")
	}
	for _, c := range own {
		are := prometheus.AlreadyRegisteredError{}
		if err := ctrlmetrics.Registry.Register(c); !errors.As(err, &are) || are.ExistingCollector != c {
			return nil, fmt.Errorf("a collector of Collectors() is not registered with controller-runtime's metrics.Registry (Register: %v); the manager would not serve it", err)
		}
		typ, err := collectorType(c)
		if err != nil {
			return nil, err
		}
		descs := make(chan *prometheus.Desc, 16)
		go func() { c.Describe(descs); close(descs) }()
		for d := range descs {
			name, err := descName(d)
			if err != nil {
				return nil, err
			}
			out[name] = typ
		}
	}

	if err := exerciseController(); err != nil {
		return nil, fmt.Errorf("run a controller: %w", err)
	}
	if err := exerciseLeaderElection(); err != nil {
		return nil, fmt.Errorf("leader election: %w", err)
	}
	if err := exerciseRESTClient(); err != nil {
		return nil, fmt.Errorf("REST client: %w", err)
	}
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		return nil, fmt.Errorf("gather controller-runtime's registry: %w", err)
	}
	for _, f := range families {
		out[f.GetName()] = f.GetType()
	}
	return out, nil
}

// collectorType is the metric type of one of the operator's collectors. A
// vector is known by its Go type; a single metric is written out.
func collectorType(c prometheus.Collector) (dto.MetricType, error) {
	switch c.(type) {
	case *prometheus.CounterVec:
		return dto.MetricType_COUNTER, nil
	case *prometheus.GaugeVec:
		return dto.MetricType_GAUGE, nil
	case *prometheus.HistogramVec:
		return dto.MetricType_HISTOGRAM, nil
	case *prometheus.SummaryVec:
		return dto.MetricType_SUMMARY, nil
	}
	m, ok := c.(prometheus.Metric)
	if !ok {
		return 0, fmt.Errorf("collector %T: neither a vector nor a metric; teach collectorType its type", c)
	}
	var pb dto.Metric
	if err := m.Write(&pb); err != nil {
		return 0, fmt.Errorf("collector %T: %w", c, err)
	}
	switch {
	case pb.Counter != nil:
		return dto.MetricType_COUNTER, nil
	case pb.Gauge != nil:
		return dto.MetricType_GAUGE, nil
	case pb.Histogram != nil:
		return dto.MetricType_HISTOGRAM, nil
	case pb.Summary != nil:
		return dto.MetricType_SUMMARY, nil
	}
	return 0, fmt.Errorf("collector %T: unknown metric type", c)
}

// descName is a Desc's fully-qualified name. Desc keeps it private; a
// constant metric built from the Desc carries it into a registry's output.
func descName(d *prometheus.Desc) (string, error) {
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(describedBy{d}); err != nil {
		return "", fmt.Errorf("describe %s: %w", d, err)
	}
	families, err := reg.Gather()
	if err != nil {
		return "", fmt.Errorf("describe %s: %w", d, err)
	}
	if len(families) != 1 {
		return "", fmt.Errorf("describe %s: %d families", d, len(families))
	}
	return families[0].GetName(), nil
}

// describedBy is a collector of one untyped sample of a Desc, with every
// variable label set to "x".
type describedBy struct{ d *prometheus.Desc }

func (c describedBy) Describe(ch chan<- *prometheus.Desc) { ch <- c.d }

func (c describedBy) Collect(ch chan<- prometheus.Metric) {
	// The number of variable labels is not exported either: try until the
	// Desc accepts the label values.
	for n := 0; n <= 16; n++ {
		values := make([]string, n)
		for i := range values {
			values[i] = "x"
		}
		if m, err := prometheus.NewConstMetric(c.d, prometheus.UntypedValue, 0, values...); err == nil {
			ch <- m
			return
		}
	}
}

// exerciseController runs a controller the way the manager runs one, with a
// channel as its only source, until it has reconciled one request. That
// creates its reconcile series (total, errors, time, workers) and its
// workqueue's series.
func exerciseController() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reconciled := make(chan struct{})
	var once sync.Once
	c, err := controller.NewUnmanaged("observability-test", controller.Options{
		SkipNameValidation: ptr.To(true),
		Reconciler: reconcile.Func(func(context.Context, reconcile.Request) (reconcile.Result, error) {
			once.Do(func() { close(reconciled) })
			return reconcile.Result{}, nil
		}),
	})
	if err != nil {
		return err
	}
	events := make(chan event.GenericEvent, 1)
	events <- event.GenericEvent{Object: &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "x"}}}
	if err := c.Watch(source.Channel(events, &handler.EnqueueRequestForObject{})); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- c.Start(ctx) }()
	select {
	case <-reconciled:
	case err := <-done:
		return fmt.Errorf("controller stopped before reconciling: %v", err)
	case <-ctx.Done():
		return errors.New("no reconcile within 30s")
	}
	cancel()
	return <-done
}

// exerciseLeaderElection creates a leader elector, as the manager does with
// --leader-elect; it reports itself as not leading until it acquires the
// lease.
func exerciseLeaderElection() error {
	_, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:          memoryLock{},
		Name:          "observability-test",
		LeaseDuration: 15 * time.Second,
		RenewDeadline: 10 * time.Second,
		RetryPeriod:   2 * time.Second,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) {},
			OnStoppedLeading: func() {},
		},
	})
	return err
}

// memoryLock is a lease nobody holds; the elector is never run.
type memoryLock struct{}

func (memoryLock) Get(context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	return nil, nil, errors.New("not used")
}
func (memoryLock) Create(context.Context, resourcelock.LeaderElectionRecord) error { return nil }
func (memoryLock) Update(context.Context, resourcelock.LeaderElectionRecord) error { return nil }
func (memoryLock) RecordEvent(string)                                              {}
func (memoryLock) Identity() string                                                { return "observability-test" }
func (memoryLock) Describe() string                                                { return "memory" }

// exerciseRESTClient sends one request through client-go to a stand-in API
// server, as the manager's clients do to the real one.
func exerciseRESTClient() error {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"kind":"NamespaceList","apiVersion":"v1","items":[]}`))
	}))
	defer srv.Close()
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: srv.URL})
	if err != nil {
		return err
	}
	_, err = cs.CoreV1().Namespaces().List(context.Background(), metav1.ListOptions{})
	return err
}
