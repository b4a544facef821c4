package docs_test

// Condition reason rule.
//
// Every constant of api/v1alpha1 whose name starts with Reason is a
// condition reason users see in kubectl. Its value (not its Go name) must
// be documented in docs/troubleshooting.md as a heading whose text is the
// value in a code span:
//
//	### `AccountNotReady`
//
// and the section under that heading must answer the four questions a
// person with a stuck object has, each introduced by its label:
//
//	**Where:**      which kinds and conditions carry the reason;
//	**Means:**      what happened;
//	**Meanwhile:**  what the operator does about it (retries, waits, nothing);
//	**Do:**         what the user should do.
//
// A reason that no controller sets (no non-test Go file in controllers/ or
// internal/ refers to its constant) must say so with the phrase
// "not set by this version", and a reason that is set must not.

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

var reasonLabels = []string{"**Where:**", "**Means:**", "**Meanwhile:**", "**Do:**"}

const unsetPhrase = "not set by this version"

// reasonConstants parses the Go source of api/v1alpha1 and returns the
// value of every constant whose name starts with Reason, by name.
func reasonConstants(t *testing.T, root string) map[string]string {
	t.Helper()
	dir := filepath.Join(root, "api", "v1alpha1")
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string]ast.Expr{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatalf("parse %s: %v", f, err)
		}
		for _, decl := range file.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if i < len(vs.Values) {
						consts[name.Name] = vs.Values[i]
					}
				}
			}
		}
	}
	var value func(name string, depth int) (string, bool)
	value = func(name string, depth int) (string, bool) {
		if depth > 8 {
			return "", false
		}
		switch e := consts[name].(type) {
		case *ast.BasicLit:
			if e.Kind != token.STRING {
				return "", false
			}
			s, err := strconv.Unquote(e.Value)
			return s, err == nil
		case *ast.Ident:
			return value(e.Name, depth+1)
		}
		return "", false
	}
	out := map[string]string{}
	for name := range consts {
		if !strings.HasPrefix(name, "Reason") {
			continue
		}
		v, ok := value(name, 0)
		if !ok {
			t.Errorf("api/v1alpha1: %s is not a string constant this test can read", name)
			continue
		}
		out[name] = v
	}
	if len(out) == 0 {
		t.Fatal("api/v1alpha1: no Reason constants found")
	}
	return out
}

// usedReasons returns the Reason constants that non-test Go files in
// controllers/ and internal/ refer to.
func usedReasons(t *testing.T, root string) map[string]bool {
	t.Helper()
	ref := regexp.MustCompile(`v1alpha1\.(Reason[A-Za-z0-9_]+)\b`)
	used := map[string]bool{}
	for _, dir := range []string{"controllers", "internal"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			for _, m := range ref.FindAllStringSubmatch(readFile(t, path), -1) {
				used[m[1]] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return used
}

func TestEveryReasonIsInTroubleshooting(t *testing.T) {
	root := repoRoot(t)
	reasons := reasonConstants(t, root)
	used := usedReasons(t, root)
	const page = "docs/troubleshooting.md"
	md := parseMarkdown(page, readFile(t, filepath.Join(root, page)))

	sections := map[string]string{}
	for _, h := range md.headings() {
		if spans := codeSpans(h.text); len(spans) == 1 && strings.TrimSpace(h.text) == "`"+spans[0]+"`" {
			sections[spans[0]] = md.section(h)
		}
	}

	names := sortedKeys(reasons)
	var problems []string
	for _, name := range names {
		value := reasons[name]
		sec, ok := sections[value]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s (%s): no heading \"### `%s`\"", value, name, value))
			continue
		}
		for _, label := range reasonLabels {
			if !strings.Contains(sec, label) {
				problems = append(problems, fmt.Sprintf("%s: the section has no %s", value, label))
			}
		}
		says := strings.Contains(sec, unsetPhrase)
		switch {
		case !used[name] && !says:
			problems = append(problems, fmt.Sprintf("%s: no controller sets %s; the section must say %q", value, name, unsetPhrase))
		case used[name] && says:
			problems = append(problems, fmt.Sprintf("%s: the section says %q, but %s is used in controllers/ or internal/", value, unsetPhrase, name))
		}
	}
	sort.Strings(problems)
	if len(problems) > 0 {
		t.Errorf("%s is incomplete:\n  %s", page, strings.Join(problems, "\n  "))
	}
}

// TestReasonParsing guards the parser: it must see constants from every
// kind's file, or the check above would pass on too short a list.
func TestReasonParsing(t *testing.T) {
	root := repoRoot(t)
	reasons := reasonConstants(t, root)
	for name, value := range map[string]string{
		"ReasonMillisUnavailable": "MillisUnavailable",       // common_types.go
		"ReasonVerified":          "Verified",                // millisaccount_types.go
		"ReasonRecovered":         "RecoveredFromCallLogs",   // outboundcall_types.go
		"ReasonTerminal":          "TerminalError",           // agent_types.go
		"ReasonSourceNotFound":    "RecipientSourceNotFound", // callcampaign_types.go
	} {
		if got := reasons[name]; got != value {
			t.Errorf("%s = %q, want %q", name, got, value)
		}
	}
	if used := usedReasons(t, root); !used["ReasonAccepted"] {
		t.Error("usedReasons did not find ReasonAccepted, which the OutboundCall controller sets")
	}
}
