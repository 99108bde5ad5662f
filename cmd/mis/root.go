package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"mis/catalog"
	"mis/repo"
)

// globals are the flags every subcommand shares.
type globals struct {
	repoDir string
	json    bool
	quiet   bool
	wait    time.Duration
}

var g globals

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "mis",
		Short: "mis stores VM disk images deduplicated, and gives them back byte for byte",
		Long: `mis keeps virtual-machine disk images and their versions in one repository.

Each file of each filesystem inside an image is cut into content-defined chunks,
addressed by BLAKE3 and compressed with zstd; every chunk is stored once across
all images and versions. Everything that is not file content (partition tables,
boot code, filesystem metadata, free space) is kept too, so an export gives back
the imported image byte for byte.

  mis init                           create a repository (default: $MIS_REPO or ~/.local/share/mis)
  mis import disk.raw debian:12      store an image as version debian:12
  mis ls                             list images and versions
  mis info debian:12                 partitions, filesystems, files, bytes
  mis export debian:12 out.raw       write the image back
  mis verify --read-data             check every chunk of every version
  mis verify --repair [--drop-broken]   rebuild the index from the packs, list (or drop) versions that lost data
  mis stats                          logical, unique and stored bytes; per version
  mis log debian / diff A B / tag / rm / gc   history: layers, changes, names, cleanup
  mis forget debian --keep-last 3    remove the versions a keep policy does not name, then gc
  mis mount debian:12 /mnt/d         read-only FUSE: /mnt/d/disk.raw and /mnt/d/pN/
  mis clone debian:12 vm1            instant writable clone; mis mount vm1 DIR gives a writable disk.raw
  mis commit vm1 debian:12.1         store a clone's disk as a new version
  mis clone --tree debian:12 web     a clone edited as files (DIR/pN writable); export with --fresh
  mis export --fresh --size 20G debian:12 big.raw   new filesystems, same files, bigger disk`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVarP(&g.repoDir, "repo", "r", defaultRepo(), "repository directory (env MIS_REPO)")
	root.PersistentFlags().BoolVar(&g.json, "json", false, "print machine-readable JSON on stdout")
	root.PersistentFlags().BoolVarP(&g.quiet, "quiet", "q", false, "no progress output")
	root.PersistentFlags().DurationVar(&g.wait, "wait", 0, "if another mis process is writing to the repository, wait up to this long for it (e.g. 10m) instead of failing at once")
	root.AddCommand(newInitCmd(), newImportCmd(), newExportCmd(), newLsCmd(), newInfoCmd(),
		newVerifyCmd(), newStatsCmd(), newMountCmd(), newUmountCmd(), newLogCmd(), newDiffCmd(), newTagCmd(), newRmCmd(), newForgetCmd(), newGcCmd(),
		newCloneCmd(), newClonesCmd(), newCommitCmd())
	return root
}

func defaultRepo() string {
	if d := os.Getenv("MIS_REPO"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "mis")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "mis-repo"
	}
	return filepath.Join(home, ".local", "share", "mis")
}

func openRepo() (*repo.Repo, error) {
	if _, err := os.Stat(g.repoDir); os.IsNotExist(err) {
		return nil, fmt.Errorf("no repository at %s: create one with `mis init` or pick one with --repo/MIS_REPO", g.repoDir)
	}
	return repo.Open(g.repoDir)
}

func openCatalog() (*catalog.Catalog, error) {
	r, err := openRepo()
	if err != nil {
		return nil, err
	}
	return catalog.Open(r), nil
}

// openWriter takes the repository's writer lock, waiting up to --wait for
// another writer (an import, gc, rm) to finish.
func openWriter(ctx context.Context, r *repo.Repo, holder string) (*repo.Writer, error) {
	return r.OpenWriterWait(ctx, holder, g.wait, func(msg string) {
		if !g.quiet {
			fmt.Fprintf(os.Stderr, "mis: %s; waiting up to %s\n", msg, g.wait)
		}
	})
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
