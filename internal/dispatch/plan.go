// Package dispatch decides, for one reconcile of a CallCampaign, who is
// called now, who waits and until when, and how every recipient stands. It
// is pure: the controller gathers the state, and tests drive it with any
// clock.
package dispatch

import (
	"time"

	"github.com/callops/millis-operator/internal/campaign"
)

// Outcome is where a recipient ended.
type Outcome string

const (
	Open      Outcome = ""
	Succeeded Outcome = "Succeeded"
	Failed    Outcome = "Failed"
	Skipped   Outcome = "Skipped"
	Expired   Outcome = "Expired"
	Invalid   Outcome = "Invalid"
)

// State is what is known of one recipient's calls.
type State struct {
	// Attempts is the highest attempt number created so far.
	Attempts int
	// Active: that attempt's call has not finished.
	Active bool
	// LastStatus is the final call_status of the last finished attempt.
	LastStatus string
	// Rejected: the last attempt ended without a call (Millis rejected the
	// dial); it is never retried.
	Rejected bool
	// LastEnd is when the last attempt ended.
	LastEnd time.Time
	// Outcome is a final outcome recorded earlier.
	Outcome Outcome
}

// Input is the campaign as the controller sees it at Now.
type Input struct {
	Now        time.Time
	Recipients []campaign.Recipient
	States     map[string]*State // by phone
	DoNotCall  map[string]struct{}
	// Invalid are recipients that cannot be called (e.g. a variable the agent
	// speaks is missing from their metadata), by phone, with the reason.
	Invalid    map[string]string
	DefaultLoc *time.Location
	Windows    []campaign.Window
	Retry      campaign.RetryPolicy
	Start      time.Time // zero: now
	Deadline   time.Time // zero: none
	Suspended  bool
	// Slots is how many more calls may be in flight (maxConcurrency minus
	// the calls in flight, including creates not yet observed).
	Slots int
	// RateBudget is how many calls may start now under callsPerMinute; -1
	// means no limit.
	RateBudget int
}

// Dial is one call to start.
type Dial struct {
	Index   int // into Input.Recipients
	Attempt int
}

// Counts are the campaign's counters, like a Job's.
type Counts struct {
	Total, Pending, Active, Succeeded, Failed, Skipped, Expired, Invalid int
}

// Finished is every recipient with a final outcome.
func (c Counts) Finished() int { return c.Succeeded + c.Failed + c.Skipped + c.Expired + c.Invalid }

// Plan is the decision of one round.
type Plan struct {
	Dials []Dial
	// Outcomes holds every recipient's outcome after this round, by index.
	Outcomes []Outcome
	Counts   Counts
	// NextWake is the earliest time a waiting recipient becomes eligible
	// (backoff, start time or window); zero if none.
	NextWake time.Time
	// NextWindow is the earliest window opening among recipients waiting
	// only for their window; zero if none.
	NextWindow time.Time
	// Eligible is how many could be dialed now but for slots or rate.
	Eligible int
	// Done: nobody is pending or in flight.
	Done bool
}

type windowMemo struct {
	open bool
	next time.Time
	ok   bool
}

// Decide plans one round. Recipients are considered in order, so earlier
// ones are dialed first.
func Decide(in Input) Plan {
	p := Plan{Outcomes: make([]Outcome, len(in.Recipients))}
	memo := map[string]windowMemo{}
	pastDeadline := !in.Deadline.IsZero() && !in.Now.Before(in.Deadline)
	budget := in.Slots
	if in.RateBudget >= 0 && in.RateBudget < budget {
		budget = in.RateBudget
	}

	for i := range in.Recipients {
		r := &in.Recipients[i]
		st := in.States[r.Phone]
		if st == nil {
			st = &State{}
		}
		outcome, eligibleAt := decideOne(in, r, st)
		switch {
		case outcome == Open && st.Active:
			p.Counts.Active++
			continue
		case outcome != Open:
			p.Outcomes[i] = outcome
			p.count(outcome)
			continue
		case pastDeadline:
			p.Outcomes[i] = Expired
			p.count(Expired)
			continue
		}
		p.Counts.Pending++
		if in.Suspended {
			continue
		}
		if eligibleAt.After(in.Now) {
			p.wake(eligibleAt, in.Deadline)
			continue
		}
		w := window(memo, in, r.TimeZone)
		if !w.open {
			if w.ok {
				p.wake(w.next, in.Deadline)
				if p.NextWindow.IsZero() || w.next.Before(p.NextWindow) {
					p.NextWindow = w.next
				}
			}
			continue
		}
		p.Eligible++
		if len(p.Dials) < budget {
			p.Dials = append(p.Dials, Dial{Index: i, Attempt: st.Attempts + 1})
		}
	}
	p.Counts.Total = len(in.Recipients)
	p.Done = p.Counts.Pending == 0 && p.Counts.Active == 0
	return p
}

// decideOne returns a final outcome, or Open and when the next attempt may
// start at the earliest.
func decideOne(in Input, r *campaign.Recipient, st *State) (Outcome, time.Time) {
	if st.Outcome != Open {
		return st.Outcome, time.Time{}
	}
	if st.Active {
		return Open, time.Time{}
	}
	if _, bad := in.Invalid[r.Phone]; bad && st.Attempts == 0 {
		return Invalid, time.Time{}
	}
	_, dnc := in.DoNotCall[r.Phone]
	if st.Attempts == 0 {
		if dnc {
			return Skipped, time.Time{}
		}
		return Open, in.Start
	}
	if st.Rejected {
		return Failed, time.Time{}
	}
	retry, at := in.Retry.Next(st.Attempts, st.LastStatus, st.LastEnd)
	if !retry || dnc {
		if campaign.Connected(st.LastStatus) {
			return Succeeded, time.Time{}
		}
		return Failed, time.Time{}
	}
	if at.Before(in.Start) {
		at = in.Start
	}
	return Open, at
}

func window(memo map[string]windowMemo, in Input, tz string) windowMemo {
	if w, ok := memo[tz]; ok {
		return w
	}
	loc := in.DefaultLoc
	if tz != "" {
		if l, err := campaign.LoadLocation(tz); err == nil {
			loc = l
		}
	}
	var w windowMemo
	if campaign.Open(in.Now, loc, in.Windows) {
		w = windowMemo{open: true, ok: true}
	} else {
		w.next, w.ok = campaign.NextOpen(in.Now, loc, in.Windows)
	}
	memo[tz] = w
	return w
}

func (p *Plan) wake(t, deadline time.Time) {
	if !deadline.IsZero() && t.After(deadline) {
		t = deadline // the deadline itself is worth waking for: it expires the rest
	}
	if p.NextWake.IsZero() || t.Before(p.NextWake) {
		p.NextWake = t
	}
}

func (p *Plan) count(o Outcome) {
	switch o {
	case Succeeded:
		p.Counts.Succeeded++
	case Failed:
		p.Counts.Failed++
	case Skipped:
		p.Counts.Skipped++
	case Expired:
		p.Counts.Expired++
	case Invalid:
		p.Counts.Invalid++
	}
}
