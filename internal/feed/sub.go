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
	f      *Feed
	pos    uint64 // the next ring position to send
	snap   string // the next Next starts with a snapshot, for this reason; "" when not
	frames [][]byte
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
}

// Follow returns a Sub for a client that has seen everything up to the
// Last-Event-ID last (has is false when it sent none or it was
// unreadable). When the feed still holds every entry after last, the Sub
// sends them (resumed is true); else it starts with a snapshot.
func (f *Feed) Follow(last uint64, has bool) (s *Sub, resumed bool) {
	s = &Sub{f: f}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if has {
		if pos, ok := f.resumeLocked(last); ok {
			s.pos = pos
			return s, true
		}
	}
	s.snap = SnapStart
	return s, false
}

// resumeLocked returns the position of the first entry a client that has
// seen everything up to seq last has not: the one after last's change (or
// reset), phases that followed it included.
func (f *Feed) resumeLocked(last uint64) (uint64, bool) {
	if last < f.floor || last > f.seq {
		return 0, false
	}
	n := uint64(len(f.ring))
	tail := f.head - min(f.head, n)
	if tail > 0 {
		// The oldest entry held must be at or before last, or last's
		// successor itself: else some entries after last are gone.
		if e := &f.ring[tail%n]; e.seq > last+1 || (e.seq == last+1 && e.kind == phase) {
			return 0, false
		}
	}
	// The first position whose entry is after last; seqs never decrease
	// along the ring.
	lo, hi := tail, f.head
	for lo < hi {
		mid := lo + (hi-lo)/2
		e := &f.ring[mid%n]
		if e.seq < last || (e.seq == last && e.kind != phase) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, true
}

// Next appends to b what the stream has not sent yet: a snapshot frame
// when one is due, then the frames of the entries after it.
func (s *Sub) Next(b []byte) ([]byte, Batch) {
	f := s.f
	var batch Batch
	var snap Snapshot
	s.frames = s.frames[:0]
	f.mu.RLock()
	if f.closed {
		f.mu.RUnlock()
		return b, Batch{Closed: true}
	}
	batch.Wake = f.wake
	n := uint64(len(f.ring))
	if s.snap == "" && s.pos+n < f.head {
		s.snap = SnapBehind
	}
	for p := s.pos; s.snap == "" && p < f.head; p++ {
		e := &f.ring[p%n]
		switch e.kind {
		case reset:
			s.snap = SnapReset
		case phase:
			batch.Standby = e.phase == Standby // the last phase is the one now
			s.frames = append(s.frames, e.frame)
		default:
			batch.Changes++
			s.frames = append(s.frames, e.frame)
		}
	}
	if s.snap != "" {
		snap = f.snapshotLocked()
		batch.Standby = f.service == Standby
		s.frames, batch.Changes = s.frames[:0], 0
	}
	s.pos = f.head
	f.mu.RUnlock()

	if s.snap != "" {
		batch.Snapshot, s.snap = s.snap, ""
		sortConns(snap.Conns)
		b = append(b, "id: "...)
		b = strconv.AppendUint(b, snap.Seq, 10)
		b = append(b, "\nevent: snapshot\ndata: "...)
		b = f.AppendSnapshot(b, snap)
		b = append(b, "\n\n"...)
	}
	for _, fr := range s.frames {
		b = append(b, fr...)
	}
	clear(s.frames) // hold no frame the ring has let go of
	return b, batch
}
