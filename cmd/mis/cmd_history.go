package main

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"mis/catalog"
	"mis/internal/units"
	"mis/layer"
	"mis/repo"
)

// Version history commands: tag, rm, log, diff, gc.

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
			cat, err := openCatalog()
			if err != nil {
				return err
			}
			if kind := cat.CloneKind(args[0]); kind != catalog.KindNone {
				return removeClone(cat, args[0])
			}
			ref, err := layer.ParseRef(args[0])
			if err != nil {
				return err
			}
			w, err := openWriter(cmd.Context(), cat.Repo(), "mis rm "+args[0])
			if err != nil {
				return err
			}
			defer w.Close()
			res, err := cat.RemoveVersion(cmd.Context(), w, ref)
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
					v.Created.Local().Format(time.DateTime), units.Bytes(v.DiskSize), v.Files,
					units.Bytes(v.AddedRaw), units.Bytes(v.AddedStored), stored)
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
			_, ma, err := layer.Load(cmd.Context(), r, ra)
			if err != nil {
				return err
			}
			_, mb, err := layer.Load(cmd.Context(), r, rb)
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
			cat, err := openCatalog()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			w, err := openWriter(ctx, cat.Repo(), "mis gc")
			if err != nil {
				return err
			}
			defer w.Close()
			start := time.Now()
			plan, err := cat.PlanGC(ctx, w, repo.GCOptions{})
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
				rep.DeadChunks, units.Bytes(rep.DeadStoredBytes), rep.PacksRewritten, rep.PacksDeleted, rep.PacksWritten,
				units.Bytes(rep.PackBytesBefore), units.Bytes(rep.PackBytesAfter), verb, units.Bytes(rep.Freed()),
				elapsed.Round(time.Millisecond))
			return nil
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan (each pack gc would rewrite or remove) without changing anything")
	return cmd
}

// removeClone is mis rm CLONE.
func removeClone(cat *catalog.Catalog, name string) error {
	kind, err := cat.RemoveClone(name)
	if err != nil {
		return err
	}
	if g.json {
		if kind == catalog.KindTreeClone {
			return printJSON(map[string]any{"tree_clone": name, "removed": true})
		}
		return printJSON(map[string]any{"clone": name, "removed": true})
	}
	if kind == catalog.KindTreeClone {
		fmt.Printf("removed tree clone %s and its edits\n", name)
	} else {
		fmt.Printf("removed clone %s and its delta\n", name)
	}
	return nil
}

func newForgetCmd() *cobra.Command {
	var p catalog.Policy
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "forget NAME --keep-... [--dry-run]",
		Short: "Remove the versions of an image that a keep policy does not name, then free their space",
		Long: `Decide, for every tag of image NAME, whether a rule keeps it, remove the
tags (and versions) no rule keeps, then run gc. The rules, as restic's:

  --keep-last N      the N newest versions
  --keep-daily N     the newest version of each of the last N days that have one
  --keep-weekly N    ... of the last N ISO weeks, --keep-monthly N months,
  --keep-yearly N    ... years (days and weeks in local time)
  --keep-tag T       every version whose tag matches T (a shell pattern; repeatable)

A version a rule keeps is kept under all its tags. A version that a clone is
based on, or that is mounted, is always kept. At least one rule is needed.
--dry-run prints the decisions and changes nothing.`,
		Example: `  mis forget debian --keep-last 3 --keep-monthly 12 --dry-run
  mis forget web --keep-daily 7 --keep-weekly 4 --keep-tag 'release-*'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cat, err := openCatalog()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			w, err := openWriter(ctx, cat.Repo(), "mis forget "+args[0])
			if err != nil {
				return err
			}
			defer w.Close()
			res, err := cat.Forget(ctx, w, args[0], p, dryRun)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(res)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME:TAG\tCREATED\tDECISION\tWHY")
			for _, d := range res.Decisions {
				what := "remove"
				if d.Keep {
					what = "keep"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", d.Ref, d.Version.Created.Local().Format(time.DateTime), what, strings.Join(d.Reasons, "; "))
			}
			tw.Flush()
			if dryRun {
				fmt.Println("dry run: nothing removed")
				return nil
			}
			fmt.Printf("removed %d tag(s)", len(res.Removed))
			if res.GC != nil {
				fmt.Printf("; gc freed %s", units.Bytes(res.GC.Freed()))
			}
			fmt.Println()
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&p.Last, "keep-last", 0, "keep the N newest versions")
	f.IntVar(&p.Daily, "keep-daily", 0, "keep the newest version of each of the last N days")
	f.IntVar(&p.Weekly, "keep-weekly", 0, "keep the newest version of each of the last N ISO weeks")
	f.IntVar(&p.Monthly, "keep-monthly", 0, "keep the newest version of each of the last N months")
	f.IntVar(&p.Yearly, "keep-yearly", 0, "keep the newest version of each of the last N years")
	f.StringArrayVar(&p.Tags, "keep-tag", nil, "keep versions whose tag matches this shell pattern (repeatable)")
	f.BoolVar(&dryRun, "dry-run", false, "print the decisions, change nothing")
	return cmd
}
