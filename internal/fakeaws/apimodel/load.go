package apimodel

import (
	"compress/gzip"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/storecrypt/storecrypt/internal/modroot"
)

var (
	dataDir = sync.OnceValues(locate)
	models  sync.Map // dir -> func() (*Model, error)
)

// MinBotocore is the oldest botocore whose models know every request the tests send
// (S3's IfNoneMatch, EC2's newer instance types): an older model refuses valid requests,
// so it is no judge. It is Debian 13's python3-botocore, which make deps unpacks into
// .cache/botocore where python3 has none as new (scripts/install-deps.sh reads this file).
//
//go:embed botocore-min
var minBotocore string

// MinBotocore is the oldest botocore accepted.
func MinBotocore() string { return strings.TrimSpace(minBotocore) }

// cached is where make deps unpacks Debian's python3-botocore, under the module's root.
const cached = ".cache/botocore/usr/lib/python3/dist-packages/botocore"

// locate finds botocore's data directory: $STORECRYPT_BOTOCORE_DATA as given, else the
// first of python3's botocore and the one make deps unpacked that is at least
// MinBotocore.
func locate() (string, error) {
	if d := os.Getenv(EnvData); d != "" {
		return d, nil
	}
	return pick(candidates())
}

// pick is the data directory of the first botocore package at least MinBotocore.
func pick(pkgs []string) (string, error) {
	var tried []string
	for _, pkg := range pkgs {
		v, err := version(pkg)
		if err != nil {
			tried = append(tried, err.Error())
			continue
		}
		if !AtLeast(v, MinBotocore()) {
			tried = append(tried, fmt.Sprintf("%s is botocore %s", pkg, v))
			continue
		}
		return filepath.Join(pkg, "data"), nil
	}
	return "", fmt.Errorf("no botocore %s or later for AWS's API models (run make deps, or set %s): %s",
		MinBotocore(), EnvData, strings.Join(tried, "; "))
}

// candidates are the botocore package directories to try, python3's first.
func candidates() []string {
	var dirs []string
	if out, err := exec.Command("python3", "-c", "import botocore,os;print(os.path.dirname(botocore.__file__))").Output(); err == nil {
		dirs = append(dirs, strings.TrimSpace(string(out)))
	}
	if root, err := modroot.Dir(); err == nil {
		dirs = append(dirs, filepath.Join(root, cached))
	}
	return dirs
}

var versionLine = regexp.MustCompile(`(?m)^__version__ = ['"]([0-9.]+)['"]`)

// version reads botocore's version from its package, without running Python.
func version(pkg string) (string, error) {
	b, err := os.ReadFile(filepath.Join(pkg, "__init__.py"))
	if err != nil {
		return "", fmt.Errorf("botocore's version: %w", err)
	}
	m := versionLine.FindSubmatch(b)
	if m == nil {
		return "", fmt.Errorf("botocore's version: no __version__ in %s", pkg)
	}
	return string(m[1]), nil
}

// AtLeast reports whether the dotted release number v (botocore's, the SSM Agent's) is
// min or later; a missing part counts as 0.
func AtLeast(v, min string) bool {
	a, b := strings.Split(v, "."), strings.Split(min, ".")
	for i := range max(len(a), len(b)) {
		var x, y int
		if i < len(a) {
			x, _ = strconv.Atoi(a[i])
		}
		if i < len(b) {
			y, _ = strconv.Atoi(b[i])
		}
		if x != y {
			return x > y
		}
	}
	return true
}

// Load returns the model of the service the SDK calls serviceID, from the newest
// api-version botocore has.
func Load(serviceID string) (*Model, error) {
	dir, ok := Dirs[serviceID]
	if !ok {
		return nil, fmt.Errorf("no botocore model known for service %q: add it to apimodel.Dirs", serviceID)
	}
	return LoadDir(dir)
}

// LoadDir returns the model in botocore's directory dir (data/<dir>), the name the aws CLI
// gives the service, from the newest api-version botocore has.
func LoadDir(dir string) (*Model, error) {
	load, _ := models.LoadOrStore(dir, sync.OnceValues(func() (*Model, error) { return read(dir) }))
	return load.(func() (*Model, error))()
}

func read(dir string) (*Model, error) {
	data, err := dataDir()
	if err != nil {
		return nil, err
	}
	versions, err := os.ReadDir(filepath.Join(data, dir))
	if err != nil {
		return nil, fmt.Errorf("reading botocore's models of %s: %w", dir, err)
	}
	var newest string
	for _, v := range versions { // api-versions are dates, so the greatest name is the newest
		if v.IsDir() && v.Name() > newest {
			newest = v.Name()
		}
	}
	m := &Model{APIVersion: newest}
	path, err := decodeData(filepath.Join(data, dir, newest, "service-2.json"), m)
	if err != nil {
		return nil, err
	}
	m.File = path
	return m, nil
}

// Paginated says whether the aws CLI pages op: whether the paginators-1.json beside the
// model has it (a service without one pages nothing).
func (m *Model) Paginated(op string) (bool, error) {
	var p struct {
		Pagination map[string]json.RawMessage `json:"pagination"`
	}
	_, err := decodeData(filepath.Join(filepath.Dir(m.File), "paginators-1.json"), &p)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	_, ok := p.Pagination[op]
	return ok, nil
}

// decodeData decodes the JSON file of botocore's data at path, gzipped (path.gz, as
// Debian ships it) or not, into v and returns the path it read.
func decodeData(path string, v any) (string, error) {
	for _, p := range []string{path + ".gz", path} {
		f, err := os.Open(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			return "", fmt.Errorf("reading botocore's data: %w", err)
		}
		defer f.Close()
		var r io.Reader = f
		if strings.HasSuffix(p, ".gz") {
			if r, err = gzip.NewReader(f); err != nil {
				return "", fmt.Errorf("reading %s: %w", p, err)
			}
		}
		if err := json.NewDecoder(r).Decode(v); err != nil {
			return "", fmt.Errorf("decoding %s: %w", p, err)
		}
		return p, nil
	}
	return "", fmt.Errorf("no %s[.gz] in botocore's data: %w", path, os.ErrNotExist)
}
