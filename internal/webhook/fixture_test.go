package webhook

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	millisv1alpha1 "github.com/callops/millis-operator/api/v1alpha1"
	"github.com/callops/millis-operator/internal/accounts"
	"github.com/callops/millis-operator/internal/agents"
	"github.com/callops/millis-operator/internal/calls"
)

// The fixture is a Receiver over controller-runtime's in-memory client,
// with the real field indexes: one account "sales/default" whose webhooks
// carry testToken, and fixtureCalls OutboundCalls in progress with the
// sessions sessionOf(0..fixtureCalls-1).
const (
	testNamespace = "sales"
	testAccount   = "default"
	testToken     = "right-token-0123456789abcdef"
	fixtureCalls  = 5
)

func sessionOf(i int) string { return fmt.Sprintf("session-%d", i) }

// builderIndexer registers indexes on a fake client builder, so the tests
// use the same index functions as the manager.
type builderIndexer struct{ b *fake.ClientBuilder }

func (i builderIndexer) IndexField(_ context.Context, obj client.Object, field string, fn client.IndexerFunc) error {
	i.b.WithIndex(obj, field, fn)
	return nil
}

func newTestReceiver(t *testing.T) *Receiver {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := millisv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	objs := []client.Object{
		&corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "millis-credentials"},
			Data:       map[string][]byte{"apiKey": []byte("sim-key"), "webhookToken": []byte(testToken)},
		},
		&millisv1alpha1.MillisAccount{
			ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: testAccount},
			Spec: millisv1alpha1.MillisAccountSpec{
				APIKeySecretRef: millisv1alpha1.SecretKeySelector{Name: "millis-credentials", Key: "apiKey"},
				Webhook: &millisv1alpha1.AccountWebhook{
					URL:            "https://hooks.example.com",
					TokenSecretRef: millisv1alpha1.SecretKeySelector{Name: "millis-credentials", Key: "webhookToken"},
				},
			},
		},
	}
	for i := range fixtureCalls {
		objs = append(objs, &millisv1alpha1.OutboundCall{
			ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: fmt.Sprintf("call-%d", i), UID: types.UID(fmt.Sprintf("uid-%d", i))},
			Spec:       millisv1alpha1.OutboundCallSpec{FromPhone: "+15550100001", ToPhone: millisv1alpha1.PhoneNumber(fmt.Sprintf("+1555020%04d", i))},
			Status:     millisv1alpha1.OutboundCallStatus{Phase: millisv1alpha1.CallInProgress, SessionID: sessionOf(i)},
		})
	}
	b := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).
		WithStatusSubresource(&millisv1alpha1.OutboundCall{})
	if err := calls.IndexOutboundCalls(context.Background(), builderIndexer{b}); err != nil {
		t.Fatal(err)
	}
	if err := agents.Index(context.Background(), builderIndexer{b}); err != nil {
		t.Fatal(err)
	}
	c := b.Build()
	return &Receiver{
		Client:   c,
		Reader:   c,
		Accounts: &accounts.Resolver{Client: c, Secrets: c, SecretTTL: time.Minute, Clock: clock.RealClock{}},
		Recorder: events.NewFakeRecorder(10 * fixtureCalls),
		Clock:    clock.RealClock{},
		Observe:  RecordOutcome,
	}
}

func endOfCallPath(namespace, account string) string {
	return fmt.Sprintf("/millis/%s/%s/%s", namespace, account, accounts.PathEndOfCall)
}

func endOfCallBody(session string) string {
	return fmt.Sprintf(`{"session_id":%q,"call_status":"user-ended","duration":42}`, session)
}
