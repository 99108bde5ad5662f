package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"mis/catalog"
	"mis/chunker"
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
				humanBytes(int64(c.Chunker.Min)), humanBytes(int64(c.Chunker.Avg)), humanBytes(int64(c.Chunker.Max)))
			return nil
		},
	}
	cmd.Flags().IntVar(&p.Min, "chunk-min", p.Min, "minimum chunk size in bytes")
	cmd.Flags().IntVar(&p.Avg, "chunk-avg", p.Avg, "average chunk size in bytes (a power of two)")
	cmd.Flags().IntVar(&p.Max, "chunk-max", p.Max, "maximum chunk size in bytes")
	return cmd
}

func newVerifyCmd() *cobra.Command {
	var readData bool
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check that every version's chunks are present (and, with --read-data, intact)",
		Long: `Check the repository: every chunk that a version uses must be in the index and
inside an existing pack, and every pack must be indexed. With --read-data, every
chunk of every pack is also read, decompressed and re-hashed; each damaged chunk
is named with the versions that use it.

Exit status: 0 when clean, 1 when problems were found, 2 when verify could not run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := openRepo()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			prog := newProgress("verify")
			var manifestProblems []string
			rep, err := r.Verify(ctx, repo.VerifyOptions{
				ReadData: readData,
				Refs: func(yield func(owner string, id chunker.ID) error) error {
					var err error
					manifestProblems, err = layer.ForEachRef(ctx, r, yield)
					return err
				},
				Progress: prog.update,
			})
			prog.finish()
			if err != nil {
				return exitError{2, err.Error()}
			}
			var problems, notes []string
			problems = append(problems, manifestProblems...)
			for _, p := range rep.Problems {
				if p.Harmless {
					notes = append(notes, p.String())
				} else {
					problems = append(problems, p.String())
				}
			}
			if g.json {
				if err := printJSON(map[string]any{"ok": len(problems) == 0, "problems": problems, "notes": notes,
					"packs": rep.Packs, "chunks": rep.Chunks, "refs": rep.Refs, "bytes_read": rep.BytesRead}); err != nil {
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
					rep.Packs, rep.Chunks, rep.Refs, humanBytes(rep.BytesRead), what, len(problems))
			}
			if len(problems) > 0 {
				return exitError{1, ""}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&readData, "read-data", false, "read, decompress and re-hash every chunk")
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
			fmt.Printf("logical bytes:      %s (%d)\n", humanBytes(out.LogicalBytes), out.LogicalBytes)
			fmt.Printf("unique bytes:       %s (%d)\n", humanBytes(out.UniqueBytes), out.UniqueBytes)
			fmt.Printf("stored bytes:       %s (%d) in %d packs\n", humanBytes(out.PackBytes), out.PackBytes, out.Packs)
			fmt.Printf("chunks:             %d\n", out.Chunks)
			fmt.Printf("dedup ratio:        %.2fx (logical / unique)\n", out.DedupRatio)
			fmt.Printf("compression ratio:  %.2fx (unique / stored chunk bytes)\n", out.CompressionRatio)
			fmt.Printf("overall:            %.2fx (logical / stored)\n", out.TotalRatio)
			if out.UnreferencedStoredBytes > 0 {
				fmt.Printf("unreferenced:       %s in chunks no version uses (mis gc frees them)\n", humanBytes(out.UnreferencedStoredBytes))
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
			humanBytes(v.Version.DiskSize), v.Chunks, humanBytes(v.UniqueStored), humanBytes(v.SharedStored))
	}
	fmt.Println("(alone: stored bytes only this version uses, freed by mis rm + mis gc; shared: stored bytes other versions use too)")
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func humanDuration(d time.Duration) string {
	return d.Round(10 * time.Millisecond).String()
}
