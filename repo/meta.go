package repo

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"golang.org/x/sys/unix"

	"mis/chunker"
	"mis/internal/durable"
)

// Badger memory budget, chosen for a small machine. Worst case while a
// read-write session runs: 2 memtables × 16 MiB + 16 MiB block cache +
// 8 MiB index cache ≈ 56 MiB, plus mmapped table/vlog pages the kernel
// may reclaim.
const (
	badgerMemTableSize  = 16 << 20
	badgerNumMemtables  = 2
	badgerBlockCache    = 16 << 20
	badgerIndexCache    = 8 << 20
	badgerValueLogFile  = 64 << 20
	badgerNumCompactors = 2
)

// Reserved key prefixes (see doc.go).
const (
	chunkPrefix = "c/"
	packPrefix  = "p/"
)

// DefaultBusyTimeout is how long sessions wait for the metadata database
// when another process holds it in a conflicting mode.
const DefaultBusyTimeout = 2 * time.Minute

// ErrNotFound is returned by Tx.Get for a missing key.
var ErrNotFound = errors.New("key not found")

func badgerOptions(dir string, readOnly bool) badger.Options {
	opt := badger.DefaultOptions(dir).
		WithReadOnly(readOnly).
		WithMemTableSize(badgerMemTableSize).
		WithNumMemtables(badgerNumMemtables).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithBlockCacheSize(badgerBlockCache).
		WithIndexCacheSize(badgerIndexCache).
		WithValueLogFileSize(badgerValueLogFile).
		WithNumCompactors(badgerNumCompactors).
		WithNumGoroutines(2).
		WithMetricsEnabled(false).
		WithLogger(nil)
	if os.Getenv("MIS_DEBUG") != "" {
		opt = opt.WithLogger(debugLogger{})
	}
	return opt
}

// debugLogger routes Badger's messages to the standard logger.
type debugLogger struct{}

func (debugLogger) Errorf(f string, a ...any)   { log.Printf("badger ERROR: "+f, a...) }
func (debugLogger) Warningf(f string, a ...any) { log.Printf("badger WARNING: "+f, a...) }
func (debugLogger) Infof(f string, a ...any)    { log.Printf("badger: "+f, a...) }
func (debugLogger) Debugf(f string, a ...any)   {}

func debugf(format string, args ...any) {
	if os.Getenv("MIS_DEBUG") != "" {
		log.Printf("mis/repo: "+format, args...)
	}
}

func openBadger(dir string, readOnly bool) (*badger.DB, error) {
	db, err := badger.Open(badgerOptions(dir, readOnly))
	if err == nil && !readOnly {
		fixMetaModes(dir) // Badger created its LOCK and a memtable with 0666 &^ umask
	}
	return db, err
}

// closeRW closes a read-write session and makes the files Badger created
// during it private (see modes.go).
func closeRW(db *badger.DB, dir string) error {
	err := db.Close()
	fixMetaModes(dir)
	return err
}

// Badger wraps its errors with %v, so they can only be recognised by text.
func isBadgerLocked(err error) bool {
	return err != nil && strings.Contains(err.Error(), "Cannot acquire directory lock")
}

// openMeta opens the metadata database, waiting while another process
// holds it in a conflicting mode.
//
// A writer killed inside a Badger read-write session leaves states a
// read-only open cannot get past: a memtable log with a torn tail
// (ErrTruncateNeeded, which only a read-write open truncates), and empty
// memtable or value log files (a kill between Badger creating such a file
// and sizing it, or between truncating one to zero and removing it).
// Badger v4.9.6 opens an empty log in neither mode: read-only it tries to
// grow the file through a read-only descriptor ("error while truncation"),
// read-write it returns its internal "Create a new file" sentinel as an
// error. So when an open fails for any reason but a held lock, openMeta
// repairs once (removeEmptyLogs, then a brief read-write open, which is
// Badger's own recovery) and tries again. If that does not help, the error
// says so in mis's words: Badger's own text is for MIS_DEBUG=1.
func (r *Repo) openMeta(ctx context.Context, readOnly bool) (*badger.DB, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultBusyTimeout)
		defer cancel()
	}
	dir := r.metaDir()
	backoff := 10 * time.Millisecond
	repaired := false
	for {
		db, err := openBadger(dir, readOnly)
		if err == nil {
			return db, nil
		}
		if !isBadgerLocked(err) && !repaired {
			repaired = true
			debugf("open metadata (read-only %v): %v; repairing", readOnly, err)
			rerr := repairMeta(dir)
			if rerr == nil {
				continue
			}
			debugf("repair metadata: %v", rerr)
			if isBadgerLocked(rerr) {
				// Someone opened it meanwhile: wait for them, then try
				// again (and repair again if it is still needed).
				repaired = false
			}
			err = rerr
		}
		if !isBadgerLocked(err) {
			return nil, r.metaOpenError(err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("repository metadata is busy (held by %s)", r.lockHolderDescription())
		case <-time.After(backoff):
		}
		if backoff < 500*time.Millisecond {
			backoff *= 2
		}
	}
}

// repairMeta removes the empty logs a killed writer leaves, then opens the
// database read-write once: Badger's own recovery truncates torn logs and
// drops files its MANIFEST does not name.
func repairMeta(dir string) error {
	if err := removeEmptyLogs(dir); err != nil {
		return err
	}
	rw, err := openBadger(dir, false)
	if err != nil {
		return err
	}
	return closeRW(rw, dir)
}

// osCauses are operating-system errors worth showing as they are: the user
// can act on them.
var osCauses = []string{"permission denied", "no space left on device", "read-only file system",
	"disk quota exceeded", "input/output error", "too many open files", "cannot allocate memory"}

// metaOpenError is what a user sees when the metadata cannot be opened even
// after repairMeta: the repository, what is wrong in our words, what to do.
func (r *Repo) metaOpenError(err error) error {
	detail := "; run again with MIS_DEBUG=1 to see the database's own error"
	if os.Getenv("MIS_DEBUG") != "" {
		detail = "; the database says: " + err.Error()
	}
	msg := err.Error()
	for _, c := range osCauses {
		if strings.Contains(msg, c) {
			return fmt.Errorf("repository %s: cannot open its metadata database %s: %s; fix that and run the command again%s",
				r.dir, r.metaDir(), c, detail)
		}
	}
	return fmt.Errorf("repository %s: its metadata database %s cannot be opened, even after an automatic repair; "+
		"it is damaged in a way mis does not repair by itself. Make no further changes, keep a copy of %s as it is "+
		"(the packs still hold every chunk, but version records live only in the metadata) and report the problem%s",
		r.dir, r.metaDir(), r.dir, detail)
}

// removeEmptyLogs deletes zero-length memtable (.mem) and value log
// (.vlog) files, which a writer killed between creating and sizing one,
// or between truncating and removing one, leaves behind. They hold no
// entries. Done under Badger's own directory flock, so no live session is
// creating one at the same moment.
func removeEmptyLogs(dir string) error {
	lock, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_RDWR|os.O_CREATE, FileMode)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return nil // a live session holds the database: nothing to repair now
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)
	var logs []string
	for _, ext := range []string{"*.mem", "*.vlog"} {
		m, err := filepath.Glob(filepath.Join(dir, ext))
		if err != nil {
			return err
		}
		logs = append(logs, m...)
	}
	removed := false
	for _, m := range logs {
		if fi, err := os.Stat(m); err == nil && fi.Size() == 0 {
			debugf("removing empty log %s left by a killed writer", m)
			if err := os.Remove(m); err != nil {
				return err
			}
			removed = true
		}
	}
	if removed {
		return durable.SyncDir(dir)
	}
	return nil
}

func (r *Repo) metaDir() string { return r.dir + "/" + metaDir }

// View runs fn in a read-only transaction of a short read-only session.
func (r *Repo) View(ctx context.Context, fn func(tx *Tx) error) error {
	db, err := r.openMeta(ctx, true)
	if err != nil {
		return err
	}
	err = db.View(func(txn *badger.Txn) error { return fn(&Tx{txn: txn}) })
	if cerr := db.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return err
}

// Tx is a metadata transaction. Keys beginning with "c/" or "p/" belong
// to the chunk index and are rejected.
type Tx struct {
	txn      *badger.Txn
	writable bool
}

func checkCallerKey(key []byte) error {
	if len(key) == 0 {
		return errors.New("empty metadata key")
	}
	if isReservedKey(key) {
		return fmt.Errorf("metadata key %q uses a reserved prefix (%q and %q belong to the chunk index)", key, chunkPrefix, packPrefix)
	}
	return nil
}

func isReservedKey(key []byte) bool {
	s := string(key)
	return strings.HasPrefix(s, chunkPrefix) || strings.HasPrefix(s, packPrefix)
}

// Get returns a copy of the value of key, or ErrNotFound.
func (tx *Tx) Get(key []byte) ([]byte, error) {
	if err := checkCallerKey(key); err != nil {
		return nil, err
	}
	item, err := tx.txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}

// Put sets key to val. Only in read-write transactions.
func (tx *Tx) Put(key, val []byte) error {
	if err := checkCallerKey(key); err != nil {
		return err
	}
	if !tx.writable {
		return errors.New("metadata Put in a read-only transaction")
	}
	return tx.txn.Set(append([]byte(nil), key...), append([]byte(nil), val...))
}

// Delete removes key. Only in read-write transactions.
func (tx *Tx) Delete(key []byte) error {
	if err := checkCallerKey(key); err != nil {
		return err
	}
	if !tx.writable {
		return errors.New("metadata Delete in a read-only transaction")
	}
	return tx.txn.Delete(append([]byte(nil), key...))
}

// Iterate calls fn for every key with the given prefix, in key order.
// The reserved index keys are skipped. key and val are valid only
// during the call.
func (tx *Tx) Iterate(prefix []byte, fn func(key, val []byte) error) error {
	if len(prefix) > 0 && isReservedKey(prefix) {
		return checkCallerKey(prefix)
	}
	it := tx.txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: prefix})
	defer it.Close()
	var val []byte
	for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
		item := it.Item()
		key := item.Key()
		if isReservedKey(key) {
			continue
		}
		var err error
		if val, err = item.ValueCopy(val[:0]); err != nil {
			return err
		}
		if err := fn(key, val); err != nil {
			return err
		}
	}
	return nil
}

// Location says where a chunk is stored.
type Location struct {
	Pack       string // pack name, 64 hex digits
	Offset     uint64
	StoredLen  uint32
	RawLen     uint32
	Compressed bool
}

// Index value encodings.
const (
	chunkValueSize = packNameRawSize + 8 + 4 + 4 + 1
	packValueSize  = 8 + 4 + 8
)

func chunkKey(id chunker.ID) []byte { return append([]byte(chunkPrefix), id[:]...) }

func packKey(name [packNameRawSize]byte) []byte { return append([]byte(packPrefix), name[:]...) }

func encodeChunkValue(pack [packNameRawSize]byte, e packEntry) []byte {
	v := make([]byte, 0, chunkValueSize)
	v = append(v, pack[:]...)
	v = binary.LittleEndian.AppendUint64(v, e.Offset)
	v = binary.LittleEndian.AppendUint32(v, e.StoredLen)
	v = binary.LittleEndian.AppendUint32(v, e.RawLen)
	return append(v, e.Flags)
}

func decodeChunkValue(v []byte) (Location, error) {
	if len(v) != chunkValueSize {
		return Location{}, fmt.Errorf("chunk index entry is %d bytes, want %d", len(v), chunkValueSize)
	}
	return Location{
		Pack:       hex.EncodeToString(v[:32]),
		Offset:     binary.LittleEndian.Uint64(v[32:]),
		StoredLen:  binary.LittleEndian.Uint32(v[40:]),
		RawLen:     binary.LittleEndian.Uint32(v[44:]),
		Compressed: v[48] == flagZstd,
	}, nil
}

// packInfo is the value of a "p/" key.
type packInfo struct {
	Size    int64
	Chunks  uint32
	Created int64 // unix seconds
}

func encodePackValue(p packInfo) []byte {
	v := make([]byte, 0, packValueSize)
	v = binary.LittleEndian.AppendUint64(v, uint64(p.Size))
	v = binary.LittleEndian.AppendUint32(v, p.Chunks)
	return binary.LittleEndian.AppendUint64(v, uint64(p.Created))
}

func decodePackValue(v []byte) (packInfo, error) {
	if len(v) != packValueSize {
		return packInfo{}, fmt.Errorf("pack index entry is %d bytes, want %d", len(v), packValueSize)
	}
	return packInfo{
		Size:    int64(binary.LittleEndian.Uint64(v)),
		Chunks:  binary.LittleEndian.Uint32(v[8:]),
		Created: int64(binary.LittleEndian.Uint64(v[12:])),
	}, nil
}

func parsePackName(name string) ([packNameRawSize]byte, error) {
	var out [packNameRawSize]byte
	if !validPackName(name) {
		return out, fmt.Errorf("invalid pack name %q", name)
	}
	_, err := hex.Decode(out[:], []byte(name))
	return out, err
}

func locationFlags(loc Location) uint8 {
	if loc.Compressed {
		return flagZstd
	}
	return flagRaw
}

// warnf reports a problem the caller cannot act on but a user should see.
func warnf(format string, args ...any) {
	log.Printf("mis: warning: "+format, args...)
}
