package fleet

import "testing"

func TestParseReport(t *testing.T) {
	for _, tc := range []struct {
		name, stdout, result string // result "" wants no report
	}{
		{"after the download lines", "downloading storecrypt-agent (arm64)\nsha256 ok\n{\n  \"command\": \"apply\",\n  \"result\": \"ok\"\n}\n", "ok"},
		{"alone", "{\n  \"command\": \"unlock\",\n  \"result\": \"key-unavailable\"\n}", "key-unavailable"},
		{"nothing", "", ""},
		{"no json", "no json here", ""},
		{"json that is not a report", "{\n  \"unrelated\": 1\n}\n", ""},
		{"cut short", "{\n broken", ""},
	} {
		r := ParseReport(tc.stdout)
		switch {
		case tc.result == "" && r != nil:
			t.Errorf("%s: got %+v, want none", tc.name, r)
		case tc.result != "" && (r == nil || r.Result != tc.result):
			t.Errorf("%s: got %+v, want result %q", tc.name, r, tc.result)
		}
	}
}
