package component_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/component"
	"github.com/pubpresence/pubpresence/internal/xmpptest"
)

// gate is a TCP proxy in front of a fake server, for a stream that must
// stay down a while: while closed it accepts and drops every connection
// (the dial fails), while open it relays to the server. Cut drops the
// relayed connections.
type gate struct {
	ln     net.Listener
	target string
	open   atomic.Bool

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func newGate(t *testing.T, target string) *gate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{ln: ln, target: target}
	g.wg.Add(1)
	go g.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		g.Cut()
		g.wg.Wait()
	})
	return g
}

func (g *gate) Addr() string { return g.ln.Addr().String() }

func (g *gate) accept() {
	defer g.wg.Done()
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		if !g.open.Load() {
			_ = c.Close()
			continue
		}
		s, err := net.Dial("tcp", g.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		g.mu.Lock()
		g.conns = append(g.conns, c, s)
		g.mu.Unlock()
		g.wg.Add(2)
		go g.pipe(c, s)
		go g.pipe(s, c)
	}
}

func (g *gate) pipe(dst, src net.Conn) {
	defer g.wg.Done()
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
}

// Cut closes every relayed connection.
func (g *gate) Cut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range g.conns {
		_ = c.Close()
	}
	g.conns = nil
}

// runPool makes a Pool for addrs and runs it until the test ends; stop
// cancels it and waits for Run (and fails the test if Run does not return).
func runPool(t *testing.T, addrs []string, hooks component.PoolHooks) (p *component.Pool, stop func()) {
	t.Helper()
	cfg := component.Config{Name: compName, Secret: compSecret, DialTimeout: wait}
	p, err := component.NewPool(cfg, addrs, 20*time.Millisecond, hooks)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("Run = %v, want context.Canceled", err)
				}
			case <-time.After(wait):
				t.Error("Pool.Run did not return after its ctx was cancelled")
			}
		})
	}
	t.Cleanup(stop)
	return p, stop
}

// nextEvent returns the Pool's next event.
func nextEvent(t *testing.T, p *component.Pool) component.Event {
	t.Helper()
	select {
	case ev, ok := <-p.Events():
		if !ok {
			t.Fatal("Events closed")
		}
		return ev
	case <-time.After(wait):
		t.Fatal("no event from the pool")
		return component.Event{}
	}
}

// eventFor returns the next event of stream i, and fails the test on an
// event of stream i that does not match; the other streams' are skipped.
func eventFor(t *testing.T, p *component.Pool, i int, what string, match func(component.Event) bool) component.Event {
	t.Helper()
	for {
		ev := nextEvent(t, p)
		if ev.Stream != i {
			continue
		}
		if !match(ev) {
			t.Fatalf("stream %d: got %v event %+v, want %s", i, ev.Kind, ev, what)
		}
		return ev
	}
}

// waitUp waits until streams want (and no others) are up, reading events.
func waitUp(t *testing.T, p *component.Pool, want ...int) {
	t.Helper()
	eventually(t, fmt.Sprintf("streams %v up", want), func() bool { return slices.Equal(p.Healthy(), want) })
}

// upEvents reads the first n events, which must be the EventUp of streams
// 0..n-1 in any order, and returns their Conns by stream.
func upEvents(t *testing.T, p *component.Pool, n int) map[int]*component.Conn {
	t.Helper()
	ups := map[int]*component.Conn{}
	for len(ups) < n {
		ev := nextEvent(t, p)
		if !isUp(ev) || ups[ev.Stream] != nil {
			t.Fatalf("event %+v before every stream was up", ev)
		}
		ups[ev.Stream] = ev.Conn
	}
	return ups
}

func isUp(ev component.Event) bool { return ev.Kind == component.EventUp && ev.Conn != nil }

// The Pool dials every address; each stream's stanzas come out of Events
// tagged with the stream; a request's answer is matched on either stream.
func TestPoolEventsAndAnswers(t *testing.T) {
	node1, node2 := newFakeServer(t), newFakeServer(t)
	p, _ := runPool(t, []string{node1.Addr(), node2.Addr()}, component.PoolHooks{})
	sc1, sc2 := node1.Conn(t), node2.Conn(t)
	ups := upEvents(t, p, 2)
	if p.Conn(0) != ups[0] || p.Conn(1) != ups[1] || !slices.Equal(p.Healthy(), []int{0, 1}) {
		t.Errorf("Conn(0), Conn(1), Healthy = %p %p %v; events said %p %p", p.Conn(0), p.Conn(1), p.Healthy(), ups[0], ups[1])
	}
	if p.Len() != 2 || p.Address(1) != node2.Addr() || p.Name() != compName {
		t.Errorf("Len %d, Address(1) %q, Name %q", p.Len(), p.Address(1), p.Name())
	}

	_ = sc2.Write("<presence from='bob@localhost/b2' to='" + compName + "'><show>away</show></presence>")
	ev := eventFor(t, p, 1, "bob's presence", func(ev component.Event) bool {
		return ev.Kind == component.EventStanza && ev.Stanza.Name == "presence" && ev.Stanza.From == "bob@localhost/b2"
	})
	if string(ev.Stanza.Inner) != "<show>away</show>" {
		t.Errorf("presence inner %q", ev.Stanza.Inner)
	}
	_ = sc1.Write("<message from='alice@localhost/a1' to='" + compName + "'><body>hi</body></message>")
	eventFor(t, p, 0, "alice's message", func(ev component.Event) bool {
		return ev.Kind == component.EventStanza && ev.Stanza.Name == "message" && ev.Stanza.From == "alice@localhost/a1"
	})

	// Start goes out on the first stream that is up; StartOn on the one
	// asked for. The answer to each comes on the other stream.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	viaAny, err := p.Start(ctx, "get", "bob@localhost/b2", []byte("<ping xmlns='urn:xmpp:ping'/>"))
	if err != nil {
		t.Fatal(err)
	}
	reqAny := sc1.Next(t)
	viaTwo, err := p.StartOn(ctx, 1, "get", "alice@localhost/a1", []byte("<ping xmlns='urn:xmpp:ping'/>"))
	if err != nil {
		t.Fatal(err)
	}
	reqTwo := sc2.Next(t)
	_ = sc2.Write(xmpptest.IQAnswer(reqAny, "result", "<from-bob/>"))
	_ = sc1.Write(xmpptest.IQAnswer(reqTwo, "result", "<from-alice/>"))
	if inner, err := viaAny.Wait(ctx); err != nil || string(inner) != "<from-bob/>" {
		t.Errorf("Start's call = %q, %v", inner, err)
	}
	if inner, err := viaTwo.Wait(ctx); err != nil || string(inner) != "<from-alice/>" {
		t.Errorf("StartOn(1)'s call = %q, %v", inner, err)
	}

	// Send and SendPresence: the first stream; SendOn, SendPresenceOn: the one asked.
	if err := p.SendPresence(ctx, "bob@localhost", "probe", "", ""); err != nil {
		t.Fatal(err)
	}
	if e := sc1.Next(t); !e.Is("presence") || e.Attr("type") != "probe" {
		t.Errorf("stream 0 read %s, want the probe", e.Raw)
	}
	if err := p.SendPresenceOn(ctx, 1, "alice@localhost", "", "", ""); err != nil {
		t.Fatal(err)
	}
	if e := sc2.Next(t); !e.Is("presence") || e.Attr("to") != "alice@localhost" {
		t.Errorf("stream 1 read %s, want the presence to alice", e.Raw)
	}
	if err := p.SendOn(ctx, 1, []byte("<message to='bob@localhost'/>")); err != nil {
		t.Fatal(err)
	}
	if e := sc2.Next(t); !e.Is("message") {
		t.Errorf("stream 1 read %s, want the message", e.Raw)
	}
	if err := p.Send(ctx, []byte("<message to='alice@localhost'/>")); err != nil {
		t.Fatal(err)
	}
	if e := sc1.Next(t); !e.Is("message") {
		t.Errorf("stream 0 read %s, want the message", e.Raw)
	}
	if _, err := p.StartOn(ctx, 2, "get", "localhost", nil); err == nil || errors.Is(err, component.ErrClosed) {
		t.Errorf("StartOn(2) on a pool of 2 = %v, want an error about the index", err)
	}
}

// One stream drops: the stanzas it read before come out before its
// EventDown, its requests fail at once, the other stream keeps serving
// meanwhile, and the Pool dials the dropped one again by itself.
func TestPoolReconnectsOneStream(t *testing.T) {
	node1 := newFakeServerWith(t, xmpptest.Config{Handler: xmpptest.AnswerAll})
	node2 := newFakeServer(t)
	p, _ := runPool(t, []string{node1.Addr(), node2.Addr()}, component.PoolHooks{})
	node1.Conn(t)
	sc2 := node2.Conn(t)
	ups := upEvents(t, p, 2)
	first := ups[1]

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	pending, err := p.StartOn(ctx, 1, "get", "localhost", nil)
	if err != nil {
		t.Fatal(err)
	}
	sc2.Next(t)
	// The presences and the drop go out together: the stream reads both
	// presences and then the end of the connection.
	_ = sc2.Write("<presence from='bob@localhost/b2' to='" + compName + "'/><presence from='carol@localhost/c2' type='unavailable' to='" + compName + "'/>")
	sc2.Close()
	waitCall(t, pending)
	if _, err := pending.Result(); !errors.Is(err, component.ErrClosed) {
		t.Errorf("the dropped stream's call = %v, want ErrClosed", err)
	}

	// Stream 1's events, in order, whatever stream 0 does meanwhile.
	var seen []string
	var down component.Event
	for down.Kind != component.EventDown {
		ev := eventFor(t, p, 1, "stream 1's stanzas, then its end", func(ev component.Event) bool {
			return ev.Kind == component.EventStanza || ev.Kind == component.EventDown
		})
		if ev.Kind == component.EventStanza {
			seen = append(seen, ev.Stanza.From)
		}
		down = ev
	}
	if !slices.Equal(seen, []string{"bob@localhost/b2", "carol@localhost/c2"}) {
		t.Errorf("stanzas before EventDown: %q", seen)
	}
	if down.Conn != first || down.Err == nil || down.Uptime <= 0 {
		t.Errorf("EventDown = %+v, want the first Conn, its error and its uptime", down)
	}
	t.Logf("EventDown: %v after %v", down.Err, down.Uptime)

	// Stream 0 serves all along.
	for range 5 {
		if _, err := p.IQ(ctx, "get", "pubsub.localhost", nil); err != nil {
			t.Fatalf("IQ while stream 1 is down: %v", err)
		}
	}
	// Stream 1 comes back.
	up := eventFor(t, p, 1, "stream 1 up again", isUp)
	if up.Conn == first || p.Conn(1) != up.Conn {
		t.Errorf("EventUp Conn %p, first %p, Conn(1) %p", up.Conn, first, p.Conn(1))
	}
	sc2 = node2.Conn(t)
	_ = sc2.Write("<presence from='bob@localhost/b3' to='" + compName + "'/>")
	eventFor(t, p, 1, "bob's presence on the new stream", func(ev component.Event) bool {
		return ev.Kind == component.EventStanza && ev.Stanza.From == "bob@localhost/b3"
	})
	if got := node2.Authenticated(); got != 2 {
		t.Errorf("node 2 authenticated %d streams, want 2", got)
	}
}

// While stream 0 cannot connect, Start and Send go out on stream 1; StartOn
// stream 0 says it is down; once stream 0 is up, it is the first again.
// With no stream up, requests fail with ErrNoStream.
func TestPoolPicksHealthyStream(t *testing.T) {
	node1 := newFakeServerWith(t, xmpptest.Config{Handler: xmpptest.AnswerAll})
	node2 := newFakeServerWith(t, xmpptest.Config{Handler: xmpptest.AnswerAll})
	gate1, gate2 := newGate(t, node1.Addr()), newGate(t, node2.Addr())
	gate2.open.Store(true)
	var dialFailures [2]atomic.Int32
	p, _ := runPool(t, []string{gate1.Addr(), gate2.Addr()}, component.PoolHooks{
		DialFailed: func(i int, err error, wait time.Duration) { dialFailures[i].Add(1) },
	})
	waitUp(t, p, 1)
	eventually(t, "stream 0 to fail to dial twice", func() bool { return dialFailures[0].Load() >= 2 })
	if dialFailures[1].Load() != 0 {
		t.Errorf("stream 1 failed to dial %d times", dialFailures[1].Load())
	}

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for range 3 {
		if _, err := p.IQ(ctx, "get", "pubsub.localhost", nil); err != nil {
			t.Fatalf("IQ with stream 0 down: %v", err)
		}
	}
	if err := p.SendPresence(ctx, "bob@localhost", "probe", "", ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, "node 2 to read 3 requests and the probe", func() bool {
		return node1.Authenticated() == 0 && len(logOf(node2)) == 4
	})
	_, err := p.StartOn(ctx, 0, "get", "localhost", nil)
	if !errors.Is(err, component.ErrNoStream) || !errors.Is(err, component.ErrClosed) {
		t.Errorf("StartOn(0) while it is down = %v, want ErrNoStream", err)
	}
	if err := p.SendOn(ctx, 0, []byte("<message/>")); !errors.Is(err, component.ErrNoStream) {
		t.Errorf("SendOn(0) while it is down = %v, want ErrNoStream", err)
	}

	// Stream 0 comes up: it is the first healthy one again.
	gate1.open.Store(true)
	waitUp(t, p, 0, 1)
	if _, err := p.IQ(ctx, "get", "pubsub.localhost", nil); err != nil {
		t.Fatal(err)
	}
	if n := len(logOf(node1)); n != 1 {
		t.Errorf("node 1 read %d stanzas, want the request", n)
	}

	// Both down: ErrNoStream, at once.
	gate1.open.Store(false)
	gate2.open.Store(false)
	gate1.Cut()
	gate2.Cut()
	waitUp(t, p)
	began := time.Now()
	if _, err := p.IQ(ctx, "get", "pubsub.localhost", nil); !errors.Is(err, component.ErrNoStream) {
		t.Errorf("IQ with no stream up = %v, want ErrNoStream", err)
	}
	if err := p.Send(ctx, []byte("<message/>")); !errors.Is(err, component.ErrNoStream) {
		t.Errorf("Send with no stream up = %v, want ErrNoStream", err)
	}
	if d := time.Since(began); d > time.Second {
		t.Errorf("requests with no stream up took %v", d)
	}
}

// logOf returns what the server's connections read, all of them.
func logOf(srv *xmpptest.Server) []*xmpptest.Element {
	var all []*xmpptest.Element
	for _, c := range srv.All() {
		all = append(all, c.Log()...)
	}
	return all
}

// The Pool's goroutines (dial loops, sessions, the streams' readers,
// writers and keepalives) all end when its ctx does; then Events is
// closed, and Run may not run again.
func TestPoolStopsItsGoroutines(t *testing.T) {
	node1 := newFakeServerWith(t, xmpptest.Config{Handler: xmpptest.AnswerPings})
	node2 := newFakeServerWith(t, xmpptest.Config{Handler: xmpptest.AnswerPings})
	gate := newGate(t, node2.Addr()) // stream 1 never connects: a dial loop in its backoff
	before := runtime.NumGoroutine()

	cfg := component.Config{Name: compName, Secret: compSecret, DialTimeout: wait,
		KeepaliveInterval: 5 * time.Millisecond, InboundQueue: 1}
	p, err := component.NewPool(cfg, []string{node1.Addr(), gate.Addr()}, 10*time.Millisecond, component.PoolHooks{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	sc := node1.Conn(t)
	// Nobody reads Events: the session waits to hand on a stanza, with
	// more queued behind it.
	for range 5 {
		_ = sc.Write("<presence from='bob@localhost/b' to='" + compName + "'/>")
	}
	eventually(t, "a keepalive ping", func() bool { return slices.ContainsFunc(sc.Log(), (*xmpptest.Element).IsPing) })
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(wait):
		t.Fatal("Run did not return")
	}
	n := 0
	for range p.Events() { // closed once Run returned
		n++
	}
	if n == 0 {
		t.Error("no event was buffered")
	}
	if err := p.Run(context.Background()); err == nil {
		t.Error("a second Run: no error")
	}
	eventually(t, "the node to see the stream closed", sc.GotStreamEnd)
	deadline := time.Now().Add(wait)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after Run returned, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestNewPoolRefuses(t *testing.T) {
	cfg := component.Config{Name: compName, Secret: compSecret}
	many := make([]string, component.MaxPoolStreams+1)
	for i := range many {
		many[i] = fmt.Sprintf("127.0.0.1:%d", 5000+i)
	}
	for name, addrs := range map[string][]string{
		"none":      nil,
		"empty":     {"127.0.0.1:5347", ""},
		"duplicate": {"Node1:5347", "node2:5347", "node1:5347"},
		"too many":  many,
	} {
		if p, err := component.NewPool(cfg, addrs, time.Second, component.PoolHooks{}); err == nil || p != nil {
			t.Errorf("%s: NewPool(%q) = %v, %v; want an error", name, addrs, p, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	p, err := component.NewPool(cfg, many[:component.MaxPoolStreams], time.Second, component.PoolHooks{})
	if err != nil || p.Len() != component.MaxPoolStreams {
		t.Errorf("NewPool with %d addresses: %v", component.MaxPoolStreams, err)
	}
	if p.Group().Name() != compName || p.Group().Instance() == "" {
		t.Errorf("Group %q %q", p.Group().Name(), p.Group().Instance())
	}
	if _, err := p.IQ(context.Background(), "get", "localhost", nil); !errors.Is(err, component.ErrNoStream) {
		t.Errorf("IQ before Run = %v, want ErrNoStream", err)
	}
}

// The hooks Connected and Disconnected are called for each stream, with
// its index, before its EventUp and EventDown, even while nobody reads
// Events; TrySend and Presence go out on the first stream that is up.
func TestPoolHooksAndTrySend(t *testing.T) {
	node1, node2 := newFakeServer(t), newFakeServer(t)
	var mu sync.Mutex
	var calls []string
	p, _ := runPool(t, []string{node1.Addr(), node2.Addr()}, component.PoolHooks{
		Connected: func(i int, c *component.Conn) {
			mu.Lock()
			calls = append(calls, fmt.Sprintf("up %d", i))
			mu.Unlock()
		},
		Disconnected: func(i int, err error, up time.Duration) {
			mu.Lock()
			calls = append(calls, fmt.Sprintf("down %d %v", i, err != nil && up > 0))
			mu.Unlock()
		},
	})
	sc1 := node1.Conn(t)
	sc2 := node2.Conn(t)
	hooked := func(want ...string) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, w := range want {
				if !slices.Contains(calls, w) {
					return false
				}
			}
			return true
		}
	}
	eventually(t, "both streams' Connected", hooked("up 0", "up 1")) // nobody read Events yet
	upEvents(t, p, 2)

	raw := p.Presence("bob@localhost", "probe", "", "")
	if want := "<presence from='" + compName + "' to='bob@localhost' type='probe'></presence>"; string(raw) != want {
		t.Errorf("Presence = %s, want %s", raw, want)
	}
	if !p.TrySend(raw) {
		t.Fatal("TrySend with two streams up: false")
	}
	if e := sc1.Next(t); !e.Is("presence") || e.Attr("type") != "probe" {
		t.Errorf("stream 0 read %s, want the probe", e.Raw)
	}

	sc2.Close()
	eventually(t, "stream 1's Disconnected", hooked("down 1 true"))
	eventFor(t, p, 1, "stream 1 down", func(ev component.Event) bool { return ev.Kind == component.EventDown })
	eventually(t, "stream 1's Connected again", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, c := range calls {
			if c == "up 1" {
				n++
			}
		}
		return n == 2
	})
}
