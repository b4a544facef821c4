package campaign

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Source of recipients listed in the CallCampaign spec itself.
const SourceInline = "inline"

// SourceConfigMap names a recipient list or do-not-call list held in a
// ConfigMap key, the form used in Recipient.Source and Problem.Source.
func SourceConfigMap(name, key string) string {
	return "configmap/" + name + "/" + key
}

// Recipient is one person to call.
type Recipient struct {
	Phone    string                     // E.164
	TimeZone string                     // IANA name; "" means the campaign default
	Metadata map[string]json.RawMessage // per-recipient metadata (CSV cells become JSON strings)
	Source   string                     // "inline" or "configmap/<name>/<key>"
	Row      int                        // inline: 1-based index; CSV: 1-based line number in the file (header is line 1)
}

// Problem is a row that cannot be called, reported with its source and row so
// the user can find it in their spreadsheet. Reason never repeats the phone
// number, so it can go into events and logs as is.
type Problem struct {
	Source string
	Row    int
	Phone  string
	Reason string
}

// Errors that make a whole list unreadable. They are terminal: retrying the
// same ConfigMap cannot help, so the controller should set a condition and wait
// for the user to fix the data.
var (
	ErrEmpty          = errors.New("file is empty, want a header row with a \"phone\" column")
	ErrNoPhoneColumn  = errors.New("header has no \"phone\" column")
	ErrBadHeader      = errors.New("bad header row")
	errUnreadableList = errors.New("CSV cannot be read")
)

// Reasons shared by ParseCSV, ParseDoNotCall and Validate, so a user sees the
// same words whichever way a number reached the campaign.
const (
	reasonNoPhone  = "phone is empty"
	reasonBadPhone = "phone is not E.164: want + then 7 to 15 digits, the first not 0, no spaces or punctuation"
)

// ValidPhone reports whether s is an E.164 number: ^\+[1-9][0-9]{6,14}$.
// It is hand-written because it runs once per row of lists with 100,000 rows.
func ValidPhone(s string) bool {
	// 1 for '+', then 7 to 15 digits.
	if len(s) < 8 || len(s) > 16 || s[0] != '+' || s[1] < '1' || s[1] > '9' {
		return false
	}
	for i := 2; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// locations caches successful time zone loads for the life of the process.
// time.LoadLocation reads and parses a zoneinfo file on every call. Failures
// are not cached here, so arbitrary user input cannot grow this map beyond the
// size of the tz database; ParseCSV caches them per call instead.
var locations sync.Map // string -> *time.Location

// LoadLocation is time.LoadLocation with a process-wide cache. "" is the
// campaign default and loads as UTC, which callers replace with the campaign's
// own zone before using it. "Local" is rejected: it names the operator host's
// zone, which changes with the image, not anything about the recipient.
func LoadLocation(name string) (*time.Location, error) {
	if name == "" {
		return time.UTC, nil
	}
	if l, ok := locations.Load(name); ok {
		return l.(*time.Location), nil
	}
	if name == "Local" {
		return nil, fmt.Errorf("load time zone %q: the operator host's zone is not a valid recipient zone, name an IANA zone such as America/New_York", name)
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("load time zone %q: %w", name, err)
	}
	locations.Store(name, l)
	return l, nil
}

// ValidTimeZone reports whether name loads with time.LoadLocation (cached).
// "" is valid: it means the campaign default.
func ValidTimeZone(name string) bool {
	_, err := LoadLocation(name)
	return err == nil
}

// zoneChecker remembers, for one list, which zone names were good and which
// were not, so a file that repeats a bad name on every row costs one failed
// lookup, not one per row.
type zoneChecker map[string]bool

func (z zoneChecker) valid(name string) bool {
	if ok, seen := z[name]; seen {
		return ok
	}
	ok := ValidTimeZone(name)
	z[name] = ok
	return ok
}

// checkRow returns why a recipient cannot be called, or "" when it can.
func checkRow(phone, tz string, zones zoneChecker) string {
	switch {
	case phone == "":
		return reasonNoPhone
	case !ValidPhone(phone):
		return reasonBadPhone
	case tz != "" && !zones.valid(tz):
		return fmt.Sprintf("unknown time zone %q: want an IANA name such as America/New_York", tz)
	}
	return ""
}

// Validate applies the checks ParseCSV applies to every row to recipients that
// did not come from a CSV file, such as those listed inline in the spec. Phone
// and TimeZone are used as they are: inline values are not trimmed, because a
// CRD validation rule should already have rejected them.
func Validate(in []Recipient) ([]Recipient, []Problem) {
	zones := zoneChecker{}
	out := make([]Recipient, 0, len(in))
	var problems []Problem
	for _, r := range in {
		if reason := checkRow(r.Phone, r.TimeZone, zones); reason != "" {
			problems = append(problems, Problem{Source: r.Source, Row: r.Row, Phone: r.Phone, Reason: reason})
			continue
		}
		out = append(out, r)
	}
	return out, problems
}

// utf8BOM is written by Excel at the start of "CSV UTF-8" exports.
const utf8BOM = "\ufeff"

// stripBOM returns r without a leading UTF-8 byte order mark. Without this the
// first header cell would read "\ufeffphone" and the phone column would not be
// found.
func stripBOM(r io.Reader) io.Reader {
	br := bufio.NewReader(r)
	if b, err := br.Peek(len(utf8BOM)); err == nil && string(b) == utf8BOM {
		_, _ = br.Discard(len(utf8BOM))
	}
	return br
}

func newCSVReader(r io.Reader) *csv.Reader {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1 // a wrong count is a Problem for that row, not the end of the file
	cr.ReuseRecord = true
	cr.LazyQuotes = false
	return cr
}

// blank reports whether every field is empty or spaces. encoding/csv already
// skips empty lines; spreadsheet exports also end with rows such as ",,,".
func blank(record []string) bool {
	for _, f := range record {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}

// readRecord reads the next record. A *csv.ParseError is returned as a
// Problem reason: encoding/csv drops the rest of the bad line and can go on.
// Any other error means the input itself failed and is returned as err.
func readRecord(cr *csv.Reader, lastOffset *int64) (record []string, line int, problem string, err error) {
	record, err = cr.Read()
	if err == nil {
		*lastOffset = cr.InputOffset()
		line, _ = cr.FieldPos(0)
		return record, line, "", nil
	}
	// Only on the error path: errors.As makes pe escape, an allocation
	// per row otherwise.
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		// encoding/csv always consumes the line it failed on. Check anyway:
		// a reader that stops making progress would loop forever here.
		if off := cr.InputOffset(); off == *lastOffset {
			return nil, 0, "", fmt.Errorf("%w: %w", errUnreadableList, err)
		}
		*lastOffset = cr.InputOffset()
		return nil, pe.StartLine, "malformed CSV: " + pe.Err.Error(), nil
	}
	return nil, 0, "", err
}

// readHeader returns the first non-blank record, copied because the reader
// reuses its slice, and the line it started on.
func readHeader(cr *csv.Reader, lastOffset *int64) ([]string, int, error) {
	for {
		record, line, problem, err := readRecord(cr, lastOffset)
		if err == io.EOF {
			return nil, 0, ErrEmpty
		}
		if err != nil {
			return nil, 0, err
		}
		if problem != "" {
			// Without a header no later row can be understood.
			return nil, 0, fmt.Errorf("%w: line %d: %s", ErrBadHeader, line, problem)
		}
		if !blank(record) {
			return append([]string(nil), record...), line, nil
		}
	}
}

// columns is what the header says about each field position.
type columns struct {
	phone     int
	timeZone  int      // -1 when absent
	metadata  []string // key per field position; "" for phone and time zone
	nMetadata int
	n         int
}

func parseHeader(header []string, line int) (columns, error) {
	c := columns{phone: -1, timeZone: -1, metadata: make([]string, len(header)), n: len(header)}
	seen := make(map[string]int, len(header))
	for i, h := range header {
		name := strings.TrimSpace(h)
		if name == "" {
			return c, fmt.Errorf("%w: line %d: column %d has an empty name; name it or delete the column", ErrBadHeader, line, i+1)
		}
		switch strings.ToLower(name) {
		case "phone":
			if c.phone >= 0 {
				return c, fmt.Errorf("%w: line %d: columns %d and %d are both the phone column", ErrBadHeader, line, c.phone+1, i+1)
			}
			c.phone = i
			continue
		case "timezone", "time_zone", "tz":
			if c.timeZone >= 0 {
				return c, fmt.Errorf("%w: line %d: columns %d and %d are both the time zone column", ErrBadHeader, line, c.timeZone+1, i+1)
			}
			c.timeZone = i
			continue
		}
		// Metadata keys keep the user's spelling: templates refer to them.
		if j, dup := seen[name]; dup {
			return c, fmt.Errorf("%w: line %d: columns %d and %d are both named %q", ErrBadHeader, line, j+1, i+1, name)
		}
		seen[name] = i
		c.metadata[i] = name
	}
	if c.phone < 0 {
		return c, fmt.Errorf("%w (columns: %s)", ErrNoPhoneColumn, strings.Join(header, ", "))
	}
	c.nMetadata = len(seen)
	return c, nil
}

// ParseCSV reads recipients. The header names columns; "phone" is required
// (case-insensitive, surrounding spaces trimmed) and "timeZone" (also
// "timezone", "time_zone", "tz") is optional. Every other column becomes a
// metadata key with the cell as a JSON string value; empty cells are omitted.
//
// Rows that cannot be called (wrong number of fields, a phone that is not
// E.164, an unknown time zone, a quoting error) are returned as Problems with
// their 1-based line number, and parsing goes on: one bad row never blocks the
// rest. Rows whose cells are all blank are skipped. Numbers are never
// reformatted: guessing a country code could call the wrong person.
//
// An error, naming source, is returned when the file as a whole cannot be
// used: it is empty, its header is unusable or has no phone column, or the
// reader fails.
func ParseCSV(source string, r io.Reader) ([]Recipient, []Problem, error) {
	cr := newCSVReader(stripBOM(r))
	var offset int64
	header, headerLine, err := readHeader(cr, &offset)
	if err != nil {
		return nil, nil, fmt.Errorf("read recipients from %s: %w", source, err)
	}
	cols, err := parseHeader(header, headerLine)
	if err != nil {
		return nil, nil, fmt.Errorf("read recipients from %s: %w", source, err)
	}

	var (
		recipients []Recipient
		problems   []Problem
		zones      = zoneChecker{}
		values     jsonArena
	)
	for {
		record, line, problem, err := readRecord(cr, &offset)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("read recipients from %s: %w", source, err)
		}
		if problem != "" {
			problems = append(problems, Problem{Source: source, Row: line, Reason: problem})
			continue
		}
		if blank(record) {
			continue
		}
		if len(record) != cols.n {
			p := Problem{Source: source, Row: line, Reason: fmt.Sprintf("row has %d fields, header has %d", len(record), cols.n)}
			if cols.phone < len(record) {
				p.Phone = strings.TrimSpace(record[cols.phone])
			}
			problems = append(problems, p)
			continue
		}

		phone := strings.TrimSpace(record[cols.phone])
		var tz string
		if cols.timeZone >= 0 {
			tz = strings.TrimSpace(record[cols.timeZone])
		}
		if reason := checkRow(phone, tz, zones); reason != "" {
			problems = append(problems, Problem{Source: source, Row: line, Phone: phone, Reason: reason})
			continue
		}

		rec := Recipient{Phone: phone, TimeZone: tz, Source: source, Row: line}
		for i, key := range cols.metadata {
			if key == "" || record[i] == "" {
				continue
			}
			if rec.Metadata == nil {
				rec.Metadata = make(map[string]json.RawMessage, cols.nMetadata)
			}
			rec.Metadata[key] = values.quote(record[i])
		}
		recipients = append(recipients, rec)
	}
	return recipients, problems, nil
}

// jsonArena hands out JSON string encodings carved from large shared buffers:
// one allocation per 32 KiB of values instead of one per cell. Each value is
// capped at its own length, so appending to one copies instead of overwriting
// its neighbour.
type jsonArena struct{ buf []byte }

const arenaChunk = 32 << 10

func (a *jsonArena) quote(s string) json.RawMessage {
	// Worst case every byte becomes a 6-byte \u escape, plus the quotes.
	if need := 6*len(s) + 2; cap(a.buf)-len(a.buf) < need {
		a.buf = make([]byte, 0, max(arenaChunk, need))
	}
	start := len(a.buf)
	a.buf = appendJSONString(a.buf, s)
	return json.RawMessage(a.buf[start:len(a.buf):len(a.buf)])
}

// appendJSONString appends s as a JSON string. It matches encoding/json for
// what matters here (control characters escaped, invalid UTF-8 replaced by
// U+FFFD) without reflection, and leaves <, > and & alone: the values are
// data for the agent, not HTML.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xf])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// ParseDoNotCall reads a do-not-call list and returns the set of numbers.
//
// Two layouts are accepted, told apart by the first line that is neither blank
// nor a comment: if it has a "phone" cell it is a CSV header and only that
// column is read; otherwise the list has one number per line. In the
// one-per-line layout '#' starts a comment anywhere on a line; in the CSV
// layout a line is a comment when its first non-space character is '#'.
// Blank lines are skipped and invalid numbers are Problems.
//
// A CSV row with more or fewer fields than the header still contributes its
// number when the phone cell is present and valid: a number the user asked us
// never to call must not be dropped over cosmetics.
func ParseDoNotCall(source string, r io.Reader) (map[string]struct{}, []Problem, error) {
	// Telling the layouts apart needs a look past any leading comments, and
	// ConfigMap values are at most 1 MiB, so read it all.
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, nil, fmt.Errorf("read do-not-call list from %s: %w", source, err)
	}
	data = bytes.TrimPrefix(data, []byte(utf8BOM))
	var (
		set      map[string]struct{}
		problems []Problem
	)
	if dncHasHeader(data) {
		set, problems, err = parseDNCCSV(source, data)
	} else {
		set, problems = parseDNCLines(source, data)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read do-not-call list from %s: %w", source, err)
	}
	return set, problems, nil
}

// nextLine splits data at the first '\n', dropping a '\r' before it.
func nextLine(data []byte) (line, rest []byte) {
	line, rest, _ = bytes.Cut(data, []byte{'\n'})
	return bytes.TrimSuffix(line, []byte{'\r'}), rest
}

// dncHasHeader reports whether the first meaningful line looks like a CSV
// header with a phone column. It only picks the layout: a plain split is good
// enough for that, but not for finding the column, since a quoted cell may
// hold a comma.
func dncHasHeader(data []byte) bool {
	for len(data) > 0 {
		var line []byte
		line, data = nextLine(data)
		s := strings.TrimSpace(string(line))
		if s == "" || s[0] == '#' {
			continue
		}
		for cell := range strings.SplitSeq(s, ",") {
			if strings.EqualFold(strings.TrimSpace(strings.Trim(strings.TrimSpace(cell), `"`)), "phone") {
				return true
			}
		}
		return false
	}
	return false
}

func parseDNCLines(source string, data []byte) (map[string]struct{}, []Problem) {
	set := make(map[string]struct{})
	var problems []Problem
	for n := 1; len(data) > 0; n++ {
		var line []byte
		line, data = nextLine(data)
		if i := bytes.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		phone := string(line)
		if !ValidPhone(phone) {
			problems = append(problems, Problem{Source: source, Row: n, Phone: phone, Reason: reasonBadPhone})
			continue
		}
		set[phone] = struct{}{}
	}
	return set, problems
}

func parseDNCCSV(source string, data []byte) (map[string]struct{}, []Problem, error) {
	cr := newCSVReader(bytes.NewReader(data))
	cr.Comment = '#'
	set := make(map[string]struct{})
	var (
		problems   []Problem
		offset     int64
		seenHeader bool
		phoneCol   int
	)
	for {
		record, line, problem, err := readRecord(cr, &offset)
		if err == io.EOF {
			return set, problems, nil
		}
		if err != nil {
			return nil, nil, err
		}
		if problem != "" {
			if !seenHeader {
				// Skipping it would make the first number the header.
				return nil, nil, fmt.Errorf("%w: line %d: %s", ErrBadHeader, line, problem)
			}
			problems = append(problems, Problem{Source: source, Row: line, Reason: problem})
			continue
		}
		if blank(record) || strings.HasPrefix(strings.TrimSpace(record[0]), "#") {
			continue
		}
		if !seenHeader {
			seenHeader = true
			phoneCol = slices.IndexFunc(record, func(h string) bool { return strings.EqualFold(strings.TrimSpace(h), "phone") })
			if phoneCol < 0 {
				// The plain split saw a phone cell that CSV quoting hides.
				return nil, nil, fmt.Errorf("%w: line %d (columns: %s)", ErrNoPhoneColumn, line, strings.Join(record, ", "))
			}
			continue
		}
		if phoneCol >= len(record) {
			problems = append(problems, Problem{Source: source, Row: line, Reason: fmt.Sprintf("row has %d fields, the phone column is column %d", len(record), phoneCol+1)})
			continue
		}
		phone := strings.TrimSpace(record[phoneCol])
		if reason := checkRow(phone, "", nil); reason != "" {
			problems = append(problems, Problem{Source: source, Row: line, Phone: phone, Reason: reason})
			continue
		}
		set[phone] = struct{}{}
	}
}

// Duplicate is a recipient whose number appeared before.
type Duplicate struct {
	Phone, Source string
	Row           int
	FirstSource   string
	FirstRow      int
}

// Dedupe keeps the first occurrence of every number, in order. Numbers are
// compared as written: E.164 has one spelling per number, and ParseCSV never
// reformats, so equal numbers are equal strings.
func Dedupe(in []Recipient) ([]Recipient, []Duplicate) {
	first := make(map[string]int, len(in)) // phone -> index in out
	out := make([]Recipient, 0, len(in))
	var dups []Duplicate
	for _, r := range in {
		if i, seen := first[r.Phone]; seen {
			dups = append(dups, Duplicate{
				Phone: r.Phone, Source: r.Source, Row: r.Row,
				FirstSource: out[i].Source, FirstRow: out[i].Row,
			})
			continue
		}
		first[r.Phone] = len(out)
		out = append(out, r)
	}
	return out, dups
}
