package lockfile

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestTryLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	me := Me("  import x:1 ")
	l, err := TryLock(path, 0o600, me)
	if err != nil {
		t.Fatal(err)
	}
	if l.Previous != nil {
		t.Errorf("fresh lock file has a previous holder %v", l.Previous)
	}
	got, ok := Read(path)
	if !ok || got != me || got.Command != "import x:1" || got.PID != os.Getpid() {
		t.Fatalf("recorded %+v %v, want %+v", got, ok, me)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v %v", fi.Mode(), err)
	}
	// flock locks belong to the open file description: a second open in
	// this process conflicts like another process would.
	_, err = TryLock(path, 0o600, Me("second"))
	var held *HeldError
	if !errors.As(err, &held) || !errors.Is(err, ErrHeld) || !held.Known || held.Holder != me {
		t.Fatalf("second TryLock: %v", err)
	}
	if want := "pid "; !strings.HasPrefix(held.Who(), want) || !strings.Contains(err.Error(), "(import x:1) on host") {
		t.Errorf("error %q", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if _, ok := Read(path); ok {
		t.Error("record still there after Release")
	}
	l2, err := TryLock(path, 0o600, Me("again"))
	if err != nil {
		t.Fatal(err)
	}
	l2.Release()
}

// TestTakeOverDeadHolder: a holder killed with its lock leaves its record;
// the next one takes the lock at once and sees who it was.
func TestTakeOverDeadHolder(t *testing.T) {
	if _, err := exec.LookPath("flock"); err != nil {
		t.Skip("no flock(1)")
	}
	path := filepath.Join(t.TempDir(), "lock")
	dead := Holder{PID: 4242, Host: "h", Command: "gc", Started: time.Unix(1700000000, 0).UTC()}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"pid":4242,"host":"h","command":"gc","started":"2023-11-14T22:13:20Z"}`)
	f.Close()
	// Held by another process: the record names it.
	// One process holds the lock (flock(1) with a command would leave it
	// to a child as well).
	cmd := exec.Command("sh", "-c", `exec 9<>"$0"; flock -x 9; exec sleep 30`, path)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitHeld(t, path)
	_, err = TryLock(path, 0o600, Me("t"))
	var held *HeldError
	if !errors.As(err, &held) || !held.Known || held.Holder != dead {
		t.Fatalf("TryLock while flock(1) holds it: %v", err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	l, err := TryLock(path, 0o600, Me("t"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if l.Previous == nil || *l.Previous != dead {
		t.Errorf("previous holder %v, want %v", l.Previous, dead)
	}
}

func TestReadForeign(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"empty": "", "text": "commit by pid 3 since x\n", "nopid": `{"host":"h"}`} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		if h, ok := Read(p); ok {
			t.Errorf("%s: read %+v", name, h)
		}
	}
	if _, ok := Read(filepath.Join(dir, "missing")); ok {
		t.Error("missing file read")
	}
}

// waitHeld waits until another process holds the flock on path.
func waitHeld(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		err = unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
		f.Close()
		if err != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("flock(1) never took the lock")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
