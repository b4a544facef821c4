package simulator

import (
	"math"
	"time"

	"k8s.io/utils/clock"
)

// The lifecycle of every call runs on one goroutine over a min-heap of
// (time, call) events, woken by one clock timer. A goroutine or timer per
// call would cost kilobytes each at 100,000 calls and could not be stepped
// deterministically by a fake clock.
//
// Each call has at most one pending event, whose time is call.nextAt. An
// event whose time no longer matches (the call was terminated or reset) is
// stale and skipped when popped, which is cheaper than removing it.

type event struct {
	at int64 // ns of the simulator clock
	c  *call
}

// eventHeap is a hand-rolled binary min-heap: container/heap would box every
// event in an interface on Push.
type eventHeap []event

func (h *eventHeap) push(e event) {
	*h = append(*h, e)
	a := *h
	i := len(a) - 1
	for i > 0 {
		p := (i - 1) / 2
		if a[p].at <= a[i].at {
			break
		}
		a[p], a[i] = a[i], a[p]
		i = p
	}
}

func (h *eventHeap) pop() event {
	a := *h
	top := a[0]
	n := len(a) - 1
	a[0] = a[n]
	a[n] = event{}
	a = a[:n]
	i := 0
	for {
		l, small := 2*i+1, i
		if l < n && a[l].at < a[small].at {
			small = l
		}
		if r := l + 1; r < n && a[r].at < a[small].at {
			small = r
		}
		if small == i {
			break
		}
		a[i], a[small] = a[small], a[i]
		i = small
	}
	*h = a
	return top
}

// scaled converts a configured duration to clock time under Config.Speed.
func (s *Server) scaled(d time.Duration) int64 {
	return int64(float64(d) / s.cfg.Speed)
}

// scheduleLocked sets c's one pending event and wakes the scheduler if that
// event is now the earliest. s.mu must be held.
func (s *Server) scheduleLocked(c *call, at int64) {
	c.nextAt = at
	s.events.push(event{at: at, c: c})
	if s.events[0].c == c && s.events[0].at == at {
		select {
		case s.wakeCh <- struct{}{}:
		default:
		}
	}
}

// run is the scheduler goroutine.
func (s *Server) run() {
	defer close(s.done)
	var (
		timer clock.Timer
		acks  []chan struct{}
	)
	for {
		next, ok := s.processDue()
		for _, a := range acks {
			close(a)
		}
		acks = acks[:0]

		if timer != nil {
			timer.Stop()
			timer = nil
		}
		var fire <-chan time.Time
		if ok {
			d := time.Duration(next - s.clock.Now().UnixNano())
			if d <= 0 {
				// Due already (the clock moved while we worked). A fake
				// timer for d <= 0 would only fire on the next Step.
				continue
			}
			timer = s.clock.NewTimer(d)
			fire = timer.C()
		}
		select {
		case <-s.stopCh:
			if timer != nil {
				timer.Stop()
			}
			return
		case <-fire:
		case <-s.wakeCh:
		case a := <-s.syncCh:
			acks = append(acks, a)
		}
	}
}

// processDue handles every event due at the current clock time and returns
// the time of the next one. It releases the lock between batches so that a
// burst of 100,000 transitions does not stall the HTTP handlers.
func (s *Server) processDue() (next int64, ok bool) {
	const batch = 4096
	for {
		s.mu.Lock()
		now := s.clock.Now().UnixNano()
		n := 0
		for len(s.events) > 0 && s.events[0].at <= now && n < batch {
			e := s.events.pop()
			n++
			if e.c.nextAt != e.at || isTerminal(e.c.status) {
				continue // stale
			}
			e.c.nextAt = 0
			s.advanceLocked(e.c, e.at)
		}
		if n == batch {
			s.mu.Unlock()
			continue
		}
		if len(s.events) > 0 {
			next, ok = s.events[0].at, true
		}
		s.mu.Unlock()
		return next, ok
	}
}

// advanceLocked performs the transition due at time at. Times are computed
// from the event's own time, not from when it was processed, so the
// timeline is the same however far a fake clock is stepped at once.
func (s *Server) advanceLocked(c *call, at int64) {
	switch c.status {
	case stRegistered:
		c.status = stQueued
		s.scheduleLocked(c, at+s.scaled(s.cfg.StageTime))
	case stQueued:
		c.status = stInitiated
		s.scheduleLocked(c, at+s.scaled(s.cfg.StageTime))
	case stInitiated:
		c.status = stRinging
		s.scheduleLocked(c, at+s.scaled(s.cfg.RingTime))
	case stRinging:
		if notConnected(c.outcome) {
			s.finishLocked(c, c.outcome, at)
			return
		}
		c.answeredAt = at
		if c.cfg.prefetch != nil && s.dispatchPrefetchLocked(c) {
			c.prefetching = true // startTalkLocked runs when the webhook answers
			return
		}
		s.startTalkLocked(c)
	case stInProgress:
		st := c.outcome
		if st == stInProgress || s.cfg.TalkTime > s.cfg.MaxCallTime {
			st = stTimeout
		}
		s.finishLocked(c, st, at)
	}
}

// startTalkLocked moves an answered call to in-progress. The talk is timed
// from the answer, so a slow prefetch webhook does not lengthen the call.
func (s *Server) startTalkLocked(c *call) {
	c.status = stInProgress
	c.answered = true
	talk := s.cfg.TalkTime
	if c.outcome == stInProgress || talk > s.cfg.MaxCallTime {
		talk = s.cfg.MaxCallTime
	}
	s.scheduleLocked(c, c.answeredAt+s.scaled(talk))
}

// finishLocked gives c its final status at time at, bills it and fires the
// end-of-call webhook.
func (s *Server) finishLocked(c *call, st uint8, at int64) {
	if !isTerminal(c.status) {
		s.live--
	}
	c.status = st
	c.nextAt = 0
	c.endedAt = at
	c.prefetching = false
	if c.answered {
		c.durationMs = int64(math.Round(float64(at-c.answeredAt) * s.cfg.Speed / 1e6))
	}
	s.usedCredit += totalCost(float64(c.durationMs) / 1000)
	if c.cfg.endOfCall != nil && (!notConnected(st) || *s.cfg.NonConnectedWebhooks) {
		s.dispatchEndOfCallLocked(c)
	}
	s.log.Debug("call ended", "session_id", c.sessionID, "to", maskPhone(c.to), "status", callStatuses[st])
}

// Sync blocks until every lifecycle event due at the clock's current time
// has been processed and every webhook delivery it triggered has finished.
// Tests step a fake clock and then call Sync instead of sleeping. It returns
// at once after Close.
func (s *Server) Sync() {
	for {
		ack := make(chan struct{})
		select {
		case s.syncCh <- ack:
		case <-s.done:
			return
		}
		select {
		case <-ack:
		case <-s.done:
			return
		}
		s.pool.waitIdle()
		s.mu.Lock()
		due := len(s.events) > 0 && s.events[0].at <= s.clock.Now().UnixNano()
		s.mu.Unlock()
		if !due && s.pool.isIdle() {
			return
		}
	}
}
