package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"mis/chunker"
	"mis/clone"
	"mis/image"
	"mis/layer"
	"mis/mountfs"
	"mis/repo"
	"mis/treeclone"
)

// Clone commands: clone, clones, commit; and the clone side of mount, rm
// and gc. The lead registers newCloneCmd, newClonesCmd and newCommitCmd.

func cloneStore() (*clone.Store, error) {
	if _, err := os.Stat(g.repoDir); os.IsNotExist(err) {
		return nil, fmt.Errorf("no repository at %s: create one with `mis init` or pick one with --repo/MIS_REPO", g.repoDir)
	}
	return clone.Open(g.repoDir), nil
}

// isCloneName says whether arg names an existing clone (a NAME:TAG never
// does: clone names have no colon).
func isCloneName(arg string) bool {
	if strings.ContainsAny(arg, ":/") || clone.ValidName(arg) != nil {
		return false
	}
	st, err := cloneStore()
	return err == nil && st.Exists(arg)
}

// mountedError turns clone.ErrMounted into advice naming the mount point.
func mountedError(name string, err error) error {
	if !errors.Is(err, clone.ErrMounted) {
		return err
	}
	if mi, ok, _ := mountfs.FindMountBySource("mis:" + name); ok {
		return fmt.Errorf("clone %s is mounted at %s: unmount it first (mis umount %s)", name, mi.Dir, mi.Dir)
	}
	return fmt.Errorf("clone %s is in use by a mis mount or commit (its delta is locked): unmount it first with mis umount DIR", name)
}

// settleUnmounted waits (up to 10 s) for the server of a clone that was
// just unmounted to finish writing back and release the clone: mis umount
// returns when the kernel lets go, a moment before the server has closed
// its delta. A clone still in the mount table is not waited for.
func settleUnmounted(name string) {
	st, err := cloneStore()
	if err != nil {
		return
	}
	c, err := st.Get(name)
	if err != nil {
		return
	}
	if _, ok, _ := mountfs.FindMountBySource("mis:" + name); ok {
		return
	}
	for deadline := time.Now().Add(10 * time.Second); st.InUse(c) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
}

// imageNames returns the names that have at least one tag.
func imageNames(tx *repo.Tx) (map[string]bool, error) {
	tags, err := layer.List(tx)
	names := map[string]bool{}
	for _, t := range tags {
		names[t.Ref.Name] = true
	}
	return names, err
}

func newCloneCmd() *cobra.Command {
	var tree bool
	cmd := &cobra.Command{
		Use:   "clone NAME:TAG|CLONE NEWCLONE [NEWCLONE...]",
		Short: "Make writable clones of a version or of a clone (instant, stores only a record)",
		Long: `Make writable clones of version NAME:TAG, or of an existing clone. Nothing is
copied: a clone is a record naming its base version; its writes go to its own
copy-on-write delta inside the repository when it is mounted (mis mount CLONE DIR).

Cloning a clone freezes its current delta into a read-only layer shared by both,
and each continues with a new empty delta: neither sees the other's later
writes. Clones of clones work to any depth. A clone that is mounted cannot be
cloned: unmount it first.

With --tree, the clone is a file tree instead (the shared-master-plus-private-
overlay model): mis mount CLONE DIR shows each filesystem writable at DIR/pN
(kernel overlayfs over the read-only version, the edits kept in the
repository), and mis commit CLONE NAME:TAG records only the edits as a new
version, which is written out with mis export --fresh.

Clone names use lowercase letters, digits and . _ - and must not be the name
of an image. While clones use a version, mis rm refuses to remove it.`,
		Example: `  mis clone debian:12 vm1 vm2 vm3
  mis mount -d vm1 /mnt/vm1 && qemu-system-x86_64 -drive file=/mnt/vm1/disk.raw,format=raw ...
  mis clone vm1 vm1-snapshot
  mis clone --tree debian:12 web && mis mount -d web /mnt/web && vi /mnt/web/p2/etc/motd`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if tree {
				return runTreeClone(cmd.Context(), args[0], args[1:])
			}
			return runClone(cmd.Context(), args[0], args[1:])
		},
	}
	cmd.Flags().BoolVar(&tree, "tree", false, "make tree clones: writable file trees (DIR/pN) instead of a writable disk.raw")
	return cmd
}

func runClone(ctx context.Context, src string, names []string) error {
	st, err := cloneStore()
	if err != nil {
		return err
	}
	r, err := openRepo()
	if err != nil {
		return err
	}
	start := time.Now()
	var made []clone.Clone
	if isCloneName(src) {
		settleUnmounted(src)
		made, err = st.CreateFromClone(src, names, clone.CreateOptions{Check: func(names []string) error {
			return r.View(ctx, func(tx *repo.Tx) error { return checkNotImages(tx, names) })
		}})
		if err != nil {
			return mountedError(src, err)
		}
	} else {
		ref, err := layer.ParseRef(src)
		if err != nil {
			return fmt.Errorf("%s is neither a clone nor a version: %w", src, err)
		}
		var v *layer.Version
		if err := r.View(ctx, func(tx *repo.Tx) error {
			v, err = layer.Resolve(tx, ref)
			return err
		}); err != nil {
			return err
		}
		if v.TreeEdited {
			return fmt.Errorf("%s was edited as a file tree and has no disk image to clone: clone it with --tree, or export it with --fresh and import that", ref)
		}
		base := clone.Base{VersionID: v.ID, Ref: ref.String(), DiskSize: v.DiskSize}
		made, err = st.Create(base, names, clone.CreateOptions{Check: func(names []string) error {
			// Under the clone lock, which mis rm also holds: the base
			// cannot disappear between this check and the records.
			return r.View(ctx, func(tx *repo.Tx) error {
				if _, err := layer.Get(tx, v.ID); err != nil {
					return fmt.Errorf("%s was removed meanwhile: %w", ref, err)
				}
				return checkNotImages(tx, names)
			})
		}})
		if err != nil {
			return err
		}
	}
	elapsed := time.Since(start)
	if g.json {
		return printJSON(map[string]any{"clones": made, "seconds": elapsed.Seconds()})
	}
	if len(made) == 1 {
		fmt.Printf("cloned %s as %s\n", src, made[0].Name)
	} else {
		fmt.Printf("cloned %s as %d clones in %s\n", src, len(made), humanDuration(elapsed))
	}
	return nil
}

func checkNotImages(tx *repo.Tx, names []string) error {
	images, err := imageNames(tx)
	if err != nil {
		return err
	}
	for _, n := range names {
		if isTreeClone(n) {
			return fmt.Errorf("%s is already a tree clone", n)
		}
		if images[n] {
			return fmt.Errorf("%s is the name of an image: a clone needs a name of its own", n)
		}
	}
	return nil
}

type cloneRow struct {
	Kind string `json:"kind"` // "disk" (writable disk.raw) or "tree" (writable pN trees)
	clone.Clone
	BaseNow   string      `json:"base_now"` // NAME:TAG(s) naming the base version today
	Usage     clone.Usage `json:"usage"`
	Mounted   bool        `json:"mounted"`
	MountedAt string      `json:"mounted_at,omitempty"`
}

func newClonesCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "clones",
		Short: "List clones with their base version and delta size",
		Long: `List every clone: its base version, the bytes its own delta takes on disk
(allocated), the bytes of frozen layers it shares with clones made from it or
that it was made from, and whether it is mounted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := cloneStore()
			if err != nil {
				return err
			}
			list, err := st.List()
			if err != nil {
				return err
			}
			trees, err := treeclone.List(g.repoDir)
			if err != nil {
				return err
			}
			bases := map[string][]string{}
			if len(list)+len(trees) > 0 {
				r, err := openRepo()
				if err != nil {
					return err
				}
				if err := r.View(cmd.Context(), func(tx *repo.Tx) error {
					tags, err := layer.List(tx)
					for _, t := range tags {
						bases[t.Version.ID] = append(bases[t.Version.ID], t.Ref.String())
					}
					return err
				}); err != nil {
					return err
				}
			}
			rows := []cloneRow{}
			for i := range list {
				c := &list[i]
				row := cloneRow{Kind: "disk", Clone: *c, BaseNow: strings.Join(bases[c.Base], ","), Usage: st.Usage(c), Mounted: st.InUse(c)}
				if row.Mounted {
					if mi, ok, _ := mountfs.FindMountBySource("mis:" + c.Name); ok {
						row.MountedAt = mi.Dir
					}
				}
				rows = append(rows, row)
			}
			treeRows, err := treeCloneRows(bases)
			if err != nil {
				return err
			}
			rows = append(rows, treeRows...)
			if g.json {
				return printJSON(rows)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CLONE\tKIND\tBASE\tDELTA\tSHARED\tCREATED\tMOUNTED")
			for _, row := range rows {
				base := row.BaseNow
				if base == "" {
					base = row.BaseRef + " (tag moved; version " + row.Base + ")"
				}
				mounted := "-"
				if row.Mounted {
					mounted = "yes"
					if row.MountedAt != "" {
						mounted = row.MountedAt
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", row.Name, row.Kind, base, humanBytes(row.Usage.Delta), humanBytes(row.Usage.Frozen),
					row.Created.Local().Format("2006-01-02 15:04"), mounted)
			}
			return tw.Flush()
		},
	}
}

// loadCloneBase reads the record of clone name and its base version's
// manifest, and prepares the base's disk view.
func loadCloneBase(ctx context.Context, r *repo.Repo, name string, opt mountfs.Options) (*clone.Clone, *layer.Version, *mountfs.FS, error) {
	st, err := cloneStore()
	if err != nil {
		return nil, nil, nil, err
	}
	c, err := st.Get(name)
	if err != nil {
		return nil, nil, nil, err
	}
	var v *layer.Version
	if err := r.View(ctx, func(tx *repo.Tx) error {
		v, err = layer.Get(tx, c.Base)
		return err
	}); err != nil {
		return nil, nil, nil, fmt.Errorf("clone %s: base %s: %w", name, c.BaseRef, err)
	}
	m, err := layer.LoadManifest(ctx, r, v)
	if err != nil {
		return nil, nil, nil, err
	}
	if m.DiskSize != c.DiskSize {
		return nil, nil, nil, fmt.Errorf("clone %s: base %s has %d bytes, the clone %d", name, c.BaseRef, m.DiskSize, c.DiskSize)
	}
	fsys, err := mountfs.New(ctx, r, m, opt)
	if err != nil {
		return nil, nil, nil, err
	}
	return c, v, fsys, nil
}

// serveClone is mis mount CLONE DIR after the checks runMount shares.
func serveClone(ctx context.Context, r *repo.Repo, name, dir string, fl mountFlags, cacheSize, readahead int64) error {
	logger := log.New(os.Stderr, "mis mount: ", log.LstdFlags)
	c, _, fsys, err := loadCloneBase(ctx, r, name, mountfs.Options{CacheSize: cacheSize, Readahead: readahead, Logger: logger})
	if err != nil {
		return err
	}
	defer fsys.Close()
	st, _ := cloneStore()
	settleUnmounted(name)
	d, err := st.OpenDisk(name, fsys.Disk(), clone.DiskOptions{Logger: logger})
	if err != nil {
		return mountedError(name, err)
	}
	defer func() {
		if err := d.Close(); err != nil {
			logger.Printf("closing clone %s: %v", name, err)
		}
	}()
	limitMemory(cacheSize)
	srv, err := fsys.MountWritable(dir, d, mountfs.MountOptions{FsName: "mis:" + name, AllowOther: fl.allowOther, Debug: fl.debug})
	if err != nil {
		return err
	}
	if ready := readyPipe(); ready != nil {
		fmt.Fprintf(ready, "ready %d\n", os.Getpid())
		ready.Close()
		logger.Printf("serving clone %s (base %s) writable at %s (pid %d)", name, c.BaseRef, dir, os.Getpid())
	} else if !g.quiet {
		fmt.Fprintf(os.Stderr, "mounted clone %s (base %s) writable at %s; Ctrl-C or mis umount %s to stop\n", name, c.BaseRef, dir, dir)
	}
	waitServed(srv, dir, logger)
	s := d.Stats()
	logger.Printf("unmounted %s: %d writes (%s), %d block copy-ups, %d syncs", dir, s.Writes.Load(),
		humanBytes(s.WrittenBytes.Load()), s.CopyUps.Load(), s.Syncs.Load())
	return nil
}

func newCommitCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "commit CLONE NAME:TAG",
		Short: "Store a clone's current disk as a new version whose parent is the clone's base",
		Long: `Import the current disk of CLONE as version NAME:TAG, with the clone's base
version as parent. Only what the clone changed is read: disk ranges no write
touched are known to equal the base, and files whose inodes are unchanged reuse
the base's chunks. The clone must not be mounted (unmount it first); it stays
as it is, and can be committed again later.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCommit(cmd.Context(), args[0], args[1])
		},
	}
}

func runCommit(ctx context.Context, name, refArg string) error {
	ref, err := layer.ParseRef(refArg)
	if err != nil {
		return err
	}
	if isAnyClone(ref.Name) {
		return fmt.Errorf("%s is the name of a clone: a version needs an image name of its own", ref.Name)
	}
	if isTreeClone(name) {
		return commitTreeClone(ctx, name, ref)
	}
	r, err := openRepo()
	if err != nil {
		return err
	}
	start := time.Now()
	c, base, fsys, err := loadCloneBase(ctx, r, name, mountfs.Options{Readahead: -1})
	if err != nil {
		return err
	}
	defer fsys.Close()
	st, _ := cloneStore()
	settleUnmounted(name)
	d, err := st.OpenDisk(name, fsys.Disk(), clone.DiskOptions{ReadOnly: true})
	if err != nil {
		return mountedError(name, err)
	}
	defer d.Close()
	w, err := r.OpenWriter(ctx, "mis commit "+name+" "+ref.String())
	if err != nil {
		return err
	}
	defer w.Close()
	if err := w.View(ctx, func(tx *repo.Tx) error {
		if _, err := layer.Resolve(tx, ref); err == nil {
			return fmt.Errorf("%s already exists: choose another tag or remove it first", ref)
		}
		return nil
	}); err != nil {
		return err
	}
	baseManifest, err := layer.LoadManifest(ctx, r, base)
	if err != nil {
		return err
	}
	prog := newProgress("commit " + name)
	var warnings []string
	m, ist, err := importClone(ctx, w, r, d, baseManifest, name, image.ImportOptions{
		Parent:   baseManifest,
		Progress: prog.update,
		Warn:     func(msg string) { warnings = append(warnings, msg) },
	})
	prog.finish()
	if err != nil {
		return fmt.Errorf("commit %s: %w", name, err)
	}
	v := &layer.Version{Source: "clone " + name, Parent: base.ID}
	if err := layer.SaveWithOptions(ctx, w, ref, v, m, layer.SaveOptions{ParentManifest: baseManifest}); err != nil {
		return err
	}
	elapsed := time.Since(start)
	changed := d.ChangedBlocks() * clone.BlockSize
	if g.json {
		return printJSON(map[string]any{"version": v, "clone": c.Name, "base": c.BaseRef, "changed_bytes": changed,
			"seconds": elapsed.Seconds(), "warnings": warnings, "reused_files": ist.ReusedFiles, "reused_bytes": ist.ReusedBytes,
			"read_files": ist.ReadFiles, "read_bytes": ist.ReadBytes,
			"residual_reused_bytes": ist.ResidualReusedBytes, "residual_read_bytes": ist.ResidualReadBytes})
	}
	for _, msg := range warnings {
		fmt.Fprintln(os.Stderr, "note:", msg)
	}
	fmt.Printf("committed clone %s as %s (parent %s): %s changed; files: %d (%s) reused, %d (%s) read; other data: %s reused, %s read; added %s (%s stored) in %s\n",
		name, ref, c.BaseRef, humanBytes(changed), ist.ReusedFiles, humanBytes(ist.ReusedBytes), ist.ReadFiles, humanBytes(ist.ReadBytes),
		humanBytes(ist.ResidualReusedBytes), humanBytes(ist.ResidualReadBytes),
		humanBytes(v.AddedRaw), humanBytes(v.AddedStored), humanDuration(elapsed))
	return nil
}

// refuseCloneBase is mis rm's check, run with the clone lock held: a
// version that clones use may lose a tag but not its record.
func refuseCloneBase(ctx context.Context, w *repo.Writer, st *clone.Store, ref layer.Ref) error {
	return w.View(ctx, func(tx *repo.Tx) error {
		v, err := layer.Resolve(tx, ref)
		if err != nil {
			return err
		}
		users, err := st.UsersOf(v.ID)
		if err != nil {
			return err
		}
		trees, err := treeCloneUsers(v.ID)
		if err != nil {
			return err
		}
		users = append(users, trees...)
		if len(users) == 0 {
			return nil
		}
		tags, err := layer.List(tx)
		if err != nil {
			return err
		}
		for _, t := range tags {
			if t.Version.ID == v.ID && t.Ref != ref {
				return nil // another tag keeps the version
			}
		}
		shown := users
		if len(shown) > 10 {
			shown = append(shown[:10:10], fmt.Sprintf("and %d more", len(users)-10))
		}
		return fmt.Errorf("%s is the base of %d clone(s): %s; remove them first (mis rm CLONE)", ref, len(users), strings.Join(shown, ", "))
	})
}

// removeClone is mis rm CLONE.
func removeClone(name string) error {
	st, err := cloneStore()
	if err != nil {
		return err
	}
	settleUnmounted(name)
	if err := st.Remove(name); err != nil {
		return mountedError(name, err)
	}
	if g.json {
		return printJSON(map[string]any{"clone": name, "removed": true})
	}
	fmt.Printf("removed clone %s and its delta\n", name)
	return nil
}

// cloneBasesLive wraps gc's live set: every clone's base version must
// still exist (its chunks are then among the versions' chunks), or gc
// refuses rather than free what a clone reads.
func cloneBasesLive(ctx context.Context, r *repo.Repo, live func(yield func(chunker.ID) error) error) func(yield func(chunker.ID) error) error {
	return func(yield func(chunker.ID) error) error {
		ids, err := clone.BaseVersions(r.Dir())
		if err != nil {
			return err
		}
		trees, err := treeclone.List(r.Dir())
		if err != nil {
			return err
		}
		for _, c := range trees {
			ids = append(ids, c.Base)
		}
		if len(ids) > 0 {
			if err := r.View(ctx, func(tx *repo.Tx) error {
				for _, id := range ids {
					if _, err := layer.Get(tx, id); err != nil {
						return fmt.Errorf("refusing to collect garbage: a clone's base version is missing: %w", err)
					}
				}
				return nil
			}); err != nil {
				return err
			}
		}
		return live(yield)
	}
}
