// Package docs_test keeps the documentation in docs/ complete and correct:
// every API field, condition reason and metric is documented, every YAML
// example is a valid manifest, every example `kubectl get` header matches
// the CRD's printer columns, and every link resolves.
//
// The tests read the repository's files; they start no process and need no
// control plane:
//
//	go test ./test/docs/ -count=1
package docs_test

import (
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// repoRoot is the module root, two levels above this file.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test source")
	}
	root := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no go.mod at %s: %v", root, err)
	}
	return root
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return string(b)
}

// markdownFiles returns README.md and docs/*.md, relative to the root.
func markdownFiles(t *testing.T, root string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	out := []string{"README.md"}
	for _, f := range files {
		rel, _ := filepath.Rel(root, f)
		out = append(out, rel)
	}
	sort.Strings(out[1:])
	return out
}

// line is one line of a Markdown file outside fenced code blocks.
type line struct {
	n    int // 1-based
	text string
}

// codeBlock is a fenced code block.
type codeBlock struct {
	lang string
	line int // of the opening fence
	body string
	// optOut: the last non-blank line before the fence is
	// <!-- not-a-manifest -->.
	optOut bool
}

// markdown is a Markdown file split into prose lines and code blocks.
type markdown struct {
	path   string
	prose  []line
	blocks []codeBlock
}

const notAManifest = "<!-- not-a-manifest -->"

var fence = regexp.MustCompile("^(\\s*)```\\s*([A-Za-z0-9_+-]*)\\s*$")

func parseMarkdown(path, text string) markdown {
	md := markdown{path: path}
	lines := strings.Split(text, "\n")
	lastNonBlank := ""
	for i := 0; i < len(lines); i++ {
		m := fence.FindStringSubmatch(lines[i])
		if m == nil {
			md.prose = append(md.prose, line{n: i + 1, text: lines[i]})
			if strings.TrimSpace(lines[i]) != "" {
				lastNonBlank = strings.TrimSpace(lines[i])
			}
			continue
		}
		indent := len(m[1])
		b := codeBlock{lang: strings.ToLower(m[2]), line: i + 1, optOut: lastNonBlank == notAManifest}
		var body []string
		for i++; i < len(lines); i++ {
			if strings.TrimSpace(lines[i]) == "```" {
				break
			}
			l := lines[i]
			// Blocks inside list items are indented like their fence.
			if len(l) >= indent && strings.TrimSpace(l[:indent]) == "" {
				l = l[indent:]
			}
			body = append(body, l)
		}
		b.body = strings.Join(body, "\n")
		md.blocks = append(md.blocks, b)
		lastNonBlank = "```"
	}
	return md
}

// tableRow is one row of a Markdown table, split into cells.
type tableRow struct {
	line  int
	cells []string
}

// rows returns the table rows of the prose, separator rows excluded.
func (md markdown) rows() []tableRow {
	var out []tableRow
	for _, l := range md.prose {
		s := strings.TrimSpace(l.text)
		if !strings.HasPrefix(s, "|") {
			continue
		}
		cells := splitCells(s)
		if isSeparator(cells) {
			continue
		}
		out = append(out, tableRow{line: l.n, cells: cells})
	}
	return out
}

// splitCells splits a table row on the pipes that are outside code spans
// and not escaped.
func splitCells(s string) []string {
	s = strings.TrimPrefix(s, "|")
	var cells []string
	var cur strings.Builder
	inCode := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && s[i+1] == '|':
			cur.WriteByte('|')
			i++
		case c == '`':
			inCode = !inCode
			cur.WriteByte(c)
		case c == '|' && !inCode:
			cells = append(cells, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	if rest := strings.TrimSpace(cur.String()); rest != "" {
		cells = append(cells, rest)
	}
	return cells
}

func isSeparator(cells []string) bool {
	for _, c := range cells {
		if strings.Trim(c, ":- ") != "" {
			return false
		}
	}
	return len(cells) > 0
}

var codeSpan = regexp.MustCompile("`([^`]+)`")

// codeSpans returns the contents of the code spans in s.
func codeSpans(s string) []string {
	var out []string
	for _, m := range codeSpan.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// heading is a Markdown ATX heading outside code blocks.
type heading struct {
	line  int
	level int
	text  string
}

var headingLine = regexp.MustCompile(`^(#{1,6})\s+(.*?)\s*#*\s*$`)

func (md markdown) headings() []heading {
	var out []heading
	for _, l := range md.prose {
		if m := headingLine.FindStringSubmatch(l.text); m != nil {
			out = append(out, heading{line: l.n, level: len(m[1]), text: m[2]})
		}
	}
	return out
}

// section returns the prose lines after heading h up to the next heading of
// the same or a higher level, as one string.
func (md markdown) section(h heading) string {
	var b strings.Builder
	for _, l := range md.prose {
		if l.n <= h.line {
			continue
		}
		if m := headingLine.FindStringSubmatch(l.text); m != nil && len(m[1]) <= h.level {
			break
		}
		b.WriteString(l.text)
		b.WriteByte('\n')
	}
	return b.String()
}

func itoa(n int) string { return strconv.Itoa(n) }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
