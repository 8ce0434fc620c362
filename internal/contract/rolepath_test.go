package contract_test

import (
	"strings"
	"testing"

	"github.com/storecrypt/storecrypt/internal/contract"
)

// instanceRolePaths: paths, and whether each may name instance roles.
var instanceRolePaths = []struct {
	path string
	ok   bool
}{
	{"/storecrypt/instances/", true},
	{"/teams/batch/", true},
	{"/a-b_c.d@e+f=g,h/", true},
	{"/" + strings.Repeat("a", 510) + "/", true},
	{"/" + strings.Repeat("a", 511) + "/", false}, // 513 characters: IAM's limit is 512
	{"/", false}, // every role of the account
	{"storecrypt/", false},
	{"/storecrypt", false},
	{"//", false},
	{"/a b/", false},
	{"/team*/", false},
	{"/team?/", false},
	{"/${aws:username}/", false},
	{"/storecrypt/", false},           // holds /storecrypt/functions/
	{"/storecrypt/functions/", false}, // the functions' roles
	{"/storecrypt/functions/x/", true},
}

func TestCheckInstanceRolePath(t *testing.T) {
	for _, tc := range instanceRolePaths {
		err := contract.CheckInstanceRolePath(tc.path)
		if (err == nil) != tc.ok {
			t.Errorf("CheckInstanceRolePath(%.40q): got %v, want ok %v", tc.path, err, tc.ok)
		}
	}
}
