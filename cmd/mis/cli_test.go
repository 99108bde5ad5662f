package main_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"mis/fixtures"
)

var misBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mis-cli-test")
	if err != nil {
		panic(err)
	}
	misBin = filepath.Join(dir, "mis")
	if out, err := exec.Command("go", "build", "-o", misBin, ".").CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// mis runs the binary against repo and returns stdout, stderr and the exit code.
func mis(t *testing.T, repo string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(misBin, append([]string{"--repo", repo}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

func mustMis(t *testing.T, repo string, args ...string) string {
	t.Helper()
	out, errOut, code := mis(t, repo, args...)
	if code != 0 {
		t.Fatalf("mis %v: exit %d\n%s%s", args, code, out, errOut)
	}
	return out
}

func TestCLIImportExportRoundTrip(t *testing.T) {
	img := fixtures.Path(t, "gpt")
	repo := filepath.Join(t.TempDir(), "repo")
	mustMis(t, repo, "init")
	mustMis(t, repo, "import", img, "demo:v1")
	out := filepath.Join(t.TempDir(), "out.raw")
	mustMis(t, repo, "export", "demo:v1", out)
	if err := exec.Command("cmp", img, out).Run(); err != nil {
		t.Fatalf("export differs from the imported image: %v", err)
	}
	// Exporting over an existing file needs --force.
	if _, errOut, code := mis(t, repo, "export", "demo:v1", out); code == 0 || !strings.Contains(errOut, "--force") {
		t.Fatalf("export over an existing file: exit %d, %q", code, errOut)
	}
	var rows []struct {
		Name, Tag string
		Version   struct {
			Exact    bool  `json:"exact"`
			DiskSize int64 `json:"disk_size"`
			Files    int   `json:"files"`
		} `json:"version"`
	}
	if err := json.Unmarshal([]byte(mustMis(t, repo, "ls", "--json")), &rows); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(img)
	if len(rows) != 1 || rows[0].Name != "demo" || rows[0].Tag != "v1" || !rows[0].Version.Exact ||
		rows[0].Version.DiskSize != fi.Size() || rows[0].Version.Files == 0 {
		t.Fatalf("ls --json: %+v", rows)
	}
	info := mustMis(t, repo, "info", "demo:v1")
	for _, want := range []string{"GPT", "ext4", "vfat", "swap", "exact      yes"} {
		if !strings.Contains(info, want) {
			t.Errorf("info lacks %q:\n%s", want, info)
		}
	}
	mustMis(t, repo, "verify", "--read-data")
	var st struct {
		Logical int64   `json:"logical_bytes"`
		Stored  int64   `json:"stored_bytes"`
		Chunks  int64   `json:"chunks"`
		Ratio   float64 `json:"total_ratio"`
	}
	if err := json.Unmarshal([]byte(mustMis(t, repo, "stats", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Logical != fi.Size() || st.Stored <= 0 || st.Chunks <= 0 || st.Ratio <= 1 {
		t.Fatalf("stats: %+v", st)
	}
	// A second import of the same image under another tag adds almost nothing.
	mustMis(t, repo, "import", img, "demo:v2")
	var st2 struct {
		Stored int64 `json:"stored_bytes"`
	}
	json.Unmarshal([]byte(mustMis(t, repo, "stats", "--json")), &st2)
	if grew := st2.Stored - st.Stored; grew > st.Stored/20 {
		t.Fatalf("re-importing the same image grew the repository by %d bytes (of %d)", grew, st.Stored)
	}
	// Importing under a taken name fails and changes nothing.
	if _, errOut, code := mis(t, repo, "import", img, "demo:v2"); code == 0 || !strings.Contains(errOut, "already exists") {
		t.Fatalf("import to an existing tag: exit %d, %q", code, errOut)
	}
}

func TestCLIBadInput(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	mustMis(t, repo, "init")
	src := fixtures.Path(t, "ext4")
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	truncated := filepath.Join(dir, "truncated.img")
	if err := os.WriteFile(truncated, data[:len(data)/3], 0o644); err != nil {
		t.Fatal(err)
	}
	corrupt := filepath.Join(dir, "badsuper.img")
	bad := bytes.Clone(data)
	copy(bad[1024:1024+64], make([]byte, 64)) // wipe the start of the superblock, keep the magic
	bad[1024+0x38], bad[1024+0x39] = 0x53, 0xef
	if err := os.WriteFile(corrupt, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{truncated, truncated},
		{corrupt, corrupt},
		{filepath.Join(dir, "missing.img"), "missing.img"},
	} {
		_, errOut, code := mis(t, repo, "import", tc.path, "bad:v1")
		if code == 0 {
			t.Errorf("import %s succeeded", tc.path)
		}
		if !strings.Contains(errOut, tc.want) || strings.Contains(errOut, "panic") {
			t.Errorf("import %s: error should name the file, no panic: %q", tc.path, errOut)
		}
	}
	if out := mustMis(t, repo, "ls", "--json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("a failed import left a visible version: %s", out)
	}
	mustMis(t, repo, "verify", "--read-data")
}

// TestCLIKilledImportLeavesRepoConsistent kills imports at different
// moments and checks the repository still verifies with every earlier
// version intact, and the next import works.
func TestCLIKilledImportLeavesRepoConsistent(t *testing.T) {
	img := fixtures.Path(t, "ext4")
	repo := filepath.Join(t.TempDir(), "repo")
	mustMis(t, repo, "init")
	mustMis(t, repo, "import", img, "base:v1")
	for i, delay := range []time.Duration{50 * time.Millisecond, 300 * time.Millisecond, 800 * time.Millisecond, 2 * time.Second} {
		cmd := exec.Command(misBin, "--repo", repo, "import", img, "killed:v"+string(rune('a'+i)))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		mustMis(t, repo, "verify", "--read-data")
		out := filepath.Join(t.TempDir(), "base.raw")
		mustMis(t, repo, "export", "base:v1", out)
		if err := exec.Command("cmp", img, out).Run(); err != nil {
			t.Fatalf("after kill at %v: base:v1 no longer exports identically", delay)
		}
	}
	mustMis(t, repo, "import", img, "after:v1")
	mustMis(t, repo, "verify", "--read-data")
}

// TestCLIImportRefusesStreams: a FIFO, a character device or a directory
// is refused by its type at once (a FIFO used to hang the import forever,
// holding the writer lock).
func TestCLIImportRefusesStreams(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	mustMis(t, repo, "init")
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{fifo, "is a FIFO"},
		{"/dev/zero", "is a character device"},
		{t.TempDir(), "is a directory"},
	} {
		start := time.Now()
		cmd := exec.Command(misBin, "--repo", repo, "import", tc.path, "bad:v1")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		timer := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
		err := cmd.Wait()
		timer.Stop()
		if err == nil || !strings.Contains(stderr.String(), tc.want) || !strings.Contains(stderr.String(), tc.path) {
			t.Errorf("import %s after %s: %v: %q", tc.path, time.Since(start).Round(time.Millisecond), err, stderr.String())
		}
	}
	mustMis(t, repo, "gc") // the writer lock is free
}

// TestCLISignalStopsImport: SIGINT or SIGTERM stops an import within 2
// seconds, releases the writer lock and leaves no version behind.
func TestCLISignalStopsImport(t *testing.T) {
	img := fixtures.Path(t, "gpt")
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			repo := filepath.Join(t.TempDir(), "repo")
			mustMis(t, repo, "init")
			p := startMis(t, "--repo", repo, "import", img, "img:v1")
			waitForLockHolder(t, repo, p.cmd.Process.Pid)
			time.Sleep(200 * time.Millisecond) // inside the data phase
			start := time.Now()
			if err := p.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			err := p.cmd.Wait()
			took := time.Since(start)
			if took > 2*time.Second {
				t.Errorf("import took %s to stop after %s", took.Round(time.Millisecond), sig)
			}
			if err == nil {
				t.Skipf("the import finished before the signal (%s): nothing to test", took)
			}
			if out := mustMis(t, repo, "ls", "--json"); strings.TrimSpace(out) != "[]" {
				t.Fatalf("an interrupted import left a version: %s", out)
			}
			mustMis(t, repo, "gc") // the lock was released
			mustMis(t, repo, "verify", "--read-data")
		})
	}
}

// TestCLIExportOutputs: "-" streams the raw disk to standard output; an
// existing FIFO or device is never replaced by a file, even with -f; a
// killed export's partial file is removed by the next export to the same
// name.
func TestCLIExportOutputs(t *testing.T) {
	img := fixtures.Path(t, "gpt")
	repo := filepath.Join(t.TempDir(), "repo")
	mustMis(t, repo, "init")
	mustMis(t, repo, "import", "-q", img, "img:v1")

	cmd := exec.Command(misBin, "--repo", repo, "export", "img:v1", "-")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmpCmd := exec.Command("cmp", img, "-")
	cmpCmd.Stdin = stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmpOut, cmpErr := cmpCmd.CombinedOutput()
	if err := cmd.Wait(); err != nil || cmpErr != nil {
		t.Fatalf("export - | cmp: %v, %v: %s", err, cmpErr, cmpOut)
	}

	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{fifo, "/dev/null"} {
		if _, errOut, code := mis(t, repo, "export", "-f", "img:v1", out); code == 0 || !strings.Contains(errOut, "not a regular file") {
			t.Errorf("export -f to %s: exit %d: %s", out, code, errOut)
		}
	}
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("the FIFO was replaced: %v %v", fi.Mode(), err)
	}

	out := filepath.Join(dir, "out.raw")
	p := startMis(t, "--repo", repo, "export", "img:v1", out)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if partial, _ := filepath.Glob(filepath.Join(dir, ".out.raw.mis-partial-*")); len(partial) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("export never created its partial file")
		}
		time.Sleep(time.Millisecond)
	}
	p.cmd.Process.Kill()
	p.cmd.Wait()
	if _, err := os.Stat(out); err == nil {
		t.Skip("the export finished before it was killed")
	}
	mustMis(t, repo, "export", "img:v1", out)
	if partial, _ := filepath.Glob(filepath.Join(dir, ".out.raw.mis-partial-*")); len(partial) != 0 {
		t.Errorf("partial files left after the next export: %v", partial)
	}
	if err := exec.Command("cmp", img, out).Run(); err != nil {
		t.Errorf("cmp after the killed export: %v", err)
	}
}

// TestCLILayoutWarnings: problems of the partition table are shown at
// import and by info: a damaged primary GPT replaced by its backup, and two
// partitions over the same bytes (once a misleading "filesystem is
// corrupt"), which import walks once and keeps exact.
func TestCLILayoutWarnings(t *testing.T) {
	dir := t.TempDir()
	patch := func(kind, name string, edit func(b []byte)) string {
		data, err := os.ReadFile(fixtures.Path(t, kind))
		if err != nil {
			t.Fatal(err)
		}
		edit(data)
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	badPrimary := patch("gpt", "badprimary.img", func(b []byte) { copy(b[512:520], "XXXXXXXX") })
	overlap := patch("mbr", "overlap.img", func(b []byte) {
		// Entry 1 (the FAT partition) now covers partition 2's ext4 bytes.
		copy(b[446+8:446+16], b[462+8:462+16])
	})
	repo := filepath.Join(dir, "repo")
	mustMis(t, repo, "init")
	for _, tc := range []struct{ img, ref, want string }{
		{badPrimary, "bad:v1", "primary GPT invalid"},
		{overlap, "over:v1", "partitions 1 and 2 overlap"},
	} {
		_, errOut, code := mis(t, repo, "import", tc.img, tc.ref)
		if code != 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("import %s: exit %d, want a note %q: %s", tc.img, code, tc.want, errOut)
			continue
		}
		if out := mustMis(t, repo, "info", tc.ref); !strings.Contains(out, "warning    partition table: ") || !strings.Contains(out, tc.want) {
			t.Errorf("info %s does not show %q:\n%s", tc.ref, tc.want, out)
		}
		out := filepath.Join(dir, tc.ref[:3]+".raw")
		mustMis(t, repo, "export", tc.ref, out)
		if err := exec.Command("cmp", tc.img, out).Run(); err != nil {
			t.Errorf("export of %s differs: %v", tc.ref, err)
		}
	}
	if _, errOut, _ := mis(t, repo, "import", overlap, "over:v2"); !strings.Contains(errOut, "partition 2 overlaps partition 1") {
		t.Errorf("overlap note missing: %s", errOut)
	}
}
