package repo

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"mis/chunker"
)

// repairSetup stores three versions of distinct random data, each in its
// own commit (so in packs of its own), and returns them.
func repairSetup(t *testing.T) (*Repo, map[string]versionRecord) {
	t.Helper()
	r := newTestRepo(t)
	w := openWriter(t, r)
	for n := 1; n <= 3; n++ {
		if err := commitVersion(context.Background(), w, n, randomBytes(uint64(100+n), 1536<<10)); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	return r, loadVersions(t, r)
}

// packsOf returns the packs the index places version rec's chunks in.
func packsOf(t *testing.T, r *Repo, rec versionRecord) map[string]bool {
	t.Helper()
	locs, err := r.Lookup(context.Background(), idsOf(t, rec))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, loc := range locs {
		out[loc.Pack] = true
	}
	return out
}

func idsOf(t *testing.T, rec versionRecord) []chunker.ID {
	t.Helper()
	var ids []chunker.ID
	for _, s := range rec.Refs {
		id, err := chunker.ParseID(s)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// missingOf lists the versions with a chunk the index lacks.
func missingOf(t *testing.T, r *Repo, vs map[string]versionRecord) []string {
	t.Helper()
	var out []string
	for name, rec := range vs {
		ids := idsOf(t, rec)
		locs, err := r.Lookup(context.Background(), ids)
		if err != nil {
			t.Fatal(err)
		}
		if len(locs) != len(uniqueIDs(ids)) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func uniqueIDs(ids []chunker.ID) map[chunker.ID]bool {
	m := map[chunker.ID]bool{}
	for _, id := range ids {
		m[id] = true
	}
	return m
}

func repairOK(t *testing.T, r *Repo, readData bool) *RepairReport {
	t.Helper()
	w, rep, err := r.Repair(context.Background(), RepairOptions{Holder: "test repair", ReadData: readData})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("repair: %+v", *rep)
	return rep
}

// onlyMissingChunks fails unless every problem verify finds is a missing
// chunk of one of the versions in broken.
func onlyMissingChunks(t *testing.T, r *Repo, vs map[string]versionRecord, broken []string) {
	t.Helper()
	rep, err := r.Verify(context.Background(), VerifyOptions{ReadData: true, Refs: refsOf(vs)})
	if err != nil {
		t.Fatal(err)
	}
	isBroken := map[string]bool{}
	for _, b := range broken {
		isBroken[b] = true
	}
	for _, p := range rep.Problems {
		if p.Kind != ProblemMissingChunk {
			t.Errorf("after repair: %s", p)
			continue
		}
		for _, o := range p.Owners {
			if !isBroken[o] {
				t.Errorf("after repair, %s misses a chunk: %s", o, p)
			}
		}
	}
}

func TestRepairDeletedPack(t *testing.T) {
	r, vs := repairSetup(t)
	victims := packsOf(t, r, vs[string(versionKey(2))])
	var pack string
	for p := range victims {
		pack = p
		break
	}
	entries, err := readWholePack(context.Background(), r.packs, pack)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(localPacks(r).path(pack)); err != nil {
		t.Fatal(err)
	}
	rep := repairOK(t, r, false)
	if len(rep.PacksGone) != 1 || rep.PacksGone[0] != pack {
		t.Errorf("packs gone %v, want [%s]", rep.PacksGone, pack)
	}
	if rep.ChunksLost != int64(len(entries)) || rep.ChunksRelinked != 0 || rep.ChunksAdded != 0 {
		t.Errorf("lost %d relinked %d added %d, want %d 0 0", rep.ChunksLost, rep.ChunksRelinked, rep.ChunksAdded, len(entries))
	}
	want := []string{string(versionKey(2))}
	if got := missingOf(t, r, vs); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("versions missing chunks: %v, want %v", got, want)
	}
	onlyMissingChunks(t, r, vs, want)
	for _, n := range []int{1, 3} {
		restoreVersion(t, r, string(versionKey(n)), vs[string(versionKey(n))])
	}
	// A second repair finds nothing to do.
	if rep := repairOK(t, r, true); rep.Changed() {
		t.Errorf("second repair changed something: %+v", rep)
	}
}

func TestRepairSalvagesTruncatedPack(t *testing.T) {
	r, vs := repairSetup(t)
	var pack string
	var size int64
	for p := range packsOf(t, r, vs[string(versionKey(3))]) {
		if s := listPacks(t, r)[p]; s > size {
			pack, size = p, s
		}
	}
	entries, err := readWholePack(context.Background(), r.packs, pack)
	if err != nil {
		t.Fatal(err)
	}
	cut := size / 2
	var before, after int
	for _, e := range entries {
		if int64(e.Offset+uint64(e.StoredLen)) <= cut {
			before++
		} else {
			after++
		}
	}
	if before == 0 || after == 0 {
		t.Fatalf("cut at %d leaves %d chunks before and %d after", cut, before, after)
	}
	if err := os.Truncate(localPacks(r).path(pack), cut); err != nil {
		t.Fatal(err)
	}
	rep := repairOK(t, r, false)
	if len(rep.Damaged) != 1 {
		t.Fatalf("damaged packs: %+v", rep.Damaged)
	}
	d := rep.Damaged[0]
	if d.Name != pack || d.Salvaged != before || d.Lost != after || d.Duplicates != 0 || !strings.Contains(d.Problem, "trailer") {
		t.Errorf("damaged pack %+v: want %s with %d salvaged, %d lost", d, pack, before, after)
	}
	// Kept aside byte for byte, and out of the store.
	if fi, err := os.Stat(d.MovedTo); err != nil || fi.Size() != cut {
		t.Errorf("damaged pack kept at %s: %v, %v", d.MovedTo, fi, err)
	}
	if _, ok := listPacks(t, r)[pack]; ok {
		t.Errorf("damaged pack %s is still in the store", pack)
	}
	if rep.PacksAdded != 1 || rep.ChunksRelinked != int64(before) || rep.ChunksLost != int64(after) {
		t.Errorf("packs added %d, relinked %d, lost %d", rep.PacksAdded, rep.ChunksRelinked, rep.ChunksLost)
	}
	want := []string{string(versionKey(3))}
	if got := missingOf(t, r, vs); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("versions missing chunks: %v, want %v", got, want)
	}
	onlyMissingChunks(t, r, vs, want)
	// Salvaged chunks read back from their new pack.
	var salvaged []chunker.ID
	for _, e := range entries {
		if int64(e.Offset+uint64(e.StoredLen)) <= cut {
			salvaged = append(salvaged, e.ID)
		}
	}
	locs, err := r.Lookup(context.Background(), salvaged)
	if err != nil {
		t.Fatal(err)
	}
	cr := r.NewChunkReader()
	defer cr.Close()
	for _, id := range salvaged {
		if locs[id].Pack == pack {
			t.Fatalf("chunk %s still indexed in the damaged pack", id)
		}
		if _, err := cr.Read(id, locs[id], nil); err != nil {
			t.Fatal(err)
		}
	}
}

// dupPack writes a second pack holding the chunks of pack (as stored),
// unindexed, as a writer killed before its commit would leave it; the
// next writer indexes it keeping the existing entries. Its name sorts
// before pack's if first, else after (a first chunk of its own decides).
func dupPack(t *testing.T, r *Repo, pack string, first bool) string {
	t.Helper()
	ctx := context.Background()
	data, err := readPackBytes(ctx, r.packs, pack)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := readPackTrailer(bytesReaderAt(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	for seed := uint64(1000); ; seed++ {
		b := newPackBuilder(2<<20, nil)
		extra := randomBytes(seed, 5000)
		b.add(sumID(extra), flagRaw, extra, len(extra))
		for _, e := range entries {
			b.add(e.ID, e.Flags, data[e.Offset:e.Offset+uint64(e.StoredLen)], int(e.RawLen))
		}
		buf, name := b.finish()
		if (name < pack) != first {
			continue
		}
		if err := r.packs.Put(ctx, name, bytes.NewReader(buf), int64(len(buf))); err != nil {
			t.Fatal(err)
		}
		openWriter(t, r).Close() // recovery indexes it
		return name
	}
}

func TestRepairRelinksDuplicate(t *testing.T) {
	r, vs := repairSetup(t)
	var pack string
	for p := range packsOf(t, r, vs[string(versionKey(1))]) {
		pack = p
		break
	}
	dup := dupPack(t, r, pack, false)
	entries, _ := readWholePack(context.Background(), r.packs, pack)
	if got := packsOf(t, r, vs[string(versionKey(1))]); !got[pack] || got[dup] {
		t.Fatalf("setup: version 1 is in %v", got)
	}
	if err := os.Remove(localPacks(r).path(pack)); err != nil {
		t.Fatal(err)
	}
	rep := repairOK(t, r, false)
	if rep.ChunksRelinked != int64(len(entries)) || rep.ChunksLost != 0 {
		t.Errorf("relinked %d lost %d, want %d and 0", rep.ChunksRelinked, rep.ChunksLost, len(entries))
	}
	verifyOK(t, r, VerifyOptions{ReadData: true, Refs: refsOf(vs)})
	for name, rec := range vs {
		restoreVersion(t, r, name, rec)
	}
	if got := packsOf(t, r, vs[string(versionKey(1))]); !got[dup] {
		t.Fatalf("version 1 now in %v, want %s among them", got, dup)
	}
}

func TestRepairKeepsIndexedCopyOfDuplicate(t *testing.T) {
	for _, first := range []bool{true, false} {
		r, vs := repairSetup(t)
		var pack string
		for p := range packsOf(t, r, vs[string(versionKey(1))]) {
			pack = p
			break
		}
		dup := dupPack(t, r, pack, first)
		// Whatever the name order of the two packs, nothing moves.
		if rep := repairOK(t, r, true); rep.Changed() {
			t.Fatalf("duplicate first %v: repair of a sound repository changed it: %+v", first, rep)
		}
		if got := packsOf(t, r, vs[string(versionKey(1))]); !got[pack] || got[dup] {
			t.Fatalf("duplicate first %v: version 1 moved to %v", first, got)
		}
	}
}

func TestRepairDamagedChunkNeedsReadData(t *testing.T) {
	r, vs := repairSetup(t)
	var pack string
	for p := range packsOf(t, r, vs[string(versionKey(2))]) {
		pack = p
		break
	}
	entries, _ := readWholePack(context.Background(), r.packs, pack)
	victim := entries[len(entries)/2]
	f, err := os.OpenFile(localPacks(r).path(pack), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	off := int64(victim.Offset) + int64(victim.StoredLen)/2
	f.ReadAt(b[:], off)
	b[0] ^= 0x10
	f.WriteAt(b[:], off)
	f.Close()

	if rep := repairOK(t, r, false); rep.Changed() {
		t.Fatalf("repair without --read-data changed a pack with a sound trailer: %+v", rep)
	}
	rep := repairOK(t, r, true)
	if len(rep.Damaged) != 1 || rep.Damaged[0].Lost != 1 || rep.Damaged[0].Salvaged != len(entries)-1 {
		t.Fatalf("damaged: %+v", rep.Damaged)
	}
	want := []string{string(versionKey(2))}
	if got := missingOf(t, r, vs); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("versions missing chunks: %v, want %v", got, want)
	}
	onlyMissingChunks(t, r, vs, want)
}

// deleteIndex deletes every "c/" and "p/" entry.
func deleteIndex(t *testing.T, r *Repo) {
	t.Helper()
	db, err := openBadger(r.metaDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, prefix := range []string{chunkPrefix, packPrefix} {
		if err := db.DropPrefix([]byte(prefix)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRepairRebuildsDeletedIndex(t *testing.T) {
	r, vs := repairSetup(t)
	before, err := r.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	deleteIndex(t, r)
	rep0, err := r.Verify(context.Background(), VerifyOptions{Refs: refsOf(vs)})
	if err != nil || rep0.OK() {
		t.Fatalf("verify after the index was deleted: %v, %v", rep0, err)
	}
	rep := repairOK(t, r, false)
	if rep.MetaMovedTo != "" || rep.ChunksAdded != before.Chunks || int64(len(rep.PacksIndexed)) != before.Packs {
		t.Fatalf("added %d chunks and %d packs, want %d and %d", rep.ChunksAdded, len(rep.PacksIndexed), before.Chunks, before.Packs)
	}
	verifyOK(t, r, VerifyOptions{ReadData: true, Refs: refsOf(vs)})
	for name, rec := range vs {
		restoreVersion(t, r, name, rec)
	}
}

// damageMeta damages the metadata database in one of several ways.
func damageMeta(t *testing.T, r *Repo, how string) {
	t.Helper()
	dir := r.metaDir()
	ssts, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	sort.Strings(ssts)
	if len(ssts) == 0 && strings.Contains(how, "sst") {
		t.Fatal("no table files to damage")
	}
	switch how {
	case "truncate sst":
		fi, _ := os.Stat(ssts[0])
		must(t, os.Truncate(ssts[0], fi.Size()/2))
	case "corrupt sst":
		f, err := os.OpenFile(ssts[0], os.O_RDWR, 0)
		must(t, err)
		_, err = f.WriteAt(bytes.Repeat([]byte{0x5a}, 64), 100)
		must(t, err)
		f.Close()
	case "remove sst":
		must(t, os.Remove(ssts[0]))
	case "garbage manifest":
		f, err := os.OpenFile(filepath.Join(dir, "MANIFEST"), os.O_RDWR, 0)
		must(t, err)
		_, err = f.WriteAt([]byte("not a manifest"), 0)
		must(t, err)
		f.Close()
	case "truncate manifest":
		fi, _ := os.Stat(filepath.Join(dir, "MANIFEST"))
		must(t, os.Truncate(filepath.Join(dir, "MANIFEST"), fi.Size()/2))
	case "remove manifest":
		must(t, os.Remove(filepath.Join(dir, "MANIFEST")))
	default:
		t.Fatalf("unknown damage %q", how)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestRepairDamagedMetadata(t *testing.T) {
	for _, how := range []string{"truncate sst", "corrupt sst", "remove sst", "garbage manifest", "truncate manifest", "remove manifest"} {
		t.Run(strings.ReplaceAll(how, " ", "_"), func(t *testing.T) {
			r, vs := repairSetup(t)
			before, err := r.Stats(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			damageMeta(t, r, how)
			// verify says so, without crashing or opening the database.
			rep0, err := r.Verify(context.Background(), VerifyOptions{Refs: refsOf(vs)})
			if err != nil {
				t.Fatal(err)
			}
			var metaProblem bool
			for _, p := range rep0.Problems {
				t.Logf("verify: %s (harmless %v)", p, p.Harmless)
				metaProblem = metaProblem || p.Kind == ProblemMetadata
			}
			if !metaProblem {
				t.Fatalf("verify did not report the damaged metadata: %v", rep0.Problems)
			}
			rep := repairOK(t, r, false)
			if rep.MetaMovedTo == "" && rep.MetaCopiedTo == "" {
				t.Fatalf("the damaged metadata was neither moved nor copied aside: %+v", rep)
			}
			kept := rep.MetaMovedTo + rep.MetaCopiedTo
			if _, err := os.Stat(filepath.Join(kept, "MANIFEST")); err != nil && how != "remove manifest" {
				t.Errorf("kept metadata at %s: %v", kept, err)
			}
			// The chunk index is whole again: every version's chunks are
			// indexed and read back, though the version records (which
			// only the database held) may be gone.
			after, err := r.Stats(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if after.Chunks != before.Chunks || after.Packs != before.Packs {
				t.Fatalf("after repair %d chunks in %d packs, before %d in %d", after.Chunks, after.Packs, before.Chunks, before.Packs)
			}
			verifyOK(t, r, VerifyOptions{ReadData: true, Refs: refsOf(vs)})
			for name, rec := range vs {
				restoreVersion(t, r, name, rec)
			}
			// And the repository is usable.
			w := openWriter(t, r)
			if err := commitVersion(context.Background(), w, 9, randomBytes(9, 100<<10)); err != nil {
				t.Fatal(err)
			}
			w.Close()
		})
	}
}

func TestRepairTakesWriterLock(t *testing.T) {
	r, _ := repairSetup(t)
	w := openWriter(t, r)
	_, _, err := r.Repair(context.Background(), RepairOptions{Holder: "test"})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("repair while a writer runs: %v", err)
	}
	waited := make(chan struct{})
	go func() {
		time.Sleep(300 * time.Millisecond)
		close(waited)
		w.Close()
	}()
	rw, _, err := r.Repair(context.Background(), RepairOptions{Holder: "test", Wait: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-waited:
	default:
		t.Fatal("repair did not wait for the writer")
	}
	rw.Close()
}

var _ = badger.DefaultOptions

// TestScanPackFindsChunks: the bodies of a pack without its trailer are
// found by walking them, zstd frames and raw chunks alike.
func TestScanPackFindsChunks(t *testing.T) {
	r := newTestRepo(t)
	w := openWriter(t, r)
	defer w.Close()
	// One stream: random (stored raw) then text (zstd), so the only raw
	// chunk that ends a stream is followed by a frame.
	data := append(randomBytes(5, 300<<10), compressibleBytes(6, 300<<10)...)
	if _, err := w.WriteStream(bytes.NewReader(data), nil); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	if err := w.sealLocked(context.Background()); err != nil {
		t.Fatal(err)
	}
	sealed := w.sealed[0]
	w.mu.Unlock()
	buf, err := readPackBytes(context.Background(), r.packs, sealed.name)
	if err != nil {
		t.Fatal(err)
	}
	bodiesEnd := len(buf) - packFooterSize - len(sealed.entries)*packEntrySize
	got := scanPack(buf[:bodiesEnd], r.cfg.Chunker)
	var raw, z int
	for _, e := range sealed.entries {
		if e.Flags == flagRaw {
			raw++
		} else {
			z++
		}
	}
	if raw == 0 || z == 0 {
		t.Fatalf("setup: %d raw and %d zstd chunks", raw, z)
	}
	if len(got) != len(sealed.entries) {
		t.Fatalf("scan found %d chunks, the trailer lists %d", len(got), len(sealed.entries))
	}
	for i, e := range sealed.entries {
		if got[i] != e {
			t.Fatalf("chunk %d: scan %+v, trailer %+v", i, got[i], e)
		}
	}
}

// TestRepairScansTruncatedUnindexedPack: a pack is truncated and the index
// is lost too: the chunks before the cut are found by scanning.
func TestRepairScansTruncatedUnindexedPack(t *testing.T) {
	r, vs := repairSetup(t)
	var pack string
	var size int64
	for p := range packsOf(t, r, vs[string(versionKey(3))]) {
		if s := listPacks(t, r)[p]; s > size {
			pack, size = p, s
		}
	}
	entries, err := readWholePack(context.Background(), r.packs, pack)
	if err != nil {
		t.Fatal(err)
	}
	cut := size / 2
	var before []chunker.ID
	for _, e := range entries {
		if int64(e.Offset+uint64(e.StoredLen)) <= cut {
			before = append(before, e.ID)
		}
	}
	must(t, os.Truncate(localPacks(r).path(pack), cut))
	deleteIndex(t, r)
	rep := repairOK(t, r, false)
	if len(rep.Damaged) != 1 || !rep.Damaged[0].Scanned || rep.Damaged[0].Salvaged < len(before) {
		t.Fatalf("damaged: %+v, want %d chunks salvaged by scanning", rep.Damaged, len(before))
	}
	locs, err := r.Lookup(context.Background(), before)
	if err != nil {
		t.Fatal(err)
	}
	if len(locs) != len(before) {
		t.Fatalf("%d of the %d chunks before the cut are indexed", len(locs), len(before))
	}
	want := []string{string(versionKey(3))}
	if got := missingOf(t, r, vs); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("versions missing chunks: %v, want %v", got, want)
	}
	onlyMissingChunks(t, r, vs, want)
}
