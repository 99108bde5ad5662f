package fresh

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"mis/internal/durable"
	"mis/manifest"
	"mis/mountfs"
	"mis/repo"
)

// Options tunes a fresh export.
type Options struct {
	// Size is the new disk size in bytes; 0 keeps the original size. A
	// bigger size grows the last partition and its filesystem.
	Size int64
	// Progress, if set, is called with bytes done and the total.
	Progress func(done, total int64)
	// Warn receives notes about things that are not rebuilt (partitions
	// copied as they are, attributes a format cannot hold).
	Warn func(string)
}

// Export writes a freshly built disk image of m to out. The image is built
// in a temporary file beside out and renamed into place only when complete
// and synced.
func Export(ctx context.Context, r *repo.Repo, m *manifest.Manifest, out string, opt Options) error {
	p, err := newPlan(m, opt.Size)
	if err != nil {
		return err
	}
	tmp, err := durable.CreateOutput(out, p.diskSize)
	if err != nil {
		return err
	}
	defer tmp.Abort()
	e := &exporter{ctx: ctx, r: r, m: m, p: p, out: tmp.File, opt: opt}
	if err := e.run(); err != nil {
		return err
	}
	return tmp.Commit()
}

type exporter struct {
	ctx context.Context
	r   *repo.Repo
	m   *manifest.Manifest
	p   *plan
	out *os.File
	opt Options

	fs   *mountfs.FS
	mnt  string // where the version's trees are mounted
	done int64
}

func (e *exporter) warn(format string, args ...any) {
	if e.opt.Warn != nil {
		e.opt.Warn(fmt.Sprintf(format, args...))
	}
}

func (e *exporter) progress(n int64) {
	e.done += n
	if e.opt.Progress != nil {
		e.opt.Progress(min(e.done, e.p.total), e.p.total)
	}
}

func (e *exporter) run() error {
	f, err := mountfs.New(e.ctx, e.r, e.m, mountfs.Options{Logger: log.New(os.Stderr, "mis: ", 0), Created: time.Unix(0, 0)})
	if err != nil {
		return err
	}
	defer f.Close()
	e.fs = f
	if e.p.needsTrees() {
		unmount, err := e.mountTrees()
		if err != nil {
			return err
		}
		defer unmount()
	}
	if err := writeTable(e.ctx, e.out.Name(), e.m, e.p); err != nil {
		return err
	}
	for i := range e.p.parts {
		pp := &e.p.parts[i]
		if err := e.ctx.Err(); err != nil {
			return err
		}
		var err error
		switch pp.how {
		case buildExt:
			err = e.buildExt(pp)
		case buildFAT:
			err = e.buildFAT(pp)
		case copyBytes:
			err = e.copyPartition(pp)
		case skipPart:
			continue
		}
		if err != nil {
			return fmt.Errorf("partition %d: %w", pp.part.Index, err)
		}
	}
	if err := e.copyBootCode(); err != nil {
		return err
	}
	if e.opt.Progress != nil {
		e.opt.Progress(e.p.total, e.p.total)
	}
	return nil
}

// mountTrees serves the version's file trees on a private temporary
// directory, so mke2fs -d and mcopy read them straight from the chunks.
func (e *exporter) mountTrees() (func(), error) {
	dir, err := os.MkdirTemp("", "mis-fresh-")
	if err != nil {
		return nil, err
	}
	srv, err := e.fs.Mount(dir, mountfs.MountOptions{FsName: "mis-fresh"})
	if err != nil {
		os.Remove(dir)
		return nil, err
	}
	e.mnt = dir
	return func() {
		if err := srv.Unmount(); err != nil {
			e.warn("unmount %s: %v", dir, err)
		}
		srv.Wait()
		os.Remove(dir)
	}, nil
}

// toolError turns a failed command into an error with its output.
func toolError(name string, err error, out []byte) error {
	msg := strings.TrimSpace(string(out))
	if len(msg) > 4000 {
		msg = msg[:4000] + "..."
	}
	var ee interface{ ExitCode() int }
	if errors.As(err, &ee) {
		return fmt.Errorf("%s failed (exit %d): %s", name, ee.ExitCode(), msg)
	}
	return fmt.Errorf("%s: %v: %s", name, err, msg)
}
