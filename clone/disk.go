package clone

import (
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"mis/internal/durable"
)

// DefaultFlushInterval bounds how long a write that nobody fsyncs stays
// volatile: the disk syncs itself this often while it has unsynced writes.
const DefaultFlushInterval = 5 * time.Second

// DiskOptions tunes OpenDisk.
type DiskOptions struct {
	// ReadOnly opens the clone for reading (commit). It still takes the
	// clone's lock, so the clone cannot be mounted meanwhile.
	ReadOnly bool
	// FlushInterval: sync unsynced writes this often (default
	// DefaultFlushInterval; negative disables).
	FlushInterval time.Duration
	Logger        *log.Logger // failed background syncs (default: standard logger)
}

// layerFile is one frozen delta, read-only. f is nil for a delta that
// never got data.
type layerFile struct {
	id string
	f  *os.File
	m  *blockMap
}

// Disk is a clone's disk: its layers over the base version. It implements
// io.ReaderAt and io.WriterAt and is safe for concurrent use.
type Disk struct {
	name     string
	size     int64
	base     io.ReaderAt
	readOnly bool
	log      *log.Logger

	delta  *os.File // active delta data, flock'ed while open
	mapF   *os.File
	active *blockMap
	frozen []layerFile // newest first

	wmu       sync.Mutex  // serialises writes (copy-up read-modify-write)
	smu       sync.Mutex  // serialises syncs, so map pages are written in order
	unsynced  atomic.Bool // data written since the last sync
	syncErr   error       // a failed background sync, reported by the next Sync
	syncErrMu sync.Mutex

	stop   chan struct{}
	done   chan struct{}
	closed bool

	stats DiskStats
}

// DiskStats counts a disk's activity.
type DiskStats struct {
	Writes, WrittenBytes atomic.Int64
	CopyUps              atomic.Int64 // partial writes that copied a block up from below
	Syncs                atomic.Int64
}

// OpenDisk opens clone name for reading and writing over base, the base
// version's disk (e.g. a mountfs View). The clone is locked until Close:
// a second OpenDisk, a clone of it or its removal fail with ErrMounted.
func (s *Store) OpenDisk(name string, base io.ReaderAt, opt DiskOptions) (*Disk, error) {
	if opt.FlushInterval == 0 {
		opt.FlushInterval = DefaultFlushInterval
	}
	if opt.Logger == nil {
		opt.Logger = log.Default()
	}
	var d *Disk
	err := s.Locked(func() error {
		recs, err := s.load()
		if err != nil {
			return err
		}
		c := find(recs, name)
		if c == nil {
			return fmt.Errorf("clone %s: %w", name, ErrNotFound)
		}
		d, err = s.openLayers(c, base, opt)
		return err
	})
	if err != nil {
		return nil, err
	}
	if !opt.ReadOnly && opt.FlushInterval > 0 {
		go d.flushLoop(opt.FlushInterval)
	} else {
		close(d.done)
	}
	return d, nil
}

func (s *Store) openLayers(c *Clone, base io.ReaderAt, opt DiskOptions) (*Disk, error) {
	d := &Disk{name: c.Name, size: c.DiskSize, base: base, readOnly: opt.ReadOnly, log: opt.Logger,
		stop: make(chan struct{}), done: make(chan struct{})}
	opened := false
	defer func() {
		if !opened {
			d.closeFiles()
		}
	}()
	var err error
	created := false
	if d.delta, created, err = openSized(s.deltaPath(c.Active), c.DiskSize); err != nil {
		return nil, err
	}
	if err := unix.Flock(int(d.delta.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return nil, fmt.Errorf("clone %s: %w", c.Name, ErrMounted)
	}
	mapCreated := false
	if d.mapF, mapCreated, err = openSized(s.mapPath(c.Active), mapFileSize(c.DiskSize)); err != nil {
		return nil, err
	}
	if created || mapCreated {
		if err := durable.SyncDir(s.deltaDir()); err != nil {
			return nil, err
		}
	}
	if d.active, err = loadBlockMap(s.mapPath(c.Active), c.DiskSize); err != nil {
		return nil, fmt.Errorf("clone %s: %w", c.Name, err)
	}
	for _, id := range c.Frozen {
		l := layerFile{id: id}
		l.f, err = os.Open(s.deltaPath(id))
		if errors.Is(err, os.ErrNotExist) {
			l.f, l.m = nil, newBlockMap(c.DiskSize)
			d.frozen = append(d.frozen, l)
			continue
		}
		if err != nil {
			return nil, err
		}
		d.frozen = append(d.frozen, l) // closed on error from here on
		if l.m, err = loadBlockMap(s.mapPath(id), c.DiskSize); err != nil {
			return nil, fmt.Errorf("clone %s: frozen delta %s: %w", c.Name, id, err)
		}
		d.frozen[len(d.frozen)-1].m = l.m
	}
	opened = true
	return d, nil
}

// openSized opens (or creates, sparse) a delta file of exactly size bytes.
func openSized(path string, size int64) (*os.File, bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, false, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, false, err
	}
	created := st.Size() == 0 && size > 0
	switch {
	case created:
		err = f.Truncate(size)
	case st.Size() != size:
		err = fmt.Errorf("%s: %d bytes, want %d", path, st.Size(), size)
	}
	if err != nil {
		f.Close()
		return nil, false, err
	}
	return f, created, nil
}

// Name is the clone's name.
func (d *Disk) Name() string { return d.name }

// Size is the disk's length in bytes.
func (d *Disk) Size() int64 { return d.size }

// Stats returns the disk's counters.
func (d *Disk) Stats() *DiskStats { return &d.stats }

// source tells which layer holds block b: 0 the active delta, i+1 frozen
// delta i, -1 the base.
func (d *Disk) source(b int64, skipActive bool) int {
	if !skipActive && d.active.has(b) {
		return 0
	}
	for i := range d.frozen {
		if d.frozen[i].m.has(b) {
			return i + 1
		}
	}
	return -1
}

// ReadAt reads the clone's disk: each block from the topmost layer that
// holds it.
func (d *Disk) ReadAt(p []byte, off int64) (int, error) {
	return d.read(p, off, false)
}

func (d *Disk) read(p []byte, off int64, skipActive bool) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read at negative offset %d", off)
	}
	if off >= d.size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	var atEOF error
	if rem := d.size - off; int64(len(p)) > rem {
		p, atEOF = p[:rem], io.EOF
	}
	end := off + int64(len(p))
	pos := off
	for pos < end {
		b := pos / BlockSize
		src := d.source(b, skipActive)
		// Extend the run over following blocks from the same layer.
		runEnd := min((b+1)*BlockSize, end)
		for runEnd < end && d.source(runEnd/BlockSize, skipActive) == src {
			runEnd = min(runEnd+BlockSize, end)
		}
		buf := p[pos-off : runEnd-off]
		var err error
		switch {
		case src == 0:
			_, err = d.delta.ReadAt(buf, pos)
		case src > 0:
			_, err = d.frozen[src-1].f.ReadAt(buf, pos)
		default:
			_, err = d.base.ReadAt(buf, pos)
			if errors.Is(err, io.EOF) {
				err = nil
			}
		}
		if err != nil {
			return int(pos - off), fmt.Errorf("clone %s: read at %d: %w", d.name, pos, err)
		}
		pos = runEnd
	}
	return len(p), atEOF
}

// ErrReadOnly is returned by WriteAt on a disk opened read-only.
var ErrReadOnly = errors.New("clone disk is open read-only")

// WriteAt writes into the active delta. A block the delta does not hold
// yet and that p covers only partly is first completed from below, so a
// block in the delta is always whole.
func (d *Disk) WriteAt(p []byte, off int64) (int, error) {
	if d.readOnly {
		return 0, ErrReadOnly
	}
	if off < 0 || off > d.size || int64(len(p)) > d.size-off {
		return 0, fmt.Errorf("clone %s: write of %d bytes at %d: beyond the disk's end (%d bytes)", d.name, len(p), off, d.size)
	}
	if len(p) == 0 {
		return 0, nil
	}
	end := off + int64(len(p))
	first, last := off/BlockSize, (end-1)/BlockSize
	d.wmu.Lock() // before looking at the bits: another write may set them
	defer d.wmu.Unlock()
	start, stop := off, end
	if off%BlockSize != 0 && !d.active.has(first) {
		start = first * BlockSize
	}
	if lastEnd := min((last+1)*BlockSize, d.size); end != lastEnd && !d.active.has(last) {
		stop = lastEnd
	}
	buf := p
	if start != off || stop != end {
		buf = make([]byte, stop-start)
		if start < off {
			if _, err := d.read(buf[:off-start], start, true); err != nil {
				return 0, err
			}
		}
		if stop > end {
			if _, err := d.read(buf[end-start:], end, true); err != nil {
				return 0, err
			}
		}
		copy(buf[off-start:], p)
		d.stats.CopyUps.Add(1)
	}
	if _, err := d.delta.WriteAt(buf, start); err != nil {
		return 0, fmt.Errorf("clone %s: write delta at %d: %w", d.name, start, err)
	}
	d.unsynced.Store(true)
	for b := first; b <= last; b++ {
		d.active.set(b)
	}
	d.stats.Writes.Add(1)
	d.stats.WrittenBytes.Add(int64(len(p)))
	return len(p), nil
}

// Sync makes every write that returned before it durable: the delta's data
// first, then the map bits that point at it.
func (d *Disk) Sync() error {
	if d.readOnly {
		return nil
	}
	d.smu.Lock()
	defer d.smu.Unlock()
	d.syncErrMu.Lock()
	prev := d.syncErr
	d.syncErr = nil
	d.syncErrMu.Unlock()
	// Snapshot under the write lock: every bit in it belongs to a write
	// whose data is already in the delta file, so the fdatasync below
	// covers it.
	d.wmu.Lock()
	pages := d.active.takeDirty()
	had := d.unsynced.Swap(false)
	d.wmu.Unlock()
	if !had && len(pages) == 0 {
		return prev
	}
	fail := func(err error) error {
		d.active.redirty(pages)
		d.unsynced.Store(true)
		return fmt.Errorf("clone %s: sync: %w", d.name, err)
	}
	if err := unix.Fdatasync(int(d.delta.Fd())); err != nil {
		return fail(err)
	}
	if len(pages) > 0 {
		for _, pg := range pages {
			if _, err := d.mapF.WriteAt(pg.data, pg.off); err != nil {
				return fail(err)
			}
		}
		if err := unix.Fdatasync(int(d.mapF.Fd())); err != nil {
			return fail(err)
		}
	}
	d.stats.Syncs.Add(1)
	return prev
}

func (d *Disk) flushLoop(every time.Duration) {
	defer close(d.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
			if !d.unsynced.Load() {
				continue
			}
			if err := d.Sync(); err != nil {
				d.log.Printf("%v", err)
				d.syncErrMu.Lock()
				d.syncErr = err
				d.syncErrMu.Unlock()
			}
		}
	}
}

// Unchanged reports whether bytes [off, off+n) of the clone equal its
// base version's: no layer holds a block of that range. (A block written
// back with its old bytes counts as changed.)
func (d *Disk) Unchanged(off, n int64) bool {
	if n <= 0 {
		return true
	}
	from, to := off/BlockSize, (off+n-1)/BlockSize+1
	if d.active.anyIn(from, to) {
		return false
	}
	for i := range d.frozen {
		if d.frozen[i].m.anyIn(from, to) {
			return false
		}
	}
	return true
}

// ChangedBlocks counts the blocks any layer of the clone holds.
func (d *Disk) ChangedBlocks() int64 {
	var n int64
	for b := int64(0); b < d.active.blocks; b += 64 {
		w := atomic.LoadUint64(&d.active.words[b/64])
		for i := range d.frozen {
			w |= d.frozen[i].m.words[b/64]
		}
		for ; w != 0; w &= w - 1 {
			n++
		}
	}
	return n
}

// Close syncs and releases the clone.
func (d *Disk) Close() error {
	if d.closed {
		return nil
	}
	d.closed = true
	close(d.stop)
	<-d.done
	err := d.Sync()
	if cerr := d.closeFiles(); err == nil {
		err = cerr
	}
	return err
}

func (d *Disk) closeFiles() error {
	var err error
	for _, f := range []*os.File{d.mapF, d.delta} {
		if f != nil {
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
	}
	for _, l := range d.frozen {
		if l.f != nil {
			l.f.Close()
		}
	}
	return err
}
