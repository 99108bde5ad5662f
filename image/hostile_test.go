package image_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"mis/image"
	"mis/mountfs"
)

// TestHostileNamesStayUsable: an ext4 directory holding a name with "/",
// one with a NUL byte and the same name twice imports with one warning
// each, the stored version can be served (mountfs builds its tree, which
// refused such paths before) and the exact export is unaffected (directory
// blocks are residual data).
func TestHostileNamesStayUsable(t *testing.T) {
	if _, err := exec.LookPath("mke2fs"); err != nil {
		t.Skip("needs mke2fs")
	}
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	if err := os.MkdirAll(filepath.Join(src, "d", "HOSTILE_dir_x"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{
		"d/HOSTILE_a_b": "slash", "d/HOSTILE_n_l": "nul", "d/HOSTILE_dupA": "first", "d/HOSTILE_dupB": "second",
		"d/HOSTILE_dir_x/child": "child",
	} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(tmp, "fs.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 4<<20); err != nil {
		t.Fatal(err)
	}
	// Without metadata_csum the patched directory block needs no new checksum.
	if out, err := exec.Command("mke2fs", "-q", "-F", "-t", "ext4", "-b", "1024", "-O", "^metadata_csum", "-d", src, img).CombinedOutput(); err != nil {
		t.Fatalf("mke2fs: %v %s", err, out)
	}
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	for from, to := range map[string]string{
		"HOSTILE_a_b": "HOSTILE_a/b", "HOSTILE_n_l": "HOSTILE_n\x00l", "HOSTILE_dupB": "HOSTILE_dupA", "HOSTILE_dir_x": "HOSTILE_dir/x",
	} {
		if n := bytes.Count(b, []byte(from)); n != 1 {
			t.Fatalf("%q occurs %d times in the image", from, n)
		}
		b = bytes.Replace(b, []byte(from), []byte(to), 1)
	}
	if err := os.WriteFile(img, b, 0o644); err != nil {
		t.Fatal(err)
	}

	r := newRepo(t)
	var warnings []string
	importImage(t, r, img, "hostile:v1", image.ImportOptions{Warn: func(msg string) { warnings = append(warnings, msg) }})
	t.Logf("warnings:\n%s", strings.Join(warnings, "\n"))
	all := strings.Join(warnings, "\n")
	for _, w := range []string{`"HOSTILE_a/b"`, `"HOSTILE_n\x00l"`, `"HOSTILE_dupA"`, `"HOSTILE_dir/x"`, "partition 0"} {
		if !strings.Contains(all, w) {
			t.Errorf("no warning mentions %s", w)
		}
	}
	if len(warnings) != 4 {
		t.Errorf("%d warnings, want 4", len(warnings))
	}

	out, m := exportVersion(t, r, "hostile:v1")
	if sha(t, img) != sha(t, out) {
		t.Error("the export is not byte-identical")
	}
	paths := map[string]bool{}
	for _, fs := range m.Filesystems {
		for _, e := range fs.Files {
			for _, p := range e.Paths {
				paths[string(p)] = true
			}
		}
	}
	for _, p := range []string{"d/HOSTILE_a%2Fb", "d/HOSTILE_n%00l", "d/HOSTILE_dupA", "d/HOSTILE_dupA~2", "d/HOSTILE_dir%2Fx/child"} {
		if !paths[p] {
			t.Errorf("the manifest has no %q", p)
		}
	}
	f, err := mountfs.New(context.Background(), r, m, mountfs.Options{})
	if err != nil {
		t.Fatalf("the version cannot be served: %v", err)
	}
	f.Close()
}
