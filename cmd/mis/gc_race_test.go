package main_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"mis/fixtures"
)

// TestCLIGCWhileImporting runs gc and an import at the same time, in both
// orders. The import re-stores an image whose chunks are all garbage in the
// index (their only version was removed), so it dedups against exactly the
// chunks gc is about to delete: if gc computed its live set before the
// import's version was committed, the new version would lose its data. The
// writer lock is the lease that orders them; SIGSTOP holds the first
// process inside its lease until the second one says it is waiting, so the
// overlap is certain, not a matter of timing.
func TestCLIGCWhileImporting(t *testing.T) {
	imgA := fixtures.Path(t, "ext4-kernel")
	imgB := fixtures.Path(t, "gpt")
	for _, first := range []string{"import", "gc"} {
		t.Run(first+"-first", func(t *testing.T) {
			repo := filepath.Join(t.TempDir(), "repo")
			mustMis(t, repo, "init")
			mustMis(t, repo, "import", "-q", imgA, "a:v1")
			mustMis(t, repo, "import", "-q", imgB, "b:v1")
			mustMis(t, repo, "rm", "a:v1")

			importArgs := []string{"--repo", repo, "--wait", "2m", "import", imgA, "a:v2"}
			gcArgs := []string{"--repo", repo, "--wait", "2m", "gc"}
			firstArgs, secondArgs := importArgs, gcArgs
			if first == "gc" {
				firstArgs, secondArgs = gcArgs, importArgs
			}
			p1 := startMis(t, firstArgs...)
			waitForLockHolder(t, repo, p1.cmd.Process.Pid)
			if err := p1.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			p2 := startMis(t, secondArgs...)
			deadline := time.Now().Add(30 * time.Second)
			for !strings.Contains(p2.stderr.String(), "waiting up to") {
				if time.Now().After(deadline) {
					p1.cmd.Process.Signal(syscall.SIGCONT)
					t.Fatalf("second process never waited for the lock; stderr: %s", p2.stderr.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			p1.cmd.Process.Signal(syscall.SIGCONT)
			for _, p := range []*misProc{p1, p2} {
				if err := p.cmd.Wait(); err != nil {
					t.Fatalf("mis %v: %v\n%s", p.cmd.Args[1:], err, p.stderr.String())
				}
			}

			// Nothing is lost: every chunk of every version is readable and
			// right, and both versions export byte-identically.
			if out, errOut, code := mis(t, repo, "verify", "--read-data"); code != 0 {
				t.Fatalf("verify after gc racing an import: exit %d\n%s%s", code, out, errOut)
			}
			for ref, img := range map[string]string{"a:v2": imgA, "b:v1": imgB} {
				out := filepath.Join(t.TempDir(), "out.raw")
				mustMis(t, repo, "export", "-q", ref, out)
				if err := exec.Command("cmp", img, out).Run(); err != nil {
					t.Fatalf("%s exports differently after gc: %v", ref, err)
				}
			}
		})
	}
}

type misProc struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr lockedBuffer
}

func startMis(t *testing.T, args ...string) *misProc {
	t.Helper()
	p := &misProc{cmd: exec.Command(misBin, args...)}
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Signal(syscall.SIGCONT)
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
	})
	return p
}

// lockedBuffer lets the test poll stderr while the process writes it: exec
// copies into the writer from its own goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitForLockHolder waits until the repository's writer lock names pid.
func waitForLockHolder(t *testing.T, repo string, pid int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		data, _ := os.ReadFile(filepath.Join(repo, "lock"))
		var li struct {
			PID int `json:"pid"`
		}
		if json.Unmarshal(data, &li) == nil && li.PID == pid {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("process %d never took the writer lock", pid)
}
