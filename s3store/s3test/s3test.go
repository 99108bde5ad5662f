// Package s3test runs a real S3 gateway for tests: versitygw (installed by
// scripts/install-deps) serving a temporary directory on a free loopback
// port. Each directory under Server.Dir is a bucket.
//
// Without the versitygw binary a test is skipped, unless the environment
// variable CI is set: then it fails, so CI cannot pass by skipping.
package s3test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Root credentials of every Server.
const (
	AccessKey = "misroot"
	SecretKey = "misroot-secret-key"
)

// Server is a running versitygw.
type Server struct {
	// Endpoint is 127.0.0.1:PORT; URL is http://Endpoint.
	Endpoint, URL string
	// Dir is the gateway's root: one subdirectory per bucket.
	Dir string

	t       testing.TB
	bin     string
	iamDir  string
	logPath string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// Binary returns the path of the versitygw binary: $MIS_VERSITYGW, else
// versitygw in PATH, else in $(go env GOBIN) or $(go env GOPATH)/bin,
// where scripts/install-deps puts it.
func Binary() (string, error) {
	if p := os.Getenv("MIS_VERSITYGW"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("MIS_VERSITYGW: %w", err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	var dirs []string
	if out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output(); err == nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) == 2 {
			if lines[0] != "" {
				dirs = append(dirs, lines[0])
			}
			for _, p := range filepath.SplitList(lines[1]) {
				dirs = append(dirs, filepath.Join(p, "bin"))
			}
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "versitygw")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", errors.New("versitygw not found in $MIS_VERSITYGW, PATH, $(go env GOBIN) or $(go env GOPATH)/bin; scripts/install-deps installs it")
}

// Start starts a gateway for t and stops it when t ends. It skips t if
// the binary is missing, or fails t if CI is set.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set and the S3 gateway is missing: %v", err)
		}
		t.Skipf("skipping S3 test: %v (set CI to make this a failure)", err)
	}
	base := t.TempDir()
	s := &Server{
		t:       t,
		bin:     bin,
		Dir:     filepath.Join(base, "data"),
		iamDir:  filepath.Join(base, "iam"),
		logPath: filepath.Join(base, "versitygw.log"),
	}
	for _, d := range []string{s.Dir, s.iamDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			s.dumpLog()
		}
	})
	// A free port can be taken by someone else between our probe and
	// the gateway's bind: try a few.
	for try := 0; ; try++ {
		s.Endpoint = freePort(t)
		s.URL = "http://" + s.Endpoint
		err := s.start()
		if err == nil {
			return s
		}
		if try == 2 {
			t.Fatalf("start versitygw: %v", err)
		}
	}
}

func freePort(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// start runs the gateway on s.Endpoint and waits until it answers.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("already running")
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "--- %s start on %s\n", time.Now().Format(time.RFC3339Nano), s.Endpoint)
	// --keep-alive: versitygw closes every connection after one request
	// by default, which S3 does not (a new TCP connection per ranged GET
	// made reads several times slower than they need be).
	cmd := exec.Command(s.bin, "--port", s.Endpoint, "--access", AccessKey, "--secret", SecretKey,
		"--iam-dir", s.iamDir, "--keep-alive", "--quiet", "posix", s.Dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group (so a kill reaches only it), and killed with
	// the test binary if that dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	s.cmd, s.exited = cmd, exited

	deadline := time.Now().Add(30 * time.Second)
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-exited:
			s.cmd = nil
			return fmt.Errorf("versitygw exited during startup (%v); log:\n%s", cmd.ProcessState, s.logTail())
		default:
		}
		// Any HTTP answer (an unsigned request gets 403) means it serves.
		if resp, err := client.Get(s.URL + "/"); err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			s.killLocked()
			return fmt.Errorf("versitygw did not answer on %s within 30s; log:\n%s", s.Endpoint, s.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill kills the gateway with SIGKILL (a crash) and waits until it is gone.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.killLocked()
}

func (s *Server) killLocked() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// Stop stops the gateway (SIGTERM, then SIGKILL after 5 s).
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		s.cmd = nil
	case <-time.After(5 * time.Second):
		s.killLocked()
	}
}

// Restart starts a stopped or killed gateway again on the same port and
// directory.
func (s *Server) Restart() {
	s.t.Helper()
	var err error
	for try := 0; try < 50; try++ { // the port may linger a moment after a kill
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("restart versitygw: %v", err)
}

// CreateUser adds a user with role "user" (it owns nothing and may do
// only what bucket policies grant it).
func (s *Server) CreateUser(access, secret string) {
	s.t.Helper()
	out, err := exec.Command(s.bin, "admin", "--access", AccessKey, "--secret", SecretKey,
		"--endpoint-url", s.URL, "create-user", "--access", access, "--secret", secret, "--role", "user").CombinedOutput()
	if err != nil {
		s.t.Fatalf("versitygw admin create-user: %v\n%s", err, out)
	}
}

func (s *Server) logTail() string {
	data, _ := os.ReadFile(s.logPath)
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return string(bytes.TrimSpace(data))
}

func (s *Server) dumpLog() {
	if tail := s.logTail(); tail != "" {
		s.t.Logf("versitygw log (%s):\n%s", s.logPath, tail)
	}
}
