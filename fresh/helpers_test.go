package fresh_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"mis/ext4"
	"mis/fresh"
	"mis/layer"
	"mis/manifest"
	"mis/repo"
	"mis/testkit/testrepo"
)

// importFixture imports fixture kind into a new repository and returns
// the repository, the image path and the manifest as stored (loaded back).
func importFixture(t *testing.T, kind string) (*repo.Repo, string, *manifest.Manifest) {
	t.Helper()
	src, r, _ := testrepo.Fixture(t, kind)
	_, stored, err := layer.Load(context.Background(), r, layer.Ref{Name: "img", Tag: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	return r, src, stored
}

func exportFresh(t *testing.T, r *repo.Repo, m *manifest.Manifest, opt fresh.Options) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "fresh.raw")
	var warnings []string
	opt.Warn = func(s string) { warnings = append(warnings, s) }
	var last, total int64
	opt.Progress = func(d, tot int64) {
		if d < last {
			t.Errorf("progress went back from %d to %d", last, d)
		}
		last, total = d, tot
	}
	if err := fresh.Export(context.Background(), r, m, out, opt); err != nil {
		t.Fatalf("fresh export: %v", err)
	}
	if last != total {
		t.Errorf("progress ended at %d of %d", last, total)
	}
	for _, w := range warnings {
		t.Logf("warning: %s", w)
	}
	return out
}

func sha(t *testing.T, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// sfdiskDump is sfdisk --dump with the image's file name taken out, so two
// images' tables compare as text.
func sfdiskDump(t *testing.T, img string) string {
	t.Helper()
	out := run(t, "sfdisk", "--dump", img)
	out = strings.ReplaceAll(out, img, "IMG")
	return out
}

// extract copies [off, off+n) of img to a new file (for tools without an
// offset option).
func extract(t *testing.T, img string, off, n int64) string {
	t.Helper()
	part := filepath.Join(t.TempDir(), "part.img")
	run(t, "dd", "if="+img, "of="+part, "bs=64K", "iflag=skip_bytes,count_bytes",
		fmt.Sprintf("skip=%d", off), fmt.Sprintf("count=%d", n), "conv=sparse", "status=none")
	return part
}

func readRange(t *testing.T, path string, off, n int64) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

// openExt opens the ext filesystem at [off, off+size) of img with our reader.
func openExt(t *testing.T, img string, off, size int64) *ext4.FS {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	fs, err := ext4.Open(io.NewSectionReader(f, off, size), size)
	if err != nil {
		t.Fatalf("open ext at %d of %s: %v", off, img, err)
	}
	return fs
}

// inodesByPath walks fs and returns every path's inode.
func inodesByPath(t *testing.T, fs *ext4.FS) map[string]*ext4.Inode {
	t.Helper()
	out := map[string]*ext4.Inode{}
	if err := fs.Walk(func(path []byte, ino uint32, in *ext4.Inode) error {
		out[string(bytes.Clone(path))] = in
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}
