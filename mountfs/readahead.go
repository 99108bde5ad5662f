package mountfs

import "sync"

// seqSlack is how far from the previous read's end a read may start and
// still count as sequential: the kernel sends readahead requests
// concurrently, so they arrive slightly out of order.
const seqSlack = 2 << 20

// readahead watches the reads of one open file and, once they look
// sequential, keeps the chunks of the next window bytes coming.
type readahead struct {
	view   *View
	window int64

	mu     sync.Mutex
	next   int64 // end of the furthest read so far
	ahead  int64 // chunks up to here were already requested
	streak int   // sequential reads in a row
}

func newReadahead(v *View, window int64) *readahead {
	return &readahead{view: v, window: window}
}

// observe records a read of [off, off+n) and prefetches if due.
func (ra *readahead) observe(off, n int64) {
	if ra == nil || ra.window <= 0 {
		return
	}
	ra.mu.Lock()
	end := off + n
	if off > ra.next+seqSlack || end < ra.next-seqSlack {
		ra.streak, ra.ahead, ra.next = 0, 0, end
		ra.mu.Unlock()
		return
	}
	ra.next = max(ra.next, end)
	ra.streak++
	from := max(ra.ahead, ra.next)
	to := min(ra.next+ra.window, ra.view.size)
	// Ask in batches of half a window, not a chunk per read.
	if ra.streak < 2 || from >= to || (to-from < ra.window/2 && to < ra.view.size) {
		ra.mu.Unlock()
		return
	}
	ra.ahead = to
	ra.mu.Unlock()
	ra.view.chunks.prefetch(ra.view.chunksIn(from, to))
}
