package ext4

import (
	"bytes"
	"sort"
	"testing"
	"time"
)

// FuzzOpenWalk runs every read operation over small real images (ext4,
// ext2, ext3 with 128-byte inodes, inline_data; made by mke2fs -d) with
// fuzzer-chosen byte patches. Errors are fine; panics and hangs are not.
//
// Input: byte 0 picks the image; then each 4 bytes are a patch: a 24-bit
// offset (taken modulo the first 512 KiB, where the metadata of these
// images lives) and the byte to store. Raw 2 MiB images as fuzz inputs
// stalled the Go fuzzer (0 execs/s), hence this encoding.
func FuzzOpenWalk(f *testing.F) {
	imgs := smallImages(f)
	names := make([]string, 0, len(imgs))
	for n := range imgs {
		names = append(names, n)
	}
	sort.Strings(names)
	for i := range names {
		f.Add([]byte{byte(i)})
		f.Add([]byte{byte(i), 0x00, 0x04, 0x38, 0x00})                         // superblock magic
		f.Add([]byte{byte(i), 0x00, 0x10, 0x00, 0xff, 0x00, 0x30, 0x00, 0x7f}) // somewhere in the GDT / tables
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		// A slow input crashes the worker so the fuzzer records it.
		slow := time.AfterFunc(10*time.Second, func() { panic("input took over 10s: possible endless loop") })
		defer slow.Stop()
		img := bytes.Clone(imgs[names[int(in[0])%len(names)]])
		for p := in[1:]; len(p) >= 4; p = p[4:] {
			off := (int(p[0]) | int(p[1])<<8 | int(p[2])<<16) % min(len(img), 512<<10)
			img[off] = p[3]
		}
		fsys, err := openBytes(img)
		if err != nil {
			return
		}
		_ = exerciseAll(fsys)
		_, _ = fsys.UsedBlocks()
	})
}
