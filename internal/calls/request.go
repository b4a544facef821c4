// Package calls holds the logic of one outbound call that does not depend on
// the reconciler: building the Millis request, proving whether an uncertain
// dial happened, and folding a call log or end-of-call webhook into status.
package calls

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	millisv1alpha1 "github.com/callops/millis-operator/api/v1alpha1"
	"github.com/callops/millis-operator/internal/accounts"
	"github.com/callops/millis-operator/internal/millis"
	"github.com/callops/millis-operator/internal/template"
)

// InputError is bad input found before dialing. Reason is a condition reason.
type InputError struct {
	Reason  string
	Message string
}

func (e *InputError) Error() string { return e.Message }

// Ref is the value of the _callops_ref metadata key for an attempt.
func Ref(uid string, attempt int32) string { return fmt.Sprintf("%s/%d", uid, attempt) }

// RefUID returns the OutboundCall UID part of a _callops_ref value.
func RefUID(ref string) string {
	uid, _, _ := strings.Cut(ref, "/")
	return uid
}

// Input is everything that shapes the Millis request of a call.
type Input struct {
	Call *millisv1alpha1.OutboundCall
	// AgentConfig is the stored Millis agent's config, used to check that
	// every variable it speaks can be resolved. Nil skips that check.
	AgentConfig json.RawMessage
	// LateBound are variables filled at call time (prefetch metadata keys).
	LateBound []string
	// Webhooks, when set, are attached as the call's end-of-call and prefetch
	// webhooks, unless the agent already has its own (see Build).
	Webhooks *accounts.Webhooks
	// Ref is the _callops_ref value of this attempt.
	Ref string
	// AgentID is the Millis agent: spec.agentID, or the referenced Agent's.
	AgentID string
}

// Build renders templates, checks variables and sizes, and returns the
// request to send. It never calls Millis.
//
// Webhooks: the operator never silently replaces a webhook the agent already
// has. If the stored agent config has its own session_data_webhook (or
// extra_prompt_webhook), that one is left in place and the operator learns
// the result by polling the call log instead.
func Build(in Input) (millis.StartOutboundCallRequest, error) {
	call := in.Call
	meta, err := metadataMap(call)
	if err != nil {
		return millis.StartOutboundCallRequest{}, err
	}
	vars := template.Vars(meta, string(call.Spec.FromPhone), string(call.Spec.ToPhone))

	renderedMeta, missing, err := renderMetadata(meta, vars)
	if err != nil {
		return millis.StartOutboundCallRequest{}, err
	}
	override, missingOverride, err := renderOverride(call, vars)
	if err != nil {
		return millis.StartOutboundCallRequest{}, err
	}
	missing = append(missing, missingOverride...)

	// Every variable the agent will speak must be known now or filled by
	// the prefetch webhook at call time.
	spoken, err := template.SpokenVariables(mergeConfig(in.AgentConfig, override))
	if err != nil {
		return millis.StartOutboundCallRequest{}, &InputError{Reason: millisv1alpha1.ReasonTemplateError, Message: err.Error()}
	}
	known := map[string]bool{}
	for k := range vars {
		known[k] = true
	}
	for _, k := range in.LateBound {
		known[k] = true
	}
	for _, v := range spoken {
		if !known[v] {
			missing = append(missing, v)
		}
	}
	if missing = dedupe(missing); len(missing) > 0 {
		return millis.StartOutboundCallRequest{}, &InputError{Reason: millisv1alpha1.ReasonTemplateError,
			Message: fmt.Sprintf("unresolved template variables {%s}: set them in spec.metadata or provide them through spec.prefetch; nothing was dialed",
				strings.Join(missing, "}, {"))}
	}

	renderedMeta[millisv1alpha1.MetadataKeyCallRef] = mustJSON(in.Ref)
	metaJSON := mustJSON(renderedMeta)
	if len(metaJSON) > millisv1alpha1.MaxMetadataBytes {
		return millis.StartOutboundCallRequest{}, &InputError{Reason: millisv1alpha1.ReasonMetadataTooLarge,
			Message: fmt.Sprintf("spec.metadata is %d bytes as JSON; the limit is %d bytes", len(metaJSON), millisv1alpha1.MaxMetadataBytes)}
	}

	override = withWebhooks(override, in.AgentConfig, in.Webhooks)
	req := millis.StartOutboundCallRequest{
		FromPhone:               string(call.Spec.FromPhone),
		ToPhone:                 string(call.Spec.ToPhone),
		AgentID:                 in.AgentID,
		Metadata:                metaJSON,
		IncludeMetadataInPrompt: call.Spec.IncludeMetadataInPrompt,
	}
	if len(override) > 0 {
		req.AgentConfig = mustJSON(override)
	}
	return req, nil
}

func metadataMap(call *millisv1alpha1.OutboundCall) (map[string]json.RawMessage, error) {
	meta := map[string]json.RawMessage{}
	if call.Spec.Metadata != nil && len(call.Spec.Metadata.Raw) > 0 {
		if err := json.Unmarshal(call.Spec.Metadata.Raw, &meta); err != nil {
			return nil, &InputError{Reason: millisv1alpha1.ReasonTemplateError, Message: fmt.Sprintf("spec.metadata is not a JSON object: %v", err)}
		}
	}
	if _, ok := meta[millisv1alpha1.MetadataKeyCallRef]; ok {
		return nil, &InputError{Reason: millisv1alpha1.ReasonTemplateError,
			Message: fmt.Sprintf("spec.metadata must not set %q: the operator reserves it", millisv1alpha1.MetadataKeyCallRef)}
	}
	return meta, nil
}

func renderMetadata(meta map[string]json.RawMessage, vars map[string]string) (map[string]json.RawMessage, []string, error) {
	out := make(map[string]json.RawMessage, len(meta)+1)
	var missing []string
	for k, raw := range meta {
		r, miss, err := template.RenderJSON(raw, vars)
		if err != nil {
			return nil, nil, &InputError{Reason: millisv1alpha1.ReasonTemplateError, Message: fmt.Sprintf("spec.metadata.%s: %v", k, err)}
		}
		out[k] = r
		missing = append(missing, miss...)
	}
	return out, missing, nil
}

func renderOverride(call *millisv1alpha1.OutboundCall, vars map[string]string) (map[string]json.RawMessage, []string, error) {
	override := map[string]json.RawMessage{}
	if call.Spec.AgentConfig == nil || len(call.Spec.AgentConfig.Raw) == 0 {
		return override, nil, nil
	}
	rendered, missing, err := template.RenderJSON(call.Spec.AgentConfig.Raw, vars)
	if err == nil {
		err = json.Unmarshal(rendered, &override)
	}
	if err != nil {
		return nil, nil, &InputError{Reason: millisv1alpha1.ReasonTemplateError, Message: fmt.Sprintf("spec.agentConfig: %v", err)}
	}
	return override, missing, nil
}

// mergeConfig overlays the per-call override on the stored agent config at
// the top level, as Millis does.
func mergeConfig(stored json.RawMessage, override map[string]json.RawMessage) json.RawMessage {
	merged := map[string]json.RawMessage{}
	if len(stored) > 0 {
		_ = json.Unmarshal(stored, &merged) // a broken stored config just checks less
	}
	for k, v := range override {
		merged[k] = v
	}
	return mustJSON(merged)
}

func withWebhooks(override map[string]json.RawMessage, stored json.RawMessage, wh *accounts.Webhooks) map[string]json.RawMessage {
	if wh == nil {
		return override
	}
	existing := map[string]json.RawMessage{}
	if len(stored) > 0 {
		_ = json.Unmarshal(stored, &existing)
	}
	hook := func(url string) json.RawMessage {
		return mustJSON(map[string]any{"url": url, "headers": map[string]string{wh.Header: wh.Token}})
	}
	for key, url := range map[string]string{"session_data_webhook": wh.EndOfCallURL, "extra_prompt_webhook": wh.PrefetchURL} {
		if _, set := override[key]; set {
			continue
		}
		if hasWebhook(existing[key]) && !pointsAt(existing[key], url) {
			continue // the agent's own webhook stays; see Build
		}
		override[key] = hook(url)
	}
	return override
}

func hasWebhook(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && !bytes.Equal(raw, []byte("null")) && !bytes.Equal(raw, []byte(`""`))
}

func pointsAt(raw json.RawMessage, url string) bool { return bytes.Contains(raw, []byte(url)) }

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("marshal %T: %v", v, err)) // only called on values decoded from JSON
	}
	return b
}

func dedupe(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	sort.Strings(s)
	out := s[:1]
	for _, v := range s[1:] {
		if v != out[len(out)-1] {
			out = append(out, v)
		}
	}
	return out
}
