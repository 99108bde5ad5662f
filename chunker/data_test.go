package chunker

import (
	"encoding/binary"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

// splitmix64 is a tiny, fully specified PRNG: test data built from it never
// changes with the Go version, which the pinned cut-point test relies on.
type splitmix64 uint64

func (s *splitmix64) next() uint64 {
	*s += 0x9e3779b97f4a7c15
	z := uint64(*s)
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// randomBytes returns n incompressible bytes determined by seed.
func randomBytes(seed uint64, n int) []byte {
	s := splitmix64(seed)
	b := make([]byte, n+8)
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], s.next())
	}
	return b[:n]
}

var words = []string{
	"the", "of", "and", "to", "in", "is", "for", "on", "with", "as",
	"disk", "image", "block", "chunk", "store", "kernel", "module", "config",
	"error", "value", "return", "struct", "package", "import", "func", "if",
	"else", "linux", "usr", "lib", "share", "include", "version", "0", "1",
	"2", "true", "false", "null", "{", "}", "(", ")", "=", ";", "\n", "\t",
	"#define", "static", "const", "int", "char", "void", "uint64_t",
}

// mixedData returns n bytes that resemble a disk's contents and compress
// moderately: runs of text, incompressible bytes (already-compressed files),
// fixed-width records with small integers (binaries, databases), and zeros
// (unused blocks). It is deterministic for a given seed.
func mixedData(seed uint64, n int) []byte {
	s := splitmix64(seed)
	out := make([]byte, 0, n+64<<10)
	for len(out) < n {
		r := s.next()
		size := int(r>>40)%(48<<10) + 512
		switch r % 8 {
		case 0, 1, 2: // text: words picked with a skew towards the first ones
			for end := len(out) + size; len(out) < end; {
				w := s.next()
				i := int(w%uint64(len(words))) * int(w>>32%uint64(len(words))) / len(words)
				out = append(out, words[i]...)
				out = append(out, ' ')
			}
		case 3, 4: // incompressible
			out = append(out, randomBytes(s.next(), size)...)
		case 5, 6: // 16-byte records: counter, small value, constant tag
			var rec [16]byte
			base := s.next() % 1000
			for i := 0; i < size/16; i++ {
				binary.LittleEndian.PutUint32(rec[0:], uint32(base)+uint32(i))
				binary.LittleEndian.PutUint32(rec[4:], uint32(s.next()%256))
				copy(rec[8:], "RECORD\x00\x01")
				out = append(out, rec[:]...)
			}
		case 7: // zeros
			out = append(out, make([]byte, size)...)
		}
	}
	return out[:n]
}

var (
	benchDataOnce sync.Once
	benchData     []byte
)

// benchMixed returns 64 MiB of mixedData, built once per test binary.
func benchMixed() []byte {
	benchDataOnce.Do(func() { benchData = mixedData(1, 64<<20) })
	return benchData
}

// systemCorpus returns up to limit bytes of a tar-like concatenation (a
// 512-byte header naming the file and its size, then the contents padded to
// 512 bytes) of the regular files under dirs, in lexical order, each dir
// contributing an equal share. Like tar, it stores hard-linked files once
// (Mesa installs one driver under many names). It skips the test when the
// directories hold less than limit/2 bytes.
func systemCorpus(tb testing.TB, limit int, dirs ...string) []byte {
	tb.Helper()
	out := make([]byte, 0, limit)
	seen := map[uint64]bool{}
	for i, dir := range dirs {
		budget := limit * (i + 1) / len(dirs)
		_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return nil
			}
			if len(out) >= budget {
				return filepath.SkipAll
			}
			info, err := d.Info()
			if err != nil {
				return nil
			}
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				if seen[st.Ino] {
					return nil
				}
				seen[st.Ino] = true
			}
			f, err := os.Open(path)
			if err != nil {
				return nil
			}
			defer f.Close()
			var hdr [512]byte
			copy(hdr[:400], path)
			binary.LittleEndian.PutUint64(hdr[400:], uint64(info.Size()))
			out = append(out, hdr[:]...)
			body, err := io.ReadAll(io.LimitReader(f, int64(budget-len(out))))
			if err != nil {
				return nil
			}
			out = append(out, body...)
			out = append(out, make([]byte, (512-len(body)%512)%512)...)
			return nil
		})
	}
	if len(out) < limit/2 {
		tb.Skipf("only %d bytes of files under %v, want %d", len(out), dirs, limit)
	}
	return out[:min(len(out), limit)]
}
