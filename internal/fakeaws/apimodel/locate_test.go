package apimodel

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPick: a botocore older than MinBotocore is passed over (its models refuse requests
// AWS takes), the first new enough is used, and with none the error names each found.
func TestPick(t *testing.T) {
	pkg := func(version string) string {
		dir := t.TempDir()
		line := "__version__ = '" + version + "'\n"
		if version == "" {
			line = ""
		}
		if err := os.WriteFile(filepath.Join(dir, "__init__.py"), []byte("import os\n"+line), 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	old, debian13, pip, none := pkg("1.29.27"), pkg(MinBotocore()), pkg("1.43.11"), pkg("")
	absent := filepath.Join(t.TempDir(), "botocore")
	for _, tc := range []struct {
		name string
		pkgs []string
		want string // the package whose data is used; "" for an error
		says []string
	}{
		{"Debian 12's passed over for the unpacked one", []string{old, debian13}, debian13, nil},
		{"pip's first when new enough", []string{pip, debian13}, pip, nil},
		{"only an old one", []string{old}, "", []string{"1.29.27", MinBotocore(), "make deps"}},
		{"no version in the package", []string{none}, "", []string{"no __version__"}},
		{"a package that is not there", []string{absent}, "", []string{"no such file", "make deps"}},
		{"nothing found", nil, "", []string{"make deps"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := pick(tc.pkgs)
			if tc.want != "" {
				if err != nil || got != filepath.Join(tc.want, "data") {
					t.Errorf("got %q, %v, want %q", got, err, filepath.Join(tc.want, "data"))
				}
				return
			}
			if err == nil {
				t.Fatalf("got %q, want an error", got)
			}
			for _, s := range tc.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("got %q, want it to say %q", err, s)
				}
			}
		})
	}
}

func TestAtLeast(t *testing.T) {
	for _, tc := range []struct {
		v, min string
		want   bool
	}{
		{"1.37.9", "1.37.9", true},
		{"1.43.11", "1.37.9", true},
		{"1.37.10", "1.37.9", true},
		{"1.37.8", "1.37.9", false},
		{"1.29.27", "1.37.9", false},
		{"2.0", "1.37.9", true},
		{"1.37", "1.37.9", false},
	} {
		if got := AtLeast(tc.v, tc.min); got != tc.want {
			t.Errorf("AtLeast(%s, %s): got %v, want %v", tc.v, tc.min, got, tc.want)
		}
	}
}
