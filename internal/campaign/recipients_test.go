package campaign

import (
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

const testSource = "configmap/spring-list/recipients.csv"

// meta builds expected metadata from key, raw JSON pairs. The JSON is written
// out literally so the tests pin the exact encoding, not just its meaning.
func meta(kv ...string) map[string]json.RawMessage {
	m := make(map[string]json.RawMessage, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = json.RawMessage(kv[i+1])
	}
	return m
}

func TestValidPhone(t *testing.T) {
	cases := []struct {
		reason string
		in     string
		want   bool
	}{
		{"US number", "+15550100002", true},
		{"shortest allowed: 7 digits", "+1234567", true},
		{"longest allowed: 15 digits", "+123456789012345", true},
		{"6 digits is too short", "+123456", false},
		{"16 digits is too long", "+1234567890123456", false},
		{"country code cannot start with 0", "+05550100002", false},
		{"missing plus is not reformatted into one", "15550100002", false},
		{"spaces are not E.164", "+1 555 010 0002", false},
		{"dashes are not E.164", "+1-555-010-0002", false},
		{"letters", "+1555CALLNOW", false},
		{"plus alone", "+", false},
		{"empty", "", false},
		{"non-ASCII digits", "+١٢٣٤٥٦٧٨", false},
	}
	for _, c := range cases {
		if got := ValidPhone(c.in); got != c.want {
			t.Errorf("%s: ValidPhone(%q) = %v, want %v", c.reason, c.in, got, c.want)
		}
	}
}

func TestParseCSV(t *testing.T) {
	type want struct {
		recipients []Recipient
		problems   []Problem
		err        error // matched with errors.Is; the message must also name the source
	}
	rcp := func(row int, phone, tz string, m map[string]json.RawMessage) Recipient {
		return Recipient{Phone: phone, TimeZone: tz, Metadata: m, Source: testSource, Row: row}
	}
	prob := func(row int, phone, reason string) Problem {
		return Problem{Source: testSource, Row: row, Phone: phone, Reason: reason}
	}
	cases := []struct {
		reason string
		in     string
		want   want
	}{
		{
			reason: "metadata columns become JSON strings keyed by the header as written; rows are numbered by line, header is line 1",
			in: "phone,timeZone,userName,plan\n" +
				"+15550100001,America/New_York,Ada,gold\n" +
				"+15550100002,,Grace,silver\n",
			want: want{recipients: []Recipient{
				rcp(2, "+15550100001", "America/New_York", meta("userName", `"Ada"`, "plan", `"gold"`)),
				rcp(3, "+15550100002", "", meta("userName", `"Grace"`, "plan", `"silver"`)),
			}},
		},
		{
			reason: "header names are trimmed and case-insensitive; tz is an alias of timeZone",
			in:     " PHONE , TZ \n+15550100001,Europe/Berlin\n",
			want:   want{recipients: []Recipient{rcp(2, "+15550100001", "Europe/Berlin", nil)}},
		},
		{
			reason: "time_zone is an alias of timeZone",
			in:     "Time_Zone,phone\nAsia/Kolkata,+919876543210\n",
			want:   want{recipients: []Recipient{rcp(2, "+919876543210", "Asia/Kolkata", nil)}},
		},
		{
			reason: "timezone (lower case) is an alias of timeZone",
			in:     "phone,timezone\n+15550100001,UTC\n",
			want:   want{recipients: []Recipient{rcp(2, "+15550100001", "UTC", nil)}},
		},
		{
			reason: "a UTF-8 BOM from an Excel export is stripped, so the phone column is still found",
			in:     "\ufeffphone,name\n+15550100001,Ada\n",
			want:   want{recipients: []Recipient{rcp(2, "+15550100001", "", meta("name", `"Ada"`))}},
		},
		{
			reason: "quoted fields keep commas and newlines; a row after a two-line row gets its real line number",
			in: "phone,address,note\n" +
				"+15550100001,\"1 Main St, Springfield\",\"line one\nline two\"\n" +
				"+15550100002,\"2 Elm St\",\"say \"\"hi\"\"\"\n",
			want: want{recipients: []Recipient{
				rcp(2, "+15550100001", "", meta("address", `"1 Main St, Springfield"`, "note", `"line one\nline two"`)),
				rcp(4, "+15550100002", "", meta("address", `"2 Elm St"`, "note", `"say \"hi\""`)),
			}},
		},
		{
			reason: "a row with a different number of fields is a Problem at its line, and later rows still parse",
			in: "phone,name,plan\n" +
				"+15550100001,Ada\n" +
				"+15550100002,Grace,gold,extra\n" +
				"+15550100003,Linus,free\n",
			want: want{
				recipients: []Recipient{rcp(4, "+15550100003", "", meta("name", `"Linus"`, "plan", `"free"`))},
				problems: []Problem{
					prob(2, "+15550100001", "row has 2 fields, header has 3"),
					prob(3, "+15550100002", "row has 4 fields, header has 3"),
				},
			},
		},
		{
			reason: "numbers that are not E.164 are reported, never reformatted",
			in: "phone\n" +
				"555-0100\n" +
				"+1 555 010 0002\n" +
				"15550100003\n" +
				"+05550100004\n" +
				"+15550100005\n",
			want: want{
				recipients: []Recipient{rcp(6, "+15550100005", "", nil)},
				problems: []Problem{
					prob(2, "555-0100", reasonBadPhone),
					prob(3, "+1 555 010 0002", reasonBadPhone),
					prob(4, "15550100003", reasonBadPhone),
					prob(5, "+05550100004", reasonBadPhone),
				},
			},
		},
		{
			reason: "spaces around the phone are trimmed, an empty phone is a Problem",
			in:     "phone,name\n  +15550100001  ,Ada\n ,Grace\n",
			want: want{
				recipients: []Recipient{rcp(2, "+15550100001", "", meta("name", `"Ada"`))},
				problems:   []Problem{prob(3, "", reasonNoPhone)},
			},
		},
		{
			reason: "an unknown time zone is a Problem; a known one on the next row is fine",
			in:     "phone,timeZone\n+15550100001,America/Springfield\n+15550100002,Asia/Kolkata\n+15550100003,America/Springfield\n",
			want: want{
				recipients: []Recipient{rcp(3, "+15550100002", "Asia/Kolkata", nil)},
				problems: []Problem{
					prob(2, "+15550100001", `unknown time zone "America/Springfield": want an IANA name such as America/New_York`),
					prob(4, "+15550100003", `unknown time zone "America/Springfield": want an IANA name such as America/New_York`),
				},
			},
		},
		{
			reason: "Local is the operator host's zone, not the recipient's",
			in:     "phone,tz\n+15550100001,Local\n",
			want: want{problems: []Problem{
				prob(2, "+15550100001", `unknown time zone "Local": want an IANA name such as America/New_York`),
			}},
		},
		{
			reason: "empty metadata cells are omitted, and a row with none has nil metadata; spaces inside cells are kept",
			in:     "phone,name,plan\n+15550100001,,gold\n+15550100002,,\n+15550100003, Ada ,\n",
			want: want{recipients: []Recipient{
				rcp(2, "+15550100001", "", meta("plan", `"gold"`)),
				rcp(3, "+15550100002", "", nil),
				rcp(4, "+15550100003", "", meta("name", `" Ada "`)),
			}},
		},
		{
			reason: "blank lines, whitespace-only lines and all-empty rows are skipped without shifting line numbers",
			in:     "\n  \nphone,name\n\n+15550100001,Ada\n,\n   \n+15550100002,Grace\n",
			want: want{recipients: []Recipient{
				rcp(5, "+15550100001", "", meta("name", `"Ada"`)),
				rcp(8, "+15550100002", "", meta("name", `"Grace"`)),
			}},
		},
		{
			reason: "CRLF line endings from Windows are handled",
			in:     "phone,name\r\n+15550100001,Ada\r\n\r\n+15550100002,Grace\r\n",
			want: want{recipients: []Recipient{
				rcp(2, "+15550100001", "", meta("name", `"Ada"`)),
				rcp(4, "+15550100002", "", meta("name", `"Grace"`)),
			}},
		},
		{
			reason: "a quote error is a Problem for that row only; the reader carries on with the next line",
			in:     "phone,name\n+15550100001,Ad\"a\n+15550100002,\"Grace\"x\n+15550100003,Linus\n",
			want: want{
				recipients: []Recipient{rcp(4, "+15550100003", "", meta("name", `"Linus"`))},
				problems: []Problem{
					prob(2, "", `malformed CSV: bare " in non-quoted-field`),
					prob(3, "", `malformed CSV: extraneous or missing " in quoted-field`),
				},
			},
		},
		{
			reason: "an unterminated quote swallows the rest of the file into one Problem at the line it started",
			in:     "phone,name\n+15550100001,Ada\n+15550100002,\"Grace\n+15550100003,Linus\n",
			want: want{
				recipients: []Recipient{rcp(2, "+15550100001", "", meta("name", `"Ada"`))},
				problems:   []Problem{prob(3, "", `malformed CSV: extraneous or missing " in quoted-field`)},
			},
		},
		{
			reason: "metadata with quotes, backslashes, tabs and control characters is valid JSON",
			in:     "phone,note\n+15550100001,\"a\\b\tc\x01\"\n",
			want:   want{recipients: []Recipient{rcp(2, "+15550100001", "", meta("note", `"a\\b\tc\u0001"`))}},
		},
		{
			reason: "a header with no rows is an empty list, not an error",
			in:     "phone,name\n",
			want:   want{},
		},
		{
			reason: "a header without a phone column is an error for the whole file",
			in:     "number,name\n+15550100001,Ada\n",
			want:   want{err: ErrNoPhoneColumn},
		},
		{
			reason: "an empty file is an error",
			in:     "",
			want:   want{err: ErrEmpty},
		},
		{
			reason: "a file of blank lines and a BOM is an empty file",
			in:     "\ufeff\n \n\r\n",
			want:   want{err: ErrEmpty},
		},
		{
			reason: "two phone columns are ambiguous",
			in:     "phone,Phone\n+15550100001,+15550100002\n",
			want:   want{err: ErrBadHeader},
		},
		{
			reason: "two time zone columns are ambiguous",
			in:     "phone,tz,timeZone\n+15550100001,UTC,UTC\n",
			want:   want{err: ErrBadHeader},
		},
		{
			reason: "two metadata columns with one name would overwrite each other",
			in:     "phone,name,name\n+15550100001,Ada,Grace\n",
			want:   want{err: ErrBadHeader},
		},
		{
			reason: "a column without a name cannot become a metadata key",
			in:     "phone,name,\n+15550100001,Ada,x\n",
			want:   want{err: ErrBadHeader},
		},
		{
			reason: "a header the CSV reader cannot parse makes every row meaningless",
			in:     "phone,\"name\n",
			want:   want{err: ErrBadHeader},
		},
	}
	for _, c := range cases {
		got, problems, err := ParseCSV(testSource, strings.NewReader(c.in))
		if !errors.Is(err, c.want.err) {
			t.Errorf("%s: ParseCSV(...): error %v, want %v", c.reason, err, c.want.err)
			continue
		}
		if err != nil && !strings.Contains(err.Error(), testSource) {
			t.Errorf("%s: ParseCSV(...): error %q does not name the source %q", c.reason, err, testSource)
		}
		if diff := cmp.Diff(c.want.recipients, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: ParseCSV(...) recipients: -want, +got:\n%s", c.reason, diff)
		}
		if diff := cmp.Diff(c.want.problems, problems, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: ParseCSV(...) problems: -want, +got:\n%s", c.reason, diff)
		}
	}
}

func TestParseCSVReaderError(t *testing.T) {
	boom := errors.New("connection reset")
	in := io.MultiReader(strings.NewReader("phone\n+15550100001\n"), iotest.ErrReader(boom))
	_, _, err := ParseCSV(testSource, in)
	if !errors.Is(err, boom) {
		t.Fatalf("ParseCSV with a failing reader: error %v, want it to wrap %v", err, boom)
	}
	if !strings.Contains(err.Error(), testSource) {
		t.Errorf("ParseCSV with a failing reader: error %q does not name the source", err)
	}
}

// Metadata values are carved from shared buffers; appending to one must not
// overwrite the next.
func TestParseCSVMetadataValuesAreIndependent(t *testing.T) {
	got, _, err := ParseCSV(testSource, strings.NewReader("phone,a,b\n+15550100001,x,y\n"))
	if err != nil {
		t.Fatalf("ParseCSV(...): %v", err)
	}
	a := got[0].Metadata["a"]
	_ = append(a, "garbage"...)
	if diff := cmp.Diff(`"y"`, string(got[0].Metadata["b"])); diff != "" {
		t.Errorf("metadata b after appending to a: -want, +got:\n%s", diff)
	}
}

func TestAppendJSONString(t *testing.T) {
	cases := []struct{ reason, in string }{
		{"plain ASCII", "Ada Lovelace"},
		{"quotes and backslashes", `say "hi" \ bye`},
		{"control characters", "a\x00b\x1fc\nd\re\tf"},
		{"multi-byte UTF-8", "Zoë 東京 🙂"},
		{"invalid UTF-8 is replaced like encoding/json does", "a\xffb\xc3"},
		{"HTML characters stay valid", "<b>&</b>"},
		{"line and paragraph separators", "a\u2028b\u2029c"},
		{"empty", ""},
	}
	for _, c := range cases {
		got := appendJSONString(nil, c.in)
		if !json.Valid(got) {
			t.Errorf("%s: appendJSONString(%q) = %s, not valid JSON", c.reason, c.in, got)
			continue
		}
		ref, err := json.Marshal(c.in)
		if err != nil {
			t.Fatalf("%s: json.Marshal(%q): %v", c.reason, c.in, err)
		}
		var gotS, wantS string
		if err := json.Unmarshal(got, &gotS); err != nil {
			t.Errorf("%s: decode %s: %v", c.reason, got, err)
		}
		if err := json.Unmarshal(ref, &wantS); err != nil {
			t.Fatalf("%s: decode %s: %v", c.reason, ref, err)
		}
		if diff := cmp.Diff(wantS, gotS); diff != "" {
			t.Errorf("%s: appendJSONString(%q) decodes differently from encoding/json: -want, +got:\n%s", c.reason, c.in, diff)
		}
	}
}

func TestLoadLocation(t *testing.T) {
	cases := []struct {
		reason  string
		name    string
		want    string // Location.String()
		wantErr bool
	}{
		{"empty is the campaign default, loaded as UTC", "", "UTC", false},
		{"an IANA zone", "America/New_York", "America/New_York", false},
		{"a half-hour zone", "Asia/Kolkata", "Asia/Kolkata", false},
		{"unknown zone", "Mars/Olympus_Mons", "", true},
		{"names are case-sensitive", "america/new_york", "", true},
		{"the host's zone is not a recipient's zone", "Local", "", true},
		{"a path outside the tz database", "../../etc/passwd", "", true},
	}
	for _, c := range cases {
		loc, err := LoadLocation(c.name)
		if (err != nil) != c.wantErr {
			t.Errorf("%s: LoadLocation(%q): error %v, want error %v", c.reason, c.name, err, c.wantErr)
			continue
		}
		if err != nil {
			if !strings.Contains(err.Error(), c.name) {
				t.Errorf("%s: LoadLocation(%q): error %q does not name the zone", c.reason, c.name, err)
			}
			continue
		}
		if got := loc.String(); got != c.want {
			t.Errorf("%s: LoadLocation(%q) = %s, want %s", c.reason, c.name, got, c.want)
		}
		if got := ValidTimeZone(c.name); !got {
			t.Errorf("%s: ValidTimeZone(%q) = false, want true", c.reason, c.name)
		}
	}

	// The cache is the point: 100,000 rows in one zone must not parse the
	// zoneinfo file 100,000 times.
	a, _ := LoadLocation("Europe/Berlin")
	b, _ := LoadLocation("Europe/Berlin")
	if a != b {
		t.Errorf("LoadLocation(Europe/Berlin) twice returned different *time.Location values, want the cached one")
	}
	if ValidTimeZone("Mars/Olympus_Mons") {
		t.Errorf("ValidTimeZone(Mars/Olympus_Mons) = true, want false")
	}
}

func TestValidate(t *testing.T) {
	in := []Recipient{
		{Phone: "+15550100001", Source: SourceInline, Row: 1},
		{Phone: "5550100002", Source: SourceInline, Row: 2},
		{Phone: "+15550100003", TimeZone: "Nowhere/Special", Source: SourceInline, Row: 3},
		{Phone: "", Source: SourceInline, Row: 4},
		{Phone: "+919876543210", TimeZone: "Asia/Kolkata", Source: SourceInline, Row: 5},
	}
	wantOK := []Recipient{in[0], in[4]}
	wantProblems := []Problem{
		{Source: SourceInline, Row: 2, Phone: "5550100002", Reason: reasonBadPhone},
		{Source: SourceInline, Row: 3, Phone: "+15550100003", Reason: `unknown time zone "Nowhere/Special": want an IANA name such as America/New_York`},
		{Source: SourceInline, Row: 4, Phone: "", Reason: reasonNoPhone},
	}
	ok, problems := Validate(in)
	if diff := cmp.Diff(wantOK, ok); diff != "" {
		t.Errorf("Validate(...) recipients: -want, +got:\n%s", diff)
	}
	if diff := cmp.Diff(wantProblems, problems); diff != "" {
		t.Errorf("Validate(...) problems: -want, +got:\n%s", diff)
	}
}

func TestParseDoNotCall(t *testing.T) {
	const src = "configmap/dnc/numbers"
	set := func(phones ...string) map[string]struct{} {
		m := make(map[string]struct{}, len(phones))
		for _, p := range phones {
			m[p] = struct{}{}
		}
		return m
	}
	prob := func(row int, phone, reason string) Problem {
		return Problem{Source: src, Row: row, Phone: phone, Reason: reason}
	}
	cases := []struct {
		reason       string
		in           string
		want         map[string]struct{}
		wantProblems []Problem
		wantErr      error
	}{
		{
			reason: "one number per line with comments, blank lines and CRLF",
			in:     "# opted out 2026-01\n+15550100001\r\n\n  +15550100002  # asked twice\n#+15550100003\n",
			want:   set("+15550100001", "+15550100002"),
		},
		{
			reason:       "invalid numbers are Problems at their line; the rest still count",
			in:           "+15550100001\n555-0100\n+15550100002\n",
			want:         set("+15550100001", "+15550100002"),
			wantProblems: []Problem{prob(2, "555-0100", reasonBadPhone)},
		},
		{
			reason:       "without a header, a line with commas is not a number",
			in:           "+15550100001,Ada\n",
			want:         set(),
			wantProblems: []Problem{prob(1, "+15550100001,Ada", reasonBadPhone)},
		},
		{
			reason: "a CSV header with a phone column (after comments, with a BOM) selects that column",
			in:     "\ufeff# exported from the CRM\nname,Phone,added\nAda,+15550100001,2026-01-01\n\"Hopper, Grace\",+15550100002,2026-01-02\n",
			want:   set("+15550100001", "+15550100002"),
		},
		{
			reason: "the phone column is found by CSV rules: a quoted comma in the header does not shift it",
			in:     "\"Last, First\",phone\n\"Hopper, Grace\",+15550100002\n",
			want:   set("+15550100002"),
		},
		{
			reason:  "a header that only looks like it has a phone column before unquoting is an error, not a guess",
			in:      "\"a,phone\",name\n+15550100001,Ada\n",
			wantErr: ErrNoPhoneColumn,
		},
		{
			reason: "in a CSV, comment lines and blank rows are skipped",
			in:     "phone\n# a comment\n  # an indented comment\n\n+15550100001\n,\n",
			want:   set("+15550100001"),
		},
		{
			reason: "a CSV row with the wrong number of fields still blocks its number: safety over tidiness",
			in:     "name,phone\nAda,+15550100001,extra\nGrace\n,555\n",
			want:   set("+15550100001"),
			wantProblems: []Problem{
				prob(3, "", "row has 1 fields, the phone column is column 2"),
				prob(4, "555", reasonBadPhone),
			},
		},
		{
			reason:       "a quote error in a CSV row is that row's Problem",
			in:           "phone\n+1555\"0100001\n+15550100002\n",
			want:         set("+15550100002"),
			wantProblems: []Problem{prob(2, "", `malformed CSV: bare " in non-quoted-field`)},
		},
		{
			reason: "an empty list blocks nobody and is not an error",
			in:     "",
			want:   set(),
		},
		{
			reason:  "a CSV header the reader cannot parse is an error",
			in:      "phone,\"note\n",
			wantErr: ErrBadHeader,
		},
	}
	for _, c := range cases {
		got, problems, err := ParseDoNotCall(src, strings.NewReader(c.in))
		if !errors.Is(err, c.wantErr) {
			t.Errorf("%s: ParseDoNotCall(...): error %v, want %v", c.reason, err, c.wantErr)
			continue
		}
		if err != nil && !strings.Contains(err.Error(), src) {
			t.Errorf("%s: ParseDoNotCall(...): error %q does not name the source", c.reason, err)
		}
		if diff := cmp.Diff(c.want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: ParseDoNotCall(...) numbers: -want, +got:\n%s", c.reason, diff)
		}
		if diff := cmp.Diff(c.wantProblems, problems, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: ParseDoNotCall(...) problems: -want, +got:\n%s", c.reason, diff)
		}
	}
}

func TestDedupe(t *testing.T) {
	const csvSrc = "configmap/list/a.csv"
	r := func(phone, source string, row int) Recipient {
		return Recipient{Phone: phone, Source: source, Row: row}
	}
	cases := []struct {
		reason   string
		in       []Recipient
		want     []Recipient
		wantDups []Duplicate
	}{
		{
			reason: "the first occurrence wins and order is kept; every repeat names where the number was first seen",
			in: []Recipient{
				r("+15550100001", SourceInline, 1),
				r("+15550100002", csvSrc, 2),
				r("+15550100001", csvSrc, 3),
				r("+15550100003", csvSrc, 4),
				r("+15550100002", csvSrc, 5),
				r("+15550100001", csvSrc, 6),
			},
			want: []Recipient{
				r("+15550100001", SourceInline, 1),
				r("+15550100002", csvSrc, 2),
				r("+15550100003", csvSrc, 4),
			},
			wantDups: []Duplicate{
				{Phone: "+15550100001", Source: csvSrc, Row: 3, FirstSource: SourceInline, FirstRow: 1},
				{Phone: "+15550100002", Source: csvSrc, Row: 5, FirstSource: csvSrc, FirstRow: 2},
				{Phone: "+15550100001", Source: csvSrc, Row: 6, FirstSource: SourceInline, FirstRow: 1},
			},
		},
		{
			reason: "the first occurrence keeps its own metadata and time zone",
			in: []Recipient{
				{Phone: "+15550100001", TimeZone: "Asia/Kolkata", Metadata: meta("n", `"1"`), Source: csvSrc, Row: 2},
				{Phone: "+15550100001", TimeZone: "UTC", Metadata: meta("n", `"2"`), Source: csvSrc, Row: 3},
			},
			want: []Recipient{
				{Phone: "+15550100001", TimeZone: "Asia/Kolkata", Metadata: meta("n", `"1"`), Source: csvSrc, Row: 2},
			},
			wantDups: []Duplicate{{Phone: "+15550100001", Source: csvSrc, Row: 3, FirstSource: csvSrc, FirstRow: 2}},
		},
		{
			reason: "no duplicates means the input back unchanged",
			in:     []Recipient{r("+15550100002", csvSrc, 2), r("+15550100001", csvSrc, 3)},
			want:   []Recipient{r("+15550100002", csvSrc, 2), r("+15550100001", csvSrc, 3)},
		},
		{
			reason: "nothing in, nothing out",
		},
	}
	for _, c := range cases {
		got, dups := Dedupe(c.in)
		if diff := cmp.Diff(c.want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: Dedupe(...) recipients: -want, +got:\n%s", c.reason, diff)
		}
		if diff := cmp.Diff(c.wantDups, dups, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: Dedupe(...) duplicates: -want, +got:\n%s", c.reason, diff)
		}
	}
}

// nonBlankLines counts lines with something other than spaces on them, the
// most records a CSV of that text can hold.
func nonBlankLines(s string) int {
	n := 0
	for line := range strings.SplitSeq(strings.TrimPrefix(s, utf8BOM), "\n") {
		if strings.TrimSpace(line) != "" {
			n++
		}
	}
	return n
}

func FuzzParseCSV(f *testing.F) {
	for _, seed := range []string{
		"phone,timeZone,userName,plan\n+15550100001,America/New_York,Ada,gold\n+15550100002,,Grace,silver\n",
		"\ufeffPhone , TZ\r\n+919876543210,Asia/Kolkata\r\n\r\n555-0100,UTC\r\n",
		"phone,note\n+15550100001,\"a, b\nc\"\n+15550100002,\"bad\"quote\n+15550100003,x,y\n",
		"phone,name\n+15550100001,\"unterminated\n+15550100002,Grace\n",
		"name\nAda\n",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		recipients, problems, err := ParseCSV(testSource, strings.NewReader(in))
		if err != nil {
			if recipients != nil || problems != nil {
				t.Errorf("ParseCSV(%q) returned results with error %v", in, err)
			}
			if !strings.Contains(err.Error(), testSource) {
				t.Errorf("ParseCSV(%q): error %q does not name the source", in, err)
			}
			return
		}
		for _, r := range recipients {
			if !ValidPhone(r.Phone) {
				t.Errorf("ParseCSV(%q): recipient at row %d has invalid phone %q", in, r.Row, r.Phone)
			}
			if !ValidTimeZone(r.TimeZone) {
				t.Errorf("ParseCSV(%q): recipient at row %d has invalid time zone %q", in, r.Row, r.TimeZone)
			}
			if r.Row < 2 || r.Source != testSource {
				t.Errorf("ParseCSV(%q): recipient has source %q row %d, want %q and a row after the header", in, r.Source, r.Row, testSource)
			}
			for k, v := range r.Metadata {
				if !json.Valid(v) {
					t.Errorf("ParseCSV(%q): metadata %q = %s is not valid JSON", in, k, v)
				}
			}
		}
		for _, p := range problems {
			if p.Row < 1 || p.Source != testSource || p.Reason == "" {
				t.Errorf("ParseCSV(%q): problem %+v, want row >= 1, the source and a reason", in, p)
			}
		}
		// The header takes at least one non-blank line and every result
		// starts on a line of its own.
		if got, limit := len(recipients)+len(problems), nonBlankLines(in)-1; got > limit {
			t.Errorf("ParseCSV(%q): %d recipients + %d problems, more than the %d non-blank data lines", in, len(recipients), len(problems), limit)
		}
	})
}

// A cached zone must be the zone asked for, not just any cached entry.
func TestLoadLocationMatchesTime(t *testing.T) {
	mine, err := LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	ref, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	if diff := cmp.Diff(at.In(ref).Format(time.RFC3339), at.In(mine).Format(time.RFC3339)); diff != "" {
		t.Errorf("LoadLocation(America/New_York): -time.LoadLocation, +cached:\n%s", diff)
	}
}
