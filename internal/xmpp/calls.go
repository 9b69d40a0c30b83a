package xmpp

import (
	"context"
	"errors"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrAbandoned is the Result of a Call given up with Abandon before its
// answer came.
var ErrAbandoned = errors.New("xmpp: call abandoned")

// ErrPending is returned by Call.Result before the call's Done is closed.
var ErrPending = errors.New("xmpp: call still waiting for its answer")

// Calls correlates the IQ requests of one stream with their answers (RFC
// 6120 §8.2.3: a result or an error with the request's id, from the
// address the request went to). A request is registered before it is
// sent, so that a fast answer always finds it. Its id is the table's
// prefix and a sequence number in base 36, which Deliver reads back
// without allocating. T is what an answer gives its Call (the inner XML,
// a whole stanza). All methods are safe for concurrent use.
//
// One table may serve several streams that act as one peer (a component
// connected to each node of a cluster, where an answer may come back on
// another stream than its request): each stream starts its requests with
// StartBy, itself as the owner, and when it ends, FailBy ends its own
// requests and leaves the others' in flight.
type Calls[T any] struct {
	prefix string
	match  func(to, from string) bool

	mu      sync.Mutex
	pending map[uint64]*Call[T] // by sequence number, the last part of the id
	seq     uint64
	err     error // set by Close

	last atomic.Int64 // UnixNano of the last answer delivered or Heard, 0 before
}

// NewCalls returns an empty table whose ids start with prefix. match
// reports whether an answer from from may answer a request sent to to
// (for instance "" for one's own server).
func NewCalls[T any](prefix string, match func(to, from string) bool) *Calls[T] {
	return &Calls[T]{prefix: prefix, match: match, pending: make(map[uint64]*Call[T])}
}

// Call is an IQ request on its way. Wait collects the answer; Done, Result
// and Abandon let a caller wait for many calls at once, with one timer of
// its own, and without a context or a goroutine per call.
type Call[T any] struct {
	t   *Calls[T]
	seq uint64
	to  string
	// owner is who sent the request (StartBy), nil for Start.
	owner any
	done  chan struct{} // closed by whoever took the call out of t.pending
	// Set before done is closed.
	v   T
	err error
}

// Start registers a request to to and returns its Call, whose id goes
// into the request (AppendID). After Close it returns Close's error. A
// Call whose answer never comes holds its place until Close, unless Wait's
// ctx ends or Abandon is called: every Call must be waited for, have its
// Result read once Done is closed, or be abandoned.
func (t *Calls[T]) Start(to string) (*Call[T], error) {
	return t.StartBy(nil, to)
}

// StartBy is Start for a request that owner sends, a comparable value
// (the stream, for a table shared by several): FailBy(owner, …) ends it,
// with owner's other calls, when owner can no longer carry its answer.
// Its answer is delivered whoever hands it to Deliver.
func (t *Calls[T]) StartBy(owner any, to string) (*Call[T], error) {
	call := &Call[T]{t: t, to: to, owner: owner, done: make(chan struct{})}
	t.mu.Lock()
	if err := t.err; err != nil {
		t.mu.Unlock()
		return nil, err
	}
	t.seq++
	call.seq = t.seq
	t.pending[call.seq] = call
	t.mu.Unlock()
	return call, nil
}

// Deliver hands an answer, of the request with the given id and from
// from, to its Call, which then returns v and err; it reports false, and
// does nothing, when no Call in flight has that id and was sent where the
// answer comes from. It never blocks.
func (t *Calls[T]) Deliver(id, from string, v T, err error) bool {
	seq, ok := t.seqOf(id)
	if !ok {
		return false
	}
	t.mu.Lock()
	call := t.pending[seq]
	if call == nil || !t.match(call.to, from) {
		t.mu.Unlock()
		return false
	}
	delete(t.pending, seq)
	t.mu.Unlock()
	t.last.Store(time.Now().UnixNano())
	call.v, call.err = v, err
	close(call.done)
	return true
}

// Heard records that the peer sent something at now (UnixNano): a stanza
// that is not an answer. A peer that still sends is busy, not gone.
func (t *Calls[T]) Heard(now int64) {
	for {
		last := t.last.Load()
		if last >= now || t.last.CompareAndSwap(last, now) {
			return
		}
	}
}

// LastAnswer returns when Deliver last handed an answer to a Call, or when
// Heard was last told of another stanza, the zero time before the first:
// how Patience tells a busy peer from a silent one.
func (t *Calls[T]) LastAnswer() time.Time {
	if n := t.last.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// Close ends every Call in flight with err, and makes Start return err
// from now on. Only the first Close counts.
func (t *Calls[T]) Close(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.err != nil {
		return
	}
	t.err = err
	for seq, call := range t.pending {
		delete(t.pending, seq)
		call.err = err
		close(call.done)
	}
}

// FailBy ends with err every call in flight that owner started
// (StartBy), and returns how many; the table stays open and the other
// owners' calls stay in flight. An answer that comes later for one of
// them finds no Call. A nil owner ends the calls of Start.
func (t *Calls[T]) FailBy(owner any, err error) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for seq, call := range t.pending {
		if call.owner != owner {
			continue
		}
		delete(t.pending, seq)
		call.err = err
		close(call.done)
		n++
	}
	return n
}

// Pending returns how many calls are in flight.
func (t *Calls[T]) Pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending)
}

// seqOf returns the sequence number of an id of this table: its prefix,
// then the number in base 36 as AppendID writes it (no leading zero, lower
// case), so that exactly one id maps to each number.
func (t *Calls[T]) seqOf(id string) (uint64, bool) {
	digits, ok := strings.CutPrefix(id, t.prefix)
	if !ok || digits == "" || digits[0] == '0' || len(digits) > 13 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(digits); i++ {
		d := digits[i]
		switch {
		case '0' <= d && d <= '9':
			d -= '0'
		case 'a' <= d && d <= 'z':
			d -= 'a' - 10
		default:
			return 0, false
		}
		if n > (math.MaxUint64-uint64(d))/36 {
			return 0, false // overflow
		}
		n = n*36 + uint64(d)
	}
	return n, true
}

// take removes call from the calls in flight and reports whether it was
// there: then the caller, and nobody else, must close call.done.
func (t *Calls[T]) take(call *Call[T]) bool {
	t.mu.Lock()
	ok := t.pending[call.seq] == call
	if ok {
		delete(t.pending, call.seq)
	}
	t.mu.Unlock()
	return ok
}

// AppendID appends the call's id to b: the request must carry it.
func (call *Call[T]) AppendID(b []byte) []byte {
	b = append(b, call.t.prefix...)
	return strconv.AppendUint(b, call.seq, 36)
}

// ID returns the call's id.
func (call *Call[T]) ID() string { return string(call.AppendID(nil)) }

// Wait returns the call's outcome (see Result), or ctx's error. When ctx
// ends first, the call is abandoned (see Abandon).
func (call *Call[T]) Wait(ctx context.Context) (T, error) {
	select {
	case <-call.done:
		return call.v, call.err
	case <-ctx.Done():
		call.Abandon()
		var zero T
		return zero, ctx.Err()
	}
}

// Done returns a channel that is closed once the call has an outcome: its
// answer, Close, or Abandon. Result then returns it.
func (call *Call[T]) Done() <-chan struct{} { return call.done }

// Result returns the outcome of the call once Done is closed: what Deliver
// gave it, Close's error, or ErrAbandoned after Abandon. It returns the
// same values every time, and ErrPending before Done is closed.
func (call *Call[T]) Result() (T, error) {
	select {
	case <-call.done:
		return call.v, call.err
	default:
		var zero T
		return zero, ErrPending
	}
}

// Abandon gives the call up, as Wait does when its ctx ends: the request
// leaves the table, and an answer that comes later finds no Call. Unless
// the call had its outcome already, Done is then closed and Result returns
// ErrAbandoned. Abandon may be called any number of times, also after Done
// is closed.
func (call *Call[T]) Abandon() {
	if call.t.take(call) {
		call.err = ErrAbandoned
		close(call.done)
	}
}
