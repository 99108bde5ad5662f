package repo

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// metaRepoWithVersion is a repository with one committed version, its
// metadata closed cleanly.
func metaRepoWithVersion(t *testing.T) *Repo {
	t.Helper()
	r := newTestRepo(t)
	w := openWriter(t, r)
	if err := commitVersion(context.Background(), w, 1, randomBytes(1, 100<<10)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return r
}

// nextLogFile names the file Badger would create next with extension ext
// (".mem" memtables are numbered with 5 digits, ".vlog" value logs with 6).
func nextLogFile(t *testing.T, r *Repo, ext string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(r.metaDir(), "*"+ext))
	next := 1
	for _, f := range files {
		var n int
		fmt.Sscanf(strings.TrimSuffix(filepath.Base(f), ext), "%d", &n)
		next = max(next, n+1)
	}
	if ext == ".mem" {
		return filepath.Join(r.metaDir(), fmt.Sprintf("%05d%s", next, ext))
	}
	return filepath.Join(r.metaDir(), fmt.Sprintf("%06d%s", next, ext))
}

// rawBadgerText matches the text of Badger's own errors.
var rawBadgerText = regexp.MustCompile(`(?i)badger|memtable|\.vlog|\.mem\b|MANIFEST|Create a new file|error while truncation|While opening|During db\.`)

// TestReaderRepairsEmptyValueLog recreates the two states TestCLIKillTrials
// found (3 of 150 kills, each failing the next ls with a raw Badger error):
// a writer killed inside Badger's read-write open leaves an empty value log
// when the kill lands between creating the next .vlog and sizing it
// ("forget killed 17µs after creating 000048.vlog"), or between truncating
// an old header-only .vlog to zero and removing it (commit and rm trials:
// 000034.vlog empty below 000035.vlog). A read-only open fails to grow the
// empty file through a read-only descriptor; the read-write repair then
// returned Badger's "Create a new file" sentinel as an error.
func TestReaderRepairsEmptyValueLog(t *testing.T) {
	for _, kill := range []string{"creating", "deleting"} {
		t.Run(kill, func(t *testing.T) {
			r := metaRepoWithVersion(t)
			next := nextLogFile(t, r, ".vlog")
			if kill == "creating" {
				if err := os.WriteFile(next, nil, 0o644); err != nil {
					t.Fatal(err)
				}
			} else {
				// The newest log moves up one (as the session's new log) and
				// the old one is left empty, as Badger's delete leaves it.
				var last int
				fmt.Sscanf(filepath.Base(next), "%d", &last)
				last--
				old := filepath.Join(r.metaDir(), fmt.Sprintf("%06d.vlog", last))
				data, err := os.ReadFile(old)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(next, data, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Truncate(old, 0); err != nil {
					t.Fatal(err)
				}
			}
			err := r.View(context.Background(), func(tx *Tx) error { return nil })
			if err != nil {
				t.Fatalf("read-only open after a kill %s a value log: %v", kill, err)
			}
			if vs := loadVersions(t, r); len(vs) != 1 {
				t.Fatalf("%d versions, want 1", len(vs))
			}
			verifyOK(t, r, VerifyOptions{ReadData: true, Refs: refsOf(loadVersions(t, r))})
		})
	}
}

// TestWriterRepairsEmptyLogs: the next writer (whose first session is
// read-write) gets past an empty value log and an empty memtable too.
func TestWriterRepairsEmptyLogs(t *testing.T) {
	for _, ext := range []string{".vlog", ".mem"} {
		t.Run(ext, func(t *testing.T) {
			r := metaRepoWithVersion(t)
			if err := os.WriteFile(nextLogFile(t, r, ext), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			w, err := r.OpenWriter(context.Background(), "test")
			if err != nil {
				t.Fatalf("writer after a kill left an empty %s file: %v", ext, err)
			}
			if err := commitVersion(context.Background(), w, 2, randomBytes(2, 100<<10)); err != nil {
				t.Fatal(err)
			}
			w.Close()
			if vs := loadVersions(t, r); len(vs) != 2 {
				t.Fatalf("%d versions, want 2", len(vs))
			}
		})
	}
}

// TestMetaOpenErrorIsClear: when the metadata cannot be opened even after
// the automatic repair (here a MANIFEST no kill can produce: its magic is
// overwritten), the error names the repository and says what to do, and
// carries none of Badger's own text (MIS_DEBUG shows that).
func TestMetaOpenErrorIsClear(t *testing.T) {
	t.Setenv("MIS_DEBUG", "")
	r := metaRepoWithVersion(t)
	manifest := filepath.Join(r.metaDir(), "MANIFEST")
	f, err := os.OpenFile(manifest, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("XXXX"), 0)
	f.Close()
	for _, mode := range []string{"reader", "writer"} {
		var err error
		if mode == "reader" {
			err = r.View(context.Background(), func(tx *Tx) error { return nil })
		} else {
			var w *Writer
			if w, err = r.OpenWriter(context.Background(), "test"); err == nil {
				w.Close()
			}
		}
		if err == nil {
			t.Fatalf("%s: opened a database with a broken MANIFEST", mode)
		}
		msg := err.Error()
		t.Logf("%s: %s", mode, msg)
		if rawBadgerText.MatchString(msg) {
			t.Errorf("%s: raw Badger error reaches the user: %s", mode, msg)
		}
		for _, want := range []string{r.Dir(), "metadata", "MIS_DEBUG=1"} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: error lacks %q: %s", mode, want, msg)
			}
		}
	}
}
