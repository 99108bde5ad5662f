package main_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"mis/fixtures"
)

type statsJSON struct {
	StoredChunkBytes int64 `json:"stored_chunk_bytes"`
	Unreferenced     int64 `json:"unreferenced_stored_bytes"`
	PerVersion       []struct {
		Refs         []string `json:"refs"`
		UniqueStored int64    `json:"unique_stored_bytes"`
		SharedStored int64    `json:"shared_stored_bytes"`
	} `json:"per_version"`
}

func statsOf(t *testing.T, repo string) statsJSON {
	t.Helper()
	var st statsJSON
	if err := json.Unmarshal([]byte(mustMis(t, repo, "stats", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// Two versions of one image share everything but v2's own manifest layer;
// removing v1 gives v2 every byte, and the text table names both versions.
func TestCLIStatsPerVersion(t *testing.T) {
	img := fixtures.Path(t, "gpt")
	repo := filepath.Join(t.TempDir(), "repo")
	mustMis(t, repo, "init")
	mustMis(t, repo, "import", img, "demo:v1")
	mustMis(t, repo, "import", img, "demo:v2")
	st := statsOf(t, repo)
	if len(st.PerVersion) != 2 {
		t.Fatalf("per_version has %d entries, want 2: %+v", len(st.PerVersion), st.PerVersion)
	}
	v1, v2 := st.PerVersion[0], st.PerVersion[1]
	live := st.StoredChunkBytes - st.Unreferenced
	// v2 reads v1's manifest beneath its layer: v1 holds nothing alone.
	if v1.UniqueStored != 0 || v2.UniqueStored > live/100 || v1.SharedStored != v2.SharedStored ||
		v1.SharedStored+v2.UniqueStored != live {
		t.Errorf("v1 alone %d shared %d, v2 alone %d shared %d, live %d: want v1 all shared, v2 alone only its layer",
			v1.UniqueStored, v1.SharedStored, v2.UniqueStored, v2.SharedStored, live)
	}
	text := mustMis(t, repo, "stats")
	for _, want := range []string{"version", "alone", "shared", "demo:v1", "demo:v2"} {
		if !strings.Contains(text, want) {
			t.Errorf("stats output lacks %q:\n%s", want, text)
		}
	}

	mustMis(t, repo, "rm", "demo:v1")
	after := statsOf(t, repo)
	if len(after.PerVersion) != 1 || after.PerVersion[0].SharedStored != 0 ||
		after.PerVersion[0].UniqueStored != after.StoredChunkBytes-after.Unreferenced || after.PerVersion[0].UniqueStored < v2.SharedStored*9/10 {
		t.Fatalf("after rm demo:v1: %+v (%d live); want demo:v2 alone holding all of it, about %d", after.PerVersion,
			after.StoredChunkBytes-after.Unreferenced, v2.SharedStored)
	}
}
