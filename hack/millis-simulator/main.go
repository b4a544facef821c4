// Command millis-simulator serves the Millis AI API simulator
// (internal/simulator) over HTTP, for running the operator against a fake
// Millis account.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/callops/millis-operator/internal/simulator"
)

// listFlag is a repeatable flag whose values may also be comma-separated.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "millis-simulator:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("millis-simulator", flag.ContinueOnError)
	var apiKeys, agents, outcomes listFlag
	addr := fs.String("addr", "127.0.0.1:18080", "listen address")
	fs.Var(&apiKeys, "api-key", `accepted private key; repeatable or comma-separated (default "sim-private-key")`)
	phones := fs.String("phones", strings.Join(simulator.DefaultPhones, ","), "comma-separated Millis-owned phone numbers (E.164)")
	fs.Var(&agents, "agent", "agent to seed as id=name (or just name for a generated id); repeatable or comma-separated")
	seedAgent := fs.Bool("seed-agent", true, "seed agent "+simulator.SeedAgentID+` ("seed-agent") and bind every phone to it`)
	stage := fs.Duration("stage", 100*time.Millisecond, "time in each of registered, queued and initiated")
	ring := fs.Duration("ring", time.Second, "ringing time")
	talk := fs.Duration("talk", 2*time.Second, "in-progress time of an answered call")
	maxCall := fs.Duration("max-call-time", 10*time.Minute, `longest call; ends "in-progress" outcomes with "timeout"`)
	speed := fs.Float64("speed", 1, "lifecycle speed multiplier (2 = twice as fast)")
	webhookTimeout := fs.Duration("webhook-timeout", 5*time.Second, "timeout of each webhook request")
	nonConnected := fs.Bool("non-connected-webhooks", true, "fire the end-of-call webhook for busy, no-answer, failed, canceled and error calls")
	fs.Var(&outcomes, "outcome", "final status for an exact number, as number=status; repeatable")
	credit := fs.Float64("credit", 100, "initial account credit")
	seed := fs.Int64("seed", 0, "seed for ids and probabilistic faults; 0 picks one from the time, so restarts do not repeat call ids")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	if *seed == 0 {
		*seed = time.Now().UnixNano()
	}
	cfg := simulator.Config{
		APIKeys:              apiKeys,
		InitialCredit:        *credit,
		StageTime:            *stage,
		RingTime:             *ring,
		TalkTime:             *talk,
		MaxCallTime:          *maxCall,
		Speed:                *speed,
		NonConnectedWebhooks: nonConnected,
		WebhookTimeout:       *webhookTimeout,
		Outcomes:             map[string]string{},
		Seed:                 *seed,
		Logger:               logger,
	}
	var ps listFlag
	_ = ps.Set(*phones)
	cfg.Phones = ps
	if *seedAgent {
		cfg.Agents = append(cfg.Agents, simulator.SeedAgent(ps...))
	}
	for _, a := range agents {
		id, name, ok := strings.Cut(a, "=")
		if !ok {
			id, name = "", a
		}
		cfg.Agents = append(cfg.Agents, simulator.AgentSeed{ID: id, Name: name})
	}
	for _, o := range outcomes {
		num, st, ok := strings.Cut(o, "=")
		if !ok {
			return fmt.Errorf("--outcome %q: want number=status", o)
		}
		cfg.Outcomes[num] = st
	}
	if err := cfg.Validate(); err != nil {
		return err
	}

	sim := simulator.New(cfg)
	defer sim.Close()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("millis-simulator listening on "+ln.Addr().String(), "seed", *seed)

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	sim.Close()
	logger.Info("stopped")
	return nil
}
