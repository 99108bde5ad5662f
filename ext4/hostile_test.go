package ext4

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// hostileTreeScript: a small tree whose names the test then patches on disk
// into names no path can hold. Each placeholder has the length of the name
// it becomes (a_b -> "a/b", D -> ".", ...).
const hostileTreeScript = `
S="$OUT/src"; mkdir -p "$S/d/x_y" "$S/inl"; cd "$S"
echo slash > d/a_b; echo escaped > 'd/a%2Fb'; echo nul > d/n_l
echo dot > d/D; echo dotdot > d/DD; echo empty > d/E
echo first > d/dupA; echo second > d/dupB
echo child > d/x_y/child
echo q > d/Q; echo pp > d/PP; echo ok > d/ok
echo ij > inl/i_j; echo k > inl/K
for v in "ext4:-t ext4" "nocsum:-t ext4 -O ^metadata_csum" "ext2:-t ext2" \
         "nofiletype:-t ext2 -O ^filetype" "inline:-t ext4 -O inline_data,^metadata_csum"; do
  truncate -s 1M "$OUT/${v%%:*}.img"; mke2fs -q -F -b 1024 -N 64 ${v#*:} -d "$S" "$OUT/${v%%:*}.img"
done
`

// direntPatch turns entry name in directory dir into newName; ino, if not
// zero, also replaces the inode the entry names.
type direntPatch struct {
	dir, name, newName string
	ino                func(fsys *FS) uint32
}

func pathIno(t *testing.T, path string) func(*FS) uint32 {
	return func(fsys *FS) uint32 { i, _ := inodeOf(t, fsys, path); return i }
}

var hostilePatches = []direntPatch{
	{dir: "/d", name: "a_b", newName: "a/b"},
	{dir: "/d", name: "n_l", newName: "n\x00l"},
	{dir: "/d", name: "D", newName: "."},
	{dir: "/d", name: "DD", newName: ".."},
	{dir: "/d", name: "E", newName: ""},
	{dir: "/d", name: "dupB", newName: "dupA"},
	{dir: "/d", name: "x_y", newName: "x/y"},
	{dir: "/inl", name: "i_j", newName: "i/j"},
	{dir: "/inl", name: "K", newName: "."},
}

// The same-meaning duplicates: a second "." naming the directory itself and
// a second ".." naming its parent; and a real ".." naming another directory.
func dupDotPatches(t *testing.T) []direntPatch {
	return []direntPatch{
		{dir: "/d", name: "Q", newName: ".", ino: pathIno(t, "/d")},
		{dir: "/d", name: "PP", newName: "..", ino: func(*FS) uint32 { return RootIno }},
		{dir: "/lost+found", name: "..", newName: "..", ino: pathIno(t, "/d")},
	}
}

// patchDirents applies patches to a copy of img, recomputing directory
// block checksums under metadata_csum. Inline directories are patched in
// the inode (the inline variant has no metadata_csum).
func patchDirents(t *testing.T, img []byte, patches []direntPatch) []byte {
	t.Helper()
	fsys, err := openBytes(img)
	if err != nil {
		t.Fatal(err)
	}
	out := bytes.Clone(img)
	le := binary.LittleEndian
	for _, p := range patches {
		dirIno, dir := inodeOf(t, fsys, p.dir)
		var newIno uint32
		if p.ino != nil {
			newIno = p.ino(fsys)
		}
		// areas: (byte offset of the area in the image, its length, block for the checksum)
		type area struct {
			off, n int64
			blk    uint64
		}
		var areas []area
		if dir.HasInlineData() {
			if fsys.sb.HasMetadataCsum() {
				t.Fatal("patching inline directories under metadata_csum is not supported")
			}
			areas = append(areas, area{inodeOffset(t, fsys, dirIno) + 0x28 + 4, 56, 0})
		} else {
			ext, err := fsys.Extents(dirIno)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ext {
				for i := uint64(0); i < e.Len; i++ {
					areas = append(areas, area{int64((e.Physical + i) * fsys.bs), int64(fsys.bs), e.Physical + i})
				}
			}
		}
		found := false
		for _, a := range areas {
			b := out[a.off : a.off+a.n]
			for q := 0; q+8 <= len(b); {
				rl := int(le.Uint16(b[q+4:]))
				nl := int(b[q+6])
				if rl < 8 {
					break
				}
				if le.Uint32(b[q:]) != 0 && string(b[q+8:q+8+nl]) == p.name {
					if len(p.newName) > 0 && len(p.newName) != nl {
						t.Fatalf("patch %q -> %q changes the length", p.name, p.newName)
					}
					copy(b[q+8:], p.newName)
					b[q+6] = byte(len(p.newName))
					if newIno != 0 {
						le.PutUint32(b[q:], newIno)
					}
					found = true
					if a.blk != 0 && fsys.sb.HasMetadataCsum() {
						fixDirBlockCsum(fsys, b, dirIno, dir.Generation)
					}
					break
				}
				q += rl
			}
			if found {
				break
			}
		}
		if !found {
			t.Fatalf("entry %q not found in %s", p.name, p.dir)
		}
	}
	return out
}

// fixDirBlockCsum recomputes the checksum in a directory block's tail
// (struct ext4_dir_entry_tail: the last 12 bytes).
func fixDirBlockCsum(fsys *FS, b []byte, ino, gen uint32) {
	le := binary.LittleEndian
	tail := b[len(b)-12:]
	if le.Uint32(tail[0:]) != 0 || le.Uint16(tail[4:]) != 12 || tail[7] != 0xDE {
		panic("directory block without a checksum tail")
	}
	var n [4]byte
	le.PutUint32(n[:], ino)
	c := crc32cRaw(fsys.sb.ChecksumSeed, n[:])
	le.PutUint32(n[:], gen)
	c = crc32cRaw(c, n[:])
	c = crc32cRaw(c, b[:len(b)-12])
	le.PutUint32(tail[8:], c)
}

// checkPathsUsable applies the rules a mount, a tree clone and a fresh
// export need of the walked paths: every component a real name (not empty,
// ".", ".." and without "/" or NUL, at most 255 bytes), every parent walked
// as a directory before its children, no path twice.
func checkPathsUsable(t *testing.T, paths map[string]uint32, dirs map[string]bool) {
	t.Helper()
	for p := range paths {
		if p == "/" {
			continue
		}
		i := strings.LastIndexByte(p, '/')
		parent, name := p[:i], p[i+1:]
		if parent == "" {
			parent = "/"
		}
		if name == "" || name == "." || name == ".." || strings.ContainsRune(name, 0) || len(name) > 255 {
			t.Errorf("path %q: component %q cannot be a file name", p, name)
		}
		if !dirs[parent] {
			t.Errorf("path %q: parent %q was not walked as a directory", p, parent)
		}
	}
}

// walkAll walks fsys, failing on a path reported twice.
func walkAll(t *testing.T, fsys *FS) (paths map[string]uint32, dirs map[string]bool, err error) {
	paths, dirs = map[string]uint32{}, map[string]bool{}
	err = fsys.Walk(func(p []byte, ino uint32, in *Inode) error {
		if _, dup := paths[string(p)]; dup {
			t.Errorf("path %q reported twice", p)
		}
		paths[string(p)] = ino
		if in.IsDir() {
			dirs[string(p)] = true
		}
		return nil
	})
	return paths, dirs, err
}

// e2fsckSays runs e2fsck -fn on img and returns its output (for the log:
// what the reference tool makes of a hostile image).
func e2fsckSays(t *testing.T, img []byte) string {
	p := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(p, img, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("e2fsck", "-fn", p).CombinedOutput()
	return fmt.Sprintf("%s(e2fsck: %v)", out, err)
}

// TestHostileNames: directory entries whose names cannot be a path
// component ("/" or NUL inside, empty, a second "." or "..") and
// duplicate names are kept under an escaped, unique name with a warning;
// none is dropped silently, and every walked path is usable.
func TestHostileNames(t *testing.T) {
	dir := cachedBuild(t, "hostile", hostileTreeScript)
	for _, variant := range []string{"ext4", "nocsum", "ext2", "nofiletype", "inline"} {
		t.Run(variant, func(t *testing.T) {
			pristine, err := os.ReadFile(filepath.Join(dir, variant+".img"))
			if err != nil {
				t.Fatal(err)
			}
			pfs, err := openBytes(pristine)
			if err != nil {
				t.Fatal(err)
			}
			if variant == "inline" {
				if _, in := inodeOf(t, pfs, "/inl"); !in.HasInlineData() {
					t.Fatal("/inl is not an inline directory (fixture changed?)")
				}
			}
			want := map[string]string{} // path -> original path of its inode
			for _, p := range []string{"/", "/d", "/inl", "/lost+found", "/d/ok", "/d/a%2Fb", "/d/dupA", "/d/x_y/child"} {
				want[p] = p
			}
			if variant == "nofiletype" {
				// mke2fs -d never sets the type byte without filetype: the
				// reader must ignore it there (name_len is 8 bits).
				img := patchTypeByte(t, pristine, "/d", "ok", 7)
				fsys, err := openBytes(img)
				if err != nil {
					t.Fatal(err)
				}
				paths, _, err := walkAll(t, fsys)
				if err != nil || paths["/d/ok"] == 0 {
					t.Errorf("type byte 7 on a filesystem without filetype: walk %v, /d/ok found %v", err, paths["/d/ok"] != 0)
				}
			}
			img := patchDirents(t, pristine, append(hostilePatches, dupDotPatches(t)...))
			for from, to := range map[string]string{
				"/d/a_b": "/d/a%2Fb~2", "/d/n_l": "/d/n%00l", "/d/D": "/d/%2E", "/d/DD": "/d/%2E%2E",
				"/d/E": "/d/%", "/d/dupB": "/d/dupA~2", "/d/x_y": "/d/x%2Fy", "/d/x_y/child": "/d/x%2Fy/child",
				"/inl/i_j": "/inl/i%2Fj", "/inl/K": "/inl/%2E",
			} {
				want[to] = from
			}
			delete(want, "/d/x_y/child")
			fsys, err := openBytes(img)
			if err != nil {
				t.Fatal(err)
			}
			var warnings []string
			fsys.Warn = func(msg string) { warnings = append(warnings, msg) }
			paths, dirs, err := walkAll(t, fsys)
			if err != nil {
				t.Fatal(err)
			}
			checkPathsUsable(t, paths, dirs)
			var got, exp []string
			for p := range paths {
				got = append(got, fmt.Sprintf("%q", p))
			}
			for p := range want {
				exp = append(exp, fmt.Sprintf("%q", p))
			}
			sort.Strings(got)
			sort.Strings(exp)
			if strings.Join(got, " ") != strings.Join(exp, " ") {
				t.Fatalf("walked paths\n  %s\nwant\n  %s", strings.Join(got, " "), strings.Join(exp, " "))
			}
			for p, orig := range want {
				if p == "/d/dupA" || p == "/d/dupA~2" {
					continue // which duplicate keeps the name depends on the on-disk order
				}
				if wantIno, _ := inodeOf(t, pfs, orig); paths[p] != wantIno {
					t.Errorf("%q is inode %d, want %d (%s in the pristine image)", p, paths[p], wantIno, orig)
				}
			}
			dupA, _ := inodeOf(t, pfs, "/d/dupA")
			dupB, _ := inodeOf(t, pfs, "/d/dupB")
			if got := []uint32{paths["/d/dupA"], paths["/d/dupA~2"]}; !(got[0] == dupA && got[1] == dupB || got[0] == dupB && got[1] == dupA) {
				t.Errorf("duplicates: dupA %d, dupA~2 %d; want inodes %d and %d", got[0], got[1], dupA, dupB)
			}
			// One warning per entry: 9 escaped, 2 same-meaning dot entries
			// ignored, the wrong real ".." of /lost+found.
			dIno, _ := inodeOf(t, pfs, "/d")
			lfIno, _ := inodeOf(t, pfs, "/lost+found")
			for _, w := range []string{`"a/b"`, `"n\x00l"`, `"."`, `".."`, `""`, `"dupA"`, `"x/y"`, `"i/j"`, "a%2Fb~2", "ignored",
				fmt.Sprintf("directory inode %d (/d)", dIno),
				fmt.Sprintf(`directory inode %d (/lost+found): its ".." entry names inode %d, not its parent 2`, lfIno, dIno)} {
				if !strings.Contains(strings.Join(warnings, "\n"), w) {
					t.Errorf("no warning mentions %s", w)
				}
			}
			if len(warnings) != 12 {
				t.Errorf("%d warnings, want 12:\n%s", len(warnings), strings.Join(warnings, "\n"))
			}
			t.Logf("warnings:\n%s", strings.Join(warnings, "\n"))
			if err := exerciseAll(fsys); err != nil {
				t.Error(err)
			}
			t.Logf("e2fsck -fn on the hostile image:\n%s", e2fsckSays(t, img))
		})
	}
}

// patchTypeByte sets the byte after name_len (file_type with the filetype
// feature) of entry name in directory dir.
func patchTypeByte(t *testing.T, img []byte, dir, name string, v byte) []byte {
	t.Helper()
	fsys, err := openBytes(img)
	if err != nil {
		t.Fatal(err)
	}
	out := bytes.Clone(img)
	dirIno, _ := inodeOf(t, fsys, dir)
	ext, err := fsys.Extents(dirIno)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	for _, e := range ext {
		for i := uint64(0); i < e.Len; i++ {
			b := out[(e.Physical+i)*fsys.bs : (e.Physical+i+1)*fsys.bs]
			for q := 0; q+8 <= len(b); q += int(le.Uint16(b[q+4:])) {
				if le.Uint16(b[q+4:]) < 8 {
					break
				}
				if string(b[q+8:q+8+int(b[q+6])]) == name {
					b[q+7] = v
					return out
				}
			}
		}
	}
	t.Fatalf("entry %q not found in %s", name, dir)
	return nil
}

func TestUsableNames(t *testing.T) {
	long := bytes.Repeat([]byte("x"), 254)
	in := []DirEntry{
		{Name: []byte("a/b"), Ino: 20},
		{Name: []byte("a%2Fb"), Ino: 21},
		{Name: []byte("a%2Fb~2"), Ino: 22},
		{Name: []byte("a/b"), Ino: 23},
		{Name: append(bytes.Clone(long), '/'), Ino: 24}, // 255 bytes, escapes to 257
		{Name: []byte("same"), Ino: 25},
		{Name: []byte("same"), Ino: 26},
		{Name: []byte("same"), Ino: 27},
		{Name: []byte("%"), Ino: 28},
		{Name: []byte(""), Ino: 29},
		{Name: []byte("."), Ino: 10}, // the directory itself
		{Name: []byte(".."), Ino: 30},
	}
	var warnings []string
	w := &walker{fs: &FS{Warn: func(m string) { warnings = append(warnings, m) }}}
	got := map[string]uint32{}
	for _, e := range w.usableNames([]byte("/dir"), 10, 2, in) {
		if _, dup := got[string(e.Name)]; dup {
			t.Errorf("name %q twice", e.Name)
		}
		got[string(e.Name)] = e.Ino
	}
	want := map[string]uint32{
		"a%2Fb": 21, "a%2Fb~2": 22, "a%2Fb~3": 20, "a%2Fb~4": 23,
		string(long) + "%": 24, // cut to 255 bytes
		"same":             25, "same~2": 26, "same~3": 27,
		"%": 28, "%~2": 29, "%2E%2E": 30,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("names\n  %v\nwant\n  %v", got, want)
	}
	if len(warnings) != 8 {
		t.Errorf("%d warnings, want 8:\n%s", len(warnings), strings.Join(warnings, "\n"))
	}
	// The common case: nothing to do, nothing allocated beyond the sort.
	ok := []DirEntry{{Name: []byte("b"), Ino: 3}, {Name: []byte("a"), Ino: 4}}
	if out := w.usableNames(nil, 2, 2, ok); len(out) != 2 || string(out[0].Name) != "a" || len(warnings) != 8 {
		t.Errorf("usable names changed: %v", out)
	}
}
