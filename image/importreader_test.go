package image_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"mis/fixtures"
	"mis/image"
	"mis/layer"
	"mis/manifest"
	"mis/repo"
	"mis/testkit/treecmp"
)

// importReader runs ImportReader and saves the result as ref.
func importReader(t *testing.T, r *repo.Repo, src io.ReaderAt, size int64, ref string, opt image.ImportOptions) (*manifest.Manifest, image.ImportStats) {
	t.Helper()
	ctx := context.Background()
	w, err := r.OpenWriter(ctx, "test import")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	m, st, err := image.ImportReader(ctx, w, r.Config().Chunker, src, size, ref, opt)
	if err != nil {
		t.Fatalf("import %s: %v", ref, err)
	}
	lr, _ := layer.ParseRef(ref)
	if err := layer.Save(ctx, w, lr, &layer.Version{Source: ref}, m); err != nil {
		t.Fatal(err)
	}
	return m, st
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// ImportReader over the image file gives Import's manifest; so does a
// reader that cannot report holes (every zero is read: holes and read
// zeros classify alike).
func TestImportReaderMatchesImport(t *testing.T) {
	for _, kind := range []string{"ext4", "gpt", "ext4-1k"} {
		t.Run(kind, func(t *testing.T) {
			src := fixtures.Path(t, kind)
			size := fileSize(t, src)
			r := newRepo(t)
			_, want, wantSt := importImageStats(t, r, src, "img:path")
			f, err := os.Open(src)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, st := importReader(t, r, f, size, "img:reader", image.ImportOptions{})
			if err := sameManifest(want, got); err != nil {
				t.Fatalf("ImportReader(*os.File) differs from Import: %v", err)
			}
			if st.ResidualReadBytes != wantSt.ResidualReadBytes {
				t.Errorf("ImportReader(*os.File) read %d residual bytes, Import %d", st.ResidualReadBytes, wantSt.ResidualReadBytes)
			}
			got, st = importReader(t, r, struct{ io.ReaderAt }{f}, size, "img:plain-reader", image.ImportOptions{})
			if err := sameManifest(want, got); err != nil {
				t.Fatalf("ImportReader without a hole finder differs from Import: %v", err)
			}
			if st.ResidualReadBytes <= wantSt.ResidualReadBytes || st.ResidualReadBytes < size/2 {
				t.Fatalf("without a hole finder read %d residual bytes of a %d-byte image (%d with)", st.ResidualReadBytes, size, wantSt.ResidualReadBytes)
			}
		})
	}
}

// importImageStats is importImage through ImportWithStats.
func importImageStats(t *testing.T, r *repo.Repo, path, ref string) (*layer.Version, *manifest.Manifest, image.ImportStats) {
	t.Helper()
	ctx := context.Background()
	w, err := r.OpenWriter(ctx, "test import")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	m, st, err := image.ImportWithStats(ctx, w, r.Config().Chunker, path, image.ImportOptions{})
	if err != nil {
		t.Fatalf("import %s: %v", path, err)
	}
	lr, _ := layer.ParseRef(ref)
	v := &layer.Version{Source: path}
	if err := layer.Save(ctx, w, lr, v, m); err != nil {
		t.Fatal(err)
	}
	return v, m, st
}

// sameManifest says where two manifests first differ.
func sameManifest(a, b *manifest.Manifest) error {
	if !reflect.DeepEqual(a.Residual, b.Residual) {
		return fmt.Errorf("residual runs differ (%d vs %d runs)", len(a.Residual), len(b.Residual))
	}
	if !reflect.DeepEqual(a.ResidualData, b.ResidualData) {
		return fmt.Errorf("residual data differs (%d vs %d chunks)", len(a.ResidualData), len(b.ResidualData))
	}
	if len(a.Filesystems) != len(b.Filesystems) {
		return fmt.Errorf("%d vs %d filesystems", len(a.Filesystems), len(b.Filesystems))
	}
	for i := range a.Filesystems {
		fa, fb := a.Filesystems[i], b.Filesystems[i]
		if len(fa.Files) != len(fb.Files) {
			return fmt.Errorf("filesystem %d: %d vs %d files", i, len(fa.Files), len(fb.Files))
		}
		for j := range fa.Files {
			if !reflect.DeepEqual(fa.Files[j], fb.Files[j]) {
				return fmt.Errorf("filesystem %d: inode %d differs", i, fa.Files[j].Ino)
			}
		}
	}
	if !reflect.DeepEqual(a, b) {
		return fmt.Errorf("manifests differ outside runs and files")
	}
	return nil
}

const blk = 4096

// overlay is a clone's view of a disk: a base image plus the blocks that
// differ from it held in memory, as mountfs would serve a clone. It knows
// which blocks are all zeros and reports them as holes.
type overlay struct {
	base    *os.File
	size    int64
	changed map[int64][]byte // block number -> the block's new bytes
	cum     []int32          // cum[b]: changed blocks before block b
	zero    []bool           // block b of the new disk is all zeros
}

// newOverlay compares base with newer, block by block; both have one size.
func newOverlay(t *testing.T, base, newer string) *overlay {
	t.Helper()
	fb, err := os.Open(base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fb.Close() })
	fn, err := os.Open(newer)
	if err != nil {
		t.Fatal(err)
	}
	defer fn.Close()
	size := fileSize(t, base)
	if fileSize(t, newer) != size {
		t.Fatal("images differ in size")
	}
	blocks := (size + blk - 1) / blk
	o := &overlay{base: fb, size: size, changed: map[int64][]byte{}, cum: make([]int32, blocks+1), zero: make([]bool, blocks)}
	a, b := make([]byte, 1<<20), make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(a)) {
		n := min(int64(len(a)), size-off)
		if _, err := fb.ReadAt(a[:n], off); err != nil {
			t.Fatal(err)
		}
		if _, err := fn.ReadAt(b[:n], off); err != nil {
			t.Fatal(err)
		}
		for p := int64(0); p < n; p += blk {
			q := min(p+blk, n)
			bn := (off + p) / blk
			o.zero[bn] = bytes.Count(b[p:q], []byte{0}) == int(q-p)
			if !bytes.Equal(a[p:q], b[p:q]) {
				o.changed[bn] = bytes.Clone(b[p:q])
			}
		}
	}
	for bn := int64(0); bn < blocks; bn++ {
		o.cum[bn+1] = o.cum[bn]
		if o.changed[bn] != nil {
			o.cum[bn+1]++
		}
	}
	return o
}

func (o *overlay) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		if pos >= o.size {
			return n, io.EOF
		}
		bn, in := pos/blk, pos%blk
		m := min(int64(len(p)-n), blk-in, o.size-pos)
		if d, ok := o.changed[bn]; ok {
			copy(p[n:n+int(m)], d[in:])
		} else if _, err := o.base.ReadAt(p[n:n+int(m)], pos); err != nil {
			return n, err
		}
		n += int(m)
	}
	return n, nil
}

// unchanged is the hint a clone gives: no block in the range was written.
func (o *overlay) unchanged(off, n int64) bool {
	if n <= 0 || off < 0 || off+n > o.size {
		return false
	}
	return o.cum[(off+n-1)/blk+1] == o.cum[off/blk]
}

func (o *overlay) NextData(off int64) (int64, bool) {
	for bn := off / blk; bn < int64(len(o.zero)); bn++ {
		if !o.zero[bn] {
			return max(off, bn*blk), true
		}
	}
	return 0, false
}

func (o *overlay) NextHole(off int64) int64 {
	bn := off / blk
	for bn < int64(len(o.zero)) && !o.zero[bn] {
		bn++
	}
	return min(max(off, bn*blk), o.size)
}

// editedCopy returns a copy of src changed through a kernel loop mount: a
// new file, part of the biggest file overwritten, a file removed, a mode
// change.
func editedCopy(t *testing.T, src string) string {
	t.Helper()
	dir := t.TempDir()
	v2 := filepath.Join(dir, "v2.img")
	run(t, "cp", "--sparse=always", src, v2)
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	// noinit_itable: no background zeroing of inode tables, whose timing
	// would make the changed set vary from run to run.
	run(t, "mount", "-o", "loop,noinit_itable", v2, mnt)
	data := make([]byte, 2<<20)
	rand.Read(data)
	err := os.WriteFile(filepath.Join(mnt, "added.bin"), data[:1<<20], 0o644)
	if err == nil {
		err = overwriteBiggestFile(mnt, data[1<<20:])
	}
	if err == nil {
		err = removeFile(mnt, 1, 64<<10)
	}
	if err == nil {
		err = os.Chmod(mnt, 0o700)
	}
	run(t, "umount", mnt)
	if err != nil {
		t.Fatal(err)
	}
	return v2
}

// A clone's disk (an overlay whose Unchanged comes from a real block diff)
// imports to the very manifest a plain import of the same bytes gives,
// while reading only a small part of the residual data.
func TestImportReaderReusesUnchangedResidual(t *testing.T) {
	treecmp.RequireRoot(t)
	src := fixtures.Path(t, "ext4")
	v2 := editedCopy(t, src)
	o := newOverlay(t, src, v2)
	t.Logf("%d of %d blocks changed", len(o.changed), len(o.zero))

	r := newRepo(t)
	_, m1 := importImage(t, r, src, "img:v1", image.ImportOptions{})

	f2, err := os.Open(v2)
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	// No hole finder: the figure to compare with is every residual byte.
	plain, plainSt := importReader(t, r, struct{ io.ReaderAt }{f2}, o.size, "img:plain", image.ImportOptions{Parent: m1})
	calls := 0
	hinted, st := importReader(t, r, o, o.size, "img:hinted", image.ImportOptions{Parent: m1,
		Unchanged: func(off, n int64) bool { calls++; return o.unchanged(off, n) }})
	t.Logf("plain: residual read %d; hinted: residual read %d, reused %d, files read %d reused %d, %d Unchanged calls",
		plainSt.ResidualReadBytes, st.ResidualReadBytes, st.ResidualReusedBytes, st.ReadFiles, st.ReusedFiles, calls)

	if out, _ := exportVersion(t, r, "img:hinted"); sha(t, out) != sha(t, v2) {
		t.Fatal("hinted import does not export byte-identical to v2")
	}
	if err := sameManifest(plain, hinted); err != nil {
		t.Fatalf("hinted import differs from a plain one: %v", err)
	}
	var data int64
	for _, run := range hinted.Residual {
		if !run.Zero {
			data += run.Len
		}
	}
	changed := int64(len(o.changed)) * blk
	if st.ResidualReusedBytes < data*3/4-changed {
		t.Errorf("reused %d of %d residual data bytes, want most", st.ResidualReusedBytes, data)
	}
	// What must be read: the changed blocks, and around each change the
	// chunks that straddle it; far less than everything.
	if st.ResidualReadBytes > changed+8<<20 || st.ResidualReadBytes > plainSt.ResidualReadBytes/4 {
		t.Errorf("hinted import read %d residual bytes (plain %d, residual data %d, changed %d)", st.ResidualReadBytes, plainSt.ResidualReadBytes, data, changed)
	}
	if st.ReusedFilesystems != 0 {
		t.Errorf("the changed filesystem was taken whole from the parent")
	}
	if st.ReadFiles == 0 || st.ReadFiles > 3 {
		t.Errorf("hinted import read %d files, want the new and the overwritten one", st.ReadFiles)
	}

	// A hint that vouches for nothing changes nothing but the work done.
	none, noneSt := importReader(t, r, o, o.size, "img:none", image.ImportOptions{Parent: m1,
		Unchanged: func(off, n int64) bool { return false }})
	bare, _ := importReader(t, r, o, o.size, "img:bare", image.ImportOptions{Parent: m1})
	if err := sameManifest(bare, none); err != nil {
		t.Fatalf("an Unchanged that says false everywhere changed the manifest: %v", err)
	}
	if noneSt.ResidualReusedBytes != 0 || noneSt.ReusedFiles != 0 {
		t.Fatalf("an Unchanged that says false everywhere reused %d residual bytes, %d files", noneSt.ResidualReusedBytes, noneSt.ReusedFiles)
	}
	if err := sameManifest(plain, bare); err != nil {
		t.Fatalf("overlay with holes imports differently from the file: %v", err)
	}
}

// The same image again as a clone with no writes: nothing of the residual
// is read, every file is reused, and the result is the first manifest.
func TestImportReaderUnchangedCloneReadsNoResidual(t *testing.T) {
	for _, kind := range []string{"ext4", "gpt"} {
		t.Run(kind, func(t *testing.T) {
			src := fixtures.Path(t, kind)
			r := newRepo(t)
			_, m1 := importImage(t, r, src, "img:v1", image.ImportOptions{})
			o := newOverlay(t, src, src)
			m2, st := importReader(t, r, o, o.size, "img:v2", image.ImportOptions{Parent: m1, Unchanged: o.unchanged})
			if st.ResidualReadBytes != 0 || st.ReadBytes != 0 {
				t.Fatalf("unchanged clone read %d residual and %d file bytes", st.ResidualReadBytes, st.ReadBytes)
			}
			if st.ReusedFilesystems != int64(len(m1.Filesystems)) {
				t.Fatalf("unchanged clone walked %d of %d filesystems again", int64(len(m1.Filesystems))-st.ReusedFilesystems, len(m1.Filesystems))
			}
			if err := sameManifest(m1, m2); err != nil {
				t.Fatalf("unchanged clone imports differently: %v", err)
			}
		})
	}
}

// A raw write that leaves the inode alone is invisible to the inode test
// but not to Unchanged: the file is read again and the export is exact.
func TestUnchangedSeesRawWrites(t *testing.T) {
	treecmp.RequireRoot(t)
	src := fixtures.Path(t, "ext4")
	r := newRepo(t)
	_, m1 := importImage(t, r, src, "img:v1", image.ImportOptions{})
	v3 := filepath.Join(t.TempDir(), "v3.img")
	run(t, "cp", "--sparse=always", src, v3)
	victim := largestPlacedFile(m1)
	f, err := os.OpenFile(v3, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("scribble"), victim.Extents[0].DiskOff+100)
	f.Close()
	o := newOverlay(t, src, v3)
	_, st := importReader(t, r, o, o.size, "img:v3", image.ImportOptions{Parent: m1, Unchanged: o.unchanged})
	if st.ReadFiles != 1 {
		t.Fatalf("read %d files, want the scribbled one", st.ReadFiles)
	}
	if out, _ := exportVersion(t, r, "img:v3"); sha(t, out) != sha(t, v3) {
		t.Fatal("scribbled image does not export byte-identical")
	}
}

// removeFile removes the first regular file under dir (walk order) of
// at least lo and less than hi bytes.
func removeFile(dir string, lo, hi int64) error {
	var victim string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && victim == "" && fi.Mode().IsRegular() && fi.Size() >= lo && fi.Size() < hi {
			victim = p
		}
		return nil
	})
	if victim == "" {
		return fmt.Errorf("no small file to remove under %s", dir)
	}
	return os.Remove(victim)
}

// Backwards: the parent is a copy with a file removed, whose blocks hold
// the file's old bytes as residual data; in the image imported now they are
// file content again, unchanged. The parent's residual chunks over them
// must not be taken: the result is the image imported alone.
func TestResidualReuseWhereParentResidualBecameContent(t *testing.T) {
	treecmp.RequireRoot(t)
	src := fixtures.Path(t, "ext4")
	dir := t.TempDir()
	removed := filepath.Join(dir, "removed.img")
	run(t, "cp", "--sparse=always", src, removed)
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	run(t, "mount", "-o", "loop,noinit_itable", removed, mnt)
	err := removeFile(mnt, 200<<10, 4<<20)
	run(t, "umount", mnt)
	if err != nil {
		t.Fatal(err)
	}
	r := newRepo(t)
	_, m1 := importImage(t, r, src, "img:v1", image.ImportOptions{})
	_, mRemoved := importImage(t, r, removed, "img:removed", image.ImportOptions{})
	o := newOverlay(t, removed, src)
	got, st := importReader(t, r, o, o.size, "img:again", image.ImportOptions{Parent: mRemoved, Unchanged: o.unchanged})
	t.Logf("%d blocks differ; residual read %d, reused %d", len(o.changed), st.ResidualReadBytes, st.ResidualReusedBytes)
	if err := sameManifest(m1, got); err != nil {
		t.Fatalf("v1 imported against the copy differs from v1 imported alone: %v", err)
	}
	if out, _ := exportVersion(t, r, "img:again"); sha(t, out) != sha(t, src) {
		t.Fatal("v1 imported against the copy does not export byte-identical")
	}
	if st.ResidualReusedBytes == 0 {
		t.Fatal("nothing reused")
	}
}

// A disk with several partitions where a clone wrote into one: the others
// are taken whole from the parent, unwalked, and the result is still what
// a full import gives.
func TestUnchangedPartitionsTakenWhole(t *testing.T) {
	treecmp.RequireRoot(t)
	src := fixtures.Path(t, "gpt")
	r := newRepo(t)
	_, m1 := importImage(t, r, src, "img:v1", image.ImportOptions{})
	fss := extFilesystems(m1)
	if len(m1.Filesystems) < 2 || len(fss) == 0 {
		t.Fatalf("fixture has %d filesystems, %d ext: want several", len(m1.Filesystems), len(fss))
	}
	dir := t.TempDir()
	v2 := filepath.Join(dir, "v2.img")
	run(t, "cp", "--sparse=always", src, v2)
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	run(t, "mount", "-o", fmt.Sprintf("loop,noinit_itable,offset=%d,sizelimit=%d", fss[0].Offset, fss[0].Size), v2, mnt)
	err := os.WriteFile(filepath.Join(mnt, "clone-wrote-this"), bytes.Repeat([]byte("x"), 100000), 0o644)
	run(t, "umount", mnt)
	if err != nil {
		t.Fatal(err)
	}
	o := newOverlay(t, src, v2)
	f2, err := os.Open(v2)
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	plain, _ := importReader(t, r, f2, o.size, "img:plain", image.ImportOptions{Parent: m1})
	hinted, st := importReader(t, r, o, o.size, "img:hinted", image.ImportOptions{Parent: m1, Unchanged: o.unchanged})
	if err := sameManifest(plain, hinted); err != nil {
		t.Fatalf("hinted import differs from a plain one: %v", err)
	}
	if want := int64(len(m1.Filesystems) - 1); st.ReusedFilesystems != want {
		t.Fatalf("took %d filesystems whole, want %d (all but the written one)", st.ReusedFilesystems, want)
	}
	if out, _ := exportVersion(t, r, "img:hinted"); sha(t, out) != sha(t, v2) {
		t.Fatal("hinted import does not export byte-identical")
	}
}
