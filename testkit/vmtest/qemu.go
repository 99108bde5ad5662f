// Package vmtest boots disk images under qemu (TCG: no KVM needed) with
// their own kernel and initrd, for tests that must show a disk really boots
// and that what the guest writes lands on it.
//
// The Debian fixtures carry a boot check (see fixtures.BootCheckPath): asked
// for on the kernel command line, it prints a marker on the serial console,
// writes one file and powers off. BootCheck runs it and reads the result.
package vmtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Qemu is the emulator Boot runs.
const Qemu = "qemu-system-x86_64"

// DefaultTimeout bounds a boot when Config.Timeout is zero. TCG on a busy
// two-core machine is slow: a systemd boot takes tens of seconds.
const DefaultTimeout = 5 * time.Minute

// Config is one boot.
type Config struct {
	Disk     string // raw disk image (a file, or a FUSE-mounted disk.raw)
	Kernel   string // kernel image, e.g. from KernelFromImage
	Initrd   string // initrd for that kernel
	Root     string // root device on the kernel command line; "" means /dev/vda2
	Append   string // more kernel command line
	ReadOnly bool   // qemu snapshot=on: guest writes go to a temporary overlay and are discarded
	Memory   int    // MiB; 0 means 512
	Timeout  time.Duration
	Log      io.Writer // gets a copy of the serial console as it arrives (nil: none)
}

// Available reports why qemu cannot run here, or nil.
func Available() error {
	if _, err := exec.LookPath(Qemu); err != nil {
		return fmt.Errorf("vmtest: %s not found (apt-get install qemu-system-x86): %w", Qemu, err)
	}
	return nil
}

// CommandLine is the kernel command line Boot passes for c.
func (c Config) CommandLine() string {
	root := c.Root
	if root == "" {
		root = "/dev/vda2"
	}
	// panic=1 with -no-reboot turns a kernel panic into a quick qemu exit
	// instead of a hang until the timeout.
	line := "console=ttyS0 root=" + root + " rw panic=1"
	if c.Append != "" {
		line += " " + c.Append
	}
	return line
}

// Args are qemu's arguments for c.
func (c Config) Args() []string {
	mem := c.Memory
	if mem == 0 {
		mem = 512
	}
	drive := "file=" + qemuEscape(c.Disk) + ",format=raw,if=virtio,cache=writeback"
	if c.ReadOnly {
		drive += ",snapshot=on"
	}
	return []string{
		"-machine", "accel=tcg", "-m", fmt.Sprint(mem), "-smp", "1",
		"-nographic", "-no-reboot", "-nic", "none",
		"-drive", drive,
		"-kernel", c.Kernel, "-initrd", c.Initrd,
		"-append", c.CommandLine(),
	}
}

// Boot runs qemu on c until the guest powers off (or reboots, or panics:
// -no-reboot makes all three an exit) and returns the serial console. It
// fails when qemu cannot start or exits with an error, and on timeout or
// cancellation, after killing qemu; the console so far is returned with the error.
func Boot(ctx context.Context, c Config) (console string, err error) {
	if err := Available(); err != nil {
		return "", err
	}
	for _, f := range []struct{ what, path string }{{"disk", c.Disk}, {"kernel", c.Kernel}, {"initrd", c.Initrd}} {
		if f.path == "" {
			return "", fmt.Errorf("vmtest: no %s given", f.what)
		}
		if _, err := os.Stat(f.path); err != nil {
			return "", fmt.Errorf("vmtest: %s: %w", f.what, err)
		}
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, Qemu, c.Args()...)
	cmd.WaitDelay = 5 * time.Second
	var out, stderr bytes.Buffer
	cmd.Stdout = &out
	if c.Log != nil {
		cmd.Stdout = io.MultiWriter(&out, c.Log)
	}
	cmd.Stderr = &stderr
	runErr := cmd.Run()
	console = out.String()
	switch {
	case ctx.Err() != nil:
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return console, fmt.Errorf("vmtest: %s did not exit within %v (killed); console ends:\n%s", c.Disk, timeout, tail(console, 15))
		}
		return console, fmt.Errorf("vmtest: boot of %s cancelled: %w", c.Disk, ctx.Err())
	case runErr != nil:
		return console, fmt.Errorf("vmtest: %s on %s: %v: %s", Qemu, c.Disk, runErr, strings.TrimSpace(stderr.String()))
	}
	return console, nil
}

// qemuEscape doubles commas, which qemu's option syntax treats as separators.
func qemuEscape(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
