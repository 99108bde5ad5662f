package repo

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"mis/chunker"
)

// gcSetup commits versions 1..n (versionData) and deletes the records of
// the versions in drop, so their private chunks become garbage.
func gcSetup(t *testing.T, n int, drop ...int) *Repo {
	t.Helper()
	dir := t.TempDir() + "/repo"
	if err := Init(dir, InitOptions{Chunker: testParams, PackTargetSize: 4 << 20}); err != nil {
		t.Fatal(err)
	}
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	w := openWriter(t, r)
	defer w.Close()
	// Three versions per commit, so they share packs and dropping some
	// leaves packs partly live (gc rewrites those below half live).
	for v := 1; v <= n; v += 3 {
		var recs [][]byte
		for k := v; k <= v+2 && k <= n; k++ {
			data := versionData(k)
			refs, err := w.WriteStream(bytes.NewReader(data), nil)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(data)
			rec := versionRecord{Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
			for _, ref := range refs {
				rec.Refs = append(rec.Refs, ref.ID.String())
			}
			val, _ := json.Marshal(rec)
			recs = append(recs, val)
		}
		err := w.Commit(ctx, func(tx *Tx) error {
			for i, val := range recs {
				if err := tx.Put(versionKey(v+i), val); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	err = w.Update(ctx, func(tx *Tx) error {
		for _, v := range drop {
			if err := tx.Delete(versionKey(v)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// liveOf yields every chunk of the version records visible to tx.
func liveOf(ctx context.Context, w *Writer) func(yield func(chunker.ID) error) error {
	return func(yield func(chunker.ID) error) error {
		var refs []string
		err := w.View(ctx, func(tx *Tx) error {
			return tx.Iterate([]byte("v/"), func(key, val []byte) error {
				var rec versionRecord
				if err := json.Unmarshal(val, &rec); err != nil {
					return fmt.Errorf("%s: %w", key, err)
				}
				refs = append(refs, rec.Refs...)
				return nil
			})
		})
		if err != nil {
			return err
		}
		for _, s := range refs {
			id, err := chunker.ParseID(s)
			if err != nil {
				return err
			}
			if err := yield(id); err != nil {
				return err
			}
		}
		return nil
	}
}

func checkAllVersions(t *testing.T, r *Repo) {
	t.Helper()
	vs := loadVersions(t, r)
	rep, err := r.Verify(context.Background(), VerifyOptions{ReadData: true, Refs: refsOf(vs)})
	if err != nil {
		t.Fatal(err)
	}
	if s := rep.Serious(); len(s) > 0 {
		t.Fatalf("verify: %v", s)
	}
	for name, rec := range vs {
		restoreVersion(t, r, name, rec)
	}
}

func TestGCFreesSpaceKeepsVersions(t *testing.T) {
	r := gcSetup(t, 6, 2, 3, 5, 6)
	ctx := context.Background()
	before, err := r.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mtimes := fileModTimes(t, r)

	w := openWriter(t, r)
	dry, err := w.GC(ctx, liveOf(ctx, w), GCOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if after, _ := r.Stats(ctx); after != before {
		t.Fatalf("dry run changed the repository: %+v -> %+v", before, after)
	}
	if got := fileModTimes(t, r); fmt.Sprint(got) != fmt.Sprint(mtimes) {
		t.Fatalf("dry run changed packs")
	}
	if dry.DeadChunks == 0 || dry.PacksRewritten == 0 || dry.Freed() <= 0 {
		t.Fatalf("dry run found nothing to do: %+v", dry)
	}

	rep, err := w.GC(ctx, liveOf(ctx, w), GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	t.Logf("gc: %+v, freed %d bytes", rep, rep.Freed())
	if rep.DeadChunks != dry.DeadChunks || rep.PacksDeleted != dry.PacksDeleted || rep.CopiedBytes != dry.CopiedBytes {
		t.Errorf("dry run %+v differs from the run %+v", dry, rep)
	}
	after, err := r.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.PackBytes >= before.PackBytes || after.PackBytes != rep.PackBytesAfter || before.PackBytes != rep.PackBytesBefore {
		t.Fatalf("pack bytes %d -> %d, report %+v", before.PackBytes, after.PackBytes, rep)
	}
	if after.Chunks != before.Chunks-rep.DeadChunks {
		t.Fatalf("chunks %d -> %d, %d removed", before.Chunks, after.Chunks, rep.DeadChunks)
	}
	// Versions 5 and 6 shared a pack with 4 only: it was rewritten and
	// their private data (512 KiB random each) is gone. (The first pack is
	// still more than half live: kept, its dead chunks only unindexed.)
	if rep.PacksRewritten == 0 || rep.Freed() < 2*512<<10 {
		t.Fatalf("freed only %d bytes", rep.Freed())
	}
	// No unindexed packs and no problems at all.
	verifyOK(t, r, VerifyOptions{ReadData: true, Refs: refsOf(loadVersions(t, r))})
	checkAllVersions(t, r)

	// A second gc finds nothing left.
	w = openWriter(t, r)
	again, err := w.GC(ctx, liveOf(ctx, w), GCOptions{})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if again.DeadChunks != 0 || again.PacksDeleted != 0 || again.Freed() != 0 {
		t.Fatalf("second gc did something: %+v", again)
	}
}

func TestGCRefusesIncompleteLiveSet(t *testing.T) {
	r := gcSetup(t, 2)
	ctx := context.Background()
	before, _ := r.Stats(ctx)
	w := openWriter(t, r)
	defer w.Close()
	_, err := w.GC(ctx, func(yield func(chunker.ID) error) error {
		return fmt.Errorf("manifest of v/000002 unreadable")
	}, GCOptions{})
	if err == nil || !strings.Contains(err.Error(), "unreadable") {
		t.Fatalf("gc with a failing live set: %v", err)
	}
	if after, _ := r.Stats(ctx); after != before {
		t.Fatalf("failed gc changed the repository")
	}
}

func TestGCWhileWriterHoldsLock(t *testing.T) {
	r := gcSetup(t, 6, 4, 5)
	h := startHelper(t, r.Dir(), "hold")
	h.waitFor(t, "ready")
	_, err := r.OpenWriter(context.Background(), "mis gc")
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("locked by pid %d", h.cmd.Process.Pid)) {
		t.Fatalf("gc while a writer holds the lock: %v", err)
	}
	h.kill()
	ctx := context.Background()
	w := openWriter(t, r)
	rep, err := w.GC(ctx, liveOf(ctx, w), GCOptions{})
	w.Close()
	if err != nil || rep.Freed() <= 0 {
		t.Fatalf("gc after the holder died: %+v %v", rep, err)
	}
	checkAllVersions(t, r)
}

// gcSteps are the points where GC calls its step hook.
var gcSteps = []string{"marked", "copied", "indexed", "swept", "unindexed", "removed"}

// TestGCHelperProcess is not a test: it is the gc child process of the
// kill tests. It stops for good at step MIS_GC_STOP, if given.
func TestGCHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "gc" {
		t.Skip("helper process only")
	}
	ctx := context.Background()
	r, err := Open(os.Getenv("MIS_REPO_TEST_DIR"))
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	w, err := r.OpenWriter(ctx, "helper gc")
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	stop := os.Getenv("MIS_GC_STOP")
	_, err = w.GC(ctx, liveOf(ctx, w), GCOptions{step: func(name string) {
		if name == stop {
			fmt.Println("ready", name)
			time.Sleep(time.Hour)
		}
	}})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("done")
	time.Sleep(time.Hour)
}

func startGCHelper(t *testing.T, dir string, extraEnv ...string) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestGCHelperProcess$", "-test.timeout=10m")
	cmd.Env = append(os.Environ(), helperEnv+"=gc", "MIS_REPO_TEST_DIR="+dir)
	cmd.Env = append(cmd.Env, extraEnv...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{cmd: cmd, lines: bufio.NewScanner(out)}
	t.Cleanup(func() { h.kill() })
	return h
}

func TestGCKilledAtEachStep(t *testing.T) {
	for _, stop := range gcSteps {
		t.Run(stop, func(t *testing.T) {
			r := gcSetup(t, 6, 5, 6)
			h := startGCHelper(t, r.Dir(), "MIS_GC_STOP="+stop)
			h.waitFor(t, "ready")
			h.kill()
			checkAllVersions(t, r)
			// The next gc finishes the job: afterwards nothing is wrong at all.
			ctx := context.Background()
			w := openWriter(t, r)
			if _, err := w.GC(ctx, liveOf(ctx, w), GCOptions{}); err != nil {
				t.Fatal(err)
			}
			w.Close()
			verifyOK(t, r, VerifyOptions{ReadData: true, Refs: refsOf(loadVersions(t, r))})
			checkAllVersions(t, r)
		})
	}
}

func TestGCKilledAtRandomMoments(t *testing.T) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	r := gcSetup(t, 6, 2, 3, 5)
	for round := 0; round < 5; round++ {
		if round > 0 {
			// New garbage for this round: drop one more version.
			w := openWriter(t, r)
			if err := w.Update(context.Background(), func(tx *Tx) error { return tx.Delete(versionKey(round)) }); err != nil {
				t.Fatal(err)
			}
			w.Close()
		}
		h := startGCHelper(t, r.Dir())
		delay := time.Duration(rng.IntN(800)) * time.Millisecond
		time.Sleep(delay)
		h.kill()
		checkAllVersions(t, r)
		t.Logf("round %d: killed after %v, repository verifies and restores", round, delay)
	}
	ctx := context.Background()
	w := openWriter(t, r)
	if _, err := w.GC(ctx, liveOf(ctx, w), GCOptions{}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	verifyOK(t, r, VerifyOptions{ReadData: true, Refs: refsOf(loadVersions(t, r))})
	checkAllVersions(t, r)
}

// TestReaderFollowsChunksMovedByGC looks chunk locations up, lets gc rewrite
// their packs, then reads with the stale locations: the reader must find
// the chunks in their new packs, as an export that started before gc does.
func TestReaderFollowsChunksMovedByGC(t *testing.T) {
	r := gcSetup(t, 6, 2, 3, 5, 6)
	ctx := context.Background()
	vs := loadVersions(t, r)
	var ids []chunker.ID
	for _, rec := range vs {
		for _, s := range rec.Refs {
			id, err := chunker.ParseID(s)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
	}
	stale, err := r.Lookup(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	w := openWriter(t, r)
	rep, err := w.GC(ctx, liveOf(ctx, w), GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if rep.PacksRewritten == 0 {
		t.Fatalf("gc rewrote no pack, the test proves nothing: %+v", rep)
	}
	cr := r.NewChunkReader()
	defer cr.Close()
	moved := 0
	for _, id := range ids {
		if _, err := os.Stat(r.Dir() + "/packs/" + stale[id].Pack[:2] + "/" + stale[id].Pack + ".pack"); os.IsNotExist(err) {
			moved++
		}
		if _, err := cr.Read(id, stale[id], nil); err != nil {
			t.Fatalf("read with a location from before gc: %v", err)
		}
	}
	if moved == 0 {
		t.Fatal("no chunk's pack was removed by gc")
	}
}

// TestGCPlanThenExecute: the plan names every pack it will rewrite or
// remove and its figures are what the execution then reports.
func TestGCPlanThenExecute(t *testing.T) {
	r := gcSetup(t, 9, 2, 3, 5, 6, 7, 8, 9) // packs: v1-3 kept, v4-6 rewritten, v7-9 dropped
	ctx := context.Background()
	before := listPacks(t, r)
	w := openWriter(t, r)
	defer w.Close()
	plan, err := w.PlanGC(ctx, liveOf(ctx, w), GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Rewrite) == 0 || len(plan.Drop) == 0 || len(plan.Drop)+len(plan.Rewrite) != int(plan.Report.PacksDeleted) {
		t.Fatalf("plan: %+v", plan)
	}
	text := plan.String()
	t.Logf("plan:\n%s", text)
	for _, p := range append(append([]GCPack(nil), plan.Rewrite...), plan.Drop...) {
		if before[p.Name] != p.Size || !strings.Contains(text, p.Name) {
			t.Fatalf("planned pack %+v: listed size %d, in the text: %v", p, before[p.Name], strings.Contains(text, p.Name))
		}
	}
	if got := listPacks(t, r); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Fatal("planning changed the packs")
	}
	rep, err := w.ExecuteGC(ctx, plan)
	if err != nil {
		t.Fatal(err)
	}
	want := plan.Report
	want.DryRun, want.PacksWritten = false, rep.PacksWritten
	if rep != want {
		t.Fatalf("execution reports\n%+v\nthe plan said\n%+v", rep, plan.Report)
	}
	for _, p := range append(append([]GCPack(nil), plan.Rewrite...), plan.Drop...) {
		if _, ok := listPacks(t, r)[p.Name]; ok {
			t.Fatalf("planned pack %s is still there", p.Name)
		}
	}
	if _, err := w.ExecuteGC(ctx, plan); err == nil || !strings.Contains(err.Error(), "already executed") {
		t.Fatalf("second execution of a plan: %v", err)
	}
	w.Close()
	checkAllVersions(t, r)
}

// TestGCStalePlanRefused: after planning, the writer dedups new data
// against chunks the plan found dead and commits a version using them.
// Executing the old plan would delete those chunks; it must be refused.
func TestGCStalePlanRefused(t *testing.T) {
	r := gcSetup(t, 6, 5, 6)
	ctx := context.Background()
	w := openWriter(t, r)
	defer w.Close()
	plan, err := w.PlanGC(ctx, liveOf(ctx, w), GCOptions{})
	if err != nil || plan.Report.DeadChunks == 0 {
		t.Fatalf("plan: %+v %v", plan, err)
	}
	if err := commitVersion(ctx, w, 5, versionData(5)); err != nil { // v5's chunks again
		t.Fatal(err)
	}
	if st := w.Stats(); st.DupChunks == 0 {
		t.Fatalf("the new version reused no dead chunk, the test proves nothing: %+v", st)
	}
	before, _ := r.Stats(ctx)
	if _, err := w.ExecuteGC(ctx, plan); err == nil || !strings.Contains(err.Error(), "stale") {
		t.Fatalf("execution of a stale plan: %v", err)
	}
	if after, _ := r.Stats(ctx); after != before {
		t.Fatalf("a refused plan changed the repository: %+v -> %+v", before, after)
	}
	if _, err := w.GC(ctx, liveOf(ctx, w), GCOptions{}); err != nil { // a fresh plan is fine
		t.Fatal(err)
	}
	w.Close()
	verifyOK(t, r, VerifyOptions{ReadData: true, Refs: refsOf(loadVersions(t, r))})
	checkAllVersions(t, r)

	// A plan belongs to the writer that made it.
	w1 := openWriter(t, r)
	plan, err = w1.PlanGC(ctx, liveOf(ctx, w1), GCOptions{})
	w1.Close()
	if err != nil {
		t.Fatal(err)
	}
	w2 := openWriter(t, r)
	defer w2.Close()
	if _, err := w2.ExecuteGC(ctx, plan); err == nil || !strings.Contains(err.Error(), "another writer") {
		t.Fatalf("execution on another writer: %v", err)
	}
}
