package main_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"mis/fixtures"
)

// privateModes lists every entry of the repository whose mode breaks the
// policy: directories 0700, files 0600. A tree clone's upper, work and
// lower directories hold the guest's files with the guest's modes
// (content, kept as they are); their parent is 0700.
func privateModes(t *testing.T, repo string) []string {
	t.Helper()
	var bad []string
	err := filepath.WalkDir(repo, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(repo, p)
		parts := strings.Split(rel, string(filepath.Separator))
		if len(parts) == 3 && parts[0] == "treeclones" && (parts[2] == "upper" || parts[2] == "work" || parts[2] == "lower") {
			return filepath.SkipDir
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir() && info.Mode().Perm() != 0o700:
			bad = append(bad, rel+" "+info.Mode().String())
		case d.Type().IsRegular() && info.Mode().Perm() != 0o600:
			bad = append(bad, rel+" "+info.Mode().String())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return bad
}

func TestCLIRepositoryIsPrivate(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for FUSE mounts")
	}
	old := syscall.Umask(0o022) // what most users have: 0666 &^ 022 = 0644
	defer syscall.Umask(old)
	img := fixtures.Path(t, "iso")
	repo := filepath.Join(t.TempDir(), "repo")
	check := func(when string) {
		t.Helper()
		if bad := privateModes(t, repo); len(bad) > 0 {
			t.Errorf("after %s, not private: %s", when, strings.Join(bad, "; "))
		}
	}
	mustMis(t, repo, "init")
	check("init")
	mustMis(t, repo, "import", img, "img:v1")
	mustMis(t, repo, "import", img, "img:v2")
	check("import")
	mustMis(t, repo, "clone", "img:v1", "vm1")
	mustMis(t, repo, "clone", "--tree", "img:v1", "web")
	check("clone")

	// A running mount of a version leaves its record and, with no --log,
	// its log in the repository; a mounted clone writes its delta.
	dir, pid := mountDefaultLog(t, repo, "img:v2")
	cdir, cpid := mountClone(t, repo, "vm1")
	writeAt(t, filepath.Join(cdir, "disk.raw"), 0, make([]byte, 8192), true)
	if m, _ := filepath.Glob(filepath.Join(repo, "mounts", "*.json")); len(m) == 0 {
		t.Fatal("no mount record")
	}
	if m, _ := filepath.Glob(filepath.Join(repo, "clones", "deltas", "*")); len(m) == 0 {
		t.Fatal("no delta")
	}
	check("mount")
	umount(t, repo, cdir, cpid)
	umount(t, repo, dir, pid)
	mustMis(t, repo, "rm", "img:v2")
	mustMis(t, repo, "gc")
	check("gc")
	mustMis(t, repo, "verify", "--repair")
	check("verify --repair")

	// A repository made before the policy is fixed by its next writer.
	for _, p := range []string{repo, filepath.Join(repo, "config.json"), filepath.Join(repo, "meta"), filepath.Join(repo, "packs")} {
		mode := os.FileMode(0o644)
		if st, _ := os.Stat(p); st.IsDir() {
			mode = 0o755
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	metaFiles, _ := filepath.Glob(filepath.Join(repo, "meta", "*"))
	packFiles, _ := filepath.Glob(filepath.Join(repo, "packs", "*", "*.pack"))
	for _, p := range append(metaFiles, packFiles...) {
		os.Chmod(p, 0o644)
	}
	if bad := privateModes(t, repo); len(bad) == 0 {
		t.Fatal("setup: nothing to fix")
	}
	mustMis(t, repo, "ls") // readers change nothing
	mustMis(t, repo, "tag", "img:v1", "img:old")
	check("the next writer")
}

// mountDefaultLog mounts what with mount -d and no --log: the log goes
// into the repository.
func mountDefaultLog(t *testing.T, repo, what string) (string, int) {
	t.Helper()
	dir := t.TempDir()
	cleanupMount(t, dir)
	_, errOut, code := mis(t, repo, "mount", "-d", what, dir)
	if code != 0 {
		t.Fatalf("mount -d %s: exit %d: %s", what, code, errOut)
	}
	if m, _ := filepath.Glob(filepath.Join(repo, "mounts", "*.log")); len(m) == 0 {
		t.Fatal("no mount log in the repository")
	}
	return dir, daemonPid(t, errOut)
}
