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

	pid := daemonPid(t, readLog(t, logPath))
	mustMis(t, repo, "umount", dir)
	if _, ok, _ := mountfs.FindMount(dir); ok {
		t.Fatal("still mounted after mis umount")
	}
	waitExit(t, pid)
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
