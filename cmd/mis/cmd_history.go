package main

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"mis/layer"
	"mis/repo"
)

// Version history commands: tag, rm, log, diff, gc. The lead registers
// newTagCmd, newRmCmd, newLogCmd, newDiffCmd and newGcCmd in root.go.

func newTagCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "tag NAME:TAG NEWNAME:NEWTAG",
		Short: "Give a version another name (no data is copied)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := layer.ParseRef(args[0])
			if err != nil {
				return err
			}
			dst, err := layer.ParseRef(args[1])
			if err != nil {
				return err
			}
			r, err := openRepo()
			if err != nil {
				return err
			}
			w, err := openWriter(cmd.Context(), r, "mis tag "+args[0]+" "+args[1])
			if err != nil {
				return err
			}
			defer w.Close()
			v, err := layer.Tag(cmd.Context(), w, src, dst)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(map[string]any{"ref": dst.String(), "id": v.ID, "source": src.String()})
			}
			fmt.Printf("tagged %s as %s (version %s)\n", src, dst, v.ID)
			return nil
		},
	}
}

func newRmCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rm NAME:TAG|CLONE",
		Short: "Remove a tag (and its version when no other tag names it) or a clone; run mis gc to free space",
		Long: `Remove the tag NAME:TAG. When no other tag points at its version, the version
record is removed too. No space is freed until mis gc runs.

Versions stored as layers on the removed one stay readable: in the same commit
that removes it, their layers are rebased onto its own base (or stored whole
when it was stored whole). Their parent field then names a version that no
longer exists.

A version that clones are based on is not removed (rm lists the clones);
removing another tag of it is fine. mis rm CLONE removes a clone and its
delta (not while it is mounted).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if isTreeClone(args[0]) {
				return removeTreeClone(args[0])
			}
			if isCloneName(args[0]) {
				return removeClone(args[0])
			}
			ref, err := layer.ParseRef(args[0])
			if err != nil {
				return err
			}
			r, err := openRepo()
			if err != nil {
				return err
			}
			w, err := openWriter(cmd.Context(), r, "mis rm "+args[0])
			if err != nil {
				return err
			}
			defer w.Close()
			st, err := cloneStore()
			if err != nil {
				return err
			}
			var res *layer.Removed
			err = st.Locked(func() error { // no clone of it is made meanwhile
				if err := refuseCloneBase(cmd.Context(), w, st, ref); err != nil {
					return err
				}
				res, err = layer.Remove(cmd.Context(), w, ref)
				return err
			})
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(res)
			}
			switch {
			case res.VersionRemoved:
				fmt.Printf("removed %s and its version %s; run mis gc to free space\n", ref, res.ID)
			default:
				fmt.Printf("removed tag %s; version %s is still named %s\n", ref, res.ID, strings.Join(res.OtherTags, ", "))
			}
			if res.VersionRemoved && len(res.Children) > 0 {
				fmt.Printf("note: %d version(s) name it as parent (%s); their layers were rebased and they stay readable\n",
					len(res.Children), strings.Join(res.Children, ", "))
			}
			return nil
		},
	}
}

func newLogCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "log NAME",
		Short: "List the versions of an image, oldest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := openRepo()
			if err != nil {
				return err
			}
			var hist []layer.HistoryEntry
			if err := r.View(cmd.Context(), func(tx *repo.Tx) error {
				hist, err = layer.History(tx, args[0])
				return err
			}); err != nil {
				return err
			}
			if g.json {
				return printJSON(hist)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME:TAG\tVERSION\tPARENT\tCREATED\tSIZE\tFILES\tADDED RAW\tADDED STORED\tSTORED AS")
			for _, h := range hist {
				v := h.Version
				parent := h.ParentRef
				if parent == "" {
					parent = "-"
				}
				// How the manifest is stored: whole, or a layer N deep.
				stored := "whole"
				if v.Base != "" {
					stored = fmt.Sprintf("layer %d", v.Depth)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", h.Ref, v.ID, parent,
					v.Created.Local().Format(time.DateTime), humanBytes(v.DiskSize), v.Files,
					humanBytes(v.AddedRaw), humanBytes(v.AddedStored), stored)
			}
			return tw.Flush()
		},
	}
}

func newDiffCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "diff A B",
		Short: "List the paths added, removed and changed from version A to version B",
		Long: `Compare two versions' files, filesystem by filesystem (matched by partition
index), path by path. For a changed path it says what changed: type, content,
size, mode, owner, xattrs, symlink, rdev, hardlinks, nlink, flags, mtime, ctime,
atime, crtime.

Text output: one line per path, "+" added, "-" removed, "~" changed, with
p<partition index> and the path (Go-quoted when not printable UTF-8).
JSON output: "path" is the raw path bytes in base64, "display" the text form.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ra, err := layer.ParseRef(args[0])
			if err != nil {
				return err
			}
			rb, err := layer.ParseRef(args[1])
			if err != nil {
				return err
			}
			r, err := openRepo()
			if err != nil {
				return err
			}
			_, ma, err := loadVersion(cmd, r, ra)
			if err != nil {
				return err
			}
			_, mb, err := loadVersion(cmd, r, rb)
			if err != nil {
				return err
			}
			changes := layer.Diff(ma, mb)
			if g.json {
				if changes == nil {
					changes = []layer.Change{}
				}
				return printJSON(changes)
			}
			mark := map[string]string{layer.ChangeAdded: "+", layer.ChangeRemoved: "-", layer.ChangeChanged: "~"}
			for _, c := range changes {
				line := fmt.Sprintf("%s p%d %s", mark[c.Kind], c.Part, c.Display)
				if len(c.What) > 0 {
					line += "  (" + strings.Join(c.What, ", ") + ")"
				}
				fmt.Println(line)
			}
			if !g.quiet {
				fmt.Fprintf(os.Stderr, "%d path(s) differ\n", len(changes))
			}
			return nil
		},
	}
}

func newGcCmd() *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Free the space of chunks no version uses any more",
		Long: `Delete the index entries of chunks no version references and rewrite packs
that are less than half live (or small with any dead chunk), then delete the
old packs. gc is a writer: it fails while an import or another writer runs.
Exports and mounts running meanwhile follow chunks to their new packs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := openRepo()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			w, err := openWriter(ctx, r, "mis gc")
			if err != nil {
				return err
			}
			defer w.Close()
			start := time.Now()
			plan, err := w.PlanGC(ctx, cloneBasesLive(ctx, r, layer.LiveChunks(ctx, r)), repo.GCOptions{})
			if err != nil {
				return err
			}
			rep := plan.Report
			if !dryRun {
				if rep, err = w.ExecuteGC(ctx, plan); err != nil {
					return err
				}
			}
			if err := w.Close(); err != nil {
				return err
			}
			elapsed := time.Since(start)
			if g.json {
				out := map[string]any{"report": rep, "freed_bytes": rep.Freed(), "seconds": elapsed.Seconds()}
				if dryRun {
					out["plan"] = plan
				}
				return printJSON(out)
			}
			verb := "freed"
			if dryRun {
				verb = "would free"
				fmt.Print(plan)
			}
			fmt.Printf("gc: %d unreferenced chunk(s) (%s stored), %d pack(s) rewritten, %d removed, %d written; packs %s -> %s: %s %s in %s\n",
				rep.DeadChunks, humanBytes(rep.DeadStoredBytes), rep.PacksRewritten, rep.PacksDeleted, rep.PacksWritten,
				humanBytes(rep.PackBytesBefore), humanBytes(rep.PackBytesAfter), verb, humanBytes(rep.Freed()),
				elapsed.Round(time.Millisecond))
			return nil
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan (each pack gc would rewrite or remove) without changing anything")
	return cmd
}
