package fresh_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mis/image"
	"mis/manifest"
	"mis/repo"
	"mis/testkit/testrepo"
)

// smallDisk builds a 48 MiB disk quickly (the fixtures' ext trees hold a
// 20,000-entry directory, which mke2fs -d takes tens of seconds over): a
// FAT16 partition, an ext4 partition and, last, an ext2 partition (a
// logical one inside an extended container on MBR). The ext4 one gets
// kernel-set times (nanoseconds, after 2038, before 1970), an immutable
// file, xattrs, a hardlink, a FIFO and a device through a loop mount.
func smallDisk(t *testing.T, label string) string {
	t.Helper()
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.raw")
	run(t, "truncate", "-s", "48M", img)
	script := "label: gpt\nlabel-id: 6D697300-0000-4000-8000-0000000000AA\n" +
		"start=2048, size=32768, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, uuid=6D697300-0000-4000-8000-000000000001, name=\"data fat\"\n" +
		"start=34816, size=32768, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=6D697300-0000-4000-8000-000000000002, name=\"root\", attrs=\"GUID:60\"\n" +
		"start=67584, size=28672, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=6D697300-0000-4000-8000-000000000003\n"
	parts := [][2]int64{{2048, 32768}, {34816, 32768}, {67584, 28672}}
	if label == "mbr" {
		script = "label: dos\nlabel-id: 0x6d697300\n" +
			"start=2048, size=32768, type=6, bootable\nstart=34816, size=32768, type=83\n" +
			"start=67584, size=30720, type=5\nstart=69632, size=26624, type=83\n"
		parts[2] = [2]int64{69632, 26624}
	}
	cmd := exec.Command("sfdisk", "-q", img)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	src := filepath.Join(dir, "tree")
	write := func(name string, data []byte) {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("README.TXT", []byte("small disk\n"))
	write("sub/data.bin", []byte(strings.Repeat("0123456789abcdef", 40000)))
	write("A long FAT name.txt", []byte("long\n"))
	mb := int64(1 << 20)
	fat := parts[0]
	run(t, "mkfs.vfat", "-F", "16", "-i", "6d697301", "-n", "SMALLFAT", fmt.Sprintf("--offset=%d", fat[0]), img, fmt.Sprint(fat[1]/2))
	for _, n := range []string{"README.TXT", "sub", "A long FAT name.txt"} {
		c := exec.Command("mcopy", "-i", fmt.Sprintf("%s@@%d", img, fat[0]*512), "-s", "-m", "-Q", filepath.Join(src, n), "::/")
		c.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("mcopy: %v\n%s", err, out)
		}
	}
	run(t, "mke2fs", "-q", "-F", "-t", "ext4", "-b", "1024", "-I", "256", "-U", "6d697300-0000-4000-8000-0000000000e4",
		"-L", "small root", "-E", fmt.Sprintf("offset=%d", parts[1][0]*512), "-d", src, img, fmt.Sprint(parts[1][1]/2))
	run(t, "mke2fs", "-q", "-F", "-t", "ext2", "-b", "4096", "-E", fmt.Sprintf("offset=%d", parts[2][0]*512), "-d", src, img, fmt.Sprint(parts[2][1]/8))
	_ = mb
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	run(t, "mount", "-o", fmt.Sprintf("loop,offset=%d,sizelimit=%d", parts[1][0]*512, parts[1][1]*512), img, mnt)
	defer run(t, "umount", mnt)
	p := func(n string) string { return filepath.Join(mnt, n) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Link(p("README.TXT"), p("hardlink")))
	must(unix.Mkfifo(p("fifo"), 0o640))
	must(unix.Mknod(p("null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(os.Symlink("sub/data.bin", p("link")))
	must(unix.Setxattr(p("sub/data.bin"), "user.note", []byte("kept"), 0))
	run(t, "setfacl", "-m", "u:1234:r", p("README.TXT"))
	must(os.WriteFile(p("frozen"), []byte("immutable\n"), 0o600))
	must(os.Lchown(p("frozen"), 1000, 2000))
	times := map[string]time.Time{
		"README.TXT":   time.Unix(4102444800, 123456789), // 2100
		"sub/data.bin": time.Unix(-86400*365, 5),         // 1969
		"sub":          time.Unix(1600000000, 999999999),
		"frozen":       time.Unix(2000000000, 1),
	}
	for n, tm := range times {
		ts := []unix.Timespec{unix.NsecToTimespec(tm.UnixNano() + 7), unix.NsecToTimespec(tm.UnixNano())}
		must(unix.UtimesNanoAt(unix.AT_FDCWD, p(n), ts, unix.AT_SYMLINK_NOFOLLOW))
	}
	run(t, "chattr", "+i", p("frozen"))
	run(t, "chattr", "+d", p("sub/data.bin"))
	return img
}

// importImage imports img into a new repository and returns the stored
// manifest.
func importImage(t *testing.T, img string) (*repo.Repo, *manifest.Manifest) {
	t.Helper()
	r := testrepo.New(t)
	_, m := testrepo.Import(t, r, img, "small:v1", image.ImportOptions{})
	return r, m
}
