package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"mis/catalog"
	"mis/clone"
	"mis/image"
	"mis/internal/daemon"
	"mis/internal/units"
	"mis/layer"
	"mis/mountfs"
)

// Clone commands: clone, clones, commit, and serving a disk clone. The
// rules (names, what holds a version) are the catalog's.

// cloneKind says whether arg names an existing disk or tree clone.
func cloneKind(arg string) catalog.Kind {
	cat, err := openCatalog()
	if err != nil {
		return catalog.KindNone
	}
	return cat.CloneKind(arg)
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
	cat, err := openCatalog()
	if err != nil {
		return err
	}
	start := time.Now()
	var made []clone.Clone
	if cat.CloneKind(src) == catalog.KindDiskClone {
		made, err = cat.CloneClone(ctx, src, names)
	} else {
		ref, perr := layer.ParseRef(src)
		if perr != nil {
			return fmt.Errorf("%s is neither a clone nor a version: %w", src, perr)
		}
		made, err = cat.CloneVersion(ctx, ref, names)
	}
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	if g.json {
		return printJSON(map[string]any{"clones": made, "seconds": elapsed.Seconds()})
	}
	if len(made) == 1 {
		fmt.Printf("cloned %s as %s\n", src, made[0].Name)
	} else {
		fmt.Printf("cloned %s as %d clones in %s\n", src, len(made), units.Duration(elapsed))
	}
	return nil
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
			cat, err := openCatalog()
			if err != nil {
				return err
			}
			rows, err := cat.ListClones(cmd.Context())
			if err != nil {
				return err
			}
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
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", row.Name, row.Kind, base, units.Bytes(row.Usage.Delta), units.Bytes(row.Usage.Frozen),
					row.Created.Local().Format("2006-01-02 15:04"), mounted)
			}
			return tw.Flush()
		},
	}
}

// serveClone is mis mount CLONE DIR after the checks runMount shares.
func serveClone(ctx context.Context, cat *catalog.Catalog, name, dir string, fl mountFlags, cacheSize, readahead int64) error {
	logger := log.New(os.Stderr, "mis mount: ", log.LstdFlags)
	dc, err := cat.LoadDiskClone(ctx, name, mountfs.Options{CacheSize: cacheSize, Readahead: readahead, Logger: logger})
	if err != nil {
		return err
	}
	defer dc.Base.Close()
	d, err := cat.OpenDisk(dc, clone.DiskOptions{Logger: logger})
	if err != nil {
		return err
	}
	defer func() {
		if err := d.Close(); err != nil {
			logger.Printf("closing clone %s: %v", name, err)
		}
	}()
	mountfs.LimitMemory(cacheSize)
	srv, err := dc.Base.MountWritable(dir, d, mountfs.MountOptions{FsName: "mis:" + name, AllowOther: fl.allowOther, Debug: fl.debug})
	if err != nil {
		return err
	}
	base := dc.Record.BaseRef
	if daemon.IsChild() {
		daemon.Ready()
		logger.Printf("serving clone %s (base %s) writable at %s (pid %d)", name, base, dir, os.Getpid())
	} else if !g.quiet {
		fmt.Fprintf(os.Stderr, "mounted clone %s (base %s) writable at %s; Ctrl-C or mis umount %s to stop\n", name, base, dir, dir)
	}
	mountfs.ServeUntilSignal(ctx, srv, dir, logger)
	s := d.Stats()
	logger.Printf("unmounted %s: %d writes (%s), %d block copy-ups, %d syncs", dir, s.Writes.Load(),
		units.Bytes(s.WrittenBytes.Load()), s.CopyUps.Load(), s.Syncs.Load())
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
	cat, err := openCatalog()
	if err != nil {
		return err
	}
	start := time.Now()
	w, err := openWriter(ctx, cat.Repo(), "mis commit "+name+" "+ref.String())
	if err != nil {
		return err
	}
	defer w.Close()
	prog := newProgress("commit " + name)
	var warnings []string
	res, err := cat.Commit(ctx, w, name, ref, image.ImportOptions{
		Progress: prog.update,
		Warn:     func(msg string) { warnings = append(warnings, msg) },
	})
	prog.finish()
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	v, ist := res.Version, res.Stats
	if res.Kind == catalog.KindTreeClone {
		st := res.Tree
		if g.json {
			return printJSON(map[string]any{"version": v, "tree_clone": name, "stats": st, "seconds": elapsed.Seconds()})
		}
		fmt.Printf("committed tree clone %s as %s (parent %s:%s): %d added, %d replaced, %d deleted; read %s of edits, added %s (%s stored) in %s; export it with mis export --fresh\n",
			name, ref, res.Parent.Name, res.Parent.Tag, st.Added, st.Replaced, st.Deleted, units.Bytes(st.BytesRead),
			units.Bytes(v.AddedRaw), units.Bytes(v.AddedStored), units.Duration(elapsed))
		return nil
	}
	if g.json {
		return printJSON(map[string]any{"version": v, "clone": name, "base": res.Record.BaseRef, "changed_bytes": res.ChangedBytes,
			"seconds": elapsed.Seconds(), "warnings": warnings, "reused_files": ist.ReusedFiles, "reused_bytes": ist.ReusedBytes,
			"read_files": ist.ReadFiles, "read_bytes": ist.ReadBytes,
			"residual_reused_bytes": ist.ResidualReusedBytes, "residual_read_bytes": ist.ResidualReadBytes})
	}
	for _, msg := range warnings {
		fmt.Fprintln(os.Stderr, "note:", msg)
	}
	fmt.Printf("committed clone %s as %s (parent %s): %s changed; files: %d (%s) reused, %d (%s) read; other data: %s reused, %s read; added %s (%s stored) in %s\n",
		name, ref, res.Record.BaseRef, units.Bytes(res.ChangedBytes), ist.ReusedFiles, units.Bytes(ist.ReusedBytes), ist.ReadFiles, units.Bytes(ist.ReadBytes),
		units.Bytes(ist.ResidualReusedBytes), units.Bytes(ist.ResidualReadBytes),
		units.Bytes(v.AddedRaw), units.Bytes(v.AddedStored), units.Duration(elapsed))
	return nil
}
