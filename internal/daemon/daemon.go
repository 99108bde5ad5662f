// Package daemon runs a command of this program in the background: a child
// in its own session whose output goes to a log file, which reports on a
// pipe (fd 3) when it is ready to serve. The parent returns only then, or
// with the child's last log line when it died first. mis mount --daemon
// uses it; a server would too.
package daemon

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// childEnv marks a background child; its value is the log file.
const childEnv = "MIS_DAEMON_CHILD"

// IsChild reports whether this process is a background child.
func IsChild() bool { return os.Getenv(childEnv) != "" }

// Ready tells the parent the child is serving (a no-op in the foreground).
func Ready() {
	if !IsChild() {
		return
	}
	ready := os.NewFile(3, "ready")
	fmt.Fprintf(ready, "ready %d\n", os.Getpid())
	ready.Close()
}

// Start re-runs this program with args in a new session, its output
// appended to logPath, and waits until the child calls Ready (it returns
// the child's pid) or dies (an error with its last log line).
func Start(args []string, logPath string) (pid int, err error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	logf, err := OpenLog(logPath)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	rd, wr, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer rd.Close()
	child := exec.Command(exe, args...)
	child.Env = append(os.Environ(), childEnv+"="+logPath)
	child.Dir = "/" // do not keep the caller's directory busy
	child.Stdout, child.Stderr = logf, logf
	child.ExtraFiles = []*os.File{wr}
	child.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := child.Start(); err != nil {
		wr.Close()
		return 0, err
	}
	wr.Close()
	exited := make(chan error, 1)
	go func() { exited <- child.Wait() }()
	line, _ := bufio.NewReader(rd).ReadString('\n')
	if strings.HasPrefix(line, "ready") {
		return child.Process.Pid, nil
	}
	// The child closed the pipe without getting ready: it failed. Wait
	// briefly for its exit and show its last words.
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
	}
	return 0, fmt.Errorf("%s (log %s)", lastLine(logPath), logPath)
}

// OpenLog opens a log for appending without following a symbolic link
// and refuses anything but a regular file: a link planted at the log's
// path must not make a root process append to the file it points at.
func OpenLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o600)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("daemon log %s is a symbolic link: refusing to follow it (remove it, or choose another with --log)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("daemon log: %w", err)
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("daemon log %s is not a regular file", path)
	}
	return f, nil
}

func lastLine(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "no log"
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > 4096 {
		f.Seek(-4096, io.SeekEnd)
	}
	data, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	return strings.TrimPrefix(lines[len(lines)-1], "mis: ")
}
