package treeclone_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"mis/layer"
	"mis/manifest"
	"mis/mountfs"
	"mis/repo"
	"mis/testkit/testrepo"
	"mis/testkit/treecmp"
	"mis/treeclone"
)

const fusectlDir = "/sys/fs/fuse/connections"

// serveEnv makes the test binary a clone server: "repo|clone|dir". It
// prints "ready" once mounted and serves until killed or unmounted.
const serveEnv = "TREECLONE_TEST_SERVE"

func TestMain(m *testing.M) {
	if spec := os.Getenv(serveEnv); spec != "" {
		serveForTest(spec)
		return
	}
	if os.Geteuid() == 0 {
		// fusectl lets a stuck test be cleaned up by aborting its connection.
		if _, ok, _ := mountfs.FindMount(fusectlDir); !ok {
			exec.Command("mount", "-t", "fusectl", "none", fusectlDir).Run()
		}
	}
	os.Exit(m.Run())
}

func newRepo(t testing.TB) *repo.Repo { return testrepo.New(t) }

// importFixture imports fixture kind into a fresh repository as img:v1
// and returns the repository and the version.
func importFixture(t testing.TB, kind string) (*repo.Repo, *layer.Version) {
	t.Helper()
	treecmp.RequireRoot(t)
	_, r, v := testrepo.Fixture(t, kind)
	return r, v
}

func loadManifest(t testing.TB, r *repo.Repo, ref string) (*layer.Version, *manifest.Manifest) {
	t.Helper()
	lr, err := layer.ParseRef(ref)
	if err != nil {
		t.Fatal(err)
	}
	v, m, err := layer.Load(context.Background(), r, lr)
	if err != nil {
		t.Fatal(err)
	}
	return v, m
}

// mountVersion serves m read-only at a temporary directory until the test ends.
func mountVersion(t testing.TB, r *repo.Repo, m *manifest.Manifest) string {
	t.Helper()
	f, err := mountfs.New(context.Background(), r, m, mountfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	srv, err := f.Mount(dir, mountfs.MountOptions{FsName: "mis-test"})
	if err != nil {
		f.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
		srv.Wait()
		f.Close()
	})
	return dir
}

// mountClone mounts clone name at a new directory; the clone is unmounted
// when the test ends if the test did not.
func mountClone(t testing.TB, r *repo.Repo, name string) *treeclone.Mounted {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mt, err := treeclone.Mount(context.Background(), r, name, dir, treeclone.MountOptions{})
	if err != nil {
		t.Fatalf("mount clone %s: %v", name, err)
	}
	t.Cleanup(func() { mt.Unmount() })
	return mt
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func serveForTest(spec string) {
	parts := strings.Split(spec, "|")
	r, err := repo.Open(parts[0])
	if err != nil {
		log.Fatal(err)
	}
	err = treeclone.Serve(context.Background(), r, parts[1], parts[2], treeclone.MountOptions{}, func(*treeclone.Mounted) {
		fmt.Println("ready")
	})
	if err != nil {
		log.Fatal(err)
	}
}
