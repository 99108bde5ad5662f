package mountinfo

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	in := `22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:5 - proc proc rw
36 25 8:1 / / rw,relatime shared:1 master:2 - ext4 /dev/sda1 rw,errors=remount-ro
120 36 0:55 / /var/tmp/a\040b/lower ro,nosuid,nodev,relatime - fuse.mis mis:deb\040ian:12 ro,user_id=0,group_id=0
121 36 0:56 / /mnt/c/p1 rw,relatime - overlay overlay rw,lowerdir=/r/lower/p1,upperdir=/r/up\,per/p1,workdir=/r/work/p1,index=off
122 36 0:57 /sub /mnt/bind rw - tmpfs mis-clone:x
`
	ms, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Mount{
		{ID: 22, Parent: 1, Major: 0, Minor: 21, Root: "/", Dir: "/proc", Options: "rw,nosuid,nodev,noexec,relatime", FSType: "proc", Source: "proc", SuperOptions: "rw"},
		{ID: 36, Parent: 25, Major: 8, Minor: 1, Root: "/", Dir: "/", Options: "rw,relatime", FSType: "ext4", Source: "/dev/sda1", SuperOptions: "rw,errors=remount-ro"},
		{ID: 120, Parent: 36, Major: 0, Minor: 55, Root: "/", Dir: "/var/tmp/a b/lower", Options: "ro,nosuid,nodev,relatime", FSType: "fuse.mis", Source: "mis:deb ian:12", SuperOptions: "ro,user_id=0,group_id=0"},
		{ID: 121, Parent: 36, Major: 0, Minor: 56, Root: "/", Dir: "/mnt/c/p1", Options: "rw,relatime", FSType: "overlay", Source: "overlay", SuperOptions: `rw,lowerdir=/r/lower/p1,upperdir=/r/up\,per/p1,workdir=/r/work/p1,index=off`},
		{ID: 122, Parent: 36, Major: 0, Minor: 57, Root: "/sub", Dir: "/mnt/bind", Options: "rw", FSType: "tmpfs", Source: "mis-clone:x"},
	}
	if !reflect.DeepEqual(ms, want) {
		t.Fatalf("Parse:\n got %+v\nwant %+v", ms, want)
	}
	if up, ok := Option(ms[3].SuperOptions, "upperdir"); !ok || up != "/r/up,per/p1" {
		t.Errorf("upperdir = %q, %v", up, ok)
	}
	if _, ok := Option(ms[3].SuperOptions, "metacopy"); ok {
		t.Error("metacopy found")
	}
	if _, ok := Option(ms[3].SuperOptions, "rw"); !ok {
		t.Error("rw not found")
	}
	for _, bad := range []string{"1 2 3", "22 1 0:21 / /proc rw - proc", "x 1 0:21 / /proc rw - proc proc rw"} {
		if _, err := ParseLine(bad); err == nil {
			t.Errorf("ParseLine(%q) did not fail", bad)
		}
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`/a\040b\011c`: "/a b\tc",
		`plain`:        "plain",
		`back\134`:     `back\`,
		`\040`:         " ",
		`trail\04`:     `trail\04`,
		`not\999octal`: `not\999octal`,
	} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRead parses this process's real table, which always has "/".
func TestRead(t *testing.T) {
	if _, err := os.Stat(Path); err != nil {
		t.Skip(err)
	}
	ms, err := Read()
	if err != nil {
		t.Fatal(err)
	}
	root := false
	for _, m := range ms {
		root = root || m.Dir == "/"
	}
	if !root {
		t.Errorf("no mount at / among %d", len(ms))
	}
}
