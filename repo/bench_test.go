package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"mis/chunker"
)

const benchCorpusSize = 256 << 20

// corpusFiles lists regular files of /usr/bin and /usr/lib in a fixed
// order: real executables and libraries, moderately compressible.
func corpusFiles() ([]string, error) {
	var files []string
	for _, root := range []string{"/usr/bin", "/usr/lib"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil // unreadable entries are skipped
			}
			if d.Type().IsRegular() {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sort.Strings(files)
	return files, nil
}

// corpusReader streams the first limit bytes of the corpus files, each
// byte XORed with mask (a bijection: compressibility is unchanged, but
// every mask yields different chunks).
type corpusReader struct {
	files []string
	left  int64
	mask  byte
	cur   *os.File
}

func newCorpusReader(files []string, limit int64, mask byte) *corpusReader {
	return &corpusReader{files: files, left: limit, mask: mask}
}

func (c *corpusReader) Read(p []byte) (int, error) {
	for c.left > 0 {
		if c.cur == nil {
			if len(c.files) == 0 {
				return 0, errors.New("corpus files exhausted before the requested size")
			}
			f, err := os.Open(c.files[0])
			c.files = c.files[1:]
			if err != nil {
				continue
			}
			c.cur = f
		}
		if int64(len(p)) > c.left {
			p = p[:c.left]
		}
		n, err := c.cur.Read(p)
		if n > 0 {
			if c.mask != 0 {
				for i := range p[:n] {
					p[i] ^= c.mask
				}
			}
			c.left -= int64(n)
			return n, nil
		}
		c.cur.Close()
		c.cur = nil
		if err != nil && err != io.EOF {
			continue
		}
	}
	return 0, io.EOF
}

var (
	corpusOnce sync.Once
	corpus     []byte
	corpusErr  error
)

func benchCorpus(b *testing.B) []byte {
	corpusOnce.Do(func() {
		files, err := corpusFiles()
		if err != nil {
			corpusErr = err
			return
		}
		corpus, corpusErr = io.ReadAll(newCorpusReader(files, benchCorpusSize, 0))
		// bench/store.sh times the zstd and b3sum command-line tools on
		// exactly these bytes.
		if out := os.Getenv("MIS_BENCH_CORPUS_OUT"); out != "" && corpusErr == nil {
			corpusErr = os.WriteFile(out, corpus, 0o644)
		}
	})
	if corpusErr != nil {
		b.Skip("no corpus:", corpusErr)
	}
	return corpus
}

func benchChunks(b *testing.B, data []byte) [][]byte {
	c := chunker.New(bytes.NewReader(data), chunker.DefaultParams())
	var out [][]byte
	for {
		ch, err := c.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, append([]byte(nil), ch...))
	}
}

func initBenchRepo(b *testing.B, level string) *Repo {
	dir := filepath.Join(b.TempDir(), fmt.Sprintf("repo%d", time.Now().UnixNano()))
	if err := Init(dir, InitOptions{ZstdLevel: level}); err != nil {
		b.Fatal(err)
	}
	r, err := Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	return r
}

func storeOnce(b *testing.B, r *Repo, data []byte) WriteStats {
	w, err := r.OpenWriter(context.Background(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	if _, err := w.WriteStream(bytes.NewReader(data), nil); err != nil {
		b.Fatal(err)
	}
	if err := w.Commit(context.Background(), nil); err != nil {
		b.Fatal(err)
	}
	return w.Stats()
}

// BenchmarkStoreNew: chunk + hash + compress + store into a fresh
// repository, including Commit (fsyncs and index write).
func BenchmarkStoreNew(b *testing.B) {
	data := benchCorpus(b)
	for _, level := range []string{ZstdFastest, ZstdDefault} {
		b.Run(level, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			var st WriteStats
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				r := initBenchRepo(b, level)
				b.StartTimer()
				st = storeOnce(b, r, data)
				b.StopTimer()
				os.RemoveAll(r.Dir())
				b.StartTimer()
			}
			b.ReportMetric(float64(st.NewBytes)/float64(st.StoredBytes), "ratio")
			b.ReportMetric(float64(st.NewChunks), "chunks")
		})
	}
}

// BenchmarkStoreDuplicate stores data that is already in the repository:
// chunk + hash + index lookups only.
func BenchmarkStoreDuplicate(b *testing.B) {
	data := benchCorpus(b)
	r := initBenchRepo(b, ZstdFastest)
	storeOnce(b, r, data)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if st := storeOnce(b, r, data); st.NewChunks != 0 {
			b.Fatalf("duplicate store added %d chunks", st.NewChunks)
		}
	}
}

// BenchmarkZstd compresses the corpus chunks with EncodeAll alone, on one
// goroutine (per-core speed).
func BenchmarkZstd(b *testing.B) {
	chunks := benchChunks(b, benchCorpus(b))
	for _, level := range []string{ZstdFastest, ZstdDefault} {
		b.Run(level, func(b *testing.B) {
			lvl, _ := zstdLevel(level)
			enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(lvl), zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(false))
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(benchCorpusSize)
			var dst []byte
			var out int64
			for i := 0; i < b.N; i++ {
				out = 0
				for _, c := range chunks {
					dst = enc.EncodeAll(c, dst[:0])
					out += int64(min(len(dst), len(c)))
				}
			}
			b.ReportMetric(float64(benchCorpusSize)/float64(out), "ratio")
		})
	}
}

// BenchmarkBLAKE3 hashes the corpus chunks on one goroutine.
func BenchmarkBLAKE3(b *testing.B) {
	chunks := benchChunks(b, benchCorpus(b))
	b.SetBytes(benchCorpusSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, c := range chunks {
			chunker.Sum(c)
		}
	}
}

// BenchmarkChunker splits the corpus alone (for comparison with StoreNew).
func BenchmarkChunker(b *testing.B) {
	data := benchCorpus(b)
	b.SetBytes(int64(len(data)))
	for i := 0; i < b.N; i++ {
		c := chunker.New(bytes.NewReader(data), chunker.DefaultParams())
		for {
			if _, err := c.Next(); err != nil {
				break
			}
		}
	}
}

func procStatus(field string) string {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, field+":") {
			return strings.TrimSpace(strings.TrimPrefix(line, field+":"))
		}
	}
	return "?"
}

// Memory budgets (peak RSS, VmHWM) the memory tests assert: about 1.5x
// what they measured on the 2-core test machine (4 GiB store: 192-209 MiB;
// Badger, 100k keys: write 80-86 MiB, read-only open + scan 103-107 MiB).
const (
	store4GiBBudgetMiB   = 300
	badgerWriteBudgetMiB = 128
	badgerScanBudgetMiB  = 160
)

// vmHWMMiB returns the process's peak resident set size in MiB.
func vmHWMMiB(t *testing.T) int64 {
	t.Helper()
	var kb int64
	if _, err := fmt.Sscanf(procStatus("VmHWM"), "%d kB", &kb); err != nil {
		t.Fatalf("read VmHWM from /proc/self/status: %v", err)
	}
	return kb >> 10
}

// checkHWM fails t if the peak RSS so far exceeds budget MiB.
func checkHWM(t *testing.T, what string, budget int64) {
	t.Helper()
	if got := vmHWMMiB(t); got > budget {
		t.Errorf("%s: peak RSS (VmHWM) %d MiB exceeds the budget of %d MiB", what, got, budget)
	} else {
		t.Logf("%s: peak RSS %d MiB, budget %d MiB", what, got, budget)
	}
}

// TestStore4GiB stores 4 GiB of new data and checks peak RSS against its
// budget. Run alone (the budget is for the whole process):
// MIS_BENCH_4G=1 go test -run TestStore4GiB -v -timeout 1800s ./repo
func TestStore4GiB(t *testing.T) {
	if os.Getenv("MIS_BENCH_4G") == "" {
		t.Skip("set MIS_BENCH_4G=1")
	}
	files, err := corpusFiles()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "repo")
	if d := os.Getenv("MIS_BENCH_DIR"); d != "" {
		dir = filepath.Join(d, fmt.Sprintf("repo4g-%d", time.Now().UnixNano()))
		defer os.RemoveAll(dir)
	}
	if err := Init(dir, InitOptions{}); err != nil {
		t.Fatal(err)
	}
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	w := openWriter(t, r)
	defer w.Close()
	start := time.Now()
	const passes = 16 // 16 × 256 MiB, each pass XORed differently so nothing dedups
	for pass := 0; pass < passes; pass++ {
		if _, err := w.WriteStream(newCorpusReader(files, benchCorpusSize, byte(pass*17+1)), nil); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
	}
	el := time.Since(start)
	st := w.Stats()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("stored %d MiB in %v (%.1f MB/s): %d new chunks, %d dup chunks, stored %d MiB, %d packs",
		(st.NewBytes+st.DupBytes)>>20, el.Round(time.Millisecond), float64(st.NewBytes+st.DupBytes)/el.Seconds()/1e6,
		st.NewChunks, st.DupChunks, st.StoredBytes>>20, st.Packs)
	t.Logf("VmHWM %s, VmRSS %s, Go heap sys %d MiB", procStatus("VmHWM"), procStatus("VmRSS"), ms.HeapSys>>20)
	checkHWM(t, "store 4 GiB", store4GiBBudgetMiB)
}

// TestBadgerRSS opens the metadata database and writes 100k index keys,
// then scans them read-only, checking peak RSS against the budgets after
// each phase. Run alone: MIS_BENCH_RSS=1 go test -run TestBadgerRSS -v ./repo
func TestBadgerRSS(t *testing.T) {
	if os.Getenv("MIS_BENCH_RSS") == "" {
		t.Skip("set MIS_BENCH_RSS=1")
	}
	r := newTestRepo(t)
	t.Logf("before open: VmHWM %s, VmRSS %s", procStatus("VmHWM"), procStatus("VmRSS"))
	db, err := r.openMeta(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after open: VmHWM %s, VmRSS %s", procStatus("VmHWM"), procStatus("VmRSS"))
	p := sealedPack{name: strings.Repeat("ab", 32), size: 1 << 30}
	for i := 0; i < 100_000; i++ {
		p.entries = append(p.entries, packEntry{ID: chunker.Sum(fmt.Appendf(nil, "%d", i)), Offset: uint64(i) * 1000, StoredLen: 900, RawLen: 1000, Flags: flagZstd})
	}
	start := time.Now()
	if err := writeIndex(db, []sealedPack{p}, false); err != nil {
		t.Fatal(err)
	}
	t.Logf("100k keys written in %v: VmHWM %s, VmRSS %s", time.Since(start).Round(time.Millisecond), procStatus("VmHWM"), procStatus("VmRSS"))
	checkHWM(t, "write 100k keys", badgerWriteBudgetMiB)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	st, err := r.Stats(context.Background())
	if err != nil || st.Chunks != 100_000 {
		t.Fatalf("stats %+v err %v", st, err)
	}
	t.Logf("read-only open + scan of 100k keys in %v: VmHWM %s, VmRSS %s", time.Since(start).Round(time.Millisecond), procStatus("VmHWM"), procStatus("VmRSS"))
	checkHWM(t, "read-only open + scan of 100k keys", badgerScanBudgetMiB)
}
