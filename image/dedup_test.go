package image_test

import (
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"mis/fixtures"
	"mis/image"
	"mis/testkit/treecmp"
)

// TestSecondImageAddsLittleMoreThanTheDifference imports a fixture, then a
// copy changed through the kernel (a new file, an overwritten region of an
// existing one, a deleted file), and measures what the second import adds.
func TestSecondImageAddsLittleMoreThanTheDifference(t *testing.T) {
	treecmp.RequireRoot(t)
	src := fixtures.Path(t, "ext4")
	dir := t.TempDir()
	v2 := filepath.Join(dir, "v2.img")
	if out, err := exec.Command("cp", "--sparse=always", src, v2).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	if out, err := exec.Command("mount", "-o", "loop", v2, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v: %s", err, out)
	}
	const newBytes, overwritten = 3 << 20, 256 << 10
	changed := make([]byte, newBytes+overwritten)
	rand.Read(changed) // incompressible, so stored bytes track raw bytes
	err := os.WriteFile(filepath.Join(mnt, "new-file.bin"), changed[:newBytes], 0o644)
	if err == nil {
		err = overwriteBiggestFile(mnt, changed[newBytes:])
	}
	out, uerr := exec.Command("umount", mnt).CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	if uerr != nil {
		t.Fatalf("umount: %v: %s", uerr, out)
	}

	r := newRepo(t)
	first, _ := importImage(t, r, src, "img:v1", image.ImportOptions{})
	second, m2 := importImage(t, r, v2, "img:v2", image.ImportOptions{})
	got, _ := exportVersion(t, r, "img:v2")
	if sha(t, got) != sha(t, v2) {
		t.Fatalf("v2 does not export byte-identical")
	}
	var residual int64
	for _, run := range m2.Residual {
		if !run.Zero {
			residual += run.Len
		}
	}
	t.Logf("v1 added %d raw / %d stored bytes; v2 added %d raw / %d stored bytes for %d changed content bytes (residual data %d bytes)",
		first.AddedRaw, first.AddedStored, second.AddedRaw, second.AddedStored, len(changed), residual)
	// What v2 may add beyond the changed content: changed metadata blocks
	// (bitmaps, inode table, directory, journal: each chunk that holds one
	// is new) and the parts of the manifest that moved. Bound it at 5% of
	// v1's stored size plus 2 MiB, far below re-storing the image.
	limit := int64(len(changed)) + first.AddedStored/20 + 2<<20
	if second.AddedStored > limit {
		t.Fatalf("v2 added %d stored bytes, more than %d", second.AddedStored, limit)
	}
	if second.AddedStored < int64(newBytes) {
		t.Fatalf("v2 added %d stored bytes, less than the %d new random bytes: dedup claims too much", second.AddedStored, newBytes)
	}
}

// overwriteBiggestFile overwrites data in the middle of the largest regular
// file under dir that is at least 4 times len(data).
func overwriteBiggestFile(dir string, data []byte) error {
	var best string
	var bestSize int64
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && fi.Size() > bestSize && fi.Size() < 1<<30 {
			best, bestSize = p, fi.Size()
		}
		return nil
	})
	f, err := os.OpenFile(best, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteAt(data, bestSize/2)
	return err
}
