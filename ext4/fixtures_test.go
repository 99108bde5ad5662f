package ext4

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Test fixtures are built by real tools (mke2fs -d, the kernel via loop
// mounts) and cached under $MIS_FIXTURE_CACHE (default
// $TMPDIR/mis-ext4-test-cache), keyed by a hash of the build script.

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (mknod, chown, loop mounts) to build and check ext4 fixtures")
	}
}

func fixtureCacheDir(t testing.TB) string {
	d := os.Getenv("MIS_FIXTURE_CACHE")
	if d == "" {
		d = filepath.Join(os.TempDir(), "mis-ext4-test-cache")
	}
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// buildMu holds a *sync.Mutex per fixture name.
var buildMu sync.Map

// cachedBuild runs a bash script with $OUT set to a fresh path and caches
// the result under a name derived from the script text. Returns the path.
func cachedBuild(t testing.TB, name, script string) string {
	t.Helper()
	requireRoot(t)
	// Parallel subtests may ask for the same fixture: one builds, the
	// others wait for it.
	mu, _ := buildMu.LoadOrStore(name, new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	sum := sha256.Sum256([]byte(script))
	out := filepath.Join(fixtureCacheDir(t), name+"-"+hex.EncodeToString(sum[:8]))
	if _, err := os.Stat(out); err == nil {
		return out
	}
	// drop builds from older versions of this script
	for _, pat := range []string{"", ".tmp"} {
		old, _ := filepath.Glob(filepath.Join(fixtureCacheDir(t), name+"-"+strings.Repeat("?", 16)+pat))
		for _, o := range old {
			os.RemoveAll(o)
		}
	}
	tmp := out + ".tmp"
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Env = append(os.Environ(), "OUT="+tmp, "TMPD="+t.TempDir())
	start := time.Now()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building fixture %s: %v\n%s", name, err, b)
	}
	t.Logf("built fixture %s in %.1fs", name, time.Since(start).Seconds())
	if err := os.Rename(tmp, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// sourceTreeScript builds a tree exercising every inode feature the reader
// must handle. It is run as root.
const sourceTreeScript = `
S="$OUT"; mkdir -p "$S"; cd "$S"
: > empty
printf x > one
head -c 4096 /dev/urandom > four_k
head -c 1048576 /dev/urandom > one_mib
truncate -s 1M hole_start; dd if=/dev/urandom of=hole_start bs=4096 seek=250 count=6 conv=notrunc status=none
dd if=/dev/urandom of=hole_middle bs=4096 count=2 status=none; dd if=/dev/urandom of=hole_middle bs=4096 seek=254 count=2 conv=notrunc status=none
dd if=/dev/urandom of=hole_end bs=4096 count=2 status=none; truncate -s 1M hole_end
truncate -s 5M all_hole
truncate -s 3G big_sparse
dd if=/dev/urandom of=big_sparse bs=4096 seek=262144 count=1 conv=notrunc status=none
dd if=/dev/urandom of=big_sparse bs=4096 seek=786431 count=1 conv=notrunc status=none
# a file needing a multi-level extent tree / double indirect blocks: 400 small fragments
python3 -c '
import os
f=os.open("fragmented",os.O_WRONLY|os.O_CREAT,0o644)
for i in range(400): os.pwrite(f, os.urandom(1024), i*8192)
os.close(f)'
mkdir sub
echo linked > hl_a; ln hl_a sub/hl_b; ln hl_a sub/hl_c
ln -s one short_link
ln -s "$(printf 'a%.0s' $(seq 200))" long_link
ln -s "$(printf 'b%.0s' $(seq 59))" link59
ln -s "$(printf 'c%.0s' $(seq 60))" link60
mkfifo fifo
python3 -c 'import socket; s=socket.socket(socket.AF_UNIX); s.bind("sock")'
mknod chr c 1 3; mknod blk b 8 1; mknod bigdev c 300 70000
echo s > suid; chmod 4755 suid; echo g > sgid; chmod 2750 sgid
mkdir sticky; chmod 1777 sticky
echo u > owned_small; chown 1000:1001 owned_small
echo u > owned_big; chown 70000:80000 owned_big
echo u > owned_max; chown 4294967294:123456 owned_max
echo x > xat
setfattr -n user.a -v hello xat; setfattr -n user.empty xat
setfattr -n trusted.t -v 0x0001ff xat; setfattr -n security.s -v sec xat
setfattr -n user.big -v "$(head -c 900 /dev/zero | tr '\0' 'B')" xat
mkdir acldir; setfacl -m u:1000:rx,g:2000:r,m:rwx acldir; setfacl -d -m u:1000:rwx,o::- acldir
echo a > acldir/file; setfacl -m u:3000:rw acldir/file
echo c > capfile; setcap cap_net_raw,cap_sys_admin+ep capfile
# a directory of several blocks that mke2fs -d writes linearly (no htree);
# the 20,000-entry htree directory is added by the kernel (variantImage)
mkdir lineardir; (cd lineardir && seq -f 'linear_entry_with_a_longish_name_%04g' 400 | xargs touch)
mkdir -p "deep/$(printf 'd/%.0s' $(seq 49))"; echo bottom > "deep/$(printf 'd/%.0s' $(seq 49))bottom"
touch "$(printf 'n%.0s' $(seq 255))"; touch "$(printf 'm%.0s' $(seq 250))"
touch "$(printf 'bad\xff\xfename')"
mkdir "$(printf 'dir\xfe')"; echo z > "$(printf 'dir\xfe')/f"
echo t > old; touch -d '1960-01-01 12:00:00.123456789' old
echo t > future; touch -d '2100-06-01 00:00:00.5' future
echo t > ns; touch -d '@1234567890.987654321' ns
echo t > y2038; touch -d '@2147483648.1' y2038
touch -h -d '1999-01-01' short_link
`

// fixtureVariants are the mke2fs variants every ground-truth test runs on.
var fixtureVariants = []struct{ name, args string }{
	{"ext4", "-t ext4 -b 4096"},
	{"ext4-inline", "-t ext4 -b 4096 -O inline_data"},
	{"ext4-nojournal", "-t ext4 -b 4096 -O ^has_journal"},
	{"ext4-1k", "-t ext4 -b 1024"},
	{"ext2", "-t ext2 -b 4096"},
	{"ext3", "-t ext3"},
	{"ext4-128", "-t ext4 -b 4096 -I 128"},
	{"ext4-32bit", "-t ext4 -b 4096 -O ^64bit"},
	{"ext4-nocsum", "-t ext4 -b 4096 -O ^metadata_csum"},
	{"ext4-metabg", "-t ext4 -b 1024 -O meta_bg,^resize_inode"},
}

func sourceTree(t testing.TB) string {
	return cachedBuild(t, "src", sourceTreeScript)
}

// bigDirScript adds /bigdir, 20,000 empty files, to the image $OUT through a
// kernel loop mount. The kernel makes it an htree directory (two index
// levels with 1 KiB blocks) in seconds; mke2fs 1.47.0 -d took minutes per
// image on it (quadratic) and wrote a linear directory, never an htree.
const bigDirScript = `
M="$TMPD/m"; mkdir -p "$M"; mount -o loop "$OUT" "$M"
trap 'cd /; umount "$M" 2>/dev/null || true' EXIT
mkdir "$M/bigdir"; (cd "$M/bigdir" && seq -f 'entry_with_a_longish_name_%06g' 20000 | xargs touch)
umount "$M"
`

// variantImage builds (or reuses) the image of a variant: mke2fs -d copies
// the source tree, then the kernel adds the big directory.
func variantImage(t testing.TB, name, args string) string {
	src := sourceTree(t)
	script := `truncate -s 96M "$OUT" && mke2fs -q -F -N 30000 ` + args + ` -d ` + shellQuote(src) + ` "$OUT"` + bigDirScript
	return cachedBuild(t, "img-"+name, script)
}

// kernelImageScript lets the kernel write files: fallocate (uninit
// extents), partial writes into them, fragmentation, truncate-extension.
const kernelImageScript = `
truncate -s 64M "$OUT"; mke2fs -q -F -t ext4 -b 4096 "$OUT"
M="$TMPD/m"; mkdir -p "$M"; mount -o loop "$OUT" "$M"
trap 'cd /; umount "$M"' EXIT
cd "$M"
fallocate -l 1M falloc
fallocate -l 1M falloc_partial; dd if=/dev/urandom of=falloc_partial bs=4096 seek=10 count=3 conv=notrunc status=none
fallocate -o 2M -l 1M falloc_hole_start
for i in $(seq 60); do
  dd if=/dev/urandom of=frag_a bs=4096 count=1 oflag=direct,append conv=notrunc status=none
  dd if=/dev/urandom of=frag_b bs=4096 count=1 oflag=direct,append conv=notrunc status=none
done
echo data > extended; truncate -s 5M extended
head -c 100000 /dev/urandom > shrunk; truncate -s 5000 shrunk
: > keep_size; fallocate -n -l 1M keep_size; echo hi > keep_size_data; fallocate -n -o 4096 -l 1M keep_size_data
mkdir d; for i in $(seq 3000); do : > d/file$i; done; rm d/file1*  
setfattr -n user.k -v kernel falloc
setfattr -n user.big -v "$(head -c 3000 /dev/zero | tr '\0' 'K')" falloc
ln -s "$(printf 'k%.0s' $(seq 100))" klink
# mke2fs -d drops nanoseconds and epoch bits; the kernel stores them
echo t > old; touch -d '1960-01-01 12:00:00.123456789' old
echo t > future; touch -d '2100-06-01 00:00:00.5' future
echo t > y2038; touch -d '@2147483648.1' y2038
touch -h -d '2300-01-01 00:00:00.999999999' klink
sync
`

func kernelImage(t testing.TB) string {
	return cachedBuild(t, "img-kernel", kernelImageScript)
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// featureImageScript: kernel-written images for features mke2fs -d does
// not exercise: ea_inode (xattr values in their own inodes), casefold
// directories (only if the kernel has CONFIG_UNICODE), and 64 KiB blocks
// (made by mke2fs -d; compared with the source tree).
const featureImageScript = `
mkdir -p "$OUT"; M="$TMPD/m"; mkdir -p "$M"
trap 'cd /; umount "$M" 2>/dev/null || true' EXIT
truncate -s 32M "$OUT/eainode.img"; mke2fs -q -F -t ext4 -b 4096 -O ea_inode "$OUT/eainode.img"
mount -o loop "$OUT/eainode.img" "$M"
echo x > "$M/f"
setfattr -n user.big8k -v "$(head -c 8000 /dev/zero | tr '\0' 'E')" "$M/f"
setfattr -n user.big60k -v "$(head -c 60000 /dev/zero | tr '\0' 'F')" "$M/f"
setfattr -n user.small -v s "$M/f"
umount "$M"
truncate -s 32M "$OUT/casefold.img"; mke2fs -q -F -t ext4 -b 4096 -O casefold "$OUT/casefold.img"
if mount -o loop "$OUT/casefold.img" "$M" 2>/dev/null; then # needs CONFIG_UNICODE
  mkdir "$M/cf"; chattr +F "$M/cf"
  for n in Alpha BETA gamma MiXeD; do echo $n > "$M/cf/$n"; done
  for i in $(seq 500); do : > "$M/cf/File$i"; done
  umount "$M"
else
  rm "$OUT/casefold.img"
fi
# 64 KiB blocks: this kernel cannot mount them, so the source tree is the truth.
S="$OUT/bs64k-src"; mkdir -p "$S/d"
head -c 300000 /dev/urandom > "$S/data"; truncate -s 10M "$S/sparse"; echo tail >> "$S/sparse"
(cd "$S/d" && seq -f 'entry_%g_with_a_name_long_enough_to_fill_blocks' 3000 | xargs touch)
ln -s "$(printf 'q%.0s' $(seq 100))" "$S/link"; setfattr -n user.a -v b "$S/data"
chown 1234:5678 "$S/data"; chmod 4711 "$S/data"; touch -d '2200-01-01 00:00:00.25' "$S/sparse"
truncate -s 64M "$OUT/bs64k.img"; mke2fs -q -F -t ext4 -b 65536 -N 4096 -d "$S" "$OUT/bs64k.img"
`

func featureImage(t testing.TB, name string) string {
	p := filepath.Join(cachedBuild(t, "features", featureImageScript), name+".img")
	if _, err := os.Stat(p); err != nil {
		t.Skipf("%s image not built (kernel could not mount it)", name)
	}
	return p
}
