package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"mis/internal/daemon"
	"mis/layer"
	"mis/mountfs"
	"mis/repo"
	"mis/treeclone"
)

// Tree clones (mis clone --tree): a version edited as a file tree, with a
// kernel overlay per filesystem over the read-only FUSE tree and the upper
// kept in the repository. The package treeclone does the work; these are
// the CLI's entry points, called from the clone, mount, umount, commit,
// clones and rm commands.

func runTreeClone(ctx context.Context, src string, names []string) error {
	ref, err := layer.ParseRef(src)
	if err != nil {
		return fmt.Errorf("--tree clones a version NAME:TAG: %w", err)
	}
	cat, err := openCatalog()
	if err != nil {
		return err
	}
	v, err := cat.TreeClone(ctx, ref, names)
	if err != nil {
		return err
	}
	if g.json {
		return printJSON(map[string]any{"tree_clones": names, "base": ref.String(), "base_id": v.ID})
	}
	fmt.Printf("cloned %s as tree clone(s) %s; edit with mis mount CLONE DIR (DIR/pN are writable)\n", ref, strings.Join(names, ", "))
	return nil
}

// serveTreeClone is mis mount CLONE DIR for a tree clone: it serves the
// base read-only with FUSE and mounts the overlays until unmounted (mis
// umount DIR) or interrupted.
func serveTreeClone(ctx context.Context, r *repo.Repo, name, dir string, fl mountFlags, cacheSize, readahead int64) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	mountfs.LimitMemory(cacheSize)
	opt := treeclone.MountOptions{FS: mountfs.Options{CacheSize: cacheSize, Readahead: readahead}, Debug: fl.debug}
	return treeclone.Serve(ctx, r, name, dir, opt, func(mt *treeclone.Mounted) {
		if daemon.IsChild() {
			daemon.Ready()
			fmt.Fprintf(os.Stderr, "serving tree clone %s at %s (pid %d): %s writable\n", name, dir, os.Getpid(), strings.Join(mt.Parts, ", "))
		} else if !g.quiet {
			fmt.Fprintf(os.Stderr, "mounted tree clone %s at %s: %s writable; Ctrl-C or mis umount %s to stop\n", name, dir, strings.Join(mt.Parts, ", "), dir)
		}
	})
}
