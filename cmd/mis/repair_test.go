package main_test

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// repairRepo makes a repository with three raw images (no filesystem, so
// each is one residual chunk stream) imported by three writers:
//
//	a:v1  16 MiB of random bytes: one pack of its own (pa)
//	b:v1  the first 8 MiB of a: all its chunks but the last are a's,
//	      in the first half of pa; its last chunk and manifest in pb
//	c:v1  4 MiB of other random bytes: pack pc
func repairRepo(t *testing.T) (repo string, imgs map[string]string, pa, pb, pc string) {
	t.Helper()
	dir := t.TempDir()
	repo = filepath.Join(dir, "repo")
	mustMis(t, repo, "init")
	a := randomFile(t, filepath.Join(dir, "a.img"), 1, 16<<20)
	data, _ := os.ReadFile(a)
	b := filepath.Join(dir, "b.img")
	if err := os.WriteFile(b, data[:8<<20], 0o600); err != nil {
		t.Fatal(err)
	}
	c := randomFile(t, filepath.Join(dir, "c.img"), 2, 4<<20)
	imgs = map[string]string{"a:v1": a, "b:v1": b, "c:v1": c}
	var packs []string
	for _, ref := range []string{"a:v1", "b:v1", "c:v1"} {
		before := packFiles(t, repo)
		mustMis(t, repo, "import", imgs[ref], ref)
		var added []string
		for p := range packFiles(t, repo) {
			if !before[p] {
				added = append(added, p)
			}
		}
		if len(added) != 1 {
			t.Fatalf("import %s added packs %v, want one", ref, added)
		}
		packs = append(packs, added[0])
	}
	mustMis(t, repo, "verify", "--read-data")
	return repo, imgs, packs[0], packs[1], packs[2]
}

func randomFile(t *testing.T, path string, seed uint64, n int) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 42))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// packFiles returns the paths of the repository's pack files.
func packFiles(t *testing.T, repo string) map[string]bool {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(repo, "packs", "*", "*.pack"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, p := range m {
		out[p] = true
	}
	return out
}

// refsOf lists the repository's NAME:TAGs.
func refsOf(t *testing.T, repo string) []string {
	t.Helper()
	var rows []struct{ Name, Tag string }
	if err := json.Unmarshal([]byte(mustMis(t, repo, "ls", "--json")), &rows); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rows {
		out = append(out, r.Name+":"+r.Tag)
	}
	sort.Strings(out)
	return out
}

// exportsIdentical exports each ref and compares it with its image.
func exportsIdentical(t *testing.T, repo string, imgs map[string]string, refs ...string) {
	t.Helper()
	for _, ref := range refs {
		out := filepath.Join(t.TempDir(), "out.img")
		mustMis(t, repo, "export", ref, out)
		if err := exec.Command("cmp", imgs[ref], out).Run(); err != nil {
			t.Errorf("export of %s differs from its image: %v", ref, err)
		}
	}
}

func brokenLines(out string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "repair: ") && strings.Contains(l, "(version ") {
			lines = append(lines, l)
		}
	}
	return lines
}

func TestCLIRepairDeletedPack(t *testing.T) {
	repo, imgs, pa, _, _ := repairRepo(t)
	if _, _, code := mis(t, repo, "verify", "--drop-broken"); code != 2 {
		t.Fatalf("--drop-broken without --repair: exit %d, want 2", code)
	}
	if err := os.Remove(pa); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := mis(t, repo, "verify")
	if code != 1 || !strings.Contains(out, "missing pack") || !strings.Contains(errOut, "--repair") {
		t.Fatalf("verify after a pack was deleted: exit %d\n%s%s", code, out, errOut)
	}
	// A clone holds b:v1.
	mustMis(t, repo, "clone", "b:v1", "vm1")

	// --repair reports the versions that lost data and changes no version.
	out, errOut, code = mis(t, repo, "verify", "--repair")
	t.Logf("verify --repair:\n%s%s", out, errOut)
	name := strings.TrimSuffix(filepath.Base(pa), ".pack")
	if code != 1 || !strings.Contains(out, "repair: pack "+name+" is gone from the store") {
		t.Fatalf("verify --repair: exit %d", code)
	}
	broken := brokenLines(out)
	if len(broken) != 2 || !strings.HasPrefix(broken[0], "repair: a:v1 ") || !strings.HasPrefix(broken[1], "repair: b:v1 ") ||
		!strings.Contains(broken[0], "--drop-broken removes it") {
		t.Fatalf("broken versions reported: %q", broken)
	}
	if got := strings.Join(refsOf(t, repo), " "); got != "a:v1 b:v1 c:v1" {
		t.Fatalf("versions after --repair: %s", got)
	}
	// The index no longer names the deleted pack: what is left is versions
	// missing chunks, not a missing pack.
	if strings.Contains(out, "missing pack") {
		t.Fatalf("verify after --repair still reports a missing pack")
	}

	// --drop-broken drops a:v1, keeps b:v1 (held by vm1) and says so.
	out, errOut, code = mis(t, repo, "verify", "--repair", "--drop-broken")
	t.Logf("verify --repair --drop-broken:\n%s%s", out, errOut)
	broken = brokenLines(out)
	if code != 1 || len(broken) != 2 || !strings.HasSuffix(broken[0], ": dropped") ||
		!strings.Contains(broken[1], "kept, held: the base of clone vm1 (mis rm vm1 first)") {
		t.Fatalf("drop with a clone: exit %d, %q", code, broken)
	}
	if got := strings.Join(refsOf(t, repo), " "); got != "b:v1 c:v1" {
		t.Fatalf("versions after --drop-broken: %s", got)
	}
	mustMis(t, repo, "rm", "vm1")
	out, errOut, code = mis(t, repo, "--json", "verify", "--repair", "--drop-broken")
	if code != 0 {
		t.Fatalf("verify --repair --drop-broken after rm vm1: exit %d\n%s%s", code, out, errOut)
	}
	var js struct {
		OK     bool `json:"ok"`
		Repair struct {
			Broken []struct {
				Refs    []string `json:"refs"`
				Dropped bool     `json:"dropped"`
			} `json:"broken"`
		} `json:"repair"`
	}
	if err := json.Unmarshal([]byte(out), &js); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !js.OK || len(js.Repair.Broken) != 1 || js.Repair.Broken[0].Refs[0] != "b:v1" || !js.Repair.Broken[0].Dropped {
		t.Fatalf("--json: %s", out)
	}
	if got := strings.Join(refsOf(t, repo), " "); got != "c:v1" {
		t.Fatalf("versions left: %s", got)
	}
	mustMis(t, repo, "verify", "--read-data")
	exportsIdentical(t, repo, imgs, "c:v1")
	mustMis(t, repo, "gc")
	mustMis(t, repo, "verify", "--read-data")
}

func TestCLIRepairTruncatedPack(t *testing.T) {
	repo, imgs, pa, _, _ := repairRepo(t)
	fi, err := os.Stat(pa)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(pa, fi.Size()*3/4); err != nil {
		t.Fatal(err)
	}
	if _, _, code := mis(t, repo, "verify"); code != 1 {
		t.Fatalf("verify of a truncated pack: exit %d", code)
	}
	out, errOut, code := mis(t, repo, "verify", "--repair", "--drop-broken")
	t.Logf("verify --repair --drop-broken:\n%s%s", out, errOut)
	name := strings.TrimSuffix(filepath.Base(pa), ".pack")
	kept := filepath.Join(repo, "damaged", name+".pack")
	if code != 0 || !strings.Contains(out, "repair: pack "+name+" is damaged (trailer: ") ||
		!strings.Contains(out, "moved to "+kept) {
		t.Fatalf("exit %d", code)
	}
	// Only a:v1 lost data: b:v1's chunks were in the part of the pack that
	// survived and were salvaged.
	broken := brokenLines(out)
	if len(broken) != 1 || !strings.HasPrefix(broken[0], "repair: a:v1 ") || !strings.HasSuffix(broken[0], ": dropped") {
		t.Fatalf("broken: %q", broken)
	}
	if got := strings.Join(refsOf(t, repo), " "); got != "b:v1 c:v1" {
		t.Fatalf("versions left: %s", got)
	}
	if st, err := os.Stat(kept); err != nil || st.Size() != fi.Size()*3/4 {
		t.Fatalf("damaged pack kept: %v %v", st, err)
	}
	if _, err := os.Stat(pa); err == nil {
		t.Fatalf("the damaged pack is still in the store")
	}
	mustMis(t, repo, "verify", "--read-data")
	exportsIdentical(t, repo, imgs, "b:v1", "c:v1")
}

func TestCLIRepairDamagedMetadata(t *testing.T) {
	for _, how := range []string{"truncate sst", "truncate manifest"} {
		t.Run(strings.ReplaceAll(how, " ", "_"), func(t *testing.T) {
			repo, imgs, _, _, _ := repairRepo(t)
			mustMis(t, repo, "tag", "c:v1", "c:extra")
			meta := filepath.Join(repo, "meta")
			target := filepath.Join(meta, "MANIFEST")
			if how == "truncate sst" {
				ssts, _ := filepath.Glob(filepath.Join(meta, "*.sst"))
				sort.Strings(ssts)
				if len(ssts) == 0 {
					t.Fatal("no table files")
				}
				target = ssts[0]
			}
			fi, err := os.Stat(target)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(target, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
			out, errOut, code := mis(t, repo, "verify")
			t.Logf("verify:\n%s%s", out, errOut)
			if code != 1 {
				t.Fatalf("verify of damaged metadata: exit %d", code)
			}
			if how == "truncate manifest" {
				// Badger opened it without a word, short of the versions
				// the lost tables held: gc must not free their chunks.
				_, errOut, code := mis(t, repo, "gc")
				if code == 0 || !strings.Contains(errOut, "run mis verify --repair first") {
					t.Fatalf("gc after the metadata lost versions: exit %d, %s", code, errOut)
				}
			}
			out, errOut, code = mis(t, repo, "verify", "--repair")
			t.Logf("verify --repair:\n%s%s", out, errOut)
			if code != 0 {
				t.Fatalf("verify --repair: exit %d", code)
			}
			// A damaged table: the database is moved aside and every version
			// comes back from its record file. A truncated MANIFEST: Badger
			// keeps the tables it still names (a:v1's, here) and deletes the
			// others; the versions they held come back from their files.
			restored := 0
			for _, ref := range []string{"a:v1", "b:v1", "c:v1"} {
				if strings.Contains(out, " as "+ref+" from its record file") {
					restored++
				}
			}
			if restored == 0 || (how == "truncate sst" && restored != 3) {
				t.Errorf("%d version(s) restored", restored)
			}
			if strings.Contains(how, "sst") && !strings.Contains(out, "the metadata database was moved to "+filepath.Join(repo, "damaged", "meta-")) {
				t.Errorf("damaged metadata not moved aside")
			}
			// Tags added later live only in the database.
			if got := strings.Join(refsOf(t, repo), " "); got != "a:v1 b:v1 c:v1" {
				t.Fatalf("versions after repair: %s", got)
			}
			mustMis(t, repo, "verify", "--read-data")
			exportsIdentical(t, repo, imgs, "a:v1", "b:v1", "c:v1")
			// Still a working repository: b:v2 rests on b:v1 as a layer.
			mustMis(t, repo, "import", imgs["b:v1"], "b:v2")
			mustMis(t, repo, "verify", "--read-data")
		})
	}
}
