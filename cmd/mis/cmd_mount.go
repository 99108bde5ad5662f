package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/spf13/cobra"

	"mis/catalog"
	"mis/internal/repodir"
	"mis/layer"
	"mis/mountfs"
	"mis/treeclone"
)

// daemonEnv marks the background child of `mis mount --daemon`; its value
// is the log file. The child reports readiness on fd 3.
const daemonEnv = "MIS_MOUNT_DAEMON_CHILD"

type mountFlags struct {
	daemon     bool
	cacheSize  string
	readahead  string
	allowOther bool
	logFile    string
	debug      bool
}

func newMountCmd() *cobra.Command {
	var fl mountFlags
	cmd := &cobra.Command{
		Use:   "mount NAME[:TAG]|CLONE DIR",
		Short: "Show a version read-only as files: DIR/disk.raw and DIR/pN/",
		Long: `Mount a version read-only with FUSE. Nothing is extracted: reads are served
from the repository's chunks, verified as they are read.

  DIR/disk.raw   the whole disk image, identical to what mis export writes
  DIR/p1/ ...    the files of the filesystem in partition 1 (p0: a bare filesystem),
                 with their owners, modes, times, xattrs, ACLs, devices and hardlinks

Other users see what the image's permissions allow them (the kernel checks
modes and ACLs); disk.raw is readable by the mounting user only. The mount is
nosuid and nodev. A damaged chunk makes the reads that need it fail with EIO
and is logged with its id.

mis mount runs in the foreground until unmounted or interrupted (Ctrl-C or
SIGTERM unmount it; a second signal detaches a busy mount lazily). With
--daemon it returns once the mount is ready and serves in the background,
logging to --log. Stop it with mis umount DIR.

mis mount CLONE DIR mounts a clone (see mis clone) writable: DIR/disk.raw
takes reads and writes (no pN trees: they would show the base's files, not
the clone's). Writes go to the clone's copy-on-write delta in the repository;
fsync makes them durable (so does closing the file, and a timer every 5 s).

mis mount CLONE DIR mounts a tree clone (mis clone --tree) as writable file
trees DIR/pN: kernel overlayfs over the base version's read-only trees, the
edits kept in the repository until mis commit records them.

The repository's metadata is read only at start, so imports and other
writers can run while a version is mounted.`,
		Example: `  mis mount debian:12 /mnt/debian
  mis mount -d web:2026-11-22 /mnt/web && cmp /mnt/web/disk.raw web.raw
  mis umount /mnt/web`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runMount(cmd, args[0], args[1], fl)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&fl.daemon, "daemon", "d", false, "return once mounted and serve in the background")
	f.StringVar(&fl.cacheSize, "cache-size", "64M", "memory for decompressed chunks (the kernel page cache holds file data besides)")
	f.StringVar(&fl.readahead, "readahead", "8M", "bytes fetched ahead of sequential readers (0 disables)")
	f.BoolVar(&fl.allowOther, "allow-other", os.Geteuid() == 0, "let other users in, subject to the image's permissions (default when root)")
	f.StringVar(&fl.logFile, "log", "", "log file of --daemon (default REPO/mounts/<dir>-<hash>.log)")
	f.BoolVar(&fl.debug, "debug", false, "log every FUSE request")
	return cmd
}

func newUmountCmd() *cobra.Command {
	var lazy bool
	cmd := &cobra.Command{
		Use:   "umount DIR",
		Short: "Unmount a version mounted with mis mount",
		Long: `Unmount DIR. This works also when the serving process has died. If a process
still uses the mount, umount fails unless --lazy: then the mount is detached
at once and goes away when the last user leaves.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if tree, _ := treeclone.IsMountedAt(args[0]); tree {
				// Overlays first, then the FUSE lower; also after the
				// serving process died.
				if err := treeclone.UnmountDir(args[0]); err != nil {
					return err
				}
				if !g.quiet {
					fmt.Fprintf(os.Stderr, "unmounted tree clone at %s\n", args[0])
				}
				return nil
			}
			detached, err := mountfs.Unmount(args[0], lazy)
			if err != nil {
				return err
			}
			if !g.quiet {
				if detached {
					fmt.Fprintf(os.Stderr, "detached %s (it goes away when no process uses it)\n", args[0])
				} else {
					fmt.Fprintf(os.Stderr, "unmounted %s\n", args[0])
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&lazy, "lazy", "l", false, "detach a busy mount now (umount -l)")
	return cmd
}

func runMount(cmd *cobra.Command, refArg, dir string, fl mountFlags) error {
	// A clone's name wins over NAME:latest (the two never share a name).
	kind := cloneKind(refArg)
	isClone := kind != catalog.KindNone
	var ref layer.Ref
	var err error
	if !isClone {
		if ref, err = layer.ParseRef(refArg); err != nil {
			return err
		}
	}
	cacheSize, err := parseSize(fl.cacheSize)
	if err != nil {
		return fmt.Errorf("--cache-size: %w", err)
	}
	readahead, err := parseSize(fl.readahead)
	if err != nil {
		return fmt.Errorf("--readahead: %w", err)
	}
	if readahead == 0 {
		readahead = -1 // mountfs: negative disables
	}
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if st, err := os.Stat(absDir); err != nil {
		return err
	} else if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", absDir)
	}
	if _, ok, _ := mountfs.FindMount(absDir); ok {
		return fmt.Errorf("%s is already a mount point (unmount it first with mis umount)", absDir)
	}
	if fl.daemon && os.Getenv(daemonEnv) == "" {
		if isClone {
			return startMountDaemon(refArg, absDir, fl)
		}
		return startMountDaemon(ref.String(), absDir, fl)
	}

	cat, err := openCatalog()
	if err != nil {
		return err
	}
	r := cat.Repo()
	ctx := cmd.Context()
	switch kind {
	case catalog.KindTreeClone:
		return serveTreeClone(ctx, r, refArg, absDir, fl, cacheSize, readahead)
	case catalog.KindDiskClone:
		return serveClone(ctx, cat, refArg, absDir, fl, cacheSize, readahead)
	}
	v, m, err := layer.Load(ctx, r, ref)
	if err != nil {
		return err
	}
	// Recorded so rm and gc leave the version alone while it is served.
	release, err := cat.RegisterMount(ctx, v, ref.String(), absDir)
	if err != nil {
		return err
	}
	defer release()
	logger := log.New(os.Stderr, "mis mount: ", log.LstdFlags)
	fsys, err := mountfs.New(ctx, r, m, mountfs.Options{
		CacheSize: cacheSize, Readahead: readahead, Logger: logger, Created: v.Created, NoDisk: v.TreeEdited,
	})
	if err != nil {
		return err
	}
	defer fsys.Close()
	limitMemory(cacheSize)
	srv, err := fsys.Mount(absDir, mountfs.MountOptions{FsName: "mis:" + ref.String(), AllowOther: fl.allowOther, Debug: fl.debug})
	if err != nil {
		return err
	}
	if ready := readyPipe(); ready != nil {
		fmt.Fprintf(ready, "ready %d\n", os.Getpid())
		ready.Close()
		logger.Printf("serving %s at %s (pid %d)", ref, absDir, os.Getpid())
	} else if !g.quiet {
		fmt.Fprintf(os.Stderr, "mounted %s at %s; Ctrl-C or mis umount %s to stop\n", ref, absDir, absDir)
	}

	waitServed(srv, absDir, logger)
	st := fsys.Stats()
	logger.Printf("unmounted %s: %d chunk reads, %d cache hits, %d prefetched, %d failed", absDir, st.Misses, st.Hits, st.Prefetched, st.Failed)
	return nil
}

// waitServed serves until the mount goes away. The first SIGINT/SIGTERM
// unmounts; if the mount is busy, another one detaches it lazily.
func waitServed(srv *fuse.Server, absDir string, logger *log.Logger) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		<-sigs
		for {
			err := srv.Unmount()
			if err == nil {
				return
			}
			logger.Printf("cannot unmount %s: %v; close what uses it, or signal again to detach it lazily", absDir, err)
			<-sigs
			if _, err := mountfs.Unmount(absDir, true); err == nil {
				return
			}
		}
	}()
	srv.Wait()
}

// limitMemory sets a soft heap limit of what the indexes use now plus the
// chunk cache plus room for FUSE buffers, unless GOMEMLIMIT is set: evicted
// chunks are garbage, and without a limit the heap would grow to twice the
// cache before the collector reclaims them.
func limitMemory(cacheSize int64) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	if cacheSize <= 0 {
		cacheSize = mountfs.DefaultCacheSize
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	debug.SetMemoryLimit(int64(ms.HeapAlloc) + cacheSize + 64<<20)
}

// readyPipe is the daemon child's readiness pipe (fd 3), or nil.
func readyPipe() *os.File {
	if os.Getenv(daemonEnv) == "" {
		return nil
	}
	return os.NewFile(3, "ready")
}

// startMountDaemon re-runs this mount in a new session with its output in a
// log file, and returns once the child reports the mount ready (or died).
func startMountDaemon(ref string, dir string, fl mountFlags) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	repoDir, err := filepath.Abs(g.repoDir)
	if err != nil {
		return err
	}
	logPath := fl.logFile
	if logPath == "" {
		logPath = repodir.Dir(repoDir).MountLog(dir)
		if err := os.MkdirAll(filepath.Dir(logPath), 0o700); err != nil {
			return fmt.Errorf("daemon log: %w", err)
		}
	}
	logf, err := openLog(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	rd, wr, err := os.Pipe()
	if err != nil {
		return err
	}
	defer rd.Close()
	args := []string{"--repo", repoDir, "mount", "--daemon",
		"--cache-size", fl.cacheSize, "--readahead", fl.readahead,
		"--allow-other=" + strconv.FormatBool(fl.allowOther), "--log", logPath}
	if fl.debug {
		args = append(args, "--debug")
	}
	args = append(args, ref, dir)
	child := exec.Command(exe, args...)
	child.Env = append(os.Environ(), daemonEnv+"="+logPath)
	child.Dir = "/" // do not keep the caller's directory busy
	child.Stdout, child.Stderr = logf, logf
	child.ExtraFiles = []*os.File{wr}
	child.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := child.Start(); err != nil {
		wr.Close()
		return err
	}
	wr.Close()
	exited := make(chan error, 1)
	go func() { exited <- child.Wait() }()
	line, _ := bufio.NewReader(rd).ReadString('\n')
	if strings.HasPrefix(line, "ready") {
		if !g.quiet {
			fmt.Fprintf(os.Stderr, "mounted %s at %s (pid %d, log %s)\n", ref, dir, child.Process.Pid, logPath)
		}
		return nil
	}
	// The child closed the pipe without a mount: it failed. Wait briefly for
	// its exit and show its last words.
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
	}
	return fmt.Errorf("mount of %s at %s failed: %s (log %s)", ref, dir, lastLogLine(logPath), logPath)
}

// openLog opens a log for appending without following a symbolic link
// and refuses anything but a regular file: a link planted at the log's
// path must not make a root mount append to the file it points at.
func openLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o600)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("daemon log %s is a symbolic link: refusing to follow it (remove it, or choose another with --log)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("daemon log: %w", err)
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("daemon log %s is not a regular file", path)
	}
	return f, nil
}

func lastLogLine(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "no log"
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > 4096 {
		f.Seek(-4096, io.SeekEnd)
	}
	data, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	return strings.TrimPrefix(lines[len(lines)-1], "mis: ")
}

// parseSize reads a byte count with an optional K, M or G suffix (powers
// of 1024), as in 64M.
func parseSize(s string) (int64, error) {
	t := strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B")
	t = strings.TrimSuffix(t, "I")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			mult, t = 1<<10, t[:n-1]
		case 'M':
			mult, t = 1<<20, t[:n-1]
		case 'G':
			mult, t = 1<<30, t[:n-1]
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v < 0 {
		return 0, errors.New("want a size such as 64M, 512K or 1G, got " + strconv.Quote(s))
	}
	return v * mult, nil
}
