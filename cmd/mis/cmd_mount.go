package main

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"

	"mis/catalog"
	"mis/internal/daemon"
	"mis/internal/repodir"
	"mis/internal/units"
	"mis/layer"
	"mis/mountfs"
	"mis/treeclone"
)

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
	cacheSize, err := units.ParseSize(fl.cacheSize)
	if err != nil {
		return fmt.Errorf("--cache-size: %w", err)
	}
	readahead, err := units.ParseSize(fl.readahead)
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
	if fl.daemon && !daemon.IsChild() {
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
	mountfs.LimitMemory(cacheSize)
	srv, err := fsys.Mount(absDir, mountfs.MountOptions{FsName: "mis:" + ref.String(), AllowOther: fl.allowOther, Debug: fl.debug})
	if err != nil {
		return err
	}
	if daemon.IsChild() {
		daemon.Ready()
		logger.Printf("serving %s at %s (pid %d)", ref, absDir, os.Getpid())
	} else if !g.quiet {
		fmt.Fprintf(os.Stderr, "mounted %s at %s; Ctrl-C or mis umount %s to stop\n", ref, absDir, absDir)
	}

	mountfs.ServeUntilSignal(ctx, srv, absDir, logger)
	st := fsys.Stats()
	logger.Printf("unmounted %s: %d chunk reads, %d cache hits, %d prefetched, %d failed", absDir, st.Misses, st.Hits, st.Prefetched, st.Failed)
	return nil
}

// startMountDaemon re-runs this mount in the background with its output
// in a log file, and returns once the child reports the mount ready.
func startMountDaemon(ref string, dir string, fl mountFlags) error {
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
	args := []string{"--repo", repoDir, "mount", "--daemon",
		"--cache-size", fl.cacheSize, "--readahead", fl.readahead,
		"--allow-other=" + strconv.FormatBool(fl.allowOther), "--log", logPath}
	if fl.debug {
		args = append(args, "--debug")
	}
	pid, err := daemon.Start(append(args, ref, dir), logPath)
	if err != nil {
		return fmt.Errorf("mount of %s at %s failed: %w", ref, dir, err)
	}
	if !g.quiet {
		fmt.Fprintf(os.Stderr, "mounted %s at %s (pid %d, log %s)\n", ref, dir, pid, logPath)
	}
	return nil
}
