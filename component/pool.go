package component

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// MaxPoolStreams is the most addresses a Pool takes: one per cluster node.
const MaxPoolStreams = 16

// ErrNoStream is returned by a Pool's requests and sends while none of its
// streams is up (or the one asked for is down). It wraps ErrClosed, so a
// caller that treats a lost stream as "wait for the next one" needs no
// new case.
var ErrNoStream = fmt.Errorf("%w: no stream of the pool is up", ErrClosed)

// EventKind says what an Event reports.
type EventKind int

const (
	// EventUp: a stream has been authenticated; Conn is the new stream.
	EventUp EventKind = iota + 1
	// EventStanza: a presence or message read on the stream (Stanza).
	EventStanza
	// EventDown: the stream has ended; Conn is the stream that ended, Err
	// why, Uptime how long it lasted. The Pool dials again by itself.
	EventDown
)

func (k EventKind) String() string {
	switch k {
	case EventUp:
		return "up"
	case EventStanza:
		return "stanza"
	case EventDown:
		return "down"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is what a Pool reports on Events. The events of one stream come
// in order: EventUp, the stanzas read on that stream, then EventDown once
// all of them have been handed on; the next EventUp comes after it. So a
// consumer that repairs its state on EventDown sees nothing of the ended
// stream afterwards. The events of different streams interleave.
type Event struct {
	Stream int // the stream's index in the Pool's addresses
	Kind   EventKind
	Stanza Stanza // EventStanza
	Conn   *Conn  // EventUp, EventDown
	Err    error  // EventDown
	Uptime time.Duration
}

// PoolHooks are told what the Pool's dial loops do, besides Events; every
// field may be nil. They run on the loop of the stream and must not block.
// Unlike Events, they are called even while nobody reads Events: a gauge
// of the streams up stays true while the consumer is busy.
type PoolHooks struct {
	// DialFailed: dialling stream i failed; the next try is after wait.
	DialFailed func(stream int, err error, wait time.Duration)
	// Connected: stream i is up with c (before its EventUp).
	Connected func(stream int, c *Conn)
	// Disconnected: stream i has ended, why, after up (before its
	// EventDown); the Pool dials it again after a backoff.
	Disconnected func(stream int, err error, up time.Duration)
}

// Pool keeps one component stream up per address (one per node of a
// cluster) and makes them one component. Each stream has its own dial,
// handshake, keepalive, reconnect and backoff (Run's loop), and all of
// them share one IQ table (a Group): a request sent on one stream gets its
// answer on whichever stream the server delivers it. The stanzas read on
// every stream come out of Events, tagged with the stream, and so do the
// streams' ups and downs. Start, IQ and Send go out on a healthy stream.
//
// Make a Pool with NewPool, read Events, and call Run, once: the streams
// live while Run does. All methods are safe for concurrent use.
type Pool struct {
	cfg        Config
	addrs      []string
	maxBackoff time.Duration
	hooks      PoolHooks
	group      *Group

	events chan Event
	ran    atomic.Bool

	mu    sync.Mutex
	conns []*Conn // by stream; nil while the stream is down
}

// NewPool returns a Pool for the streams to addresses, one per address
// (at most MaxPoolStreams, no duplicates), each dialled as cfg says.
// cfg.Address and cfg.Group are not used: stream i dials addresses[i], and
// every stream is in the Pool's Group, whose instance is cfg.Instance (or
// a new one). maxBackoff caps each stream's reconnect backoff (Run).
// Events is buffered with cfg.InboundQueue.
func NewPool(cfg Config, addresses []string, maxBackoff time.Duration, hooks PoolHooks) (*Pool, error) {
	switch {
	case len(addresses) == 0:
		return nil, errors.New("component: a pool needs at least one address")
	case len(addresses) > MaxPoolStreams:
		return nil, fmt.Errorf("component: a pool takes at most %d addresses, got %d", MaxPoolStreams, len(addresses))
	}
	for i, a := range addresses {
		if a == "" {
			return nil, fmt.Errorf("component: pool address %d is empty", i)
		}
		if j := slices.IndexFunc(addresses[:i], func(b string) bool { return strings.EqualFold(a, b) }); j >= 0 {
			return nil, fmt.Errorf("component: pool address %d (%s) is also address %d", i, a, j)
		}
	}
	cfg = cfg.withDefaults()
	cfg.Address = ""
	g := NewGroup(cfg.Name, cfg.Instance)
	cfg.Group, cfg.Instance = g, g.instance
	return &Pool{
		cfg:        cfg,
		addrs:      slices.Clone(addresses),
		maxBackoff: maxBackoff,
		hooks:      hooks,
		group:      g,
		events:     make(chan Event, cfg.InboundQueue),
		conns:      make([]*Conn, len(addresses)),
	}, nil
}

// Len returns how many streams the Pool keeps: one per address.
func (p *Pool) Len() int { return len(p.addrs) }

// Address returns the address of stream i.
func (p *Pool) Address(i int) string { return p.addrs[i] }

// Group returns the Group of the Pool's streams.
func (p *Pool) Group() *Group { return p.group }

// Name returns the component's JID.
func (p *Pool) Name() string { return p.cfg.Name }

// Events delivers the streams' ups, stanzas and downs (see Event). When
// nobody reads it and its buffer is full, the streams' readers wait: read
// it from a loop that never waits on the Pool's requests. It is closed
// once Run has returned.
func (p *Pool) Events() <-chan Event { return p.events }

// Run keeps every stream up until ctx ends, each in its own goroutine with
// Run's loop, and returns ctx.Err() once every stream has been closed and
// its goroutines have ended; then it closes Events. When ctx ends, events
// not yet handed on are dropped. A Pool runs once: a second Run returns an
// error at once.
func (p *Pool) Run(ctx context.Context) error {
	if p.ran.Swap(true) {
		return errors.New("component: Pool.Run called twice")
	}
	defer close(p.events)
	var wg sync.WaitGroup
	for i := range p.addrs {
		wg.Go(func() { p.runStream(ctx, i) })
	}
	wg.Wait()
	return ctx.Err()
}

// runStream is stream i's dial loop.
func (p *Pool) runStream(ctx context.Context, i int) {
	cfg := p.cfg
	cfg.Address = p.addrs[i]
	cfg.events, cfg.stream = p.events, i
	var cur *Conn // the stream's Conn: set by Connected, read by Disconnected, on this goroutine
	hooks := Hooks{
		Connected: func(c *Conn) {
			cur = c
			p.setConn(i, c)
			if f := p.hooks.Connected; f != nil {
				f(i, c)
			}
		},
		Disconnected: func(err error, up time.Duration) {
			// The stream is closed: its reader ends at once, and must have
			// ended before Run closes Events, which it sends to.
			<-cur.readDone
			p.clearConn(i, cur)
			if f := p.hooks.Disconnected; f != nil {
				f(i, err, up)
			}
			p.emit(ctx, Event{Stream: i, Kind: EventDown, Conn: cur, Err: err, Uptime: up})
			cur = nil
		},
	}
	if f := p.hooks.DialFailed; f != nil {
		hooks.DialFailed = func(err error, wait time.Duration) { f(i, err, wait) }
	}
	_ = Run(ctx, cfg, p.maxBackoff, hooks, func(sctx context.Context, c *Conn) error {
		return p.session(ctx, sctx, i, c)
	})
}

// session hands on stream i's EventUp, then lets its reader hand on the
// stanzas it reads to Events itself (Config.events), until the stream
// ends; it returns once the reader has ended, so that EventDown comes after
// all of them. sctx ends with the stream or with ctx, the Pool's.
func (p *Pool) session(ctx, sctx context.Context, i int, c *Conn) error {
	if !p.emit(ctx, Event{Stream: i, Kind: EventUp, Conn: c}) {
		return ctx.Err()
	}
	close(c.up)
	<-sctx.Done()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	// The stream ended. Its reader stops at once (the socket is closed),
	// after handing on what it read before.
	p.clearConn(i, c)
	<-c.readDone
	return nil
}

// emit hands ev on to Events, waiting for room until ctx ends; it reports
// whether it did.
func (p *Pool) emit(ctx context.Context, ev Event) bool {
	select {
	case p.events <- ev:
		return true
	default:
	}
	select {
	case p.events <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

func (p *Pool) setConn(i int, c *Conn) {
	p.mu.Lock()
	p.conns[i] = c
	p.mu.Unlock()
}

// clearConn marks stream i down, if c is still its Conn.
func (p *Pool) clearConn(i int, c *Conn) {
	p.mu.Lock()
	if p.conns[i] == c {
		p.conns[i] = nil
	}
	p.mu.Unlock()
}

// Conn returns the Conn of stream i while it is up, else nil. It may end
// at any time after: its requests then fail with ErrClosed.
func (p *Pool) Conn(i int) *Conn {
	if i < 0 || i >= len(p.addrs) {
		return nil
	}
	p.mu.Lock()
	c := p.conns[i]
	p.mu.Unlock()
	if c == nil || c.Err() != nil {
		return nil
	}
	return c
}

// Healthy returns the indexes of the streams that are up, in order.
func (p *Pool) Healthy() []int {
	var up []int
	for i := range p.addrs {
		if p.Conn(i) != nil {
			up = append(up, i)
		}
	}
	return up
}

// healthy returns the Conns of the streams that are up, in the order of
// the addresses: the first n of conns. An array, not a slice: every
// request goes through it, and it allocates nothing.
func (p *Pool) healthy() (conns [MaxPoolStreams]*Conn, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		if c != nil && c.Err() == nil {
			conns[n] = c
			n++
		}
	}
	return conns, n
}

// onAny runs f on the first healthy stream, in the order of the
// addresses, and on the next one while f fails with ErrClosed (the stream
// ended meanwhile). Always the first one that is up: requests started one
// after another go out in that order, on one stream, as long as it lives.
func (p *Pool) onAny(f func(c *Conn) error) error {
	conns, n := p.healthy()
	for _, c := range conns[:n] {
		err := f(c)
		if err == nil || !errors.Is(err, ErrClosed) {
			return err
		}
	}
	return ErrNoStream
}

// on runs f on stream i, or returns an error wrapping ErrNoStream while
// that stream is down.
func (p *Pool) on(i int, f func(c *Conn) error) error {
	c := p.Conn(i)
	if c == nil {
		if i < 0 || i >= len(p.addrs) {
			return fmt.Errorf("component: pool stream %d: want 0..%d", i, len(p.addrs)-1)
		}
		return fmt.Errorf("stream %d (%s): %w", i, p.addrs[i], ErrNoStream)
	}
	return f(c)
}

// Start sends an IQ request on the first stream that is up (see Conn.Start);
// its answer is matched on whichever stream it comes. Requests started one
// after another go out on one stream, in order, as long as it stays up.
// While no stream is up it returns ErrNoStream. The Call ends with an
// error wrapping ErrClosed if its stream ends before the answer.
func (p *Pool) Start(ctx context.Context, typ, to string, payload []byte) (*Call, error) {
	var call *Call
	err := p.onAny(func(c *Conn) (err error) {
		call, err = c.Start(ctx, typ, to, payload)
		return err
	})
	return call, err
}

// StartNotify is Start with the outcome told to n (see Conn.StartNotify);
// Abandon gives the request up.
func (p *Pool) StartNotify(ctx context.Context, typ, to string, payload []byte, n Notify) (uint64, error) {
	var seq uint64
	err := p.onAny(func(c *Conn) (err error) {
		seq, err = c.StartNotify(ctx, typ, to, payload, n)
		return err
	})
	return seq, err
}

// Abandon gives up the request seq of StartNotify, on whichever stream it
// went out (see Conn.Abandon).
func (p *Pool) Abandon(seq uint64) bool { return p.group.calls.Abandon(seq) }

// StartOn is Start on stream i only: while it is down, the error wraps
// ErrNoStream (and ErrClosed), and the caller may Start on any.
func (p *Pool) StartOn(ctx context.Context, i int, typ, to string, payload []byte) (*Call, error) {
	var call *Call
	err := p.on(i, func(c *Conn) (err error) {
		call, err = c.Start(ctx, typ, to, payload)
		return err
	})
	return call, err
}

// IQ is Start, then Wait with ctx: it returns the inner XML of the result,
// or a *StanzaError for an error answer.
func (p *Pool) IQ(ctx context.Context, typ, to string, payload []byte) ([]byte, error) {
	call, err := p.Start(ctx, typ, to, payload)
	if err != nil {
		return nil, err
	}
	return call.Wait(ctx)
}

// Send queues one serialised stanza on the first stream that is up (see
// Conn.Send).
func (p *Pool) Send(ctx context.Context, raw []byte) error {
	return p.onAny(func(c *Conn) error { return c.Send(ctx, raw) })
}

// SendOn is Send on stream i only.
func (p *Pool) SendOn(ctx context.Context, i int, raw []byte) error {
	return p.on(i, func(c *Conn) error { return c.Send(ctx, raw) })
}

// TrySend queues one serialised stanza on the first stream that is up if
// its writer has room, and reports whether it did (see Conn.TrySend). It
// never waits.
func (p *Pool) TrySend(raw []byte) bool {
	conns, n := p.healthy()
	for _, c := range conns[:n] {
		if c.TrySend(raw) {
			return true
		}
	}
	return false
}

// Presence returns a presence from the component to to, serialised (see
// Conn.Presence).
func (p *Pool) Presence(to, typ, show, status string) []byte {
	return presenceStanza(p.cfg.Name, to, typ, show, status)
}

// SendPresence sends a presence from the component to to on the first
// stream that is up (see Conn.SendPresence).
func (p *Pool) SendPresence(ctx context.Context, to, typ, show, status string) error {
	return p.onAny(func(c *Conn) error { return c.SendPresence(ctx, to, typ, show, status) })
}

// SendPresenceOn is SendPresence on stream i only.
func (p *Pool) SendPresenceOn(ctx context.Context, i int, to, typ, show, status string) error {
	return p.on(i, func(c *Conn) error { return c.SendPresence(ctx, to, typ, show, status) })
}
