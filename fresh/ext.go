package fresh

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"mis/manifest"
)

// buildExt rebuilds one ext2/3/4 filesystem in place in the output: mke2fs
// writes it at the partition's offset reading the version's mounted tree,
// then fixExt restores what mke2fs -d does not carry.
func (e *exporter) buildExt(pp *partPlan) error {
	fsm := pp.fs
	if len(fsm.Super) < 1024 {
		return fmt.Errorf("the manifest has no superblock record for the %s filesystem", fsm.Type)
	}
	sb := super(fsm.Super)
	bs := sb.blockSize()
	blocks := sb.blocksCount()
	if pp.grown {
		blocks = uint64(pp.newSize / bs)
	}
	if int64(blocks)*bs > pp.newSize {
		return fmt.Errorf("filesystem of %d blocks does not fit the partition (%d bytes)", blocks, pp.newSize)
	}
	root := rootEntry(fsm)
	if root == nil {
		return fmt.Errorf("the manifest has no root directory for the filesystem")
	}
	args, err := mke2fsArgs(sb, blocks, root, pp.part.Start)
	if err != nil {
		return err
	}
	tree := filepath.Join(e.mnt, fmt.Sprintf("p%d", pp.part.Index))
	args = append(args, "-d", tree, e.out.Name(), strconv.FormatUint(blocks, 10))
	cmd := exec.CommandContext(e.ctx, "mke2fs", args...)
	cmd.Env = e2fsEnv(sb)
	stop := e.watchWrites(manifestContent(fsm))
	pctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() { prefetchTree(pctx, tree); close(done) }()
	out, err := cmd.CombinedOutput()
	cancel()
	<-done
	stop()
	if err != nil {
		return fmt.Errorf("%w\n(mke2fs %s)", toolError("mke2fs", err, out), strings.Join(args, " "))
	}
	ratio := float64(blocks) / float64(sb.blocksCount())
	return e.fixExt(pp, sb, int64(blocks)*bs, ratio)
}

// e2fsEnv makes mke2fs and debugfs deterministic: the clock is the
// original filesystem's creation time, and no mke2fs.conf on the host can
// change defaults (every parameter that matters is given explicitly).
func e2fsEnv(sb super) []string {
	t := sb.mkfsTime()
	if t == 0 {
		t = 1
	}
	return append(os.Environ(), "E2FSPROGS_FAKE_TIME="+strconv.FormatUint(uint64(t), 10), "MKE2FS_CONFIG=/dev/null")
}

func rootEntry(fsm *manifest.Filesystem) *manifest.Entry {
	for i := range fsm.Files {
		for _, p := range fsm.Files[i].Paths {
			if len(p) == 0 || string(p) == "/" {
				return &fsm.Files[i]
			}
		}
	}
	return nil
}

func manifestContent(fsm *manifest.Filesystem) int64 {
	var n int64
	for i := range fsm.Files {
		n += manifest.StreamSize(fsm.Files[i].Content)
	}
	return n
}

// mke2fsArgs gives mke2fs the original's identity and geometry: block,
// cluster and inode size, blocks and inodes per group, flex group size,
// exactly its features, UUID, label, hash seed, root owner, journal size.
// The output is a fresh hole, so nothing needs zeroing or discarding.
func mke2fsArgs(sb super, blocks uint64, root *manifest.Entry, offset int64) ([]string, error) {
	bs := sb.blockSize()
	args := []string{"-q", "-F", "-b", strconv.FormatInt(bs, 10)}
	bpg := sb.blocksPerGroup()
	if bpg == 0 || sb.inodesPerGroup() == 0 {
		return nil, fmt.Errorf("superblock record: zero blocks or inodes per group")
	}
	groups := (blocks - uint64(sb.firstDataBlock()) + uint64(bpg) - 1) / uint64(bpg)
	inodes := groups * uint64(sb.inodesPerGroup())
	if inodes > 1<<32-1 {
		return nil, fmt.Errorf("%d inodes do not fit a 32-bit count", inodes)
	}
	feats := sb.features()
	if sb.revLevel() == 0 {
		args = append(args, "-r", "0")
	} else {
		args = append(args, "-I", strconv.FormatUint(uint64(sb.inodeSize()), 10))
		list, err := featureList(feats)
		if err != nil {
			return nil, err
		}
		args = append(args, "-O", list)
	}
	args = append(args, "-N", strconv.FormatUint(inodes, 10), "-m", "0")
	if feats[2]&0x200 != 0 { // bigalloc: groups count clusters
		args = append(args, "-C", strconv.FormatInt(sb.clusterSize(), 10))
	} else {
		args = append(args, "-g", strconv.FormatUint(uint64(bpg), 10))
	}
	if feats[1]&0x200 != 0 { // flex_bg
		args = append(args, "-G", strconv.Itoa(1<<sb.logGroupsPerFlex()))
	}
	if feats[0]&0x4 != 0 {
		if jb := sb.journalBytes(); jb > 0 && jb%(1<<20) == 0 {
			args = append(args, "-J", fmt.Sprintf("size=%d", jb>>20))
		}
	}
	args = append(args, "-U", uuidString(sb[0x68:0x78]))
	if label := sb[0x78:0x88]; label[0] != 0 {
		n := 0
		for n < len(label) && label[n] != 0 {
			n++
		}
		args = append(args, "-L", string(label[:n]))
	}
	ext := []string{
		"hash_seed=" + sb.hashSeed(),
		fmt.Sprintf("root_owner=%d:%d", root.UID, root.GID),
		"nodiscard", "lazy_itable_init=1", "lazy_journal_init=1", "assume_storage_prezeroed=1",
		fmt.Sprintf("offset=%d", offset),
	}
	if v := sb.u16(0x164); v != 0 {
		ext = append(ext, fmt.Sprintf("stride=%d", v))
	}
	if v := sb.u32(0x170); v != 0 {
		ext = append(ext, fmt.Sprintf("stripe_width=%d", v))
	}
	args = append(args, "-E", strings.Join(ext, ","))
	return args, nil
}

// watchWrites reports progress while an external tool fills the output:
// the output starts as a hole, so its allocated bytes are what was written.
// budget caps what this step may count. The returned stop adds the rest.
func (e *exporter) watchWrites(budget int64) (stop func()) {
	base := allocated(e.out)
	start := e.done
	quit := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				n := min(allocated(e.out)-base, budget)
				mu.Lock()
				if start+n > e.done {
					e.progress(start + n - e.done)
				}
				mu.Unlock()
			}
		}
	}()
	return func() {
		close(quit)
		wg.Wait()
		if rest := start + budget - e.done; rest > 0 {
			e.progress(rest)
		}
	}
}

func allocated(f *os.File) int64 {
	fi, err := f.Stat()
	if err != nil {
		return 0
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return 0
}
