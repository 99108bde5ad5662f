package fresh_test

import (
	"testing"

	"mis/manifest"
	"mis/repo"

	"mis/fresh"
	"mis/testkit/treecmp"
)

// TestFreshExportIsDeterministic exports the same version twice: the bytes
// must be identical (mke2fs, debugfs, mkfs.vfat and mcopy all run on fixed
// clocks and ids).
func TestFreshExportIsDeterministic(t *testing.T) {
	treecmp.RequireRoot(t)
	check := func(t *testing.T, r *repo.Repo, m *manifest.Manifest) {
		a := exportFresh(t, r, m, fresh.Options{})
		b := exportFresh(t, r, m, fresh.Options{})
		if sha(t, a) != sha(t, b) {
			t.Fatalf("two fresh exports of the same version differ")
		}
	}
	for _, label := range []string{"gpt", "mbr"} {
		t.Run("small-"+label, func(t *testing.T) {
			r, m := importImage(t, smallDisk(t, label))
			check(t, r, m)
		})
	}
	t.Run("ext4-kernel", func(t *testing.T) {
		r, _, m := importFixture(t, "ext4-kernel")
		check(t, r, m)
	})
}

// TestFreshExportGrows exports with --size: the last partition (a logical
// one inside the extended container on the MBR disk; the whole disk for a
// bare filesystem) and its filesystem grow, everything else stays.
func TestFreshExportGrows(t *testing.T) {
	treecmp.RequireRoot(t)
	const grow = 96 << 20
	for _, label := range []string{"gpt", "mbr"} {
		t.Run("small-"+label, func(t *testing.T) {
			src := smallDisk(t, label)
			r, m := importImage(t, src)
			out := exportFresh(t, r, m, fresh.Options{Size: m.DiskSize + grow})
			checkFresh(t, src, out, m, grow)
		})
	}
	t.Run("ext4-kernel", func(t *testing.T) {
		r, src, m := importFixture(t, "ext4-kernel")
		out := exportFresh(t, r, m, fresh.Options{Size: m.DiskSize + grow})
		checkFresh(t, src, out, m, grow)
	})
}
