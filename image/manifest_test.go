package image_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/zeebo/blake3"
	"golang.org/x/sys/unix"

	"mis/chunker"
	"mis/fixtures"
	"mis/image"
	"mis/manifest"
	"mis/repo"
	"mis/testkit/treecmp"
)

// TestManifestMatchesKernel checks every entry of each fixture's manifest
// against what the kernel shows through a loop mount of the input image.
func TestManifestMatchesKernel(t *testing.T) {
	treecmp.RequireRoot(t)
	for _, kind := range []string{"ext4", "ext4-inline", "ext4-1k", "ext2", "ext3", "ext4-128", "ext4-kernel", "gpt"} {
		t.Run(kind, func(t *testing.T) {
			src := fixtures.Path(t, kind)
			r := newRepo(t)
			_, m := importImage(t, r, src, "img:v1", image.ImportOptions{})
			fss := extFilesystems(m)
			if len(fss) == 0 {
				t.Fatalf("no ext filesystem walked")
			}
			for _, fs := range fss {
				mnt := treecmp.LoopMount(t, src, fs.Offset, fs.Size, "")
				compareManifest(t, r, mnt, &fs)
			}
		})
	}
}

func compareManifest(t *testing.T, r *repo.Repo, mnt string, fs *manifest.Filesystem) {
	t.Helper()
	seen := map[string]bool{}
	errs := 0
	fail := func(format string, args ...any) {
		errs++
		if errs <= 50 {
			t.Errorf(format, args...)
		}
	}
	for i := range fs.Files {
		e := &fs.Files[i]
		for _, p := range e.Paths {
			seen[string(p)] = true
			full := filepath.Join(mnt, string(p))
			var st unix.Stat_t
			if err := unix.Lstat(full, &st); err != nil {
				fail("%q: %v", p, err)
				continue
			}
			if st.Mode != e.Mode || st.Uid != e.UID || st.Gid != e.GID || uint32(st.Nlink) != e.Nlink {
				fail("%q: kernel mode %o uid %d gid %d nlink %d, manifest %o %d %d %d", p, st.Mode, st.Uid, st.Gid, st.Nlink, e.Mode, e.UID, e.GID, e.Nlink)
			}
			if !e.IsDir() && uint64(st.Size) != e.Size {
				fail("%q: kernel size %d, manifest %d", p, st.Size, e.Size)
			}
			if unix.Major(st.Rdev) != e.RdevMajor || unix.Minor(st.Rdev) != e.RdevMinor {
				fail("%q: kernel rdev %d:%d, manifest %d:%d", p, unix.Major(st.Rdev), unix.Minor(st.Rdev), e.RdevMajor, e.RdevMinor)
			}
			for _, tc := range []struct {
				name string
				k    unix.Timespec
				m    int64
			}{{"atime", st.Atim, e.Atime}, {"mtime", st.Mtim, e.Mtime}, {"ctime", st.Ctim, e.Ctime}} {
				if tc.k.Nano() != tc.m {
					fail("%q: kernel %s %d, manifest %d", p, tc.name, tc.k.Nano(), tc.m)
				}
			}
			var sx unix.Statx_t
			if err := unix.Statx(unix.AT_FDCWD, full, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BTIME, &sx); err == nil && sx.Mask&unix.STATX_BTIME != 0 {
				if bt := sx.Btime.Sec*1e9 + int64(sx.Btime.Nsec); bt != e.Crtime {
					fail("%q: kernel crtime %d, manifest %d", p, bt, e.Crtime)
				}
			}
			if e.IsSymlink() {
				target, err := os.Readlink(full)
				if err != nil || target != string(e.Symlink) {
					fail("%q: kernel symlink %q (%v), manifest %q", p, target, err, e.Symlink)
				}
			}
			kx, err := treecmp.Xattrs(full)
			if err != nil {
				t.Fatal(err)
			}
			if len(kx) != len(e.Xattrs) {
				fail("%q: kernel has %d xattrs %v, manifest %d", p, len(kx), keys(kx), len(e.Xattrs))
			}
			for _, x := range e.Xattrs {
				if v, ok := kx[x.Name]; !ok || !bytes.Equal(v, x.Value) {
					fail("%q: xattr %s kernel %x (present %v), manifest %x", p, x.Name, v, ok, x.Value)
				}
			}
		}
		if e.IsRegular() && len(e.Paths) > 0 {
			want := fileSHA(t, filepath.Join(mnt, string(e.Paths[0])))
			if got := manifestFileSHA(t, r, e); got != want {
				fail("%q: content from chunks and extents differs from the kernel's", e.Paths[0])
			}
		}
	}
	// Every path the kernel shows is in the manifest.
	err := filepath.Walk(mnt, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(mnt, path)
		if rel == "." {
			rel = ""
		}
		if !seen[rel] {
			fail("%q: shown by the kernel, missing from the manifest", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func fileSHA(t *testing.T, path string) [32]byte {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := blake3.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// manifestFileSHA rebuilds a file from its chunks and extents (holes as
// zeros) and hashes it.
func manifestFileSHA(t *testing.T, r *repo.Repo, e *manifest.Entry) [32]byte {
	t.Helper()
	data := contentOf(t, r, e)
	h := blake3.New()
	if e.HasInlineData() { // the content is the file, zeros after it
		h.Write(data)
		h.Write(make([]byte, int64(e.Size)-int64(len(data))))
	} else {
		var pos int64
		zero := make([]byte, 1<<16)
		writeZeros := func(n int64) {
			for n > 0 {
				k := min(n, int64(len(zero)))
				h.Write(zero[:k])
				n -= k
			}
		}
		for _, x := range e.Extents {
			writeZeros(x.FileOff - pos)
			h.Write(data[:x.Len])
			data = data[x.Len:]
			pos = x.FileOff + x.Len
		}
		writeZeros(int64(e.Size) - pos)
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// contentOf reads a file's content chunks back from the repository.
func contentOf(t *testing.T, r *repo.Repo, e *manifest.Entry) []byte {
	t.Helper()
	ids := make([]chunker.ID, len(e.Content))
	for i, c := range e.Content {
		ids[i] = c.ID
	}
	var data []byte
	err := r.ReadChunks(context.Background(), ids, func(b []byte) error {
		data = append(data, b...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return data
}
