package mountfs_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"mis/image"
	"mis/layer"
	"mis/manifest"
	"mis/mountfs"
	"mis/repo"
	"mis/testkit/testrepo"
	"mis/testkit/treecmp"
)

const fusectlDir = "/sys/fs/fuse/connections"

// serveEnv makes the test binary a mount server (for the kill -9 test):
// "repo|ref|dir". It prints "ready" once mounted and serves until killed.
const serveEnv = "MOUNTFS_TEST_SERVE"

func TestMain(m *testing.M) {
	if spec := os.Getenv(serveEnv); spec != "" {
		serveForTest(spec)
		return
	}
	if root := os.Getenv(accessEnv); root != "" {
		fmt.Print(accessReport(root))
		return
	}
	if os.Geteuid() == 0 {
		// fusectl lets a test abort a hung connection instead of hanging.
		if _, ok, _ := mountfs.FindMount(fusectlDir); !ok {
			exec.Command("mount", "-t", "fusectl", "none", fusectlDir).Run()
		}
	}
	os.Exit(m.Run())
}

func serveForTest(spec string) {
	parts := strings.Split(spec, "|")
	r, err := repo.Open(parts[0])
	if err != nil {
		log.Fatal(err)
	}
	ref, _ := layer.ParseRef(parts[1])
	ctx := context.Background()
	_, m, err := layer.Load(ctx, r, ref)
	if err != nil {
		log.Fatal(err)
	}
	f, err := mountfs.New(ctx, r, m, mountfs.Options{})
	if err != nil {
		log.Fatal(err)
	}
	srv, err := f.Mount(parts[2], mountfs.MountOptions{FsName: "mis:" + parts[1], AllowOther: true})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("ready")
	srv.Wait()
}

// lockedBuffer collects log output from the serving goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newRepo(t testing.TB) *repo.Repo { return testrepo.New(t) }

func importImage(t testing.TB, r *repo.Repo, path, ref string) {
	testrepo.Import(t, r, path, ref, image.ImportOptions{})
}

// imported imports fixture kind into a fresh repository as img:v1.
func imported(t testing.TB, kind string) (src string, r *repo.Repo) {
	t.Helper()
	treecmp.RequireRoot(t)
	src, r, _ = testrepo.Fixture(t, kind)
	return src, r
}

type mounted struct {
	dir string
	fs  *mountfs.FS
	m   *manifest.Manifest
	log *lockedBuffer
}

// mountVersion mounts ref of r in a temporary directory until the test ends.
func mountVersion(t testing.TB, r *repo.Repo, ref string, opt mountfs.Options) *mounted {
	t.Helper()
	ctx := context.Background()
	lr, err := layer.ParseRef(ref)
	if err != nil {
		t.Fatal(err)
	}
	_, m, err := layer.Load(ctx, r, lr)
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	opt.Logger = log.New(logs, "", 0)
	f, err := mountfs.New(ctx, r, m, opt)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	srv, err := f.Mount(dir, mountfs.MountOptions{FsName: "mis:" + ref, AllowOther: true})
	if err != nil {
		f.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
			abortMount(dir)
		}
		srv.Wait()
		f.Close()
	})
	return &mounted{dir: dir, fs: f, m: m, log: logs}
}

// abortMount kills a mount's FUSE connection and detaches it, so a broken
// test does not leave a hung mount behind.
func abortMount(dir string) {
	if mi, ok, _ := mountfs.FindMount(dir); ok {
		os.WriteFile(fmt.Sprintf("%s/%d/abort", fusectlDir, mi.Minor), []byte("1"), 0)
	}
	mountfs.Unmount(dir, true)
}

// startServer runs the test binary as a mount server in its own process.
func startServer(t *testing.T, repoDir, ref, dir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), serveEnv+"="+repoDir+"|"+ref+"|"+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- line
	}()
	select {
	case line := <-ready:
		if strings.TrimSpace(line) != "ready" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("server did not get ready: %q", line)
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("server not ready after 60 s")
	}
	return cmd
}
