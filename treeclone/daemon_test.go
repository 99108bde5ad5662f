package treeclone_test

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"mis/mountfs"
	"mis/treeclone"
)

// TestServerKilled: a clone served by another process that dies leaves its
// overlays over a dead lower. The clone cannot be mounted again or removed
// until UnmountDir cleans up; then it mounts again with its edits.
func TestServerKilled(t *testing.T) {
	r, v := importFixture(t, "ext4")
	if err := treeclone.Create(r.Dir(), "vm", v.ID); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "mnt")
	must(t, os.Mkdir(dir, 0o755))
	cmd := exec.Command(os.Args[0], "-test.run", "^$")
	cmd.Env = append(os.Environ(), serveEnv+"="+r.Dir()+"|vm|"+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	must(t, err)
	must(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		treeclone.UnmountDir(dir)
	})
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() && sc.Text() == "ready" {
			ready <- nil
			return
		}
		ready <- errors.New("server did not report ready")
	}()
	select {
	case err := <-ready:
		must(t, err)
	case <-time.After(60 * time.Second):
		t.Fatal("server did not start in 60 s")
	}
	if ok, err := treeclone.IsMountedAt(dir); !ok || err != nil {
		t.Fatalf("IsMountedAt(%s) = %v, %v", dir, ok, err)
	}
	edited := filepath.Join(dir, "p0", "written-by-test")
	must(t, os.WriteFile(edited, []byte("kept\n"), 0o644))

	must(t, cmd.Process.Signal(syscall.SIGKILL))
	cmd.Wait()

	// The lock died with the server, the overlays did not.
	if err := treeclone.Remove(r.Dir(), "vm"); !errors.Is(err, treeclone.ErrMounted) {
		t.Fatalf("remove with stale overlays: %v, want ErrMounted", err)
	}
	other := filepath.Join(t.TempDir(), "other")
	must(t, os.Mkdir(other, 0o755))
	if _, err := treeclone.Mount(t.Context(), r, "vm", other, treeclone.MountOptions{}); !errors.Is(err, treeclone.ErrMounted) {
		t.Fatalf("mount with stale overlays: %v, want ErrMounted", err)
	}
	must(t, treeclone.UnmountDir(dir))
	for _, d := range []string{dir, filepath.Join(dir, "p0"), treeclone.Paths(r.Dir(), "vm").Lower} {
		if _, ok, _ := mountfs.FindMount(d); ok {
			t.Errorf("%s still mounted after UnmountDir", d)
		}
	}

	mt := mountClone(t, r, "vm")
	if got, err := os.ReadFile(filepath.Join(mt.Dir, mt.Parts[0], "written-by-test")); err != nil || string(got) != "kept\n" {
		t.Errorf("edit after the crash: %q %v", got, err)
	}
	must(t, mt.Unmount())
	must(t, treeclone.Remove(r.Dir(), "vm"))
}
