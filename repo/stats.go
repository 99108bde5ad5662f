package repo

import (
	"context"

	badger "github.com/dgraph-io/badger/v4"
)

// Stats describes the repository's content.
type Stats struct {
	Chunks      int64 // unique chunks
	RawBytes    int64 // their total uncompressed size
	StoredBytes int64 // their total stored (compressed) size
	Packs       int64 // packs in storage
	PackBytes   int64 // bytes of packs in storage, trailers included
}

// Stats computes repository statistics from the index and the pack store.
func (r *Repo) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	db, err := r.openMeta(ctx, true)
	if err != nil {
		return s, err
	}
	err = db.View(func(txn *badger.Txn) error {
		prefix := []byte(chunkPrefix)
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: prefix})
		defer it.Close()
		for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
			if err := it.Item().Value(func(v []byte) error {
				loc, err := decodeChunkValue(v)
				s.Chunks++
				s.RawBytes += int64(loc.RawLen)
				s.StoredBytes += int64(loc.StoredLen)
				return err
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return s, err
	}
	err = r.packs.List(ctx, func(_ string, size int64) error {
		s.Packs++
		s.PackBytes += size
		return nil
	})
	return s, err
}
