package service

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/pubpresence/pubpresence/component"
	"github.com/pubpresence/pubpresence/internal/feed"
	"github.com/pubpresence/pubpresence/nodes"
	"github.com/pubpresence/pubpresence/presence"
	"github.com/pubpresence/pubpresence/status"
	"github.com/pubpresence/pubpresence/web"
)

// Benchmarks of issue 6 (performance). Goals: at most 10 µs and few
// allocations per presence event on the hot path, at most 1 KiB of heap per
// tracked connection at 10k and 100k connections.
//
//	go test -run='^$' -bench='HotPath|ServiceEvents' -benchmem -count=5 ./service/
//	go test -run='^$' -bench=MemoryPerConn -benchtime=1x -count=3 ./service/
//
// BenchmarkMemoryPerConn is meant for -benchtime=1x: each iteration starts
// a service, fills it and measures; its ns/op is the whole fill, not a cost
// per connection.

// hotConns is how many connections the event benchmarks keep tracked.
const hotConns = 1000

// startCounter is a nodes.Starter that answers every request at once and
// signals each Start on started, so that a benchmark can wait for the queue
// to have encoded and started its requests.
type startCounter struct {
	started chan struct{}

	mu   sync.Mutex
	keep bool     // keep copies of the payloads (before the timer only)
	kept [][]byte // with keep
}

// StartNotify answers the request at once, before it returns.
func (s *startCounter) StartNotify(_ context.Context, _, _ string, payload []byte, n component.Notify) (uint64, error) {
	s.mu.Lock()
	if s.keep {
		s.kept = append(s.kept, bytes.Clone(payload))
	}
	s.mu.Unlock()
	n.Answered(nil, nil)
	s.started <- struct{}{}
	return 1, nil
}

// Abandon finds nothing to give up: every request was answered.
func (s *startCounter) Abandon(uint64) bool { return false }

// hotJID is the full JID of tracked connection i.
func hotJID(i int) string { return string(fakeUser(nil, i)) + "/r" }

// hotStanzas returns, for every tracked connection, two presence changes
// (away and dnd, each with its own status text) as the component's reader
// delivers them: Name, From, To and Inner set, Inner the raw XML between the
// tags.
func hotStanzas(n int) [][2]hotStanza {
	out := make([][2]hotStanza, n)
	for i := range out {
		for v, show := range []string{"away", "dnd"} {
			inner := []byte("<show>" + show + "</show><status>")
			inner = fakeText(inner, 2*i+v)
			inner = append(inner, "</status><priority>5</priority>"...)
			out[i][v] = hotStanza{name: "presence", from: hotJID(i), inner: inner, show: presence.Show(show), text: string(fakeText(nil, 2*i+v))}
		}
	}
	return out
}

type hotStanza struct {
	name, from string
	inner      []byte
	show       presence.Show
	text       string
}

// componentStanza is h as component.Conn's reader delivers it.
func componentStanza(h *hotStanza) component.Stanza {
	return component.Stanza{Name: h.name, From: h.from, To: fakeComponent, Inner: h.inner}
}

// hotPath is a session online with hotConns connections tracked, their
// IPs known, its publish queue started on a Starter that answers at once
// (no server).
type hotPath struct {
	s       *Service
	ss      *session
	st      *startCounter
	stanzas [][2]hotStanza
}

func newHotPath(tb testing.TB) *hotPath {
	f := newFakeServer(tb) // for its configuration only; nothing connects
	cfg := f.config()
	s := New(cfg, zerolog.New(io.Discard).Level(zerolog.InfoLevel), nil, nil)
	ss := newSession(s, nil) // the conn is used by lookups and admin commands only: none here
	st := &startCounter{started: make(chan struct{}, 1024)}
	n := cfg.Nodes
	ss.queue = nodes.NewQueue(st, nodes.QueueConfig{
		Service: cfg.XMPP.Pubsub, Live: n.Live, Actual: n.Actual, WithIP: n.PublishIP,
		Timeout: cfg.XMPP.RequestTimeout.Duration,
	}, ss.published)
	ctx, cancel := context.WithCancel(context.Background())
	ss.crew.ctx = ctx
	ss.life.phase, ss.actualOn = status.Online, true
	s.status.SetPhase(status.Online)
	queueDone := make(chan struct{})
	go func() {
		defer close(queueDone)
		ss.queue.Run(ctx)
	}()
	tb.Cleanup(func() {
		cancel()
		<-queueDone
	})
	for i := range hotConns {
		ip := string(appendIP(nil, uint32(i)))
		ss.apply(presence.Conn{JID: hotJID(i), Show: presence.Online, IP: ip, Since: s.now()})
		<-st.started
		<-st.started
	}
	return &hotPath{s: s, ss: ss, st: st, stanzas: hotStanzas(hotConns)}
}

// op hands the session change i (of connection i mod hotConns, the two
// variants in turn) and waits for its two publishes to start.
func (hp *hotPath) op(i int) {
	h := &hp.stanzas[i%hotConns][(i/hotConns)%2]
	hp.ss.handle(componentStanza(h))
	<-hp.st.started
	<-hp.st.started
}

// TestHotPathAllocations: a presence change of a tracked connection, from
// the stanza to both publishes started, allocates once: its status text,
// the string the state keeps. (An earlier change took the address of
// session.apply's argument, which moved every call's Conn to the heap.)
func TestHotPathAllocations(t *testing.T) {
	hp := newHotPath(t)
	i := hotConns // the other variant for the first round: always a change
	if n := testing.AllocsPerRun(1000, func() { hp.op(i); i++ }); n > 1 {
		t.Errorf("%v allocations per change, want at most 1", n)
	}
}

// BenchmarkHotPath measures one presence change of a tracked connection,
// from the stanza as the component's reader delivers it to both publish
// requests encoded and started: session.handle (parse, state, metrics),
// then the publish queue's Run encodes the live and the actual publish and
// starts them on a Starter that answers at once. 1000 connections are
// tracked, their IPs known, so no lookup is made. Each op waits for its two
// Starts.
func BenchmarkHotPath(b *testing.B) {
	hp := newHotPath(b)
	s, st, n, stanzas, op := hp.s, hp.st, hp.s.cfg().Nodes, hp.stanzas, hp.op

	// One op checked before the timer: both publishes carry the change.
	st.mu.Lock()
	st.keep = true
	st.mu.Unlock()
	op(0)
	st.mu.Lock()
	st.keep = false
	kept := st.kept
	st.kept = nil
	st.mu.Unlock()
	for _, node := range []string{n.Live, n.Actual} {
		want := []string{"<publish node='" + node + "'>", "<item id='" + hotJID(0) + "'>", "status='away'",
			"ip='10.0.0.0'", "<text>" + stanzas[0][0].text + "</text>"}
		found := false
		for _, p := range kept {
			if bytes.Contains(p, []byte(want[0])) {
				found = true
				for _, w := range want[1:] {
					if !bytes.Contains(p, []byte(w)) {
						b.Fatalf("publish %s lacks %s", p, w)
					}
				}
			}
		}
		if !found {
			b.Fatalf("no publish to %s among %q", node, kept)
		}
	}

	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		op(i + hotConns) // the other variant for the first round: always a change
	}
	b.StopTimer()
	// The last op's change is in the state.
	last := b.N - 1 + hotConns
	h := stanzas[last%hotConns][(last/hotConns)%2]
	if c, ok := s.state.Get(h.from); !ok || c.Show != h.show || c.Text != h.text {
		b.Fatalf("state of %s = %+v, want show %s text %q", h.from, c, h.show, h.text)
	}
	if d := hp.ss.queue.Dropped(); d != 0 {
		b.Fatalf("%d live events dropped", d)
	}
}

// BenchmarkServiceEvents measures the whole process for one presence
// change of a tracked connection: the service runs against the fake
// server over loopback; the fake injects b.N changes of 1000 tracked
// connections (at most eventWindow not yet published on the live node) and
// the op ends when the fake has answered every live publish and, after
// them, the actual publish of a sentinel connection changed last: the
// publish queue's state lane is in order, so every change to the actual
// node is then answered too. Allocations are the whole process's, the
// fake's included (it allocates nothing in the steady state).
// actual/event is the number of actual publishes per event: changes of one
// connection that wait in the queue are merged.
func BenchmarkServiceEvents(b *testing.B) { serviceEvents(b) }

// BenchmarkServiceEventsHTTP is BenchmarkServiceEvents with the HTTP face
// on: feed, the feed alone; streams=N, N event streams following it over
// loopback, read by N goroutines of this process that discard what they
// get. It shows what the streams take from the XMPP side's throughput
// (the CPU is shared: on 2 cores, the readers compete with the service).
//
//	go test -run='^$' -bench='ServiceEvents' -benchmem -count=5 ./service/
func BenchmarkServiceEventsHTTP(b *testing.B) {
	for _, streams := range []int{-1, 0, 100, 1000} {
		name := "streams=" + strconv.Itoa(streams)
		if streams < 0 {
			name = "off"
		}
		b.Run(name, func(b *testing.B) {
			if streams < 0 {
				serviceEvents(b)
				return
			}
			serviceEvents(b, func(rs *runningService) { followHTTP(b, rs, streams) })
		})
	}
}

// followHTTP turns the HTTP face of rs's service on and opens n event
// streams read by goroutines that discard what they get; they end with b.
func followHTTP(b *testing.B, rs *runningService, n int) {
	fd := feed.New(feed.Config{WithIP: true})
	rs.svc.SetFeed(fd)
	tokens, err := web.ParseTokens([]byte("bench-token-0123456789"))
	if err != nil {
		b.Fatal(err)
	}
	api := web.NewAPI(web.APIConfig{Feed: fd, Tokens: tokens, MaxStreams: max(n, 1), Log: zerolog.Nop()}, rs.m, rs.st)
	srv := httptest.NewServer(web.Handler(rs.m, rs.st, api))
	var wg sync.WaitGroup
	b.Cleanup(func() {
		api.Close()
		srv.CloseClientConnections()
		srv.Close()
		fd.Close()
		wg.Wait()
	})
	cl := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	for range n {
		req, _ := http.NewRequest("GET", srv.URL+"/api/v1/events", nil)
		req.Header.Set("Authorization", "Bearer bench-token-0123456789")
		resp, err := cl.Do(req)
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("event stream: %v %v", err, resp)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer resp.Body.Close()
			_, _ = io.Copy(io.Discard, resp.Body)
		}()
	}
}

func serviceEvents(b *testing.B, setup ...func(*runningService)) {
	const eventWindow = 1024
	f := newFakeServer(b)
	rs := startService(b, f, setup...)
	defer rs.stop(b)

	// Track hotConns connections and the sentinel, each looked up once.
	for i := range hotConns {
		f.injectPresence(i, "r", "", -1, 0)
	}
	f.injectPresence(-1, "r", "", -1, 0)
	tracked := int64(hotConns + 1)
	f.waitFor("the tracked connections", func() bool {
		return f.live.Load() == tracked && f.actual.Load() == tracked
	})

	live0, actual0, sentinel0 := f.live.Load(), f.actual.Load(), f.sentinel.Load()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if int64(i)-(f.live.Load()-live0) >= eventWindow {
			f.waitFor("room in the window", func() bool { return int64(i)-(f.live.Load()-live0) < eventWindow })
		}
		show := "away"
		if (i/hotConns)%2 == 1 {
			show = "dnd"
		}
		f.injectPresence(i%hotConns, "r", show, i, 5)
	}
	f.injectPresence(-1, "r", "xa", b.N, 5)
	f.waitFor("every publish", func() bool {
		return f.live.Load()-live0 == int64(b.N)+1 && f.sentinel.Load() > sentinel0
	})
	b.StopTimer()

	actual := f.actual.Load() - actual0 - 1 // the sentinel's
	b.ReportMetric(float64(actual)/float64(b.N), "actual/event")
	if behind := rs.metric(b, "pubpresence_http_stream_snapshots_total", "reason", "behind"); behind > 0 {
		// Streams that fell more than resume_events behind got a snapshot.
		b.ReportMetric(behind, "behind-snapshots")
	}
	if d := rs.metric(b, "pubpresence_live_dropped_total"); d != 0 {
		b.Fatalf("%v live events dropped", d)
	}
	if n := rs.metric(b, "pubpresence_tracked_connections"); n != float64(tracked) {
		b.Fatalf("tracked connections = %v, want %d", n, tracked)
	}
	if n := f.userStats.Load(); n != tracked {
		b.Fatalf("user-stats asked %d times, want %d (one per new connection)", n, tracked)
	}
}

// BenchmarkMemoryPerConn measures the heap the service keeps per tracked
// connection: live heap (runtime.MemStats.HeapAlloc after two GCs) once
// online with no connection, then with N connections of N distinct users
// (uNNNNNN@localhost/r: one connection per user, so per-user data costs
// the most), each new, looked up with user-stats (it gets an IP), published
// on both nodes and answered. The fake keeps nothing per user, and the
// benchmark holds nothing per connection. Run it with -benchtime=1x.
// B/conn and objects/conn are heap bytes and heap objects per connection;
// the transient high-water marks of the queue and lookup tables (bounded by
// the injection window of memWindow) are in them too.
func BenchmarkMemoryPerConn(b *testing.B) {
	for _, n := range []int{10000, 100000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			var bytesPer, objsPer float64
			for range b.N {
				bp, op := measureMemory(b, n)
				bytesPer += bp
				objsPer += op
			}
			b.ReportMetric(bytesPer/float64(b.N), "B/conn")
			b.ReportMetric(objsPer/float64(b.N), "objects/conn")
		})
	}
}

// writeHeapProfile writes the live heap to path, for a look at what the
// connections hold: PUBPRESENCE_HEAP_PROFILE=/tmp/heap go test
// -bench=MemoryPerConn -benchtime=1x -memprofilerate=512 ./service/, then
// go tool pprof -sample_index=inuse_space -top /tmp/heap.10000.
func writeHeapProfile(b *testing.B, path string) {
	fh, err := os.Create(path)
	if err != nil {
		b.Fatalf("heap profile: %v", err)
	}
	defer fh.Close()
	if err := pprof.Lookup("heap").WriteTo(fh, 0); err != nil {
		b.Fatalf("heap profile: %v", err)
	}
}

// memWindow is how many injected connections may wait for their live
// publish at once in BenchmarkMemoryPerConn.
const memWindow = 256

func measureMemory(b *testing.B, n int) (bytesPerConn, objectsPerConn float64) {
	f := newFakeServer(b)
	rs := startService(b, f)
	defer f.close()
	defer rs.stop(b)

	var before, after runtime.MemStats
	heap := func(ms *runtime.MemStats) {
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(ms)
	}
	heap(&before)

	for i := range n {
		if int64(i)-f.live.Load() >= memWindow {
			f.waitFor("room in the window", func() bool { return int64(i)-f.live.Load() < memWindow })
		}
		f.injectPresence(i, "r", "away", i, 0)
	}
	want := int64(n)
	f.waitFor("every connection published", func() bool {
		return f.live.Load() == want && f.actual.Load() == want
	})
	// The service has taken every answer (the queue reports each one to the
	// metrics after its Call returned) and tracks them all.
	f.waitFor("every answer taken", func() bool {
		return rs.metric(b, "pubpresence_pubsub_requests_total", "op", "publish", "node", f.nodes.Live) == float64(n) &&
			rs.metric(b, "pubpresence_pubsub_requests_total", "op", "publish", "node", f.nodes.Actual) == float64(n) &&
			rs.metric(b, "pubpresence_tracked_connections") == float64(n)
	})
	heap(&after)
	if path := os.Getenv("PUBPRESENCE_HEAP_PROFILE"); path != "" {
		writeHeapProfile(b, path+"."+strconv.Itoa(n))
	}
	if got := f.userStats.Load(); got != want {
		b.Fatalf("user-stats asked %d times, want %d", got, want)
	}
	bytesPerConn = (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / float64(n)
	objectsPerConn = (float64(after.HeapObjects) - float64(before.HeapObjects)) / float64(n)
	return bytesPerConn, objectsPerConn
}
