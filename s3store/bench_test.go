package s3store

// Benchmarks of the S3 store against the local directory store, in the
// same run, with versitygw on the same filesystem as the local store:
//
//	go test -run XXX -bench . -benchtime 20x -timeout 30m ./s3store
//
// The ratios (s3 / local MB/s) measure what HTTP, signing and the gateway
// cost; a real S3 adds network latency and bandwidth limits on top.

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"testing"

	"mis/chunker"
	"mis/repo"
	"mis/s3store/s3test"
)

const benchPackSize = repo.DefaultPackTargetSize

// benchName is a distinct pack name per i (the store does not check
// that names are content hashes).
func benchName(prefix byte, i int) string {
	var b [32]byte
	b[0] = prefix
	b[1], b[2], b[3] = byte(i>>16), byte(i>>8), byte(i)
	return hex.EncodeToString(b[:])
}

type benchTarget struct {
	name  string
	store func(b *testing.B) repo.PackStore
}

func benchTargets(b *testing.B) []benchTarget {
	srv := s3test.Start(b)
	return []benchTarget{
		{"local", func(b *testing.B) repo.PackStore { return repo.NewLocalPackStore(b.TempDir()) }},
		{"s3", func(b *testing.B) repo.PackStore { return newStore(b, srv, "", Options{}) }},
		{"s3-multipart-8MiBx4", func(b *testing.B) repo.PackStore {
			return newStore(b, srv, "", Options{MultipartThreshold: 8 * mib, PartSize: 8 * mib, Parallel: 4})
		}},
	}
}

// BenchmarkPut stores 32 MiB packs (the default pack target) one after
// another, as the repository's writer does.
func BenchmarkPut(b *testing.B) {
	data := testPack(1, benchPackSize).data
	ctx := context.Background()
	for _, tg := range benchTargets(b) {
		b.Run(tg.name, func(b *testing.B) {
			s := tg.store(b)
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := s.Put(ctx, benchName(1, i), bytes.NewReader(data), int64(len(data))); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReadRange reads random ranges of 4 packs from 4 goroutines at
// once: 64 KiB is a chunk (what the repository's ChunkReader asks for
// today), 4 MiB a coalesced read.
func BenchmarkReadRange(b *testing.B) {
	ctx := context.Background()
	data := testPack(2, benchPackSize).data
	for _, tg := range benchTargets(b)[:2] {
		s := tg.store(b)
		var readers []repo.PackReader
		for i := range 4 {
			if err := s.Put(ctx, benchName(2, i), bytes.NewReader(data), int64(len(data))); err != nil {
				b.Fatal(err)
			}
			pr, err := s.Open(ctx, benchName(2, i))
			if err != nil {
				b.Fatal(err)
			}
			readers = append(readers, pr)
		}
		for _, size := range []int{64 << 10, 4 << 20} {
			b.Run(fmt.Sprintf("%s/%dKiB", tg.name, size>>10), func(b *testing.B) {
				b.SetBytes(int64(size))
				b.SetParallelism(max(1, 4/runtime.GOMAXPROCS(0)))
				var seed sync.Mutex
				next := uint64(0)
				b.RunParallel(func(pb *testing.PB) {
					seed.Lock()
					next++
					rng := rand.New(rand.NewPCG(next, 3))
					seed.Unlock()
					buf := make([]byte, size)
					for pb.Next() {
						pr := readers[rng.IntN(len(readers))]
						off := rng.Int64N(int64(len(data) - size))
						if n, err := pr.ReadAt(ctx, buf, off); n != size {
							b.Fatal(n, err)
						}
					}
				})
			})
		}
	}
}

// benchCorpus is up to 128 MiB of /usr/lib and /usr/bin files, read in a
// fixed order: real, moderately compressible data.
var (
	corpusOnce sync.Once
	corpus     []byte
)

func benchCorpus(b *testing.B) []byte {
	corpusOnce.Do(func() {
		var files []string
		for _, root := range []string{"/usr/lib", "/usr/bin"} {
			filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					files = append(files, path)
				}
				return nil
			})
		}
		sort.Strings(files)
		var buf bytes.Buffer
		for _, f := range files {
			if buf.Len() >= 128<<20 {
				break
			}
			if data, err := os.ReadFile(f); err == nil {
				buf.Write(data[:min(len(data), 128<<20-buf.Len())])
			}
		}
		corpus = buf.Bytes()
	})
	if len(corpus) < 16<<20 {
		b.Skip("no corpus in /usr/lib")
	}
	return corpus
}

// BenchmarkRepoImport stores the corpus into a new repository whose packs
// go to the target (chunking, hashing, zstd, packing, Put, Commit): the
// repository-level figure behind "S3 import at least 0.7x local".
// BenchmarkRepoExport reads all its chunks back through a ChunkReader
// from 4 goroutines (chunk by chunk, as export does today).
func BenchmarkRepoImport(b *testing.B) {
	data := benchCorpus(b)
	ctx := context.Background()
	for _, tg := range benchTargets(b)[:2] {
		b.Run(tg.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				r := benchRepo(b, tg.store(b))
				b.StartTimer()
				w, err := r.OpenWriter(ctx, "bench")
				if err != nil {
					b.Fatal(err)
				}
				if _, err := w.WriteStream(bytes.NewReader(data), nil); err != nil {
					b.Fatal(err)
				}
				if err := w.Commit(ctx, nil); err != nil {
					b.Fatal(err)
				}
				w.Close()
			}
		})
	}
}

func BenchmarkRepoExport(b *testing.B) {
	data := benchCorpus(b)
	ctx := context.Background()
	for _, tg := range benchTargets(b)[:2] {
		r := benchRepo(b, tg.store(b))
		w, err := r.OpenWriter(ctx, "bench")
		if err != nil {
			b.Fatal(err)
		}
		refs, err := w.WriteStream(bytes.NewReader(data), nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := w.Commit(ctx, nil); err != nil {
			b.Fatal(err)
		}
		w.Close()
		ids := make([]chunker.ID, len(refs))
		for i, ref := range refs {
			ids[i] = ref.ID
		}
		locs, err := r.Lookup(ctx, ids)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tg.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for i := 0; i < b.N; i++ {
				cr := r.NewChunkReader()
				var wg sync.WaitGroup
				var total int64
				var mu sync.Mutex
				next := make(chan chunker.ID)
				for range 4 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						var buf []byte
						var n int64
						for id := range next {
							var err error
							if buf, err = cr.ReadContext(ctx, id, locs[id], buf[:0]); err != nil {
								b.Error(err)
							}
							n += int64(len(buf))
						}
						mu.Lock()
						total += n
						mu.Unlock()
					}()
				}
				for _, id := range ids {
					next <- id
				}
				close(next)
				wg.Wait()
				cr.Close()
				if total != int64(len(data)) {
					b.Fatalf("read %d bytes, want %d", total, len(data))
				}
			}
		})
	}
}

func benchRepo(b *testing.B, store repo.PackStore) *repo.Repo {
	dir := filepath.Join(b.TempDir(), "repo")
	if err := repo.Init(dir, repo.InitOptions{PackStore: store}); err != nil {
		b.Fatal(err)
	}
	r, err := repo.Open(dir, repo.WithPackStore(store))
	if err != nil {
		b.Fatal(err)
	}
	return r
}
