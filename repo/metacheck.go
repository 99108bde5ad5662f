package repo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/ristretto/v2/z"
	"golang.org/x/sys/unix"
)

// Badger v4.9.6 does not defend itself against damage to its own files
// (measured, see ARCHITECTURE.md):
//   - a truncated table (.sst) makes every open panic in a goroutine of
//     Badger's, which no caller can recover: the process dies;
//   - a table that fails its checksums is skipped with a log line, even
//     with checksum verification on: its keys silently disappear;
//   - a table the MANIFEST does not name is deleted by the next read-write
//     open, and a MANIFEST cut short opens fine: with a truncated MANIFEST
//     the database opens empty and deletes its tables;
//   - a MANIFEST with a bad magic or checksum fails every open.
//
// checkMeta looks at the files before Badger does, under Badger's own
// directory lock (shared: no read-write session runs meanwhile), and
// sorts what it finds: hard problems mean Badger cannot open the database
// or would lose data in it without a word; soft ones are also what a crash
// at the wrong moment leaves (a table written but not yet recorded, a torn
// last MANIFEST entry), which Badger's next read-write open cleans up
// correctly after a crash and destructively after damage.
//
// Tables are opened the way Badger opens them (table.OpenTable, in this
// goroutine, so a panic is recovered); with verifyBlocks every block's
// checksum is checked too, which reads the whole database.
func checkMeta(ctx context.Context, dir string, verifyBlocks bool) (hard, soft []string, nOrphans int, err error) {
	if _, err := os.Stat(dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return []string{"the metadata directory " + dir + " is missing"}, nil, 0, nil
		}
		return nil, nil, 0, err
	}
	unlock, err := lockMetaDir(ctx, dir, false)
	if err != nil {
		return nil, nil, 0, err
	}
	defer unlock()

	opt := badgerOptions(dir, true)
	mf, err := os.Open(filepath.Join(dir, badger.ManifestFilename))
	if errors.Is(err, fs.ErrNotExist) {
		return []string{"its MANIFEST is missing (Badger would start an empty database and delete every table)"}, nil, 0, nil
	}
	if err != nil {
		return nil, nil, 0, err
	}
	st, err := mf.Stat()
	if err != nil {
		mf.Close()
		return nil, nil, 0, err
	}
	manifest, truncOffset, err := replayManifest(mf, opt)
	mf.Close()
	if err != nil {
		return []string{"its MANIFEST cannot be read: " + err.Error()}, nil, 0, nil
	}
	if truncOffset < st.Size() {
		soft = append(soft, fmt.Sprintf("its MANIFEST ends in a torn entry (%d of %d bytes read)", truncOffset, st.Size()))
	}

	onDisk := map[uint64]bool{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, 0, err
	}
	for _, e := range ents {
		if id, ok := table.ParseFileID(e.Name()); ok && strings.HasSuffix(e.Name(), ".sst") {
			onDisk[id] = true
		}
	}
	var ids []uint64
	for id := range manifest.Tables {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return nil, nil, 0, err
		}
		name := filepath.Base(table.NewFilename(id, dir))
		if !onDisk[id] {
			hard = append(hard, fmt.Sprintf("table %s, named in its MANIFEST, is missing", name))
			continue
		}
		if err := checkTable(table.NewFilename(id, dir), manifest.Tables[id], opt, verifyBlocks); err != nil {
			hard = append(hard, fmt.Sprintf("table %s is damaged: %v", name, err))
		}
	}
	var orphans []string
	for id := range onDisk {
		if _, ok := manifest.Tables[id]; !ok {
			orphans = append(orphans, filepath.Base(table.NewFilename(id, dir)))
		}
	}
	sort.Strings(orphans)
	for _, name := range orphans {
		soft = append(soft, fmt.Sprintf("table %s is not in its MANIFEST (Badger deletes it at its next open, read-only included)", name))
	}
	return hard, soft, len(orphans), nil
}

// replayManifest reads a MANIFEST without changing it, turning a panic
// into an error.
func replayManifest(f *os.File, opt badger.Options) (m badger.Manifest, truncOffset int64, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("badger panicked reading it: %v", firstLine(fmt.Sprint(p)))
		}
	}()
	return badger.ReplayManifestFile(f, opt.ExternalMagicVersion, opt)
}

// checkTable opens one table as Badger would, read-only, and with
// verifyBlocks checks every block's checksum.
func checkTable(path string, tm badger.TableManifest, opt badger.Options, verifyBlocks bool) (err error) {
	if tm.KeyID != 0 {
		return nil // encrypted: mis never enables encryption, so never seen
	}
	mf, err := z.OpenMmapFile(path, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	// Closed once whatever happens (a second close after OpenTable closed
	// it on an error fails harmlessly). Not t.DecrRef: at zero references
	// it deletes the file.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("badger panicked opening it: %v", firstLine(fmt.Sprint(p)))
		}
		mf.Close(-1)
	}()
	mode := options.NoVerification
	if verifyBlocks {
		mode = options.OnTableRead
	}
	_, err = table.OpenTable(mf, table.Options{
		ReadOnly:    true,
		BlockSize:   opt.BlockSize,
		ChkMode:     mode,
		Compression: tm.Compression,
	})
	return err
}

// lockMetaDir takes Badger's directory lock on dir (shared, or exclusive),
// waiting while a session in a conflicting mode holds it.
func lockMetaDir(ctx context.Context, dir string, exclusive bool) (unlock func(), err error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultBusyTimeout)
		defer cancel()
	}
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	backoff := 10 * time.Millisecond
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", dir, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("repository metadata is busy: %w", ctx.Err())
		case <-time.After(backoff):
		}
		if backoff < 500*time.Millisecond {
			backoff *= 2
		}
	}
}
