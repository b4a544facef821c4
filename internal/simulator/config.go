package simulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"k8s.io/utils/clock"
)

// SeedAgentID is the id of the agent that SeedAgent describes. It has the
// shape of a real Millis agent id (a 20-character Firebase push id).
const SeedAgentID = "-OKdqbqetEcM4ak369ym"

// Config configures a Server. The zero value is usable: every zero field
// takes the default named in its comment.
type Config struct {
	// APIKeys are the accepted private keys, compared with the raw value of
	// the "authorization" header. Default: ["sim-private-key"].
	APIKeys []string
	// AcceptBearer also accepts "Bearer <key>". Off by default because the
	// Millis docs send the raw key, and a client that adds "Bearer" should
	// find out here rather than in production.
	AcceptBearer bool

	// UserID is returned by GET /user/info. Default "sim-user".
	UserID string
	// InitialCredit is the account credit before any call. Default 100.
	InitialCredit float64

	// Phones are the Millis-owned numbers, E.164. Default
	// +15550100001, +15550100002, +15550100003.
	Phones []string
	// Agents are created at start-up, in order.
	Agents []AgentSeed

	// Clock drives every lifecycle transition. Default clock.RealClock{}.
	// Tests pass a *testing.FakeClock from k8s.io/utils/clock/testing, step
	// it and call Server.Sync.
	Clock clock.Clock

	// StageTime is how long a call stays in each of registered, queued and
	// initiated before it rings. Default 100ms.
	StageTime time.Duration
	// RingTime is how long a call rings before it is answered or gets its
	// non-connected outcome. Default 1s.
	RingTime time.Duration
	// TalkTime is how long an answered call stays in-progress. Default 2s.
	TalkTime time.Duration
	// MaxCallTime ends a call that would otherwise stay in-progress forever
	// (outcome "in-progress", numbers ending in 98) with status "timeout".
	// Default 10m.
	MaxCallTime time.Duration
	// Speed divides every lifecycle duration above (2 runs the lifecycle
	// twice as fast). Reported durations and costs stay in simulated
	// seconds, so Speed changes pacing but never the numbers a client sees.
	// Default 1.
	Speed float64

	// Outcomes overrides the outcome for exact destination numbers
	// (to_phone -> final call_status). "in-progress" means the call stays
	// in-progress until terminated or MaxCallTime passes.
	Outcomes map[string]string

	// NonConnectedWebhooks says whether busy, no-answer, failed, canceled and
	// error calls fire the end-of-call webhook. The Millis docs do not say;
	// nil means true.
	NonConnectedWebhooks *bool
	// WebhookTimeout bounds each webhook request, in wall-clock time (it is
	// network time, so neither Clock nor Speed apply). Default 5s.
	WebhookTimeout time.Duration
	// WebhookWorkers is the number of concurrent webhook deliveries.
	// Default 8.
	WebhookWorkers int
	// HTTPClient sends webhooks. Default: a client with its own transport.
	HTTPClient *http.Client

	// RecordingBaseURL prefixes recording URLs, which are
	// <RecordingBaseURL>/<session_id>.mp3. Default
	// "https://recordings.millis-simulator.invalid".
	RecordingBaseURL string

	// Seed seeds the random number generators (ids and probabilistic
	// faults), so a run is reproducible for a given request order.
	Seed int64

	// Logger receives the simulator's logs. Default: discard. Phone numbers
	// are masked and API keys are never logged.
	Logger *slog.Logger
}

// AgentSeed is an agent created when the Server starts.
type AgentSeed struct {
	// ID is used verbatim; empty means generate one.
	ID   string
	Name string
	// Config is a full AgentConfig (prompt and voice required). Empty means
	// DefaultAgentConfig.
	Config json.RawMessage
	// Phones are bound to this agent at start-up.
	Phones []string
}

// DefaultAgentConfig is a minimal valid AgentConfig.
var DefaultAgentConfig = json.RawMessage(`{"prompt":"You are a helpful assistant.","voice":{"provider":"elevenlabs","voice_id":"21m00Tcm4TlvDq8ikWAM"}}`)

// SeedAgent is the agent the CLI seeds by default, bound to phones.
func SeedAgent(phones ...string) AgentSeed {
	return AgentSeed{
		ID:     SeedAgentID,
		Name:   "seed-agent",
		Config: json.RawMessage(`{"prompt":"You are a friendly assistant. The caller is {userName}.","first_message":"Hello {userName}!","voice":{"provider":"elevenlabs","voice_id":"21m00Tcm4TlvDq8ikWAM"}}`),
		Phones: phones,
	}
}

// DefaultPhones are the numbers a zero Config owns.
var DefaultPhones = []string{"+15550100001", "+15550100002", "+15550100003"}

// withDefaults returns cfg with every zero field replaced by its default.
// Slices and maps are copied so the caller may reuse its Config.
func (cfg Config) withDefaults() Config {
	if len(cfg.APIKeys) == 0 {
		cfg.APIKeys = []string{"sim-private-key"}
	} else {
		cfg.APIKeys = append([]string(nil), cfg.APIKeys...)
	}
	if cfg.UserID == "" {
		cfg.UserID = "sim-user"
	}
	if cfg.InitialCredit == 0 {
		cfg.InitialCredit = 100
	}
	if cfg.Phones == nil {
		cfg.Phones = DefaultPhones
	}
	cfg.Phones = append([]string(nil), cfg.Phones...)
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.StageTime == 0 {
		cfg.StageTime = 100 * time.Millisecond
	}
	if cfg.RingTime == 0 {
		cfg.RingTime = time.Second
	}
	if cfg.TalkTime == 0 {
		cfg.TalkTime = 2 * time.Second
	}
	if cfg.MaxCallTime == 0 {
		cfg.MaxCallTime = 10 * time.Minute
	}
	if cfg.Speed == 0 {
		cfg.Speed = 1
	}
	outcomes := make(map[string]string, len(cfg.Outcomes))
	for k, v := range cfg.Outcomes {
		outcomes[k] = v
	}
	cfg.Outcomes = outcomes
	if cfg.NonConnectedWebhooks == nil {
		t := true
		cfg.NonConnectedWebhooks = &t
	}
	if cfg.WebhookTimeout == 0 {
		cfg.WebhookTimeout = 5 * time.Second
	}
	if cfg.WebhookWorkers == 0 {
		cfg.WebhookWorkers = 8
	}
	if cfg.RecordingBaseURL == "" {
		cfg.RecordingBaseURL = "https://recordings.millis-simulator.invalid"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// Validate reports every problem with cfg. New panics on a Config that
// Validate rejects, so programs that build a Config from user input should
// call Validate first.
func (cfg Config) Validate() error {
	c := cfg.withDefaults()
	var errs []error
	for _, k := range c.APIKeys {
		if k == "" {
			errs = append(errs, errors.New("empty API key"))
		}
	}
	phones := map[string]bool{}
	for _, p := range c.Phones {
		if !isE164(p) {
			errs = append(errs, fmt.Errorf("phone %q is not E.164", p))
		}
		phones[p] = true
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"StageTime", c.StageTime}, {"RingTime", c.RingTime}, {"TalkTime", c.TalkTime}, {"MaxCallTime", c.MaxCallTime}, {"WebhookTimeout", c.WebhookTimeout}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative", d.name))
		}
	}
	if c.Speed < 0 {
		errs = append(errs, errors.New("Speed must not be negative"))
	}
	if c.WebhookWorkers < 0 {
		errs = append(errs, errors.New("WebhookWorkers must not be negative"))
	}
	for num, st := range c.Outcomes {
		if !isE164(num) {
			errs = append(errs, fmt.Errorf("outcome number %q is not E.164", num))
		}
		if !validOutcome(st) {
			errs = append(errs, fmt.Errorf("outcome %q for %s is not a final Millis call status (or in-progress)", st, maskPhone(num)))
		}
	}
	ids := map[string]bool{}
	for i, a := range c.Agents {
		if a.ID != "" {
			if ids[a.ID] {
				errs = append(errs, fmt.Errorf("agent %d: duplicate id %q", i, a.ID))
			}
			ids[a.ID] = true
		}
		if len(a.Config) > 0 {
			if verrs := validateAgentConfig(a.Config, nil, true); len(verrs) > 0 {
				errs = append(errs, fmt.Errorf("agent %d (%s): invalid config: %s", i, a.Name, verrs[0].Msg))
			}
		}
		for _, p := range a.Phones {
			if !phones[p] {
				errs = append(errs, fmt.Errorf("agent %d (%s): phone %q is not one of Phones", i, a.Name, p))
			}
		}
	}
	return errors.Join(errs...)
}
