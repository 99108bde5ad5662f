package main_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"mis/fixtures"
)

// Kill trials: "a crash at any moment leaves the repository consistent".
//
// TestCLIKillTrials runs every writer command of the CLI on a prepared
// repository and kills it with SIGKILL at a random moment: after a random
// delay, a random delay after it took the writer lock, or right when it
// creates the k-th file in the metadata database (a Badger read-write
// session starting or ending, the moments a kill is most likely to leave
// Badger something to repair). Then, at once:
//
//  1. read-only commands (ls --json, info) must work, by themselves;
//  2. verify --read-data must find nothing wrong;
//  3. every version that existed before the trial and that the command was
//     not removing must still be listed and export byte for byte as the
//     image it came from (compared by SHA-256 of the export stream); a
//     version the command was creating or removing may be there or not,
//     but if it is listed it must export right too;
//  4. the next writer works: the interrupted command, run again to the end,
//     succeeds.
//
// No output of any of these may carry a raw Badger error.
//
// Environment:
//
//	MIS_KILL_TRIALS=N       trials per command (default 3; 1 with -short)
//	MIS_KILL_COMMANDS=a,b   only these commands (import, gc, commit, rm, forget)
//	MIS_KILL_SEED=S         seed of the trial parameters (logged; timing stays real)
//	MIS_KILL_REPORT=FILE    also write the summary there as TSV, for scripts
//	MIS_KILL_KEEP=DIR       keep a copy of the metadata left by each kill that
//	                        broke a read-only command, for reproduction
//
// scripts/kill-trials wraps a long run.
func TestCLIKillTrials(t *testing.T) {
	trials := 3
	if testing.Short() {
		trials = 1
	}
	if s := os.Getenv("MIS_KILL_TRIALS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			t.Fatalf("MIS_KILL_TRIALS=%q: want a number", s)
		}
		trials = n
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("MIS_KILL_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("MIS_KILL_SEED=%q: want a number", s)
		}
		seed = n
	}
	commands := []string{"import", "gc", "commit", "rm", "forget"}
	// "repair" joins the list when mis verify --repair exists: give it a
	// killScenario in killScenarios and add its name here.
	if s := os.Getenv("MIS_KILL_COMMANDS"); s != "" {
		commands = strings.Split(s, ",")
	}
	t.Logf("kill trials: %d per command, seed %d (MIS_KILL_SEED=%d reproduces the parameters)", trials, seed, seed)

	img := fixtures.Path(t, "ext4-kernel")
	free := largestFreeRange(t, img)
	var all []*killCounts
	for i, name := range commands {
		sc, ok := killScenarios[name]
		if !ok {
			t.Fatalf("no kill scenario for %q", name)
		}
		c := &killCounts{Command: name}
		all = append(all, c)
		t.Run(name, func(t *testing.T) {
			if name == "commit" && os.Geteuid() != 0 {
				t.Skip("commit trials mount a clone with FUSE: need root")
			}
			s := newKillSeries(t, name, img, free, seed+uint64(i)*1000003, c)
			sc.setup(s)
			// One uninterrupted run first: it checks the scenario and times
			// the command for the random delays.
			s.trial(sc, false)
			for n := 0; n < trials; n++ {
				s.trial(sc, true)
			}
			if c.VersionsLost+c.BadVersions+c.ReadFailures+c.RawBadger+c.VerifyFails+c.WriterFails > 0 {
				t.Errorf("%s: kill trials found problems (see the trial logs above and the summary)", name)
			}
		})
	}
	table := killTable(all)
	t.Logf("kill trials summary (seed %d):\n%s", seed, table)
	if path := os.Getenv("MIS_KILL_REPORT"); path != "" {
		if err := os.WriteFile(path, []byte(killTSV(all)), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// killCounts is one row of the summary.
type killCounts struct {
	Command       string
	Trials        int // killed trials (the calibration run is not counted)
	KilledRunning int // trials where SIGKILL found the command still running
	VersionsLost  int // versions existing before the trial, not being removed, and missing or different after
	BadVersions   int // listed versions (the command's own new ones included) that do not export as imported
	ReadFailures  int // ls --json or info failing right after the kill
	RawBadger     int // trials where any command's stderr carried a raw Badger error
	VerifyFails   int // verify --read-data not clean
	WriterFails   int // the interrupted command, run again, failing
	// What the kills left for the next open to repair (not failures: they
	// show the repairs were exercised).
	EmptyLogs   int // trials leaving an empty .mem or .vlog (Badger opens these in neither mode)
	MemtableLog int // trials leaving a memtable log to replay (a killed read-write session)
}

func killTable(all []*killCounts) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-8s %6s %7s %13s %12s %13s %10s %12s %12s %10s %9s\n", "command", "trials", "killed", "versions_lost",
		"bad_versions", "read_failures", "raw_badger", "verify_fails", "writer_fails", "empty_logs", "memtables")
	var tot killCounts
	for _, c := range all {
		fmt.Fprintf(&b, "%-8s %6d %7d %13d %12d %13d %10d %12d %12d %10d %9d\n", c.Command, c.Trials, c.KilledRunning, c.VersionsLost,
			c.BadVersions, c.ReadFailures, c.RawBadger, c.VerifyFails, c.WriterFails, c.EmptyLogs, c.MemtableLog)
		tot.Trials += c.Trials
		tot.KilledRunning += c.KilledRunning
		tot.VersionsLost += c.VersionsLost
		tot.BadVersions += c.BadVersions
		tot.ReadFailures += c.ReadFailures
		tot.RawBadger += c.RawBadger
		tot.VerifyFails += c.VerifyFails
		tot.WriterFails += c.WriterFails
		tot.EmptyLogs += c.EmptyLogs
		tot.MemtableLog += c.MemtableLog
	}
	fmt.Fprintf(&b, "%-8s %6d %7d %13d %12d %13d %10d %12d %12d %10d %9d\n", "total", tot.Trials, tot.KilledRunning, tot.VersionsLost,
		tot.BadVersions, tot.ReadFailures, tot.RawBadger, tot.VerifyFails, tot.WriterFails, tot.EmptyLogs, tot.MemtableLog)
	return b.String()
}

func killTSV(all []*killCounts) string {
	var b strings.Builder
	b.WriteString("command\ttrials\tkilled_running\tversions_lost\tbad_versions\tread_failures\traw_badger_errors\tverify_failures\twriter_failures\tempty_logs_left\tmemtable_logs_left\n")
	for _, c := range all {
		fmt.Fprintf(&b, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", c.Command, c.Trials, c.KilledRunning, c.VersionsLost,
			c.BadVersions, c.ReadFailures, c.RawBadger, c.VerifyFails, c.WriterFails, c.EmptyLogs, c.MemtableLog)
	}
	return b.String()
}

// rawBadgerRE matches what Badger (and ristretto's z package under it) put
// in the errors they return: a user must never see these.
var (
	rawBadgerRE   = regexp.MustCompile(`(?i)badger|memtable|skiplist|datakey|\.vlog\b|\.mem\b|\.sst\b`)
	rawBadgerText = regexp.MustCompile(`MANIFEST|KEYREGISTRY|DISCARD|Value log|value log file|Create a new file|` +
		`error while truncation|truncate required|Level validation|file does not exist for table|While opening|` +
		`while opening fid|During db\.|Unable to open|while mmapping|Cannot acquire directory lock|While removing table`)
)

func hasRawBadger(s string) bool { return rawBadgerRE.MatchString(s) || rawBadgerText.MatchString(s) }

// killScenario prepares one trial of a command and finishes what it left.
type killScenario struct {
	// setup prepares the series' repository once.
	setup func(s *killSeries)
	// prepare readies the repository for one trial and returns the
	// command's arguments.
	prepare func(s *killSeries, tr *killTrial) []string
	// complete runs after the checks: the interrupted work, to the end.
	// It runs the writer through s.writer and updates s.want.
	complete func(s *killSeries, tr *killTrial)
}

// killTrial is what a trial expects.
type killTrial struct {
	n       int
	adds    map[string]string // refs the command creates -> SHA-256 of their image
	removes map[string]bool   // refs the command removes (may survive a kill)
	clone   string
}

var killScenarios = map[string]killScenario{
	// import: a new version of a changed image on top of the last one.
	"import": {
		setup: func(s *killSeries) {},
		prepare: func(s *killSeries, tr *killTrial) []string {
			s.trimVersions("imp", 3)
			sum, _ := s.mutate()
			ref := fmt.Sprintf("imp:t%d", tr.n)
			tr.adds[ref] = sum
			return []string{"import", "-q", s.work, ref}
		},
		complete: func(s *killSeries, tr *killTrial) {
			for ref := range tr.adds {
				if !s.listed()[ref] {
					s.writer("import", "-q", s.work, ref)
				}
				s.want[ref] = tr.adds[ref]
			}
		},
	},
	// gc: garbage from removed versions (some sharing packs with live
	// ones), so gc both deletes index entries and rewrites packs.
	"gc": {
		setup: func(s *killSeries) {},
		prepare: func(s *killSeries, tr *killTrial) []string {
			s.trimVersions("live", 2)
			for i := 0; i < 2; i++ {
				sum, _ := s.mutate()
				ref := fmt.Sprintf("junk:t%d-%d", tr.n, i)
				s.writer("import", "-q", s.work, ref)
				if i == 0 {
					s.writer("rm", ref)
				} else {
					s.writer("tag", ref, fmt.Sprintf("live:t%d", tr.n))
					s.writer("rm", ref)
					s.want[fmt.Sprintf("live:t%d", tr.n)] = sum
				}
			}
			return []string{"gc"}
		},
		complete: func(s *killSeries, tr *killTrial) { s.writer("gc") },
	},
	// rm: the middle of a chain of three, so its child is rebased.
	"rm": {
		setup: func(s *killSeries) {},
		prepare: func(s *killSeries, tr *killTrial) []string {
			s.trimVersions("chain", 3)
			var mid string
			for i := 0; i < 2; i++ {
				sum, _ := s.mutate()
				ref := fmt.Sprintf("chain:t%d-%d", tr.n, i)
				s.writer("import", "-q", s.work, ref)
				s.want[ref] = sum
				if i == 0 {
					mid = ref
				}
			}
			if tr.n%2 == 1 {
				// The older end of the chain: its child is its only user.
				if old := s.refsOf("chain"); len(old) > 2 {
					mid = old[0]
				}
			}
			tr.removes[mid] = true
			return []string{"rm", mid}
		},
		complete: func(s *killSeries, tr *killTrial) {
			for ref := range tr.removes {
				if s.listed()[ref] {
					s.writer("rm", ref)
				}
				delete(s.want, ref)
			}
		},
	},
	// forget: keep the newest of three, then gc.
	"forget": {
		setup: func(s *killSeries) {},
		prepare: func(s *killSeries, tr *killTrial) []string {
			for i := 0; i < 2; i++ {
				sum, _ := s.mutate()
				ref := fmt.Sprintf("fg:t%d-%d", tr.n, i)
				s.writer("import", "-q", s.work, ref)
				s.want[ref] = sum
			}
			refs := s.refsOf("fg")
			for _, ref := range refs[:len(refs)-1] {
				tr.removes[ref] = true
			}
			return []string{"forget", "fg", "--keep-last", "1"}
		},
		complete: func(s *killSeries, tr *killTrial) {
			s.writer("forget", "fg", "--keep-last", "1")
			for ref := range tr.removes {
				delete(s.want, ref)
			}
		},
	},
	// commit: a disk clone of base:v1 written through its FUSE disk.raw.
	"commit": {
		setup: func(s *killSeries) {},
		prepare: func(s *killSeries, tr *killTrial) []string {
			s.trimVersions("cm", 3)
			sum, m := s.mutate()
			tr.clone = fmt.Sprintf("vm%d", tr.n)
			s.writer("clone", "base:v1", tr.clone)
			dir, pid := mountClone(s.t, s.repo, tr.clone)
			writeAt(s.t, filepath.Join(dir, "disk.raw"), m.off, m.data, true)
			umount(s.t, s.repo, dir, pid)
			ref := fmt.Sprintf("cm:t%d", tr.n)
			tr.adds[ref] = sum
			return []string{"commit", tr.clone, ref}
		},
		complete: func(s *killSeries, tr *killTrial) {
			for ref := range tr.adds {
				if !s.listed()[ref] {
					s.writer("commit", tr.clone, ref)
				}
				s.want[ref] = tr.adds[ref]
			}
			s.writer("rm", tr.clone)
		},
	},
}

// killSeries is one command's run of trials on one repository, each trial
// starting from what the one before left.
type killSeries struct {
	t        *testing.T
	name     string
	repo     string
	scratch  string
	pristine string            // the fixture
	work     string            // the image of the current trial
	free     [2]int64          // free bytes of the fixture's filesystem: changes there keep it valid
	want     map[string]string // every version that must exist -> SHA-256 of its image
	rng      *rand.Rand
	counts   *killCounts
	took     []time.Duration // uninterrupted runs of the command
	trialN   int
	problems []string      // of the current trial
	counted  map[*int]bool // counters already raised by the current trial
}

type mutation struct {
	off  int64
	data []byte
}

func newKillSeries(t *testing.T, name, img string, free [2]int64, seed uint64, c *killCounts) *killSeries {
	dir := t.TempDir()
	s := &killSeries{t: t, name: name, repo: filepath.Join(dir, "repo"), scratch: dir, pristine: img,
		work: filepath.Join(dir, "image.raw"), free: free, want: map[string]string{},
		rng: rand.New(rand.NewPCG(seed, 0x6d6973)), counts: c}
	mustMis(t, s.repo, "init")
	mustMis(t, s.repo, "import", "-q", img, "base:v1")
	s.want["base:v1"] = fileSHA(t, img)
	return s
}

// mutate makes the trial's image: the fixture with 1-6 MiB of fresh random
// bytes in its filesystem's free space (residual data: new chunks, new
// packs). It returns the image's SHA-256 and the change.
func (s *killSeries) mutate() (string, mutation) {
	run(s.t, "cp", "--sparse=always", s.pristine, s.work)
	n := int64(1+s.rng.IntN(6)) << 20
	span := (s.free[1] - s.free[0] - n) / 4096
	m := mutation{off: s.free[0] + s.rng.Int64N(span)*4096, data: make([]byte, n)}
	for i := 0; i+8 <= len(m.data); i += 8 {
		v := s.rng.Uint64()
		copy(m.data[i:], unsafe.Slice((*byte)(unsafe.Pointer(&v)), 8))
	}
	writeAt(s.t, s.work, m.off, m.data, false)
	return fileSHA(s.t, s.work), m
}

// writer runs a writer command to the end; it must succeed.
func (s *killSeries) writer(args ...string) {
	s.t.Helper()
	start := time.Now()
	out, errOut, code := mis(s.t, s.repo, args...)
	if hasRawBadger(errOut) {
		s.problem(&s.counts.RawBadger, "mis %v: raw Badger error: %s", args, errOut)
	}
	if code != 0 {
		s.problem(&s.counts.WriterFails, "writer mis %v: exit %d\n%s%s", args, code, out, errOut)
		return
	}
	if args[0] == s.name {
		s.took = append(s.took, time.Since(start))
	}
}

// problem records a finding of the current trial. Each kind counts once
// per trial, except lost and bad versions, which count each version.
func (s *killSeries) problem(counter *int, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.t.Logf("trial %d: %s", s.trialN, msg)
	s.problems = append(s.problems, msg)
	if counter == &s.counts.VersionsLost || counter == &s.counts.BadVersions || !s.counted[counter] {
		*counter++
	}
	s.counted[counter] = true
}

// listed returns the refs ls --json shows (nil when ls fails).
func (s *killSeries) listed() map[string]bool {
	out, errOut, code := mis(s.t, s.repo, "ls", "--json")
	if code != 0 {
		s.t.Logf("ls --json: exit %d: %s", code, errOut)
		return nil
	}
	var rows []struct{ Name, Tag string }
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		s.t.Fatalf("ls --json: %v", err)
	}
	refs := map[string]bool{}
	for _, r := range rows {
		refs[r.Name+":"+r.Tag] = true
	}
	return refs
}

// refsOf returns the wanted refs of image name, oldest first (tags carry
// the trial number).
func (s *killSeries) refsOf(name string) []string {
	var refs []string
	for ref := range s.want {
		if strings.HasPrefix(ref, name+":") {
			refs = append(refs, ref)
		}
	}
	sort.Slice(refs, func(i, j int) bool { return trialOrder(refs[i]) < trialOrder(refs[j]) })
	return refs
}

func trialOrder(ref string) string {
	tag := ref[strings.IndexByte(ref, ':')+2:]
	n, rest, _ := strings.Cut(tag, "-")
	i, _ := strconv.Atoi(n)
	return fmt.Sprintf("%08d-%s", i, rest)
}

// trimVersions keeps the series' repository small: at most keep versions
// of name (the oldest go).
func (s *killSeries) trimVersions(name string, keep int) {
	refs := s.refsOf(name)
	for len(refs) > keep {
		s.writer("rm", refs[0])
		delete(s.want, refs[0])
		refs = refs[1:]
	}
}

// trial runs one trial; killed=false is the uninterrupted calibration run.
func (s *killSeries) trial(sc killScenario, kill bool) {
	t := s.t
	s.trialN++
	s.problems, s.counted = nil, map[*int]bool{}
	tr := &killTrial{n: s.trialN, adds: map[string]string{}, removes: map[string]bool{}}
	args := sc.prepare(s, tr)
	before := map[string]string{}
	for ref, sum := range s.want {
		before[ref] = sum
	}
	if !kill {
		s.writer(args...)
	} else {
		s.counts.Trials++
		how, running, errOut := s.killRun(args)
		if running {
			s.counts.KilledRunning++
		}
		if hasRawBadger(errOut) {
			s.problem(&s.counts.RawBadger, "killed mis %v: raw Badger error: %s", args, errOut)
		}
		t.Logf("trial %d: mis %s killed %s (running: %v)", s.trialN, strings.Join(args, " "), how, running)
		s.checkAfterKill(tr, before)
	}
	sc.complete(s, tr)
	if len(s.problems) > 0 && !kill {
		t.Fatalf("uninterrupted run failed: the scenario is broken")
	}
}

// killRun starts the command and kills it at a random moment. It returns
// how it was killed, whether the process was still running, and stderr.
func (s *killSeries) killRun(args []string) (string, bool, string) {
	t := s.t
	meta := filepath.Join(s.repo, "meta")
	typical := 300 * time.Millisecond
	if len(s.took) > 0 {
		d := slices.Clone(s.took)
		slices.Sort(d)
		typical = d[len(d)/2]
	}
	mode := []string{"delay", "lock", "meta"}[s.rng.IntN(3)]
	delay := time.Duration(s.rng.Int64N(int64(typical)*11/10 + 1))
	nth := 1 + s.rng.IntN(6)
	metaDelay := time.Duration(s.rng.Int64N(int64(2 * time.Millisecond)))

	var ino *inotify
	if mode == "meta" {
		var err error
		if ino, err = watchCreates(meta); err != nil {
			t.Fatal(err)
		}
		defer ino.close()
	}
	cmd := exec.Command(misBin, append([]string{"--repo", s.repo}, args...)...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	var how string
	switch mode {
	case "delay":
		how = fmt.Sprintf("after %v", delay)
		select {
		case <-done:
		case <-time.After(delay):
		}
	case "lock":
		how = fmt.Sprintf("%v after taking the writer lock", delay/2)
		if waitLockPid(filepath.Join(s.repo, "lock"), cmd.Process.Pid, done) {
			select {
			case <-done:
			case <-time.After(delay / 2):
			}
		}
	case "meta":
		how = fmt.Sprintf("%v after creating its metadata file #%d", metaDelay, nth)
		if name := ino.waitNth(nth, done); name != "" {
			how += " (" + name + ")"
			time.Sleep(metaDelay)
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-done
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	running := ws.Signaled() && ws.Signal() == syscall.SIGKILL
	return how, running, stderr.String()
}

// checkAfterKill is steps 1-3 of a trial.
func (s *killSeries) checkAfterKill(tr *killTrial, before map[string]string) {
	t := s.t
	metaState, emptyLogs, memtables := metaListing(filepath.Join(s.repo, "meta"))
	if emptyLogs {
		s.counts.EmptyLogs++
	}
	if memtables {
		s.counts.MemtableLog++
	}
	kept := ""
	if dir := os.Getenv("MIS_KILL_KEEP"); dir != "" {
		kept = filepath.Join(dir, fmt.Sprintf("%s-%d-%d-meta", s.name, s.trialN, time.Now().UnixNano()))
		run(t, "cp", "-a", "--sparse=always", filepath.Join(s.repo, "meta"), kept)
	}
	readFailed := false
	// 1. Read-only commands, at once.
	out, errOut, code := mis(t, s.repo, "ls", "--json")
	if hasRawBadger(errOut) {
		s.problem(&s.counts.RawBadger, "ls --json right after the kill: raw Badger error: %s", errOut)
	}
	var rows []struct{ Name, Tag string }
	if code != 0 || json.Unmarshal([]byte(out), &rows) != nil {
		readFailed = true
		s.problem(&s.counts.ReadFailures, "ls --json right after the kill: exit %d: %s\nmetadata left by the kill:\n%s", code, errOut, metaState)
	}
	_, errOut, code = mis(t, s.repo, "info", "base:v1")
	if hasRawBadger(errOut) {
		s.problem(&s.counts.RawBadger, "info: raw Badger error: %s", errOut)
	}
	if code != 0 {
		if !readFailed {
			s.problem(&s.counts.ReadFailures, "info base:v1 after the kill: exit %d: %s\nmetadata left by the kill:\n%s", code, errOut, metaState)
		}
		readFailed = true
	}
	if kept != "" {
		if readFailed {
			t.Logf("trial %d: metadata left by the kill kept at %s", s.trialN, kept)
		} else {
			os.RemoveAll(kept)
		}
	}
	// 2. verify --read-data.
	out, errOut, code = mis(t, s.repo, "verify", "--read-data")
	if hasRawBadger(out + errOut) {
		s.problem(&s.counts.RawBadger, "verify: raw Badger error: %s%s", out, errOut)
	}
	if code != 0 {
		s.problem(&s.counts.VerifyFails, "verify --read-data after the kill: exit %d\n%s%s", code, out, errOut)
	}
	// 3. Versions.
	listed := s.listed()
	if listed == nil {
		s.problem(&s.counts.ReadFailures, "ls --json failed again after verify")
		return
	}
	check := map[string]string{}
	for ref, sum := range before {
		check[ref] = sum
	}
	for ref, sum := range tr.adds {
		check[ref] = sum
	}
	refs := make([]string, 0, len(check))
	for ref := range check {
		refs = append(refs, ref)
	}
	sort.Strings(refs)
	for _, ref := range refs {
		mustExist := !tr.removes[ref] && tr.adds[ref] == ""
		if !listed[ref] {
			if mustExist {
				s.problem(&s.counts.VersionsLost, "%s existed before the kill and is gone", ref)
			}
			continue
		}
		got, errOut, err := exportSHA(s.repo, ref)
		if hasRawBadger(errOut) {
			s.problem(&s.counts.RawBadger, "export %s: raw Badger error: %s", ref, errOut)
		}
		if err != nil || got != check[ref] {
			if mustExist {
				s.problem(&s.counts.VersionsLost, "%s no longer exports as imported: %v %s", ref, err, errOut)
			} else {
				s.problem(&s.counts.BadVersions, "%s is listed but does not export as its image: %v %s", ref, err, errOut)
			}
		}
	}
	for ref := range listed {
		if _, ok := check[ref]; !ok {
			s.problem(&s.counts.BadVersions, "%s is listed but no trial made it", ref)
		}
	}
}

// exportSHA streams a version's export and hashes it.
func exportSHA(repo, ref string) (string, string, error) {
	cmd := exec.Command(misBin, "--repo", repo, "export", "-q", ref, "-")
	h := sha256.New()
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = h, &stderr
	if err := cmd.Run(); err != nil {
		return "", stderr.String(), err
	}
	return hex.EncodeToString(h.Sum(nil)), stderr.String(), nil
}

func fileSHA(t *testing.T, path string) string {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// largestFreeRange reads the fixture's free block ranges with dumpe2fs and
// returns the largest, in bytes.
func largestFreeRange(t *testing.T, img string) [2]int64 {
	out, err := exec.Command("dumpe2fs", img).Output()
	if err != nil {
		t.Fatalf("dumpe2fs %s: %v", img, err)
	}
	bs := int64(0)
	var best [2]int64
	re := regexp.MustCompile(`(\d+)-(\d+)`)
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "Block size:"); ok {
			bs, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
		if v, ok := strings.CutPrefix(line, "Free blocks: "); ok && bs > 0 {
			for _, m := range re.FindAllStringSubmatch(v, -1) {
				a, _ := strconv.ParseInt(m[1], 10, 64)
				b, _ := strconv.ParseInt(m[2], 10, 64)
				if (b+1-a)*bs > best[1]-best[0] {
					best = [2]int64{a * bs, (b + 1) * bs}
				}
			}
		}
	}
	if best[1]-best[0] < 8<<20 {
		t.Fatalf("%s: no 8 MiB of free blocks (largest %v)", img, best)
	}
	return best
}

// metaListing describes the metadata directory (names and sizes) and says
// whether it holds empty logs and non-empty memtable logs.
func metaListing(dir string) (string, bool, bool) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err.Error(), false, false
	}
	var b strings.Builder
	empty, mem := false, false
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			continue
		}
		fmt.Fprintf(&b, "  %-20s %d\n", e.Name(), fi.Size())
		isLog := strings.HasSuffix(e.Name(), ".mem") || strings.HasSuffix(e.Name(), ".vlog")
		empty = empty || isLog && fi.Size() == 0
		mem = mem || strings.HasSuffix(e.Name(), ".mem") && fi.Size() > 0
	}
	return b.String(), empty, mem
}

// waitLockPid waits until the writer lock names pid (or done closes).
func waitLockPid(path string, pid int, done <-chan struct{}) bool {
	for {
		data, _ := os.ReadFile(path)
		var li struct {
			PID int `json:"pid"`
		}
		if json.Unmarshal(data, &li) == nil && li.PID == pid {
			return true
		}
		select {
		case <-done:
			return false
		case <-time.After(time.Millisecond):
		}
	}
}

// inotify reports files created in a directory.
type inotify struct{ fd int }

func watchCreates(dir string) (*inotify, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, err
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &inotify{fd: fd}, nil
}

func (in *inotify) close() { unix.Close(in.fd) }

// waitNth returns the name of the nth file created, or "" if done closes
// first.
func (in *inotify) waitNth(nth int, done <-chan struct{}) string {
	buf := make([]byte, 64<<10)
	seen := 0
	for {
		select {
		case <-done:
			return ""
		default:
		}
		fds := []unix.PollFd{{Fd: int32(in.fd), Events: unix.POLLIN}}
		if n, _ := unix.Poll(fds, 5); n <= 0 {
			continue
		}
		n, err := unix.Read(in.fd, buf)
		if err != nil {
			continue
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := string(bytes.TrimRight(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)], "\x00"))
			off += unix.SizeofInotifyEvent + int(ev.Len)
			if seen++; seen == nth {
				return name
			}
		}
	}
}
