package service

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/pubpresence/pubpresence/config"
	"github.com/pubpresence/pubpresence/nodes"
	"github.com/pubpresence/pubpresence/presence"
	"github.com/pubpresence/pubpresence/pubsub"
	"github.com/pubpresence/pubpresence/status"
)

// TestInitialSyncEarlyRetracts: a cold start retracts the items of
// connections the server does not list while it still waits for probe
// answers, publishes each answer as it comes, and ends with each stale
// item retracted once and each connection published once (not again by
// the diff).
func TestInitialSyncEarlyRetracts(t *testing.T) {
	const n = 200
	f := newFakeServer(t)
	f.sessions, f.items = n, itemsStale
	f.silent.Store(n) // user n-1 answers only when the test says
	cfg := f.config()
	cfg.Sync.ProbeGrace.Duration = fakeWait
	rs := runService(t, cfg, zerolog.New(io.Discard))

	f.waitFor("the stale items retracted", func() bool { return f.retracts.Load() == n })
	if p := rs.st.Phase(); p == status.Online || f.online.Load() > 0 {
		t.Fatalf("phase %v, %d online published: the retracts came only after the probes", p, f.online.Load())
	}
	// Each answer is published as it comes, while the probes still wait
	// for the last user.
	f.waitFor("the answered connections published", func() bool { return f.actual.Load() == n-1 })
	if p := rs.st.Phase(); p == status.Online || f.online.Load() > 0 {
		t.Fatalf("phase %v, %d online published: the publishes came only after the probes", p, f.online.Load())
	}
	// The last user answers: the probes are over, and the start converges.
	f.injectPresence(n-1, "r", fakeOnlineShow, n-1, 0)
	f.waitFor("online", func() bool { return f.online.Load() > 0 && rs.st.Phase() == status.Online })
	if got := f.retracts.Load(); got != n {
		t.Errorf("%d retracts, want %d: each stale item once", got, n)
	}
	if got := f.actual.Load(); got != n {
		t.Errorf("%d publishes on actual, want %d: each connection once", got, n)
	}
	if got := testutil.ToFloat64(rs.m.Connections); got != n {
		t.Errorf("%v connections tracked, want %d", got, n)
	}
}

// TestInitialSyncPurge: with sync.purge_stale, a start that finds every
// item of the actual node stale purges the node in one request, before
// any publish, retracts nothing, and publishes each connection once; a
// warm start does not purge. When the server refuses the purge, the
// start is tried again and retracts the stale items one by one: online
// only once the node is true.
func TestInitialSyncPurge(t *testing.T) {
	const n = 200
	for _, tc := range []struct {
		name                 string
		items                fakeItems
		fail                 int64
		purges, retracts     int64
		publishesBeforePurge int64
	}{
		{"cold", itemsStale, 0, 1, 0, 0},
		{"warm", itemsWarm, 0, 0, 0, 0},
		{"refused", itemsStale, 1, 0, n, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeServer(t)
			f.sessions, f.items = n, tc.items
			f.failPurge.Store(tc.fail)
			cfg := f.config()
			cfg.Sync.PurgeStale = true
			cfg.Tracking.Mode = config.TrackRoster
			rs := runService(t, cfg, zerolog.New(io.Discard))

			f.waitFor("online", func() bool { return f.online.Load() > 0 && rs.st.Phase() == status.Online })
			if got := f.purges.Load(); got != tc.purges {
				t.Errorf("%d purges, want %d", got, tc.purges)
			}
			if got := f.purgedAfter.Load(); got != tc.publishesBeforePurge {
				t.Errorf("%d publishes on actual answered before the purge, want %d", got, tc.publishesBeforePurge)
			}
			if got := f.retracts.Load(); got != tc.retracts {
				t.Errorf("%d retracts, want %d", got, tc.retracts)
			}
			want := int64(n) // each connection once
			switch {
			case tc.items == itemsWarm:
				want = 0
			case tc.fail > 0:
				// Once by the start that failed, once by its retry: the
				// fake keeps nothing, its node stays stale.
				want = 2 * n
			}
			if got := f.actual.Load(); got != want {
				t.Errorf("%d publishes on actual, want %d", got, want)
			}
			if got := testutil.ToFloat64(rs.m.Connections); got != n {
				t.Errorf("%v connections tracked, want %d", got, n)
			}
		})
	}
}

// TestColdStartHeldNothing: once online, a cold start holds no more heap
// per connection than a warm one. The early changes' overlay (a
// connection each in a cold start) was kept until the next resync: 190 B
// per connection more at 100 000.
func TestColdStartHeldNothing(t *testing.T) {
	const n = 10000
	heap := map[fakeItems]float64{}
	for _, items := range []fakeItems{itemsWarm, itemsStale} {
		fx := scaleStart(t, n, items)
		fx.check(t, items)
		heap[items] = (float64(liveHeap()) - float64(fx.heap0)) / n
		fx.stop(t)
	}
	if heap[itemsStale] > heap[itemsWarm]+64 {
		t.Errorf("heap once online: %.0f B per connection after a cold start, %.0f after a warm one", heap[itemsStale], heap[itemsWarm])
	}
}

// TestNodeViewOverlay: converge compares the state with the fetched items
// as the early converge's requests leave them.
func TestNodeViewOverlay(t *testing.T) {
	conn := func(jid, text string) presence.Conn {
		return presence.Conn{JID: jid, Show: presence.Away, Text: text, Since: fakeSince}
	}
	item := func(c presence.Conn) pubsub.Item {
		return pubsub.Item{ID: c.JID, Payload: nodes.AppendUser(nil, c, false)}
	}
	republished := conn("b@x/r", "new")
	added := conn("d@x/r", "added")
	fixed := conn("fixed@x/r", "fixed")
	ss := &session{early: map[string]*presence.Conn{
		"a@x/r":     nil, // retracted
		"b@x/r":     &republished,
		"bad@x/r":   nil, // a bad item, retracted
		"d@x/r":     &added,
		"fixed@x/r": &fixed, // a bad item, published over
	}}
	items := []pubsub.Item{
		item(conn("a@x/r", "old")),
		item(conn("b@x/r", "old")),
		item(conn("c@x/r", "kept")),
		{ID: "bad@x/r", Payload: []byte("<junk/>")},
		{ID: "worse@x/r", Payload: []byte("<junk/>")},
		{ID: "fixed@x/r", Payload: []byte("<junk/>")},
	}
	have, bad := ss.nodeView(parseNode(items))
	got := map[string]string{}
	for _, c := range have {
		got[c.JID] = c.Text
	}
	want := map[string]string{"b@x/r": "new", "c@x/r": "kept", "d@x/r": "added", "fixed@x/r": "fixed"}
	if len(got) != len(want) {
		t.Fatalf("have %v, want %v", got, want)
	}
	for j, tx := range want {
		if got[j] != tx {
			t.Errorf("have[%s] = %q, want %q", j, got[j], tx)
		}
	}
	if len(bad) != 1 || bad[0] != "worse@x/r" {
		t.Errorf("bad = %v, want [worse@x/r]", bad)
	}
}

// TestProbeDeadline: init_timeout, unless the users probed need longer.
func TestProbeDeadline(t *testing.T) {
	for _, c := range []struct {
		init   time.Duration
		probed int
		want   time.Duration
	}{
		{30 * time.Second, 0, 30 * time.Second},
		{30 * time.Second, 10000, 30 * time.Second},
		{30 * time.Second, 300000, 30 * time.Second},
		{30 * time.Second, 1000000, 100 * time.Second},
		{5 * time.Minute, 1000000, 5 * time.Minute},
	} {
		if got := probeDeadline(c.init, c.probed); got != c.want {
			t.Errorf("probeDeadline(%v, %d) = %v, want %v", c.init, c.probed, got, c.want)
		}
	}
}

// TestBurstBeforePings: a server that sends more presence than the
// pool's buffer right after the handshake (Prosody with privileged
// presence and many users online) does not hold up the check for another
// instance: its ping answers are read, and every connection is tracked.
func TestBurstBeforePings(t *testing.T) {
	const n = 10000 // above the pool's buffer of 4096
	f := newFakeServer(t)
	// The session list names the burst's n sessions, as Prosody's does.
	// (With none listed, the burst's connections applied before the list
	// was asked were dropped as gone: a loaded run's gauge ended short of
	// n, with all n published and some retracted.)
	f.grant, f.burst, f.sessions = prosodyGrant, n, n
	var logs syncBuffer
	cfg := f.config()
	cfg.Tracking.Mode = config.TrackPrivileged
	rs := runService(t, cfg, zerolog.New(&logs))
	f.waitFor("online and every connection tracked and on actual", func() bool {
		return f.online.Load() > 0 && f.actual.Load() >= n &&
			rs.metric(t, "pubpresence_tracked_connections") == n
	})
	if got := f.retracts.Load(); got != 0 {
		t.Errorf("%d retracts: no connection went away", got)
	}
	if strings.Contains(logs.String(), "no ping answered") {
		t.Errorf("the check for another instance got no ping answer: its answers waited behind the burst\n%s", logs.String())
	}
}

// syncBuffer is a bytes.Buffer for a logger written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestInitialSyncWarmAndCold: a start with the actual node already true
// sends nothing to it (the answers publish nothing the node holds, though
// the state is empty after a restart); a cold one retracts and publishes
// each item once. Both go online with every connection.
func TestInitialSyncWarmAndCold(t *testing.T) {
	for _, items := range []fakeItems{itemsWarm, itemsStale} {
		fx := scaleStart(t, 300, items)
		fx.check(t, items)
		fx.stop(t)
	}
}
