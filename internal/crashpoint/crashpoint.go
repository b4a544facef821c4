// Package crashpoint lets the crash tests kill the manager at an exact
// point of the dial protocol, as a power cut would.
//
// It is inert unless MILLIS_OPERATOR_CRASHPOINTS names the point (a comma
// separated list), which only the e2e crash test sets.
package crashpoint

import (
	"fmt"
	"os"
	"strings"
)

// Points used by the OutboundCall reconciler.
const (
	// AfterIntent is after the intent to dial is persisted, before Millis is called.
	AfterIntent = "after-intent"
	// AfterDial is after Millis accepted the call, before the session ID is persisted.
	AfterDial = "after-dial"
	// AgentAfterIntent is after an Agent's create intent is persisted.
	AgentAfterIntent = "agent-after-intent"
	// AgentAfterCreate is after Millis created an agent, before its ID is persisted.
	AgentAfterCreate = "agent-after-create"
)

// ExitCode is what the process exits with at a crash point.
const ExitCode = 97

var enabled = parse(os.Getenv("MILLIS_OPERATOR_CRASHPOINTS"))

func parse(s string) map[string]bool {
	m := map[string]bool{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			m[p] = true
		}
	}
	return m
}

// Hit exits the process immediately, without cleanup, if point is enabled.
func Hit(point string) {
	if enabled[point] {
		fmt.Fprintf(os.Stderr, "crashpoint: exiting at %s\n", point)
		os.Exit(ExitCode)
	}
}
