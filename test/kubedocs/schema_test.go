package kubedocs

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// schema is the part of OpenAPI v3 (a CRD's structural schema) and JSON Schema (eksctl's)
// that the checked documents meet.
type schema struct {
	Type                 string             `json:"type"`
	Properties           map[string]*schema `json:"properties"`
	AdditionalProperties *additional        `json:"additionalProperties"`
	Items                *schema            `json:"items"`
	Enum                 []any              `json:"enum"`
	Required             []string           `json:"required"`
	Pattern              string             `json:"pattern"`
	AnyOf                []*schema          `json:"anyOf"`
	Ref                  string             `json:"$ref"`
	PreserveUnknown      bool               `json:"x-kubernetes-preserve-unknown-fields"`
	IntOrString          bool               `json:"x-kubernetes-int-or-string"`
}

// additional is additionalProperties: false, true, or the schema of every other key.
type additional struct {
	allowed bool
	schema  *schema
}

func (a *additional) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &a.allowed); err == nil {
		return nil
	}
	a.allowed = true
	return json.Unmarshal(b, &a.schema)
}

// validator checks documents against one root schema; definitions resolve eksctl's $refs.
type validator struct {
	root        *schema
	definitions map[string]*schema
}

// crdValidator reads a CRD and returns the validator for the document kind and the
// apiVersion (group/version) it serves.
func crdValidator(path string) (apiVersion, kind string, v *validator, err error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", "", nil, fmt.Errorf("reading the CRD: %w", err)
	}
	var crd struct {
		Spec struct {
			Group string
			Names struct{ Kind string }
			// Served versions; the docs use the storage one.
			Versions []struct {
				Name    string
				Storage bool
				Schema  struct {
					OpenAPIV3Schema any `yaml:"openAPIV3Schema"`
				}
			}
		}
	}
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		return "", "", nil, fmt.Errorf("decoding the CRD %s: %w", path, err)
	}
	for _, ver := range crd.Spec.Versions {
		if !ver.Storage {
			continue
		}
		var s schema
		if err := viaJSON(ver.Schema.OpenAPIV3Schema, &s); err != nil {
			return "", "", nil, fmt.Errorf("reading the schema of %s: %w", path, err)
		}
		return crd.Spec.Group + "/" + ver.Name, crd.Spec.Names.Kind, &validator{root: &s}, nil
	}
	return "", "", nil, fmt.Errorf("the CRD %s has no storage version", path)
}

// jsonSchemaValidator reads a JSON Schema whose root is a $ref into its definitions.
func jsonSchemaValidator(path string) (*validator, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the schema: %w", err)
	}
	var doc struct {
		Ref         string             `json:"$ref"`
		Definitions map[string]*schema `json:"definitions"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("decoding the schema %s: %w", path, err)
	}
	return &validator{root: &schema{Ref: doc.Ref}, definitions: doc.Definitions}, nil
}

// viaJSON turns a decoded YAML value into a typed one through its JSON form.
func viaJSON(in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// Validate returns every place where doc breaks the schema, strictly: a field the schema
// does not name is an error, as kubectl --validate=strict makes it, though the API server
// would prune it and nodeadm would drop it.
func (v *validator) Validate(doc any) []error {
	var errs []error
	v.walk("", doc, v.root, &errs)
	return errs
}

func (v *validator) walk(path string, val any, s *schema, errs *[]error) {
	if s.Ref != "" {
		def, ok := v.definitions[strings.TrimPrefix(s.Ref, "#/definitions/")]
		if !ok {
			*errs = append(*errs, fmt.Errorf("%s: got a $ref %s the schema does not define", at(path), s.Ref))
			return
		}
		s = def
	}
	// A preserved field is a free document (nodeadm's kubelet config is a RawExtension per
	// key, whatever JSON it holds, though controller-gen writes "type: object" for it).
	if s.PreserveUnknown {
		return
	}
	if len(s.AnyOf) > 0 && !s.IntOrString {
		for _, alt := range s.AnyOf {
			var altErrs []error
			v.walk(path, val, alt, &altErrs)
			if len(altErrs) == 0 {
				return
			}
		}
		*errs = append(*errs, fmt.Errorf("%s: got %v, want a value matching one of %d alternatives", at(path), val, len(s.AnyOf)))
		return
	}
	if len(s.Enum) > 0 && !slices.ContainsFunc(s.Enum, func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(val) }) {
		*errs = append(*errs, fmt.Errorf("%s: got %v, want one of %v", at(path), val, s.Enum))
	}
	switch {
	case s.IntOrString:
		if !isInt(val) && !isString(val) {
			*errs = append(*errs, fmt.Errorf("%s: got %T, want an integer or a string", at(path), val))
			return
		}
	case s.Type == "object" || (s.Type == "" && s.Properties != nil):
		v.object(path, val, s, errs)
		return
	case s.Type == "array":
		list, ok := val.([]any)
		if !ok {
			*errs = append(*errs, fmt.Errorf("%s: got %T, want an array", at(path), val))
			return
		}
		if s.Items != nil {
			for i, item := range list {
				v.walk(fmt.Sprintf("%s[%d]", path, i), item, s.Items, errs)
			}
		}
		return
	case s.Type == "string" && !isString(val),
		s.Type == "integer" && !isInt(val),
		s.Type == "number" && !isInt(val) && !isFloat(val),
		s.Type == "boolean" && !isBool(val):
		*errs = append(*errs, fmt.Errorf("%s: got %T %v, want a %s", at(path), val, val, s.Type))
		return
	}
	if str, ok := val.(string); ok && s.Pattern != "" {
		// Go's regexp lacks some ECMA constructs; a pattern it cannot read is not checked.
		if re, err := regexp.Compile(s.Pattern); err == nil && !re.MatchString(str) {
			*errs = append(*errs, fmt.Errorf("%s: got %q, want a match of %s", at(path), str, s.Pattern))
		}
	}
}

func (v *validator) object(path string, val any, s *schema, errs *[]error) {
	obj, ok := val.(map[string]any)
	if !ok {
		*errs = append(*errs, fmt.Errorf("%s: got %T, want an object", at(path), val))
		return
	}
	for _, key := range s.Required {
		if _, ok := obj[key]; !ok {
			*errs = append(*errs, fmt.Errorf("%s: got no %q, want it (required)", at(path), key))
		}
	}
	// An object schema that names no field (a CRD's metadata) is the API server's to check.
	open := s.Properties == nil && s.AdditionalProperties == nil
	for _, key := range sortedKeys(obj) {
		sub := path + "." + key
		switch prop, named := s.Properties[key]; {
		case named:
			v.walk(sub, obj[key], prop, errs)
		case s.AdditionalProperties != nil && s.AdditionalProperties.schema != nil:
			v.walk(sub, obj[key], s.AdditionalProperties.schema, errs)
		case open || (s.AdditionalProperties != nil && s.AdditionalProperties.allowed):
		default:
			*errs = append(*errs, fmt.Errorf("%s: got unknown field %q, want one of %s", at(path), key, strings.Join(sortedKeys(s.Properties), ", ")))
		}
	}
}

func at(path string) string {
	if path == "" {
		return "the document"
	}
	return strings.TrimPrefix(path, ".")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func isString(v any) bool { _, ok := v.(string); return ok }
func isBool(v any) bool   { _, ok := v.(bool); return ok }
func isFloat(v any) bool  { _, ok := v.(float64); return ok }
func isInt(v any) bool {
	switch v.(type) {
	case int, int64, uint64:
		return true
	}
	return false
}
