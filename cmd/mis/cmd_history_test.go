package main_test

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"mis/fixtures"
)

func TestCLIHistory(t *testing.T) {
	v1, v2 := fixtures.Path(t, "ext4"), fixtures.Path(t, "ext2")
	repo := filepath.Join(t.TempDir(), "repo")
	mustMis(t, repo, "init")
	mustMis(t, repo, "import", v1, "img:v1")
	mustMis(t, repo, "import", v2, "img:v2")

	if out := mustMis(t, repo, "tag", "img:v1", "img:copy"); !strings.Contains(out, "tagged img:v1 as img:copy") {
		t.Fatalf("tag: %q", out)
	}
	if _, errOut, code := mis(t, repo, "tag", "img:v1", "img:v2"); code == 0 || !strings.Contains(errOut, "already exists") {
		t.Fatalf("tag over an existing name: exit %d %q", code, errOut)
	}
	var log []struct {
		Ref     string `json:"ref"`
		Version struct {
			ID       string `json:"id"`
			AddedRaw int64  `json:"added_raw"`
		} `json:"version"`
	}
	if err := json.Unmarshal([]byte(mustMis(t, repo, "log", "img", "--json")), &log); err != nil {
		t.Fatal(err)
	}
	if len(log) != 3 || log[0].Version.ID != log[1].Version.ID || log[2].Ref != "img:v2" || log[0].Version.AddedRaw == 0 {
		t.Fatalf("log: %+v", log)
	}
	if out := mustMis(t, repo, "log", "img"); !strings.Contains(out, "ADDED STORED") || strings.Count(out, "\n") != 4 {
		t.Fatalf("log text: %q", out)
	}

	var changes []struct {
		Part    int      `json:"part"`
		Path    []byte   `json:"path"`
		Display string   `json:"display"`
		Kind    string   `json:"kind"`
		What    []string `json:"what"`
	}
	if err := json.Unmarshal([]byte(mustMis(t, repo, "diff", "img:v1", "img:copy", "--json")), &changes); err != nil || len(changes) != 0 {
		t.Fatalf("diff of a version with itself: %v %v", changes, err)
	}
	if err := json.Unmarshal([]byte(mustMis(t, repo, "diff", "img:v1", "img:v2", "--json")), &changes); err != nil || len(changes) == 0 {
		t.Fatalf("diff ext4 -> ext2: %d changes, %v", len(changes), err)
	}
	if text := mustMis(t, repo, "diff", "img:v1", "img:v2"); !strings.Contains(text, `~ p0 /`) {
		t.Fatalf("diff text: %.500q", text)
	}

	if out := mustMis(t, repo, "rm", "img:v2"); !strings.Contains(out, "run mis gc") {
		t.Fatalf("rm: %q", out)
	}
	var dry, real struct {
		Freed int64 `json:"freed_bytes"`
	}
	json.Unmarshal([]byte(mustMis(t, repo, "gc", "--dry-run", "--json")), &dry)
	json.Unmarshal([]byte(mustMis(t, repo, "gc", "--json")), &real)
	if real.Freed <= 0 || dry.Freed != real.Freed {
		t.Fatalf("gc freed %d, dry run said %d", real.Freed, dry.Freed)
	}
	mustMis(t, repo, "verify", "--read-data")
	out := filepath.Join(t.TempDir(), "out.raw")
	mustMis(t, repo, "export", "img:copy", out)
	if err := exec.Command("cmp", v1, out).Run(); err != nil {
		t.Fatalf("export after gc differs: %v", err)
	}
}

// TestCLIForget keeps what the policy names and what a clone holds,
// removes the rest, frees their space, and leaves the kept versions whole.
func TestCLIForget(t *testing.T) {
	v1, v2 := fixtures.Path(t, "ext4"), fixtures.Path(t, "ext2")
	repo := filepath.Join(t.TempDir(), "repo")
	mustMis(t, repo, "init")
	mustMis(t, repo, "import", "-q", v1, "img:a")
	mustMis(t, repo, "import", "-q", v2, "img:b")
	mustMis(t, repo, "import", "-q", v1, "img:c")
	mustMis(t, repo, "import", "-q", v2, "img:d")
	mustMis(t, repo, "clone", "img:a", "vm")

	if _, errOut, code := mis(t, repo, "forget", "img"); code == 0 || !strings.Contains(errOut, "no --keep rule") {
		t.Errorf("forget without a rule: exit %d: %s", code, errOut)
	}
	out := mustMis(t, repo, "forget", "img", "--keep-last", "1", "--dry-run")
	if !strings.Contains(out, "dry run") || strings.Count(out, " remove ") != 2 {
		t.Errorf("dry run:\n%s", out)
	}
	if ls := mustMis(t, repo, "ls"); strings.Count(ls, "img:") != 4 {
		t.Fatalf("dry run removed something:\n%s", ls)
	}
	out = mustMis(t, repo, "forget", "img", "--keep-last", "1")
	if !strings.Contains(out, "removed 2 tag(s); gc freed") || !strings.Contains(out, "held by disk vm") {
		t.Errorf("forget:\n%s", out)
	}
	ls := mustMis(t, repo, "ls")
	for tag, want := range map[string]bool{"img:a": true, "img:b": false, "img:c": false, "img:d": true} {
		if strings.Contains(ls, tag+" ") != want {
			t.Errorf("%s kept = %v, want %v:\n%s", tag, !want, want, ls)
		}
	}
	if st := statsOf(t, repo); st.Unreferenced != 0 {
		t.Errorf("%d unreferenced bytes after forget's gc", st.Unreferenced)
	}
	mustMis(t, repo, "verify", "--read-data")
	for tag, img := range map[string]string{"img:a": v1, "img:d": v2} {
		out := filepath.Join(t.TempDir(), "out.raw")
		mustMis(t, repo, "export", tag, out)
		if err := exec.Command("cmp", img, out).Run(); err != nil {
			t.Errorf("export %s: %v", tag, err)
		}
	}
}
