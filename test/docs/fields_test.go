package docs_test

// Field reference rule.
//
// Every field of every kind (config/crd/bases, spec and status, walked as
// described at fields) is documented on the kind's page,
// docs/<kind in lower case>.md, in a Markdown table row whose first cell
// holds the field's full path in a code span:
//
//	| `spec.schedule.callingWindows[].days` | every day | ... |
//
// A first cell may hold several paths (`spec.fromPhone`, `spec.toPhone`) when
// one description fits them all. The row of a field with an enum (or of an
// array whose items have one) also names every allowed value in a code span,
// so that the values are documented where the field is.
//
// The rule is checked both ways: a path in the first cell of a table row
// on a kind's page that the CRD does not have fails too, so a renamed or
// removed field cannot leave its documentation behind.
//
// The message of every CEL rule (x-kubernetes-validations) of the CRD, at
// any depth, appears verbatim in a code span on the kind's page: it is what
// kubectl prints when the rule rejects an object, so users search for it.
// The same holds for the messages of the ValidatingAdmissionPolicies in
// config/admission, on the page of each kind they match.

import (
	"bufio"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// documentedPaths maps each path found in the first cell of a table row to
// that row.
func documentedPaths(md markdown) map[string]tableRow {
	out := map[string]tableRow{}
	for _, row := range md.rows() {
		for _, span := range codeSpans(row.cells[0]) {
			if isFieldPath(span) {
				if _, seen := out[span]; !seen {
					out[span] = row
				}
			}
		}
	}
	return out
}

func isFieldPath(s string) bool {
	return (strings.HasPrefix(s, "spec.") || strings.HasPrefix(s, "status.")) && !strings.ContainsAny(s, " =()'\"")
}

func TestEveryFieldIsDocumented(t *testing.T) {
	root := repoRoot(t)
	kinds := crds(t, root)
	for _, kind := range sortedKeys(kinds) {
		t.Run(kind, func(t *testing.T) {
			page := docPage(kind)
			md := parseMarkdown(page, readFile(t, filepath.Join(root, page)))
			documented := documentedPaths(md)

			var missing, enums []string
			known := map[string]bool{}
			for _, f := range fields(kinds[kind]) {
				known[f.path] = true
				row, ok := documented[f.path]
				if !ok {
					missing = append(missing, f.path)
					continue
				}
				spans := codeSpans(strings.Join(row.cells, " | "))
				for _, v := range enumOf(f.schema) {
					if !contains(spans, v) {
						enums = append(enums, f.path+": `"+v+"` (line "+itoa(row.line)+")")
					}
				}
			}
			var stale []string
			for path, row := range documented {
				if !known[path] {
					stale = append(stale, path+" (line "+itoa(row.line)+")")
				}
			}
			sort.Strings(missing)
			sort.Strings(enums)
			sort.Strings(stale)
			if len(missing) > 0 {
				t.Errorf("%s: no table row starts with these fields of %s:\n  %s", page, kind, strings.Join(missing, "\n  "))
			}
			if len(enums) > 0 {
				t.Errorf("%s: these allowed values are missing from their field's row:\n  %s", page, strings.Join(enums, "\n  "))
			}
			if len(stale) > 0 {
				t.Errorf("%s: these documented fields are not in the %s CRD:\n  %s", page, kind, strings.Join(stale, "\n  "))
			}
		})
	}
}

// TestFieldWalk guards the walk itself: it must find fields at every depth
// and shape, or the rule above would pass on an empty list.
func TestFieldWalk(t *testing.T) {
	root := repoRoot(t)
	kinds := crds(t, root)
	want := map[string][]string{
		"CallCampaign":  {"spec.fromPhone", "spec.schedule.callingWindows[].days", "spec.recipientsFrom[].configMapKeyRef.key", "status.problems[].row", "status.conditions"},
		"OutboundCall":  {"spec.prefetch.metadataFrom[].secretRef.name", "status.dial.searchFrom", "status.transcript[].content"},
		"Agent":         {"spec.config.voice.voiceID", "spec.phoneNumbers", "status.drift"},
		"MillisAccount": {"spec.webhook.tokenSecretRef.key", "status.credit"},
	}
	for kind, paths := range want {
		crd, ok := kinds[kind]
		if !ok {
			t.Errorf("no CRD of kind %s", kind)
			continue
		}
		got := map[string]bool{}
		for _, f := range fields(crd) {
			got[f.path] = true
			if strings.HasPrefix(f.path, "status.conditions.") || strings.HasPrefix(f.path, "status.conditions[]") {
				t.Errorf("%s: walked into metav1.Condition: %s", kind, f.path)
			}
			if strings.HasSuffix(f.path, "[]") {
				t.Errorf("%s: array items are not fields: %s", kind, f.path)
			}
		}
		for _, p := range paths {
			if !got[p] {
				t.Errorf("%s: walk did not find %s", kind, p)
			}
		}
	}
	if got := enumOf(fieldSchema(t, kinds["CallCampaign"], "spec.retry.retryOn")); !contains(got, "no-answer") {
		t.Errorf("enum of spec.retry.retryOn items = %v, want it to hold no-answer", got)
	}
}

func fieldSchema(t *testing.T, crd *apiextensionsv1.CustomResourceDefinition, path string) *apiextensionsv1.JSONSchemaProps {
	t.Helper()
	for _, f := range fields(crd) {
		if f.path == path {
			return f.schema
		}
	}
	t.Fatalf("%s: no field %s", crd.Name, path)
	return nil
}

// celMessages returns the messages of every CEL rule in s, at any depth.
func celMessages(s *apiextensionsv1.JSONSchemaProps, out map[string]bool) {
	if s == nil {
		return
	}
	for _, v := range s.XValidations {
		out[v.Message] = true
	}
	for name := range s.Properties {
		p := s.Properties[name]
		celMessages(&p, out)
	}
	if s.Items != nil {
		celMessages(s.Items.Schema, out)
	}
	if s.AdditionalProperties != nil {
		celMessages(s.AdditionalProperties.Schema, out)
	}
}

func TestEveryCELRuleIsDocumented(t *testing.T) {
	root := repoRoot(t)
	kinds := crds(t, root)
	total := 0
	for _, kind := range sortedKeys(kinds) {
		page := docPage(kind)
		md := parseMarkdown(page, readFile(t, filepath.Join(root, page)))
		spans := map[string]bool{}
		for _, l := range md.prose {
			for _, sp := range codeSpans(l.text) {
				spans[sp] = true
			}
		}
		messages := map[string]bool{}
		celMessages(rootSchema(kinds[kind]), messages)
		for _, m := range policyMessages(t, root, kinds[kind].Spec.Names.Plural) {
			messages[m] = true
		}
		total += len(messages)
		for _, m := range sortedKeys(messages) {
			if !spans[m] {
				t.Errorf("%s: the message of a %s CEL rule is not in a code span: %q", page, kind, m)
			}
		}
	}
	if total < 10 {
		t.Errorf("found only %d CEL messages in the CRDs; the walk is broken", total)
	}
}

// policyMessages returns the validation messages of the
// ValidatingAdmissionPolicies in config/admission that match resource.
func policyMessages(t *testing.T, root, resource string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "config", "admission", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(readFile(t, f))))
		for {
			doc, err := r.Read()
			if err != nil {
				break
			}
			var policy admissionregistrationv1.ValidatingAdmissionPolicy
			if err := yaml.Unmarshal(doc, &policy); err != nil || policy.Kind != "ValidatingAdmissionPolicy" {
				continue
			}
			matches := false
			if mc := policy.Spec.MatchConstraints; mc != nil {
				for _, rule := range mc.ResourceRules {
					matches = matches || contains(rule.Resources, resource)
				}
			}
			if !matches {
				continue
			}
			for _, v := range policy.Spec.Validations {
				out = append(out, v.Message)
			}
		}
	}
	return out
}
