package docs_test

// Link and index rule.
//
// README.md has a "## Documentation" section that links every page in
// docs/. Every relative link in README.md and docs/*.md points at a file
// that exists, and a link with a #fragment into a Markdown file points at
// one of its headings (GitHub's anchors: lower case, punctuation other
// than - and _ dropped, spaces as -, a -1, -2 suffix for repeats).

import (
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// inlineLink matches [text](target) outside code spans; images too.
var inlineLink = regexp.MustCompile(`\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)

// links returns the link targets in the prose of md, with their lines.
func links(md markdown) []struct {
	line   int
	target string
} {
	var out []struct {
		line   int
		target string
	}
	for _, l := range md.prose {
		text := codeSpan.ReplaceAllString(l.text, "")
		for _, m := range inlineLink.FindAllStringSubmatch(text, -1) {
			out = append(out, struct {
				line   int
				target string
			}{l.n, m[1]})
		}
	}
	return out
}

func anchors(md markdown) map[string]bool {
	out := map[string]bool{}
	count := map[string]int{}
	for _, h := range md.headings() {
		slug := slugify(h.text)
		if n := count[slug]; n > 0 {
			out[slug+"-"+strconv.Itoa(n)] = true
		} else {
			out[slug] = true
		}
		count[slug]++
	}
	return out
}

func slugify(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r > 127:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func TestLinksResolve(t *testing.T) {
	root := repoRoot(t)
	parsed := map[string]markdown{}
	load := func(rel string) markdown {
		if md, ok := parsed[rel]; ok {
			return md
		}
		md := parseMarkdown(rel, readFile(t, filepath.Join(root, rel)))
		parsed[rel] = md
		return md
	}
	checked := 0
	for _, page := range markdownFiles(t, root) {
		md := load(page)
		for _, l := range links(md) {
			u, err := url.Parse(l.target)
			if err != nil {
				t.Errorf("%s:%d: bad link %q: %v", page, l.line, l.target, err)
				continue
			}
			if u.Scheme != "" || u.Host != "" {
				continue // external
			}
			target := page
			if u.Path != "" {
				target = filepath.Clean(filepath.Join(filepath.Dir(page), u.Path))
				if _, err := os.Stat(filepath.Join(root, target)); err != nil {
					t.Errorf("%s:%d: link %q: %s does not exist", page, l.line, l.target, target)
					continue
				}
			}
			checked++
			if u.Fragment == "" || !strings.HasSuffix(target, ".md") {
				continue
			}
			if !anchors(load(target))[u.Fragment] {
				t.Errorf("%s:%d: link %q: %s has no heading with anchor #%s", page, l.line, l.target, target, u.Fragment)
			}
		}
	}
	if checked == 0 {
		t.Error("no relative links found; the link parser is broken")
	}
}

func TestReadmeIndexesEveryPage(t *testing.T) {
	root := repoRoot(t)
	md := parseMarkdown("README.md", readFile(t, filepath.Join(root, "README.md")))
	var index string
	for _, h := range md.headings() {
		if h.level == 2 && h.text == "Documentation" {
			index = md.section(h)
		}
	}
	if index == "" {
		t.Fatal(`README.md has no "## Documentation" section`)
	}
	linked := map[string]bool{}
	for _, m := range inlineLink.FindAllStringSubmatch(index, -1) {
		u, err := url.Parse(m[1])
		if err == nil {
			linked[filepath.Clean(u.Path)] = true
		}
	}
	pages, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pages {
		rel := filepath.Join("docs", filepath.Base(p))
		if !linked[rel] {
			t.Errorf("README.md's Documentation section does not link %s", rel)
		}
	}
}

func TestSlugify(t *testing.T) {
	for in, want := range map[string]string{
		"How Millis reaches the receiver": "how-millis-reaches-the-receiver",
		"`AccountNotReady`":               "accountnotready",
		"Part 1: local, no cluster":       "part-1-local-no-cluster",
		"Why 08:00-21:00 by default":      "why-0800-2100-by-default",
	} {
		if got := slugify(in); got != want {
			t.Errorf("slugify(%q) = %q, want %q", in, got, want)
		}
	}
}
