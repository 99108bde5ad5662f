package image_test

import (
	"context"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mis/chunker"
	"mis/fixtures"
	"mis/image"
	"mis/layer"
	"mis/manifest"
	"mis/repo"
	"mis/testkit/testrepo"
	"mis/testkit/treecmp"
)

// exactKinds are the fixtures that must export byte-identical.
var exactKinds = []string{
	"ext4", "ext4-inline", "ext4-nojournal", "ext4-1k", "ext2", "ext3", "ext4-128",
	"ext4-kernel", "gpt", "mbr", "squashfs", "iso",
}

func newRepo(t *testing.T) *repo.Repo { return testrepo.New(t) }

// importImage imports path as name:tag and returns the stored version.
func importImage(t *testing.T, r *repo.Repo, path, ref string, opt image.ImportOptions) (*layer.Version, *manifest.Manifest) {
	return testrepo.Import(t, r, path, ref, opt)
}

// exportVersion loads ref's manifest from the repository (not the one the
// import returned, so the stored form is what is tested) and exports it.
func exportVersion(t *testing.T, r *repo.Repo, ref string) (string, *manifest.Manifest) {
	t.Helper()
	ctx := context.Background()
	lr, _ := layer.ParseRef(ref)
	var v *layer.Version
	if err := r.View(ctx, func(tx *repo.Tx) error {
		var err error
		v, err = layer.Resolve(tx, lr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	m, err := layer.LoadManifest(ctx, r, v)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out.raw")
	if err := image.Export(ctx, r, m, out, image.ExportOptions{}); err != nil {
		t.Fatalf("export %s: %v", ref, err)
	}
	return out, m
}

func sha(t *testing.T, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

func TestExportIsByteIdentical(t *testing.T) {
	for _, kind := range exactKinds {
		t.Run(kind, func(t *testing.T) {
			src := fixtures.Path(t, kind)
			r := newRepo(t)
			importImage(t, r, src, "img:v1", image.ImportOptions{})
			out, m := exportVersion(t, r, "img:v1")
			if !m.Exact {
				t.Errorf("manifest not marked exact")
			}
			if a, b := sha(t, src), sha(t, out); a != b {
				t.Fatalf("export sha256 %x differs from input %x", b, a)
			}
			ctx := context.Background()
			rep, err := r.Verify(ctx, repo.VerifyOptions{ReadData: true, Refs: func(yield func(string, chunker.ID) error) error {
				problems, err := layer.ForEachRef(ctx, r, yield)
				if len(problems) > 0 {
					t.Errorf("manifests: %v", problems)
				}
				return err
			}})
			if err != nil {
				t.Fatal(err)
			}
			if p := rep.Serious(); len(p) > 0 {
				t.Fatalf("verify: %v", p)
			}
		})
	}
}

// extPartitions returns the ext filesystems the import walked.
func extFilesystems(m *manifest.Manifest) []manifest.Filesystem {
	var out []manifest.Filesystem
	for _, fs := range m.Filesystems {
		if strings.HasPrefix(fs.Type, "ext") {
			out = append(out, fs)
		}
	}
	return out
}

func TestDiscardFreePassesFsckAndKeepsFiles(t *testing.T) {
	treecmp.RequireRoot(t)
	for _, kind := range []string{"ext4", "ext4-inline", "ext4-nojournal", "ext4-1k", "ext2", "ext3", "ext4-128", "ext4-kernel", "gpt", "mbr"} {
		t.Run(kind, func(t *testing.T) {
			src := fixtures.Path(t, kind)
			r := newRepo(t)
			importImage(t, r, src, "img:v1", image.ImportOptions{DiscardFree: true})
			out, m := exportVersion(t, r, "img:v1")
			if m.Exact {
				t.Errorf("a --discard-free manifest is marked exact")
			}
			fss := extFilesystems(m)
			if len(fss) == 0 {
				t.Fatalf("no ext filesystem walked in %s", kind)
			}
			for _, fs := range fss {
				treecmp.E2fsck(t, out, fs.Offset, fs.Size)
				want := treecmp.LoopMount(t, src, fs.Offset, fs.Size, "")
				got := treecmp.LoopMount(t, out, fs.Offset, fs.Size, "")
				diffs, err := treecmp.Compare(want, got, treecmp.Options{Atime: true, Ctime: true})
				if err != nil {
					t.Fatal(err)
				}
				for _, d := range diffs {
					t.Errorf("partition %d: %s", fs.PartIndex, d)
				}
			}
		})
	}
}
