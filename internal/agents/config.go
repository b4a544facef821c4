// Package agents maps an Agent resource to a Millis agent config, compares
// it with what Millis has, and merges without losing fields the operator
// does not model.
package agents

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"

	millisv1alpha1 "github.com/callops/millis-operator/api/v1alpha1"
	"github.com/callops/millis-operator/internal/accounts"
	"github.com/callops/millis-operator/internal/template"
)

// Webhook config keys of a Millis AgentConfig.
const (
	KeyEndOfCallWebhook = "session_data_webhook"
	KeyPrefetchWebhook  = "extra_prompt_webhook"
)

// Config is a Millis AgentConfig as top-level key -> raw JSON.
type Config map[string]json.RawMessage

// Desired renders the config the operator wants Millis to hold: extraConfig,
// then the typed fields over it, then the operator's own webhooks (so that
// every call, inbound ones too, reports back). A webhook the user set in
// extraConfig is relayed by the receiver, see UserWebhook.
func Desired(agent *millisv1alpha1.Agent, hooks *accounts.Webhooks) (Config, error) {
	cfg := Config{}
	if agent.Spec.ExtraConfig != nil && len(agent.Spec.ExtraConfig.Raw) > 0 {
		if err := json.Unmarshal(agent.Spec.ExtraConfig.Raw, &cfg); err != nil {
			return nil, fmt.Errorf("spec.extraConfig is not a JSON object: %w", err)
		}
	}
	if c := agent.Spec.Config; c != nil {
		set(cfg, "prompt", c.Prompt)
		voice := map[string]any{"provider": c.Voice.Provider, "voice_id": c.Voice.VoiceID}
		if c.Voice.Model != "" {
			voice["model"] = c.Voice.Model
		}
		cfg["voice"] = mustJSON(voice)
		if c.FirstMessage != "" {
			set(cfg, "first_message", c.FirstMessage)
		}
		if c.Language != "" {
			set(cfg, "language", c.Language)
		}
		if c.Timezone != "" {
			set(cfg, "timezone", c.Timezone)
		}
		if l := c.LLM; l != nil {
			llm := map[string]any{"model": l.Model}
			if l.Temperature != "" {
				t, err := strconv.ParseFloat(l.Temperature, 64)
				if err != nil {
					return nil, fmt.Errorf("spec.config.llm.temperature %q is not a number", l.Temperature)
				}
				llm["temperature"] = t
			}
			cfg["llm"] = mustJSON(llm)
		}
		if st := c.SessionTimeout; st != nil {
			m := map[string]any{}
			if st.MaxDuration != nil {
				m["max_duration"] = *st.MaxDuration
			}
			if st.MaxIdle != nil {
				m["max_idle"] = *st.MaxIdle
			}
			if st.Message != "" {
				m["message"] = st.Message
			}
			cfg["session_timeout"] = mustJSON(m)
		}
		if c.EnableRecording != nil {
			cfg["call_settings"] = mergeObject(cfg["call_settings"], map[string]any{"enable_recording": *c.EnableRecording})
		}
	}
	if hooks != nil {
		cfg[KeyEndOfCallWebhook] = Hook(hooks.EndOfCallURL, hooks)
		cfg[KeyPrefetchWebhook] = Hook(hooks.PrefetchURL, hooks)
	}
	return cfg, nil
}

// Hook is a Millis webhook setting pointing at the operator's receiver.
func Hook(url string, hooks *accounts.Webhooks) json.RawMessage {
	return mustJSON(map[string]any{"url": url, "headers": map[string]string{hooks.Header: hooks.Token}})
}

// UserWebhook is a webhook set by the user in extraConfig.
type UserWebhook struct {
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers,omitempty"`
}

// UserWebhookOf returns the user's own webhook for key (KeyEndOfCallWebhook
// or KeyPrefetchWebhook) from extraConfig, or nil.
func UserWebhookOf(agent *millisv1alpha1.Agent, key string) *UserWebhook {
	if agent.Spec.ExtraConfig == nil {
		return nil
	}
	var extra map[string]json.RawMessage
	if json.Unmarshal(agent.Spec.ExtraConfig.Raw, &extra) != nil {
		return nil
	}
	raw := bytes.TrimSpace(extra[key])
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var url string
	if json.Unmarshal(raw, &url) == nil {
		if url == "" {
			return nil
		}
		return &UserWebhook{URL: url}
	}
	var hook UserWebhook
	if json.Unmarshal(raw, &hook) != nil || hook.URL == "" {
		return nil
	}
	return &hook
}

// Variables lists the {name} variables the config speaks.
func Variables(cfg Config) ([]string, error) {
	return template.SpokenVariables(mustJSON(cfg))
}

// Diff compares the desired config with the one Millis holds and returns
// the differing fields as paths ("config.voice.voice_id"), sorted. Fields
// Millis has that the spec does not set are not drift: they belong to
// Millis or to someone else, and Merge keeps them.
func Diff(desired Config, actual json.RawMessage) []string {
	var have map[string]any
	_ = json.Unmarshal(actual, &have)
	var out []string
	for key, raw := range desired {
		var want any
		_ = json.Unmarshal(raw, &want)
		diffValue("config."+key, want, have[key], &out)
	}
	sort.Strings(out)
	return out
}

func diffValue(path string, want, have any, out *[]string) {
	wm, wok := want.(map[string]any)
	hm, hok := have.(map[string]any)
	if wok && hok {
		for k, wv := range wm {
			diffValue(path+"."+k, wv, hm[k], out)
		}
		return
	}
	if !reflect.DeepEqual(want, have) {
		*out = append(*out, path)
	}
}

// Merge overlays the desired top-level fields on the config Millis holds,
// so that fields the operator does not model survive an update.
func Merge(actual json.RawMessage, desired Config) json.RawMessage {
	merged := Config{}
	_ = json.Unmarshal(actual, &merged)
	for k, v := range desired {
		merged[k] = v
	}
	return mustJSON(merged)
}

// JSON encodes a config.
func (c Config) JSON() json.RawMessage { return mustJSON(c) }

func set(cfg Config, key, value string) { cfg[key] = mustJSON(value) }

func mergeObject(existing json.RawMessage, fields map[string]any) json.RawMessage {
	m := map[string]any{}
	_ = json.Unmarshal(existing, &m)
	for k, v := range fields {
		m[k] = v
	}
	return mustJSON(m)
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("marshal %T: %v", v, err))
	}
	return b
}
