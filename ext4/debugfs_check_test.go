package ext4

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// debugfsFacts is what `debugfs -R "stat <ino>"` says about one inode.
type debugfsFacts struct {
	flags     uint32
	crtime    *Timestamp
	extents   []Extent // data, merged
	metaBlks  []uint64 // ETB/IND/DIND/TIND blocks
	sawBlocks bool     // an EXTENTS: or BLOCKS: section was printed
}

var (
	dfsInodeRe  = regexp.MustCompile(`(?m)^Inode: (\d+)\s.*Flags: 0x([0-9a-f]+)`)
	dfsCrtimeRe = regexp.MustCompile(`(?m)^\s*crtime: 0x([0-9a-f]{8}):([0-9a-f]{8})`)
	dfsDataRe   = regexp.MustCompile(`^\((\d+)(?:-(\d+))?(\[u\])?\):(\d+)(?:-(\d+))?$`)
	dfsMetaRe   = regexp.MustCompile(`^\((ETB\d+|IND|DIND|TIND)\):(\d+)$`)
)

// debugfsStat runs one debugfs process with a stat command per inode.
func debugfsStat(t *testing.T, img string, inos []uint32) map[uint32]*debugfsFacts {
	t.Helper()
	var cmds bytes.Buffer
	for _, ino := range inos {
		fmt.Fprintf(&cmds, "stat <%d>\n", ino)
	}
	cmdFile := filepath.Join(t.TempDir(), "cmds")
	if err := os.WriteFile(cmdFile, cmds.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("debugfs", "-f", cmdFile, img)
	cmd.Env = append(os.Environ(), "DEBUGFS_PAGER=__none__", "PAGER=__none__")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("debugfs: %v", err)
	}
	res := map[uint32]*debugfsFacts{}
	locs := dfsInodeRe.FindAllSubmatchIndex(out, -1)
	for i, loc := range locs {
		end := len(out)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		sec := string(out[loc[0]:end])
		ino, _ := strconv.ParseUint(string(out[loc[2]:loc[3]]), 10, 32)
		flags, _ := strconv.ParseUint(string(out[loc[4]:loc[5]]), 16, 32)
		f := &debugfsFacts{flags: uint32(flags)}
		if m := dfsCrtimeRe.FindStringSubmatch(sec); m != nil {
			lo, _ := strconv.ParseUint(m[1], 16, 32)
			ex, _ := strconv.ParseUint(m[2], 16, 32)
			// Kernel encoding: signed 32-bit seconds, 2 epoch bits, 30 bits ns.
			f.crtime = &Timestamp{Sec: int64(int32(uint32(lo))) + int64(ex&3)<<32, Nsec: uint32(ex >> 2)}
		}
		for _, hdr := range []string{"\nEXTENTS:\n", "\nBLOCKS:\n"} {
			j := strings.Index(sec, hdr)
			if j < 0 {
				continue
			}
			f.sawBlocks = true
			body := sec[j+len(hdr):]
			if k := strings.Index(body, "\n"); k >= 0 {
				body = body[:k]
			}
			if strings.HasPrefix(body, "debugfs:") { // empty list; next command echoed
				body = ""
			}
			for _, item := range strings.Split(body, ", ") {
				item = strings.TrimSpace(item)
				if m := dfsMetaRe.FindStringSubmatch(item); m != nil {
					b, _ := strconv.ParseUint(m[2], 10, 64)
					f.metaBlks = append(f.metaBlks, b)
				} else if m := dfsDataRe.FindStringSubmatch(item); m != nil {
					l1, _ := strconv.ParseUint(m[1], 10, 64)
					p1, _ := strconv.ParseUint(m[4], 10, 64)
					n := uint64(1)
					if m[2] != "" {
						l2, _ := strconv.ParseUint(m[2], 10, 64)
						n = l2 - l1 + 1
					}
					f.extents = append(f.extents, Extent{Logical: l1, Physical: p1, Len: n, Uninit: m[3] != ""})
				} else if item != "" && !strings.HasPrefix(item, "TOTAL") {
					t.Fatalf("inode %d: cannot parse debugfs block item %q", ino, item)
				}
			}
		}
		f.extents = mergeExtents(f.extents)
		sort.Slice(f.metaBlks, func(i, j int) bool { return f.metaBlks[i] < f.metaBlks[j] })
		res[uint32(ino)] = f
	}
	return res
}

func mergeExtents(in []Extent) []Extent {
	var out []Extent
	for _, e := range in {
		if n := len(out); n > 0 {
			l := &out[n-1]
			if l.Logical+l.Len == e.Logical && l.Physical+l.Len == e.Physical && l.Uninit == e.Uninit {
				l.Len += e.Len
				continue
			}
		}
		out = append(out, e)
	}
	return out
}

// CompareImageWithDebugfs checks inode flags, crtime, data extents
// (including uninit) and mapping metadata blocks of every inode outside
// skipPrefix against debugfs.
func CompareImageWithDebugfs(t *testing.T, fsys *FS, img string, skipPrefix string) {
	t.Helper()
	type item struct {
		path string
		in   *Inode
	}
	var items []item
	seen := map[uint32]bool{}
	err := fsys.Walk(func(path []byte, ino uint32, in *Inode) error {
		if skipPrefix != "" && bytes.HasPrefix(path, []byte(skipPrefix)) {
			return nil
		}
		if !seen[ino] {
			seen[ino] = true
			items = append(items, item{string(path), in})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	inos := make([]uint32, len(items))
	for i, it := range items {
		inos[i] = it.in.Ino
	}
	dfs := debugfsStat(t, img, inos)
	checked := 0
	for _, it := range items {
		d := dfs[it.in.Ino]
		if d == nil {
			t.Errorf("%q: debugfs printed no stat for inode %d", it.path, it.in.Ino)
			continue
		}
		if d.flags != it.in.Flags {
			t.Errorf("%q: flags 0x%x, debugfs 0x%x", it.path, it.in.Flags, d.flags)
		}
		if (d.crtime != nil) != it.in.HasCrtime || (d.crtime != nil && *d.crtime != it.in.Crtime) {
			t.Errorf("%q: crtime %v (has %v), debugfs %v", it.path, it.in.Crtime, it.in.HasCrtime, d.crtime)
		}
		ext, err := fsys.Extents(it.in.Ino)
		if err != nil {
			t.Errorf("%q: Extents: %v", it.path, err)
			continue
		}
		if got := mergeExtents(ext); fmt.Sprint(got) != fmt.Sprint(d.extents) {
			t.Errorf("%q: extents\n reader  %v\n debugfs %v", it.path, got, d.extents)
		}
		meta, err := fsys.MetaBlocks(it.in.Ino)
		if err != nil {
			t.Errorf("%q: MetaBlocks: %v", it.path, err)
			continue
		}
		if it.in.FileACL != 0 { // debugfs lists only mapping blocks
			meta = slicesDelete(meta, it.in.FileACL)
		}
		if fmt.Sprint(meta) != fmt.Sprint(d.metaBlks) && !(len(meta) == 0 && len(d.metaBlks) == 0) {
			t.Errorf("%q: mapping blocks\n reader  %v\n debugfs %v", it.path, meta, d.metaBlks)
		}
		checked++
	}
	t.Logf("checked flags/crtime/extents of %d inodes against debugfs", checked)
}

func slicesDelete(s []uint64, v uint64) []uint64 {
	out := s[:0]
	for _, x := range s {
		if x != v {
			out = append(out, x)
		}
	}
	return out
}

// CheckUsedBlocks checks UsedBlocks against the superblock's free count
// (maintained by mke2fs and the kernel) and that every block of every
// inode reached by Walk is marked used.
func CheckUsedBlocks(t *testing.T, fsys *FS) {
	t.Helper()
	used, err := fsys.UsedBlocks()
	if err != nil {
		t.Fatal(err)
	}
	sb := fsys.Super()
	if want := sb.BlocksCount - sb.FreeBlocksCount; used.Count() != want {
		t.Errorf("UsedBlocks counts %d blocks, superblock says %d in use", used.Count(), want)
	}
	unmarked := 0
	err = fsys.Walk(func(path []byte, ino uint32, in *Inode) error {
		ext, err := fsys.Extents(ino)
		if err != nil {
			return err
		}
		meta, err := fsys.MetaBlocks(ino)
		if err != nil {
			return err
		}
		for _, e := range ext {
			for b := e.Physical; b < e.Physical+e.Len; b++ {
				meta = append(meta, b)
			}
		}
		for _, b := range meta {
			if !used.Test(b) {
				if unmarked++; unmarked < 5 {
					t.Errorf("%q: block %d not marked used", path, b)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
