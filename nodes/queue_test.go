package nodes

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/component"
	"github.com/pubpresence/pubpresence/internal/xmpp"
	"github.com/pubpresence/pubpresence/presence"
)

// fakeReq is one request a fakeStarter saw, read back from its payload.
type fakeReq struct {
	Node, Op, ID string
	User         presence.Conn // for a <user/> publication
	Payload      string        // a copy: the queue reuses its buffer
}

func (r fakeReq) String() string { return r.Op + " " + r.Node + "/" + r.ID }

func parseReq(t testing.TB, payload []byte) fakeReq {
	var x struct {
		Publish *struct {
			Node string `xml:"node,attr"`
			Item struct {
				ID    string `xml:"id,attr"`
				Inner []byte `xml:",innerxml"`
			} `xml:"item"`
		} `xml:"publish"`
		Retract *struct {
			Node string `xml:"node,attr"`
			Item struct {
				ID string `xml:"id,attr"`
			} `xml:"item"`
		} `xml:"retract"`
		Purge *struct {
			Node string `xml:"node,attr"`
		} `xml:"http://jabber.org/protocol/pubsub#owner purge"`
	}
	r := fakeReq{Payload: string(payload)}
	if err := xml.Unmarshal(payload, &x); err != nil {
		t.Errorf("request %q: %v", payload, err)
		return r
	}
	switch {
	case x.Publish != nil:
		r.Node, r.Op, r.ID = x.Publish.Node, "publish", x.Publish.Item.ID
		if c, err := ParseUser(x.Publish.Item.Inner); err == nil {
			r.User = c
		}
	case x.Retract != nil:
		r.Node, r.Op, r.ID = x.Retract.Node, "retract", x.Retract.Item.ID
	case x.Purge != nil:
		r.Node, r.Op = x.Purge.Node, "purge"
	default:
		t.Errorf("request %q: neither publish, retract nor purge", payload)
	}
	return r
}

// fakeCall is answered by the test through its fakeStarter.
type fakeCall struct {
	req  fakeReq
	n    component.Notify
	once sync.Once
	done chan struct{}
	err  error
}

func newFakeCall(r fakeReq, n component.Notify) *fakeCall {
	return &fakeCall{req: r, n: n, done: make(chan struct{})}
}

// answer gives the call its outcome and tells the queue, unless it has
// one (abandoned).
func (c *fakeCall) answer(err error) {
	told := false
	c.once.Do(func() { c.err = err; close(c.done); told = true })
	if told {
		c.n.Answered(nil, err)
	}
}

// abandon gives the call up, and reports whether it had no outcome yet.
func (c *fakeCall) abandon() bool {
	gave := false
	c.once.Do(func() { c.err = component.ErrAbandoned; close(c.done); gave = true })
	return gave
}

func (c *fakeCall) Result() ([]byte, error) {
	select {
	case <-c.done:
		return nil, c.err
	default:
		return nil, component.ErrPending
	}
}

// fakeStarter records the requests in the order started. With auto it
// answers each at once with answer's error (nil: success); otherwise the
// test answers them with reply. fail, if set, makes Start itself fail.
type fakeStarter struct {
	t       testing.TB
	auto    bool
	answer  func(fakeReq) error
	fail    func(fakeReq) error
	onStart func(fakeReq) // called from Run's goroutine

	mu          sync.Mutex
	reqs        []fakeReq
	calls       map[uint64]*fakeCall // by seq
	open        []*fakeCall          // not answered, oldest first
	unanswered  int
	maxInFlight int
}

func (f *fakeStarter) StartNotify(ctx context.Context, typ, to string, payload []byte, n component.Notify) (uint64, error) {
	if typ != "set" || to != "pubsub.example" {
		f.t.Errorf("Start(%q, %q): want a set to the pubsub service", typ, to)
	}
	r := parseReq(f.t, payload)
	if err := ctx.Err(); err != nil {
		return 0, err // as a stream that refuses to send
	}
	if f.fail != nil {
		if err := f.fail(r); err != nil {
			f.mu.Lock()
			f.reqs = append(f.reqs, r)
			f.mu.Unlock()
			return 0, err
		}
	}
	c := newFakeCall(r, n)
	f.mu.Lock()
	f.reqs = append(f.reqs, r)
	seq := uint64(len(f.reqs))
	if f.calls == nil {
		f.calls = make(map[uint64]*fakeCall)
	}
	f.calls[seq] = c
	f.unanswered++
	f.maxInFlight = max(f.maxInFlight, f.unanswered)
	if f.auto {
		f.unanswered--
		var err error
		if f.answer != nil {
			err = f.answer(r)
		}
		c.answer(err)
	} else {
		f.open = append(f.open, c)
	}
	f.mu.Unlock()
	if f.onStart != nil {
		f.onStart(r)
	}
	return seq, nil
}

// Abandon gives up the call seq, as a stream's table does.
func (f *fakeStarter) Abandon(seq uint64) bool {
	f.mu.Lock()
	c := f.calls[seq]
	f.mu.Unlock()
	return c != nil && c.abandon()
}

// reply answers the oldest unanswered request with err and returns it.
func (f *fakeStarter) reply(err error) fakeReq {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.open) == 0 {
		f.t.Fatal("reply: no request waits for an answer")
	}
	c := f.open[0]
	f.open = f.open[1:]
	f.unanswered-- // before the answer: the queue may start the next at once
	c.answer(err)
	return c.req
}

func (f *fakeStarter) requests() []fakeReq {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeReq(nil), f.reqs...)
}

func (f *fakeStarter) started() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

func (f *fakeStarter) inFlight() (now, most int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.unanswered, f.maxInFlight
}

// waitStarted waits until n requests have been started.
func (f *fakeStarter) waitStarted(n int) {
	f.t.Helper()
	eventually(f.t, func() bool { return f.started() >= n }, "%d requests started", n)
}

// waitOpen waits until a request waits for its answer.
func (f *fakeStarter) waitOpen() {
	f.t.Helper()
	eventually(f.t, func() bool { now, _ := f.inFlight(); return now > 0 }, "a request in flight")
}

// eventually polls cond for up to 5 s.
func eventually(t testing.TB, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for "+format, args...)
		}
		time.Sleep(time.Millisecond)
	}
}

// quiet gives the queue time to do something it should not.
func quiet() { time.Sleep(20 * time.Millisecond) }

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func waitClosed(t testing.TB, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: not closed after 30 s", what)
	}
}

// results collects what the queue reports.
type results struct {
	mu sync.Mutex
	rs []Result
}

func (r *results) add(res Result) {
	r.mu.Lock()
	r.rs = append(r.rs, res)
	r.mu.Unlock()
}

func (r *results) get() []Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Result(nil), r.rs...)
}

const (
	testService = "pubsub.example"
	testLive    = "presence/live"
	testActual  = "presence/actual"
)

// newTestQueue returns a queue on f and runs it until the test ends; Run
// must have returned by then.
func newTestQueue(t *testing.T, f *fakeStarter, window, maxLive int, onResult func(Result)) (*Queue, func()) {
	t.Helper()
	f.t = t
	q := NewQueue(f, QueueConfig{Service: testService, Live: testLive, Actual: testActual,
		Window: window, MaxLive: maxLive, Timeout: 10 * time.Second, LiveShare: 1}, onResult)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	var once sync.Once
	start := func() {
		once.Do(func() {
			go func() {
				defer close(ran)
				q.Run(ctx)
			}()
		})
	}
	t.Cleanup(func() {
		cancel()
		once.Do(func() { close(ran) })
		select {
		case <-ran:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after its ctx ended")
		}
	})
	return q, start
}

func user(jid string, show presence.Show, text string) presence.Conn {
	return presence.Conn{JID: jid, Show: show, Text: text, Priority: 1}
}

func TestQueueLiveInOrder(t *testing.T) {
	f := &fakeStarter{auto: true}
	q, start := newTestQueue(t, f, 8, 0, nil)
	var want []presence.Conn
	live := func(c presence.Conn) {
		t.Helper()
		if err := q.Live(c); err != nil {
			t.Fatalf("Live: %v", err)
		}
		want = append(want, c)
	}
	// Alternating states of one JID, that a merge would lose, with
	// another JID's events between them; half before Run, half during.
	for i := range 200 {
		if i == 100 {
			start()
		}
		show := presence.Away
		if i%2 == 0 {
			show = presence.Chat
		}
		live(user("a@example.org/r", show, strconv.Itoa(i)))
		if i%3 == 0 {
			live(user("b@example.org/r", presence.DND, strconv.Itoa(i)))
		}
	}
	waitClosed(t, q.Drained(), "Drained")
	got := f.requests()
	if len(got) != len(want) {
		t.Fatalf("sent %d requests, want %d (one per event)", len(got), len(want))
	}
	for i, r := range got {
		if r.Node != testLive || r.Op != "publish" || r.ID != want[i].JID || !r.User.SameState(want[i]) {
			t.Fatalf("request %d = %s %+v, want publish of %+v on %s", i, r, r.User, want[i], testLive)
		}
	}
}

func TestQueueActualMerged(t *testing.T) {
	t.Run("queued before Run", func(t *testing.T) {
		f := &fakeStarter{auto: true}
		q, start := newTestQueue(t, f, 4, 0, nil)
		q.Actual(user("a@example.org/r", presence.Away, "1"))
		q.Actual(user("a@example.org/r", presence.DND, "2"))
		q.Actual(user("a@example.org/r", presence.Chat, "3"))
		q.Actual(user("b@example.org/r", presence.Chat, ""))
		q.Retract("b@example.org/r")
		q.Retract("c@example.org/r")
		q.Actual(user("c@example.org/r", presence.XA, "back"))
		if n := q.Len(); n != 3 {
			t.Errorf("Len = %d, want 3 (one per JID)", n)
		}
		start()
		waitClosed(t, q.Drained(), "Drained")
		got := f.requests()
		want := []struct {
			op, id string
			show   presence.Show
		}{
			{"publish", "a@example.org/r", presence.Chat},
			{"retract", "b@example.org/r", ""},
			{"publish", "c@example.org/r", presence.XA},
		}
		if len(got) != len(want) {
			t.Fatalf("sent %v, want %d requests", got, len(want))
		}
		for i, w := range want {
			r := got[i]
			if r.Node != testActual || r.Op != w.op || r.ID != w.id || r.User.Show != w.show {
				t.Errorf("request %d = %s (%s), want %s %s (%s)", i, r, r.User.Show, w.op, w.id, w.show)
			}
		}
		if got[0].User.Text != "3" {
			t.Errorf("a's publication has text %q, want the latest, 3", got[0].User.Text)
		}
	})
	t.Run("queued behind a full window", func(t *testing.T) {
		f := &fakeStarter{}
		q, start := newTestQueue(t, f, 1, 0, nil)
		q.Raw("status", "current", []byte("<x xmlns='urn:x'/>"))
		start()
		f.waitStarted(1)
		// The window is full: these wait in the queue and merge.
		q.Actual(user("a@example.org/r", presence.Away, "1"))
		q.Actual(user("a@example.org/r", presence.DND, "2"))
		q.Actual(user("d@example.org/r", presence.Chat, ""))
		q.Retract("d@example.org/r")
		quiet()
		if n := f.started(); n != 1 {
			t.Fatalf("%d requests started with a window of 1", n)
		}
		f.reply(nil)
		f.waitStarted(2)
		f.reply(nil)
		f.waitStarted(3)
		f.reply(nil)
		waitClosed(t, q.Drained(), "Drained")
		got := f.requests()
		if len(got) != 3 {
			t.Fatalf("sent %v, want 3 requests", got)
		}
		if r := got[1]; r.Op != "publish" || r.ID != "a@example.org/r" || r.User.Show != presence.DND || r.User.Text != "2" {
			t.Errorf("request 1 = %s %+v, want a's latest state (dnd, 2)", r, r.User)
		}
		if r := got[2]; r.Op != "retract" || r.ID != "d@example.org/r" {
			t.Errorf("request 2 = %s, want only the retraction of d", r)
		}
	})
}

// TestQueuePurge: a purge of the actual node drops the changes queued
// before it and not sent (it would remove what they write); a change to
// one of those items queued after it is sent after it, not merged into the
// dropped one; Len and Pending count only what will be sent, and Drained
// closes once it is.
func TestQueuePurge(t *testing.T) {
	f := &fakeStarter{}
	q, start := newTestQueue(t, f, 1, 0, nil)
	q.Raw("status", "current", []byte("<x xmlns='urn:x'/>"))
	start()
	f.waitStarted(1) // the window of 1 is full: the rest waits
	q.Actual(user("a@example.org/r", presence.Away, "1"))
	q.Retract("b@example.org/r")
	q.Actual(user("c@example.org/r", presence.DND, "old"))
	q.Purge(testActual)
	q.Actual(user("c@example.org/r", presence.Chat, "new"))
	q.Actual(user("d@example.org/r", presence.XA, ""))
	if n, p := q.Len(), q.Pending(); n != 3 || p != 4 {
		t.Errorf("Len, Pending = %d, %d; want 3 (purge, c, d) and 4 (and the status in flight)", n, p)
	}
	for i := 2; i <= 4; i++ {
		f.reply(nil)
		f.waitStarted(i)
	}
	f.reply(nil)
	waitClosed(t, q.Drained(), "Drained")
	got := f.requests()
	want := []string{"publish status/current", "purge " + testActual + "/", "publish " + testActual + "/c@example.org/r", "publish " + testActual + "/d@example.org/r"}
	if len(got) != len(want) {
		t.Fatalf("sent %v, want %v", got, want)
	}
	for i, w := range want {
		if got[i].String() != w {
			t.Errorf("request %d = %s, want %s", i, got[i], w)
		}
	}
	if c := got[2].User; c.Show != presence.Chat || c.Text != "new" {
		t.Errorf("c published as %+v, want the change queued after the purge (chat, new)", c)
	}
	if n, p := q.Len(), q.Pending(); n != 0 || p != 0 {
		t.Errorf("after: Len, Pending = %d, %d; want 0, 0", n, p)
	}
}

// TestQueuePurgeOnlyStale: with nothing queued after a purge but the
// dropped changes, the queue sends the purge alone and drains.
func TestQueuePurgeOnlyStale(t *testing.T) {
	f := &fakeStarter{auto: true}
	q, start := newTestQueue(t, f, 4, 0, nil)
	q.Actual(user("a@example.org/r", presence.Away, ""))
	q.Retract("b@example.org/r")
	q.Purge(testActual)
	start()
	waitClosed(t, q.Drained(), "Drained")
	if got := f.requests(); len(got) != 1 || got[0].Op != "purge" || got[0].Node != testActual {
		t.Errorf("sent %v, want the purge of %s alone", got, testActual)
	}
}

func TestQueueBarrierNotBehindLive(t *testing.T) {
	const window, backlog = 8, 10000
	var b <-chan struct{}
	var beforeBarrier atomic.Int64
	actualBefore := 0
	f := &fakeStarter{auto: true}
	f.onStart = func(r fakeReq) {
		if !closed(b) {
			beforeBarrier.Add(1)
			if r.Node == testActual {
				actualBefore++ // only Run's goroutine calls onStart
			}
		}
	}
	q, start := newTestQueue(t, f, window, 0, nil)
	for i := range backlog {
		if err := q.Live(user(fmt.Sprintf("u%d@example.org/r", i), presence.Online, "")); err != nil {
			t.Fatalf("Live %d: %v", i, err)
		}
	}
	for i := range 3 {
		q.Actual(user(fmt.Sprintf("a%d@example.org/r", i), presence.Chat, ""))
	}
	b = q.Barrier()
	if n := q.Len(); n != backlog+3 {
		t.Errorf("Len = %d, want %d (a barrier is not a request)", n, backlog+3)
	}
	start()
	waitClosed(t, b, "Barrier")
	if n := beforeBarrier.Load(); n > 3+3+window {
		t.Errorf("barrier closed after %d requests started, want at most %d", n, 3+3+window)
	}
	waitClosed(t, q.Drained(), "Drained")
	if actualBefore != 3 {
		t.Errorf("%d actual requests started before the barrier closed, want 3", actualBefore)
	}
	got := f.requests()
	if len(got) != backlog+3 {
		t.Fatalf("sent %d requests, want %d", len(got), backlog+3)
	}
	next := 0
	for _, r := range got {
		if r.Node != testLive {
			continue
		}
		if want := fmt.Sprintf("u%d@example.org/r", next); r.ID != want {
			t.Fatalf("live event %d is %s, want %s", next, r.ID, want)
		}
		next++
	}
}

func TestQueueBarrierWaits(t *testing.T) {
	var rs results
	f := &fakeStarter{}
	q, start := newTestQueue(t, f, 4, 0, rs.add)
	q.Live(user("l@example.org/r", presence.Chat, ""))
	q.Actual(user("a@example.org/r", presence.Away, ""))
	q.Raw("status", "current", []byte("<x xmlns='urn:x'/>"))
	start()
	f.waitStarted(3)
	b := q.Barrier()
	q.Actual(user("after@example.org/r", presence.Away, ""))
	quiet()
	if closed(b) {
		t.Fatal("barrier closed with its requests unanswered")
	}
	if n := f.started(); n != 3 {
		t.Fatalf("%d requests started: the op after the barrier went before it was reached", n)
	}
	// Sent in turn, state lane first: actual, live, raw.
	fail := &component.StanzaError{Type: "wait", Condition: xmpp.ErrResourceConstraint}
	if r := f.reply(fail); r.Node != testActual {
		t.Fatalf("first request is %s, want the actual one", r)
	}
	quiet()
	if closed(b) {
		t.Fatal("barrier closed with live and raw unanswered")
	}
	if r := f.reply(nil); r.Node != testLive {
		t.Fatalf("second request is %s, want the live one", r)
	}
	quiet()
	if closed(b) {
		t.Fatal("barrier closed with the raw publication unanswered")
	}
	f.reply(nil)
	waitClosed(t, b, "Barrier")
	f.waitStarted(4)
	if r := f.requests()[3]; r.ID != "after@example.org/r" {
		t.Errorf("fourth request is %s, want the actual after the barrier", r)
	}
	f.reply(nil)
	waitClosed(t, q.Drained(), "Drained")
	var failed int
	for _, r := range rs.get() {
		if r.Err != nil {
			failed++
			if r.Node != testActual || !errors.Is(r.Err, xmpp.ErrResourceConstraint) {
				t.Errorf("failed result %+v, want the actual one's resource-constraint", r)
			}
		}
	}
	if failed != 1 {
		t.Errorf("%d results failed, want 1", failed)
	}
}

func TestQueueMaxLive(t *testing.T) {
	f := &fakeStarter{}
	q, start := newTestQueue(t, f, 1, 3, nil)
	for i := range 3 {
		if err := q.Live(user("a@example.org/r", presence.Chat, strconv.Itoa(i))); err != nil {
			t.Fatalf("Live %d: %v", i, err)
		}
	}
	if err := q.Live(user("a@example.org/r", presence.Chat, "3")); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Live beyond MaxLive = %v, want ErrQueueFull", err)
	}
	if d := q.Dropped(); d != 1 {
		t.Errorf("Dropped = %d, want 1", d)
	}
	q.Actual(user("b@example.org/r", presence.Chat, "")) // the state lane is not bounded
	if n := q.Len(); n != 4 {
		t.Errorf("Len = %d, want 4", n)
	}
	start()
	f.waitStarted(1)
	if r := f.requests()[0]; r.Node != testActual {
		t.Fatalf("first request %s, want the actual one (state lane first)", r)
	}
	f.reply(nil)
	f.waitStarted(2) // a live event left the queue
	if err := q.Live(user("a@example.org/r", presence.Chat, "4")); err != nil {
		t.Fatalf("Live after one was sent: %v", err)
	}
	if err := q.Live(user("a@example.org/r", presence.Chat, "5")); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Live beyond MaxLive again = %v, want ErrQueueFull", err)
	}
	if d := q.Dropped(); d != 2 {
		t.Errorf("Dropped = %d, want 2", d)
	}
	for i := range 4 { // live 0 (in flight), 1, 2, 4
		f.waitStarted(2 + i)
		f.reply(nil)
	}
	waitClosed(t, q.Drained(), "Drained")
	var texts []string
	for _, r := range f.requests()[1:] {
		texts = append(texts, r.User.Text)
	}
	if fmt.Sprint(texts) != "[0 1 2 4]" {
		t.Errorf("live events sent %v, want [0 1 2 4]", texts)
	}
}

func TestQueueWindow(t *testing.T) {
	const window, n = 3, 30
	f := &fakeStarter{}
	q, start := newTestQueue(t, f, window, 0, nil)
	for i := range n {
		if i%4 == 0 {
			q.Actual(user(fmt.Sprintf("a%d@example.org/r", i), presence.Chat, ""))
		} else {
			q.Live(user("l@example.org/r", presence.Chat, strconv.Itoa(i)))
		}
	}
	start()
	f.waitStarted(window)
	quiet()
	if s := f.started(); s != window {
		t.Fatalf("%d requests started with none answered, want the window, %d", s, window)
	}
	for answered := 0; answered < n; answered++ {
		f.reply(nil)
		if answered%5 == 4 {
			quiet() // let the queue refill the window
		}
		want := min(answered+1+window, n)
		f.waitStarted(want)
		if now, _ := f.inFlight(); now > window {
			t.Fatalf("%d requests unanswered, window %d", now, window)
		}
	}
	waitClosed(t, q.Drained(), "Drained")
	if _, most := f.inFlight(); most != window {
		t.Errorf("at most %d requests in flight, want exactly the window, %d", most, window)
	}
}

func TestQueuePendingDrained(t *testing.T) {
	f := &fakeStarter{}
	q, start := newTestQueue(t, f, 2, 0, nil)
	waitClosed(t, q.Drained(), "Drained of an empty queue")
	for i := range 3 {
		q.Live(user("l@example.org/r", presence.Chat, strconv.Itoa(i)))
	}
	q.Actual(user("a@example.org/r", presence.Chat, ""))
	q.Retract("b@example.org/r")
	b := q.Barrier()
	q.Raw("status", "current", []byte("<x xmlns='urn:x'/>"))
	if l, p := q.Len(), q.Pending(); l != 6 || p != 6 {
		t.Fatalf("Len, Pending = %d, %d before Run; want 6, 6", l, p)
	}
	d := q.Drained()
	start()
	f.waitStarted(2)
	if l, p := q.Len(), q.Pending(); l != 4 || p != 6 {
		t.Errorf("Len, Pending = %d, %d with 2 in flight; want 4, 6", l, p)
	}
	f.reply(nil)
	eventually(t, func() bool { return q.Pending() == 5 }, "Pending 5 after one answer (is %d)", q.Pending())
	for answered := 1; answered < 6; answered++ {
		f.waitOpen()
		if closed(d) {
			t.Fatalf("Drained closed with %d of 6 answered", answered)
		}
		f.reply(nil)
	}
	waitClosed(t, d, "Drained")
	if !closed(b) {
		t.Error("Drained closed before a barrier queued before it")
	}
	if l, p := q.Len(), q.Pending(); l != 0 || p != 0 {
		t.Errorf("Len, Pending = %d, %d drained; want 0, 0", l, p)
	}
	// Idle again: Drained at once; and with new work, only once it is done.
	waitClosed(t, q.Drained(), "Drained when idle")
	q.Live(user("l@example.org/r", presence.Away, "again"))
	d = q.Drained()
	f.waitStarted(7)
	quiet()
	if closed(d) {
		t.Fatal("Drained closed with a request in flight")
	}
	f.reply(nil)
	waitClosed(t, d, "Drained")
}

// TestQueueActualMapRenewed: the map of the actual node's waiting changes
// that held more than actualKeep of them (a cold start's diff) is made
// anew once they are sent, since a Go map keeps its largest size; a
// smaller one is kept.
func TestQueueActualMapRenewed(t *testing.T) {
	f := &fakeStarter{auto: true}
	q, start := newTestQueue(t, f, 64, 0, nil)
	for i := range 2 * actualKeep {
		q.Actual(user("u"+strconv.Itoa(i)+"@example.org/r", presence.Chat, ""))
	}
	start()
	waitClosed(t, q.Drained(), "Drained")
	q.mu.Lock()
	renewed := q.actualMax == 0 && len(q.actual) == 0
	q.mu.Unlock()
	if !renewed {
		t.Error("the map of 2×actualKeep changes was kept once they were sent")
	}
	q.Actual(user("a@example.org/r", presence.Away, ""))
	waitClosed(t, q.Drained(), "Drained")
	if n := f.started(); n != 2*actualKeep+1 {
		t.Errorf("%d requests, want %d", n, 2*actualKeep+1)
	}
	q.mu.Lock()
	kept := q.actualMax == 1
	q.mu.Unlock()
	if !kept {
		t.Error("a small map was made anew")
	}
}

// TestQueueDrainedRace closes Drained as the last answer races with it.
func TestQueueDrainedRace(t *testing.T) {
	f := &fakeStarter{auto: true}
	q, start := newTestQueue(t, f, 4, 0, nil)
	start()
	for i := range 500 {
		q.Live(user("l@example.org/r", presence.Chat, strconv.Itoa(i)))
		if i%2 == 0 {
			q.Actual(user("a@example.org/r", presence.Chat, strconv.Itoa(i)))
		}
		waitClosed(t, q.Drained(), "Drained")
		if p := q.Pending(); p != 0 {
			t.Fatalf("Pending = %d once drained", p)
		}
	}
}

func TestQueueRunCancel(t *testing.T) {
	for _, tc := range []struct {
		name    string
		barrier bool
	}{{"window full", false}, {"waiting at a barrier", true}} {
		t.Run(tc.name, func(t *testing.T) {
			base := runtime.NumGoroutine()
			var rs results
			f := &fakeStarter{t: t} // never answers
			q := NewQueue(f, QueueConfig{Service: testService, Live: testLive, Actual: testActual, Window: 4}, rs.add)
			for i := range 10 {
				q.Live(user("l@example.org/r", presence.Chat, strconv.Itoa(i)))
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				q.Run(ctx)
			}()
			f.waitStarted(4)
			var b <-chan struct{}
			if tc.barrier {
				// Run is at the window: answer one so that it reaches
				// the barrier, queued ahead of the rest by its lane.
				b = q.Barrier()
				f.reply(nil)
				eventually(t, func() bool {
					q.mu.Lock()
					defer q.mu.Unlock()
					return q.barriers == 0
				}, "Run to reach the barrier")
				quiet()
				if closed(b) {
					t.Fatal("barrier closed with requests in flight")
				}
			}
			d := q.Drained()
			cancel()
			ran := make(chan struct{})
			go func() { wg.Wait(); close(ran) }()
			waitClosed(t, ran, "Run after cancel")
			sent := f.started()
			if p := q.Pending(); p != 10-sent {
				t.Errorf("Pending = %d after Run, want the %d never sent", p, 10-sent)
			}
			if closed(d) {
				t.Error("Drained closed with requests left in the queue")
			}
			if tc.barrier && !closed(b) {
				t.Error("barrier still open: Run waited at it for requests that ended with ctx")
			}
			canceled := 0
			for _, r := range rs.get() {
				if errors.Is(r.Err, context.Canceled) {
					canceled++
				}
			}
			unanswered := sent
			if tc.barrier {
				unanswered--
			}
			if canceled != unanswered || len(rs.get()) != sent {
				t.Errorf("%d results, %d canceled; want %d, %d", len(rs.get()), canceled, sent, unanswered)
			}
			eventually(t, func() bool { return runtime.NumGoroutine() <= base },
				"goroutines back to %d (are %d)", base, runtime.NumGoroutine())
		})
	}
}

func TestQueueResults(t *testing.T) {
	var rs results
	failStart := errors.New("stream closed")
	f := &fakeStarter{auto: true}
	f.answer = func(r fakeReq) error {
		switch r.ID {
		case "gone@example.org/r":
			return &component.StanzaError{Type: "cancel", Condition: xmpp.ErrItemNotFound}
		case "forbidden@example.org/r", "forbidden-pub@example.org/r":
			return &component.StanzaError{Type: "auth", Condition: xmpp.ErrForbidden}
		}
		return nil
	}
	f.fail = func(r fakeReq) error {
		if r.ID == "unsent@example.org/r" {
			return failStart
		}
		return nil
	}
	q, start := newTestQueue(t, f, 4, 0, rs.add)
	q.Live(user("l@example.org/r", presence.Chat, ""))
	q.Live(user("unsent@example.org/r", presence.Chat, ""))
	q.Actual(user("a@example.org/r", presence.Chat, ""))
	q.Actual(user("forbidden-pub@example.org/r", presence.Chat, ""))
	q.Retract("gone@example.org/r")
	q.Retract("forbidden@example.org/r")
	q.Raw("status", "current", []byte("<x xmlns='urn:x'/>"))
	start()
	waitClosed(t, q.Drained(), "Drained")
	want := map[string]string{ // node op id -> error condition, "ok" or "start"
		testLive + " publish l@example.org/r":               "ok",
		testLive + " publish unsent@example.org/r":          "start",
		testActual + " publish a@example.org/r":             "ok",
		testActual + " publish forbidden-pub@example.org/r": "forbidden",
		testActual + " retract gone@example.org/r":          "ok", // item-not-found: already gone (Absent)
		testActual + " retract forbidden@example.org/r":     "forbidden",
		"status publish current":                            "ok",
	}
	got := rs.get()
	if len(got) != len(want) {
		t.Errorf("%d results, want %d: %+v", len(got), len(want), got)
	}
	for _, r := range got {
		key := r.Node + " " + r.Op + " " + r.ID
		w, ok := want[key]
		if !ok {
			t.Errorf("unexpected or repeated result %+v", r)
			continue
		}
		delete(want, key)
		var g string
		switch {
		case r.Err == nil:
			g = "ok"
		case errors.Is(r.Err, failStart):
			g = "start"
		default:
			g = string(xmpp.ConditionOf(r.Err))
		}
		if g != w {
			t.Errorf("%s: result %q (%v), want %q", key, g, r.Err, w)
		}
		if r.Duration < 0 {
			t.Errorf("%s: Duration %v", key, r.Duration)
		}
		if want := r.ID == "gone@example.org/r"; r.Absent != want {
			t.Errorf("%s: Absent %v, want %v", key, r.Absent, want)
		}
	}
	for key := range want {
		t.Errorf("no result for %s", key)
	}
}

// The component's Conn and Pool are what the service's queue starts its
// requests on.
var (
	_ Starter = (*component.Conn)(nil)
	_ Starter = (*component.Pool)(nil)
)

// nopStarter answers every request at once, without looking at it.
type nopStarter struct{}

func (nopStarter) StartNotify(_ context.Context, _, _ string, _ []byte, n component.Notify) (uint64, error) {
	n.Answered(nil, nil)
	return 1, nil
}

func (nopStarter) Abandon(uint64) bool { return false }

// BenchmarkQueueLive queues live events and sends them through a stream
// that answers at once: the queue's own cost per event.
func BenchmarkQueueLive(b *testing.B) {
	q := NewQueue(nopStarter{}, QueueConfig{Service: testService, Live: testLive, Actual: testActual,
		MaxLive: b.N + 1}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		q.Run(ctx)
	}()
	c := presence.Conn{JID: "alice@example.org/laptop", Show: presence.Away, Text: "At lunch",
		Priority: 5, IP: "203.0.113.7", Since: time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := q.Live(c); err != nil {
			b.Fatal(err)
		}
	}
	<-q.Drained()
	b.StopTimer()
	cancel()
	<-ran
}

// TestQueueLiveShare checks the order in which the lanes are served while
// both have work: the state lane first with a share of 0, then share live
// events per state request.
func TestQueueLiveShare(t *testing.T) {
	for _, tc := range []struct {
		share int
		want  string // l: live, a: actual, in the order started
	}{
		{0, "aaalllll"},
		{1, "alalalll"},
		{2, "allallal"},
		{4, "allllala"},
		{-1, "aaa"}, // held: then SetLiveShare(1) lets the five out
	} {
		t.Run(strconv.Itoa(tc.share), func(t *testing.T) {
			f := &fakeStarter{}
			q, start := newTestQueue(t, f, 16, 0, nil)
			q.SetLiveShare(tc.share)
			for i := range 5 {
				q.Live(user("l@example.org/r", presence.Chat, strconv.Itoa(i)))
			}
			for i := range 3 {
				q.Actual(user(fmt.Sprintf("a%d@example.org/r", i), presence.Away, ""))
			}
			start()
			if tc.share < 0 {
				f.waitStarted(3)
				quiet()
				if n := f.started(); n != 3 {
					t.Fatalf("%d requests started with the live lane held, want 3", n)
				}
				d := q.Drained()
				for range 3 {
					f.reply(nil)
				}
				quiet()
				if closed(d) {
					t.Fatal("Drained closed with live events held")
				}
				q.SetLiveShare(1)
				f.waitStarted(8)
				for range 5 {
					f.reply(nil)
				}
				waitClosed(t, d, "Drained")
				return
			}
			f.waitStarted(8)
			var got strings.Builder
			for _, r := range f.requests() {
				if r.Node == testLive {
					got.WriteByte('l')
				} else {
					got.WriteByte('a')
				}
			}
			if got.String() != tc.want {
				t.Errorf("order %s, want %s", got.String(), tc.want)
			}
			for range 8 {
				f.reply(nil)
			}
			waitClosed(t, q.Drained(), "Drained")
		})
	}
}

// TestQueueTimeout: a request unanswered for Timeout is abandoned, reported
// as timed out, and frees its slot for the next one.
func TestQueueTimeout(t *testing.T) {
	var rs results
	f := &fakeStarter{t: t} // never answers
	q := NewQueue(f, QueueConfig{Service: testService, Live: testLive, Actual: testActual,
		Window: 2, Timeout: 50 * time.Millisecond, LiveShare: 1}, rs.add)
	for i := range 3 {
		q.Live(user("l@example.org/r", presence.Chat, strconv.Itoa(i)))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan struct{})
	go func() { defer close(ran); q.Run(ctx) }()
	waitClosed(t, q.Drained(), "Drained after the timeouts")
	if n := f.started(); n != 3 {
		t.Errorf("%d requests started, want 3: the window stayed full", n)
	}
	got := rs.get()
	if len(got) != 3 {
		t.Fatalf("%d results, want 3", len(got))
	}
	for _, r := range got {
		if !errors.Is(r.Err, context.DeadlineExceeded) || r.Duration < 50*time.Millisecond {
			t.Errorf("result %+v: want a timeout after at least 50ms", r)
		}
	}
	f.mu.Lock()
	for _, c := range f.open {
		if _, err := c.Result(); !errors.Is(err, component.ErrAbandoned) {
			t.Errorf("call %s: %v, want abandoned", c.req, err)
		}
	}
	f.mu.Unlock()
	cancel()
	<-ran
}

// TestQueuePatience: with Last, a request waits on while the server answers
// others, fails Timeout after the last answer, and after MaxWait in all
// when the answers never stop.
func TestQueuePatience(t *testing.T) {
	// The bounds are wide: the machine may be slow, and what is checked is
	// which rule ended the wait, not how fast.
	const timeout, maxWait = 50 * time.Millisecond, 2 * time.Second
	for _, tc := range []struct {
		name      string
		answers   time.Duration // how long the server answers other requests
		overtaken bool          // requests sent after this one are answered
		min, max  time.Duration // when the request may fail
	}{
		{"silent server", 0, false, timeout, time.Second},
		{"busy server", 500 * time.Millisecond, false, 480 * time.Millisecond, 1500 * time.Millisecond},
		{"answers never stop", time.Hour, false, maxWait, maxWait + time.Second},
		{"later requests answered: lost", time.Hour, true, timeout, maxWait - 500*time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var last atomic.Int64
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			begin := time.Now()
			go func() { // the server's answers to other requests
				tick := time.NewTicker(10 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-ctx.Done():
						return
					case now := <-tick.C:
						if now.Sub(begin) < tc.answers {
							last.Store(now.UnixNano())
						}
					}
				}
			}()
			var rs results
			f := &fakeStarter{t: t} // never answers this queue's request
			q := NewQueue(f, QueueConfig{Service: testService, Live: testLive, Actual: testActual,
				Window: 2, Timeout: timeout, MaxWait: maxWait, LiveShare: 1,
				Last: func() time.Time {
					if n := last.Load(); n != 0 {
						return time.Unix(0, n)
					}
					return time.Time{}
				},
				Overtaken: func() time.Time {
					if tc.overtaken {
						return time.Now() // the latest answered was sent just now
					}
					return begin.Add(-time.Second)
				}}, rs.add)
			q.Live(user("l@example.org/r", presence.Chat, "x"))
			ran := make(chan struct{})
			go func() { defer close(ran); q.Run(ctx) }()
			waitClosed(t, q.Drained(), "Drained after the timeout")
			got := rs.get()
			if len(got) != 1 || !errors.Is(got[0].Err, context.DeadlineExceeded) {
				t.Fatalf("results %+v: want one timeout", got)
			}
			if d := got[0].Duration; d < tc.min || d > tc.max {
				t.Errorf("timed out after %v, want between %v and %v", d, tc.min, tc.max)
			}
			cancel()
			<-ran
		})
	}
}

// TestFifo: the ring keeps order as it wraps and grows, and a steady
// backlog allocates nothing.
func TestFifo(t *testing.T) {
	var f fifo[int]
	next, want := 0, 0
	for round := range 200 {
		for range round%37 + 1 {
			f.push(next)
			next++
		}
		for range round % 23 {
			if f.len() == 0 {
				break
			}
			if got := f.pop(); got != want {
				t.Fatalf("pop = %d, want %d", got, want)
			}
			want++
		}
		if f.len() != next-want {
			t.Fatalf("len = %d, want %d", f.len(), next-want)
		}
	}
	for f.len() > 0 {
		if got := f.pop(); got != want {
			t.Fatalf("pop = %d, want %d", got, want)
		}
		want++
	}
	for range 1000 {
		f.push(1)
	}
	if n := testing.AllocsPerRun(1000, func() { f.push(1); f.pop() }); n != 0 {
		t.Errorf("%v allocations per push and pop with a backlog, want 0", n)
	}
}

// TestFifoFilter: filter keeps the elements it is told to, in order, in a
// ring that has wrapped, and the ring goes on from there.
func TestFifoFilter(t *testing.T) {
	var f fifo[int]
	for i := range 16 {
		f.push(i)
	}
	for range 10 {
		f.pop() // head at 10: the next pushes wrap
	}
	for i := 16; i < 24; i++ {
		f.push(i)
	}
	var seen []int
	if n := f.filter(func(v int) bool { seen = append(seen, v); return v%3 != 0 }); n != 4 {
		t.Errorf("filter dropped %d, want 4 (12, 15, 18, 21)", n)
	}
	if want := []int{10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23}; !slices.Equal(seen, want) {
		t.Errorf("filter saw %v, want %v", seen, want)
	}
	f.push(24)
	var got []int
	for f.len() > 0 {
		got = append(got, f.pop())
	}
	if want := []int{10, 11, 13, 14, 16, 17, 19, 20, 22, 23, 24}; !slices.Equal(got, want) {
		t.Errorf("after filter: %v, want %v", got, want)
	}
	f.push(1)
	if n := f.filter(func(int) bool { return false }); n != 1 || f.len() != 0 {
		t.Errorf("filter of all: dropped %d, %d left", n, f.len())
	}
	f.push(2)
	if got := f.pop(); got != 2 {
		t.Errorf("pop after emptied by filter = %d, want 2", got)
	}
}

// TestQueueFilterLive: held live events can be looked at and dropped; the
// others go out in their order once the lane is let go, and Drained closes
// when filtering empties it.
func TestQueueFilterLive(t *testing.T) {
	f := &fakeStarter{auto: true}
	q, start := newTestQueue(t, f, 8, 0, nil)
	q.SetLiveShare(-1)
	start()
	for i, jid := range []string{"a@x/r", "b@x/r", "a@x/r", "c@x/r"} {
		if err := q.Live(user(jid, presence.Away, fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	var each []string
	q.EachLive(func(c presence.Conn) { each = append(each, c.JID+" "+c.Text) })
	if want := []string{"a@x/r 0", "b@x/r 1", "a@x/r 2", "c@x/r 3"}; !slices.Equal(each, want) {
		t.Errorf("EachLive: %q, want %q", each, want)
	}
	if n := q.FilterLive(func(c presence.Conn) bool { return c.Text != "0" && c.JID != "c@x/r" }); n != 2 {
		t.Errorf("FilterLive dropped %d, want 2", n)
	}
	if n := q.Len(); n != 2 {
		t.Errorf("Len = %d after the filter, want 2", n)
	}
	quiet()
	if n := f.started(); n != 0 {
		t.Fatalf("%d requests started with the lane held", n)
	}
	q.SetLiveShare(1)
	f.waitStarted(2)
	var sent []string
	for _, r := range f.requests() {
		sent = append(sent, r.Node+" "+r.ID+" "+r.User.Text)
	}
	if want := []string{testLive + " b@x/r 1", testLive + " a@x/r 2"}; !slices.Equal(sent, want) {
		t.Errorf("sent %q, want %q", sent, want)
	}
	waitClosed(t, q.Drained(), "Drained after the events went out")

	q.SetLiveShare(-1)
	if err := q.Live(user("d@x/r", presence.DND, "")); err != nil {
		t.Fatal(err)
	}
	drained := q.Drained()
	if closed(drained) {
		t.Fatal("Drained closed with an event held")
	}
	q.FilterLive(func(presence.Conn) bool { return false })
	waitClosed(t, drained, "Drained once the filter emptied the lane")
}
