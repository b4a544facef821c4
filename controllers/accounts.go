package controllers

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	millisv1alpha1 "github.com/callops/millis-operator/api/v1alpha1"
	"github.com/callops/millis-operator/internal/accounts"
)

// resolveAccount resolves an account whatever its Ready state.
func resolveAccount(ctx context.Context, resolver *accounts.Resolver, namespace, name string, retry time.Duration) (*accounts.Resolved, *waitReason) {
	acct, err := resolver.Get(ctx, namespace, name)
	if err == nil {
		var res *accounts.Resolved
		if res, err = resolver.Resolve(ctx, acct); err == nil {
			return res, nil
		}
	}
	reason := accounts.ReasonOf(err)
	if reason != millisv1alpha1.ReasonAccountNotFound {
		reason = millisv1alpha1.ReasonAccountNotReady
	}
	return nil, &waitReason{reason: reason, message: err.Error(), after: retry}
}

// resolveReadyAccount additionally requires the account's Ready=True: the
// operator only writes to Millis through verified accounts.
func resolveReadyAccount(ctx context.Context, resolver *accounts.Resolver, namespace, name string, retry time.Duration) (*accounts.Resolved, *waitReason) {
	res, wait := resolveAccount(ctx, resolver, namespace, name, retry)
	if res == nil {
		return nil, wait
	}
	if c := meta.FindStatusCondition(res.Account.Status.Conditions, millisv1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
		msg := fmt.Sprintf("MillisAccount %s is not Ready", res.Account.Name)
		if c != nil {
			msg += fmt.Sprintf(": %s: %s", c.Reason, c.Message)
		}
		return nil, &waitReason{reason: millisv1alpha1.ReasonAccountNotReady, message: msg, after: retry}
	}
	return res, nil
}
