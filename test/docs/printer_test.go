package docs_test

// Printer column rule.
//
// Example terminal output in the docs shows what kubectl prints. In a code
// block, a line "$ kubectl get <resource> ..." for one of our kinds
// (plural, singular, short name or kind, optionally with the group) is
// followed by the header kubectl prints for it: NAME (after NAMESPACE with
// -A or --all-namespaces), then the CRD's additionalPrinterColumns in
// upper case, all of them with -o wide and those of priority 0 otherwise.
// Commands with another -o format, or with several resources, are skipped.

import (
	"path/filepath"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

// resourceKind maps every name kubectl accepts for our kinds to the kind.
func resourceKind(kinds map[string]*apiextensionsv1.CustomResourceDefinition) map[string]string {
	out := map[string]string{}
	for kind, crd := range kinds {
		n := crd.Spec.Names
		names := append([]string{n.Plural, n.Singular, strings.ToLower(n.Kind)}, n.ShortNames...)
		for _, name := range names {
			out[name] = kind
			out[name+"."+crd.Spec.Group] = kind
		}
	}
	return out
}

func expectedHeader(crd *apiextensionsv1.CustomResourceDefinition, wide, allNamespaces bool) []string {
	var h []string
	if allNamespaces {
		h = append(h, "NAMESPACE")
	}
	h = append(h, "NAME")
	for _, c := range crd.Spec.Versions[0].AdditionalPrinterColumns {
		if c.Priority == 0 || wide {
			h = append(h, strings.ToUpper(c.Name))
		}
	}
	return h
}

// getCommand parses "kubectl get ..." and returns the resource, whether the
// output is wide, whether it covers all namespaces, and whether kubectl
// prints a table at all.
func getCommand(cmd string) (resource string, wide, all, table bool) {
	fields := strings.Fields(cmd)
	if len(fields) < 3 || fields[0] != "kubectl" || fields[1] != "get" {
		return "", false, false, false
	}
	table = true
	for i := 2; i < len(fields); i++ {
		f := fields[i]
		switch {
		case f == "-o" || f == "--output":
			if i+1 < len(fields) {
				i++
				wide = fields[i] == "wide"
				table = table && wide
			}
		case strings.HasPrefix(f, "-o") && len(f) > 2:
			wide = strings.TrimPrefix(strings.TrimPrefix(f, "-o"), "=") == "wide"
			table = table && wide
		case strings.HasPrefix(f, "--output="):
			wide = strings.TrimPrefix(f, "--output=") == "wide"
			table = table && wide
		case f == "-A" || f == "--all-namespaces":
			all = true
		case f == "-n" || f == "--namespace" || f == "-l" || f == "--selector" || f == "--field-selector":
			i++
		case strings.HasPrefix(f, "-"):
		case resource == "":
			resource = f
		}
	}
	if strings.Contains(resource, ",") {
		table = false
	}
	resource, _, _ = strings.Cut(resource, "/")
	return resource, wide, all, table
}

func TestExampleOutputHeaders(t *testing.T) {
	root := repoRoot(t)
	kinds := crds(t, root)
	names := resourceKind(kinds)
	checked := 0
	for _, page := range markdownFiles(t, root) {
		md := parseMarkdown(page, readFile(t, filepath.Join(root, page)))
		for _, b := range md.blocks {
			lines := strings.Split(b.body, "\n")
			for i, l := range lines {
				cmd, ok := strings.CutPrefix(strings.TrimSpace(l), "$ ")
				if !ok {
					continue
				}
				resource, wide, all, table := getCommand(cmd)
				kind, ours := names[resource]
				if !table || !ours {
					continue
				}
				want := strings.Join(expectedHeader(kinds[kind], wide, all), " ")
				for _, next := range lines[i+1:] {
					if strings.HasPrefix(strings.TrimSpace(next), "$ ") {
						break
					}
					f := strings.Fields(next)
					if len(f) == 0 || (f[0] != "NAME" && f[0] != "NAMESPACE") {
						continue
					}
					checked++
					if got := strings.Join(f, " "); got != want {
						t.Errorf("%s:%d: `%s` prints\n  %s\nnot\n  %s", page, b.line+1+i, cmd, want, got)
					}
					break
				}
			}
		}
	}
	if checked == 0 {
		t.Error("no example kubectl get output found; the parser is broken")
	}
}

func TestGetCommand(t *testing.T) {
	for cmd, want := range map[string]struct {
		resource         string
		wide, all, table bool
	}{
		"kubectl get ocall -n sales":                   {"ocall", false, false, true},
		"kubectl get callcampaigns -A -o wide":         {"callcampaigns", true, true, true},
		"kubectl get ocall/welcome-john -o yaml":       {"ocall", false, false, false},
		"kubectl get millisaccounts,agents -n sales":   {"millisaccounts,agents", false, false, false},
		"kubectl get campaign renewal -n sales -owide": {"campaign", true, false, true},
	} {
		r, w, a, tb := getCommand(cmd)
		if r != want.resource || w != want.wide || a != want.all || tb != want.table {
			t.Errorf("getCommand(%q) = %q %v %v %v, want %+v", cmd, r, w, a, tb, want)
		}
	}
}
