package main_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"mis/fixtures"
	"mis/mountfs"
)

// cloneRepo imports the bare ext4 fixture as img:v1.
func cloneRepo(t *testing.T) (repo, img string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for FUSE and loop mounts")
	}
	img = fixtures.Path(t, "ext4")
	repo = filepath.Join(t.TempDir(), "repo")
	mustMis(t, repo, "init")
	mustMis(t, repo, "import", "-q", img, "img:v1")
	return repo, img
}

// mountClone mounts a clone (or version) with mount -d and returns the
// directory and the serving pid.
func mountClone(t *testing.T, repo, what string) (string, int) {
	t.Helper()
	dir := t.TempDir()
	cleanupMount(t, dir)
	logPath := filepath.Join(t.TempDir(), "mount.log")
	_, errOut, code := mis(t, repo, "mount", "-d", "--log", logPath, what, dir)
	if code != 0 {
		t.Fatalf("mount -d %s: exit %d: %s", what, code, errOut)
	}
	return dir, daemonPid(t, errOut)
}

func umount(t *testing.T, repo, dir string, pid int) {
	t.Helper()
	mustMis(t, repo, "umount", dir)
	waitExit(t, pid)
}

func writeAt(t *testing.T, path string, off int64, p []byte, sync bool) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(p, off); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
}

func readAt(t *testing.T, path string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := make([]byte, n)
	if _, err := f.ReadAt(p, off); err != nil {
		t.Fatal(err)
	}
	return p
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
}

// TestCLICloneMountCommit changes a clone through a real filesystem (an
// ext4 loop mount of the clone's disk.raw), commits it, and checks the
// new version: its export equals the clone's disk byte for byte, passes
// e2fsck, holds the file, and its parent is the base; the base is intact.
func TestCLICloneMountCommit(t *testing.T) {
	repo, img := cloneRepo(t)
	mustMis(t, repo, "clone", "img:v1", "vm")
	dir, pid := mountClone(t, repo, "vm")
	disk := filepath.Join(dir, "disk.raw")
	if err := exec.Command("cmp", img, disk).Run(); err != nil {
		t.Fatalf("a fresh clone differs from its base: %v", err)
	}
	fsDir := t.TempDir()
	run(t, "mount", "-o", "loop", disk, fsDir)
	payload := bytes.Repeat([]byte("written in a clone\n"), 50000)
	if err := os.WriteFile(filepath.Join(fsDir, "clone-file"), payload, 0o644); err != nil {
		exec.Command("umount", fsDir).Run()
		t.Fatal(err)
	}
	run(t, "umount", fsDir)
	clonedCopy := filepath.Join(t.TempDir(), "clone.raw")
	run(t, "cp", disk, clonedCopy)
	// A mounted clone is not committed.
	if _, errOut, code := mis(t, repo, "commit", "vm", "img:v2"); code == 0 || !strings.Contains(errOut, "mounted at "+dir) {
		t.Errorf("commit of a mounted clone: exit %d, %q", code, errOut)
	}
	// Commit right after umount, as a script does: the server may still be
	// closing the clone.
	mustMis(t, repo, "umount", dir)
	out := mustMis(t, repo, "commit", "--json", "vm", "img:v2")
	waitExit(t, pid)
	var res struct {
		Version struct {
			ID     string `json:"id"`
			Parent string `json:"parent"`
		} `json:"version"`
		ReusedFiles    int64 `json:"reused_files"`
		ReadBytes      int64 `json:"read_bytes"`
		ResidualReused int64 `json:"residual_reused_bytes"`
		ResidualRead   int64 `json:"residual_read_bytes"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("commit --json: %v: %s", err, out)
	}
	t.Logf("commit: %d files reused, %d file bytes read, residual %d reused / %d read", res.ReusedFiles, res.ReadBytes, res.ResidualReused, res.ResidualRead)
	// Unchanged files and untouched residual come from the base unread.
	if res.ReusedFiles == 0 || res.ResidualReused == 0 {
		t.Errorf("commit read everything: %s", out)
	}
	var base []struct {
		Version struct {
			ID string `json:"id"`
		} `json:"version"`
	}
	json.Unmarshal([]byte(mustMis(t, repo, "ls", "--json", "img")), &base)
	if len(base) != 2 || res.Version.Parent != base[0].Version.ID {
		t.Errorf("the commit's parent is %q, want the base %+v", res.Version.Parent, base)
	}
	exported := filepath.Join(t.TempDir(), "v2.raw")
	mustMis(t, repo, "export", "img:v2", exported)
	if err := exec.Command("cmp", clonedCopy, exported).Run(); err != nil {
		t.Fatalf("export of the commit differs from the clone's disk.raw: %v", err)
	}
	run(t, "e2fsck", "-fn", exported)
	got, err := exec.Command("debugfs", "-R", "cat /clone-file", exported).Output()
	if err != nil || !bytes.Equal(got, payload) {
		t.Errorf("the committed version does not hold the clone's file (%d bytes, %v)", len(got), err)
	}
	baseOut := filepath.Join(t.TempDir(), "v1.raw")
	mustMis(t, repo, "export", "img:v1", baseOut)
	if err := exec.Command("cmp", img, baseOut).Run(); err != nil {
		t.Fatalf("the base no longer exports as imported: %v", err)
	}
}

// TestCLICloneKill9 kills the serving process with SIGKILL: fsync'ed
// writes and writes older than the flush interval survive; a write killed
// before any sync leaves each block old or new, never torn.
func TestCLICloneKill9(t *testing.T) {
	repo, img := cloneRepo(t)
	mustMis(t, repo, "clone", "img:v1", "vm")
	dir, pid := mountClone(t, repo, "vm")
	disk := filepath.Join(dir, "disk.raw")
	synced := bytes.Repeat([]byte{0xa1}, 70000)
	writeAt(t, disk, 5<<20+100, synced, true)

	// Unsynced writes, with the file kept open (closing it would flush).
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	old := bytes.Repeat([]byte{0xb2}, 50000)
	if _, err := f.WriteAt(old, 9<<20+7); err != nil {
		t.Fatal(err)
	}
	time.Sleep(7 * time.Second) // beyond the 5 s flush interval
	fresh := bytes.Repeat([]byte{0xc3}, 3*4096)
	if _, err := f.WriteAt(fresh, 12<<20); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitExit(t, pid)
	f.Close() // fails on the dead mount; nothing to flush any more
	mustMis(t, repo, "umount", dir)

	dir, pid = mountClone(t, repo, "vm")
	disk = filepath.Join(dir, "disk.raw")
	if got := readAt(t, disk, 5<<20+100, len(synced)); !bytes.Equal(got, synced) {
		t.Error("an fsync'ed write was lost after kill -9")
	}
	if got := readAt(t, disk, 9<<20+7, len(old)); !bytes.Equal(got, old) {
		t.Error("a write older than the flush interval was lost after kill -9")
	}
	base := readAt(t, img, 12<<20, len(fresh))
	got := readAt(t, disk, 12<<20, len(fresh))
	for b := 0; b < len(fresh); b += 4096 {
		blk := got[b : b+4096]
		if !bytes.Equal(blk, fresh[b:b+4096]) && !bytes.Equal(blk, base[b:b+4096]) {
			t.Errorf("block %d of an unsynced write is neither old nor new", b/4096)
		}
	}
	// Everything else is still the base.
	whole, err := os.ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	orig, _ := os.ReadFile(img)
	copy(orig[5<<20+100:], synced)
	copy(orig[9<<20+7:], old)
	copy(orig[12<<20:], got)
	if !bytes.Equal(whole, orig) {
		t.Error("bytes nobody wrote changed after kill -9")
	}
	umount(t, repo, dir, pid)
}

// TestCLICloneRefusalsAndClonesOfClones covers rm, name clashes, clones
// of a mounted clone, and isolation between a clone and its clone.
func TestCLICloneRefusalsAndClonesOfClones(t *testing.T) {
	repo, img := cloneRepo(t)
	mustMis(t, repo, "clone", "img:v1", "a", "b")
	expectErr := func(want string, args ...string) {
		t.Helper()
		if _, errOut, code := mis(t, repo, args...); code == 0 || !strings.Contains(errOut, want) {
			t.Errorf("mis %v: exit %d, stderr %q; want an error mentioning %q", args, code, errOut, want)
		}
	}
	expectErr("base of 2 clone(s): a, b", "rm", "img:v1")
	expectErr("name of an image", "clone", "img:v1", "img")
	expectErr("already exists", "clone", "img:v1", "a")
	expectErr("invalid clone name", "clone", "img:v1", "Bad")
	expectErr("name of a clone", "import", img, "a:v1")
	expectErr("no such version", "clone", "img:nosuch", "c")

	dir, pid := mountClone(t, repo, "a")
	writeAt(t, filepath.Join(dir, "disk.raw"), 1<<20, bytes.Repeat([]byte{1}, 8192), true)
	expectErr("mounted at "+dir, "clone", "a", "a2")
	expectErr("mounted at "+dir, "rm", "a")
	var rows []struct {
		Name    string `json:"name"`
		BaseNow string `json:"base_now"`
		Mounted bool   `json:"mounted"`
		Usage   struct {
			Delta int64 `json:"delta_bytes"`
		} `json:"usage"`
	}
	if err := json.Unmarshal([]byte(mustMis(t, repo, "clones", "--json")), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Name != "a" || !rows[0].Mounted || rows[0].Usage.Delta < 8192 || rows[0].BaseNow != "img:v1" || rows[1].Mounted {
		t.Errorf("clones --json: %+v", rows)
	}
	umount(t, repo, dir, pid)

	// a2 starts from a's writes; later writes of each stay their own.
	mustMis(t, repo, "clone", "a", "a2")
	dirA, pidA := mountClone(t, repo, "a")
	dirA2, pidA2 := mountClone(t, repo, "a2")
	writeAt(t, filepath.Join(dirA, "disk.raw"), 1<<20, bytes.Repeat([]byte{2}, 100), true)
	writeAt(t, filepath.Join(dirA2, "disk.raw"), 1<<20+4096, bytes.Repeat([]byte{3}, 100), true)
	umount(t, repo, dirA, pidA)
	umount(t, repo, dirA2, pidA2)
	dirA, pidA = mountClone(t, repo, "a")
	dirA2, pidA2 = mountClone(t, repo, "a2")
	gotA := readAt(t, filepath.Join(dirA, "disk.raw"), 1<<20, 8192)
	gotA2 := readAt(t, filepath.Join(dirA2, "disk.raw"), 1<<20, 8192)
	wantA := append(bytes.Repeat([]byte{2}, 100), bytes.Repeat([]byte{1}, 8092)...)
	wantA2 := append(append(bytes.Repeat([]byte{1}, 4096), bytes.Repeat([]byte{3}, 100)...), bytes.Repeat([]byte{1}, 3996)...)
	if !bytes.Equal(gotA, wantA) || !bytes.Equal(gotA2, wantA2) {
		t.Error("a clone and its clone see each other's writes")
	}
	umount(t, repo, dirA, pidA)
	umount(t, repo, dirA2, pidA2)

	// rm of the clones, then of the base.
	for _, c := range []string{"a", "a2", "b"} {
		if out := mustMis(t, repo, "rm", c); !strings.Contains(out, "removed clone "+c) {
			t.Errorf("rm %s: %q", c, out)
		}
	}
	if out := mustMis(t, repo, "clones"); strings.Contains(out, "a2") {
		t.Errorf("clones after rm: %q", out)
	}
	mustMis(t, repo, "rm", "img:v1")
	mustMis(t, repo, "gc")
	if left, _ := filepath.Glob(filepath.Join(repo, "clones", "deltas", "*")); len(left) != 0 {
		t.Errorf("delta files left: %v", left)
	}
	if _, ok, _ := mountfs.FindMount(dirA); ok {
		t.Error("still mounted")
	}
}

// TestCLICommitWaitsForWriter: mis commit is a writer like import and gc,
// so --wait makes it wait for the writer lock instead of failing; and a
// commit to a taken name fails before it reads the clone.
func TestCLICommitWaitsForWriter(t *testing.T) {
	repo, img := cloneRepo(t)
	mustMis(t, repo, "clone", "img:v1", "vm1")
	mustMis(t, repo, "clone", "--tree", "img:v1", "t1")
	for _, c := range []string{"vm1", "t1"} {
		if _, errOut, code := mis(t, repo, "commit", c, "img:v1"); code == 0 || !strings.Contains(errOut, "img:v1 already exists") {
			t.Errorf("commit %s to a taken name: exit %d: %s", c, code, errOut)
		}
	}

	holder := startMis(t, "--repo", repo, "import", img, "other:v1")
	waitForLockHolder(t, repo, holder.cmd.Process.Pid)
	if err := holder.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	commit := startMis(t, "--repo", repo, "--wait", "2m", "commit", "vm1", "img:c1")
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(commit.stderr.String(), "waiting up to") {
		if time.Now().After(deadline) {
			holder.cmd.Process.Signal(syscall.SIGCONT)
			t.Fatalf("commit never waited for the writer lock; stderr: %s", commit.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	holder.cmd.Process.Signal(syscall.SIGCONT)
	for _, p := range []*misProc{holder, commit} {
		if err := p.cmd.Wait(); err != nil {
			t.Fatalf("mis %v: %v\n%s", p.cmd.Args[1:], err, p.stderr.String())
		}
	}
	mustMis(t, repo, "info", "img:c1")
}
