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
	pending map[uint64]entry[T] // by sequence number, the last part of the id
	seq     uint64
	err     error // set by Close

	last atomic.Int64 // UnixNano of the last answer delivered or Heard, 0 before
	// overtaken is the UnixNano at which the latest-sent request that has
	// been answered was sent (Overtaken).
	overtaken atomic.Int64
}

// entry is one request in flight: a Call, or a Notify to tell.
type entry[T any] struct {
	sent   int64 // UnixNano when it was registered
	to     string
	owner  any
	call   *Call[T]  // Start, StartBy
	notify Notify[T] // StartNotifyBy
}

// end gives e its outcome; whoever took e out of the table, and nobody
// else, calls it, without holding the table's lock.
func (e *entry[T]) end(v T, err error) {
	if e.call != nil {
		e.call.v, e.call.err = v, err
		close(e.call.done)
		return
	}
	e.notify.Answered(v, err)
}

// Notify is told the outcome of a request started with StartNotifyBy: the
// inner XML of its result, or its error.
type Notify[T any] interface {
	// Answered is called once per request, on the goroutine that ends
	// it: the reader that hands its answer to Deliver, or whoever calls
	// Close or FailBy. It must not block, and it may be called before
	// StartNotifyBy has returned.
	Answered(v T, err error)
}

// NewCalls returns an empty table whose ids start with prefix. match
// reports whether an answer from from may answer a request sent to to
// (for instance "" for one's own server).
func NewCalls[T any](prefix string, match func(to, from string) bool) *Calls[T] {
	return &Calls[T]{prefix: prefix, match: match, pending: make(map[uint64]entry[T])}
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
	seq, err := t.register(entry[T]{to: to, owner: owner, call: call})
	if err != nil {
		return nil, err
	}
	call.seq = seq
	return call, nil
}

// StartNotifyBy is StartBy for a caller that waits for many requests at
// once without a Call, a channel or a goroutine per request: the request's
// outcome goes to n.Answered, exactly once, unless Abandon(seq) reports
// true first. It allocates nothing (but the table's map as it grows).
// seq names the request: AppendID writes its id.
func (t *Calls[T]) StartNotifyBy(owner any, to string, n Notify[T]) (seq uint64, err error) {
	return t.register(entry[T]{to: to, owner: owner, notify: n})
}

// register puts e in the table under the next sequence number.
func (t *Calls[T]) register(e entry[T]) (uint64, error) {
	e.sent = time.Now().UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.err; err != nil {
		return 0, err
	}
	t.seq++
	t.pending[t.seq] = e
	return t.seq, nil
}

// Abandon gives up the request seq of StartNotifyBy: it leaves the table,
// and an answer that comes later finds nothing. It reports whether the
// request was still waiting: then its Notify is never told; otherwise it
// has been told, or is being told, its outcome. It does nothing to the
// requests of Start, which Call.Abandon gives up.
func (t *Calls[T]) Abandon(seq uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.pending[seq]
	if !ok || e.call != nil {
		return false
	}
	delete(t.pending, seq)
	return true
}

// AppendID appends the id of the request seq to b: the request must carry
// it.
func (t *Calls[T]) AppendID(b []byte, seq uint64) []byte {
	b = append(b, t.prefix...)
	return strconv.AppendUint(b, seq, 36)
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
	e, ok := t.pending[seq]
	if !ok || !t.match(e.to, from) {
		t.mu.Unlock()
		return false
	}
	delete(t.pending, seq)
	t.mu.Unlock()
	t.last.Store(time.Now().UnixNano())
	for {
		o := t.overtaken.Load()
		if o >= e.sent || t.overtaken.CompareAndSwap(o, e.sent) {
			break
		}
	}
	e.end(v, err)
	return true
}

// Overtaken returns when the latest-sent request that has been answered
// was sent, the zero time before the first answer. A request sent before
// that and still waiting was passed over: its answer was most likely lost
// (or went to another connection with the same name), whereas a busy
// server answers in order (Patience).
func (t *Calls[T]) Overtaken() time.Time {
	if n := t.overtaken.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
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
	if t.err != nil {
		t.mu.Unlock()
		return
	}
	t.err = err
	ended := t.takeAll(func(entry[T]) bool { return true })
	t.mu.Unlock()
	endAll(ended, err)
}

// takeAll removes the entries in flight for which which holds, and returns
// them. Called with mu held.
func (t *Calls[T]) takeAll(which func(entry[T]) bool) []entry[T] {
	var ended []entry[T]
	for seq, e := range t.pending {
		if which(e) {
			delete(t.pending, seq)
			ended = append(ended, e)
		}
	}
	return ended
}

// endAll ends the entries with err, outside the lock: a Notify may call
// back into the table.
func endAll[T any](ended []entry[T], err error) {
	var zero T
	for i := range ended {
		ended[i].end(zero, err)
	}
}

// FailBy ends with err every call in flight that owner started
// (StartBy), and returns how many; the table stays open and the other
// owners' calls stay in flight. An answer that comes later for one of
// them finds no Call. A nil owner ends the calls of Start.
func (t *Calls[T]) FailBy(owner any, err error) int {
	t.mu.Lock()
	ended := t.takeAll(func(e entry[T]) bool { return e.owner == owner })
	t.mu.Unlock()
	endAll(ended, err)
	return len(ended)
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
	e, ok := t.pending[call.seq]
	ok = ok && e.call == call
	if ok {
		delete(t.pending, call.seq)
	}
	t.mu.Unlock()
	return ok
}

// AppendID appends the call's id to b: the request must carry it.
func (call *Call[T]) AppendID(b []byte) []byte { return call.t.AppendID(b, call.seq) }

// Seq returns the call's sequence number in its table (see
// Calls.AppendID).
func (call *Call[T]) Seq() uint64 { return call.seq }

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
