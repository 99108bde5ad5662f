package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"mis/catalog"
	"mis/chunker"
	"mis/internal/units"
	"mis/layer"
	"mis/repo"
)

func newInitCmd() *cobra.Command {
	p := chunker.DefaultParams()
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a new repository",
		Long: `Create a new, empty repository in the --repo directory (created if missing).

The chunker sizes are fixed for the life of the repository and recorded in its
config.json, so every writer cuts data the same way and dedups against it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opt := repo.InitOptions{Chunker: p}
			if err := repo.Init(g.repoDir, opt); err != nil {
				return err
			}
			r, err := repo.Open(g.repoDir)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(r.Config())
			}
			c := r.Config()
			fmt.Printf("created repository %s at %s (format %d, chunks %s/%s/%s)\n", c.ID, g.repoDir, c.FormatVersion,
				units.Bytes(int64(c.Chunker.Min)), units.Bytes(int64(c.Chunker.Avg)), units.Bytes(int64(c.Chunker.Max)))
			return nil
		},
	}
	cmd.Flags().IntVar(&p.Min, "chunk-min", p.Min, "minimum chunk size in bytes")
	cmd.Flags().IntVar(&p.Avg, "chunk-avg", p.Avg, "average chunk size in bytes (a power of two)")
	cmd.Flags().IntVar(&p.Max, "chunk-max", p.Max, "maximum chunk size in bytes")
	return cmd
}

func newVerifyCmd() *cobra.Command {
	var readData, repair, dropBroken bool
	cmd := &cobra.Command{
		Use:   "verify [--read-data] [--repair [--drop-broken]]",
		Short: "Check that every version's chunks are present (and, with --read-data, intact); --repair fixes what it can",
		Long: `Check the repository: every chunk that a version uses must be in the index and
inside an existing pack, and every pack must be indexed. With --read-data, every
chunk of every pack is also read, decompressed and re-hashed; each damaged chunk
is named with the versions that use it. The metadata database (Badger) is
checked before it is opened: a damaged one is reported, not opened; tables its
MANIFEST does not name (a crash leaves those, and so does damage) are copied to
REPO/damaged/meta-TIME first, because Badger deletes them at any open.

--repair (a writer: it takes the writer lock and honours --wait) then mends the
repository and verifies it again:
  - a metadata database Badger cannot open is moved to REPO/damaged/meta-TIME and
    a new one is made; when it only looks suspicious (tables its MANIFEST does not
    name: a crash leaves those too), a copy is kept there before Badger cleans up;
  - the chunk index is rebuilt from the packs' trailers: unindexed packs are
    indexed, entries of chunks whose pack is gone are removed, and a chunk that is
    still in another pack (a duplicate) is re-linked to it;
  - a damaged pack (truncated, or with --read-data any wrong byte) is salvaged:
    the chunks that still verify are copied into a new pack, and the pack is moved
    to REPO/damaged/NAME.pack;
  - versions the metadata database lost are restored from their record files
    (REPO/versions/ID.json) with the NAME:TAG they were created as (tags added
    later with mis tag are not restored);
  - the versions whose data is gone are listed, with the clones and mounts that
    hold them.
--drop-broken (only with --repair) also removes those versions, saying each one,
except a version a clone or a mount holds: remove the clone (or unmount) and run
it again. Nothing else is removed; mis gc then frees the space of dropped versions.

  mis verify                         fast: index and references
  mis verify --read-data             also re-hash every chunk
  mis verify --repair                rebuild the index, report what is lost
  mis verify --repair --drop-broken  ... and remove the versions that cannot be read

Exit status: 0 when clean (after --repair: when the repaired repository verifies
clean), 1 when problems were found (or remain), 2 when verify or repair could
not run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if dropBroken && !repair {
				return exitError{2, "--drop-broken removes versions and only runs with --repair"}
			}
			r, err := openRepo()
			if err != nil {
				return exitError{2, err.Error()}
			}
			ctx := cmd.Context()
			var repaired *catalog.Repaired
			if repair {
				prog := newProgress("repair")
				repaired, err = catalog.Open(r).Repair(ctx, catalog.RepairOptions{
					Holder: "mis verify --repair", Wait: g.wait, ReadData: readData, DropBroken: dropBroken,
					OnWait: func(msg string) {
						if !g.quiet {
							fmt.Fprintf(os.Stderr, "mis: %s; waiting up to %s\n", msg, g.wait)
						}
					},
					Progress: prog.update,
				})
				prog.finish()
				if repaired != nil && !g.json {
					for _, line := range repaired.Lines(dropBroken) {
						fmt.Println("repair:", line)
					}
				}
				if err != nil {
					return exitError{2, "repair: " + err.Error()}
				}
			}
			prog := newProgress("verify")
			res, err := catalog.Open(r).Verify(ctx, readData, prog.update)
			prog.finish()
			if err != nil {
				return exitError{2, err.Error()}
			}
			rep, problems, notes := res.Report, res.Problems, res.Notes
			if g.json {
				out := map[string]any{"ok": len(problems) == 0, "problems": problems, "notes": notes,
					"packs": rep.Packs, "chunks": rep.Chunks, "refs": rep.Refs, "bytes_read": rep.BytesRead}
				if repaired != nil {
					out["repair"] = repaired
				}
				if err := printJSON(out); err != nil {
					return err
				}
			} else {
				for _, p := range problems {
					fmt.Println(p)
				}
				for _, n := range notes {
					fmt.Fprintln(os.Stderr, "note:", n)
				}
				what := "references checked"
				if readData {
					what = "references checked, every chunk re-read and re-hashed"
				}
				fmt.Fprintf(os.Stderr, "verify: %d packs, %d chunks, %d references, %s read: %s; %d problem(s)\n",
					rep.Packs, rep.Chunks, rep.Refs, units.Bytes(rep.BytesRead), what, len(problems))
				if len(problems) > 0 && !repair {
					fmt.Fprintln(os.Stderr, "verify: mis verify --repair rebuilds the index from the packs and lists the versions that lost data")
				}
			}
			if len(problems) > 0 {
				return exitError{1, ""}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&readData, "read-data", false, "read, decompress and re-hash every chunk (with --repair: salvage packs with any damaged byte)")
	cmd.Flags().BoolVar(&repair, "repair", false, "take the writer lock and repair: rebuild the chunk index from the packs, salvage damaged packs, restore lost versions from their record files, report the versions whose data is gone")
	cmd.Flags().BoolVar(&dropBroken, "drop-broken", false, "with --repair: remove the versions whose data is gone (not those a clone or mount holds)")
	return cmd
}

func newStatsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "stats",
		Short: "Show logical, unique and stored bytes and the dedup and compression ratios",
		Long: `Show how much the repository holds:
  logical  the bytes of every version's disk image (apparent size), summed
  unique   the raw bytes of the distinct chunks stored
  stored   the bytes of the pack files on disk
The dedup ratio is logical over unique bytes (zero runs, which cost nothing,
count as deduplicated); the compression ratio is unique over stored chunk bytes;
overall is logical over stored.

Then, per version (oldest first), the chunks it uses split into the bytes it
alone holds (what removing it and running gc would free) and the bytes it
shares with other versions, both as stored (compressed) bytes. This reads
every version's manifest.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := openRepo()
			if err != nil {
				return err
			}
			out, err := catalog.Open(r).Stats(cmd.Context())
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(out)
			}
			fmt.Printf("versions:           %d\n", out.Versions)
			fmt.Printf("logical bytes:      %s (%d)\n", units.Bytes(out.LogicalBytes), out.LogicalBytes)
			fmt.Printf("unique bytes:       %s (%d)\n", units.Bytes(out.UniqueBytes), out.UniqueBytes)
			fmt.Printf("stored bytes:       %s (%d) in %d packs\n", units.Bytes(out.PackBytes), out.PackBytes, out.Packs)
			fmt.Printf("chunks:             %d\n", out.Chunks)
			fmt.Printf("dedup ratio:        %.2fx (logical / unique)\n", out.DedupRatio)
			fmt.Printf("compression ratio:  %.2fx (unique / stored chunk bytes)\n", out.CompressionRatio)
			fmt.Printf("overall:            %.2fx (logical / stored)\n", out.TotalRatio)
			if out.UnreferencedStoredBytes > 0 {
				fmt.Printf("unreferenced:       %s in chunks no version uses (mis gc frees them)\n", units.Bytes(out.UnreferencedStoredBytes))
			}
			if out.MissingChunks > 0 {
				fmt.Printf("missing:            %d referenced chunks are not in the index (run mis verify)\n", out.MissingChunks)
			}
			printUsageTable(out.PerVersion)
			return nil
		},
	}
}

// printUsageTable prints each version's own and shared stored bytes.
func printUsageTable(versions []layer.VersionUsage) {
	if len(versions) == 0 {
		return
	}
	fmt.Println()
	w := 7
	for _, v := range versions {
		w = max(w, len(strings.Join(v.Refs, ",")), len(v.Label()))
	}
	fmt.Printf("%-*s  %-10s  %10s  %8s  %11s  %11s\n", w, "version", "created", "disk", "chunks", "alone", "shared")
	for _, v := range versions {
		name := strings.Join(v.Refs, ",")
		if name == "" {
			name = v.Label()
		}
		fmt.Printf("%-*s  %-10s  %10s  %8d  %11s  %11s\n", w, name, v.Version.Created.Local().Format("2006-01-02"),
			units.Bytes(v.Version.DiskSize), v.Chunks, units.Bytes(v.UniqueStored), units.Bytes(v.SharedStored))
	}
	fmt.Println("(alone: stored bytes only this version uses, freed by mis rm + mis gc; shared: stored bytes other versions use too)")
}
