package ext4

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// dirtyJournalScript copies an image while the kernel has it mounted
// read-write, after writing and sync: the copy has needs_recovery set, as
// an image of a crashed or running VM would.
const dirtyJournalScript = `
mkdir -p "$OUT"; I="$OUT/live.img"
truncate -s 16M "$I"; mke2fs -q -F -t ext4 -b 4096 "$I"
M="$TMPD/m"; mkdir -p "$M"; mount -o loop "$I" "$M"
trap 'cd /; umount "$M"' EXIT
for i in $(seq 50); do echo $i > "$M/f$i"; done
sync
cp --sparse=always "$I" "$OUT/dirty.img"
`

func TestDirtyJournalRefused(t *testing.T) {
	dir := cachedBuild(t, "dirty", dirtyJournalScript)
	clean := filepath.Join(dir, "live.img") // unmounted cleanly after the copy
	openImage(t, clean)

	flagged := filepath.Join(t.TempDir(), "flagged.img")
	b, err := os.ReadFile(clean)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(flagged, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("debugfs", "-w", "-R", "feature needs_recovery", flagged).CombinedOutput(); err != nil {
		t.Fatalf("debugfs: %v %s", err, out)
	}
	for _, img := range []string{filepath.Join(dir, "dirty.img"), flagged} {
		f, err := os.Open(img)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := f.Stat()
		_, err = Open(f, st.Size())
		f.Close()
		if !errors.Is(err, ErrDirtyJournal) || !strings.Contains(err.Error(), "run e2fsck") {
			t.Errorf("%s: want dirty-journal refusal, got %v", filepath.Base(img), err)
		} else {
			t.Logf("%s: %v", filepath.Base(img), err)
		}
	}
}
