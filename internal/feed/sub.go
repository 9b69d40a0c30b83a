package feed

import "strconv"

// Why a stream is sent a snapshot.
const (
	SnapStart  = "start"  // the stream starts (no Last-Event-ID, or one the feed no longer holds)
	SnapBehind = "behind" // the client fell more than Config.History entries behind
	SnapReset  = "reset"  // the state changed without events (Hide)
)

// Sub is one event stream's place in the feed. One goroutine uses it.
type Sub struct {
	f    *Feed
	c    *chunk // the chunk that holds pos, or the one before it when pos is its end
	pos  uint64 // the next log position to send
	snap string // the next Frames starts with a snapshot, for this reason; "" when not
	// hello is the service frame of the phase when a resumed stream
	// started: its first frame, so that a client that resumes knows the
	// phase before the changes it missed (the phases among them follow).
	hello []byte
}

// Batch says what one Next returned.
type Batch struct {
	// Wake is closed when the feed has more; nil once the feed is closed.
	Wake <-chan struct{}
	// Snapshot is why the output starts with a snapshot frame; "" when it
	// does not.
	Snapshot string
	Changes  int  // change frames in the output
	Standby  bool // the service went standby: the stream should end
	Closed   bool // the feed is closed: the stream should end
	More     bool // there is more to send now: do not wait for Wake
}

// Follow returns a Sub for a client that has seen everything up to the
// Last-Event-ID last (has is false when it sent none or it was
// unreadable). When the feed still holds every entry after last, the Sub
// sends the service's phase now, then those entries (resumed is true);
// else it starts with a snapshot.
func (f *Feed) Follow(last uint64, has bool) (s *Sub, resumed bool) {
	s = &Sub{f: f}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if has {
		if c, pos, ok := f.resumeLocked(last); ok {
			s.c, s.pos, s.hello = c, pos, serviceFrame(f.service)
			return s, true
		}
	}
	s.c, s.pos, s.snap = f.tail, f.head.Load(), SnapStart
	return s, false
}

// resumeLocked returns where a client that has seen everything up to seq
// last resumes: the entry after last's change (or reset), the phases that
// followed it included.
func (f *Feed) resumeLocked(last uint64) (*chunk, uint64, bool) {
	if last < f.floor || last > f.seq {
		return nil, 0, false
	}
	head := f.head.Load()
	at := func(p uint64) *entry { // p within the kept chunks
		c := f.oldest
		for p-c.first >= chunkSize {
			c = c.next.Load()
		}
		return &c.entries[p-c.first]
	}
	tail := f.oldest.first
	if head-tail > uint64(f.cfg.History) {
		tail = head - uint64(f.cfg.History)
	}
	if tail > 0 {
		// The oldest entry kept must be at or before last, or last's
		// successor itself: else some entries after last are gone.
		if e := at(tail); e.seq > last+1 || (e.seq == last+1 && e.kind == phase) {
			return nil, 0, false
		}
	}
	// The first position whose entry is after last; seqs never decrease
	// along the log.
	lo, hi := tail, head
	for lo < hi {
		mid := lo + (hi-lo)/2
		if e := at(mid); e.seq < last || (e.seq == last && e.kind != phase) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	c := f.oldest
	for lo-c.first > chunkSize || (lo-c.first == chunkSize && c.next.Load() != nil) {
		c = c.next.Load()
	}
	return c, lo, true
}

// maxFrames bounds the frames one Frames call returns; Batch.More says
// there are more at once.
const maxFrames = 1024

// snapshotEnd ends a snapshot frame.
var snapshotEnd = []byte("\n\n")

// Frames appends to dst what the stream has not sent yet, as SSE frames
// to write in order: a snapshot when one is due, then the frames of the
// entries after it, up to maxFrames (Batch.More when there are more). The
// frames are shared with other streams: write them, do not modify them.
// It reads the log without a lock; only a snapshot takes the feed's read
// lock.
func (s *Sub) Frames(dst [][]byte) ([][]byte, Batch) {
	f := s.f
	if f.closed.Load() {
		return dst, Batch{Closed: true}
	}
	// The wake channel before the head: an entry after this head closes
	// this channel, or one after it that replaced it once closed.
	batch := Batch{Wake: *f.wake.Load()}
	head := f.head.Load()
	if s.snap == "" && head-s.pos > uint64(f.cfg.History) {
		s.snap = SnapBehind
	}
	if s.snap != "" {
		// A stream that fell behind may be given a recent snapshot and
		// the log after it; a new stream gets the state now (a client may
		// show the first snapshot alone, as watch --once does).
		e := f.snapshotJSON(s.snap != SnapBehind)
		s.c, s.pos = e.c, e.pos
		batch.Standby = e.service == Standby
		batch.Snapshot, s.snap = s.snap, ""
		prefix := append([]byte("id: "), strconv.AppendUint(nil, e.seq, 10)...)
		prefix = append(prefix, "\nevent: snapshot\ndata: "...)
		batch.More = s.pos < f.head.Load() // the log after it, at once
		return append(dst, prefix, e.json, snapshotEnd), batch
	}
	n := 0
	if s.hello != nil {
		dst, s.hello = append(dst, s.hello), nil
		n++
	}
	for ; s.pos < head; s.pos++ {
		if n == maxFrames {
			batch.More = true
			break
		}
		if s.pos-s.c.first == chunkSize {
			s.c = s.c.next.Load()
		}
		e := &s.c.entries[s.pos-s.c.first]
		switch e.kind {
		case reset:
			// What came before the reset is superseded: the snapshot
			// comes next, at once.
			s.snap, batch.More = SnapReset, true
			s.pos++
			return dst, batch
		case phase:
			batch.Standby = e.phase == Standby // the last phase is the one now
		default:
			batch.Changes++
		}
		dst = append(dst, e.frame)
		n++
	}
	return dst, batch
}

// Next is Frames written into b: the stream's next output as one buffer.
// Batch.More may be set: call it again.
func (s *Sub) Next(b []byte) ([]byte, Batch) {
	frames, batch := s.Frames(nil)
	for _, fr := range frames {
		b = append(b, fr...)
	}
	return b, batch
}
