package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mis/fixtures"
	"mis/mountfs"
)

// mountRepo imports the gpt fixture and returns the repository and image.
func mountRepo(t *testing.T) (repo, img string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for FUSE mounts")
	}
	if _, _, code := mis(t, "", "mount", "--help"); code != 0 {
		t.Fatal("mis mount is not registered in root.go")
	}
	img = fixtures.Path(t, "gpt")
	repo = filepath.Join(t.TempDir(), "repo")
	mustMis(t, repo, "init")
	mustMis(t, repo, "import", img, "img:v1")
	return repo, img
}

func cleanupMount(t *testing.T, dir string) {
	t.Cleanup(func() {
		if _, ok, _ := mountfs.FindMount(dir); ok {
			mountfs.Unmount(dir, true)
		}
	})
}

func TestCLIMountDaemonAndUmount(t *testing.T) {
	repo, img := mountRepo(t)
	dir := t.TempDir()
	cleanupMount(t, dir)
	logPath := filepath.Join(t.TempDir(), "mount.log")
	_, errOut, code := mis(t, repo, "mount", "-d", "--log", logPath, "img:v1", dir)
	if code != 0 {
		t.Fatalf("mount -d: exit %d: %s", code, errOut)
	}
	// Ready means ready: no polling.
	if err := exec.Command("cmp", img, filepath.Join(dir, "disk.raw")).Run(); err != nil {
		t.Fatalf("cmp disk.raw with the image right after mount -d: %v", err)
	}
	mi, ok, _ := mountfs.FindMount(dir)
	if !ok || mi.Source != "mis:img:v1" {
		t.Fatalf("mount table: %+v %v", mi, ok)
	}
	// A second mount on the same directory is refused clearly.
	if _, errOut, code := mis(t, repo, "mount", "-d", "img:v1", dir); code == 0 || !strings.Contains(errOut, "already a mount point") {
		t.Errorf("second mount: exit %d: %s", code, errOut)
	}
	// The repository is not held: a writer can commit while mounted.
	mustMis(t, repo, "import", img, "img:v2")
	// But the mounted version is: rm refuses it, gc keeps its chunks.
	if _, errOut, code := mis(t, repo, "rm", "img:v1"); code == 0 || !strings.Contains(errOut, "img:v1 is mounted at "+dir) {
		t.Errorf("rm of a mounted version: exit %d: %s", code, errOut)
	}
	mustMis(t, repo, "gc")
	if err := exec.Command("cmp", img, filepath.Join(dir, "disk.raw")).Run(); err != nil {
		t.Fatalf("cmp disk.raw after gc: %v", err)
	}

	pid := daemonPid(t, readLog(t, logPath))
	mustMis(t, repo, "umount", dir)
	if _, ok, _ := mountfs.FindMount(dir); ok {
		t.Fatal("still mounted after mis umount")
	}
	waitExit(t, pid)
	mustMis(t, repo, "rm", "img:v1")
}

func TestCLIUmountAfterDaemonKilled(t *testing.T) {
	repo, _ := mountRepo(t)
	dir := t.TempDir()
	cleanupMount(t, dir)
	logPath := filepath.Join(t.TempDir(), "mount.log")
	_, errOut, code := mis(t, repo, "mount", "--daemon", "--log", logPath, "img:v1", dir)
	if code != 0 {
		t.Fatalf("mount -d: exit %d: %s", code, errOut)
	}
	pid := daemonPid(t, errOut)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitExit(t, pid)
	if _, ok, _ := mountfs.FindMount(dir); !ok {
		t.Fatal("the mount vanished with its server; nothing to test")
	}
	mustMis(t, repo, "umount", dir)
	if _, ok, _ := mountfs.FindMount(dir); ok {
		t.Fatal("still mounted after mis umount")
	}
	// The dead server's mount record holds nothing.
	mustMis(t, repo, "rm", "img:v1")
}

func TestCLIMountForegroundStopsOnSIGINT(t *testing.T) {
	repo, _ := mountRepo(t)
	dir := t.TempDir()
	cleanupMount(t, dir)
	cmd := exec.Command(misBin, "--repo", repo, "mount", "img:v1", dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, ok, _ := mountfs.FindMount(dir); ok {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("not mounted after 60 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("mount after SIGINT: %v", err)
	}
	if _, ok, _ := mountfs.FindMount(dir); ok {
		t.Fatal("still mounted after SIGINT")
	}
}

func TestCLIMountBadInput(t *testing.T) {
	repo, _ := mountRepo(t)
	dir := t.TempDir()
	cleanupMount(t, dir)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"mount", "-d", "--log", filepath.Join(t.TempDir(), "l.log"), "nosuch:v1", dir}, "no such version"},
		{[]string{"mount", "img:v1", filepath.Join(dir, "missing")}, "no such file"},
		{[]string{"mount", "--cache-size", "lots", "img:v1", dir}, "--cache-size"},
		{[]string{"umount", dir}, "not a mount point"},
	} {
		_, errOut, code := mis(t, repo, c.args...)
		if code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("mis %v: exit %d, stderr %q; want an error mentioning %q", c.args, code, errOut, c.want)
		}
	}
}

var pidRE = regexp.MustCompile(`pid (\d+)`)

func daemonPid(t *testing.T, out string) int {
	t.Helper()
	m := pidRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no pid in %q", out)
	}
	pid, _ := strconv.Atoi(m[1])
	return pid
}

func readLog(t *testing.T, logPath string) string {
	t.Helper()
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func waitExit(t *testing.T, pid int) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		// A killed child of nobody is reaped by init; until then it is a zombie.
		if st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil && strings.Contains(string(st), ") Z ") {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("process %d still running", pid)
}

// TestCLIMountLogNoFollow: the daemon's default log lives inside the
// repository, and a symbolic link planted at a log's path is refused, not
// followed (a root mount once appended to whatever a link pointed at).
func TestCLIMountLogNoFollow(t *testing.T) {
	repo, _ := mountRepo(t)
	dir := t.TempDir()
	cleanupMount(t, dir)
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("untouched\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), "planted.log")
	if err := os.Symlink(victim, logPath); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := mis(t, repo, "mount", "-d", "--log", logPath, "img:v1", dir); code == 0 || !strings.Contains(errOut, "symbolic link") {
		t.Errorf("mount -d with a planted log link: exit %d: %s", code, errOut)
	}
	if data, _ := os.ReadFile(victim); string(data) != "untouched\n" {
		t.Errorf("the link's target was written: %q", data)
	}

	_, errOut, code := mis(t, repo, "mount", "-d", "img:v1", dir)
	if code != 0 {
		t.Fatalf("mount -d: exit %d: %s", code, errOut)
	}
	logs, _ := filepath.Glob(filepath.Join(repo, "mounts", "*.log"))
	if len(logs) != 1 || !strings.Contains(errOut, logs[0]) {
		t.Errorf("default log %v not inside the repository (mount said %q)", logs, errOut)
	}
	pid := daemonPid(t, errOut)
	mustMis(t, repo, "umount", dir)
	waitExit(t, pid)
}
