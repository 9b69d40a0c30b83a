package xmpp

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
)

func newTestCalls() *Calls[string] {
	return NewCalls[string]("inst.lx1-", func(to, from string) bool {
		return strings.EqualFold(from, to) || from == "" && to == "self"
	})
}

func TestCallsDeliver(t *testing.T) {
	calls := newTestCalls()
	a, err := calls.Start("pubsub.localhost")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := calls.Start("self")
	if a.ID() != "inst.lx1-1" || string(b.AppendID([]byte("x"))) != "xinst.lx1-2" {
		t.Fatalf("ids %q %q", a.ID(), b.ID())
	}
	if _, err := a.Result(); !errors.Is(err, ErrPending) {
		t.Fatalf("Result before the answer = %v", err)
	}
	// Not an answer to a or b: another address, another id, or an id
	// written otherwise than AppendID writes it.
	for _, d := range []struct{ id, from string }{
		{"inst.lx1-1", "evil.localhost"}, {"inst.lx1-1", ""}, {"inst.lx1-3", "pubsub.localhost"},
		{"inst.lx1-01", "pubsub.localhost"}, {"inst.lx1-2", "x"}, {"other.lx1-1", "pubsub.localhost"},
		{"inst.lx1-", ""}, {"inst.lx1-1A", "pubsub.localhost"}, {"inst.lx1-zzzzzzzzzzzzzz", ""}, {"inst.lx1-3w5e11264sgsg", ""},
	} {
		if calls.Deliver(d.id, d.from, "wrong", nil) {
			t.Errorf("Deliver(%q, %q) found a call", d.id, d.from)
		}
	}
	if !calls.Deliver("inst.lx1-1", "PubSub.localhost", "answer", nil) {
		t.Fatal("the answer to a found no call")
	}
	if v, err := a.Wait(context.Background()); v != "answer" || err != nil {
		t.Fatalf("a = %q, %v", v, err)
	}
	if calls.Deliver("inst.lx1-1", "pubsub.localhost", "again", nil) {
		t.Error("a second answer found a call")
	}
	errAnswer := errors.New("an error answer")
	if !calls.Deliver("inst.lx1-2", "", "", errAnswer) {
		t.Fatal("the answer to b found no call")
	}
	<-b.Done()
	if _, err := b.Result(); err != errAnswer {
		t.Fatalf("b = %v", err)
	}
}

func TestCallsAbandonAndClose(t *testing.T) {
	calls := newTestCalls()
	a, _ := calls.Start("x")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := a.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v", err)
	}
	if _, err := a.Result(); !errors.Is(err, ErrAbandoned) {
		t.Fatalf("Result after Wait's ctx ended = %v", err)
	}
	if calls.Deliver(a.ID(), "x", "late", nil) {
		t.Error("a late answer found the abandoned call")
	}
	b, _ := calls.Start("x")
	c, _ := calls.Start("x")
	calls.Deliver(c.ID(), "x", "c", nil)
	c.Abandon() // answered already: nothing changes
	if v, err := c.Result(); v != "c" || err != nil {
		t.Fatalf("c = %q, %v", v, err)
	}
	end := errors.New("stream ended")
	calls.Close(end)
	calls.Close(errors.New("again"))
	if _, err := b.Wait(context.Background()); err != end {
		t.Fatalf("b after Close = %v", err)
	}
	b.Abandon()
	if _, err := b.Result(); err != end {
		t.Fatalf("b after Close and Abandon = %v", err)
	}
	if _, err := calls.Start("x"); err != end {
		t.Fatalf("Start after Close = %v", err)
	}
}

// TestCallsFailBy: a table shared by two streams; the end of one fails
// only the calls it sent, and the other's answer may come through anyone.
func TestCallsFailBy(t *testing.T) {
	calls := newTestCalls()
	streamA, streamB := new(int), new(int)
	a1, _ := calls.StartBy(streamA, "x")
	a2, _ := calls.StartBy(streamA, "x")
	b1, _ := calls.StartBy(streamB, "x")
	b2, _ := calls.StartBy(streamB, "x")
	plain, _ := calls.Start("x")
	if calls.Pending() != 5 {
		t.Fatalf("Pending = %d, want 5", calls.Pending())
	}
	if !calls.Deliver(a2.ID(), "x", "a2", nil) {
		t.Fatal("a2's answer found no call")
	}
	end := errors.New("stream A ended")
	if n := calls.FailBy(streamA, end); n != 1 {
		t.Errorf("FailBy(A) ended %d calls, want 1 (a2 was answered)", n)
	}
	if _, err := a1.Result(); err != end {
		t.Errorf("a1 after FailBy(A) = %v, want %v", err, end)
	}
	if v, err := a2.Result(); v != "a2" || err != nil {
		t.Errorf("a2 = %q, %v, want its answer", v, err)
	}
	for _, c := range []*Call[string]{b1, b2, plain} {
		if _, err := c.Result(); !errors.Is(err, ErrPending) {
			t.Errorf("%s after FailBy(A) = %v, want still pending", c.ID(), err)
		}
	}
	if calls.Deliver(a1.ID(), "x", "late", nil) {
		t.Error("a late answer found a1")
	}
	// The table stays open: A's next stream starts again.
	a3, err := calls.StartBy(streamA, "x")
	if err != nil {
		t.Fatal(err)
	}
	if !calls.Deliver(b1.ID(), "x", "b1", nil) || !calls.Deliver(a3.ID(), "x", "a3", nil) {
		t.Fatal("answers after FailBy(A) found no call")
	}
	if n := calls.FailBy(nil, end); n != 1 {
		t.Errorf("FailBy(nil) ended %d calls, want the one of Start", n)
	}
	calls.Close(errors.New("closed"))
	if _, err := b2.Result(); err == nil || err.Error() != "closed" {
		t.Errorf("b2 after Close = %v", err)
	}
	if calls.Pending() != 0 {
		t.Errorf("Pending after Close = %d", calls.Pending())
	}
}

// TestCallsConcurrent races Start, Deliver, Abandon and Close (go test
// -race).
func TestCallsConcurrent(t *testing.T) {
	calls := newTestCalls()
	var wg sync.WaitGroup
	ids := make(chan string, 1000)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				call, err := calls.Start("x")
				if err != nil {
					return
				}
				ids <- call.ID()
				if (i+w)%3 == 0 {
					call.Abandon()
				}
				select {
				case <-call.Done():
				default:
				}
			}
		}()
	}
	go func() {
		for id := range ids {
			calls.Deliver(id, "x", id, nil)
		}
	}()
	wg.Wait()
	calls.Close(errors.New("end"))
	close(ids)
}

// TestCallsAllocs: starting a call and delivering its answer costs the
// Call and its channel, nothing else.
func TestCallsAllocs(t *testing.T) {
	calls := newTestCalls()
	id := make([]byte, 0, 32)
	allocs := testing.AllocsPerRun(1000, func() {
		call, _ := calls.Start("pubsub.localhost")
		id = call.AppendID(id[:0])
		calls.Deliver(string(id), "pubsub.localhost", "", nil)
	})
	if allocs > 2 {
		t.Errorf("%v allocations per call, want 2", allocs)
	}
}

// told records what a Notify was told.
type told struct {
	mu   sync.Mutex
	outs []string
}

func (n *told) Answered(v string, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err != nil {
		v = "error: " + err.Error()
	}
	n.outs = append(n.outs, v)
}

func (n *told) get() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.outs...)
}

// TestCallsNotify: a request of StartNotifyBy is told its outcome once, by
// Deliver, FailBy or Close, and never after Abandon reported true.
func TestCallsNotify(t *testing.T) {
	calls := newTestCalls()
	var a, b, c, d told
	sa, _ := calls.StartNotifyBy("s1", "pubsub.localhost", &a)
	sb, _ := calls.StartNotifyBy("s1", "pubsub.localhost", &b)
	_, _ = calls.StartNotifyBy("s2", "pubsub.localhost", &c)
	_, _ = calls.StartNotifyBy("s2", "pubsub.localhost", &d)
	if id := string(calls.AppendID(nil, sa)); id != "inst.lx1-1" {
		t.Fatalf("id %q", id)
	}
	call, _ := calls.Start("pubsub.localhost") // a Call among them
	if calls.Abandon(call.Seq()) {
		t.Error("Abandon gave up a Call of Start")
	}
	if calls.Deliver("inst.lx1-1", "evil.localhost", "wrong", nil) || len(a.get()) != 0 {
		t.Fatal("an answer from elsewhere reached a")
	}
	if !calls.Deliver("inst.lx1-1", "pubsub.localhost", "answer", nil) {
		t.Fatal("the answer to a found nothing")
	}
	if !calls.Abandon(sb) || calls.Abandon(sb) || calls.Abandon(sa) {
		t.Error("Abandon: want true once for b, false for a (answered)")
	}
	if calls.Deliver(string(calls.AppendID(nil, sb)), "pubsub.localhost", "late", nil) {
		t.Error("an answer after Abandon found b")
	}
	if n := calls.FailBy("s2", errors.New("stream s2 ended")); n != 2 {
		t.Errorf("FailBy ended %d, want c and d", n)
	}
	calls.Close(errors.New("closed"))
	if _, err := call.Result(); err == nil || err.Error() != "closed" {
		t.Errorf("the Call after Close: %v", err)
	}
	for _, tc := range []struct {
		n    *told
		want string
	}{{&a, "answer"}, {&b, ""}, {&c, "error: stream s2 ended"}, {&d, "error: stream s2 ended"}} {
		got := strings.Join(tc.n.get(), "|")
		if got != tc.want {
			t.Errorf("told %q, want %q", got, tc.want)
		}
	}
	if _, err := calls.StartNotifyBy("s1", "x", &a); err == nil {
		t.Error("StartNotifyBy after Close succeeded")
	}
	// In the steady state it allocates nothing.
	calls = newTestCalls()
	var nop nopNotify
	if n := testing.AllocsPerRun(1000, func() {
		seq, _ := calls.StartNotifyBy("s1", "pubsub.localhost", &nop)
		var id [32]byte
		calls.Deliver(string(calls.AppendID(id[:0], seq)), "pubsub.localhost", "", nil)
	}); n != 0 {
		t.Errorf("%v allocations per request, want 0", n)
	}
}

type nopNotify struct{ n int }

func (n *nopNotify) Answered(string, error) { n.n++ }
