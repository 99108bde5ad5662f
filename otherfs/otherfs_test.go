package otherfs_test

import (
	"bytes"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zeebo/blake3"

	"mis/disk"
	"mis/fixtures"
	"mis/manifest"
	"mis/otherfs"
	"mis/testkit/treecmp"
)

// walked is one entry as Walk gave it, with its content's hash.
type walked struct {
	e    manifest.Entry
	hash [32]byte
}

func walkAll(t testing.TB, img string, p disk.Partition) (map[string]*walked, *otherfs.Info) {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]*walked{}
	info, err := otherfs.Walk(f, p.Start, p.Size, p.Filesystem, func(e *manifest.Entry, content io.Reader) error {
		w := &walked{e: *e}
		if content != nil {
			h := blake3.New()
			n, err := io.Copy(h, content)
			if err != nil {
				return err
			}
			if uint64(n) != e.Size {
				t.Errorf("%q: content is %d bytes, size %d", e.Paths[0], n, e.Size)
			}
			copy(w.hash[:], h.Sum(nil))
		} else if e.IsRegular() {
			if e.Size > 0 {
				t.Errorf("%q: regular file of %d bytes without content", e.Paths[0], e.Size)
			}
			w.hash = blake3.Sum256(nil)
		}
		for _, p := range e.Paths {
			if _, dup := out[string(p)]; dup {
				t.Errorf("path %q walked twice", p)
			}
			out[string(p)] = w
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, info
}

// partition finds the partition of img holding fstype.
func partition(t testing.TB, img, fstype string) disk.Partition {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	l, err := disk.Read(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range l.Partitions {
		if p.Filesystem == fstype {
			return p
		}
	}
	t.Fatalf("%s: no %s partition", img, fstype)
	return disk.Partition{}
}

// kernelHas reports whether the running kernel can mount fstype; the test
// machine's kernel has squashfs but neither vfat nor isofs.
func kernelHas(fstype string) bool {
	b, _ := os.ReadFile("/proc/filesystems")
	for _, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(strings.TrimPrefix(line, "nodev")) == fstype {
			return true
		}
	}
	return false
}

// extractPart copies the partition out of the disk image for tools
// without an offset option.
func extractPart(t testing.TB, img string, p disk.Partition) string {
	t.Helper()
	data := make([]byte, p.Size)
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.ReadAt(data, p.Start); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "part.img")
	if err := os.WriteFile(out, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

func run(t testing.TB, env []string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// reference is the tree a real tool shows for the filesystem, and whether
// it is a kernel mount (which shows every attribute) or an extraction by
// the format's own tool (paths, types, sizes, content and mtime only).
func reference(t *testing.T, img string, p disk.Partition) (root string, mounted bool) {
	kernelName := map[string]string{"vfat": "vfat", "iso9660": "iso9660", "squashfs": "squashfs"}[p.Filesystem]
	if kernelHas(kernelName) {
		return treecmp.LoopMount(t, img, p.Start, p.Size, p.Filesystem), true
	}
	dir := t.TempDir()
	switch p.Filesystem {
	case "vfat":
		// mtools reads FAT times as local time: UTC, as vfat does by default.
		run(t, []string{"TZ=UTC", "MTOOLS_SKIP_CHECK=1"}, "mcopy", "-i", extractPart(t, img, p), "-s", "-m", "-n", "::/", dir+"/")
		// mcopy -s of "::/" copies the root's children into dir.
	case "iso9660":
		run(t, nil, "xorriso", "-osirrox", "on", "-indev", extractPart(t, img, p), "-extract", "/", dir)
	default:
		t.Fatalf("no reference tool for %s", p.Filesystem)
	}
	return dir, false
}

// precision of the format's modification time.
var precision = map[string]time.Duration{"vfat": 2 * time.Second, "iso9660": time.Second, "squashfs": time.Second}

func TestWalkMatchesRealTools(t *testing.T) {
	treecmp.RequireRoot(t)
	for _, c := range []struct{ kind, fstype string }{
		{"gpt", "vfat"}, {"mbr", "vfat"}, {"iso", "iso9660"}, {"squashfs", "squashfs"},
	} {
		t.Run(c.kind, func(t *testing.T) {
			img := fixtures.Path(t, c.kind)
			p := partition(t, img, c.fstype)
			start := time.Now()
			got, info := walkAll(t, img, p)
			t.Logf("%s %s: %d paths walked in %v (%s, block %d)", c.kind, c.fstype, len(got), time.Since(start), info.Variant, info.BlockSize)
			ref, mounted := reference(t, img, p)
			compareTree(t, ref, got, c.fstype, mounted)
		})
	}
}

func compareTree(t *testing.T, ref string, got map[string]*walked, fstype string, mounted bool) {
	seen := map[string]bool{}
	err := filepath.WalkDir(ref, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(ref, path)
		if rel == "." {
			rel = ""
		}
		seen[rel] = true
		w, ok := got[rel]
		if !ok {
			t.Errorf("%q: missing from the walk", rel)
			return nil
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(path, &st); err != nil {
			return err
		}
		e := &w.e
		if e.Mode&manifest.ModeType != st.Mode&syscall.S_IFMT {
			t.Errorf("%q: type %o, want %o", rel, e.Mode&manifest.ModeType, st.Mode&syscall.S_IFMT)
			return nil
		}
		if !e.IsDir() && e.Size != uint64(st.Size) {
			t.Errorf("%q: size %d, want %d", rel, e.Size, st.Size)
		}
		mtime := time.Unix(st.Mtim.Sec, st.Mtim.Nsec).Truncate(precision[fstype]).UnixNano()
		// An extraction's root is the temp dir, and xorriso sets no
		// symlink times.
		if mounted || (rel != "" && !e.IsSymlink()) {
			if e.Mtime != mtime {
				t.Errorf("%q: mtime %v, want %v", rel, time.Unix(0, e.Mtime).UTC(), time.Unix(0, mtime).UTC())
			}
		}
		switch {
		case e.IsRegular():
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if blake3.Sum256(data) != w.hash {
				t.Errorf("%q: content differs", rel)
			}
		case e.IsSymlink():
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			if string(e.Symlink) != target {
				t.Errorf("%q: symlink %q, want %q", rel, e.Symlink, target)
			}
		}
		if mounted {
			if e.Mode != st.Mode || e.UID != st.Uid || e.GID != st.Gid || uint64(e.Nlink) != st.Nlink {
				t.Errorf("%q: mode %o uid %d gid %d nlink %d, want %o %d %d %d", rel, e.Mode, e.UID, e.GID, e.Nlink, st.Mode, st.Uid, st.Gid, st.Nlink)
			}
			if e.IsDir() && e.Size != uint64(st.Size) {
				t.Errorf("%q: directory size %d, want %d", rel, e.Size, st.Size)
			}
			if fstype == "squashfs" && uint64(e.Ino) != st.Ino {
				t.Errorf("%q: inode %d, want %d", rel, e.Ino, st.Ino)
			}
			if ct := time.Unix(st.Ctim.Sec, st.Ctim.Nsec).UnixNano(); fstype == "squashfs" && e.Ctime != ct {
				t.Errorf("%q: ctime %d, want %d", rel, e.Ctime, ct)
			}
			xs, err := treecmp.Xattrs(path)
			if err != nil {
				return err
			}
			if len(xs) != len(e.Xattrs) {
				t.Errorf("%q: %d xattrs, want %d", rel, len(e.Xattrs), len(xs))
			}
			for _, x := range e.Xattrs {
				if !bytes.Equal(xs[x.Name], x.Value) {
					t.Errorf("%q: xattr %s = %q, want %q", rel, x.Name, x.Value, xs[x.Name])
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for p := range got {
		if !seen[p] {
			t.Errorf("%q: walked but not in the reference tree", p)
		}
	}
}
