package manifest

import (
	"strings"
	"testing"

	"mis/chunker"
)

func tiled() *Manifest {
	data := Ref{ID: chunker.Sum([]byte("a")), Size: 100}
	file := Ref{ID: chunker.Sum([]byte("b")), Size: 50}
	return &Manifest{
		FormatVersion: FormatVersion, DiskSize: 1000, Exact: true,
		Residual:     []Run{{Off: 0, Len: 100}, {Off: 150, Len: 850, Zero: true}},
		ResidualData: []Ref{data},
		Filesystems: []Filesystem{{Type: "ext4", Files: []Entry{{
			Ino: 12, Paths: [][]byte{[]byte("f\xff")}, Mode: ModeRegular | 0o644, Size: 60,
			Content: []Ref{file}, Extents: []Extent{{FileOff: 10, DiskOff: 100, Len: 50}},
		}}}},
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	m := tiled()
	b, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := Encode(got)
	if string(b) != string(b2) {
		t.Fatalf("round trip changed the manifest:\n%q\n%q", b, b2)
	}
	if string(got.Filesystems[0].Files[0].Paths[0]) != "f\xff" {
		t.Fatalf("non-UTF-8 name not kept as raw bytes")
	}
	// Format version 1 (JSON) still reads, as the same manifest.
	j, err := EncodeJSON(m)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(j), `["`+m.ResidualData[0].ID.String()+`",100]`) {
		t.Fatalf("refs are not written as [hex, size]: %s", j)
	}
	fromJSON, err := DecodeBytes(j)
	if err != nil {
		t.Fatal(err)
	}
	if b3, _ := Encode(fromJSON); string(b3) != string(b) {
		t.Fatalf("the JSON of format version 1 does not read back as the same manifest")
	}
}

func TestValidateRefusesWhatWouldNotExport(t *testing.T) {
	for name, breakIt := range map[string]func(m *Manifest){
		"gap":             func(m *Manifest) { m.Residual[1].Off++; m.Residual[1].Len-- },
		"overlap":         func(m *Manifest) { m.Residual[0].Len = 120; m.ResidualData[0].Size = 120 },
		"past the end":    func(m *Manifest) { m.Residual[1].Len++ },
		"short residual":  func(m *Manifest) { m.ResidualData[0].Size = 99 },
		"extent vs chunk": func(m *Manifest) { m.Filesystems[0].Files[0].Content[0].Size = 49 },
		"extent past EOF": func(m *Manifest) { m.Filesystems[0].Files[0].Size = 55 },
	} {
		m := tiled()
		if err := m.Validate(); err != nil {
			t.Fatalf("the base manifest is invalid: %v", err)
		}
		breakIt(m)
		if err := m.Validate(); err == nil {
			t.Errorf("%s: Validate accepted it", name)
		}
	}
	b, _ := EncodeJSON(tiled())
	if _, err := DecodeBytes([]byte(strings.Replace(string(b), `"format_version":1`, `"format_version":9`, 1))); err == nil ||
		!strings.Contains(err.Error(), "version 9") {
		t.Errorf("an unknown JSON format version is not refused clearly: %v", err)
	}
	b, _ = Encode(tiled())
	b[len(manifestMagic)] = 9
	if _, err := DecodeBytes(b); err == nil || !strings.Contains(err.Error(), "version 9") {
		t.Errorf("an unknown binary format version is not refused clearly: %v", err)
	}
}
