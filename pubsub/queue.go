package pubsub

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pubpresence/pubpresence/component"
	"github.com/pubpresence/pubpresence/presence"
)

// Starter starts an IQ request without waiting for its answer; requests go
// out in the order they were started, and the payload is copied before
// Start returns. *component.Conn is one.
type Starter interface {
	Start(ctx context.Context, typ, to string, payload []byte) (*component.Call, error)
}

// QueueConfig says where a Queue publishes.
type QueueConfig struct {
	Service string // the pubsub service JID
	Live    string // node for events
	Actual  string // node for the current state
	WithIP  bool   // publish the ip attribute
	Window  int    // requests in flight at once; default 64
	Timeout time.Duration
	MaxLive int // live events waiting at most; more are dropped and counted; default 100000
}

// Result is the outcome of one request the queue sent.
type Result struct {
	Node     string
	Op       string // "publish" or "retract"
	ID       string
	Err      error
	Duration time.Duration
}

// ErrQueueFull is returned when a live event cannot be queued.
var ErrQueueFull = errors.New("pubsub: live queue full")

type opKind uint8

const (
	opLive opKind = iota
	opActual
	opRaw
	opBarrier
)

type op struct {
	kind    opKind
	conn    presence.Conn // opLive
	jid     string        // opActual
	node    string        // opRaw
	id      string        // opRaw
	payload []byte        // opRaw
	done    chan struct{} // opBarrier
}

// pendingActual is the latest wanted state of one item on the actual node
// that has not been sent yet.
type pendingActual struct {
	conn    presence.Conn
	retract bool
}

// Queue publishes changes in order, pipelined over one stream. Events on the
// live node are sent one by one, in the order queued, never merged. Changes
// to one item of the actual node that are still waiting are merged: only
// the latest is sent. Methods are safe for concurrent use; Run sends.
type Queue struct {
	cfg      QueueConfig
	conn     Starter
	onResult func(Result)

	mu      sync.Mutex
	ops     []op
	head    int
	live    int
	actual  map[string]*pendingActual
	wake    chan struct{}
	dropped uint64

	inflight atomic.Int64 // requests sent and not answered
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
	return &Queue{cfg: cfg, conn: conn, onResult: onResult,
		actual: make(map[string]*pendingActual), wake: make(chan struct{}, 1)}
}

func (q *Queue) push(o op) {
	q.ops = append(q.ops, o)
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Live queues an event for the live node (an Offline conn for a connection
// that went away). It returns ErrQueueFull, and counts it, when MaxLive
// events are waiting.
func (q *Queue) Live(c presence.Conn) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.live >= q.cfg.MaxLive {
		q.dropped++
		return ErrQueueFull
	}
	q.live++
	q.push(op{kind: opLive, conn: c})
	return nil
}

// Actual queues the publication of c on the actual node.
func (q *Queue) Actual(c presence.Conn) { q.setActual(c.JID, pendingActual{conn: c}) }

// Retract queues the retraction of jid's item from the actual node.
func (q *Queue) Retract(jid string) { q.setActual(jid, pendingActual{retract: true}) }

func (q *Queue) setActual(jid string, p pendingActual) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if cur, ok := q.actual[jid]; ok {
		*cur = p
		return
	}
	q.actual[jid] = &p
	q.push(op{kind: opActual, jid: jid})
}

// Raw queues the publication of one item with a ready payload.
func (q *Queue) Raw(node, id string, payload []byte) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.push(op{kind: opRaw, node: node, id: id, payload: payload})
}

// Barrier returns a channel that is closed once every request queued before
// it has been answered (or has failed).
func (q *Queue) Barrier() <-chan struct{} {
	done := make(chan struct{})
	q.mu.Lock()
	defer q.mu.Unlock()
	q.push(op{kind: opBarrier, done: done})
	return done
}

// Len returns the number of queued requests not yet sent.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.ops) - q.head
}

// Pending returns the number of requests queued or sent and not yet
// answered: what would be lost if the stream ended now.
func (q *Queue) Pending() int { return q.Len() + int(q.inflight.Load()) }

// Dropped returns how many live events were refused because the queue was full.
func (q *Queue) Dropped() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dropped
}

// pop takes the next op; for an actual item it takes the latest wanted state.
func (q *Queue) pop(ctx context.Context) (op, pendingActual, bool) {
	for {
		q.mu.Lock()
		if q.head < len(q.ops) {
			o := q.ops[q.head]
			q.ops[q.head] = op{}
			q.head++
			if q.head == len(q.ops) {
				q.ops, q.head = q.ops[:0], 0
			} else if q.head > 1024 && q.head*2 > len(q.ops) {
				q.ops, q.head = append(q.ops[:0:0], q.ops[q.head:]...), 0
			}
			var p pendingActual
			switch o.kind {
			case opLive:
				q.live--
			case opActual:
				p = *q.actual[o.jid]
				delete(q.actual, o.jid)
			}
			q.mu.Unlock()
			return o, p, true
		}
		q.mu.Unlock()
		select {
		case <-q.wake:
		case <-ctx.Done():
			return op{}, pendingActual{}, false
		}
	}
}

// Run sends queued requests until ctx ends, with at most Window in flight.
func (q *Queue) Run(ctx context.Context) {
	sem := make(chan struct{}, q.cfg.Window)
	var inflight sync.WaitGroup
	defer inflight.Wait()
	buf := make([]byte, 0, 1024)
	for {
		o, p, ok := q.pop(ctx)
		if !ok {
			return
		}
		if o.kind == opBarrier {
			inflight.Wait()
			close(o.done)
			continue
		}
		var node, id, what string
		buf = buf[:0]
		switch {
		case o.kind == opLive:
			node, id, what = q.cfg.Live, o.conn.JID, "publish"
			buf = PublishUserRequest(buf, node, o.conn, q.cfg.WithIP)
		case o.kind == opActual && p.retract:
			node, id, what = q.cfg.Actual, o.jid, "retract"
			buf = RetractRequest(buf, node, id)
		case o.kind == opActual:
			node, id, what = q.cfg.Actual, o.jid, "publish"
			buf = PublishUserRequest(buf, node, p.conn, q.cfg.WithIP)
		default:
			node, id, what = o.node, o.id, "publish"
			buf = PublishRequest(buf, node, id, o.payload)
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		start := time.Now()
		rctx, cancel := context.WithTimeout(ctx, q.cfg.Timeout)
		// Start copies buf into its stanza: buf is reused for the next one.
		call, err := q.conn.Start(rctx, "set", q.cfg.Service, buf)
		if err != nil {
			cancel()
			<-sem
			q.report(Result{Node: node, Op: what, ID: id, Err: err, Duration: time.Since(start)})
			continue
		}
		inflight.Add(1)
		q.inflight.Add(1)
		go func() {
			defer inflight.Done()
			_, err := call.Wait(rctx)
			cancel()
			<-sem
			q.inflight.Add(-1)
			if err != nil && what == "retract" && component.Condition(err) == "item-not-found" {
				err = nil
			}
			q.report(Result{Node: node, Op: what, ID: id, Err: err, Duration: time.Since(start)})
		}()
	}
}

func (q *Queue) report(r Result) {
	if q.onResult != nil {
		q.onResult(r)
	}
}
