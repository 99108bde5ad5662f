package otherfs_test

import (
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
	"github.com/diskfs/go-diskfs/filesystem/squashfs"

	"mis/manifest"
	"mis/otherfs"
	"mis/testkit/treecmp"
)

// These tests pin go-diskfs v1.9.4 bugs that otherfs works around or
// documents. Each fails, saying what to revisit, once go-diskfs is fixed.

func mksquashfs(t *testing.T, setup func(src string)) string {
	t.Helper()
	src := t.TempDir()
	setup(src)
	img := filepath.Join(t.TempDir(), "sq.img")
	run(t, nil, "mksquashfs", src, img, "-noappend", "-quiet", "-no-progress", "-xattrs")
	return img
}

func openSquashfs(t *testing.T, img string) *squashfs.FileSystem {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, _ := f.Stat()
	fsys, err := squashfs.Read(file.New(f, true), st.Size(), 0, 4096)
	if err != nil {
		t.Fatal(err)
	}
	return fsys
}

func writeFile(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func setxattr(t *testing.T, path, name, value string) {
	t.Helper()
	if err := syscall.Setxattr(path, name, []byte(value), 0); err != nil {
		t.Skipf("setxattr %s on the temp dir: %v", name, err)
	}
}

func TestGoDiskfsSquashfsDropsSpecialModeBits(t *testing.T) {
	treecmp.RequireRoot(t)
	img := mksquashfs(t, func(src string) {
		writeFile(t, filepath.Join(src, "suid"), 0o755|os.ModeSetuid)
	})
	mnt := treecmp.LoopMount(t, img, 0, fileSize(t, img), "squashfs")
	var st syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(mnt, "suid"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o7777 != 0o4755 {
		t.Fatalf("kernel shows mode %o, the fixture is wrong", st.Mode)
	}
	fi, err := openSquashfs(t, img).Stat("suid")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&fs.ModeSetuid != 0 {
		t.Fatalf("go-diskfs fixed squashfs setuid/setgid/sticky bits: revisit (otherfs can record them; update doc.go)")
	}
	got := walkOne(t, img, "suid")
	if got.Mode != manifest.ModeRegular|0o755 {
		t.Errorf("walked mode %o, want %o (the documented loss)", got.Mode, manifest.ModeRegular|0o755)
	}
}

func TestGoDiskfsSquashfsXattrNamesLoseNamespace(t *testing.T) {
	img := mksquashfs(t, func(src string) {
		p := filepath.Join(src, "xa")
		writeFile(t, p, 0o644)
		setxattr(t, p, "user.color", "blue")
	})
	fi, err := openSquashfs(t, img).Stat("xa")
	if err != nil {
		t.Fatal(err)
	}
	xs := fi.Sys().(*squashfs.StatT).Xattrs
	if _, ok := xs["user.color"]; ok {
		t.Fatalf("go-diskfs fixed squashfs xattr names: revisit (otherfs can record squashfs xattrs)")
	}
	if xs["color"] != "blue" {
		t.Errorf("go-diskfs xattrs %q, want the bug's {color: blue}", xs)
	}
	if e := walkOne(t, img, "xa"); len(e.Xattrs) != 0 {
		t.Errorf("walk recorded xattrs %v with go-diskfs's wrong names", e.Xattrs)
	}
}

func TestGoDiskfsSquashfsThreeXattrsBreakTheDirectory(t *testing.T) {
	img := mksquashfs(t, func(src string) {
		p := filepath.Join(src, "many")
		writeFile(t, p, 0o644)
		setxattr(t, p, "user.a", "1")
		setxattr(t, p, "user.bb", "22")
		setxattr(t, p, "user.ccc", "333")
	})
	if _, err := openSquashfs(t, img).ReadDir("."); err == nil {
		t.Fatalf("go-diskfs fixed squashfs xattr lists of 3+ entries: revisit (such images now walk)")
	}
	// otherfs reports it as an error (import then keeps the filesystem
	// as residual only), not a panic.
	f, _ := os.Open(img)
	defer f.Close()
	_, err := otherfs.Walk(f, 0, fileSize(t, img), "squashfs", func(*manifest.Entry, io.Reader) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "xattr") {
		t.Errorf("walk error %v, want the xattr failure", err)
	}
}

func TestGoDiskfsISORootIgnoresRockRidge(t *testing.T) {
	treecmp.RequireRoot(t) // chown
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "f"), 0o644)
	if err := os.Chmod(src, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(src, 1234, 567); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "i.iso")
	run(t, nil, "xorriso", "-as", "mkisofs", "-quiet", "-R", "-o", img, src)
	// xorriso itself reads the root back as drwx------ 1234 567.
	out, err := exec.Command("xorriso", "-indev", img, "-lsdl", "/", "--").Output()
	if err != nil || !strings.Contains(string(out), "drwx------") || !strings.Contains(string(out), " 1234 ") {
		t.Fatalf("xorriso -lsdl /: %v\n%s", err, out)
	}
	f, _ := os.Open(img)
	defer f.Close()
	fsys, err := iso9660.Read(file.New(f, true), fileSize(t, img), 0, 2048)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := fsys.Stat(".")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() == 0o700 || fi.Sys().(*iso9660.StatT).UID == 1234 {
		t.Fatalf("go-diskfs fixed ISO root Rock Ridge attributes: revisit (drop otherfs rootPX)")
	}
	root := walkOne(t, img, "")
	if root.Mode != manifest.ModeDir|0o700 || root.UID != 1234 || root.GID != 567 {
		t.Errorf("walked root mode %o uid %d gid %d, want %o 1234 567", root.Mode, root.UID, root.GID, manifest.ModeDir|0o700)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// walkOne walks the bare image at img and returns the entry of path.
func walkOne(t *testing.T, img, path string) manifest.Entry {
	t.Helper()
	fstype := "squashfs"
	if strings.HasSuffix(img, ".iso") {
		fstype = "iso9660"
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var found *manifest.Entry
	_, err = otherfs.Walk(f, 0, fileSize(t, img), fstype, func(e *manifest.Entry, _ io.Reader) error {
		for _, p := range e.Paths {
			if string(p) == path {
				c := *e
				found = &c
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found == nil {
		t.Fatalf("%q not walked", path)
	}
	return *found
}
