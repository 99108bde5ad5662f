package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"mis/catalog"
	"mis/fresh"
	"mis/image"
	"mis/internal/units"
	"mis/layer"
	"mis/manifest"
	"mis/repo"
)

func newImportCmd() *cobra.Command {
	var discardFree, noParent, rehash, trustMetadata bool
	var parentRef string
	cmd := &cobra.Command{
		Use:   "import IMAGE NAME[:TAG]",
		Short: "Store a raw disk image as a new version",
		Long: `Store a raw disk image (GPT, MBR, or a bare filesystem) as version NAME:TAG
(TAG defaults to "latest").

Every ext2/3/4 filesystem in the image is walked: each file's content is stored
as deduplicated chunks, and its metadata (modes, owners, nanosecond times, xattrs,
ACLs, devices, hardlinks, holes) goes into the version's manifest. Every other
byte of the disk is kept as residual data, so the version exports back identical
(same sha256). Partitions mis does not walk yet (FAT, swap, ISO, squashfs, ...)
are kept whole as residual data and still round-trip.

By default free blocks are kept too (exactness wins). --discard-free drops the
content of blocks the filesystem marks free: they export as zeros, the image
still passes e2fsck with the same files, but it is no longer identical.

Versions form a history: the new version's parent is the latest version of NAME
(or --parent NAME:TAG, any image; --no-parent starts fresh). Every file is read
and hashed: chunks the repository already holds cost no compression and no
space, so re-importing an updated image stores only what changed. A file whose
inode is unchanged against the parent (same inode number and generation, size,
mtime and ctime to the nanosecond, same extents) is read too: reproducible
image builds and raw block writes change bytes under an unchanged inode.

--trust-metadata skips reading such files and takes the parent's chunks on the
strength of the inode alone: faster, but blind to those changes. A version
made so is marked unverified in ls and info, never exact.

A filesystem with a dirty journal is refused: mount and unmount it cleanly, or
run e2fsck, before importing.`,
		Example: `  mis import disk.raw debian:12
  mis import --discard-free vm.img web:2026-11-22
  mis import --parent debian:12 debian-custom.raw custom:v1`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			src := args[0]
			ref, err := layer.ParseRef(args[1])
			if err != nil {
				return err
			}
			cat, err := openCatalog()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			start := time.Now()
			// The source is checked before the writer lock is taken.
			if f, _, err := image.OpenSource(src); err != nil {
				return err
			} else {
				f.Close()
			}
			w, err := openWriter(ctx, cat.Repo(), "mis import "+src+" "+ref.String())
			if err != nil {
				return err
			}
			defer w.Close()
			prog := newProgress("import " + ref.String())
			var warnings []string
			res, err := cat.Import(ctx, w, src, ref, catalog.Parent{None: noParent, Ref: parentRef}, image.ImportOptions{
				DiscardFree:   discardFree,
				Rehash:        rehash,
				TrustMetadata: trustMetadata,
				Progress:      prog.update,
				Warn:          func(msg string) { warnings = append(warnings, msg) },
			})
			prog.finish()
			if err != nil {
				return err
			}
			v, m, parent, ist := res.Version, res.Manifest, res.Parent, res.Stats
			elapsed := time.Since(start)
			if g.json {
				return printJSON(map[string]any{"version": v, "seconds": elapsed.Seconds(), "warnings": warnings, "verified_files": ist.VerifiedFiles, "verified_bytes": ist.VerifiedBytes,
					"changed_under_inode": ist.ChangedUnderInode, "reused_files": ist.ReusedFiles,
					"reused_bytes": ist.ReusedBytes, "read_files": ist.ReadFiles, "read_bytes": ist.ReadBytes})
			}
			for _, msg := range warnings {
				fmt.Fprintln(os.Stderr, "note:", msg)
			}
			fmt.Printf("imported %s as %s: %s disk, %d files, %d filesystem(s), added %s (%s stored) in %s\n",
				src, ref, units.Bytes(m.DiskSize), m.FileCount(), len(m.Filesystems),
				units.Bytes(v.AddedRaw), units.Bytes(v.AddedStored), units.Duration(elapsed))
			if parent != nil {
				fmt.Printf("parent %s:%s: %d files (%s) read, of which %d (%s) had an unchanged inode and matched the parent's bytes, %d had new bytes under an unchanged inode",
					parent.Name, parent.Tag, ist.ReadFiles, units.Bytes(ist.ReadBytes), ist.VerifiedFiles, units.Bytes(ist.VerifiedBytes), ist.ChangedUnderInode)
				if ist.ReusedFiles > 0 {
					fmt.Printf("; %d files (%s) taken from the parent unread (--trust-metadata)", ist.ReusedFiles, units.Bytes(ist.ReusedBytes))
				}
				fmt.Println()
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&discardFree, "discard-free", false, "drop the content of free blocks (export is then not identical)")
	cmd.Flags().StringVar(&parentRef, "parent", "", "parent version NAME:TAG (default: the latest version of NAME)")
	cmd.Flags().BoolVar(&noParent, "no-parent", false, "start a new history: no parent, read every file")
	cmd.Flags().BoolVar(&rehash, "rehash", false, "ignore every hint (parent's chunk lists, a clone's unchanged blocks): read, cut and hash everything")
	cmd.Flags().BoolVar(&trustMetadata, "trust-metadata", false, "take the parent's chunks for files whose inode is unchanged without reading them (faster; the version is marked unverified)")
	cmd.MarkFlagsMutuallyExclusive("rehash", "trust-metadata")
	cmd.MarkFlagsMutuallyExclusive("parent", "no-parent")
	return cmd
}

func newExportCmd() *cobra.Command {
	var force, freshBuild bool
	var sizeFlag string
	cmd := &cobra.Command{
		Use:   "export NAME[:TAG] OUT",
		Short: "Write a stored version back as a raw disk image",
		Long: `Write version NAME:TAG back as a raw disk image at OUT. For a version imported
without --discard-free the output is identical, byte for byte, to the imported
image. OUT is sparse: zero blocks are not written.

The image is written to a temporary file beside OUT and renamed into place
only when complete and synced, so an interrupted export never leaves a
file that looks finished (the next export to OUT removes what a killed one
left). OUT "-" writes the raw disk to standard output, front to back, for a
pipe or a device (mis export NAME:TAG - > /dev/sdX). An existing device,
FIFO or directory at OUT is never replaced by a file, even with --force.

--fresh builds a new image instead: the same partition table (the last
partition grows to --size SIZE), every ext2/3/4 filesystem rebuilt with its
identity (UUID, label, hash seed, features, block and inode size) and every
file with every attribute, FAT filesystems rebuilt with the same volume id
and label, other partitions copied as they are. Files are laid out anew,
free space is zero, and the same version always gives the same bytes. It
needs mke2fs, debugfs, sfdisk, mkfs.vfat and mcopy, and FUSE.`,
		Example: `  mis export debian:12 debian.raw
  sha256sum debian.raw
  mis export --fresh --size 20G debian:12 big.raw`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := layer.ParseRef(args[0])
			if err != nil {
				return err
			}
			out := args[1]
			var size int64
			if sizeFlag != "" {
				if !freshBuild {
					return errors.New("--size needs --fresh: an exact export has the original's size")
				}
				if size, err = units.ParseSize(sizeFlag); err != nil {
					return fmt.Errorf("--size: %w", err)
				}
			}
			toStdout := out == "-"
			if toStdout && freshBuild {
				return errors.New("--fresh builds the image in place and cannot write to standard output: give a file name")
			}
			if fi, err := os.Lstat(out); err == nil && !toStdout {
				if !fi.Mode().IsRegular() {
					return fmt.Errorf("%s exists and is not a regular file (%s): export writes a new file and never replaces one; to write onto a device or pipe use: mis export %s - > %s", out, fi.Mode().Type(), ref, out)
				}
				if !force {
					return fmt.Errorf("%s exists: pass --force to overwrite it", out)
				}
			}
			r, err := openRepo()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			start := time.Now()
			v, m, err := layer.Load(cmd.Context(), r, ref)
			if err != nil {
				return err
			}
			if v.TreeEdited && !freshBuild {
				return fmt.Errorf("%s was edited as a file tree (committed from a tree clone): no exact image of it ever existed, so it can only be built anew: use mis export --fresh", ref)
			}
			prog := newProgress("export " + ref.String())
			var notes []string
			if toStdout {
				return image.ExportStream(ctx, r, m, os.Stdout, image.ExportOptions{Progress: prog.update})
			}
			if freshBuild {
				err = fresh.Export(ctx, r, m, out, fresh.Options{Size: size, Progress: prog.update,
					Warn: func(msg string) { notes = append(notes, msg) }})
			} else {
				err = image.Export(ctx, r, m, out, image.ExportOptions{Progress: prog.update})
			}
			prog.finish()
			for _, msg := range notes {
				fmt.Fprintln(os.Stderr, "note:", msg)
			}
			if err != nil {
				return fmt.Errorf("export %s to %s: %w", ref, out, err)
			}
			elapsed := time.Since(start)
			if g.json {
				return printJSON(map[string]any{"version": v, "out": out, "seconds": elapsed.Seconds()})
			}
			exact := "exact copy of the imported image"
			switch {
			case freshBuild:
				exact = "freshly built"
			case !m.Exact:
				exact = "free space zeroed (imported with --discard-free)"
			case v.Unverified:
				exact = "not verified exact (imported with --trust-metadata)"
			}
			fmt.Printf("exported %s to %s: %s, %s, in %s\n", ref, out, units.Bytes(max(m.DiskSize, size)), exact, units.Duration(elapsed))
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "overwrite OUT if it exists")
	cmd.Flags().BoolVar(&freshBuild, "fresh", false, "build a new image (new filesystems, same files) instead of an exact copy")
	cmd.Flags().StringVar(&sizeFlag, "size", "", "with --fresh: the new disk size (e.g. 20G); the last partition grows")
	return cmd
}

func newLsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "ls [NAME]",
		Short: "List images and their versions",
		Long: `List every NAME:TAG with its disk size, file count, import date and whether
it exports as an exact copy of what was imported.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := openRepo()
			if err != nil {
				return err
			}
			var tags []layer.Tagged
			if err := r.View(cmd.Context(), func(tx *repo.Tx) error {
				tags, err = layer.List(tx)
				return err
			}); err != nil {
				return err
			}
			if len(args) == 1 {
				kept := tags[:0]
				for _, t := range tags {
					if t.Ref.Name == args[0] {
						kept = append(kept, t)
					}
				}
				tags = kept
			}
			if g.json {
				type row struct {
					Name    string         `json:"name"`
					Tag     string         `json:"tag"`
					Version *layer.Version `json:"version"`
				}
				rows := []row{}
				for _, t := range tags {
					rows = append(rows, row{t.Ref.Name, t.Ref.Tag, t.Version})
				}
				return printJSON(rows)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME:TAG\tSIZE\tFILES\tADDED\tIMPORTED\tEXACT")
			for _, t := range tags {
				v := t.Version
				exact := v.Exactness()
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", t.Ref, units.Bytes(v.DiskSize), v.Files,
					units.Bytes(v.AddedStored), v.Created.Local().Format("2006-01-02 15:04"), exact)
			}
			return tw.Flush()
		},
	}
}

func newInfoCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "info NAME[:TAG]",
		Short: "Show a version's disk geometry, partitions, filesystems and sizes",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := layer.ParseRef(args[0])
			if err != nil {
				return err
			}
			r, err := openRepo()
			if err != nil {
				return err
			}
			v, m, err := layer.Load(cmd.Context(), r, ref)
			if err != nil {
				return err
			}
			residual, zero := m.ResidualBytes()
			if g.json {
				fss := []map[string]any{}
				for _, fs := range m.Filesystems {
					fss = append(fss, map[string]any{"partition": fs.PartIndex, "type": fs.Type, "uuid": fs.UUID,
						"label": string(fs.Label), "block_size": fs.BlockSize, "files": len(fs.Files), "content_bytes": fs.ContentBytes()})
				}
				return printJSON(map[string]any{"version": v, "layout": m.Layout, "filesystems": fss,
					"residual_bytes": residual, "zero_bytes": zero, "warnings": image.LayoutWarnings(m)})
			}
			fmt.Printf("%s (version %s)\n", ref, v.ID)
			fmt.Printf("  imported   %s from %s\n", v.Created.Local().Format(time.RFC3339), v.Source)
			if v.Parent != "" {
				fmt.Printf("  parent     version %s\n", v.Parent)
			}
			if v.TreeEdited {
				fmt.Printf("  exact      no: committed from a tree clone; export with --fresh\n")
			} else if v.Unverified {
				fmt.Printf("  exact      unverified: imported with --trust-metadata, files whose inodes looked unchanged were taken from the parent unread\n")
			} else if m.Exact {
				fmt.Printf("  exact      yes: exports identical to the imported image\n")
			} else {
				fmt.Printf("  exact      no: free space was discarded at import\n")
			}
			table := strings.ToUpper(m.Layout.Kind) + " partition table"
			if m.Layout.Kind == "none" {
				table = "no partition table (bare filesystem)"
			}
			fmt.Printf("  disk       %s (%d bytes), %s", units.Bytes(m.DiskSize), m.DiskSize, table)
			if m.Layout.DiskGUID != "" {
				fmt.Printf(", disk GUID %s", m.Layout.DiskGUID)
			}
			if m.Layout.Signature != 0 {
				fmt.Printf(", signature 0x%08x", m.Layout.Signature)
			}
			fmt.Println()
			walked := map[int]*manifest.Filesystem{}
			for i := range m.Filesystems {
				walked[m.Filesystems[i].PartIndex] = &m.Filesystems[i]
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "  PART\tSTART\tSIZE\tTYPE\tNAME\tFILESYSTEM\tSTORED AS")
			for _, p := range m.Layout.Partitions {
				how := "residual (whole partition, not walked)"
				if fs := walked[p.Index]; fs != nil {
					how = fmt.Sprintf("%d files, %s content", len(fs.Files), units.Bytes(fs.ContentBytes()))
					if !strings.HasPrefix(fs.Type, "ext") {
						// Files are listed (and chunked for mounts and dedup),
						// but export takes the partition's bytes from the residual.
						how = fmt.Sprintf("residual, %d files listed (%s)", len(fs.Files), units.Bytes(fs.ContentBytes()))
					}
				}
				fs := p.Filesystem
				if fs == "" {
					fs = "unknown"
				}
				fmt.Fprintf(tw, "  %d\t%d\t%s\t%s\t%s\t%s\t%s\n", p.Index, p.Start, units.Bytes(p.Size), p.Type, p.Name, fs, how)
			}
			tw.Flush()
			for _, fs := range m.Filesystems {
				fmt.Printf("  p%d: %s uuid %s label %q, %d-byte blocks, %d-byte inodes\n", fs.PartIndex, fs.Type, fs.UUID, fs.Label, fs.BlockSize, fs.InodeSize)
			}
			fmt.Printf("  residual   %s of data, %s of zeros (stored as nothing)\n", units.Bytes(residual), units.Bytes(zero))
			for _, w := range image.LayoutWarnings(m) {
				fmt.Printf("  warning    partition table: %s\n", w)
			}
			fmt.Printf("  added      %s raw, %s stored, %d new chunks at import\n", units.Bytes(v.AddedRaw), units.Bytes(v.AddedStored), v.AddedChunks)
			return nil
		},
	}
}
