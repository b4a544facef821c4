// Package metrics holds the operator's own Prometheus metrics. They are
// registered with controller-runtime's registry, so they are served on the
// manager's metrics endpoint beside the reconcile, workqueue and client-go
// metrics it already exports.
//
// Labels are bounded: namespaces, campaign names, Millis endpoint templates,
// status codes, Millis call_status values and condition reasons. Never a
// phone number, session ID or key.
package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/callops/millis-operator/internal/millis"
)

var (
	// MillisRequests counts Millis API requests by endpoint and HTTP status
	// ("0" when no answer arrived: timeout, connection refused).
	MillisRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "millis_operator_millis_requests_total",
		Help: "Millis API requests by method, endpoint template and HTTP status code (0: no answer).",
	}, []string{"method", "endpoint", "code"})
	// MillisLatency is the Millis API latency by endpoint.
	MillisLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "millis_operator_millis_request_duration_seconds",
		Help:    "Millis API request latency by method and endpoint template.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"method", "endpoint"})
	// MillisRateLimited counts 429 answers.
	MillisRateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "millis_operator_millis_rate_limited_total",
		Help: "Millis API answers with HTTP 429, by endpoint template.",
	}, []string{"method", "endpoint"})

	// CallsDialed counts POST /start_outbound_call requests Millis accepted.
	CallsDialed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "millis_operator_calls_dialed_total",
		Help: "Outbound calls Millis accepted, by namespace.",
	}, []string{"namespace"})
	// CallsFinished counts calls that ended, by Millis call_status.
	CallsFinished = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "millis_operator_calls_finished_total",
		Help: "Outbound calls that ended, by namespace, Millis call_status and result source (Webhook or CallLog).",
	}, []string{"namespace", "call_status", "source"})
	// CallsFailed counts calls the operator could not place or prove, by
	// condition reason.
	CallsFailed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "millis_operator_calls_failed_total",
		Help: "Outbound calls that failed without a Millis call outcome (rejected, unconfirmed), by namespace and reason.",
	}, []string{"namespace", "reason"})
	// DialRetries counts dial attempts after the first, and how dials whose
	// outcome was unknown were settled.
	DialRetries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "millis_operator_dial_retries_total",
		Help: "Dials retried or settled from the call logs, by outcome: found (an unconfirmed attempt was placed), redialed (proven absent, dialed again), rate-limited (429, retried after Retry-After), unavailable (5xx or no answer, retried).",
	}, []string{"namespace", "outcome"})

	// CampaignRecipients is each campaign's recipients by state, like its
	// status counters.
	CampaignRecipients = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "millis_operator_campaign_recipients",
		Help: "Recipients of each CallCampaign by state: total, pending, active, succeeded, failed, skipped, expired, invalid.",
	}, []string{"namespace", "campaign", "state"})
)

func init() {
	ctrlmetrics.Registry.MustRegister(MillisRequests, MillisLatency, MillisRateLimited,
		CallsDialed, CallsFinished, CallsFailed, DialRetries, CampaignRecipients)
}

// ObserveMillis records one Millis API request; pass it to
// millis.WithObserver.
func ObserveMillis(info millis.RequestInfo) {
	MillisRequests.WithLabelValues(info.Method, info.Endpoint, strconv.Itoa(info.StatusCode)).Inc()
	MillisLatency.WithLabelValues(info.Method, info.Endpoint).Observe(info.Duration.Seconds())
	if info.StatusCode == 429 {
		MillisRateLimited.WithLabelValues(info.Method, info.Endpoint).Inc()
	}
}

// CampaignStates are the states CampaignRecipients reports.
var CampaignStates = []string{"total", "pending", "active", "succeeded", "failed", "skipped", "expired", "invalid"}

// SetCampaign sets a campaign's gauges; counts are in CampaignStates order.
func SetCampaign(namespace, name string, counts []int64) {
	for i, s := range CampaignStates {
		if i < len(counts) {
			CampaignRecipients.WithLabelValues(namespace, name, s).Set(float64(counts[i]))
		}
	}
}

// ForgetCampaign drops a deleted campaign's series.
func ForgetCampaign(namespace, name string) {
	CampaignRecipients.DeletePartialMatch(prometheus.Labels{"namespace": namespace, "campaign": name})
}

// Collectors returns the collectors init registers, so that a test can list
// what the manager exports (test/observability checks the dashboard and the
// alerts against it). Keep it in step with init.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{MillisRequests, MillisLatency, MillisRateLimited,
		CallsDialed, CallsFinished, CallsFailed, DialRetries, CampaignRecipients}
}
