package mountfs_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"testing"
	"time"

	"mis/fixtures"
	"mis/image"
	"mis/layer"
	"mis/mountfs"
)

// TestDiskRawMatchesExport checks that image.Export, image.ExportStream
// and the mounted disk.raw (read through FUSE) agree byte for byte, and both with the
// original image, on every default fixture kind (and the Debian image
// with MIS_FIXTURES_DEBIAN=1). Both lay the manifest's content streams
// over the disk through manifest.LayDisk; this is the test that a
// placement bug cannot hide in one of them.
func TestDiskRawMatchesExport(t *testing.T) {
	kinds := fixtures.DefaultKinds()
	if os.Getenv("MIS_FIXTURES_DEBIAN") == "1" {
		kinds = append(kinds, "debian")
	}
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			src, r := imported(t, kind)
			mnt := mountVersion(t, r, "img:v1", mountfs.Options{})
			exported := filepath.Join(t.TempDir(), "export.raw")
			if err := image.Export(context.Background(), r, mnt.m, exported, image.ExportOptions{}); err != nil {
				t.Fatalf("export: %v", err)
			}
			streamed := filepath.Join(t.TempDir(), "stream.raw")
			sf, err := os.Create(streamed)
			if err != nil {
				t.Fatal(err)
			}
			// Through a plain io.Writer, as standard output sees it.
			if err := image.ExportStream(context.Background(), r, mnt.m, struct{ io.Writer }{sf}, image.ExportOptions{}); err != nil {
				t.Fatalf("export stream: %v", err)
			}
			sf.Close()
			files := map[string]string{"export": exported, "stream": streamed, "disk.raw": filepath.Join(mnt.dir, "disk.raw"), "the image": src}
			readers := map[string]io.ReaderAt{}
			for name, path := range files {
				f, err := os.Open(path)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				st, err := f.Stat()
				if err != nil {
					t.Fatal(err)
				}
				if st.Size() != mnt.m.DiskSize {
					t.Fatalf("%s is %d bytes, the manifest says %d", name, st.Size(), mnt.m.DiskSize)
				}
				readers[name] = f
			}
			if err := sameBytes(mnt.m.DiskSize, readers, "export", "stream", "disk.raw", "the image"); err != nil {
				t.Fatal(err)
			}
			if s := mnt.log.String(); s != "" {
				t.Errorf("serving logged problems:\n%s", s)
			}
		})
	}
}

// sameBytes reads size bytes of every named reader block by block and
// reports the first offset where one differs from the first.
func sameBytes(size int64, readers map[string]io.ReaderAt, names ...string) error {
	const block = 1 << 20
	bufs := make([][]byte, len(names))
	for i := range bufs {
		bufs[i] = make([]byte, block)
	}
	for off := int64(0); off < size; off += block {
		n := min(block, size-off)
		for i, name := range names {
			if _, err := readers[name].ReadAt(bufs[i][:n], off); err != nil && !(err == io.EOF && off+n == size) {
				return fmt.Errorf("%s: read %d bytes at %d: %v", name, n, off, err)
			}
		}
		for i := 1; i < len(names); i++ {
			if !bytes.Equal(bufs[0][:n], bufs[i][:n]) {
				d := firstDiff(bufs[0][:n], bufs[i][:n])
				return fmt.Errorf("%s and %s differ at byte %d", names[0], names[i], off+int64(d))
			}
		}
	}
	return nil
}

// TestServeUntilSignalStopsWhenContextEnds: a signal the process's own
// handler took before ServeUntilSignal was installed ends the context;
// the mount must still go away (it used to serve on, ignoring the SIGINT).
func TestServeUntilSignalStopsWhenContextEnds(t *testing.T) {
	_, r := imported(t, "ext4")
	_, m, err := layer.Load(context.Background(), r, layer.Ref{Name: "img", Tag: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := mountfs.New(context.Background(), r, m, mountfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dir := t.TempDir()
	srv, err := f.Mount(dir, mountfs.MountOptions{FsName: "mis-test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan struct{})
	go func() {
		mountfs.ServeUntilSignal(ctx, srv, dir, log.New(io.Discard, "", 0))
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		mountfs.Unmount(dir, true)
		t.Fatal("still serving 20 s after its context ended")
	}
	if _, ok, _ := mountfs.FindMount(dir); ok {
		t.Fatal("still mounted")
	}
}
