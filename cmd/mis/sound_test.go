package main_test

import (
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// reproducibleImage builds a 16 MiB ext4 image the way reproducible image
// pipelines do (E2FSPROGS_FAKE_TIME, fixed UUID and hash seed, mke2fs -d),
// holding etc/config with the given content and fixed times: two such
// images differ only in the file's bytes, never in its inode.
func reproducibleImage(t *testing.T, content []byte) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(filepath.Join(src, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(src, "etc", "config")
	if err := os.WriteFile(cfg, content, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{cfg, filepath.Join(src, "etc"), src} {
		if out, err := exec.Command("touch", "-h", "-d", "2024-01-01 00:00:00 UTC", p).CombinedOutput(); err != nil {
			t.Fatalf("touch: %v: %s", err, out)
		}
	}
	img := filepath.Join(dir, "disk.img")
	cmd := exec.Command("mke2fs", "-q", "-t", "ext4", "-U", "6d697300-0000-4000-8000-000000000001",
		"-E", "hash_seed=6d697300-0000-4000-8000-000000000002", "-d", src, img, "16M")
	cmd.Env = append(os.Environ(), "E2FSPROGS_FAKE_TIME=1704067200")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mke2fs: %v: %s", err, out)
	}
	return img
}

// TestCLIReimportReadsUnchangedInodes: a file whose inode is unchanged but
// whose bytes differ (reproducible builds, raw block writes) must not be
// taken from the parent: the default import reads and hashes it, and the
// new version exports to its own image, byte for byte. The metadata-only
// shortcut stays as --trust-metadata, and versions made with it are never
// called exact.
func TestCLIReimportReadsUnchangedInodes(t *testing.T) {
	a, b := make([]byte, 100_000), make([]byte, 100_000)
	rand.Read(a)
	rand.Read(b)
	imgA, imgB := reproducibleImage(t, a), reproducibleImage(t, b)
	if exec.Command("cmp", "-s", imgA, imgB).Run() == nil {
		t.Fatal("the two images are identical; the test needs them to differ")
	}
	repo := filepath.Join(t.TempDir(), "repo")
	mustMis(t, repo, "init")
	mustMis(t, repo, "import", "-q", imgA, "img:a")
	mustMis(t, repo, "import", "-q", imgB, "img:b")
	out := filepath.Join(t.TempDir(), "b.raw")
	mustMis(t, repo, "export", "img:b", out)
	if err := exec.Command("cmp", imgB, out).Run(); err != nil {
		t.Fatalf("img:b does not export to the image it was imported from: %v", err)
	}
	if err := exec.Command("cmp", "-s", imgA, out).Run(); err == nil {
		t.Fatal("img:b exports the parent's bytes")
	}

	mustMis(t, repo, "import", "-q", "--trust-metadata", imgB, "img:trusted")
	if ls := mustMis(t, repo, "ls"); !strings.Contains(ls, "unverified") {
		t.Errorf("ls does not say the trusted import is unverified:\n%s", ls)
	}
	if info := mustMis(t, repo, "info", "img:trusted"); strings.Contains(info, "exact      yes") || !strings.Contains(info, "unverified") {
		t.Errorf("info calls a metadata-only import exact:\n%s", info)
	}
}
