package repo

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
)

// storeTwoVersions makes a repository with two versions sharing data.
func storeTwoVersions(t *testing.T) (*Repo, map[string]versionRecord) {
	r := newTestRepo(t)
	w := openWriter(t, r)
	defer w.Close()
	shared := randomBytes(20, 2<<20)
	if err := commitVersion(context.Background(), w, 1, shared); err != nil {
		t.Fatal(err)
	}
	if err := commitVersion(context.Background(), w, 2, append(append([]byte{}, shared...), compressibleBytes(21, 1<<20)...)); err != nil {
		t.Fatal(err)
	}
	return r, loadVersions(t, r)
}

func TestVerifyFindsCorruptByte(t *testing.T) {
	r, vs := storeTwoVersions(t)
	verifyOK(t, r, VerifyOptions{ReadData: true, Refs: refsOf(vs)})

	// Flip one byte inside the first chunk body of some pack.
	var pack string
	for name := range listPacks(t, r) {
		pack = name
		break
	}
	entries, err := readWholePack(context.Background(), r.packs, pack)
	if err != nil {
		t.Fatal(err)
	}
	victim := entries[len(entries)/2]
	path := localPacks(r).path(pack)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	off := int64(victim.Offset) + int64(victim.StoredLen)/2
	f.ReadAt(b[:], off)
	b[0] ^= 0x40
	f.WriteAt(b[:], off)
	f.Close()

	// Metadata-only verification cannot see it.
	verifyOK(t, r, VerifyOptions{Refs: refsOf(vs)})

	rep, err := r.Verify(context.Background(), VerifyOptions{ReadData: true, Refs: refsOf(vs)})
	if err != nil {
		t.Fatal(err)
	}
	var chunkProblem *Problem
	for i, p := range rep.Problems {
		t.Logf("problem: %s", p)
		if p.Kind == ProblemDamagedChunk {
			chunkProblem = &rep.Problems[i]
		}
	}
	if chunkProblem == nil || chunkProblem.Chunk != victim.ID || chunkProblem.Pack != pack {
		t.Fatalf("damaged chunk %s in %s not reported", victim.ID, pack)
	}
	// Owners: every version whose refs include the chunk.
	var want []string
	for name, rec := range vs {
		for _, s := range rec.Refs {
			if s == victim.ID.String() {
				want = append(want, name)
				break
			}
		}
	}
	if len(want) == 0 || len(chunkProblem.Owners) != len(want) {
		t.Fatalf("owners %v, want %v", chunkProblem.Owners, want)
	}
	msg := chunkProblem.String()
	if !strings.Contains(msg, victim.ID.String()) || !strings.Contains(msg, want[0]) {
		t.Fatalf("message does not name chunk and owner: %s", msg)
	}
	// The reader path refuses the damaged chunk too.
	loc, _ := r.Lookup(context.Background(), []chunkerID{victim.ID})
	if _, err := r.NewChunkReader().Read(victim.ID, loc[victim.ID], nil); err == nil || !strings.Contains(err.Error(), pack) {
		t.Fatalf("read of damaged chunk: %v", err)
	}
}

func TestVerifyFindsTruncatedPack(t *testing.T) {
	r, vs := storeTwoVersions(t)
	var pack string
	var size int64
	for name, s := range listPacks(t, r) {
		pack, size = name, s
		break
	}
	if err := os.Truncate(localPacks(r).path(pack), size/2); err != nil {
		t.Fatal(err)
	}
	for _, readData := range []bool{false, true} {
		rep, err := r.Verify(context.Background(), VerifyOptions{ReadData: readData, Refs: refsOf(vs)})
		if err != nil {
			t.Fatal(err)
		}
		var sizeProblem, rangeProblem bool
		for _, p := range rep.Problems {
			sizeProblem = sizeProblem || (p.Kind == ProblemPackSize && p.Pack == pack)
			if p.Kind == ProblemChunkRange && p.Pack == pack {
				rangeProblem = true
				if len(p.Owners) == 0 {
					t.Errorf("no owners for %s", p)
				}
			}
		}
		if !sizeProblem || !rangeProblem {
			t.Fatalf("readData=%v: truncation not reported: %v", readData, rep.Problems)
		}
	}
}

func TestVerifyFindsMissingAndUnindexedPacks(t *testing.T) {
	r, vs := storeTwoVersions(t)
	var pack string
	for name := range listPacks(t, r) {
		pack = name
		break
	}
	if err := os.Remove(localPacks(r).path(pack)); err != nil {
		t.Fatal(err)
	}
	// A pack file that the index does not know.
	stray := randomPackFor(t, r)
	rep, err := r.Verify(context.Background(), VerifyOptions{Refs: refsOf(vs)})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, p := range rep.Problems {
		kinds[p.Kind+" "+p.Pack] = true
	}
	if !kinds[ProblemMissingPack+" "+pack] || !kinds[ProblemUnindexedPack+" "+stray] {
		t.Fatalf("problems: %v", rep.Problems)
	}
}

// randomPackFor writes a valid pack holding one chunk, outside any writer.
func randomPackFor(t *testing.T, r *Repo) string {
	b := newPackBuilder(1<<20, nil)
	chunk := randomBytes(99, 1000)
	b.add(sumID(chunk), flagRaw, chunk, len(chunk))
	data, name := b.finish()
	if err := r.packs.Put(context.Background(), name, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	return name
}
