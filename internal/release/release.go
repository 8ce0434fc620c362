// Package release is storecrypt's release bundle: one tarball with the published template,
// the code objects the template reads from its code bucket, the CLI for the platforms a
// user runs `storecrypt stage` on, and a SHA256SUMS over all of it, so that staging and
// deploying need neither Go nor Node. Pack writes it byte for byte the same from the same
// files; Open reads it back (or its extracted directory) and refuses it unless every
// file is listed in SHA256SUMS with the digest it has.
package release

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// The bundle's layout, below its one top directory storecrypt-<version>/.
const (
	// Sums is sha256sum's output over every other file: `sha256sum -c SHA256SUMS` in the
	// top directory checks them.
	Sums = "SHA256SUMS"
	// CodeDir holds the objects to upload to each region's code bucket under CodePrefix,
	// at their path below it.
	CodeDir = "code/"
	// BinDir holds the CLI, storecrypt-<goos>-<goarch>.
	BinDir = "bin/"
)

// Name is the tarball's file name, and its top directory without .tar.gz.
func Name(version string) string { return "storecrypt-" + version + ".tar.gz" }

// File is one file of a release: its path below the top directory, and its bytes.
type File struct {
	Path string
	Data []byte
	// Exec marks the CLI's binaries (mode 0755; everything else is 0644).
	Exec bool
}

// SHA256 is the file's digest in hex.
func (f File) SHA256() string {
	s := sha256.Sum256(f.Data)
	return hex.EncodeToString(s[:])
}

// epoch is every entry's time: the bundle's bytes depend on its files alone.
var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Pack writes the tarball of files under storecrypt-<version>/, with SHA256SUMS added:
// entries sorted by path, owner root, fixed times and modes, a gzip header with no name
// or time, so the same files always give the same bytes.
func Pack(w io.Writer, version string, files []File) error {
	files = append([]File(nil), files...)
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	var sums bytes.Buffer
	for _, f := range files {
		if f.Path == Sums || !fs.ValidPath(f.Path) {
			return fmt.Errorf("packing %q: not a file path a release may hold", f.Path)
		}
		fmt.Fprintf(&sums, "%s  %s\n", f.SHA256(), f.Path)
	}
	files = append(files, File{Path: Sums, Data: sums.Bytes()})
	gz, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(gz)
	top := strings.TrimSuffix(Name(version), ".tar.gz") + "/"
	dirs := map[string]bool{}
	for _, f := range files {
		// Directories first, as tar lists them, so that any tar extracts with sane modes.
		for d := path.Dir(f.Path); d != "."; d = path.Dir(d) {
			if dirs[d] {
				break
			}
			dirs[d] = true
		}
	}
	names := []string{""}
	for d := range dirs {
		names = append(names, d+"/")
	}
	sort.Strings(names)
	for _, d := range names {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: top + d, Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return fmt.Errorf("packing %s: %w", d, err)
		}
	}
	for _, f := range files {
		mode := int64(0o644)
		if f.Exec {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: top + f.Path, Mode: mode, Size: int64(len(f.Data)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return fmt.Errorf("packing %s: %w", f.Path, err)
		}
		if _, err := tw.Write(f.Data); err != nil {
			return fmt.Errorf("packing %s: %w", f.Path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// Release is a bundle whose every file matched SHA256SUMS.
type Release struct {
	Files []File // sorted by path, SHA256SUMS left out
}

// Code are the objects to stage, with their paths below CodeDir (the object keys below
// CodePrefix).
func (r Release) Code() []File {
	var out []File
	for _, f := range r.Files {
		if key, ok := strings.CutPrefix(f.Path, CodeDir); ok {
			out = append(out, File{Path: key, Data: f.Data})
		}
	}
	return out
}

// MismatchError is a release whose files and SHA256SUMS disagree.
type MismatchError struct{ Problems []string }

func (e *MismatchError) Error() string {
	return "the release does not match its " + Sums + ": " + strings.Join(e.Problems, "; ")
}

// Open reads a release, the tarball or the directory it extracts to, and checks every
// file against SHA256SUMS before anything is returned: a file changed, missing or not
// listed is a *MismatchError.
func Open(p string) (Release, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return Release{}, fmt.Errorf("opening the release: %w", err)
	}
	var files map[string]File
	if fi.IsDir() {
		var list []File
		list, err = ReadDir(p, "")
		files = map[string]File{}
		for _, f := range list {
			files[f.Path] = f
		}
	} else {
		files, err = readTarball(p)
	}
	if err != nil {
		return Release{}, fmt.Errorf("reading the release %s: %w", p, err)
	}
	return verify(files)
}

// DigestError is a release tarball whose SHA-256 is not the one pinned.
type DigestError struct{ Path, Got, Want string }

func (e *DigestError) Error() string {
	return fmt.Sprintf("the release %s has SHA-256 %s, want %s (the digest pinned for it)", e.Path, e.Got, e.Want)
}

// OpenPinned reads the tarball at p, as Open does, once its SHA-256 is sha256 (hex): a
// *DigestError otherwise. The pin is what makes the release the publisher's:
// SHA256SUMS inside proves only that the files agree with one another, and whoever
// could swap the tarball could swap both. The bytes checked are the bytes read: the
// file is read once.
func OpenPinned(p, sha256 string) (Release, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return Release{}, fmt.Errorf("opening the release: %w", err)
	}
	if got := (File{Data: data}).SHA256(); got != strings.ToLower(sha256) {
		return Release{}, &DigestError{Path: p, Got: got, Want: sha256}
	}
	files, err := readTar(bytes.NewReader(data))
	if err != nil {
		return Release{}, fmt.Errorf("reading the release %s: %w", p, err)
	}
	return verify(files)
}

func verify(files map[string]File) (Release, error) {
	sums, ok := files[Sums]
	if !ok {
		return Release{}, &MismatchError{[]string{"no " + Sums}}
	}
	delete(files, Sums)
	listed := map[string]bool{}
	var problems []string
	sc := bufio.NewScanner(bytes.NewReader(sums.Data))
	for sc.Scan() {
		// sha256sum's line: the digest, a space, a space (text) or * (binary), the path.
		sum, name, ok := strings.Cut(sc.Text(), " ")
		name = strings.TrimLeft(name, " *")
		if !ok || len(sum) != 64 {
			problems = append(problems, fmt.Sprintf("line %q is not sha256sum's", sc.Text()))
			continue
		}
		listed[name] = true
		f, ok := files[name]
		switch {
		case !ok:
			problems = append(problems, name+" is missing")
		case f.SHA256() != sum:
			problems = append(problems, fmt.Sprintf("%s has SHA-256 %s, want %s", name, f.SHA256(), sum))
		}
	}
	var r Release
	for name, f := range files {
		if !listed[name] {
			problems = append(problems, name+" is not listed")
		}
		r.Files = append(r.Files, f)
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return Release{}, &MismatchError{problems}
	}
	sort.Slice(r.Files, func(i, j int) bool { return r.Files[i].Path < r.Files[j].Path })
	return r, nil
}

func readTarball(p string) (map[string]File, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readTar(f)
}

// readTar reads a gzipped tarball's regular files, each at its path below the top directory.
func readTar(r io.Reader) (map[string]File, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, err
	}
	files := map[string]File{}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return nil, err
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		// Below the one top directory, whatever the version in its name.
		_, name, ok := strings.Cut(h.Name, "/")
		if !ok || !fs.ValidPath(name) {
			return nil, fmt.Errorf("entry %q is not below the release's top directory", h.Name)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", h.Name, err)
		}
		files[name] = File{Path: name, Data: data, Exec: h.Mode&0o111 != 0}
	}
}

// ReadDir reads every file under dir, each at its path below dir with under before it.
func ReadDir(dir, under string) ([]File, error) {
	var files []File
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		files = append(files, File{Path: under + filepath.ToSlash(rel), Data: data, Exec: info.Mode()&0o111 != 0})
		return nil
	})
	return files, err
}

// Write packs dist's template and code objects (what make publish wrote) and the CLI
// binaries bins into out/storecrypt-<version>.tar.gz, and returns its path.
func Write(dist, out, version string, bins []string) (string, error) {
	files, err := ReadDir(dist, CodeDir)
	if err != nil {
		return "", fmt.Errorf("reading %s (run make publish): %w", dist, err)
	}
	if len(files) == 0 {
		return "", fmt.Errorf("%s is empty: run make publish", dist)
	}
	for _, b := range bins {
		data, err := os.ReadFile(b)
		if err != nil {
			return "", err
		}
		files = append(files, File{Path: BinDir + filepath.Base(b), Data: data, Exec: true})
	}
	var buf bytes.Buffer
	if err := Pack(&buf, version, files); err != nil {
		return "", err
	}
	path := filepath.Join(out, Name(version))
	return path, os.WriteFile(path, buf.Bytes(), 0o644)
}
