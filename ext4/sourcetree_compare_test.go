package ext4

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// CompareImageWithSourceTree checks what mke2fs -d copied from src: the
// set of paths, type and mode, owner, size, mtime, symlink targets,
// content and user xattrs. For images the kernel cannot mount.
func CompareImageWithSourceTree(t *testing.T, fsys *FS, src string) {
	t.Helper()
	want := map[string]fileFacts{}
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := "/" + strings.TrimPrefix(strings.TrimPrefix(p, src), "/")
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		// mke2fs 1.47.0 -d stores only the low 32 bits of seconds (no
		// nanoseconds, no epoch bits), so only those can be compared.
		f := fileFacts{Mode: st.Mode, UID: st.Uid, GID: st.Gid, Mtime: fmt.Sprint(int32(st.Mtim.Sec))}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR { // directory sizes depend on the filesystem
			f.Size = st.Size
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			f.Link, err = os.Readlink(p)
		case unix.S_IFREG:
			var fh *os.File
			if fh, err = os.Open(p); err == nil {
				f.Content = hashContent(t, fh, st.Size, [][2]int64{{0, st.Size}})
				fh.Close()
			}
		}
		f.Xattrs = mountXattrs(t, p)
		want[rel] = f
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	got := readerFacts(t, fsys)
	delete(got, "/lost+found")
	bad := 0
	for p, w := range want {
		g, ok := got[p]
		if !ok {
			t.Errorf("%q missing from the image", p)
			continue
		}
		g.Ino, g.Nlink, g.Atime, g.Ctime, g.Major, g.Minor = 0, 0, "", "", 0, 0
		var sec int64
		fmt.Sscanf(g.Mtime, "%d.", &sec)
		g.Mtime = fmt.Sprint(int32(sec))
		if g.Mode&unix.S_IFMT == unix.S_IFDIR {
			g.Size = 0
		}
		if p == "/" { // mke2fs keeps its own root directory
			g.Size, g.Mode, g.Mtime, w.Mode, w.Mtime = 0, 0, "", 0, ""
		}
		if g != w {
			if bad++; bad < 10 {
				t.Errorf("%q differs:\n source %+v\n reader %+v", p, w, g)
			}
		}
	}
	if len(got) != len(want) {
		t.Errorf("image has %d paths, source %d", len(got), len(want))
	}
	t.Logf("compared %d paths with the source tree", len(want))
}
