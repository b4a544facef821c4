package simulator_test

import (
	"regexp"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/callops/millis-operator/internal/simulator"
)

type agentWire struct {
	ID        string         `json:"id"`
	Name      string         `json:"name"`
	Config    map[string]any `json:"config"`
	CreatedAt int64          `json:"created_at"`
}

type phoneWire struct {
	ID                  string         `json:"id"`
	AgentID             *string        `json:"agent_id"`
	CreateAt            float64        `json:"create_at"`
	Status              string         `json:"status"`
	AgentConfigOverride map[string]any `json:"agent_config_override"`
	Tags                []string       `json:"tags"`
}

var pushID = regexp.MustCompile(`^-[0-9A-Za-z_-]{19}$`)

func TestAgentCRUD(t *testing.T) {
	h := newHarness(t, nil)
	cfg := map[string]any{"prompt": "Be brief.", "voice": map[string]any{"provider": "openai", "voice_id": "alloy"}, "language": "en-US", "future_field": map[string]any{"kept": true}}

	var created agentWire
	h.doJSON("POST", "/agents", map[string]any{"name": "support", "config": cfg}, 200, &created)
	if !pushID.MatchString(created.ID) {
		t.Errorf("agent ids are 20-char push ids starting with '-'; got %q", created.ID)
	}
	want := agentWire{ID: created.ID, Name: "support", Config: roundTrip(t, cfg), CreatedAt: t0.Unix()}
	if diff := cmp.Diff(want, created); diff != "" {
		t.Errorf("create returns the Agent, unknown config fields included (-want +got):\n%s", diff)
	}

	var got agentWire
	h.doJSON("GET", "/agents/"+created.ID, nil, 200, &got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("get returns what was created (-want +got):\n%s", diff)
	}

	var list []agentWire
	h.doJSON("GET", "/agents", nil, 200, &list)
	if len(list) != 2 || list[0].ID != simulator.SeedAgentID || list[1].ID != created.ID {
		t.Errorf("list holds the seed agent and the new one, in creation order; got %+v", list)
	}

	var ok struct{ Success bool }
	h.doJSON("PUT", "/agents/"+created.ID, map[string]any{"name": "support-2", "config": map[string]any{"prompt": "Be briefer.", "first_message": "Hi"}}, 200, &ok)
	if !ok.Success {
		t.Error("update answers {success: true}")
	}
	h.doJSON("GET", "/agents/"+created.ID, nil, 200, &got)
	wantCfg := roundTrip(t, cfg)
	wantCfg["prompt"], wantCfg["first_message"] = "Be briefer.", "Hi"
	if diff := cmp.Diff(agentWire{ID: created.ID, Name: "support-2", Config: wantCfg, CreatedAt: t0.Unix()}, got); diff != "" {
		t.Errorf("update replaces the name and merges top-level config keys (-want +got):\n%s", diff)
	}

	var dup agentWire
	h.doJSON("POST", "/agents/"+created.ID+"/duplicate", nil, 200, &dup)
	if dup.ID == created.ID || !pushID.MatchString(dup.ID) || dup.Name != "support-2 (copy)" || !cmp.Equal(dup.Config, wantCfg) {
		t.Errorf("duplicate makes a new agent with the same config; got %+v", dup)
	}

	h.doJSON("DELETE", "/agents/"+created.ID, nil, 200, &ok)
	if code := h.do("GET", "/agents/"+created.ID, nil).Code; code != 404 {
		t.Errorf("a deleted agent is gone; GET answered %d", code)
	}
	if code := h.do("GET", "/agents/"+dup.ID, nil).Code; code != 200 {
		t.Errorf("deleting the original leaves the copy; GET answered %d", code)
	}
}

func TestCreateAgentEmptyName(t *testing.T) {
	h := newHarness(t, nil)
	rec := h.do("POST", "/agents", map[string]any{"name": "", "config": map[string]any{"prompt": "p", "voice": voice}})
	if rec.Code != 400 || rec.Body.String() != `{"detail":"Agent name must not be empty"}` {
		t.Errorf("the documented 400 of create is used for an empty name; got %d %s", rec.Code, rec.Body)
	}
}

func TestPhones(t *testing.T) {
	h := newHarness(t, nil)
	var list []phoneWire
	h.doJSON("GET", "/phones", nil, 200, &list)
	createAt := float64(t0.UnixMicro()) / 1e6
	wantList := []phoneWire{
		{ID: "+15550100001", AgentID: ptr(simulator.SeedAgentID), CreateAt: createAt, Status: "active"},
		{ID: "+15550100002", CreateAt: createAt, Status: "active"},
		{ID: "+15550100003", CreateAt: createAt, Status: "active"},
	}
	if diff := cmp.Diff(wantList, list); diff != "" {
		t.Errorf("phones: id is the number, create_at float seconds, status active (-want +got):\n%s", diff)
	}

	steps := []struct {
		name, reason string
		method, path string
		body         any
		want         phoneWire
	}{
		{
			name: "bind", reason: "set_agent binds an agent",
			method: "POST", path: "/phones/%2B15550100002/set_agent", body: map[string]any{"agent_id": simulator.SeedAgentID},
			want: phoneWire{ID: "+15550100002", AgentID: ptr(simulator.SeedAgentID), CreateAt: createAt, Status: "active"},
		},
		{
			name: "tags", reason: "tags replace all tags",
			method: "PUT", path: "/phones/%2B15550100002/tags", body: map[string]any{"tags": []string{"a", "b"}},
			want: phoneWire{ID: "+15550100002", AgentID: ptr(simulator.SeedAgentID), CreateAt: createAt, Status: "active", Tags: []string{"a", "b"}},
		},
		{
			name: "tags again", reason: "a second PUT replaces, not appends",
			method: "PUT", path: "/phones/+15550100002/tags", body: map[string]any{"tags": []string{"c"}},
			want: phoneWire{ID: "+15550100002", AgentID: ptr(simulator.SeedAgentID), CreateAt: createAt, Status: "active", Tags: []string{"c"}},
		},
		{
			name: "override", reason: "agent-config-override stores a partial config",
			method: "POST", path: "/phones/%2B15550100002/agent-config-override", body: map[string]any{"first_message": "Yo"},
			want: phoneWire{ID: "+15550100002", AgentID: ptr(simulator.SeedAgentID), CreateAt: createAt, Status: "active", Tags: []string{"c"}, AgentConfigOverride: map[string]any{"first_message": "Yo"}},
		},
		{
			name: "unbind", reason: "agent_id null unbinds",
			method: "POST", path: "/phones/%2B15550100002/set_agent", body: `{"agent_id":null}`,
			want: phoneWire{ID: "+15550100002", CreateAt: createAt, Status: "active", Tags: []string{"c"}, AgentConfigOverride: map[string]any{"first_message": "Yo"}},
		},
	}
	for _, st := range steps {
		var ok struct{ Success bool }
		h.doJSON(st.method, st.path, st.body, 200, &ok)
		if !ok.Success {
			t.Errorf("%s: want {success: true}", st.name)
		}
		var got phoneWire
		h.doJSON("GET", "/phones/%2B15550100002", nil, 200, &got)
		if diff := cmp.Diff(st.want, got); diff != "" {
			t.Errorf("%s: %s (-want +got):\n%s", st.name, st.reason, diff)
		}
	}

	rec := h.do("POST", "/start_outbound_call", map[string]any{"from_phone": "+15550100002", "to_phone": "+15551230000"})
	if rec.Code != 400 {
		t.Errorf("an unbound phone cannot call without agent_id; got %d", rec.Code)
	}
}

func TestBoundPhoneCallsWithItsAgent(t *testing.T) {
	h := newHarness(t, nil)
	var a agentWire
	h.doJSON("POST", "/agents", map[string]any{"name": "x", "config": map[string]any{"prompt": "p", "voice": voice, "first_message": "From x"}}, 200, &a)
	h.doJSON("POST", "/phones/%2B15550100003/set_agent", map[string]any{"agent_id": a.ID}, 200, nil)
	var reg registration
	h.doJSON("POST", "/start_outbound_call", map[string]any{"from_phone": "+15550100003", "to_phone": "+15551230000"}, 200, &reg)
	h.step(time.Hour)
	c := h.callLog(reg.SessionID)
	if c.AgentID == nil || *c.AgentID != a.ID || c.messages(t)[0].Content != "From x" {
		t.Errorf("a call without agent_id uses the phone's agent; got agent %v chat %s", c.AgentID, c.Chat)
	}

	// Deleting the agent unbinds the phone.
	h.doJSON("DELETE", "/agents/"+a.ID, nil, 200, nil)
	var ph phoneWire
	h.doJSON("GET", "/phones/%2B15550100003", nil, 200, &ph)
	if ph.AgentID != nil {
		t.Errorf("a phone must not keep a deleted agent; agent_id %q", *ph.AgentID)
	}
	// The finished call keeps the config it was placed with.
	if c2 := h.callLog(reg.SessionID); !cmp.Equal(c.AgentConfig, c2.AgentConfig) {
		t.Errorf("call logs keep their agent_config after the agent is deleted")
	}
}

func TestAgentUpdateDoesNotChangeLiveCalls(t *testing.T) {
	h := newHarness(t, nil)
	id := h.place("+15551230000", map[string]any{"metadata": map[string]any{"userName": "Ada"}})
	h.doJSON("PUT", "/agents/"+simulator.SeedAgentID, map[string]any{"name": "seed-agent", "config": map[string]any{"first_message": "Changed"}}, 200, nil)
	h.step(time.Hour)
	if got := h.callLog(id).messages(t)[0].Content; got != "Hello Ada!" {
		t.Errorf("a call keeps the config it was placed with; greeting %q", got)
	}
	if got := h.callLog(h.place("+15551230001", nil)).AgentConfig["first_message"]; got != "Changed" {
		t.Errorf("new calls see the update; first_message %q", got)
	}
}
