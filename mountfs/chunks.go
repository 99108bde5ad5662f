package mountfs

import (
	"container/list"
	"context"
	"fmt"
	"log"
	"sync"

	"mis/chunker"
	"mis/manifest"
	"mis/repo"
)

// ChunkError is a chunk that could not be read or failed verification.
type ChunkError struct {
	ID  chunker.ID
	Err error
}

func (e *ChunkError) Error() string { return fmt.Sprintf("read chunk %s: %v", e.ID, e.Err) }
func (e *ChunkError) Unwrap() error { return e.Err }

// chunkStore reads chunks by table index through a bounded LRU cache of
// decompressed chunks. Concurrent requests for one chunk share one read.
type chunkStore struct {
	ids   []chunker.ID
	sizes []uint32
	locs  []repo.Location
	byID  map[chunker.ID]int32
	cr    *repo.ChunkReader
	log   *log.Logger

	mu       sync.Mutex
	lru      list.List // of *cachedChunk, most recent first
	cached   map[int32]*list.Element
	bytes    int64
	limit    int64
	inflight map[int32]*fetch
	reported map[int32]bool
	stats    CacheStats

	prefetchQ chan int32
	stop      chan struct{}
	workers   sync.WaitGroup
}

type cachedChunk struct {
	idx  int32
	data []byte
}

type fetch struct {
	done chan struct{}
	data []byte
	err  error
}

// CacheStats counts chunk cache activity since the mount started.
type CacheStats struct {
	Hits, Misses  int64 // reads served from the cache / from packs
	Prefetched    int64 // chunks read ahead of a sequential reader
	Failed        int64 // chunk reads that failed (EIO)
	CachedBytes   int64
	CachedChunks  int
	DistinctChunk int // chunks the version references
}

// newChunkStore builds the chunk table of every chunk m references and
// looks their locations up in one short metadata session.
func newChunkStore(ctx context.Context, r *repo.Repo, m *manifest.Manifest, cacheSize int64, prefetchers int, logger *log.Logger) (*chunkStore, error) {
	s := &chunkStore{
		byID:      map[chunker.ID]int32{},
		log:       logger,
		cached:    map[int32]*list.Element{},
		limit:     cacheSize,
		inflight:  map[int32]*fetch{},
		reported:  map[int32]bool{},
		prefetchQ: make(chan int32, 1024),
		stop:      make(chan struct{}),
	}
	err := m.ForEachRef(func(ref manifest.Ref) error {
		if i, ok := s.byID[ref.ID]; ok {
			if s.sizes[i] != ref.Size {
				return fmt.Errorf("chunk %s is listed with sizes %d and %d", ref.ID, s.sizes[i], ref.Size)
			}
			return nil
		}
		s.byID[ref.ID] = int32(len(s.ids))
		s.ids = append(s.ids, ref.ID)
		s.sizes = append(s.sizes, ref.Size)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	locs, err := r.Lookup(ctx, s.ids)
	if err != nil {
		return nil, err
	}
	s.locs = make([]repo.Location, len(s.ids))
	packNames := map[string]string{} // one copy of each pack name
	for i, id := range s.ids {
		loc, ok := locs[id]
		if !ok {
			return nil, fmt.Errorf("chunk %s is missing from the repository (run mis verify)", id)
		}
		if p, ok := packNames[loc.Pack]; ok {
			loc.Pack = p
		} else {
			packNames[loc.Pack] = loc.Pack
		}
		s.locs[i] = loc
	}
	s.cr = r.NewChunkReader()
	for range prefetchers {
		s.workers.Add(1)
		go s.prefetchLoop()
	}
	return s, nil
}

// index returns the table index of a chunk the manifest references.
func (s *chunkStore) index(ref manifest.Ref) int32 { return s.byID[ref.ID] }

// get returns chunk idx's bytes. The slice is shared and must not be changed.
func (s *chunkStore) get(idx int32) ([]byte, error) {
	s.mu.Lock()
	if el, ok := s.cached[idx]; ok {
		s.lru.MoveToFront(el)
		s.stats.Hits++
		s.mu.Unlock()
		return el.Value.(*cachedChunk).data, nil
	}
	s.stats.Misses++
	data, err := s.fetchLocked(idx)
	return data, err
}

// fetchLocked reads idx from its pack, or waits for a read already under
// way. It is called with s.mu held and returns with it released.
func (s *chunkStore) fetchLocked(idx int32) ([]byte, error) {
	if f, ok := s.inflight[idx]; ok {
		s.mu.Unlock()
		<-f.done
		return f.data, f.err
	}
	f := &fetch{done: make(chan struct{})}
	s.inflight[idx] = f
	s.mu.Unlock()

	f.data, f.err = s.read(idx)

	s.mu.Lock()
	delete(s.inflight, idx)
	if f.err == nil {
		s.addLocked(idx, f.data)
	} else {
		s.stats.Failed++
		if !s.reported[idx] {
			s.reported[idx] = true
			s.log.Printf("mountfs: %v (reads that need it fail with EIO)", f.err)
		}
	}
	s.mu.Unlock()
	close(f.done)
	return f.data, f.err
}

func (s *chunkStore) read(idx int32) ([]byte, error) {
	id := s.ids[idx]
	data, err := s.cr.Read(id, s.locs[idx], nil)
	if err == nil && len(data) != int(s.sizes[idx]) {
		err = fmt.Errorf("has %d bytes, the manifest says %d", len(data), s.sizes[idx])
	}
	if err != nil {
		return nil, &ChunkError{ID: id, Err: err}
	}
	return data, nil
}

func (s *chunkStore) addLocked(idx int32, data []byte) {
	size := int64(cap(data))
	if size > s.limit {
		return
	}
	s.cached[idx] = s.lru.PushFront(&cachedChunk{idx, data})
	s.bytes += size
	for s.bytes > s.limit {
		el := s.lru.Back()
		c := s.lru.Remove(el).(*cachedChunk)
		delete(s.cached, c.idx)
		s.bytes -= int64(cap(c.data))
	}
}

// prefetch asks the background readers for chunks; it never blocks, and
// drops requests when they are behind (the reader will fetch it itself).
func (s *chunkStore) prefetch(idxs []int32) {
	for _, idx := range idxs {
		select {
		case s.prefetchQ <- idx:
		default:
			return
		}
	}
}

func (s *chunkStore) prefetchLoop() {
	defer s.workers.Done()
	for {
		select {
		case <-s.stop:
			return
		case idx := <-s.prefetchQ:
			s.mu.Lock()
			_, cached := s.cached[idx]
			_, busy := s.inflight[idx]
			if cached || busy {
				s.mu.Unlock()
				continue
			}
			s.stats.Prefetched++
			s.fetchLocked(idx) // errors are logged there, and the reader sees them again
		}
	}
}

// Stats returns a snapshot of the cache counters.
func (s *chunkStore) Stats() CacheStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.CachedBytes = s.bytes
	st.CachedChunks = len(s.cached)
	st.DistinctChunk = len(s.ids)
	return st
}

func (s *chunkStore) close() error {
	close(s.stop)
	s.workers.Wait()
	return s.cr.Close()
}
