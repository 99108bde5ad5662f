package ext4

import (
	"os"
	"path/filepath"
	"testing"
)

func openImage(t testing.TB, path string) *FS {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := Open(f, st.Size())
	if err != nil {
		t.Fatalf("Open %s: %v", path, err)
	}
	return fsys
}

func TestVariantsMatchLoopMount(t *testing.T) {
	for _, v := range fixtureVariants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			img := variantImage(t, v.name, v.args)
			fsys := openImage(t, img)
			CompareImageWithLoopMount(t, fsys, img)
		})
	}
}

func TestKernelWrittenMatchesLoopMount(t *testing.T) {
	img := kernelImage(t)
	CompareImageWithLoopMount(t, openImage(t, img), img)
}

func TestVariantsMatchDebugfs(t *testing.T) {
	for _, v := range fixtureVariants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			img := variantImage(t, v.name, v.args)
			fsys := openImage(t, img)
			CompareImageWithDebugfs(t, fsys, img, "/bigdir/")
			CheckUsedBlocks(t, fsys)
			checkDirShapes(t, fsys, img)
		})
	}
}

// checkDirShapes checks that the variants hold the directories they are
// built for: /bigdir an htree (the kernel wrote it) with an index level
// below the root when blocks are 1 KiB, /lineardir a linear directory of
// several blocks (mke2fs -d wrote it).
func checkDirShapes(t *testing.T, fsys *FS, img string) {
	t.Helper()
	big, in := inodeOf(t, fsys, "/bigdir")
	if in.Flags&FlagIndex == 0 {
		t.Errorf("/bigdir is not an htree directory (flags 0x%x)", in.Flags)
	} else {
		ext, err := fsys.Extents(big)
		if err != nil || len(ext) == 0 || ext[0].Logical != 0 {
			t.Fatalf("/bigdir extents %v %v", ext, err)
		}
		f, err := os.Open(img)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		root := make([]byte, fsys.BlockSize())
		if _, err := f.ReadAt(root, int64(ext[0].Physical)*int64(len(root))); err != nil {
			t.Fatal(err)
		}
		// dx_root: "." (12 bytes), ".." header (12), then dx_root_info
		// with indirect_levels at byte 0x1e.
		levels := root[0x1e]
		if want := map[uint32]uint8{1024: 1, 4096: 0}[fsys.BlockSize()]; levels != want {
			t.Errorf("/bigdir htree has %d index levels below the root, want %d", levels, want)
		}
		t.Logf("/bigdir: htree, %d bytes, %d index levels below the root", in.Size, levels)
	}
	_, lin := inodeOf(t, fsys, "/lineardir")
	if lin.Flags&FlagIndex != 0 || lin.Size < 4*uint64(fsys.BlockSize()) {
		t.Errorf("/lineardir: flags 0x%x, size %d: want a linear directory of several blocks", lin.Flags, lin.Size)
	}
}

func TestKernelWrittenMatchesDebugfs(t *testing.T) {
	img := kernelImage(t)
	fsys := openImage(t, img)
	CompareImageWithDebugfs(t, fsys, img, "")
	CheckUsedBlocks(t, fsys)
	// The kernel-written files must show what the image was made for.
	mustExtents := func(name string, check func([]Extent) bool) {
		var ino uint32
		fsys.Walk(func(p []byte, i uint32, _ *Inode) error {
			if string(p) == "/"+name {
				ino = i
			}
			return nil
		})
		ext, err := fsys.Extents(ino)
		if err != nil || !check(ext) {
			t.Errorf("%s: unexpected extents %v (%v)", name, ext, err)
		}
	}
	mustExtents("falloc", func(e []Extent) bool { return len(e) > 0 && e[0].Uninit })
	mustExtents("falloc_partial", func(e []Extent) bool {
		var init, uninit bool
		for _, x := range e {
			init, uninit = init || !x.Uninit, uninit || x.Uninit
		}
		return init && uninit
	})
	mustExtents("frag_a", func(e []Extent) bool { return len(e) > 5 })
}

func TestFeatureImagesMatchLoopMount(t *testing.T) {
	for _, name := range []string{"eainode", "casefold"} {
		t.Run(name, func(t *testing.T) {
			img := featureImage(t, name)
			fsys := openImage(t, img)
			CompareImageWithLoopMount(t, fsys, img)
			CompareImageWithDebugfs(t, fsys, img, "")
			CheckUsedBlocks(t, fsys)
		})
	}
}

func TestEAInodeValues(t *testing.T) {
	fsys := openImage(t, featureImage(t, "eainode"))
	ino, _ := inodeOf(t, fsys, "/f")
	xs, err := fsys.Xattrs(ino)
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[string]int{}
	for _, x := range xs {
		sizes[x.Name] = len(x.Value)
	}
	if sizes["user.big8k"] != 8000 || sizes["user.big60k"] != 60000 || sizes["user.small"] != 1 {
		t.Errorf("xattr sizes %v", sizes)
	}
	// prove the values really live in ea_inodes
	in, _ := fsys.Inode(ino)
	all, err := fsys.inodeXattrs(in, false)
	if err != nil || len(all) != 3 {
		t.Fatalf("raw xattrs %d %v", len(all), err)
	}
}

// Test64KBlocks compares a 64 KiB-block image with the tree it was made
// from (the kernel here cannot mount it).
func Test64KBlocks(t *testing.T) {
	img := featureImage(t, "bs64k")
	fsys := openImage(t, img)
	if fsys.BlockSize() != 65536 {
		t.Fatalf("block size %d", fsys.BlockSize())
	}
	CompareImageWithSourceTree(t, fsys, filepath.Join(filepath.Dir(img), "bs64k-src"))
	CompareImageWithDebugfs(t, fsys, img, "")
	CheckUsedBlocks(t, fsys)
}
