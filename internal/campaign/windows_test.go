package campaign

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func mustLoc(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := LoadLocation(name)
	if err != nil {
		t.Fatalf("LoadLocation(%q): %v", name, err)
	}
	return loc
}

// utc is an exact instant. DST cases use it instead of time.Date in a zone,
// whose choice for ambiguous wall times is what is under test.
func utc(y int, m time.Month, d, h, min int) time.Time {
	return time.Date(y, m, d, h, min, 0, 0, time.UTC)
}

func days(ds ...time.Weekday) [7]bool {
	var out [7]bool
	for _, d := range ds {
		out[d] = true
	}
	return out
}

var (
	allDays  = days(time.Sunday, time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday)
	weekdays = days(time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday)
)

// hm is minutes since midnight.
func hm(h, m int) int { return h*60 + m }

func daily(start, end int) Window { return Window{Days: allDays, Start: start, End: end} }

var officeHours = []Window{{Days: weekdays, Start: hm(9, 0), End: hm(17, 0)}}

func TestParseWindows(t *testing.T) {
	cases := []struct {
		reason  string
		in      []WindowSpec
		want    []Window
		wantErr string // substring; "" means no error
	}{
		{
			reason: "short and full day names in any case, with the end of day written 24:00",
			in: []WindowSpec{
				{Days: []string{"Mon", "TUESDAY", " wed "}, Start: "09:00", End: "17:30"},
				{Days: []string{"sat", "Sunday"}, Start: "00:00", End: "24:00"},
			},
			want: []Window{
				{Days: days(time.Monday, time.Tuesday, time.Wednesday), Start: hm(9, 0), End: hm(17, 30)},
				{Days: days(time.Saturday, time.Sunday), Start: 0, End: 24 * 60},
			},
		},
		{
			reason: "a day listed twice is just that day",
			in:     []WindowSpec{{Days: []string{"Fri", "friday"}, Start: "08:00", End: "21:00"}},
			want:   []Window{{Days: days(time.Friday), Start: hm(8, 0), End: hm(21, 0)}},
		},
		{
			reason: "no windows parse to none; the caller picks DefaultWindows",
			in:     nil,
			want:   nil,
		},
		{
			reason:  "an unknown day names the window and the day",
			in:      []WindowSpec{{Days: []string{"Mon"}, Start: "09:00", End: "17:00"}, {Days: []string{"Mon", "Funday"}, Start: "09:00", End: "17:00"}},
			wantErr: `windows[1]: unknown day "Funday"`,
		},
		{
			reason:  "a window without days would never open",
			in:      []WindowSpec{{Start: "09:00", End: "17:00"}},
			wantErr: "windows[0]: no days",
		},
		{
			reason:  "hours must be two digits",
			in:      []WindowSpec{{Days: []string{"Mon"}, Start: "9:00", End: "17:00"}},
			wantErr: `windows[0]: start: bad time "9:00"`,
		},
		{
			reason:  "seconds are not accepted",
			in:      []WindowSpec{{Days: []string{"Mon"}, Start: "09:00", End: "17:00:00"}},
			wantErr: `windows[0]: end: bad time "17:00:00"`,
		},
		{
			reason:  "25:00 is not a time",
			in:      []WindowSpec{{Days: []string{"Mon"}, Start: "25:00", End: "26:00"}},
			wantErr: `windows[0]: start: bad time "25:00"`,
		},
		{
			reason:  "minutes past 59",
			in:      []WindowSpec{{Days: []string{"Mon"}, Start: "09:60", End: "17:00"}},
			wantErr: `windows[0]: start: bad time "09:60"`,
		},
		{
			reason:  "24:00 can end a window but not start one",
			in:      []WindowSpec{{Days: []string{"Mon"}, Start: "24:00", End: "24:00"}},
			wantErr: `windows[0]: start: bad time "24:00"`,
		},
		{
			reason:  "nothing after 24:00",
			in:      []WindowSpec{{Days: []string{"Mon"}, Start: "09:00", End: "24:01"}},
			wantErr: `windows[0]: end: bad time "24:01"`,
		},
		{
			reason:  "an empty window is a mistake",
			in:      []WindowSpec{{Days: []string{"Mon"}, Start: "09:00", End: "09:00"}},
			wantErr: "windows[0]: end 09:00 is not after start 09:00",
		},
		{
			reason:  "overnight windows are rejected, not wrapped around midnight",
			in:      []WindowSpec{{Days: []string{"Fri"}, Start: "22:00", End: "06:00"}},
			wantErr: "windows[0]: end 06:00 is not after start 22:00: a window cannot cross midnight",
		},
	}
	for _, c := range cases {
		got, err := ParseWindows(c.in)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s: ParseWindows(...): error %v, want one containing %q", c.reason, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: ParseWindows(...): %v", c.reason, err)
			continue
		}
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("%s: ParseWindows(...): -want, +got:\n%s", c.reason, diff)
		}
	}
}

func TestDefaultWindows(t *testing.T) {
	want, err := ParseWindows([]WindowSpec{{
		Days:  []string{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"},
		Start: "08:00", End: "21:00",
	}})
	if err != nil {
		t.Fatalf("ParseWindows(TCPA hours): %v", err)
	}
	if diff := cmp.Diff(want, DefaultWindows); diff != "" {
		t.Errorf("DefaultWindows: -want (every day 08:00-21:00), +got:\n%s", diff)
	}
}

func TestOpen(t *testing.T) {
	ny := mustLoc(t, "America/New_York")
	kolkata := mustLoc(t, "Asia/Kolkata")
	cases := []struct {
		reason string
		t      time.Time
		loc    *time.Location
		ws     []Window
		want   bool
	}{
		{"a weekday at noon", time.Date(2026, 3, 9, 12, 0, 0, 0, ny), ny, officeHours, true},
		{"Saturday is not a weekday", time.Date(2026, 3, 7, 12, 0, 0, 0, ny), ny, officeHours, false},
		{"the start minute is inside", time.Date(2026, 3, 9, 9, 0, 0, 0, ny), ny, officeHours, true},
		{"a second before the start is outside", time.Date(2026, 3, 9, 8, 59, 59, 0, ny), ny, officeHours, false},
		{"just before the end is inside", time.Date(2026, 3, 9, 16, 59, 59, 999999999, ny), ny, officeHours, true},
		{"the end is outside: windows are half-open", time.Date(2026, 3, 9, 17, 0, 0, 0, ny), ny, officeHours, false},
		{"a window to 24:00 includes the last second of the day", time.Date(2026, 3, 9, 23, 59, 59, 0, ny), ny, []Window{daily(hm(22, 0), 24*60)}, true},
		{"a window to 24:00 does not spill into the next day", time.Date(2026, 3, 10, 0, 0, 0, 0, ny), ny, []Window{daily(hm(22, 0), 24*60)}, false},
		{"13:00Z is 08:00 EST the day before spring-forward: closed", utc(2026, 3, 7, 13, 0), ny, []Window{daily(hm(9, 0), hm(20, 0))}, false},
		{"13:00Z is 09:00 EDT on spring-forward day: open, local hours follow the clock change", utc(2026, 3, 8, 13, 0), ny, []Window{daily(hm(9, 0), hm(20, 0))}, true},
		{"00:00Z is 20:00 EDT: closed", utc(2026, 3, 10, 0, 0), ny, []Window{daily(hm(9, 0), hm(20, 0))}, false},
		{"01:15 EDT, the first pass through the repeated hour", utc(2026, 11, 1, 5, 15), ny, []Window{daily(hm(1, 0), hm(1, 30))}, true},
		{"01:45 EDT, between the two passes", utc(2026, 11, 1, 5, 45), ny, []Window{daily(hm(1, 0), hm(1, 30))}, false},
		{"01:15 EST, the second pass through the repeated hour", utc(2026, 11, 1, 6, 15), ny, []Window{daily(hm(1, 0), hm(1, 30))}, true},
		{"04:00Z Monday is 09:30 in Kolkata", utc(2026, 1, 5, 4, 0), kolkata, officeHours, true},
		{"the same instant is 23:00 Sunday in New York", utc(2026, 1, 5, 4, 0), ny, officeHours, false},
		{"nil location means UTC", utc(2026, 1, 5, 9, 0), nil, officeHours, true},
		{"no windows, never open", utc(2026, 1, 5, 12, 0), ny, nil, false},
	}
	for _, c := range cases {
		if got := Open(c.t, c.loc, c.ws); got != c.want {
			t.Errorf("%s: Open(%s) = %v, want %v", c.reason, c.t.UTC().Format(time.RFC3339Nano), got, c.want)
		}
	}
}

func TestNextOpen(t *testing.T) {
	ny := mustLoc(t, "America/New_York")
	berlin := mustLoc(t, "Europe/Berlin")
	kolkata := mustLoc(t, "Asia/Kolkata")
	cases := []struct {
		reason string
		t      time.Time
		loc    *time.Location
		ws     []Window
		want   time.Time
		wantOK bool
	}{
		{
			reason: "already open: t itself, to the nanosecond",
			t:      time.Date(2026, 3, 10, 10, 15, 30, 500, ny), loc: ny, ws: officeHours,
			want: time.Date(2026, 3, 10, 10, 15, 30, 500, ny), wantOK: true,
		},
		{
			reason: "before the window, later the same day",
			t:      time.Date(2026, 3, 10, 7, 0, 0, 0, ny), loc: ny, ws: officeHours,
			want: time.Date(2026, 3, 10, 9, 0, 0, 0, ny), wantOK: true,
		},
		{
			reason: "at the (exclusive) end: the next day's start",
			t:      time.Date(2026, 3, 10, 17, 0, 0, 0, ny), loc: ny, ws: officeHours,
			want: time.Date(2026, 3, 11, 9, 0, 0, 0, ny), wantOK: true,
		},
		{
			reason: "Friday evening waits for Monday",
			t:      time.Date(2026, 3, 13, 18, 0, 0, 0, ny), loc: ny, ws: officeHours,
			want: time.Date(2026, 3, 16, 9, 0, 0, 0, ny), wantOK: true,
		},
		{
			reason: "a weekend that springs forward: Monday 09:00 EDT, not 10:00",
			t:      utc(2026, 3, 7, 17, 0), loc: ny, ws: officeHours,
			want: utc(2026, 3, 9, 13, 0), wantOK: true,
		},
		{
			reason: "Saturday 22:00 EST to Sunday 09:00 EDT is 10 hours, not 11",
			t:      utc(2026, 3, 8, 3, 0), loc: ny, ws: []Window{daily(hm(9, 0), hm(20, 0))},
			want: utc(2026, 3, 8, 13, 0), wantOK: true,
		},
		{
			reason: "a start at 02:30, inside the spring-forward gap, opens when the gap ends at 03:00 EDT",
			t:      utc(2026, 3, 8, 5, 0), loc: ny, ws: []Window{daily(hm(2, 30), hm(5, 0))},
			want: utc(2026, 3, 8, 7, 0), wantOK: true,
		},
		{
			reason: "a window wholly inside the gap does not happen that day",
			t:      utc(2026, 3, 8, 5, 0), loc: ny, ws: []Window{daily(hm(2, 0), hm(2, 30))},
			want: utc(2026, 3, 9, 6, 0), wantOK: true,
		},
		{
			reason: "fall-back: the first 01:30 (EDT) is used",
			t:      utc(2026, 11, 1, 4, 0), loc: ny, ws: []Window{daily(hm(1, 30), hm(5, 0))},
			want: utc(2026, 11, 1, 5, 30), wantOK: true,
		},
		{
			reason: "fall-back: a window passed in EDT opens again when the clock goes back to 01:00 EST",
			t:      utc(2026, 11, 1, 5, 45), loc: ny, ws: []Window{daily(hm(1, 0), hm(1, 30))},
			want: utc(2026, 11, 1, 6, 0), wantOK: true,
		},
		{
			reason: "fall-back: after the second pass, the next day",
			t:      utc(2026, 11, 1, 6, 30), loc: ny, ws: []Window{daily(hm(1, 0), hm(1, 30))},
			want: utc(2026, 11, 2, 6, 0), wantOK: true,
		},
		{
			reason: "Saturday 22:00 EDT to Sunday 09:00 EST is 12 hours, not 11",
			t:      utc(2026, 11, 1, 2, 0), loc: ny, ws: []Window{daily(hm(9, 0), hm(20, 0))},
			want: utc(2026, 11, 1, 14, 0), wantOK: true,
		},
		{
			reason: "Berlin springs forward at 02:00 CET: a 02:30 start opens at 03:00 CEST",
			t:      utc(2026, 3, 28, 23, 0), loc: berlin, ws: []Window{daily(hm(2, 30), hm(4, 0))},
			want: utc(2026, 3, 29, 1, 0), wantOK: true,
		},
		{
			reason: "Berlin, Saturday 22:00 CET to Sunday 09:00 CEST",
			t:      utc(2026, 3, 28, 21, 0), loc: berlin, ws: []Window{daily(hm(9, 0), hm(20, 0))},
			want: utc(2026, 3, 29, 7, 0), wantOK: true,
		},
		{
			reason: "Berlin falls back at 03:00 CEST: the first 02:30 (CEST) is used, where time.Date picks the second",
			t:      utc(2026, 10, 24, 22, 0), loc: berlin, ws: []Window{daily(hm(2, 30), hm(6, 0))},
			want: utc(2026, 10, 25, 0, 30), wantOK: true,
		},
		{
			reason: "Kolkata (+05:30): 05:30 Monday local waits until 09:00 local",
			t:      utc(2026, 1, 5, 0, 0), loc: kolkata, ws: officeHours,
			want: utc(2026, 1, 5, 3, 30), wantOK: true,
		},
		{
			reason: "the same instant in New York is Sunday evening: Monday 09:00 EST",
			t:      utc(2026, 1, 5, 0, 0), loc: ny, ws: officeHours,
			want: utc(2026, 1, 5, 14, 0), wantOK: true,
		},
		{
			reason: "a window to 24:00 is open in its last minute",
			t:      time.Date(2026, 3, 14, 23, 59, 0, 0, ny), loc: ny, ws: []Window{{Days: days(time.Saturday), Start: hm(22, 0), End: 24 * 60}},
			want: time.Date(2026, 3, 14, 23, 59, 0, 0, ny), wantOK: true,
		},
		{
			reason: "a Saturday-only window, seen from Sunday, is six days away",
			t:      time.Date(2026, 3, 15, 0, 0, 0, 0, ny), loc: ny, ws: []Window{{Days: days(time.Saturday), Start: hm(22, 0), End: 24 * 60}},
			want: time.Date(2026, 3, 21, 22, 0, 0, 0, ny), wantOK: true,
		},
		{
			reason: "nil location means UTC",
			t:      utc(2026, 1, 3, 12, 0), loc: nil, ws: officeHours,
			want: utc(2026, 1, 5, 9, 0), wantOK: true,
		},
		{
			reason: "no windows: never",
			t:      utc(2026, 1, 3, 12, 0), loc: ny, ws: nil,
			wantOK: false,
		},
		{
			reason: "a window on no days: never",
			t:      utc(2026, 1, 3, 12, 0), loc: ny, ws: []Window{{Start: hm(9, 0), End: hm(17, 0)}},
			wantOK: false,
		},
	}
	for _, c := range cases {
		got, ok := NextOpen(c.t, c.loc, c.ws)
		if ok != c.wantOK {
			t.Errorf("%s: NextOpen(%s): ok %v, want %v", c.reason, c.t.UTC().Format(time.RFC3339), ok, c.wantOK)
			continue
		}
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("%s: NextOpen(%s): -want, +got:\n%s", c.reason, c.t.UTC().Format(time.RFC3339), diff)
		}
		if ok && !Open(got, c.loc, c.ws) {
			t.Errorf("%s: NextOpen(%s) = %s, where Open is false", c.reason, c.t.UTC().Format(time.RFC3339), got.UTC().Format(time.RFC3339))
		}
	}
}

func TestCloseAfter(t *testing.T) {
	ny := mustLoc(t, "America/New_York")
	cases := []struct {
		reason string
		t      time.Time
		ws     []Window
		want   time.Time
	}{
		{
			reason: "the end of the window containing t",
			t:      time.Date(2026, 3, 10, 10, 0, 0, 0, ny), ws: officeHours,
			want: time.Date(2026, 3, 10, 17, 0, 0, 0, ny),
		},
		{
			reason: "not open: zero",
			t:      time.Date(2026, 3, 10, 8, 0, 0, 0, ny), ws: officeHours,
		},
		{
			reason: "windows that touch are one stretch of calling",
			t:      time.Date(2026, 3, 9, 10, 0, 0, 0, ny),
			ws: []Window{
				{Days: days(time.Monday), Start: hm(9, 0), End: hm(12, 0)},
				{Days: days(time.Monday), Start: hm(11, 0), End: hm(12, 30)},
				{Days: days(time.Monday), Start: hm(12, 30), End: hm(17, 0)},
			},
			want: time.Date(2026, 3, 9, 17, 0, 0, 0, ny),
		},
		{
			reason: "a window to 24:00 runs on into one from 00:00",
			t:      time.Date(2026, 3, 14, 23, 0, 0, 0, ny),
			ws: []Window{
				{Days: days(time.Saturday), Start: hm(22, 0), End: 24 * 60},
				{Days: days(time.Sunday), Start: 0, End: hm(1, 0)},
			},
			want: time.Date(2026, 3, 15, 1, 0, 0, 0, ny),
		},
		{
			reason: "a window ending at 02:30 on spring-forward night closes when the clock jumps to 03:00",
			t:      utc(2026, 3, 8, 6, 30), ws: []Window{daily(hm(1, 0), hm(2, 30))},
			want: utc(2026, 3, 8, 7, 0),
		},
		{
			reason: "fall-back: the first 01:30 (EDT) closes the window",
			t:      utc(2026, 11, 1, 5, 0), ws: []Window{daily(hm(0, 0), hm(1, 30))},
			want: utc(2026, 11, 1, 5, 30),
		},
		{
			reason: "always open: no close to report",
			t:      utc(2026, 3, 8, 6, 30), ws: []Window{daily(0, 24*60)},
		},
	}
	for _, c := range cases {
		got := CloseAfter(c.t, ny, c.ws)
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("%s: CloseAfter(%s): -want, +got:\n%s", c.reason, c.t.UTC().Format(time.RFC3339), diff)
		}
	}
}

// TestNextOpenAgreesWithOpen checks NextOpen and CloseAfter against Open
// minute by minute, around DST changes and in zones with odd offsets, where
// hand-picked cases are most likely to miss something.
func TestNextOpenAgreesWithOpen(t *testing.T) {
	zones := []string{
		"America/New_York", "Europe/Berlin", "Asia/Kolkata",
		"Australia/Lord_Howe", // DST shifts by 30 minutes
		"Asia/Kathmandu",      // +05:45
		"America/Santiago",    // DST changes at midnight
	}
	windowSets := map[string][]Window{
		"default":      DefaultWindows,
		"office hours": officeHours,
		"inside gaps":  {daily(hm(2, 15), hm(2, 45)), daily(hm(0, 0), hm(0, 20))},
		"split night": {
			{Days: days(time.Saturday), Start: hm(23, 0), End: 24 * 60},
			{Days: days(time.Sunday), Start: 0, End: hm(3, 0)},
			daily(hm(1, 0), hm(1, 30)),
		},
	}
	// Weeks around the 2026 transitions of these zones.
	starts := []time.Time{
		utc(2026, 3, 6, 0, 0), utc(2026, 3, 27, 0, 0), utc(2026, 4, 3, 0, 0),
		utc(2026, 9, 4, 0, 0), utc(2026, 10, 2, 0, 0), utc(2026, 10, 23, 0, 0), utc(2026, 10, 30, 0, 0),
	}
	for _, zone := range zones {
		loc := mustLoc(t, zone)
		for name, ws := range windowSets {
			for _, start := range starts {
				for step := range 3 * 24 * 60 / 97 {
					at := start.Add(time.Duration(step*97)*time.Minute + 13*time.Second)
					checkNextOpen(t, zone+"/"+name, at, loc, ws)
				}
			}
		}
	}
}

func checkNextOpen(t *testing.T, label string, at time.Time, loc *time.Location, ws []Window) {
	t.Helper()
	got, ok := NextOpen(at, loc, ws)
	if !ok {
		t.Errorf("%s: NextOpen(%s): none found", label, at.UTC().Format(time.RFC3339))
		return
	}
	if got.Before(at) || !Open(got, loc, ws) {
		t.Errorf("%s: NextOpen(%s) = %s: before t or not open", label, at.UTC().Format(time.RFC3339), got.UTC().Format(time.RFC3339))
		return
	}
	// Every zone here has whole-minute offsets, so Open can only change at
	// whole minutes.
	for m := at.Truncate(time.Minute).Add(time.Minute); m.Before(got); m = m.Add(time.Minute) {
		if Open(m, loc, ws) {
			t.Errorf("%s: NextOpen(%s) = %s, but %s is already open", label, at.UTC().Format(time.RFC3339), got.UTC().Format(time.RFC3339), m.UTC().Format(time.RFC3339))
			return
		}
	}
	closes := CloseAfter(got, loc, ws)
	if closes.IsZero() || !closes.After(got) || Open(closes, loc, ws) {
		t.Errorf("%s: CloseAfter(%s) = %s: want a later instant where Open is false", label, got.UTC().Format(time.RFC3339), closes.UTC().Format(time.RFC3339))
		return
	}
	for m := got.Truncate(time.Minute).Add(time.Minute); m.Before(closes); m = m.Add(time.Minute) {
		if !Open(m, loc, ws) {
			t.Errorf("%s: CloseAfter(%s) = %s, but %s is already closed", label, got.UTC().Format(time.RFC3339), closes.UTC().Format(time.RFC3339), m.UTC().Format(time.RFC3339))
			return
		}
	}
}
