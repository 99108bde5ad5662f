package repo

import (
	"context"
	"fmt"
	"io"
)

// PackStore is where pack files live. The repository's chunk index and
// metadata stay in the local Badger database; only packs go through this
// interface, so a pack store can be a local directory (LocalPackStore, the
// default) or an object store (S3 and the like: whole-object PUT, ranged
// GET, HEAD, LIST, DELETE). Open and Init take one with WithPackStore and
// InitOptions.PackStore.
//
// Names. A pack's name is 64 lowercase hex digits, the BLAKE3-256 of its
// content (the repository computes it; the store does not check it). So a
// name always stands for the same bytes: putting a name that already
// exists is harmless (the store may overwrite it or keep the existing
// pack), and a pack never changes once it is visible. A name that is not
// 64 lowercase hex digits is an error from every method, and that error
// does not wrap fs.ErrNotExist.
//
// Missing packs. Open, Stat and PackReader.ReadAt fail with an error
// wrapping fs.ErrNotExist (test with errors.Is) when the pack does not
// exist, and with an error not wrapping it for any other failure
// (permissions, I/O, network, a cancelled context). Callers rely on the
// difference: a reader whose pack vanished asks the index where gc moved
// the chunk, gc and recovery treat a vanished pack as already removed, and
// any other error is reported as such. Remove of a pack that does not exist
// returns nil (delete is idempotent, as an S3 DELETE is).
//
// Atomicity. Put makes a pack visible (to Open, Stat and List, in this and
// other processes) only once all of it is stored and will survive a crash;
// a failed, cancelled or interrupted Put leaves nothing under the name, at
// most leftovers that are invisible to List and that RemoveIncomplete
// deletes (local: files in packs/tmp; S3: incomplete multipart uploads).
//
// Context. Every method takes a context; when it is cancelled or its
// deadline passes, a method that has not finished returns an error
// wrapping ctx.Err(). A PackReader's reads take their own context.
//
// Concurrency. All methods, and PackReader's, are safe for concurrent use
// by several goroutines and several processes. Only the holder of the
// repository's writer lock calls Put, Remove and RemoveIncomplete; readers
// in other processes call Open, Stat, List and ReadAt at any time meanwhile.
// A List concurrent with a Put may or may not include the new pack but
// never a partial one. A PackReader opened before its pack is removed
// either keeps reading the pack's bytes (local: the open file) or fails
// with fs.ErrNotExist (object stores); it never returns other bytes.
type PackStore interface {
	// Put stores a pack of size bytes read from r under name. r must
	// yield at least size bytes; fewer is an error and stores nothing.
	Put(ctx context.Context, name string, r io.Reader, size int64) error
	// Open returns a handle for ranged reads of a pack.
	Open(ctx context.Context, name string) (PackReader, error)
	// Stat returns a pack's size in bytes.
	Stat(ctx context.Context, name string) (size int64, err error)
	// List calls fn for every pack, in name order, with its size. An
	// error from fn stops the listing and is returned.
	List(ctx context.Context, fn func(name string, size int64) error) error
	// Remove deletes a pack; a pack that does not exist is no error.
	Remove(ctx context.Context, name string) error
	// RemoveIncomplete deletes what interrupted Puts left behind and
	// returns how many leftovers it removed. Only the writer-lock holder
	// calls it, when no Put of its own is in progress.
	RemoveIncomplete(ctx context.Context) (removed int, err error)
}

// PackReader reads byte ranges of one pack (see PackStore for the
// not-exist contract).
type PackReader interface {
	// ReadAt reads len(p) bytes at offset off, as io.ReaderAt does: when
	// it returns n < len(p), err says why (io.EOF past the end).
	ReadAt(ctx context.Context, p []byte, off int64) (n int, err error)
	// Size is the pack's size in bytes.
	Size() int64
	Close() error
}

// readerAt adapts a PackReader to io.ReaderAt for one context.
type readerAt struct {
	ctx context.Context
	pr  PackReader
}

func (r readerAt) ReadAt(p []byte, off int64) (int, error) { return r.pr.ReadAt(r.ctx, p, off) }

// readPackBytes reads a whole pack into memory (packs are bounded by the
// pack target size).
func readPackBytes(ctx context.Context, store PackStore, name string) ([]byte, error) {
	pr, err := store.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	defer pr.Close()
	data := make([]byte, pr.Size())
	if err := readFull(ctx, pr, data, 0); err != nil {
		return nil, err
	}
	return data, nil
}

// readFull reads exactly len(p) bytes at off; a short read is
// io.ErrUnexpectedEOF.
func readFull(ctx context.Context, pr PackReader, p []byte, off int64) error {
	n, err := pr.ReadAt(ctx, p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// checkPackName rejects anything but 64 lowercase hex digits.
func checkPackName(name string) error {
	if !validPackName(name) {
		return fmt.Errorf("invalid pack name %q", name)
	}
	return nil
}

func validPackName(name string) bool {
	if len(name) != 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
