package ext4

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/diskfs/go-diskfs/backend/file"
	dext4 "github.com/diskfs/go-diskfs/filesystem/ext4"
)

// These tests pin go-diskfs v1.9.4's ext4 reader failures that made us
// write our own. When one fails, upstream fixed that problem.

const pinFixed = "go-diskfs fixed %s: revisit ARCHITECTURE.md and consider using it"

// diskfsCall runs fn, turning panics into errors and hangs into errHang.
func diskfsCall(d time.Duration, fn func() error) (err error) {
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("panic: %v", r)
			}
		}()
		done <- fn()
	}()
	select {
	case err = <-done:
		return err
	case <-time.After(d):
		return errHang
	}
}

var errHang = fmt.Errorf("hung (no result within the timeout)")

func diskfsOpen(path string) (*dext4.FileSystem, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, _ := f.Stat()
	var fsys *dext4.FileSystem
	err = diskfsCall(20*time.Second, func() (err error) {
		fsys, err = dext4.Read(file.New(f, true), st.Size(), 0, 512)
		return err
	})
	return fsys, err
}

// pinScript builds small images free of the long-name problem, so each
// pin test trips only over the problem it pins.
const pinScript = `
S="$TMPD/src"; mkdir -p "$S"; cd "$S"
head -c 1048576 /dev/urandom > one_mib
truncate -s 1M hole_start; dd if=/dev/urandom of=hole_start bs=4096 seek=250 count=6 conv=notrunc status=none
dd if=/dev/urandom of=hole_middle bs=4096 count=2 status=none; dd if=/dev/urandom of=hole_middle bs=4096 seek=254 count=2 conv=notrunc status=none
dd if=/dev/urandom of=hole_end bs=4096 count=2 status=none; truncate -s 1M hole_end
echo tiny > tiny
mkdir -p "$OUT"
mk() { truncate -s 16M "$OUT/$1.img"; mke2fs -q -F -b 4096 ${@:2} -d "$S" "$OUT/$1.img"; }
mk ext4 -t ext4; mk ext2 -t ext2; mk ext3 -t ext3; mk ext4-nocsum -t ext4 -O ^metadata_csum
mk ext4-128 -t ext4 -I 128; mk ext4-inline -t ext4 -O inline_data
touch "$(printf 'm%.0s' $(seq 250))"; mk longname -t ext4
`

func pinImage(t *testing.T, name string) string {
	return filepath.Join(cachedBuild(t, "diskfs-pin", pinScript), name+".img")
}

func ourContent(t *testing.T, img, path string) []byte {
	fsys := openImage(t, img)
	ino, _ := inodeOf(t, fsys, path)
	r, err := fsys.OpenFile(ino)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDiskfsPinHoles(t *testing.T) {
	img := pinImage(t, "ext4")
	d, err := diskfsOpen(img)
	if err != nil {
		t.Fatalf("go-diskfs cannot open the default ext4 image any more: %v", err)
	}
	bad := 0
	for _, name := range []string{"hole_start", "hole_middle", "hole_end"} {
		want := ourContent(t, img, "/"+name)
		got, err := diskfsReadIsolated(t, img, name, 5*time.Second)
		if err != nil || !bytes.Equal(got, want) {
			bad++
			t.Logf("go-diskfs %s: %d bytes, equal=%v, err=%v", name, len(got), bytes.Equal(got, want), err)
		}
	}
	if bad == 0 {
		t.Errorf(pinFixed, "reading files with holes")
	}
	// the control file without holes must read fine, else this pin is moot
	want := ourContent(t, img, "/one_mib")
	var got []byte
	err = diskfsCall(20*time.Second, func() (err error) { got, err = d.ReadFile("one_mib"); return err })
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("go-diskfs cannot read a plain file on this image either (%v): the holes pin tests nothing", err)
	}
}

func TestDiskfsPinLongName(t *testing.T) {
	img := pinImage(t, "longname")
	d, err := diskfsOpen(img)
	if err != nil {
		t.Fatal(err)
	}
	long := string(bytes.Repeat([]byte("m"), 250))
	err = diskfsCall(20*time.Second, func() error {
		ents, err := d.ReadDir(".")
		if err != nil {
			return err
		}
		for _, e := range ents {
			if e.Name() == long {
				return nil
			}
		}
		return fmt.Errorf("250-byte name missing from the listing")
	})
	if err == nil {
		t.Errorf(pinFixed, "names of 248+ bytes")
	}
	t.Logf("go-diskfs listing a dir with a 250-byte name: %v", err)
}

func TestDiskfsPinOpenVariants(t *testing.T) {
	for _, name := range []string{"ext2", "ext3", "ext4-nocsum", "ext4-128"} {
		t.Run(name, func(t *testing.T) {
			img := pinImage(t, name)
			d, err := diskfsOpen(img)
			if err == nil {
				// opening may work; reading a file must then be correct
				want := ourContent(t, img, "/one_mib")
				var got []byte
				err = diskfsCall(20*time.Second, func() (err error) { got, err = d.ReadFile("one_mib"); return err })
				if err == nil && !bytes.Equal(got, want) {
					err = fmt.Errorf("one_mib content differs")
				}
			}
			if err == nil {
				t.Errorf(pinFixed, "opening and reading "+name+" images")
			}
			t.Logf("go-diskfs on %s: %v", name, err)
		})
	}
}

func TestDiskfsPinInlineData(t *testing.T) {
	img := pinImage(t, "ext4-inline")
	if !ourInline(t, img, "/tiny") {
		t.Fatal("fixture: /tiny is not stored inline")
	}
	d, err := diskfsOpen(img)
	if err == nil {
		err = diskfsCall(20*time.Second, func() error {
			got, err := d.ReadFile("tiny")
			if err == nil && string(got) != "tiny\n" {
				err = fmt.Errorf("inline file read back %q", got)
			}
			return err
		})
	}
	if err == nil {
		t.Errorf(pinFixed, "inline_data")
	}
	t.Logf("go-diskfs on inline_data: %v", err)
}

func TestDiskfsPinUninitExtents(t *testing.T) {
	src := kernelImage(t)
	fsys := openImage(t, src)
	ino, _ := inodeOf(t, fsys, "/falloc")
	ext, err := fsys.Extents(ino)
	if err != nil || len(ext) == 0 || !ext[0].Uninit {
		t.Fatalf("falloc extents %v %v", ext, err)
	}
	// Put junk in the unwritten blocks: they must still read as zeros.
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	off := ext[0].Physical * fsys.bs
	for i := uint64(0); i < fsys.bs; i++ {
		b[off+i] = 0xAB
	}
	img := filepath.Join(t.TempDir(), "junk.img")
	if err := os.WriteFile(img, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if c := ourContent(t, img, "/falloc"); !bytes.Equal(c, make([]byte, len(c))) {
		t.Fatal("our reader returns stale data for an uninit extent")
	}
	d, err := diskfsOpen(img)
	if err == nil {
		err = diskfsCall(20*time.Second, func() error {
			got, err := d.ReadFile("falloc")
			if err == nil && !bytes.Equal(got, make([]byte, 1<<20)) {
				err = fmt.Errorf("uninit extent read back stale bytes")
			}
			return err
		})
	}
	if err == nil {
		t.Errorf(pinFixed, "uninitialized extents")
	}
	t.Logf("go-diskfs on uninit extents: %v", err)
}

// diskfsReadIsolated reads a file with go-diskfs in a child process, so a
// read that spins forever can be killed instead of burning a core for the
// rest of the test run.
func diskfsReadIsolated(t *testing.T, img, name string, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestDiskfsReadHelper$")
	cmd.Env = append(os.Environ(), "MIS_DISKFS_READ_IMG="+img, "MIS_DISKFS_READ_NAME="+name)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if ctx.Err() != nil {
		return nil, errHang
	}
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

// TestDiskfsReadHelper is the child side of diskfsReadIsolated.
func TestDiskfsReadHelper(t *testing.T) {
	img := os.Getenv("MIS_DISKFS_READ_IMG")
	if img == "" {
		t.Skip("helper process for diskfsReadIsolated")
	}
	d, err := diskfsOpen(img)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var b []byte
	if err := diskfsCall(time.Hour, func() (err error) { b, err = d.ReadFile(os.Getenv("MIS_DISKFS_READ_NAME")); return err }); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	os.Stdout.Write(b)
	os.Exit(0)
}

func ourInline(t *testing.T, img, path string) bool {
	_, in := inodeOf(t, openImage(t, img), path)
	return in.HasInlineData()
}
