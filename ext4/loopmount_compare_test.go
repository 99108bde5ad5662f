package ext4

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// fileFacts is what both the kernel (through a loop mount) and our reader
// report for one path. Fields compare with ==, except Xattrs.
type fileFacts struct {
	Ino                 uint64
	Mode                uint32
	UID, GID            uint32
	Size                int64
	Nlink               uint64
	Major, Minor        uint32
	Link                string
	Content             string // sha256 hex of regular file content
	Atime, Mtime, Ctime string // "sec.nsec"
	Xattrs              string // sorted name=hex(value) lines
}

// CompareImageWithLoopMount mounts img read-only (noatime) with the
// kernel and checks that fsys reports the same set of paths and, for each,
// the same inode number (hence hard-link groups), type, mode, owner, size,
// link count, device number, symlink target, content, a/m/ctime with
// nanoseconds and xattrs (ACLs in the kernel's xattr form).
// Intended to be lifted into a shared test helper package.
func CompareImageWithLoopMount(t *testing.T, fsys *FS, img string) {
	t.Helper()
	kernel := loopMountFacts(t, img)
	ours := readerFacts(t, fsys)
	var missing, extra []string
	for p := range kernel {
		if _, ok := ours[p]; !ok {
			missing = append(missing, fmt.Sprintf("%q", p))
		}
	}
	for p := range ours {
		if _, ok := kernel[p]; !ok {
			extra = append(extra, fmt.Sprintf("%q", p))
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("%d paths seen by the kernel but not by the reader, e.g. %v", len(missing), missing[:min(5, len(missing))])
	}
	if len(extra) > 0 {
		t.Errorf("%d paths seen by the reader but not by the kernel, e.g. %v", len(extra), extra[:min(5, len(extra))])
	}
	bad := 0
	for p, k := range kernel {
		o, ok := ours[p]
		if !ok || o == k {
			continue
		}
		if bad++; bad <= 20 {
			t.Errorf("%q differs:\n kernel %+v\n reader %+v", p, k, o)
		}
	}
	if bad > 20 {
		t.Errorf("... %d paths differ in total", bad)
	}
	t.Logf("compared %d paths with the loop mount", len(kernel))
}

func loopMountFacts(t *testing.T, img string) map[string]fileFacts {
	t.Helper()
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-o", "loop,ro,noatime", img, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount %s: %v: %s", img, err, out)
	}
	defer func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
			exec.Command("umount", "-l", mnt).Run() // do not leak the loop device
		}
	}()
	facts := map[string]fileFacts{}
	err := filepath.WalkDir(mnt, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := "/" + strings.TrimPrefix(strings.TrimPrefix(p, mnt), "/")
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		f := fileFacts{
			Ino: st.Ino, Mode: st.Mode, UID: st.Uid, GID: st.Gid, Size: st.Size, Nlink: uint64(st.Nlink),
			Atime: fmt.Sprintf("%d.%09d", st.Atim.Sec, st.Atim.Nsec),
			Mtime: fmt.Sprintf("%d.%09d", st.Mtim.Sec, st.Mtim.Nsec),
			Ctime: fmt.Sprintf("%d.%09d", st.Ctim.Sec, st.Ctim.Nsec),
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFCHR, unix.S_IFBLK:
			f.Major, f.Minor = unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev))
		case unix.S_IFLNK:
			f.Link, err = os.Readlink(p)
		case unix.S_IFREG:
			err = func() error { // closes before a t.Fatal can leave the mount busy
				fh, err := os.Open(p)
				if err != nil {
					return err
				}
				defer fh.Close()
				f.Content = hashContent(t, fh, st.Size, dataRanges(t, fh, st.Size))
				return nil
			}()
		}
		if err != nil {
			return err
		}
		f.Xattrs = mountXattrs(t, p)
		facts[rel] = f
		return nil
	})
	if err != nil {
		t.Fatalf("walking the loop mount: %v", err)
	}
	return facts
}

func mountXattrs(t *testing.T, p string) string {
	sz, err := unix.Llistxattr(p, nil)
	if err != nil || sz == 0 {
		return ""
	}
	buf := make([]byte, sz)
	sz, err = unix.Llistxattr(p, buf)
	if err != nil {
		t.Fatalf("llistxattr %q: %v", p, err)
	}
	var lines []string
	for _, name := range strings.Split(strings.TrimRight(string(buf[:sz]), "\x00"), "\x00") {
		vsz, err := unix.Lgetxattr(p, name, nil)
		if err != nil {
			t.Fatalf("lgetxattr %q %s: %v", p, name, err)
		}
		val := make([]byte, vsz)
		if vsz > 0 {
			vsz, err = unix.Lgetxattr(p, name, val)
			if err != nil {
				t.Fatalf("lgetxattr %q %s: %v", p, name, err)
			}
		}
		lines = append(lines, fmt.Sprintf("%s=%x", name, val[:vsz]))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

var (
	hashBufs = sync.Pool{New: func() any { return new([1 << 20]byte) }}
	hashZero [4096]byte
)

// hashContent hashes size and every non-zero 4 KiB piece (with its offset)
// of r within ranges. Pieces outside ranges must be zero. Skipping zero
// pieces makes the hash independent of how holes are found, so the mount
// side can skip holes with SEEK_DATA while the reader side reads them.
func hashContent(t *testing.T, r io.ReaderAt, size int64, ranges [][2]int64) string {
	buf := hashBufs.Get().(*[1 << 20]byte)
	defer hashBufs.Put(buf)
	hashBuf := buf[:]
	h := sha256.New()
	fmt.Fprintf(h, "size %d\n", size)
	const piece = int64(len(hashZero))
	done := int64(0) // pieces before done are hashed already
	for _, rg := range ranges {
		end := min(size, (rg[1]+piece-1)&^(piece-1))
		for off := max(done, rg[0]&^(piece-1)); off < end; {
			n := min(int64(len(hashBuf)), end-off)
			if n <= 0 {
				break
			}
			got, err := r.ReadAt(hashBuf[:n], off)
			if int64(got) != n {
				t.Fatalf("reading content at %d: %d bytes, %v", off, got, err)
			}
			for p := int64(0); p < n; p += piece {
				b := hashBuf[p:min(p+piece, n)]
				if !bytes.Equal(b, hashZero[:len(b)]) {
					fmt.Fprintf(h, "@%d\n", off+p)
					h.Write(b)
				}
			}
			off += n
			done = off
		}
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// dataRanges lists the data segments of an open file using SEEK_DATA/SEEK_HOLE.
func dataRanges(t *testing.T, f *os.File, size int64) [][2]int64 {
	var out [][2]int64
	for off := int64(0); off < size; {
		d, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
		if err != nil { // ENXIO: no more data
			break
		}
		e, err := unix.Seek(int(f.Fd()), d, unix.SEEK_HOLE)
		if err != nil {
			// ext4 inline-data files can fail SEEK_HOLE with ENOENT
			// (kernel quirk); fall back to reading everything.
			t.Logf("SEEK_HOLE %s: %v; reading the whole file", f.Name(), err)
			return [][2]int64{{0, size}}
		}
		out = append(out, [2]int64{d, e})
		off = e
	}
	return out
}

func fmtTime(ts Timestamp) string { return fmt.Sprintf("%d.%09d", ts.Sec, ts.Nsec) }

func readerFacts(t *testing.T, fsys *FS) map[string]fileFacts {
	t.Helper()
	facts := map[string]fileFacts{}
	err := fsys.Walk(func(path []byte, ino uint32, in *Inode) error {
		f := fileFacts{
			Ino: uint64(ino), Mode: uint32(in.Mode), UID: in.UID, GID: in.GID, Size: int64(in.Size), Nlink: uint64(in.Links),
			Major: in.Major, Minor: in.Minor,
			Atime: fmtTime(in.Atime), Mtime: fmtTime(in.Mtime), Ctime: fmtTime(in.Ctime),
		}
		switch {
		case in.IsSymlink():
			l, err := fsys.Readlink(ino)
			if err != nil {
				return err
			}
			f.Link = string(l)
		case in.IsReg():
			r, err := fsys.OpenFile(ino)
			if err != nil {
				return err
			}
			f.Content = hashContent(t, r, r.Size(), [][2]int64{{0, r.Size()}})
		}
		xs, err := fsys.Xattrs(ino)
		if err != nil {
			return err
		}
		var lines []string
		for _, x := range xs {
			lines = append(lines, fmt.Sprintf("%s=%x", x.Name, x.Value))
		}
		sort.Strings(lines)
		f.Xattrs = strings.Join(lines, "\n")
		facts[string(bytes.Clone(path))] = f
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	return facts
}
