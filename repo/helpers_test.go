package repo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"mis/chunker"
)

// testParams keep chunks small so tests make many chunks and packs quickly.
var testParams = chunker.Params{Min: 4 << 10, Avg: 16 << 10, Max: 64 << 10}

func newTestRepo(t testing.TB) *Repo {
	t.Helper()
	dir := t.TempDir() + "/repo"
	if err := Init(dir, InitOptions{Chunker: testParams, PackTargetSize: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func openWriter(t testing.TB, r *Repo) *Writer {
	t.Helper()
	w, err := r.OpenWriter(context.Background(), "test "+t.Name())
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// Data kinds for round trips.
func randomBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := rng.Uint64()
		for k := 0; k < 8; k++ {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	return b
}

// compressibleBytes looks like text: words from a small vocabulary.
func compressibleBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 7))
	words := []string{"disk ", "image ", "sector ", "block ", "inode ", "extent ", "journal ", "superblock\n", "0000 ", "ffff "}
	var buf bytes.Buffer
	for buf.Len() < n {
		buf.WriteString(words[rng.IntN(len(words))])
		if rng.IntN(50) == 0 {
			fmt.Fprintf(&buf, "%d ", rng.Uint32())
		}
	}
	return buf.Bytes()[:n]
}

// versionRecord is the "version" metadata used by crash tests.
type versionRecord struct {
	Size   int64    `json:"size"`
	SHA256 string   `json:"sha256"`
	Refs   []string `json:"refs"`
}

func versionKey(n int) []byte { return fmt.Appendf(nil, "v/%06d", n) }

func commitVersion(ctx context.Context, w *Writer, n int, data []byte) error {
	refs, err := w.WriteStream(bytes.NewReader(data), nil)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	rec := versionRecord{Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
	for _, ref := range refs {
		rec.Refs = append(rec.Refs, ref.ID.String())
	}
	val, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return w.Commit(ctx, func(tx *Tx) error { return tx.Put(versionKey(n), val) })
}

func loadVersions(t testing.TB, r *Repo) map[string]versionRecord {
	t.Helper()
	out := map[string]versionRecord{}
	err := r.View(context.Background(), func(tx *Tx) error {
		return tx.Iterate([]byte("v/"), func(key, val []byte) error {
			var rec versionRecord
			if err := json.Unmarshal(val, &rec); err != nil {
				return fmt.Errorf("version %s: %v", key, err)
			}
			out[string(key)] = rec
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// refsOf yields version references for Verify.
func refsOf(versions map[string]versionRecord) func(yield func(string, chunker.ID) error) error {
	return func(yield func(string, chunker.ID) error) error {
		for name, rec := range versions {
			for _, s := range rec.Refs {
				id, err := chunker.ParseID(s)
				if err != nil {
					return err
				}
				if err := yield(name, id); err != nil {
					return err
				}
			}
		}
		return nil
	}
}

// restoreVersion reads a version back through the reader API and checks it.
func restoreVersion(t testing.TB, r *Repo, name string, rec versionRecord) {
	t.Helper()
	ids := make([]chunker.ID, len(rec.Refs))
	for i, s := range rec.Refs {
		id, err := chunker.ParseID(s)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	locs, err := r.Lookup(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	cr := r.NewChunkReader()
	defer cr.Close()
	h := sha256.New()
	var n int64
	var buf []byte
	for _, id := range ids {
		loc, ok := locs[id]
		if !ok {
			t.Fatalf("%s: chunk %s not in index", name, id)
		}
		buf, err = cr.Read(id, loc, buf)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		h.Write(buf)
		n += int64(len(buf))
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != rec.SHA256 || n != rec.Size {
		t.Fatalf("%s: restored %d bytes sha256 %s, want %d bytes %s", name, n, got, rec.Size, rec.SHA256)
	}
}

func verifyOK(t testing.TB, r *Repo, opt VerifyOptions) *VerifyReport {
	t.Helper()
	rep, err := r.Verify(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Problems {
		t.Errorf("verify problem: %s", p)
	}
	if !rep.OK() {
		t.FailNow()
	}
	return rep
}

func listPacks(t testing.TB, r *Repo) map[string]int64 {
	t.Helper()
	m := map[string]int64{}
	if err := r.Packs().List(context.Background(), func(name string, size int64) error { m[name] = size; return nil }); err != nil {
		t.Fatal(err)
	}
	return m
}

func fileModTimes(t testing.TB, r *Repo) map[string]int64 {
	t.Helper()
	m := map[string]int64{}
	for name := range listPacks(t, r) {
		st, err := os.Stat(localPacks(r).path(name))
		if err != nil {
			t.Fatal(err)
		}
		m[name] = st.ModTime().UnixNano()
	}
	return m
}

type chunkerID = chunker.ID

func sumID(b []byte) chunker.ID { return chunker.Sum(b) }

// localPacks is the repository's default local pack store.
func localPacks(r *Repo) *LocalPackStore { return r.packs.(*LocalPackStore) }
