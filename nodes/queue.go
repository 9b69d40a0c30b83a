package nodes

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pubpresence/pubpresence/component"
	"github.com/pubpresence/pubpresence/internal/xmpp"
	"github.com/pubpresence/pubpresence/presence"
	"github.com/pubpresence/pubpresence/pubsub"
)

// Starter starts IQ requests without waiting for their answers; requests
// go out in the order they were started, and the payload is copied before
// StartNotify returns. The outcome of a request goes to n.Answered, exactly
// once, on any goroutine (perhaps before StartNotify returns), unless
// Abandon(seq) reports true first; when StartNotify fails, n is never
// told. A *component.Pool and a *component.Conn are Starters.
type Starter interface {
	StartNotify(ctx context.Context, typ, to string, payload []byte, n component.Notify) (seq uint64, err error)
	Abandon(seq uint64) bool
}

// QueueConfig says where a Queue publishes.
type QueueConfig struct {
	Service string // the pubsub service JID
	Live    string // node for events
	Actual  string // node for the current state
	WithIP  bool   // publish the ip attribute
	Window  int    // requests in flight at once; default 64
	Timeout time.Duration
	// Last, when set, returns when the server last answered any request:
	// a request then waits on while the server answers others, up to
	// MaxWait in all, and fails after Timeout with no answer at all
	// (xmpp.Patience). Without it a request fails after Timeout.
	Last    func() time.Time
	MaxWait time.Duration
	// Overtaken, when set, makes a request that waited Timeout fail once
	// a request sent after it has been answered (xmpp.Patience).
	Overtaken func() time.Time
	MaxLive   int // live events waiting at most; more are dropped and counted; default 100000
	// LiveShare is how many live events go out for each request of the
	// state lane while both lanes have work; 0 serves the state lane
	// first; negative holds the live lane. SetLiveShare changes it.
	LiveShare int
}

// Result is the outcome of one request the queue sent.
type Result struct {
	Node     string
	Op       string // "publish", "retract" or "purge"
	ID       string
	Err      error
	Duration time.Duration
	// Absent: a retract the server answered item-not-found. It counts as
	// done (Err is nil): the item was not there, as far as the server
	// says.
	Absent bool
}

// ErrQueueFull is returned when a live event cannot be queued.
var ErrQueueFull = errors.New("nodes: live queue full")

type opKind uint8

const (
	opLive opKind = iota
	opActual
	opRaw
	opBarrier
	opPurge
)

// op is one entry of the state lane; the live lane holds bare conns.
type op struct {
	kind    opKind
	key     string        // opActual: the JID; opRaw: the item id
	node    string        // opRaw, opPurge
	payload []byte        // opRaw
	done    chan struct{} // opBarrier
	epoch   uint32        // opActual: the queue's epoch when queued
}

// pendingActual is the latest wanted state of one item on the actual node
// that has not been sent yet.
type pendingActual struct {
	conn    presence.Conn
	retract bool
	// epoch is that of its op. 32 bits keep the struct at 128 bytes: a Go
	// map stores larger values out of line, one allocation per change.
	epoch uint32
}

// fifo is a queue in a ring: its array is reused as it goes round, and
// grows only when full, so that a queue that never drains (a steady
// backlog) allocates nothing. Once drained, an array grown past
// fifoKeep is let go.
type fifo[T any] struct {
	s    []T // the ring
	head int // the first element's index in s
	n    int
}

// fifoKeep is the largest ring a drained fifo keeps.
const fifoKeep = 4096

func (f *fifo[T]) len() int { return f.n }

func (f *fifo[T]) push(v T) {
	if f.n == len(f.s) {
		grown := make([]T, max(16, 2*len(f.s)))
		k := copy(grown, f.s[f.head:])
		copy(grown[k:], f.s[:f.head])
		f.s, f.head = grown, 0
	}
	i := f.head + f.n
	if i >= len(f.s) {
		i -= len(f.s)
	}
	f.s[i] = v
	f.n++
}

// pop takes the first element; f must not be empty.
func (f *fifo[T]) pop() T {
	var zero T
	v := f.s[f.head]
	f.s[f.head] = zero // let the GC have what it held
	f.head++
	if f.head == len(f.s) {
		f.head = 0
	}
	f.n--
	if f.n == 0 {
		f.head = 0
		if len(f.s) > fifoKeep {
			f.s = nil
		}
	}
	return v
}

// at returns the place of the i-th element from the first (i < len()).
func (f *fifo[T]) at(i int) *T { return &f.s[(f.head+i)%len(f.s)] }

// filter keeps, in order, the elements for which keep holds, and returns
// how many it dropped.
func (f *fifo[T]) filter(keep func(T) bool) (dropped int) {
	var zero T
	n := f.n
	w := 0 // the kept ones so far, from the first
	for r := range n {
		if v := *f.at(r); keep(v) {
			*f.at(w) = v
			w++
		}
	}
	for i := w; i < n; i++ {
		*f.at(i) = zero // let the GC have what it held
	}
	f.n = w
	if w == 0 {
		f.head = 0
		if len(f.s) > fifoKeep {
			f.s = nil
		}
	}
	return n - w
}

// actualKeep is the most changes of the actual node whose map is kept once
// they are sent.
const actualKeep = 4096

// Queue publishes changes pipelined over one stream, from two lanes taken
// in turn while both have work (LiveShare live events per state request,
// or the state lane first), so that neither waits behind the other's
// backlog:
//
//   - the live lane: events on the live node, sent one by one in the order
//     queued, never merged;
//   - the state lane: changes to the actual node, raw publications and
//     barriers, in the order queued. Changes to one item of the actual node
//     that are still waiting are merged: only the latest is sent.
//
// Methods are safe for concurrent use; Run sends.
type Queue struct {
	cfg      QueueConfig
	conn     Starter
	onResult func(Result)

	mu       sync.Mutex
	live     fifo[presence.Conn]
	state    fifo[op]
	barriers int // opBarrier entries in state
	actual   map[string]pendingActual
	// actualMax is the most entries actual has held: a Go map keeps its
	// largest size, and one that held the whole diff of a cold start (a
	// million connections: some 400 MB) is made anew once drained.
	actualMax int
	// epoch counts the purges queued: a change to an item queued after a
	// purge is sent after it, never merged into one queued before.
	epoch    uint32
	stale    int  // ops of the state lane a purge dropped: they send nothing
	share    int  // QueueConfig.LiveShare, as set now
	liveRun  int  // live requests taken since the last state request, at most share
	held     bool // the live lane is not served (a negative share)
	drainers []chan struct{}
	dropped  uint64
	wake     chan struct{}
	answers  fifo[*slot] // answered, for Run to report

	// busy counts requests taken from a lane and not answered yet (or
	// failed to start). It grows under mu, with the lane shrinking, so
	// queued + busy never misses one.
	busy atomic.Int64
}

// NewQueue returns a queue that sends on conn; onResult, if not nil, is
// called for every answer, from several goroutines.
func NewQueue(conn Starter, cfg QueueConfig, onResult func(Result)) *Queue {
	if cfg.Window <= 0 {
		cfg.Window = 64
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.MaxLive <= 0 {
		cfg.MaxLive = 100000
	}
	share := max(cfg.LiveShare, 0)
	return &Queue{cfg: cfg, conn: conn, onResult: onResult, share: share, liveRun: share, held: cfg.LiveShare < 0,
		actual: make(map[string]pendingActual), wake: make(chan struct{}, 1)}
}

// SetLiveShare sets how many live events go out for each request of the
// state lane while both lanes have work; 0 serves the state lane first; a
// negative share holds the live lane (events are still queued, up to
// MaxLive) until the share is set again: Drained does not close while
// events are held.
//
// The state lane's requests are the expensive ones (a persistent item:
// about 1.3 ms on Prosody with SQLite, ten times a live event) and they
// merge while they wait, so a share above 1 lets events through at the
// server's live rate during a flood, while the actual node keeps up with
// the latest state of each connection. While the service is in init, its
// live events matter to no reader (they wait for online and fetch the
// actual node), and the service holds them.
func (q *Queue) SetLiveShare(n int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.held = n < 0
	q.share = max(n, 0)
	q.liveRun = q.share // the state lane's turn
	q.signal()
}

// signal wakes Run if it waits for work.
func (q *Queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Live queues an event for the live node (an Offline conn for a connection
// that went away) on the live lane. It returns ErrQueueFull, and counts it,
// when MaxLive events are waiting.
func (q *Queue) Live(c presence.Conn) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.live.len() >= q.cfg.MaxLive {
		q.dropped++
		return ErrQueueFull
	}
	q.live.push(c)
	q.signal()
	return nil
}

// EachLive calls f with each live event waiting, in order. f must not
// call the queue.
func (q *Queue) EachLive(f func(presence.Conn)) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i := range q.live.len() {
		f(*q.live.at(i))
	}
}

// FilterLive drops the live events waiting for which keep returns false;
// keep is called with each, in order, and must not call the queue. The
// others stay in their order. It returns how many it dropped.
func (q *Queue) FilterLive(keep func(presence.Conn) bool) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := q.live.filter(keep)
	if n > 0 {
		q.settle()
	}
	return n
}

// Actual queues the publication of c on the actual node, on the state lane.
func (q *Queue) Actual(c presence.Conn) { q.setActual(c.JID, pendingActual{conn: c}) }

// Retract queues the retraction of jid's item from the actual node, on the
// state lane.
func (q *Queue) Retract(jid string) { q.setActual(jid, pendingActual{retract: true}) }

func (q *Queue) setActual(jid string, p pendingActual) {
	q.mu.Lock()
	defer q.mu.Unlock()
	p.epoch = q.epoch
	if _, ok := q.actual[jid]; ok {
		q.actual[jid] = p // merged into the change already waiting
		return
	}
	q.actual[jid] = p
	q.actualMax = max(q.actualMax, len(q.actual))
	q.state.push(op{kind: opActual, key: jid, epoch: q.epoch})
	q.signal()
}

// Purge queues the removal of every item of node (the owner's purge,
// XEP-0060 §8.5) on the state lane. The changes to the actual node queued
// before it and not sent yet are dropped: the purge would remove what
// they write. Changes queued after it are sent after it.
func (q *Queue) Purge(node string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if node == q.cfg.Actual {
		q.stale += len(q.actual) // each has its op in the lane
		clear(q.actual)
		q.epoch++
	}
	q.state.push(op{kind: opPurge, node: node})
	q.signal()
}

// Raw queues the publication of one item with a ready payload, on the state
// lane.
func (q *Queue) Raw(node, id string, payload []byte) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.state.push(op{kind: opRaw, node: node, key: id, payload: payload})
	q.signal()
}

// Barrier returns a channel that is closed once every request of the state
// lane queued before it (Actual, Retract, Raw, Purge) has been answered or has
// failed, and so has every request, of either lane, that was in flight when
// Run reached the barrier. It does not wait for live events that are still
// queued: they go out on their own lane. If Run ends before reaching the
// barrier, the channel stays open.
func (q *Queue) Barrier() <-chan struct{} {
	done := make(chan struct{})
	q.mu.Lock()
	defer q.mu.Unlock()
	q.state.push(op{kind: opBarrier, done: done})
	q.barriers++
	q.signal()
	return done
}

// Drained returns a channel that is closed once, at some moment after the
// call, both lanes are empty and no request is in flight: everything queued
// by then has been answered or has failed. It is closed at once when that
// holds already. If Run ends (its ctx) with requests still queued, the
// channel stays open.
func (q *Queue) Drained() <-chan struct{} {
	done := make(chan struct{})
	q.mu.Lock()
	defer q.mu.Unlock()
	q.drainers = append(q.drainers, done)
	q.settle()
	return done
}

// settle closes the Drained channels if nothing is queued or in flight.
// Called with mu held, wherever the queue may have just become idle: a
// barrier taken, a request answered, a Drained call.
func (q *Queue) settle() {
	if len(q.drainers) == 0 || q.live.len() > 0 || q.state.len() > 0 || q.busy.Load() > 0 {
		return
	}
	for _, d := range q.drainers {
		close(d)
	}
	q.drainers = nil
}

// Len returns the number of requests queued in both lanes and not yet sent.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.live.len() + q.state.len() - q.barriers - q.stale
}

// StateQueued returns the number of requests of the state lane queued and
// not yet sent (changes of the actual node, raw publications, purges).
func (q *Queue) StateQueued() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.state.len() - q.barriers - q.stale
}

// Pending returns the number of requests queued or sent and not yet
// answered: what would be lost if the stream ended now.
func (q *Queue) Pending() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.live.len() + q.state.len() - q.barriers - q.stale + int(q.busy.Load())
}

// Dropped returns how many live events were refused because the queue was full.
func (q *Queue) Dropped() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dropped
}

// take returns the next op, from the lanes in turn, if there is one. A
// live event comes back as kind opLive with its conn; an actual item with
// its latest wanted state. A request taken counts as busy until done is
// called for it.
func (q *Queue) take() (o op, c presence.Conn, retract, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.stale > 0 && q.state.len() > 0 {
		// Drop what a purge made moot before it counts as work.
		f := q.state.s[q.state.head]
		if p, ok := q.actual[f.key]; f.kind != opActual || ok && p.epoch == f.epoch {
			break
		}
		q.state.pop()
		q.stale--
	}
	nl, ns := q.live.len(), q.state.len()
	if q.held {
		nl = 0
	}
	if nl == 0 && ns == 0 {
		q.settle()
		return op{}, presence.Conn{}, false, false
	}
	if nl > 0 && (ns == 0 || q.liveRun < q.share) {
		c = q.live.pop()
		o.kind = opLive
		q.liveRun = min(q.liveRun+1, q.share)
	} else {
		o = q.state.pop()
		q.liveRun = 0
	}
	switch o.kind {
	case opActual:
		p := q.actual[o.key]
		delete(q.actual, o.key)
		if len(q.actual) == 0 && q.actualMax > actualKeep {
			q.actual, q.actualMax = make(map[string]pendingActual), 0
		}
		c, retract = p.conn, p.retract
	case opBarrier:
		q.barriers--
		q.settle()
	}
	if o.kind != opBarrier {
		q.busy.Add(1)
	}
	return o, c, retract, true
}

// done ends a request taken by take, after its result is reported.
func (q *Queue) done() {
	if q.busy.Add(-1) == 0 {
		q.mu.Lock()
		q.settle()
		q.mu.Unlock()
	}
}

// slot is one request in flight: Run has Window of them. Run owns every
// field but err, which Answered sets under q.mu before handing the slot
// back through q.answers.
type slot struct {
	q              *Queue
	node, id, what string
	start          time.Time
	seq            uint64 // the Starter's
	busy           bool   // in flight
	err            error
}

// Answered takes the outcome of the slot's request (component.Notify), on
// whichever goroutine ends it, and hands it to Run, which reports it.
func (s *slot) Answered(_ []byte, err error) {
	q := s.q
	q.mu.Lock()
	s.err = err
	q.answers.push(s)
	q.signal()
	q.mu.Unlock()
}

// sweepPeriod is how often Run looks for requests that have waited too
// long (xmpp.Patience with Timeout as its quiet): a request is given up
// at most this late.
func sweepPeriod(timeout time.Duration) time.Duration {
	return min(max(timeout/8, time.Millisecond), time.Second)
}

// Run sends queued requests until ctx ends, with at most Window in flight,
// and returns once the requests it started have ended: those still
// waiting when ctx ends are abandoned and reported with ctx's error. What
// is still queued stays queued.
//
// Run alone sends and reports, on its own goroutine: the Starter hands it
// each answer (slot.Answered), and it takes all that came at each wake-up.
// Requests that have waited too long (Timeout with no answer from the
// server, or MaxWait in all: xmpp.Patience) are found by one ticker
// (sweepPeriod): no
// goroutine, channel, context or timer is made per request.
func (q *Queue) Run(ctx context.Context) {
	slots := make([]slot, q.cfg.Window)
	free := make([]*slot, 0, len(slots))
	for i := range slots {
		slots[i].q = q
		free = append(free, &slots[i])
	}
	inflight := 0
	finish := func(s *slot, err error) {
		s.busy = false
		inflight--
		free = append(free, s)
		absent := err != nil && s.what == "retract" && errors.Is(err, xmpp.ErrItemNotFound)
		if absent {
			err = nil
		}
		q.report(Result{Node: s.node, Op: s.what, ID: s.id, Err: err, Duration: time.Since(s.start), Absent: absent})
		q.done()
	}
	var answered []*slot // taken from q.answers, reused
	collect := func() {
		q.mu.Lock()
		for q.answers.len() > 0 {
			answered = append(answered, q.answers.pop())
		}
		q.mu.Unlock()
		for i, s := range answered {
			finish(s, s.err)
			answered[i] = nil
		}
		answered = answered[:0]
	}
	// barrier, once Run has reached one, is closed when nothing is in
	// flight; nothing is sent meanwhile.
	var barrier chan struct{}
	defer func() {
		for i := range slots {
			if s := &slots[i]; s.busy && q.conn.Abandon(s.seq) {
				finish(s, ctx.Err())
			}
		}
		for { // the others are being answered
			collect()
			if inflight == 0 {
				break
			}
			<-q.wake
		}
		if barrier != nil {
			close(barrier)
		}
	}()
	patience := xmpp.Patience{Quiet: q.cfg.Timeout, Max: q.cfg.MaxWait, Last: q.cfg.Last, Overtaken: q.cfg.Overtaken}
	sweep := time.NewTicker(sweepPeriod(q.cfg.Timeout))
	defer sweep.Stop()
	buf := make([]byte, 0, 1024)
	for {
		collect()
		if barrier != nil && inflight == 0 {
			close(barrier)
			barrier = nil
		}
		if ctx.Err() != nil {
			return
		}
		// A slot first, then the op: what waits for the window stays
		// queued, where later changes to an actual item merge into it.
		if barrier == nil && len(free) > 0 {
			if o, c, retract, ok := q.take(); ok {
				if o.kind == opBarrier {
					barrier = o.done
					continue
				}
				s := free[len(free)-1]
				free = free[:len(free)-1]
				s.what, s.err = "publish", nil
				buf = buf[:0]
				switch {
				case o.kind == opLive:
					s.node, s.id = q.cfg.Live, c.JID
					buf = PublishUserRequest(buf, s.node, c, q.cfg.WithIP)
				case o.kind == opActual && retract:
					s.node, s.id, s.what = q.cfg.Actual, o.key, "retract"
					buf = pubsub.RetractRequest(buf, s.node, s.id)
				case o.kind == opActual:
					s.node, s.id = q.cfg.Actual, o.key
					buf = PublishUserRequest(buf, s.node, c, q.cfg.WithIP)
				case o.kind == opPurge:
					s.node, s.id, s.what = o.node, "", "purge"
					buf = pubsub.PurgeRequest(buf, s.node)
				default:
					s.node, s.id = o.node, o.key
					buf = pubsub.PublishRequest(buf, s.node, s.id, o.payload)
				}
				s.start = time.Now()
				// StartNotify copies buf into its stanza: buf is reused
				// for the next one. The answer may come before it returns:
				// Run takes it in a later round, once s is busy.
				seq, err := q.conn.StartNotify(ctx, "set", q.cfg.Service, buf, s)
				if err != nil {
					free = append(free, s)
					q.report(Result{Node: s.node, Op: s.what, ID: s.id, Err: err, Duration: time.Since(s.start)})
					q.done()
					continue
				}
				s.seq, s.busy = seq, true
				inflight++
				continue
			}
		}
		select {
		case <-q.wake:
		case now := <-sweep.C:
			for i := range slots {
				s := &slots[i]
				if !s.busy {
					continue
				}
				if expired, _ := patience.Check(s.start, now); expired && q.conn.Abandon(s.seq) {
					finish(s, context.DeadlineExceeded)
				}
			}
		case <-ctx.Done():
		}
	}
}

func (q *Queue) report(r Result) {
	if q.onResult != nil {
		q.onResult(r)
	}
}
