// Package feed is the HTTP face's copy of the service's state: the online
// connections by user, the service's phase, and the recent changes, each
// with a sequence number (seq), kept in a ring so that a client that drops
// can resume where it stopped (docs/http.md).
//
// One goroutine writes (the service's loop: Set, Gone, Hide, SetPhase);
// any number read (Snapshot, User, and the streams' Subs). A writer never
// waits for a reader longer than it takes to copy the state's entries: a
// stream takes what is new under a read lock and writes it to its client
// after letting go. Every change is encoded once, as the SSE frame every
// stream sends.
package feed

import (
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pubpresence/pubpresence/nodes"
	"github.com/pubpresence/pubpresence/presence"
)

// The service's phases as the HTTP face tells them.
const (
	Init    = "init"    // connecting or resyncing: the connections may be incomplete
	Online  = "online"  // the connections are the truth
	Standby = "standby" // another instance is active: this one serves nothing
)

// Config sets up a Feed.
type Config struct {
	// History is how many entries (changes, and the rarer phase changes
	// and resets) are kept for clients that resume, and how far behind a
	// stream may fall before it is sent a snapshot; default 10000.
	History int
	// WithIP puts the connections' addresses in what the feed serves.
	WithIP bool
	// Coalesce is how long the first change of a burst waits for more
	// before the streams are woken, so that a stream writes once per burst;
	// default DefaultCoalesce; negative wakes them at every change.
	Coalesce time.Duration
	// Start is the seq before the first change. Default: the time in
	// microseconds since 1970, so that a later process starts above what an
	// earlier one reached (at under a million changes a second), and a
	// client's Last-Event-ID from an earlier process is never mistaken for
	// one of this process.
	Start uint64
}

// kind is what an entry of the log is.
type kind uint8

const (
	change kind = iota // a connection changed: a change frame
	phase              // the service's phase changed: a service frame
	reset              // the state changed without events (Hide): streams need a snapshot
)

// entry is one element of the log.
type entry struct {
	kind  kind
	seq   uint64 // a change's or reset's own seq; a phase's: the last change before it
	frame []byte // the SSE frame; nil for a reset
	phase string // kind phase: the new phase
}

// chunkSize is how many entries a chunk of the log holds.
const chunkSize = 256

// chunk is a piece of the log. Each slot is written once, before the
// feed's head moves past it (an atomic store), and never again; so streams
// read the slots below the head they loaded without a lock. The writer
// links a new chunk (next) before the head moves into it.
type chunk struct {
	first   uint64 // the position of entries[0]
	entries [chunkSize]entry
	next    atomic.Pointer[chunk]
}

// Feed is the state the HTTP face serves. Create it with New.
//
// The log of entries is a list of chunks: the writer appends under mu;
// streams read it with no lock (chunk). The feed keeps the chunks that
// hold the last Config.History entries for resuming; a stream that is
// further behind still holds its own chunk, so it reads nothing
// overwritten: it notices it is behind and takes a snapshot.
type Feed struct {
	cfg Config

	mu      sync.RWMutex               // the state below; streams take it only for a snapshot or a resume
	users   map[string][]presence.Conn // by bare JID, each sorted by full JID
	conns   int
	seq     uint64 // the last change's seq
	floor   uint64 // the lowest Last-Event-ID that can be resumed: the last reset's seq
	service string
	oldest  *chunk // the oldest chunk kept for resuming
	tail    *chunk // the chunk the next entry goes to

	head    atomic.Uint64                 // the position of the next entry
	wake    atomic.Pointer[chan struct{}] // closed at the next broadcast
	pending atomic.Bool                   // a broadcast is scheduled
	closed  atomic.Bool
	wakeMu  sync.Mutex // orders broadcasts and Close

	// encoded is the JSON of the last snapshot encoded, shared by every
	// stream and request that wants the same one (many clients connect at
	// once after a restart).
	encoded atomic.Pointer[encodedSnapshot]
}

// encodedSnapshot is a snapshot's JSON and what it was taken at: its
// seq and phase, and the place in the log right after it.
type encodedSnapshot struct {
	seq     uint64
	service string
	json    []byte
	c       *chunk
	pos     uint64
}

// New returns an empty feed in phase Init.
func New(cfg Config) *Feed {
	if cfg.History <= 0 {
		cfg.History = 10000
	}
	if cfg.Coalesce == 0 {
		cfg.Coalesce = DefaultCoalesce
	}
	if cfg.Start == 0 {
		cfg.Start = uint64(time.Now().UnixMicro())
	}
	c := &chunk{}
	f := &Feed{cfg: cfg, users: make(map[string][]presence.Conn), seq: cfg.Start, floor: cfg.Start,
		service: Init, oldest: c, tail: c}
	wake := make(chan struct{})
	f.wake.Store(&wake)
	return f
}

// DefaultCoalesce is Config.Coalesce's default.
const DefaultCoalesce = 5 * time.Millisecond

// WithIP reports whether the feed serves addresses.
func (f *Feed) WithIP() bool { return f.cfg.WithIP }

// Set records c, a connection that is online (c.Show is not Offline), as
// new or changed. A c equal to the stored one in every field, Since
// included, is not a change.
func (f *Feed) Set(c presence.Conn) {
	if !f.cfg.WithIP {
		c.IP = ""
	}
	bare := c.Bare()
	f.mu.Lock()
	defer f.mu.Unlock()
	list := f.users[bare]
	i, found := slices.BinarySearchFunc(list, c.JID, byJID)
	if found {
		if list[i].SameState(c) && list[i].Since.Equal(c.Since) {
			return
		}
		list[i] = c
	} else {
		list = slices.Insert(list, i, c)
		f.users[bare] = list
		f.conns++
	}
	f.changeLocked(c)
}

// Gone records that the connection went away; c.Since is when. An unknown
// connection is no change.
func (f *Feed) Gone(c presence.Conn) {
	bare := c.Bare()
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.removeLocked(bare, c.JID) {
		return
	}
	c.Show = presence.Offline
	if !f.cfg.WithIP {
		c.IP = ""
	}
	f.changeLocked(c)
}

// Hide drops connections without a change event (users the operator now
// excludes: an event would name them once more). Streams are sent a fresh
// snapshot, and no client can resume from before it.
func (f *Feed) Hide(jids ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	hidden := false
	for _, jid := range jids {
		bare, _, _ := strings.Cut(jid, "/")
		if f.removeLocked(bare, jid) {
			hidden = true
		}
	}
	if !hidden {
		return
	}
	f.seq++
	f.floor = f.seq
	f.appendLocked(entry{kind: reset, seq: f.seq})
}

// SetPhase records the service's phase (Init, Online or Standby).
func (f *Feed) SetPhase(p string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p == f.service {
		return
	}
	f.service = p
	f.appendLocked(entry{kind: phase, seq: f.seq, phase: p, frame: serviceFrame(p)})
}

// Phase returns the service's phase.
func (f *Feed) Phase() string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.service
}

// Close wakes every stream for the last time; Subs of a closed feed end.
func (f *Feed) Close() {
	f.wakeMu.Lock()
	defer f.wakeMu.Unlock()
	if f.closed.Swap(true) {
		return
	}
	close(*f.wake.Load())
}

func byJID(c presence.Conn, jid string) int { return strings.Compare(c.JID, jid) }

// removeLocked drops the connection; false when it is unknown.
func (f *Feed) removeLocked(bare, jid string) bool {
	list := f.users[bare]
	i, found := slices.BinarySearchFunc(list, jid, byJID)
	if !found {
		return false
	}
	list = slices.Delete(list, i, i+1)
	if len(list) == 0 {
		delete(f.users, bare)
	} else {
		f.users[bare] = list
	}
	f.conns--
	return true
}

// changeLocked gives c the next seq and appends its change frame.
func (f *Feed) changeLocked(c presence.Conn) {
	f.seq++
	b := make([]byte, 0, 192+len(c.JID)*2+len(c.Text)+len(c.IP)) // the frame without escapes
	b = append(b, "id: "...)
	b = strconv.AppendUint(b, f.seq, 10)
	b = append(b, "\nevent: change\ndata: "...)
	b = nodes.AppendJSON(b, c, f.cfg.WithIP)
	b = append(b, "\n\n"...)
	f.appendLocked(entry{kind: change, seq: f.seq, frame: b})
}

// appendLocked writes e to the next slot, moves the head past it, lets go
// of the chunks no resume needs, and schedules a broadcast.
func (f *Feed) appendLocked(e entry) {
	pos := f.head.Load()
	if pos-f.tail.first == chunkSize {
		next := &chunk{first: pos}
		f.tail.next.Store(next)
		f.tail = next
	}
	f.tail.entries[pos-f.tail.first] = e
	f.head.Store(pos + 1)
	for pos+1-f.oldest.first > uint64(f.cfg.History)+chunkSize {
		f.oldest = f.oldest.next.Load()
	}
	if f.closed.Load() || !f.pending.CompareAndSwap(false, true) {
		return
	}
	if f.cfg.Coalesce < 0 {
		f.broadcast()
		return
	}
	time.AfterFunc(f.cfg.Coalesce, f.broadcast)
}

// broadcast wakes every stream waiting on the current wake channel.
func (f *Feed) broadcast() {
	f.wakeMu.Lock()
	defer f.wakeMu.Unlock()
	f.pending.Store(false)
	if f.closed.Load() {
		return
	}
	next := make(chan struct{})
	close(*f.wake.Swap(&next))
}

// serviceFrame is the SSE frame of a phase. It has no id: a client's
// Last-Event-ID stays the last change's seq.
func serviceFrame(p string) []byte {
	return []byte("event: service\ndata: {\"service\":\"" + p + "\"}\n\n")
}

// Snapshot is the whole state at one seq.
type Snapshot struct {
	Service string
	Seq     uint64 // the last change it holds
	Conns   []presence.Conn
}

// Snapshot returns the state now, sorted by full JID.
func (f *Feed) Snapshot() Snapshot {
	f.mu.RLock()
	s := f.snapshotLocked()
	f.mu.RUnlock()
	sortConns(s.Conns)
	return s
}

// snapshotLocked copies the state; the caller sorts it after letting go of
// the lock.
func (f *Feed) snapshotLocked() Snapshot {
	s := Snapshot{Service: f.service, Seq: f.seq, Conns: make([]presence.Conn, 0, f.conns)}
	for _, list := range f.users {
		s.Conns = append(s.Conns, list...)
	}
	return s
}

func sortConns(conns []presence.Conn) {
	slices.SortFunc(conns, func(a, b presence.Conn) int { return strings.Compare(a.JID, b.JID) })
}

// User returns the connections of the bare JID, sorted by full JID, and
// the service's phase.
func (f *Feed) User(bare string) ([]presence.Conn, string) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return slices.Clone(f.users[bare]), f.service
}

// SnapshotJSON returns the JSON of the state now (AppendSnapshot) and its
// seq. The JSON is shared: do not modify it.
func (f *Feed) SnapshotJSON() (uint64, []byte) {
	e := f.snapshotJSON(true)
	return e.seq, e.json
}

// snapshotJSON returns an encoded snapshot with the place in the log right
// after it. exact asks for the state now; else a stream may be given a
// recent one, at most a quarter of the history back (the log after it
// brings the stream to now): under a flood of changes, streams that fall
// behind then share one encoding instead of each making its own.
func (f *Feed) snapshotJSON(exact bool) *encodedSnapshot {
	f.mu.RLock()
	head := f.head.Load()
	if e := f.encoded.Load(); e != nil && e.seq >= f.floor {
		if (e.seq == f.seq && e.service == f.service) || (!exact && head-e.pos <= uint64(f.cfg.History)/4) {
			f.mu.RUnlock()
			return e
		}
	}
	s := f.snapshotLocked()
	e := &encodedSnapshot{seq: s.Seq, service: s.Service, c: f.tail, pos: head}
	f.mu.RUnlock()
	sortConns(s.Conns)
	e.json = f.AppendSnapshot(nil, s)
	f.encoded.Store(e)
	return e
}

// AppendSnapshot appends the JSON of s:
// {"service":"online","seq":1234,"connections":[…]}, with "partial":true
// after the service while it is not online.
func (f *Feed) AppendSnapshot(b []byte, s Snapshot) []byte {
	b = append(b, `{"service":"`...)
	b = append(b, s.Service...)
	b = append(b, '"')
	if s.Service != Online {
		b = append(b, `,"partial":true`...)
	}
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, s.Seq, 10)
	b = append(b, `,"connections":[`...)
	for i, c := range s.Conns {
		if i > 0 {
			b = append(b, ',')
		}
		b = nodes.AppendJSON(b, c, f.cfg.WithIP)
	}
	return append(b, "]}"...)
}

// rank orders statuses from the most available: chat, online, away, xa,
// dnd (asked not to be disturbed), then offline.
func rank(s presence.Show) int {
	switch s {
	case presence.Chat:
		return 5
	case presence.Online:
		return 4
	case presence.Away:
		return 3
	case presence.XA:
		return 2
	case presence.DND:
		return 1
	}
	return 0
}

// MostAvailable returns the status of the most available connection
// (rank; then the higher priority, then the later since), offline for none.
func MostAvailable(conns []presence.Conn) presence.Show {
	best := -1
	for i, c := range conns {
		if best < 0 {
			best = i
			continue
		}
		b := conns[best]
		switch {
		case rank(c.Show) != rank(b.Show):
			if rank(c.Show) > rank(b.Show) {
				best = i
			}
		case c.Priority != b.Priority:
			if c.Priority > b.Priority {
				best = i
			}
		case c.Since.After(b.Since):
			best = i
		}
	}
	if best < 0 {
		return presence.Offline
	}
	return conns[best].Show
}
