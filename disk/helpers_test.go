package disk

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func needTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not installed: %v", name, err)
	}
}

func run(t testing.TB, stdin string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// sfdiskImage makes a sparse image of mib MiB and partitions it with an sfdisk script.
func sfdiskImage(t testing.TB, mib int64, script string) string {
	t.Helper()
	needTool(t, "sfdisk")
	p := filepath.Join(t.TempDir(), "disk.img")
	if err := os.Truncate(createFile(t, p), mib<<20); err != nil {
		t.Fatal(err)
	}
	run(t, script, "sfdisk", "-q", "--no-reread", "--no-tell-kernel", p)
	return p
}

func createFile(t testing.TB, p string) string {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}

type sfdiskTable struct {
	PT struct {
		Label      string `json:"label"`
		ID         string `json:"id"`
		FirstLBA   uint64 `json:"firstlba"`
		LastLBA    uint64 `json:"lastlba"`
		SectorSize int    `json:"sectorsize"`
		Partitions []struct {
			Node     string `json:"node"`
			Start    int64  `json:"start"`
			Size     int64  `json:"size"`
			Type     string `json:"type"`
			UUID     string `json:"uuid"`
			Name     string `json:"name"`
			Attrs    string `json:"attrs"`
			Bootable bool   `json:"bootable"`
		} `json:"partitions"`
	} `json:"partitiontable"`
}

func sfdiskJSON(t testing.TB, path string) sfdiskTable {
	t.Helper()
	var st sfdiskTable
	if err := json.Unmarshal([]byte(run(t, "", "sfdisk", "--json", path)), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func readImage(t testing.TB, path string) *Layout {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	l, err := Read(f, fi.Size())
	if err != nil {
		t.Fatalf("Read(%s): %v", path, err)
	}
	return l
}

// patch writes b at off in the file at path.
func patch(t testing.TB, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func readAt(t testing.TB, path string, off, n int64) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

// sfdiskAttrs renders GPT attribute bits the way sfdisk prints them.
func sfdiskAttrs(a uint64) string {
	var parts []string
	names := []string{"RequiredPartition", "NoBlockIOProtocol", "LegacyBIOSBootable"}
	for bit, n := range names {
		if a&(1<<bit) != 0 {
			parts = append(parts, n)
		}
	}
	var guid []string
	for bit := 48; bit < 64; bit++ {
		if a&(1<<bit) != 0 {
			guid = append(guid, strconv.Itoa(bit))
		}
	}
	if len(guid) > 0 {
		parts = append(parts, "GUID:"+strings.Join(guid, ","))
	}
	return strings.Join(parts, " ")
}

func warningsContain(l *Layout, sub string) bool {
	for _, w := range l.Warnings {
		if strings.Contains(w, sub) {
			return true
		}
	}
	return false
}
