package main

import (
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

const sample = `{"kind":"mode","mode":"quick","runs":3,"date":"2026-11-22"}
{"kind":"image","image":"h:v1","path":"/x/a.img","apparent":104857600,"allocated":52428800}
{"kind":"image","image":"h:v2","path":"/x/b.img","apparent":104857600,"allocated":52428800}
{"kind":"add","tool":"mis","image":"h:v1","run":1,"seconds":2.0,"added":1000}
{"kind":"add","tool":"mis","image":"h:v1","run":2,"seconds":9.0,"added":1000}
{"kind":"add","tool":"mis","image":"h:v1","run":3,"seconds":3.0,"added":1000}
{"kind":"add","tool":"restic","image":"h:v1","run":1,"seconds":7.5,"added":5000}
{"kind":"add","tool":"mis","image":"h:v2","run":1,"seconds":0.25,"added":10}
{"kind":"add","tool":"restic","image":"h:v2","run":1,"seconds":6.5,"added":600}
{"kind":"restore","tool":"mis","image":"h:v1","run":1,"seconds":1.5}
{"kind":"restore","tool":"raw","image":"h:v1","run":1,"seconds":1.25}
{"kind":"stored","tool":"mis","apparent":2000000,"allocated":2100000}
{"kind":"stored","tool":"restic","apparent":3000000,"allocated":3100000}
{"kind":"stored","tool":"raw","apparent":209715200,"allocated":104857600}
{"kind":"read","tool":"mis","run":1,"mbps":900}
{"kind":"read","tool":"restic","run":1,"mbps":300}
{"kind":"walk","tool":"mis","run":1,"files":1000,"seconds":0.5}
{"kind":"reimport","run":1,"seconds":0.2,"first":3.0}
{"kind":"bound","unique_files":10,"files_seen":30,"files_zstd":1000000,"manifest":100000,"residual":500000,"stored":2000000}
`

func TestRender(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "r.jsonl")
	if err := os.WriteFile(in, []byte(sample), 0o644); err != nil {
		t.Fatal(err)
	}
	mach := filepath.Join(dir, "machine.txt")
	os.WriteFile(mach, []byte("cpu: 2 x test\n"), 0o644)
	if err := render(in, mach, dir); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "compare.md"))
	s := string(md)
	for _, want := range []string{
		"| h:v1 | 3.00 | 7.50 |", // median of 2, 9, 3 for mis; restic once
		"| h:v2 | 0.25 | 6.50 |",
		"| h:v1 | 1.50 | – | 1.25 |",       // restore: restic did not restore
		"| version | mis | restic | raw |", // fixed tool order
		"| stored bytes below every peer's | mis 1.9 MiB; not below: none | met |",
		"| stored bytes below 6% of raw apparent | 0.95% | met |",
		"| import of changed h:v2 faster than restic backup | 0.25 s vs 6.50 s | met |",
		"| within 15% of the file-level bound | 1.25x the bound | **not met** |",
		"| unchanged re-import under 10% of first import | 6.7% | met |",
		"| export of h:v1 within 1.5x of cp --sparse | 1.20x | met |",
		"| mounted sequential read ahead of restic mount | 900 vs 300 MB/s | met |",
		"2000 (1000 files)",
		"cpu: 2 x test",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("compare.md lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(s)
	}
	f, err := os.Open(filepath.Join(dir, "compare.svg"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := xml.NewDecoder(f)
	rects := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("compare.svg is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			rects++
		}
	}
	// background + 2 stored bars (raw is not drawn) + legends and bars of
	// the two time panels
	if rects < 1+2+3+3+3 {
		t.Errorf("compare.svg has %d rects, too few for 3 tools", rects)
	}
}

func TestRenderRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "r.jsonl")
	os.WriteFile(in, []byte("{\"kind\":\"add\"}\n{\"kind\":\"nonsense\"}\n"), 0o644)
	err := render(in, "", dir)
	if err == nil || !strings.Contains(err.Error(), ":2: unknown kind") {
		t.Fatalf("got %v, want an error naming line 2", err)
	}
}

func TestUniqueFiles(t *testing.T) {
	tree := t.TempDir()
	write := func(name, content string) {
		p := filepath.Join(tree, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a", "same")
	write("d/b", "same")
	write("d/c", "other")
	write("empty", "")
	os.Symlink("a", filepath.Join(tree, "link"))
	stage := filepath.Join(t.TempDir(), "stage")
	seen, added, err := uniqueFiles(stage, []string{tree})
	if err != nil || seen != 4 || added != 2 {
		t.Fatalf("seen %d added %d err %v; want 4 regular files, 2 distinct non-empty contents", seen, added, err)
	}
	// A second tree with known content adds nothing.
	seen, added, err = uniqueFiles(stage, []string{filepath.Join(tree, "d")})
	if err != nil || seen != 2 || added != 0 {
		t.Fatalf("second pass: seen %d added %d err %v", seen, added, err)
	}
	ents, _ := os.ReadDir(stage)
	if len(ents) != 2 {
		t.Fatalf("stage holds %d files, want 2", len(ents))
	}
}
