package catalog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"mis/internal/durable"
	"mis/layer"
	"mis/repo"
)

// KindMount is a running mount of a version: it holds the version like a
// clone does, until it ends.
const KindMount Kind = "mount"

// Mount is the record of a running mount of a version
// (REPO/mounts/<id>.json). The serving process holds an flock on the
// record for as long as it serves, so a record whose lock is free belongs
// to a server that died, and is removed by whoever finds it.
type Mount struct {
	ID      string    `json:"id"`
	Version string    `json:"version"`
	Ref     string    `json:"ref"`
	Dir     string    `json:"dir"`
	PID     int       `json:"pid"`
	Host    string    `json:"host"`
	Started time.Time `json:"started"`
}

// RegisterMount records that this process serves version v (as ref) at
// dir. The version must still exist: the check and the record are made
// under the names lock, which rm holds too. Call release when the mount
// ends; if the process dies first, the record is dead and cleaned up.
func (c *Catalog) RegisterMount(ctx context.Context, v *layer.Version, ref, dir string) (release func(), err error) {
	var f *os.File
	var path string
	err = c.lockNames(func() error {
		if err := c.view(ctx, func(tx *repo.Tx) error {
			_, err := layer.Get(tx, v.ID)
			if err != nil {
				return fmt.Errorf("%s was removed meanwhile: %w", ref, err)
			}
			return nil
		}); err != nil {
			return err
		}
		var b [8]byte
		rand.Read(b[:])
		host, _ := os.Hostname()
		m := Mount{ID: hex.EncodeToString(b[:]), Version: v.ID, Ref: ref, Dir: dir, PID: os.Getpid(), Host: host, Started: time.Now().UTC()}
		data, err := json.Marshal(m)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(c.dir.Mounts(), 0o700); err != nil {
			return err
		}
		// Written and locked under a temporary name, then renamed: a record
		// is never seen unlocked, so it is never taken for dead.
		path = filepath.Join(c.dir.Mounts(), m.ID+".json")
		tmp := filepath.Join(c.dir.Mounts(), ".new-"+m.ID)
		f, err = os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY|unix.O_NOFOLLOW, 0o600)
		if err != nil {
			return err
		}
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err == nil {
			_, err = f.Write(data)
		}
		if err == nil {
			err = f.Sync()
		}
		if err == nil {
			err = os.Rename(tmp, path)
		}
		if err != nil {
			f.Close()
			os.Remove(tmp)
			return err
		}
		if err := durable.SyncDir(c.dir.Mounts()); err != nil {
			f.Close()
			os.Remove(path)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return func() {
		os.Remove(path)
		f.Close()
	}, nil
}

// Mounts lists the running mounts of versions and removes the records of
// servers that died.
func (c *Catalog) Mounts() ([]Mount, error) {
	ents, err := os.ReadDir(c.dir.Mounts())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Mount
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") || !e.Type().IsRegular() {
			continue
		}
		m, live, err := readMount(filepath.Join(c.dir.Mounts(), e.Name()))
		if err != nil {
			return nil, err
		}
		if live {
			out = append(out, m)
		}
	}
	return out, nil
}

// readMount reads one record and says whether its server still holds it;
// a dead one is removed.
func readMount(path string) (Mount, bool, error) {
	var m Mount
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		return m, false, nil // released meanwhile
	}
	if err != nil {
		return m, false, err
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err == nil {
		os.Remove(path) // nobody serves it any more
		return m, false, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return m, false, nil
	}
	if err != nil {
		return m, false, err
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, false, fmt.Errorf("%s: corrupt mount record: %w", path, err)
	}
	return m, true, nil
}
