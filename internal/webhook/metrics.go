package webhook

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Webhook kinds, as the kind label of the metrics.
const (
	KindEndOfCall = "end-of-call"
	KindPrefetch  = "prefetch"
	// KindOther is any path that is neither, such as a scanner's probe.
	KindOther = "other"
	// kindRelayEndOfCall is what the receiver reports for a relayed body.
	kindRelayEndOfCall = "relay-end-of-call"
)

// Reasons the front door rejects a request, besides the receiver's own
// outcomes (OutcomeUnauthorized, OutcomeTooLarge, OutcomeBadRequest,
// OutcomeError), which are reasons too.
const (
	ReasonRateLimited = "rate-limited"
	ReasonOverloaded  = "overloaded"
	ReasonNoRoute     = "no-route"
)

const (
	resultAccepted = "accepted"
	resultRejected = "rejected"
)

var (
	deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "millis_operator_webhook_deliveries_total",
		Help: "Webhook requests by kind, result (accepted or rejected) and reason.",
	}, []string{"kind", "result", "reason"})
	relays = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "millis_operator_webhook_relays_total",
		Help: "End-of-call bodies relayed to an Agent's own webhook, by result (relayed, none, error).",
	}, []string{"result"})
	inFlightRequests = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "millis_operator_webhook_in_flight_requests",
		Help: "Webhook requests being handled now.",
	})
	openConnections = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "millis_operator_webhook_open_connections",
		Help: "Client connections open to the webhook receiver.",
	})
	trackedClients = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "millis_operator_webhook_tracked_clients",
		Help: "Client addresses whose failed requests are remembered for rate limiting.",
	})
)

func init() {
	metrics.Registry.MustRegister(deliveries, relays, inFlightRequests, openConnections, trackedClients)
}

// Collectors returns the collectors init registers, so that a test can list
// what the manager exports (test/observability checks the dashboard and the
// alerts against it). Keep it in step with init.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{deliveries, relays, inFlightRequests, openConnections, trackedClients}
}

// RecordOutcome counts a receiver outcome; it is meant for Receiver.Observe.
// The front door counts its own rejections.
func RecordOutcome(kind, outcome string) {
	if kind == kindRelayEndOfCall {
		relays.WithLabelValues(outcome).Inc()
		return
	}
	result := resultRejected
	switch outcome {
	case OutcomeApplied, OutcomeDuplicate, OutcomeUnknown, OutcomeServed:
		result = resultAccepted
	}
	deliveries.WithLabelValues(kind, result, outcome).Inc()
}
