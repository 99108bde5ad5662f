package repo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"mis/chunker"
	"mis/internal/durable"
)

// FormatVersion is the repository format this package reads and writes.
const FormatVersion = 1

// DefaultPackTargetSize is the size at which the writer seals a pack.
const DefaultPackTargetSize = 32 << 20

// Zstd levels accepted in Config.ZstdLevel. They name klauspost/compress
// encoder levels rather than zstd's numeric ones, because that library
// implements only these four.
const (
	ZstdFastest = "fastest"
	ZstdDefault = "default"
	ZstdBetter  = "better"
	ZstdBest    = "best"
)

// Config is the content of config.json. It is written once by Init.
type Config struct {
	FormatVersion  int            `json:"format_version"`
	ID             string         `json:"id"`
	Created        time.Time      `json:"created"`
	Chunker        chunker.Params `json:"chunker"`
	PackTargetSize int64          `json:"pack_target_size"`
	ZstdLevel      string         `json:"zstd_level"`
}

// InitOptions choose the parameters of a new repository; zero fields take
// the defaults.
type InitOptions struct {
	Chunker        chunker.Params
	PackTargetSize int64
	ZstdLevel      string
	// PackStore, if set, is the store the repository's packs will live in
	// (pass the same one to Open). Init refuses a store that already holds
	// packs: the first writer would index them as this repository's own.
	// Default: the local directory DIR/packs.
	PackStore PackStore
}

const (
	configName = "config.json"
	lockName   = "lock"
	metaDir    = "meta"
	packsDir   = "packs"
)

func (c Config) validate() error {
	if err := c.Chunker.Validate(); err != nil {
		return err
	}
	if c.PackTargetSize < 1<<20 || c.PackTargetSize > 1<<30 {
		return fmt.Errorf("pack_target_size %d is outside 1 MiB..1 GiB", c.PackTargetSize)
	}
	if _, err := zstdLevel(c.ZstdLevel); err != nil {
		return err
	}
	return nil
}

// Init creates a repository in dir, which must not exist, be empty, or
// at least hold no config.json and nothing else.
func Init(dir string, opt InitOptions) error {
	cfg := Config{
		FormatVersion:  FormatVersion,
		Created:        time.Now().UTC().Truncate(time.Second),
		Chunker:        opt.Chunker,
		PackTargetSize: opt.PackTargetSize,
		ZstdLevel:      opt.ZstdLevel,
	}
	if cfg.Chunker == (chunker.Params{}) {
		cfg.Chunker = chunker.DefaultParams()
	}
	if cfg.PackTargetSize == 0 {
		cfg.PackTargetSize = DefaultPackTargetSize
	}
	if cfg.ZstdLevel == "" {
		cfg.ZstdLevel = ZstdFastest
	}
	if err := cfg.validate(); err != nil {
		return fmt.Errorf("init %s: %w", dir, err)
	}
	if opt.PackStore != nil {
		if err := checkEmptyStore(opt.PackStore); err != nil {
			return fmt.Errorf("init %s: %w", dir, err)
		}
	}
	var idBytes [16]byte
	if _, err := rand.Read(idBytes[:]); err != nil {
		return err
	}
	cfg.ID = hex.EncodeToString(idBytes[:])

	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, DirMode); err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		for _, e := range entries {
			if e.Name() == configName {
				return fmt.Errorf("%s is already a mis repository", dir)
			}
		}
		if len(entries) > 0 {
			return fmt.Errorf("cannot init %s: directory is not empty and is not a mis repository", dir)
		}
	}
	for _, d := range []string{metaDir, packsDir, filepath.Join(packsDir, tmpDirName)} {
		if err := os.MkdirAll(filepath.Join(dir, d), DirMode); err != nil {
			return err
		}
	}
	// The repository is private (modes.go), also when dir existed (empty).
	if err := os.Chmod(dir, DirMode); err != nil {
		return err
	}
	// Create the Badger database now, so that read-only opens work on a
	// repository that has never been written to.
	db, err := openBadger(filepath.Join(dir, metaDir), false)
	if err != nil {
		return fmt.Errorf("init %s: create metadata: %w", dir, err)
	}
	if err := closeRW(db, filepath.Join(dir, metaDir)); err != nil {
		return fmt.Errorf("init %s: create metadata: %w", dir, err)
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	// config.json goes last: its presence is what makes dir a repository.
	return durable.WriteFile(filepath.Join(dir, configName), append(data, '\n'), FileMode)
}

// checkEmptyStore fails if s holds any pack.
func checkEmptyStore(s PackStore) error {
	errNotEmpty := errors.New("the pack store already holds packs")
	err := s.List(context.Background(), func(string, int64) error { return errNotEmpty })
	if err != nil && err != errNotEmpty {
		return fmt.Errorf("list pack store: %w", err)
	}
	return err
}

// Repo is an open repository. Opening reads only config.json; the
// metadata database is opened per session (View, Writer).
type Repo struct {
	dir   string
	cfg   Config
	packs PackStore
}

// An Option changes how Open opens a repository.
type Option func(*Repo)

// WithPackStore makes the repository keep its packs in s instead of the
// local directory DIR/packs. Every process opening the repository must
// pass the same store.
func WithPackStore(s PackStore) Option {
	return func(r *Repo) { r.packs = s }
}

// Open opens the repository in dir.
func Open(dir string, opts ...Option) (*Repo, error) {
	data, err := os.ReadFile(filepath.Join(dir, configName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s is not a mis repository (no %s)", dir, configName)
	}
	if err != nil {
		return nil, err
	}
	var cfg Config
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("%s: %s is damaged: %v", dir, configName, err)
	}
	if cfg.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("%s: repository format version %d is not supported by this mis (supports %d)",
			dir, cfg.FormatVersion, FormatVersion)
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", dir, configName, err)
	}
	r := &Repo{dir: dir, cfg: cfg}
	for _, o := range opts {
		o(r)
	}
	if r.packs == nil {
		r.packs = NewLocalPackStore(filepath.Join(dir, packsDir))
	}
	return r, nil
}

// Config returns the repository configuration.
func (r *Repo) Config() Config { return r.cfg }

// Dir returns the repository directory.
func (r *Repo) Dir() string { return r.dir }

// Packs returns the pack storage.
func (r *Repo) Packs() PackStore { return r.packs }
