package docs_test

// YAML example rule.
//
// Every ```yaml block in README.md and docs/*.md is split into documents,
// and every document must parse. A block may opt out with the HTML comment
// <!-- not-a-manifest --> as the last non-blank line before its fence: use it
// for fragments that are not meant to be applied.
//
// A document whose apiVersion is in millis.callops.dev is checked as the
// API server would check it on create:
//   - the kind and version exist (config/crd/bases);
//   - no field is unknown to the CRD schema (structural pruning), and the
//     document decodes strictly into the Go type of api/v1alpha1;
//   - the OpenAPI validation of the schema holds: types, required fields,
//     enums, patterns, formats, lengths, item and property counts, bounds;
//   - the CEL rules hold (see cel_test.go; transition rules aside);
//   - metadata.name is a DNS subdomain and metadata.namespace a DNS label.
//
// A CallCampaign is also checked as its controller parses it before it
// dials: time zones, calling windows and retryOn; and the recipient and
// do-not-call ConfigMaps it names, when the same page defines them, must
// parse without a single problem row.
//
// ConfigMaps, Secrets and Namespaces decode strictly into their core/v1
// types. In docs/getting-started.md and docs/campaign-cookbook.md every
// document must be a whole object (apiVersion and kind): those pages are
// meant to be applied as written.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiextensions "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/kube-openapi/pkg/validation/strfmt"
	"k8s.io/kube-openapi/pkg/validation/validate"
	"sigs.k8s.io/yaml"

	millisv1alpha1 "github.com/callops/millis-operator/api/v1alpha1"
	"github.com/callops/millis-operator/controllers"
	"github.com/callops/millis-operator/internal/campaign"
)

const group = "millis.callops.dev"

// wholeObjectPages must hold whole objects only.
var wholeObjectPages = map[string]bool{
	filepath.Join("docs", "getting-started.md"):   true,
	filepath.Join("docs", "campaign-cookbook.md"): true,
}

// manifest is one YAML document of a docs page.
type manifest struct {
	where string // page:line of the block
	block int    // index of the block in its page
	raw   []byte
	obj   map[string]any
}

func (m manifest) kind() string       { s, _ := m.obj["kind"].(string); return s }
func (m manifest) apiVersion() string { s, _ := m.obj["apiVersion"].(string); return s }
func (m manifest) name() string {
	md, _ := m.obj["metadata"].(map[string]any)
	s, _ := md["name"].(string)
	return s
}

// pageManifests returns the documents of a page's yaml blocks, and the
// number of blocks that opted out.
func pageManifests(t *testing.T, root, page string) ([]manifest, int) {
	t.Helper()
	md := parseMarkdown(page, readFile(t, filepath.Join(root, page)))
	var out []manifest
	optedOut := 0
	for bi, b := range md.blocks {
		if b.lang != "yaml" && b.lang != "yml" {
			continue
		}
		if b.optOut {
			optedOut++
			continue
		}
		where := fmt.Sprintf("%s:%d", page, b.line)
		r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(b.body)))
		for i := 1; ; i++ {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Errorf("%s: document %d: %v", where, i, err)
				break
			}
			j, err := yaml.YAMLToJSON(doc)
			if err != nil {
				t.Errorf("%s: document %d is not YAML: %v", where, i, err)
				continue
			}
			if bytes.Equal(bytes.TrimSpace(j), []byte("null")) {
				continue
			}
			var obj map[string]any
			if err := utiljson.Unmarshal(j, &obj); err != nil {
				// A scalar or a list: a fragment, not an object.
				obj = nil
			}
			out = append(out, manifest{where: fmt.Sprintf("%s document %d", where, i), block: bi, raw: doc, obj: obj})
		}
	}
	return out, optedOut
}

func TestYAMLExamples(t *testing.T) {
	root := repoRoot(t)
	v := newValidator(t, root)
	checked := 0
	for _, page := range markdownFiles(t, root) {
		docs, _ := pageManifests(t, root, page)
		// ConfigMaps by name: of the page, and of each block. A campaign
		// uses its own block's first, as a reader applying that block would.
		configMaps := map[string]*corev1.ConfigMap{}
		blockMaps := map[int]map[string]*corev1.ConfigMap{}
		for _, m := range docs {
			if m.obj == nil || m.kind() == "" || m.apiVersion() == "" {
				if wholeObjectPages[page] {
					t.Errorf("%s: not a whole object (apiVersion and kind); mark the block %s if it is a fragment", m.where, notAManifest)
				}
				continue
			}
			gv := strings.SplitN(m.apiVersion(), "/", 2)
			switch {
			case len(gv) == 2 && gv[0] == group:
				for _, err := range v.validate(m) {
					t.Errorf("%s: %s %q: %v", m.where, m.kind(), m.name(), err)
				}
				checked++
			case m.apiVersion() == "v1":
				cm, errs := decodeCore(m)
				for _, err := range errs {
					t.Errorf("%s: %s %q: %v", m.where, m.kind(), m.name(), err)
				}
				if cm != nil {
					configMaps[cm.Name] = cm
					if blockMaps[m.block] == nil {
						blockMaps[m.block] = map[string]*corev1.ConfigMap{}
					}
					blockMaps[m.block][cm.Name] = cm
				}
			}
		}
		for _, m := range docs {
			if m.kind() == "CallCampaign" && strings.HasPrefix(m.apiVersion(), group+"/") {
				visible := map[string]*corev1.ConfigMap{}
				for name, cm := range configMaps {
					visible[name] = cm
				}
				for name, cm := range blockMaps[m.block] {
					visible[name] = cm
				}
				for _, err := range checkCampaignSources(m, visible) {
					t.Errorf("%s: CallCampaign %q: %v", m.where, m.name(), err)
				}
			}
		}
	}
	if checked == 0 {
		t.Error("no millis.callops.dev objects found in the docs; the extraction is broken")
	}
}

// TestValidatorRejects proves that each check can fail: every case is a
// valid object with one mistake.
func TestValidatorRejects(t *testing.T) {
	root := repoRoot(t)
	v := newValidator(t, root)
	const call = `apiVersion: millis.callops.dev/v1alpha1
kind: OutboundCall
metadata: {name: ok, namespace: sales}
spec:
  agentID: agent-1
  fromPhone: "+15550100001"
  toPhone: "+15550100002"
`
	const camp = `apiVersion: millis.callops.dev/v1alpha1
kind: CallCampaign
metadata: {name: ok, namespace: sales}
spec:
  agentRef: {name: support}
  fromPhone: "+15550100001"
  recipients: [{phone: "+15550100002"}]
  schedule:
    timeZone: Europe/Berlin
    callingWindows: [{days: [Mon], start: "09:00", end: "17:00"}]
`
	if errs := v.validate(mustManifest(t, call)); len(errs) > 0 {
		t.Fatalf("the valid OutboundCall fails: %v", errs)
	}
	if errs := v.validate(mustManifest(t, camp)); len(errs) > 0 {
		t.Fatalf("the valid CallCampaign fails: %v", errs)
	}
	if errs := checkCampaignSources(mustManifest(t, camp), nil); len(errs) > 0 {
		t.Fatalf("the valid CallCampaign fails the controller's checks: %v", errs)
	}
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"unknown field", strings.Replace(call, "toPhone:", "tophone: \"+15550100003\"\n  toPhone:", 1), "tophone"},
		{"unknown kind", strings.Replace(call, "kind: OutboundCall", "kind: OutboundCalls", 1), "no CRD"},
		{"wrong version", strings.Replace(call, "v1alpha1", "v1", 1), "version"},
		{"missing required", strings.Replace(call, "  fromPhone: \"+15550100001\"\n", "", 1), "fromPhone"},
		{"wrong type", strings.Replace(call, "agentID: agent-1", "agentID: 7", 1), "agentID"},
		{"CEL matches", strings.Replace(call, `"+15550100002"`, `"555-0100"`, 1), "E.164"},
		{"CEL exactly one", strings.Replace(call, "agentID: agent-1", "agentID: agent-1\n  agentRef: {name: a}", 1), "exactly one"},
		{"enum", strings.Replace(camp, "[Mon]", "[Monday]", 1), "days"},
		{"pattern", strings.Replace(camp, `"09:00"`, `"9:00"`, 1), "start"},
		{"CEL window order", strings.Replace(camp, `"17:00"`, `"08:00"`, 1), "end must be after start"},
		{"bad name", strings.Replace(call, "name: ok", "name: Not_OK", 1), "metadata.name"},
		{"bounds", strings.Replace(camp, "recipients:", "maxConcurrency: 0\n  recipients:", 1), "maxConcurrency"},
		{"format", strings.Replace(camp, "schedule:", "schedule:\n    startTime: tomorrow", 1), "startTime"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := v.validate(mustManifest(t, tc.doc))
			if !anyContains(errs, tc.want) {
				t.Errorf("got %v, want an error naming %q", errs, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"time zone", strings.Replace(camp, "Europe/Berlin", "Europe/Atlantis", 1), "time zone"},
		{"retryOn", strings.Replace(camp, "schedule:", "retry: {retryOn: [busy, no_answer]}\n  schedule:", 1), "retryOn"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := checkCampaignSources(mustManifest(t, tc.doc), nil)
			if !anyContains(errs, tc.want) {
				t.Errorf("got %v, want an error naming %q", errs, tc.want)
			}
		})
	}
	t.Run("bad CSV row", func(t *testing.T) {
		doc := strings.Replace(camp, "recipients:", "recipientsFrom: [{configMapKeyRef: {name: list, key: r.csv}}]\n  recipients:", 1)
		cm := &corev1.ConfigMap{Data: map[string]string{"r.csv": "phone,name\n+15550100003,Ann\n5550100004,Bob\n"}}
		cm.Name = "list"
		errs := checkCampaignSources(mustManifest(t, doc), map[string]*corev1.ConfigMap{"list": cm})
		if !anyContains(errs, "line 3") {
			t.Errorf("got %v, want the bad row (line 3) reported", errs)
		}
	})
}

func mustManifest(t *testing.T, doc string) manifest {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := utiljson.Unmarshal(j, &obj); err != nil {
		t.Fatal(err)
	}
	return manifest{where: t.Name(), raw: []byte(doc), obj: obj}
}

func anyContains(errs []error, s string) bool {
	for _, e := range errs {
		if strings.Contains(e.Error(), s) {
			return true
		}
	}
	return false
}

// validator checks objects of our group against the CRDs.
type validator struct {
	kinds map[string]*crdSchema
}

type crdSchema struct {
	version    string
	structural *structuralschema.Structural
	openapi    *validate.SchemaValidator
	v1         *apiextensionsv1.JSONSchemaProps
}

func newValidator(t *testing.T, root string) *validator {
	t.Helper()
	v := &validator{kinds: map[string]*crdSchema{}}
	for kind, crd := range crds(t, root) {
		v1 := rootSchema(crd)
		var internal apiextensions.JSONSchemaProps
		if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v1, &internal, nil); err != nil {
			t.Fatalf("%s: convert schema: %v", kind, err)
		}
		s, err := structuralschema.NewStructural(&internal)
		if err != nil {
			t.Fatalf("%s: structural schema: %v", kind, err)
		}
		v.kinds[kind] = &crdSchema{
			version:    crd.Spec.Versions[0].Name,
			structural: s,
			openapi:    validate.NewSchemaValidator(s.ToKubeOpenAPI(), nil, "", strfmt.Default),
			v1:         v1,
		}
	}
	return v
}

func (v *validator) validate(m manifest) []error {
	var errs []error
	c, ok := v.kinds[m.kind()]
	if !ok {
		return []error{fmt.Errorf("no CRD of kind %q in group %s", m.kind(), group)}
	}
	if want := group + "/" + c.version; m.apiVersion() != want {
		errs = append(errs, fmt.Errorf("apiVersion %s: the CRD serves version %s only", m.apiVersion(), want))
	}

	// Unknown fields, as the API server finds them by pruning.
	copied := deepCopyJSON(m.obj)
	unknown := pruning.PruneWithOptions(copied, c.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
	sort.Strings(unknown)
	for _, p := range unknown {
		errs = append(errs, fmt.Errorf("unknown field %q", p))
	}
	if len(unknown) == 0 {
		if err := strictDecode(m); err != nil {
			errs = append(errs, err)
		}
	}

	if res := c.openapi.Validate(m.obj); res != nil {
		for _, e := range res.Errors {
			errs = append(errs, e)
		}
	}
	errs = append(errs, celCheck("", m.obj, c.v1)...)

	md, _ := m.obj["metadata"].(map[string]any)
	name, _ := md["name"].(string)
	for _, msg := range validation.IsDNS1123Subdomain(name) {
		errs = append(errs, fmt.Errorf("metadata.name %q: %s", name, msg))
	}
	if ns, ok := md["namespace"].(string); ok {
		for _, msg := range validation.IsDNS1123Label(ns) {
			errs = append(errs, fmt.Errorf("metadata.namespace %q: %s", ns, msg))
		}
	}
	return errs
}

// strictDecode decodes into the Go type: a field the schema allows but the
// type does not know would be lost by the operator.
func strictDecode(m manifest) error {
	var obj any
	switch m.kind() {
	case "MillisAccount":
		obj = &millisv1alpha1.MillisAccount{}
	case "Agent":
		obj = &millisv1alpha1.Agent{}
	case "OutboundCall":
		obj = &millisv1alpha1.OutboundCall{}
	case "CallCampaign":
		obj = &millisv1alpha1.CallCampaign{}
	default:
		return fmt.Errorf("no Go type for kind %s", m.kind())
	}
	if err := yaml.UnmarshalStrict(m.raw, obj); err != nil {
		return fmt.Errorf("strict decode into the Go type: %w", err)
	}
	return nil
}

// celCheck evaluates the CEL rules of s against value, recursively.
func celCheck(path string, value any, s *apiextensionsv1.JSONSchemaProps) []error {
	if value == nil || s == nil {
		return nil
	}
	var errs []error
	for _, rule := range s.XValidations {
		if strings.Contains(rule.Rule, "oldSelf") {
			continue // a transition rule: updates only
		}
		ok, err := celEval(rule.Rule, value)
		where := path
		if where == "" {
			where = "<root>"
		}
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: cannot evaluate CEL rule %q: %v", where, rule.Rule, err))
		case !ok:
			errs = append(errs, fmt.Errorf("%s: %s (CEL rule %q)", where, rule.Message, rule.Rule))
		}
	}
	switch x := value.(type) {
	case map[string]any:
		for k, child := range x {
			if cs, ok := s.Properties[k]; ok {
				errs = append(errs, celCheck(join(path, k), child, &cs)...)
			}
		}
	case []any:
		if s.Items != nil && s.Items.Schema != nil {
			for i, child := range x {
				errs = append(errs, celCheck(fmt.Sprintf("%s[%d]", path, i), child, s.Items.Schema)...)
			}
		}
	}
	return errs
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func deepCopyJSON(obj map[string]any) map[string]any {
	b, _ := utiljson.Marshal(obj)
	var out map[string]any
	_ = utiljson.Unmarshal(b, &out)
	return out
}

// decodeCore strictly decodes the core/v1 kinds docs show; it returns the
// ConfigMap, if the document is one.
func decodeCore(m manifest) (*corev1.ConfigMap, []error) {
	var obj any
	switch m.kind() {
	case "ConfigMap":
		obj = &corev1.ConfigMap{}
	case "Secret":
		obj = &corev1.Secret{}
	case "Namespace":
		obj = &corev1.Namespace{}
	default:
		return nil, nil
	}
	if err := yaml.UnmarshalStrict(m.raw, obj); err != nil {
		return nil, []error{fmt.Errorf("strict decode into core/v1 %s: %w", m.kind(), err)}
	}
	var errs []error
	name := m.name()
	for _, msg := range validation.IsDNS1123Subdomain(name) {
		errs = append(errs, fmt.Errorf("metadata.name %q: %s", name, msg))
	}
	cm, _ := obj.(*corev1.ConfigMap)
	return cm, errs
}

// checkCampaignSources applies the checks the campaign controller makes
// before it dials: its own spec validation, and the recipients checks of
// controllers/callcampaign_controller.go with the same internal/campaign
// functions.
func checkCampaignSources(m manifest, configMaps map[string]*corev1.ConfigMap) []error {
	var c millisv1alpha1.CallCampaign
	if err := yaml.Unmarshal(m.raw, &c); err != nil {
		return []error{err}
	}
	var errs []error
	if err := controllers.ValidateCampaignSpec(&c); err != nil {
		errs = append(errs, err)
	}
	for i, r := range c.Spec.Recipients {
		if r.TimeZone != "" && !campaign.ValidTimeZone(r.TimeZone) {
			errs = append(errs, fmt.Errorf("spec.recipients[%d].timeZone %q is not a known time zone", i, r.TimeZone))
		}
	}
	source := func(sel millisv1alpha1.ConfigMapKeySelector, dnc bool) {
		cm, ok := configMaps[sel.Name]
		if !ok {
			return // defined elsewhere: nothing to check here
		}
		data, ok := cm.Data[sel.Key]
		if !ok {
			errs = append(errs, fmt.Errorf("ConfigMap %s has no key %q", sel.Name, sel.Key))
			return
		}
		name := campaign.SourceConfigMap(sel.Name, sel.Key)
		var problems []campaign.Problem
		var err error
		if dnc {
			_, problems, err = campaign.ParseDoNotCall(name, strings.NewReader(data))
		} else {
			_, problems, err = campaign.ParseCSV(name, strings.NewReader(data))
		}
		if err != nil {
			errs = append(errs, err)
		}
		for _, p := range problems {
			errs = append(errs, fmt.Errorf("%s line %d: %s", p.Source, p.Row, p.Reason))
		}
	}
	for _, s := range c.Spec.RecipientsFrom {
		source(s.ConfigMapKeyRef, false)
	}
	for _, s := range c.Spec.DoNotCall {
		source(s.ConfigMapKeyRef, true)
	}
	return errs
}
