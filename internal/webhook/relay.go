package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	millisv1alpha1 "github.com/callops/millis-operator/api/v1alpha1"
	"github.com/callops/millis-operator/internal/agents"
)

// An Agent's own webhooks (in extraConfig) would be overwritten by the
// operator's, which every call must reach. Instead the receiver relays:
// the end-of-call body is forwarded as-is, and the user's prefetch answer is
// merged under the operator's.

const relayTimeout = 10 * time.Second

// userHook finds the managed Agent of a Millis agent ID and its user webhook.
func (rc *Receiver) userHook(ctx context.Context, acct *millisv1alpha1.MillisAccount, agentID, key string) *agents.UserWebhook {
	if agentID == "" {
		return nil
	}
	var list millisv1alpha1.AgentList
	if err := rc.Client.List(ctx, &list, client.InNamespace(acct.Namespace), client.MatchingFields{agents.IndexMillisID: agentID}); err != nil {
		return nil
	}
	for i := range list.Items {
		if list.Items[i].AccountName() == acct.Name {
			return agents.UserWebhookOf(&list.Items[i], key)
		}
	}
	return nil
}

// relayEndOfCall forwards the body in the background: Millis must not wait
// on someone else's endpoint.
func (rc *Receiver) relayEndOfCall(acct *millisv1alpha1.MillisAccount, agentID string, body []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), relayTimeout)
	hook := rc.userHook(ctx, acct, agentID, agents.KeyEndOfCallWebhook)
	if hook == nil {
		cancel()
		rc.observe("relay-end-of-call", "none")
		return
	}
	go func() {
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, hook.URL, bytes.NewReader(body))
		if err != nil {
			rc.observe("relay-end-of-call", OutcomeError)
			return
		}
		req.Header.Set("Content-Type", "application/json")
		for k, v := range hook.Headers {
			req.Header.Set(k, v)
		}
		resp, err := rc.relayClient().Do(req)
		if err != nil {
			rc.Log.Info("Relaying an end-of-call webhook failed", "error", withoutURL(err))
			rc.observe("relay-end-of-call", OutcomeError)
			return
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		rc.observe("relay-end-of-call", "relayed")
	}()
}

// relayPrefetch asks the user's prefetch webhook too and merges its answer
// under the operator's (the call's own data wins).
func (rc *Receiver) relayPrefetch(ctx context.Context, acct *millisv1alpha1.MillisAccount, r *http.Request, answer map[string]any) {
	hook := rc.userHook(ctx, acct, r.URL.Query().Get("agent_id"), agents.KeyPrefetchWebhook)
	if hook == nil {
		return
	}
	u, err := url.Parse(hook.URL)
	if err != nil {
		return
	}
	q := u.Query()
	for k, vs := range r.URL.Query() {
		for _, v := range vs {
			q.Add(k, v)
		}
	}
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(ctx, relayTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return
	}
	for k, v := range hook.Headers {
		req.Header.Set(k, v)
	}
	resp, err := rc.relayClient().Do(req)
	if err != nil {
		rc.Log.Info("Relaying a prefetch webhook failed", "error", withoutURL(err))
		return
	}
	defer resp.Body.Close()
	var theirs struct {
		Metadata    map[string]any `json:"metadata"`
		ExtraPrompt string         `json:"extra_prompt"`
	}
	if resp.StatusCode/100 != 2 || json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&theirs) != nil {
		return
	}
	if len(theirs.Metadata) > 0 {
		merged := theirs.Metadata
		if ours, ok := answer["metadata"].(map[string]string); ok {
			for k, v := range ours {
				merged[k] = v
			}
		}
		answer["metadata"] = merged
	}
	if theirs.ExtraPrompt != "" {
		if ours, ok := answer["extra_prompt"].(string); ok && ours != "" {
			answer["extra_prompt"] = theirs.ExtraPrompt + "\n" + ours
		} else {
			answer["extra_prompt"] = theirs.ExtraPrompt
		}
	}
}

func (rc *Receiver) relayClient() *http.Client {
	if rc.RelayClient != nil {
		return rc.RelayClient
	}
	return &http.Client{Timeout: relayTimeout}
}

// withoutURL is a client error without its URL: a relayed prefetch's query
// carries the caller's phone numbers, and a user's hook URL may carry a
// secret.
func withoutURL(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + ": " + ue.Err.Error()
	}
	return err.Error()
}
