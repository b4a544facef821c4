package campaign

import (
	"fmt"
	"strings"
	"time"
)

// WindowSpec is a calling window as written in the CallCampaign spec.
// Days are Mon Tue Wed Thu Fri Sat Sun (case-insensitive, full names too);
// Start and End are "HH:MM" on a 24-hour clock and End may be "24:00".
type WindowSpec struct {
	Days       []string
	Start, End string
}

// Window is a parsed calling window in the recipient's local wall-clock time.
type Window struct {
	Days       [7]bool // index time.Weekday
	Start, End int     // minutes since local midnight, Start < End
}

const (
	minutesPerDay = 24 * 60
	secondsPerDay = 24 * 60 * 60

	// searchDays bounds NextOpen and CloseAfter. Any window repeats within a
	// week; the extra day covers a week whose only window was lost to a DST
	// gap.
	searchDays = 8
)

// DefaultWindows is every day 08:00-21:00 local time, the calling hours the
// TCPA permits. The operator applies it when a campaign gives no windows.
// Treat it as read-only.
var DefaultWindows = []Window{{
	Days:  [7]bool{true, true, true, true, true, true, true},
	Start: 8 * 60,
	End:   21 * 60,
}}

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "sunday": time.Sunday,
	"mon": time.Monday, "monday": time.Monday,
	"tue": time.Tuesday, "tuesday": time.Tuesday,
	"wed": time.Wednesday, "wednesday": time.Wednesday,
	"thu": time.Thursday, "thursday": time.Thursday,
	"fri": time.Friday, "friday": time.Friday,
	"sat": time.Saturday, "saturday": time.Saturday,
}

// ParseWindows parses calling windows. Errors name the window by its index in
// the spec (windows[i]) and say what is wrong. No specs give no windows: it
// is up to the caller to fall back to DefaultWindows.
//
// A window may not cross midnight: "22:00-06:00" is rejected rather than
// guessed at, because it is ambiguous which day's rules apply to the early
// hours. Write it as two windows ending at 24:00 and starting at 00:00.
func ParseWindows(specs []WindowSpec) ([]Window, error) {
	var ws []Window
	for i, spec := range specs {
		w, err := parseWindow(spec)
		if err != nil {
			return nil, fmt.Errorf("windows[%d]: %w", i, err)
		}
		ws = append(ws, w)
	}
	return ws, nil
}

func parseWindow(spec WindowSpec) (Window, error) {
	var w Window
	if len(spec.Days) == 0 {
		return w, fmt.Errorf("no days: want at least one of Mon, Tue, Wed, Thu, Fri, Sat, Sun")
	}
	for _, d := range spec.Days {
		wd, ok := dayNames[strings.ToLower(strings.TrimSpace(d))]
		if !ok {
			return w, fmt.Errorf("unknown day %q: want Mon, Tue, Wed, Thu, Fri, Sat or Sun", d)
		}
		w.Days[wd] = true
	}
	var err error
	if w.Start, err = parseClock(spec.Start, false); err != nil {
		return w, fmt.Errorf("start: %w", err)
	}
	if w.End, err = parseClock(spec.End, true); err != nil {
		return w, fmt.Errorf("end: %w", err)
	}
	if w.End <= w.Start {
		return w, fmt.Errorf("end %s is not after start %s: a window cannot cross midnight, split it in two at 24:00", spec.End, spec.Start)
	}
	return w, nil
}

// parseClock parses "HH:MM" into minutes since midnight. Only the exact form
// is accepted, so "9:00" or "09:00:00" get an error instead of a guess.
func parseClock(s string, end bool) (int, error) {
	digit := func(b byte) bool { return '0' <= b && b <= '9' }
	if len(s) != 5 || s[2] != ':' || !digit(s[0]) || !digit(s[1]) || !digit(s[3]) || !digit(s[4]) {
		return 0, fmt.Errorf("bad time %q: want HH:MM on a 24-hour clock", s)
	}
	h := int(s[0]-'0')*10 + int(s[1]-'0')
	m := int(s[3]-'0')*10 + int(s[4]-'0')
	if end && h == 24 && m == 0 {
		return minutesPerDay, nil
	}
	if h > 23 || m > 59 {
		if end {
			return 0, fmt.Errorf("bad time %q: want 00:00 to 24:00", s)
		}
		return 0, fmt.Errorf("bad time %q: want 00:00 to 23:59", s)
	}
	return h*60 + m, nil
}

// Open reports whether instant t is inside a window in loc: the local weekday
// of t is allowed and Start <= local minutes < End. Windows are half-open.
// The local wall clock is used, so a 09:00-20:00 window is 09:00-20:00 local on
// both sides of a DST change. A nil loc means UTC.
func Open(t time.Time, loc *time.Location, ws []Window) bool {
	if loc == nil {
		loc = time.UTC
	}
	lt := t.In(loc)
	return openAt(lt.Weekday(), lt.Hour()*60+lt.Minute(), ws)
}

func openAt(wd time.Weekday, minute int, ws []Window) bool {
	for i := range ws {
		if w := &ws[i]; w.Days[wd] && w.Start <= minute && minute < w.End {
			return true
		}
	}
	return false
}

// NextOpen returns the earliest instant >= t at which Open is true, and false
// if there is none within 8 days (for example, no windows). It returns t
// itself when Open(t).
//
// DST: a window whose start falls in a spring-forward gap opens at the first
// instant after the gap (02:30 on a night that jumps from 02:00 to 03:00 opens
// at 03:00). On fall-back the first occurrence of the start is used, and if the
// repeated hour brings the wall clock back into a window, that counts as open
// again, exactly as Open says.
//
// It does not build candidates with time.Date(y, m, d, h, min, 0, 0, loc):
// for wall times in a gap or an overlap time.Date's choice is unspecified, and
// in practice it picks 01:30 EST for 02:30 on New York's spring-forward night
// (before the gap) and the second 02:30 on Berlin's fall-back night. Instead it
// walks the zone periods (time.Time.ZoneBounds) from t; inside one period the
// offset is fixed, so the wall clock is plain arithmetic.
func NextOpen(t time.Time, loc *time.Location, ws []Window) (time.Time, bool) {
	if Open(t, loc, ws) {
		return t, true
	}
	return walkZones(t, loc, func(wall int64) (int64, bool) { return nextWallOpen(wall, ws) })
}

// CloseAfter returns when the window containing t closes: the first instant
// after t at which Open is false, so adjacent or overlapping windows count as
// one. It is for reporting ("calling until 21:00"). It returns the zero Time
// if t is not in a window, or if the windows do not close within 8 days.
func CloseAfter(t time.Time, loc *time.Location, ws []Window) time.Time {
	if !Open(t, loc, ws) {
		return time.Time{}
	}
	at, ok := walkZones(t, loc, func(wall int64) (int64, bool) { return nextWallClosed(wall, ws) })
	if !ok {
		return time.Time{}
	}
	return at
}

// walkZones finds the earliest instant >= t whose wall-clock time satisfies
// next. next gets a wall-clock time (seconds since 1970-01-01 00:00 local) and
// returns the earliest wall-clock time >= it that satisfies the condition,
// assuming the clock runs on without jumps. Each zone period is such a run, so
// the answer is taken when it falls inside the period, and otherwise the search
// moves on to the next period.
func walkZones(t time.Time, loc *time.Location, next func(wall int64) (int64, bool)) (time.Time, bool) {
	if loc == nil {
		loc = time.UTC
	}
	limit := t.Add(searchDays * 24 * time.Hour)
	p := t.In(loc)
	// A zone changes a few times a year; the bound only guards against a
	// pathological tz database.
	for range 64 {
		if p.After(limit) {
			return time.Time{}, false
		}
		_, offset := p.Zone()
		_, end := p.ZoneBounds()
		wall := p.Unix() + int64(offset)
		found, ok := next(wall)
		if !ok {
			return time.Time{}, false
		}
		at := p
		if found != wall {
			at = time.Unix(found-int64(offset), 0).In(loc)
		}
		if end.IsZero() || at.Before(end) {
			if at.After(limit) {
				return time.Time{}, false
			}
			return at, true
		}
		p = end
	}
	return time.Time{}, false
}

// wallDay splits a wall-clock time into its day number, weekday and minute of
// the day. 1970-01-01 was a Thursday.
func wallDay(wall int64) (day int64, wd time.Weekday, minute int) {
	day = wall / secondsPerDay
	if wall%secondsPerDay < 0 {
		day--
	}
	wd = time.Weekday(((day+4)%7 + 7) % 7)
	return day, wd, int(wall-day*secondsPerDay) / 60
}

// nextWallOpen returns the earliest wall-clock time >= wall inside a window.
func nextWallOpen(wall int64, ws []Window) (int64, bool) {
	day, wd, minute := wallDay(wall)
	if openAt(wd, minute, ws) {
		return wall, true
	}
	for d := range int64(searchDays + 1) {
		best := -1
		for i := range ws {
			w := &ws[i]
			if !w.Days[(int(wd)+int(d))%7] || w.Start < 0 || w.Start >= w.End || w.Start >= minutesPerDay {
				continue
			}
			if d == 0 && w.Start <= minute {
				continue // already started (and so over, since not open) today
			}
			if best < 0 || w.Start < best {
				best = w.Start
			}
		}
		if best >= 0 {
			return (day+d)*secondsPerDay + int64(best)*60, true
		}
	}
	return 0, false
}

// nextWallClosed returns the earliest wall-clock time >= wall outside every
// window, following windows that touch or overlap, also across midnight.
func nextWallClosed(wall int64, ws []Window) (int64, bool) {
	day, wd, minute := wallDay(wall)
	if !openAt(wd, minute, ws) {
		return wall, true
	}
	// Each step moves to the latest end among the windows open at the cursor,
	// so it advances at least a minute; a day has 1440 of them.
	for range (searchDays + 1) * (minutesPerDay + 1) {
		if minute >= minutesPerDay {
			day++
			wd = (wd + 1) % 7
			minute = 0
		}
		end := -1
		for i := range ws {
			if w := &ws[i]; w.Days[wd] && w.Start <= minute && minute < w.End && w.End > end {
				end = w.End
			}
		}
		if end < 0 {
			return day*secondsPerDay + int64(minute)*60, true
		}
		minute = min(end, minutesPerDay)
	}
	return 0, false
}
