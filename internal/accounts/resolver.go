// Package accounts turns a MillisAccount into what the rest of the operator
// needs: a Millis client, the webhook token and endpoints. It is shared by
// the reconcilers and the webhook receiver, which runs on every replica.
package accounts

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	millisv1alpha1 "github.com/callops/millis-operator/api/v1alpha1"
	"github.com/callops/millis-operator/internal/millis"
)

// DefaultWebhookHeader carries the webhook token when the account names none.
const DefaultWebhookHeader = "X-Millis-Operator-Token"

// Webhook receiver paths, below the account's webhook URL.
const (
	PathEndOfCall = "end-of-call"
	PathPrefetch  = "prefetch"
)

// Error is a resolution failure with a condition reason. Its message never
// contains secret values.
type Error struct {
	Reason  string
	Message string
}

func (e *Error) Error() string { return e.Message }

// ReasonOf returns the condition reason of err, or "" if it is not an *Error.
func ReasonOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// ClientFactory builds a Millis client; tests and main inject options.
type ClientFactory func(baseURL, apiKey string) (millis.Interface, error)

// Resolver resolves accounts. Secrets are read with an uncached reader (get
// only, no cluster-wide watch of Secrets) and kept for SecretTTL, so a
// rotated key is picked up within that time.
type Resolver struct {
	Client    client.Client // cached reads of MillisAccounts
	Secrets   client.Reader // uncached reads of Secrets
	NewClient ClientFactory
	SecretTTL time.Duration
	Clock     clock.PassiveClock
	mu        sync.Mutex
	secrets   map[types.NamespacedName]cachedSecret
	clients   map[[32]byte]millis.Interface
}

type cachedSecret struct {
	data    map[string][]byte
	fetched time.Time
}

// Resolved is a usable account.
type Resolved struct {
	Account  *millisv1alpha1.MillisAccount
	BaseURL  string
	Millis   millis.Interface
	Webhooks *Webhooks // nil when the account has no webhook configured
}

// Webhooks are the receiver endpoints and the token Millis must send.
type Webhooks struct {
	EndOfCallURL string
	PrefetchURL  string
	Header       string
	Token        string
}

// BaseURL returns the Millis API base URL of an account.
func BaseURL(acct *millisv1alpha1.MillisAccount) (string, error) {
	if acct.Spec.BaseURL != "" {
		return strings.TrimRight(acct.Spec.BaseURL, "/"), nil
	}
	region := acct.Spec.Region
	if region == "" {
		region = millisv1alpha1.RegionUSWest
	}
	return millis.BaseURLForRegion(string(region))
}

// Get returns the account, or an *Error with ReasonAccountNotFound.
func (r *Resolver) Get(ctx context.Context, namespace, name string) (*millisv1alpha1.MillisAccount, error) {
	var acct millisv1alpha1.MillisAccount
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &acct); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &Error{Reason: millisv1alpha1.ReasonAccountNotFound,
				Message: fmt.Sprintf("MillisAccount %s/%s not found", namespace, name)}
		}
		return nil, fmt.Errorf("get MillisAccount %s/%s: %w", namespace, name, err)
	}
	return &acct, nil
}

// Resolve builds a client for the account. It does not check Ready; callers
// that must only use verified accounts check the condition themselves.
func (r *Resolver) Resolve(ctx context.Context, acct *millisv1alpha1.MillisAccount) (*Resolved, error) {
	base, err := BaseURL(acct)
	if err != nil {
		return nil, &Error{Reason: millisv1alpha1.ReasonInvalidEndpoint, Message: err.Error()}
	}
	key, err := r.SecretValue(ctx, acct.Namespace, acct.Spec.APIKeySecretRef)
	if err != nil {
		return nil, err
	}
	mc, err := r.client(base, key)
	if err != nil {
		return nil, &Error{Reason: millisv1alpha1.ReasonInvalidEndpoint, Message: err.Error()}
	}
	res := &Resolved{Account: acct, BaseURL: base, Millis: mc}
	if wh := acct.Spec.Webhook; wh != nil {
		if res.Webhooks, err = r.webhooks(ctx, acct); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// WebhookToken returns the header name and token an account's webhooks must carry.
func (r *Resolver) WebhookToken(ctx context.Context, acct *millisv1alpha1.MillisAccount) (header, token string, err error) {
	wh := acct.Spec.Webhook
	if wh == nil {
		return "", "", &Error{Reason: "WebhookNotConfigured",
			Message: fmt.Sprintf("MillisAccount %s/%s has no webhook configured", acct.Namespace, acct.Name)}
	}
	token, err = r.SecretValue(ctx, acct.Namespace, wh.TokenSecretRef)
	if err != nil {
		return "", "", err
	}
	header = wh.Header
	if header == "" {
		header = DefaultWebhookHeader
	}
	return header, token, nil
}

func (r *Resolver) webhooks(ctx context.Context, acct *millisv1alpha1.MillisAccount) (*Webhooks, error) {
	header, token, err := r.WebhookToken(ctx, acct)
	if err != nil {
		return nil, err
	}
	base := strings.TrimRight(acct.Spec.Webhook.URL, "/")
	prefix := fmt.Sprintf("%s/millis/%s/%s/", base, acct.Namespace, acct.Name)
	return &Webhooks{
		EndOfCallURL: prefix + PathEndOfCall,
		PrefetchURL:  prefix + PathPrefetch,
		Header:       header,
		Token:        token,
	}, nil
}

// SecretValue reads one key of a Secret in namespace.
func (r *Resolver) SecretValue(ctx context.Context, namespace string, sel millisv1alpha1.SecretKeySelector) (string, error) {
	data, err := r.secretData(ctx, types.NamespacedName{Namespace: namespace, Name: sel.Name})
	if err != nil {
		return "", err
	}
	v, ok := data[sel.Key]
	if !ok || len(strings.TrimSpace(string(v))) == 0 {
		return "", &Error{Reason: millisv1alpha1.ReasonSecretKeyMissing,
			Message: fmt.Sprintf("Secret %s/%s has no key %q, or it is empty", namespace, sel.Name, sel.Key)}
	}
	return strings.TrimSpace(string(v)), nil
}

func (r *Resolver) secretData(ctx context.Context, nn types.NamespacedName) (map[string][]byte, error) {
	now := r.clock().Now()
	r.mu.Lock()
	if c, ok := r.secrets[nn]; ok && now.Sub(c.fetched) < r.SecretTTL {
		r.mu.Unlock()
		return c.data, nil
	}
	r.mu.Unlock()

	var s corev1.Secret
	if err := r.Secrets.Get(ctx, nn, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &Error{Reason: millisv1alpha1.ReasonSecretNotFound,
				Message: fmt.Sprintf("Secret %s not found", nn)}
		}
		return nil, fmt.Errorf("get Secret %s: %w", nn, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.secrets == nil {
		r.secrets = map[types.NamespacedName]cachedSecret{}
	}
	r.secrets[nn] = cachedSecret{data: s.Data, fetched: now}
	return s.Data, nil
}

// Forget drops cached Secrets of a namespace/name, so that the next read
// sees a fix at once (used when Millis rejects a key).
func (r *Resolver) Forget(namespace, name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.secrets, types.NamespacedName{Namespace: namespace, Name: name})
}

// client returns a cached Millis client per base URL and key. The map key
// is a hash, so the key itself is not kept twice.
func (r *Resolver) client(base, key string) (millis.Interface, error) {
	id := sha256.Sum256([]byte(base + "\x00" + key))
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.clients[id]; ok {
		return c, nil
	}
	c, err := r.NewClient(base, key)
	if err != nil {
		return nil, err
	}
	if r.clients == nil {
		r.clients = map[[32]byte]millis.Interface{}
	}
	r.clients[id] = c
	return c, nil
}

func (r *Resolver) clock() clock.PassiveClock {
	if r.Clock == nil {
		return clock.RealClock{}
	}
	return r.Clock
}
