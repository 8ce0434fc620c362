package cfn

import (
	"strings"
	"testing"
)

// TestCheckParameters: the values CloudFormation refuses when a stack is created.
func TestCheckParameters(t *testing.T) {
	tpl, err := Parse([]byte(`{"Parameters": {
		"Bucket": {"Type": "String", "AllowedPattern": "[a-z]+|x-[0-9]+", "MaxLength": 6},
		"Switch": {"Type": "String", "Default": "true", "AllowedValues": ["true", "false"]},
		"Free":   {"Type": "String", "Default": ""}}}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		values map[string]string
		want   string // "" accepted, else in the error
	}{
		{"the required one given", map[string]string{"Bucket": "abc"}, ""},
		{"another alternative of the pattern", map[string]string{"Bucket": "x-12", "Switch": "false", "Free": "anything"}, ""},
		{"the required one left out", map[string]string{"Switch": "true"}, "Bucket has no default"},
		{"a parameter the template does not declare", map[string]string{"Bucket": "abc", "Other": "1"}, "Other is not in the template"},
		{"the pattern matching a part only", map[string]string{"Bucket": "abc1"}, "does not match"},
		{"the pattern's second alternative matching a part only", map[string]string{"Bucket": "ax-1"}, "does not match"},
		{"longer than MaxLength", map[string]string{"Bucket": "abcdefg"}, "longer than 6"},
		{"not among AllowedValues", map[string]string{"Bucket": "abc", "Switch": "yes"}, "not one of"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tpl.CheckParameters(tc.values)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("got %v, want accepted", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want an error saying %q", err, tc.want)
			}
		})
	}
}
