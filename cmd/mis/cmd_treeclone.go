package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

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

// isTreeClone says whether arg names an existing tree clone.
func isTreeClone(arg string) bool {
	if strings.ContainsAny(arg, ":/") || treeclone.CheckName(arg) != nil {
		return false
	}
	_, err := treeclone.Get(g.repoDir, arg)
	return err == nil
}

// isAnyClone: block clones and tree clones share one namespace, apart from
// image names.
func isAnyClone(arg string) bool { return isCloneName(arg) || isTreeClone(arg) }

func runTreeClone(ctx context.Context, src string, names []string) error {
	ref, err := layer.ParseRef(src)
	if err != nil {
		return fmt.Errorf("--tree clones a version NAME:TAG: %w", err)
	}
	r, err := openRepo()
	if err != nil {
		return err
	}
	var v *layer.Version
	if err := r.View(ctx, func(tx *repo.Tx) error {
		if v, err = layer.Resolve(tx, ref); err != nil {
			return err
		}
		return checkNotImages(tx, names)
	}); err != nil {
		return err
	}
	for _, n := range names {
		if isCloneName(n) {
			return fmt.Errorf("%s is already a clone", n)
		}
	}
	for _, n := range names {
		if err := treeclone.Create(g.repoDir, n, v.ID); err != nil {
			return fmt.Errorf("tree clone %s: %w", n, err)
		}
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
	limitMemory(cacheSize)
	opt := treeclone.MountOptions{FS: mountfs.Options{CacheSize: cacheSize, Readahead: readahead}, Debug: fl.debug}
	return treeclone.Serve(ctx, r, name, dir, opt, func(mt *treeclone.Mounted) {
		if ready := readyPipe(); ready != nil {
			fmt.Fprintf(ready, "ready %d\n", os.Getpid())
			ready.Close()
			fmt.Fprintf(os.Stderr, "serving tree clone %s at %s (pid %d): %s writable\n", name, dir, os.Getpid(), strings.Join(mt.Parts, ", "))
		} else if !g.quiet {
			fmt.Fprintf(os.Stderr, "mounted tree clone %s at %s: %s writable; Ctrl-C or mis umount %s to stop\n", name, dir, strings.Join(mt.Parts, ", "), dir)
		}
	})
}

// commitTreeClone records a tree clone's edits as a new version whose
// parent is the clone's base. Only the upper is read.
func commitTreeClone(ctx context.Context, name string, ref layer.Ref) error {
	r, err := openRepo()
	if err != nil {
		return err
	}
	start := time.Now()
	c, err := treeclone.Get(g.repoDir, name)
	if err != nil {
		return err
	}
	var base *layer.Version
	if err := r.View(ctx, func(tx *repo.Tx) error {
		base, err = layer.Get(tx, c.Base)
		return err
	}); err != nil {
		return fmt.Errorf("tree clone %s: base: %w", name, err)
	}
	bm, err := layer.LoadManifest(ctx, r, base)
	if err != nil {
		return err
	}
	w, err := openWriter(ctx, r, "mis commit "+name+" "+ref.String())
	if err != nil {
		return err
	}
	defer w.Close()
	m, st, err := treeclone.Commit(ctx, w, r.Config().Chunker, bm, treeclone.Paths(g.repoDir, name).Upper)
	if errors.Is(err, treeclone.ErrMounted) {
		return fmt.Errorf("tree clone %s is mounted: unmount it first (mis umount DIR)", name)
	}
	if err != nil {
		return fmt.Errorf("commit tree clone %s: %w", name, err)
	}
	v := &layer.Version{Source: "tree clone " + name, Parent: base.ID, TreeEdited: st.NeedsFresh}
	if err := layer.SaveWithOptions(ctx, w, ref, v, m, layer.SaveOptions{ParentManifest: bm}); err != nil {
		return err
	}
	elapsed := time.Since(start)
	if g.json {
		return printJSON(map[string]any{"version": v, "tree_clone": name, "stats": st, "seconds": elapsed.Seconds()})
	}
	fmt.Printf("committed tree clone %s as %s (parent %s:%s): %d added, %d replaced, %d deleted; read %s of edits, added %s (%s stored) in %s; export it with mis export --fresh\n",
		name, ref, base.Name, base.Tag, st.Added, st.Replaced, st.Deleted, humanBytes(st.BytesRead),
		humanBytes(v.AddedRaw), humanBytes(v.AddedStored), humanDuration(elapsed))
	return nil
}

func removeTreeClone(name string) error {
	err := treeclone.Remove(g.repoDir, name)
	if errors.Is(err, treeclone.ErrMounted) {
		return fmt.Errorf("tree clone %s is mounted: unmount it first (mis umount DIR)", name)
	}
	if err != nil {
		return err
	}
	if g.json {
		return printJSON(map[string]any{"tree_clone": name, "removed": true})
	}
	fmt.Printf("removed tree clone %s and its edits\n", name)
	return nil
}

// treeCloneUsers lists the tree clones whose base is version id.
func treeCloneUsers(id string) ([]string, error) {
	list, err := treeclone.List(g.repoDir)
	var users []string
	for _, c := range list {
		if c.Base == id {
			users = append(users, c.Name)
		}
	}
	return users, err
}

// treeCloneRows are the tree clones as mis clones shows them.
func treeCloneRows(bases map[string][]string) ([]cloneRow, error) {
	list, err := treeclone.List(g.repoDir)
	if err != nil {
		return nil, err
	}
	var rows []cloneRow
	for _, c := range list {
		row := cloneRow{Kind: "tree", BaseNow: strings.Join(bases[c.Base], ",")}
		row.Name, row.Base, row.Created = c.Name, c.Base, c.Created
		row.Usage.Delta = duBytes(treeclone.Paths(g.repoDir, c.Name).Upper)
		rows = append(rows, row)
	}
	return rows, nil
}

// duBytes is the allocated size of a directory tree.
func duBytes(dir string) int64 {
	var total int64
	walkAllocated(dir, &total)
	return total
}

func walkAllocated(path string, total *int64) {
	var st syscall.Stat_t
	if syscall.Lstat(path, &st) != nil {
		return
	}
	*total += st.Blocks * 512
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return
	}
	for _, e := range entries {
		walkAllocated(path+"/"+e.Name(), total)
	}
}
