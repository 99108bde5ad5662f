package repo

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const helperEnv = "MIS_REPO_TEST_HELPER"

// TestHelperProcess is not a test: it is the child process of the crash
// tests, started by startHelper. It reports progress on stdout.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("helper process only")
	}
	dir := os.Getenv("MIS_REPO_TEST_DIR")
	r, err := Open(dir)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	ctx := context.Background()
	w, err := r.OpenWriter(ctx, "helper "+mode)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	switch mode {
	case "hold":
		// Data phase with a pending chunk, then wait to be killed.
		if _, _, err := w.Put(randomBytes(77, 50_000)); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("ready")
	case "seal":
		// Seal packs but never commit: a crash between pack write and index update.
		if _, err := w.WriteStream(strings.NewReader(string(randomBytes(55, 3<<20))), nil); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		w.mu.Lock()
		err := w.sealLocked(ctx)
		w.mu.Unlock()
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("ready")
	case "incommit":
		// Killed inside the read-write session, after the index was
		// written and while the version transaction is open.
		if err := commitVersion(ctx, w, 1, versionData(1)); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		w.Put(randomBytes(88, 100_000))
		w.Commit(ctx, func(tx *Tx) error {
			tx.Put([]byte("v/000002"), []byte("{}"))
			fmt.Println("ready")
			time.Sleep(time.Hour)
			return nil
		})
	case "loop":
		start, _ := strconv.Atoi(os.Getenv("MIS_REPO_TEST_START"))
		for v := start; ; v++ {
			if err := commitVersion(ctx, w, v, versionData(v)); err != nil {
				fmt.Println("error:", err)
				os.Exit(1)
			}
			fmt.Println("committed", v)
		}
	}
	time.Sleep(time.Hour)
}

// versionData is the content of version v in the kill loop: mostly
// shared with v-1, plus new random and compressible parts.
func versionData(v int) []byte {
	base := randomBytes(1000, 1<<20)
	fresh := randomBytes(uint64(2000+v), 512<<10)
	text := compressibleBytes(uint64(3000+v), 512<<10)
	return append(append(base, fresh...), text...)
}

type helper struct {
	cmd   *exec.Cmd
	lines *bufio.Scanner
}

func startHelper(t *testing.T, dir, mode string, extraEnv ...string) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.timeout=10m")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, "MIS_REPO_TEST_DIR="+dir)
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

func (h *helper) waitFor(t *testing.T, prefix string) string {
	t.Helper()
	for h.lines.Scan() {
		line := h.lines.Text()
		if strings.HasPrefix(line, "error:") {
			t.Fatalf("helper: %s", line)
		}
		if strings.HasPrefix(line, prefix) {
			return line
		}
	}
	t.Fatalf("helper exited before %q", prefix)
	return ""
}

func (h *helper) kill() {
	if h.cmd.Process != nil && h.cmd.ProcessState == nil {
		h.cmd.Process.Signal(syscall.SIGKILL)
		io.Copy(io.Discard, readerOf(h.lines))
		h.cmd.Wait()
	}
}

func readerOf(s *bufio.Scanner) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		for s.Scan() {
		}
		pw.Close()
	}()
	return pr
}

func TestWriterLockReadersAndDeadHolder(t *testing.T) {
	r := newTestRepo(t)
	h := startHelper(t, r.Dir(), "hold")
	h.waitFor(t, "ready")
	pid := h.cmd.Process.Pid

	// A second writer is refused, naming the holder.
	_, err := r.OpenWriter(context.Background(), "second")
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("locked by pid %d (helper hold)", pid)) {
		t.Fatalf("second writer: %v", err)
	}
	// Readers work while the writer is in its data phase.
	err = r.View(context.Background(), func(tx *Tx) error {
		_, err := tx.Get([]byte("nothing"))
		if err != ErrNotFound {
			return fmt.Errorf("get: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("reader during data phase: %v", err)
	}
	verifyOK(t, r, VerifyOptions{ReadData: true})

	h.kill()
	w, err := r.OpenWriter(context.Background(), "after kill")
	if err != nil {
		t.Fatalf("writer after holder was killed: %v", err)
	}
	// The killed writer's pending chunk was never committed.
	if has, err := w.Has(sumID(randomBytes(77, 50_000))); err != nil || has {
		t.Fatalf("uncommitted chunk present=%v err=%v", has, err)
	}
	w.Close()
	verifyOK(t, r, VerifyOptions{ReadData: true})
}

func TestCrashBetweenPackWriteAndIndex(t *testing.T) {
	r := newTestRepo(t)
	h := startHelper(t, r.Dir(), "seal")
	h.waitFor(t, "ready")
	h.kill()
	// Leave a half-written pack in tmp as a crash during write would.
	if err := os.WriteFile(localPacks(r).dir+"/tmp/pack-leftover", []byte("MISPACK1 partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	packs := listPacks(t, r)
	if len(packs) < 2 {
		t.Fatalf("helper sealed %d packs, want several", len(packs))
	}
	mtimes := fileModTimes(t, r)

	// The repository opens and reads; the packs are merely unindexed.
	rep, err := r.Verify(context.Background(), VerifyOptions{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Problems {
		if p.Kind != ProblemUnindexedPack {
			t.Fatalf("unexpected problem: %s", p)
		}
	}
	if len(rep.Problems) != len(packs) {
		t.Fatalf("%d problems for %d unindexed packs", len(rep.Problems), len(packs))
	}

	// The next writer indexes them, and storing the same data writes nothing new.
	w := openWriter(t, r)
	if err := commitVersion(context.Background(), w, 1, randomBytes(55, 3<<20)); err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(); st.NewChunks != 0 || st.Packs != 0 {
		t.Fatalf("data rewritten after recovery: %+v", st)
	}
	w.Close()
	if left, _ := os.ReadDir(localPacks(r).dir + "/tmp"); len(left) != 0 {
		t.Fatalf("tmp leftovers not removed: %v", left)
	}
	if after := fileModTimes(t, r); len(after) != len(mtimes) {
		t.Fatalf("packs changed: %d -> %d", len(mtimes), len(after))
	}
	vs := loadVersions(t, r)
	verifyOK(t, r, VerifyOptions{ReadData: true, Refs: refsOf(vs)})
	restoreVersion(t, r, "v/000001", vs["v/000001"])
}

func TestKillDuringWriteLoop(t *testing.T) {
	r := newTestRepo(t)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	next := 1
	for round := 0; round < 6; round++ {
		h := startHelper(t, r.Dir(), "loop", fmt.Sprintf("MIS_REPO_TEST_START=%d", next))
		h.waitFor(t, "committed") // at least one version per round
		// Readers keep working while the child writes and commits.
		if during := loadVersions(t, r); len(during) < next {
			t.Fatalf("round %d: reader saw %d versions while writer ran", round, len(during))
		}
		time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)
		h.kill()

		vs := loadVersions(t, r)
		if len(vs) < round+1 {
			t.Fatalf("round %d: only %d versions", round, len(vs))
		}
		rep, err := r.Verify(context.Background(), VerifyOptions{ReadData: true, Refs: refsOf(vs)})
		if err != nil {
			t.Fatal(err)
		}
		if serious := rep.Serious(); len(serious) > 0 {
			t.Fatalf("round %d: %v", round, serious)
		}
		for name, rec := range vs {
			restoreVersion(t, r, name, rec)
		}
		next = len(vs) + 1
		for i := 1; i < next; i++ {
			if _, ok := vs[string(versionKey(i))]; !ok {
				t.Fatalf("round %d: version %d missing", round, i)
			}
		}
		t.Logf("round %d: %d versions committed and verified, %d unindexed packs", round, len(vs), len(rep.Problems))
	}
	// A writer session indexes the leftovers; then nothing is wrong at all.
	openWriter(t, r).Close()
	verifyOK(t, r, VerifyOptions{ReadData: true, Refs: refsOf(loadVersions(t, r))})
}

func TestKillInsideCommit(t *testing.T) {
	r := newTestRepo(t)
	h := startHelper(t, r.Dir(), "incommit")
	h.waitFor(t, "ready")
	// While the writer holds the metadata read-write, readers wait and
	// then give up naming the holder.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	err := r.View(ctx, func(tx *Tx) error { return nil })
	cancel()
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("busy (held by pid %d", h.cmd.Process.Pid)) {
		t.Fatalf("view during commit: %v", err)
	}
	h.kill()
	vs := loadVersions(t, r) // read-only open of a database left by a killed read-write session
	if len(vs) != 1 {
		t.Fatalf("versions after kill inside commit: %v", vs)
	}
	verifyOK(t, r, VerifyOptions{ReadData: true, Refs: refsOf(vs)})
	restoreVersion(t, r, "v/000001", vs["v/000001"])
	w := openWriter(t, r)
	if has, err := w.Has(sumID(randomBytes(88, 100_000))); err != nil || !has {
		t.Fatalf("chunk indexed before the killed transaction: has=%v err=%v", has, err)
	}
	w.Close()
}

// TestReaderRepairsEmptyMemtable recreates what a writer killed between
// creating a Badger memtable file and sizing it leaves (an empty .mem
// file, seen in TestKillDuringWriteLoop): a read-only open alone fails on
// it, so openMeta must repair with a brief read-write open.
func TestReaderRepairsEmptyMemtable(t *testing.T) {
	r := newTestRepo(t)
	ctx := context.Background()
	w := openWriter(t, r)
	if err := commitVersion(ctx, w, 1, randomBytes(1, 100<<10)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	mems, _ := filepath.Glob(filepath.Join(r.Dir(), "meta", "*.mem"))
	next := 1
	for _, m := range mems {
		var n int
		fmt.Sscanf(filepath.Base(m), "%05d.mem", &n)
		next = max(next, n+1)
	}
	empty := filepath.Join(r.Dir(), "meta", fmt.Sprintf("%05d.mem", next))
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if vs := loadVersions(t, r); len(vs) != 1 {
		t.Fatalf("after repair: %d versions, want 1", len(vs))
	}
	verifyOK(t, r, VerifyOptions{ReadData: true, Refs: refsOf(loadVersions(t, r))})
}
