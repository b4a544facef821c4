package docs_test

import (
	"path/filepath"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// crds reads config/crd/bases, by kind. Each CRD must serve exactly one
// version, the one the docs describe.
func crds(t *testing.T, root string) map[string]*apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "config", "crd", "bases", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no CRDs in config/crd/bases")
	}
	out := map[string]*apiextensionsv1.CustomResourceDefinition{}
	for _, f := range files {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict([]byte(readFile(t, f)), &crd); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(crd.Spec.Versions) != 1 || crd.Spec.Versions[0].Schema == nil || crd.Spec.Versions[0].Schema.OpenAPIV3Schema == nil {
			t.Fatalf("%s: want exactly one version with a schema", f)
		}
		out[crd.Spec.Names.Kind] = &crd
	}
	return out
}

func rootSchema(crd *apiextensionsv1.CustomResourceDefinition) *apiextensionsv1.JSONSchemaProps {
	return crd.Spec.Versions[0].Schema.OpenAPIV3Schema
}

// docPage is the page that documents a kind: docs/<kind in lower case>.md.
func docPage(kind string) string {
	return filepath.Join("docs", strings.ToLower(kind)+".md")
}

// field is one documented field of a kind.
type field struct {
	path   string
	schema *apiextensionsv1.JSONSchemaProps
}

// fields walks spec and status and returns every field path:
//
//   - paths are JSON names joined with dots from the object root:
//     spec.schedule.timeZone;
//   - the children of an array of objects follow the array's path and "[]":
//     spec.schedule.callingWindows[].days;
//   - the items of an array of scalars are not fields of their own
//     (spec.phoneNumbers is one field);
//   - an object without properties (free-form JSON such as spec.metadata) is
//     one field;
//   - status.conditions is one field: its items are Kubernetes's own
//     metav1.Condition, documented by kubectl explain.
func fields(crd *apiextensionsv1.CustomResourceDefinition) []field {
	var out []field
	var walk func(path string, s *apiextensionsv1.JSONSchemaProps)
	walk = func(path string, s *apiextensionsv1.JSONSchemaProps) {
		out = append(out, field{path: path, schema: s})
		if path == "status.conditions" {
			return
		}
		children := s.Properties
		prefix := path + "."
		if s.Type == "array" && s.Items != nil && s.Items.Schema != nil && len(s.Items.Schema.Properties) > 0 {
			children = s.Items.Schema.Properties
			prefix = path + "[]."
		}
		for name, child := range children {
			walk(prefix+name, &child)
		}
	}
	root := rootSchema(crd)
	for _, top := range []string{"spec", "status"} {
		s, ok := root.Properties[top]
		if !ok {
			continue
		}
		for name, child := range s.Properties {
			walk(top+"."+name, &child)
		}
	}
	return out
}

// enumOf returns the allowed values of a field, or of its items.
func enumOf(s *apiextensionsv1.JSONSchemaProps) []string {
	var raw []apiextensionsv1.JSON
	switch {
	case len(s.Enum) > 0:
		raw = s.Enum
	case s.Items != nil && s.Items.Schema != nil:
		raw = s.Items.Schema.Enum
	}
	out := make([]string, 0, len(raw))
	for _, v := range raw {
		out = append(out, strings.Trim(string(v.Raw), `"`))
	}
	return out
}
