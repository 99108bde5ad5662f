package image_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mis/fixtures"
	"mis/image"
	"mis/manifest"
	"mis/repo"
	"mis/testkit/treecmp"
)

// otherFilesystems returns the FAT, ISO 9660 and squashfs filesystems walked.
func otherFilesystems(m *manifest.Manifest) []manifest.Filesystem {
	var out []manifest.Filesystem
	for _, fs := range m.Filesystems {
		if !strings.HasPrefix(fs.Type, "ext") {
			out = append(out, fs)
		}
	}
	return out
}

// TestOtherFilesystemsMatchRealTools imports fixtures with FAT, ISO 9660 and
// squashfs filesystems and checks the manifest's entries, content read back
// from the repository, against the kernel's view (loop mount) where this
// kernel has the filesystem, else the format's own tool's extraction (mcopy,
// xorriso): paths, type, size, content and mtime at the format's precision.
func TestOtherFilesystemsMatchRealTools(t *testing.T) {
	treecmp.RequireRoot(t)
	for _, c := range []struct{ kind, fstype string }{
		{"gpt", "vfat"}, {"mbr", "vfat"}, {"iso", "iso9660"}, {"squashfs", "squashfs"},
	} {
		t.Run(c.kind, func(t *testing.T) {
			src := fixtures.Path(t, c.kind)
			r := newRepo(t)
			_, m := importImage(t, r, src, "img:v1", image.ImportOptions{})
			fss := otherFilesystems(m)
			if len(fss) != 1 || fss[0].Type != c.fstype {
				t.Fatalf("walked %v, want one %s", fss, c.fstype)
			}
			fs := &fss[0]
			if len(fs.Files) < 5 {
				t.Fatalf("only %d entries", len(fs.Files))
			}
			for _, e := range fs.Files {
				if len(e.Extents) != 0 {
					t.Errorf("%q: has extents; content of %s must stay residual", e.Paths[0], c.fstype)
				}
			}
			ref := referenceTree(t, src, fs)
			compareDetached(t, r, ref, fs)
		})
	}
}

func kernelHas(fstype string) bool {
	b, _ := os.ReadFile("/proc/filesystems")
	for _, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(strings.TrimPrefix(line, "nodev")) == fstype {
			return true
		}
	}
	return false
}

// referenceTree is the filesystem as a real tool shows it. The test
// machine's kernel has squashfs but neither vfat nor isofs.
func referenceTree(t *testing.T, img string, fs *manifest.Filesystem) string {
	if kernelHas(fs.Type) {
		return treecmp.LoopMount(t, img, fs.Offset, fs.Size, fs.Type)
	}
	part := filepath.Join(t.TempDir(), "part.img")
	run(t, "dd", "if="+img, "of="+part, "bs=64K", "iflag=skip_bytes,count_bytes",
		"skip="+itoa(fs.Offset), "count="+itoa(fs.Size), "status=none")
	dir := t.TempDir()
	switch fs.Type {
	case "vfat":
		cmd := exec.Command("mcopy", "-i", part, "-s", "-m", "-n", "::/", dir+"/")
		cmd.Env = append(os.Environ(), "TZ=UTC", "MTOOLS_SKIP_CHECK=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mcopy: %v\n%s", err, out)
		}
	case "iso9660":
		run(t, "xorriso", "-osirrox", "on", "-indev", part, "-extract", "/", dir)
	default:
		t.Fatalf("no reference for %s", fs.Type)
	}
	return dir
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func compareDetached(t *testing.T, r *repo.Repo, ref string, fs *manifest.Filesystem) {
	prec := map[string]time.Duration{"vfat": 2 * time.Second}[fs.Type]
	if prec == 0 {
		prec = time.Second
	}
	seen := map[string]bool{}
	for i := range fs.Files {
		e := &fs.Files[i]
		for _, p := range e.Paths {
			seen[string(p)] = true
			full := filepath.Join(ref, string(p))
			var st syscall.Stat_t
			if err := syscall.Lstat(full, &st); err != nil {
				t.Errorf("%q: %v", p, err)
				continue
			}
			if e.Mode&manifest.ModeType != st.Mode&syscall.S_IFMT {
				t.Errorf("%q: type %o, want %o", p, e.Mode&manifest.ModeType, st.Mode&syscall.S_IFMT)
				continue
			}
			// An extraction's root is a temp dir and xorriso sets no
			// symlink times; a mount shows them all.
			if len(p) > 0 && !(e.IsSymlink() && fs.Type == "iso9660") {
				want := time.Unix(st.Mtim.Sec, st.Mtim.Nsec).Truncate(prec).UnixNano()
				if e.Mtime != want {
					t.Errorf("%q: mtime %v, want %v", p, time.Unix(0, e.Mtime).UTC(), time.Unix(0, want).UTC())
				}
			}
			switch {
			case e.IsRegular():
				if e.Size != uint64(st.Size) {
					t.Errorf("%q: size %d, want %d", p, e.Size, st.Size)
				}
				data, err := os.ReadFile(full)
				if err != nil {
					t.Fatal(err)
				}
				if got := contentOf(t, r, e); !bytes.Equal(got, data) {
					t.Errorf("%q: stored content (%d bytes) differs from the file (%d bytes)", p, len(got), len(data))
				}
			case e.IsSymlink():
				target, _ := os.Readlink(full)
				if string(e.Symlink) != target {
					t.Errorf("%q: symlink %q, want %q", p, e.Symlink, target)
				}
			}
		}
	}
	err := filepath.Walk(ref, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(ref, path)
		if rel == "." {
			rel = ""
		}
		if !seen[rel] {
			t.Errorf("%q: in the reference tree, not in the manifest", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A damaged secondary filesystem is kept whole, with a warning naming the
// partition, and still exports byte for byte.
func TestUnwalkableOtherFilesystemFallsBackToResidual(t *testing.T) {
	data, err := os.ReadFile(fixtures.Path(t, "squashfs"))
	if err != nil {
		t.Fatal(err)
	}
	// The magic stays (the probe still says squashfs); the directory
	// table's start now points far past the end of the image.
	copy(data[72:80], []byte{0, 0, 0, 0, 0, 0, 0, 0x40})
	src := filepath.Join(t.TempDir(), "damaged.img")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	r := newRepo(t)
	var warnings []string
	_, m := importImage(t, r, src, "img:v1", image.ImportOptions{
		Warn: func(msg string) { warnings = append(warnings, msg) },
	})
	if len(m.Filesystems) != 0 {
		t.Errorf("damaged squashfs walked into %d filesystems", len(m.Filesystems))
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "partition 0") || !strings.Contains(warnings[0], "squashfs") {
		t.Errorf("warnings %q, want one naming partition 0 and squashfs", warnings)
	}
	t.Logf("warning: %s", strings.Join(warnings, "; "))
	// And the exact round trip still holds.
	out, _ := exportVersion(t, r, "img:v1")
	if sha(t, src) != sha(t, out) {
		t.Fatalf("damaged squashfs does not export byte-identical")
	}
}
