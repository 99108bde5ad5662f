package durable

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileReplacesWholeAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "config.json")
	for _, content := range []string{"first, the longer content\n", "second\n"} {
		if err := WriteFile(name, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(name)
		if err != nil || string(got) != content {
			t.Fatalf("read back %q, %v; want %q", got, err, content)
		}
	}
	if fi, err := os.Stat(name); err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v, %v", fi.Mode(), err)
	}
	if _, err := os.Stat(name + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("temp file left behind: %v", err)
	}
	if err := WriteFile(filepath.Join(dir, "missing", "x"), nil, 0o600); err == nil {
		t.Fatal("writing into a missing directory succeeded")
	}
}

func TestOutputAppearsOnlyOnCommit(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "out.raw")
	o, err := CreateOutput(name, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.WriteAt([]byte("data"), 4096); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(name); !os.IsNotExist(err) {
		t.Fatalf("output visible before Commit: %v", err)
	}
	if err := o.Commit(); err != nil {
		t.Fatal(err)
	}
	o.Abort() // deferred in callers: must not remove a committed file
	if fi, err := os.Stat(name); err != nil || fi.Size() != 1<<20 {
		t.Fatalf("committed output: %v, %v", fi, err)
	}
	// An abandoned output leaves nothing behind.
	o2, err := CreateOutput(filepath.Join(dir, "other.raw"), 10)
	if err != nil {
		t.Fatal(err)
	}
	o2.Abort()
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries after an abort, want 1", len(entries))
	}
}

// TestCreateOutputRemovesAbandoned: the partial file of a killed build (no
// lock held) is removed by the next build of the same name; the partial
// of a build still running is not.
func TestCreateOutputRemovesAbandoned(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "out[1].raw")
	abandoned, err := os.CreateTemp(dir, partialPrefix(name))
	if err != nil {
		t.Fatal(err)
	}
	abandoned.Close()
	running, err := CreateOutput(filepath.Join(dir, "out[1].raw"), 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer running.Abort()
	if _, err := os.Stat(abandoned.Name()); !os.IsNotExist(err) {
		t.Errorf("abandoned partial still there: %v", err)
	}
	second, err := CreateOutput(name, 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Abort()
	if _, err := os.Stat(running.File.Name()); err != nil {
		t.Errorf("a running build's partial was removed: %v", err)
	}
	other, _ := filepath.Glob(filepath.Join(dir, ".*"))
	if len(other) != 2 {
		t.Errorf("partials: %v", other)
	}
}
