// Package webhook is the operator's receiver for Millis webhooks: the
// end-of-call (session data) webhook and the prefetch-data webhook.
//
// It runs on every replica, leader or not: it reads OutboundCalls from the
// manager's cache and writes their status directly, with conflict retries,
// so whichever replica Millis reaches records the result.
//
// Routes, below an account's spec.webhook.url:
//
//	POST /millis/{namespace}/{account}/end-of-call
//	GET  /millis/{namespace}/{account}/prefetch
//
// Every request must carry the account's token in its header (default
// X-Millis-Operator-Token). Tokens are compared in constant time.
package webhook

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	millisv1alpha1 "github.com/callops/millis-operator/api/v1alpha1"
	"github.com/callops/millis-operator/internal/accounts"
	"github.com/callops/millis-operator/internal/calls"
	"github.com/callops/millis-operator/internal/millis"
	"github.com/callops/millis-operator/internal/template"
)

// DefaultMaxBodyBytes bounds an end-of-call body. Transcripts of long calls
// are the bulk of it; 1 MiB is hours of conversation.
const DefaultMaxBodyBytes = 1 << 20

// Receiver serves the Millis webhooks.
type Receiver struct {
	// Client reads OutboundCalls and MillisAccounts (cached, indexed by
	// calls.IndexSessionID and calls.IndexUID) and writes status.
	Client client.Client
	// Reader reads around the cache: fresh objects for conflict retries, and
	// prefetch ConfigMaps and Secrets at call time.
	Reader       client.Reader
	Accounts     *accounts.Resolver
	Recorder     events.EventRecorder
	Clock        clock.PassiveClock
	Log          logr.Logger
	MaxBodyBytes int64
	// Observe, when set, is told the outcome of every request (for metrics).
	Observe func(kind, outcome string)
	// RelayClient sends relayed webhooks to the user's own endpoints (an
	// Agent's extraConfig webhooks). Default: a client with a 10s timeout.
	RelayClient *http.Client
}

// Outcomes reported to Observe and in responses.
const (
	OutcomeApplied      = "applied"
	OutcomeDuplicate    = "duplicate"
	OutcomeUnknown      = "unknown-session"
	OutcomeUnauthorized = "unauthorized"
	OutcomeBadRequest   = "bad-request"
	OutcomeTooLarge     = "too-large"
	OutcomeError        = "error"
	OutcomeServed       = "served"
)

// Handler returns the HTTP handler.
func (rc *Receiver) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /millis/{namespace}/{account}/"+accounts.PathEndOfCall, rc.endOfCall)
	mux.HandleFunc("GET /millis/{namespace}/{account}/"+accounts.PathPrefetch, rc.prefetch)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	return mux
}

// endOfCall records the result of a call.
func (rc *Receiver) endOfCall(w http.ResponseWriter, r *http.Request) {
	const kind = "end-of-call"
	ctx := r.Context()
	acct, ok := rc.authenticate(w, r, kind)
	if !ok {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, rc.maxBody()))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			rc.reply(w, kind, http.StatusRequestEntityTooLarge, OutcomeTooLarge, fmt.Sprintf("body larger than %d bytes", rc.maxBody()))
			return
		}
		rc.reply(w, kind, http.StatusBadRequest, OutcomeBadRequest, "could not read body")
		return
	}
	var h millis.CallHistory
	if err := json.Unmarshal(body, &h); err != nil {
		rc.reply(w, kind, http.StatusBadRequest, OutcomeBadRequest, "body is not a Millis call history JSON object")
		return
	}
	if h.SessionID == "" {
		rc.reply(w, kind, http.StatusBadRequest, OutcomeBadRequest, "session_id is missing")
		return
	}

	rc.relayEndOfCall(acct, h.AgentID, body)
	call, err := rc.findCall(ctx, acct, h.SessionID, calls.RefOf(h.Metadata))
	if err != nil {
		rc.Log.Error(err, "Looking up the call of a webhook failed")
		rc.reply(w, kind, http.StatusInternalServerError, OutcomeError, "lookup failed; retry")
		return
	}
	if call == nil {
		// Inbound calls and calls of other tools reach the same agent; they
		// are none of ours and change nothing.
		rc.reply(w, kind, http.StatusAccepted, OutcomeUnknown, "no OutboundCall has this session")
		return
	}

	outcome, err := rc.apply(ctx, call, &h)
	if err != nil {
		rc.Log.Error(err, "Recording a webhook result failed", "call", client.ObjectKeyFromObject(call).String())
		rc.reply(w, kind, http.StatusInternalServerError, OutcomeError, "could not record the result; retry")
		return
	}
	rc.reply(w, kind, http.StatusOK, outcome, "")
}

// apply folds the webhook into the call's status, idempotently. The cached
// copy is tried first: by the time a call ends its session is long
// recorded. A conflict is retried on a fresh read.
func (rc *Receiver) apply(ctx context.Context, call *millisv1alpha1.OutboundCall, h *millis.CallHistory) (string, error) {
	outcome := OutcomeDuplicate
	fresh := false
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if fresh {
			if err := rc.Reader.Get(ctx, client.ObjectKeyFromObject(call), call); err != nil {
				return err
			}
		}
		fresh = true
		if call.Status.SessionID != "" && call.Status.SessionID != h.SessionID {
			outcome = OutcomeUnknown // an earlier attempt's session; the recorded one wins
			return nil
		}
		before := call.Status.DeepCopy()
		wasFinished := call.Status.Phase.IsFinished()
		calls.ApplyHistory(&call.Status, call.Generation, calls.OwnMetadata(h, call), calls.SourceWebhook, rc.Clock.Now())
		if equality.Semantic.DeepEqual(before, &call.Status) {
			outcome = OutcomeDuplicate
			return nil
		}
		if err := rc.Client.Status().Update(ctx, call); err != nil {
			return err
		}
		outcome = OutcomeApplied
		if !wasFinished && call.Status.Phase.IsFinished() {
			calls.RecordFinished(rc.Recorder, call)
		}
		return nil
	})
	return outcome, err
}

// prefetch answers Millis's prefetch-data webhook with the call's
// personalised data, read now from its ConfigMaps and Secrets.
func (rc *Receiver) prefetch(w http.ResponseWriter, r *http.Request) {
	const kind = "prefetch"
	ctx := r.Context()
	acct, ok := rc.authenticate(w, r, kind)
	if !ok {
		return
	}
	q := r.URL.Query()
	sessionID := q.Get("session_id")
	if sessionID == "" {
		rc.reply(w, kind, http.StatusBadRequest, OutcomeBadRequest, "session_id is missing")
		return
	}
	call, err := rc.findCall(ctx, acct, sessionID, q.Get(millisv1alpha1.MetadataKeyCallRef))
	if err != nil {
		rc.Log.Error(err, "Looking up the call of a prefetch failed")
		rc.reply(w, kind, http.StatusInternalServerError, OutcomeError, "lookup failed")
		return
	}
	answer := map[string]any{}
	if call != nil && call.Spec.Prefetch != nil {
		meta := map[string]string{}
		for _, src := range call.Spec.Prefetch.MetadataFrom {
			data, err := calls.ReadMetadataSource(ctx, rc.Reader, call.Namespace, src)
			if err != nil {
				// The call goes ahead without the data; the reconciler checked
				// these sources before dialing, so this is a late deletion.
				rc.Log.Info("Prefetch source unreadable", "call", client.ObjectKeyFromObject(call).String(), "error", err.Error())
				continue
			}
			for k, v := range data {
				meta[k] = v
			}
		}
		if len(meta) > 0 {
			answer["metadata"] = meta
		}
		if p := call.Spec.Prefetch.ExtraPrompt; p != "" {
			vars := map[string]string{}
			for k, vs := range q {
				if len(vs) > 0 {
					vars[k] = vs[0]
				}
			}
			vars[template.VarFromPhone], vars[template.VarToPhone] = q.Get("from"), q.Get("to")
			for k, v := range meta {
				vars[k] = v
			}
			answer["extra_prompt"], _ = template.Render(p, vars)
		}
	}
	rc.relayPrefetch(ctx, acct, r, answer)
	outcome := OutcomeServed
	if call == nil {
		outcome = OutcomeUnknown
	}
	rc.observe(kind, outcome)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(answer)
}

// authenticate checks the account's token. Unknown accounts and wrong
// tokens get the same 401, so the receiver does not reveal which exist.
func (rc *Receiver) authenticate(w http.ResponseWriter, r *http.Request, kind string) (*millisv1alpha1.MillisAccount, bool) {
	header, want := accounts.DefaultWebhookHeader, ""
	acct, err := rc.Accounts.Get(r.Context(), r.PathValue("namespace"), r.PathValue("account"))
	if err == nil && acct.Spec.Webhook != nil {
		if h, token, terr := rc.Accounts.WebhookToken(r.Context(), acct); terr == nil {
			header, want = h, token
		}
	}
	// Compare on every path, so that an unknown account costs what a wrong
	// token does; an empty want matches nothing.
	if tokenMatches(r.Header.Get(header), want) && want != "" {
		return acct, true
	}
	rc.reply(w, kind, http.StatusUnauthorized, OutcomeUnauthorized, "missing or wrong webhook token")
	return nil, false
}

// tokenMatches compares hashes so that neither content nor length leaks
// through timing.
func tokenMatches(got, want string) bool {
	g, x := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], x[:]) == 1 && got != ""
}

// findCall finds the account's OutboundCall by session ID, or by the
// _callops_ref the operator put in the metadata (for a webhook that beats
// the reconciler's own write of the session ID).
func (rc *Receiver) findCall(ctx context.Context, acct *millisv1alpha1.MillisAccount, sessionID, ref string) (*millisv1alpha1.OutboundCall, error) {
	lookups := []client.MatchingFields{{calls.IndexSessionID: sessionID}}
	if uid := calls.RefUID(ref); uid != "" {
		lookups = append(lookups, client.MatchingFields{calls.IndexUID: uid})
	}
	for _, fields := range lookups {
		var list millisv1alpha1.OutboundCallList
		if err := rc.Client.List(ctx, &list, client.InNamespace(acct.Namespace), fields); err != nil {
			return nil, fmt.Errorf("list OutboundCalls: %w", err)
		}
		for i := range list.Items {
			if list.Items[i].AccountName() == acct.Name {
				return &list.Items[i], nil
			}
		}
	}
	return nil, nil
}

func (rc *Receiver) reply(w http.ResponseWriter, kind string, code int, outcome, msg string) {
	rc.observe(kind, outcome)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"result": outcome, "detail": msg})
}

func (rc *Receiver) observe(kind, outcome string) {
	if rc.Observe != nil {
		rc.Observe(kind, outcome)
	}
}

func (rc *Receiver) maxBody() int64 {
	if rc.MaxBodyBytes > 0 {
		return rc.MaxBodyBytes
	}
	return DefaultMaxBodyBytes
}
