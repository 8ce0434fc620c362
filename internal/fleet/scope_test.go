package fleet_test

import (
	"context"
	"errors"
	"testing"

	"github.com/storecrypt/storecrypt/internal/fleet"
)

// roles maps instance profiles to roles; an unknown profile is an error, as IAM's
// NoSuchEntity would be.
type roles map[string]string

func (r roles) Role(_ context.Context, profile string) (string, error) {
	role, ok := r[profile]
	if !ok {
		return "", errors.New("NoSuchEntity")
	}
	return role, nil
}

// TestIn: the roles the stack names, or its opt-in tag where it has one; nothing else
// (an opt-in tag where the stack has none, another value) puts an instance in scope, and
// each refusal says why.
func TestIn(t *testing.T) {
	const app, web = "arn:aws:iam::111122223333:role/app", "arn:aws:iam::111122223333:role/web"
	profiles := roles{"profile/app": app, "profile/web": web}
	byRole := fleet.Rule{Roles: []string{app}}
	withOptIn := fleet.Rule{Roles: []string{app}, OptInKey: "storecrypt:encrypt", OptInValue: "true"}
	optIn := map[string]string{"storecrypt:encrypt": "true"}
	for _, tc := range []struct {
		name    string
		rule    fleet.Rule
		tags    map[string]string
		profile string
		in      bool
		why     string
	}{
		{"a named role", byRole, nil, "profile/app", true, ""},
		{"another role", byRole, nil, "profile/web", false, "role " + web + " is not one of the stack's"},
		{"no profile", byRole, nil, "", false, "no instance profile"},
		{"the opt-in tag where the stack has none", byRole, optIn, "profile/web", false, "role " + web + " is not one of the stack's"},
		{"the opt-in tag", withOptIn, optIn, "profile/web", true, ""},
		{"the opt-in tag, no profile", withOptIn, optIn, "", true, ""},
		{"the opt-in key with another value", withOptIn, map[string]string{"storecrypt:encrypt": "yes"}, "profile/web", false,
			"role " + web + " is not one of the stack's, and no storecrypt:encrypt=true tag"},
		{"no roles, no tag", fleet.Rule{OptInKey: "k", OptInValue: "v"}, nil, "profile/app", false, "the stack names no roles, and no k=v tag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, why, err := tc.rule.In(context.Background(), profiles, tc.tags, tc.profile)
			if err != nil || in != tc.in || why != tc.why {
				t.Errorf("got %v %q %v, want %v %q", in, why, err, tc.in, tc.why)
			}
		})
	}
	if _, _, err := byRole.In(context.Background(), profiles, nil, "profile/gone"); err == nil {
		t.Error("got no error for a profile IAM does not know, want one")
	}
}
