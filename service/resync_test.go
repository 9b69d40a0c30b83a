package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pubpresence/pubpresence/component"
	"github.com/pubpresence/pubpresence/config"
	"github.com/pubpresence/pubpresence/internal/xmpp"
	"github.com/pubpresence/pubpresence/metrics"
	"github.com/pubpresence/pubpresence/nodes"
	"github.com/pubpresence/pubpresence/presence"
	"github.com/pubpresence/pubpresence/status"
)

// TestAnswered: only errors that are all the server's answers say that
// the requests took no effect.
func TestAnswered(t *testing.T) {
	refused := &xmpp.StanzaError{Type: "wait", Condition: xmpp.ErrInternalServerError}
	conflict := &xmpp.StanzaError{Type: "cancel", Condition: xmpp.ErrConflict}
	for _, c := range []struct {
		err  error
		want bool
	}{
		{refused, true},
		{fmt.Errorf("configure node presence/actual: %w", refused), true},
		{errors.Join(fmt.Errorf("a: %w", refused), fmt.Errorf("b: %w", conflict)), true},
		{fmt.Errorf("set up nodes: %w", errors.Join(refused, conflict)), true},
		{context.DeadlineExceeded, false},
		{fmt.Errorf("create node presence/live: %w", context.DeadlineExceeded), false},
		{errors.Join(refused, fmt.Errorf("create node presence/live: %w", context.DeadlineExceeded)), false},
		{fmt.Errorf("set up nodes: %w", errors.Join(refused, errors.New("stream closed"))), false},
	} {
		if got := answered(c.err); got != c.want {
			t.Errorf("answered(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// TestRefusedSetUpStaysOnline: a reconciliation whose set-up of the
// nodes the server answers with errors (ejabberd's "Database failure"
// while a node of its cluster dies) made no node: the service stays
// online (no init on the status node), and the next one succeeds.
func TestRefusedSetUpStaysOnline(t *testing.T) {
	f := newFakeServer(t)
	rs := trackedService(t, f, func(c *config.Config) {
		c.Sync.ReconcileInterval = config.Duration{Duration: time.Second}
	})
	statusBefore := f.statusPub.Load()
	f.failConfigure.Store(2) // the live and actual nodes, set up together
	f.waitFor("a failed reconciliation", func() bool {
		return rs.metric(t, "pubpresence_syncs_total", "kind", "reconcile", "result", "error") >= 1
	})
	ok := rs.metric(t, "pubpresence_syncs_total", "kind", "reconcile", "result", "ok")
	f.waitFor("a reconciliation after it", func() bool {
		return rs.metric(t, "pubpresence_syncs_total", "kind", "reconcile", "result", "ok") > ok
	})
	if n := f.statusPub.Load() - statusBefore; n != 0 {
		t.Errorf("%d publishes on the status node after a refused set-up, want none (init and online again)", n)
	}
	if p := rs.st.Phase(); p != status.Online {
		t.Errorf("phase %s, want online", p)
	}
	if f.failConfigure.Load() != 0 {
		t.Errorf("the fake still has %d configurations to refuse", f.failConfigure.Load())
	}
}

// graceSession returns a session in the initial resync's discovery,
// awaiting the users' answers with the grace given, nothing connected, and
// a function that returns what the grace timer posted once it fired.
func graceSession(t *testing.T, grace time.Duration, awaiting ...string) (*session, func() any) {
	cfg := newFakeServer(t).config() // the configuration only: nothing connects
	cfg.Sync.ProbeGrace.Duration = grace
	s := New(cfg, zerolog.New(io.Discard), metrics.New("test"), &status.Tracker{})
	ss := newSession(s, nil)
	ss.srv.events = make(chan component.Event, 1)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ss.crew.ctx = ctx
	ss.life.gen, ss.life.running, ss.life.phase = 1, initial, status.Discovering
	ss.resync = &resync{gen: 1, kind: initial, start: time.Now(),
		pre:      &prefetch{}, // settling waits for these items: nothing to fetch
		awaiting: map[string]bool{}, sessionsLeft: map[string]int{},
		heard: map[string]bool{}, online: map[string]bool{}}
	for _, u := range awaiting {
		ss.resync.awaiting[u] = true
	}
	return ss, func() any {
		t.Helper()
		select {
		case ev := <-ss.crew.events:
			return ev
		case <-time.After(10 * time.Second):
			t.Fatal("the grace timer posted nothing")
			return nil
		}
	}
}

// TestGraceOutlastsBusyLoop: the wait for the probes' answers ends after
// probe_grace without an answer from the server, not without one taken by
// the loop. At a million users the loop was once busy for 8 s (the early
// converge) with answers waiting for it: the grace timer fired, the
// resync settled with 82 759 users unanswered, and a warm start retracted
// their true items (docs/performance.md, "Scale").
func TestGraceOutlastsBusyLoop(t *testing.T) {
	const grace = 5 * time.Millisecond
	ss, timer := graceSession(t, grace, "a@x", "b@x")
	events := make(chan component.Event, 1)
	ss.srv.events = events
	ss.armGrace(1)

	// The loop is busy past the grace, an answer waiting in the streams'
	// queue: the timer's event, taken first, does not settle.
	events <- component.Event{Kind: component.EventStanza}
	ss.dispatch(timer())
	if ss.life.settled {
		t.Fatal("settled with an answer waiting for the loop")
	}
	<-events

	// The timer fires again while the loop is busy; the loop then takes
	// an answer, and only then the timer's event: the grace counts from
	// that answer.
	time.Sleep(2 * grace)
	ss.answered("b@x", "")
	ss.dispatch(timer())
	if ss.life.settled {
		t.Fatal("settled by a timer that fired before the last answer was taken")
	}

	// The server quiet for the grace: the wait ends, a@x unanswered.
	ss.dispatch(timer())
	if !ss.life.settled || ss.life.phase != status.Converging {
		t.Fatalf("not settled after the grace without answers (phase %v)", ss.life.phase)
	}
	if !ss.resync.awaiting["a@x"] || ss.resync.awaiting["b@x"] {
		t.Errorf("awaiting %v, want a@x only", ss.resync.awaiting)
	}
}

// TestGraceHeldByEarlyChanges: during the initial resync, once the early
// changes are queued, the grace does not end while changes of the actual
// node wait in the queue: the server works through them before it
// answers the last probes (after a purge, the answers' own publishes are
// all the early changes: nothing else holds the grace). Once nothing
// waits, the server's quiet settles.
func TestGraceHeldByEarlyChanges(t *testing.T) {
	const grace = 5 * time.Millisecond
	ss, timer := graceSession(t, grace, "a@x")
	cfg := ss.svc.cfg()
	// A queue that sends nothing: Run is not started.
	ss.queue = nodes.NewQueue(nil, nodes.QueueConfig{Service: cfg.XMPP.Pubsub, Live: cfg.Nodes.Live, Actual: cfg.Nodes.Actual}, nil)
	ss.resync.earlyDone = true
	ss.early = map[string]*presence.Conn{}
	ss.queue.Actual(presence.Conn{JID: "b@x/r", Show: presence.Online})
	ss.armGrace(1)
	ss.dispatch(timer())
	ss.dispatch(timer()) // twice the grace, quiet, a change still queued
	if ss.life.settled {
		t.Fatal("settled while an early change waited in the queue")
	}
	ss.queue = nodes.NewQueue(nil, nodes.QueueConfig{Service: cfg.XMPP.Pubsub, Live: cfg.Nodes.Live, Actual: cfg.Nodes.Actual}, nil)
	ss.dispatch(timer())
	if !ss.life.settled {
		t.Fatalf("not settled after the grace with nothing queued (phase %v)", ss.life.phase)
	}
}

// TestDropUnchangedLive: at the converge of a fresh start, each
// connection's held live events are dropped while they say what the
// actual node held; from its first event that differs on, all of its
// events stay, in their order; so do those of connections the node did
// not hold, and their ends.
func TestDropUnchangedLive(t *testing.T) {
	s := New(newFakeServer(t).config(), zerolog.New(io.Discard), nil, nil)
	ss := newSession(s, nil)
	ss.queue = nodes.NewQueue(&startCounter{started: make(chan struct{}, 16)}, nodes.QueueConfig{LiveShare: -1}, nil)
	conn := func(jid string, show presence.Show, text string) presence.Conn {
		return presence.Conn{JID: jid, Show: show, Text: text, IP: "10.0.0.1", Since: time.Unix(1, 0)}
	}
	node := nodeRead{conns: []presence.Conn{
		conn("a@x/r", presence.Away, "lunch"),
		conn("b@x/r", presence.Away, "lunch"),
		conn("d@x/r", presence.Online, ""),
		conn("e@x/r", presence.XA, "gone"),
		conn("f@x/r", presence.Online, ""), // no event: not looked at
	}}
	held := []presence.Conn{
		conn("a@x/r", presence.Away, "lunch"),  // as on the node: dropped
		conn("b@x/r", presence.DND, "meeting"), // differs: kept
		conn("a@x/r", presence.DND, "meeting"), // a changed: kept
		conn("a@x/r", presence.Away, "lunch"),  // back as on the node, after a change: kept
		conn("c@x/r", presence.Online, ""),     // not on the node: kept
		conn("d@x/r", presence.Offline, ""),    // ended: kept
		conn("e@x/r", presence.XA, "gone"),     // as on the node, twice: both dropped
		conn("e@x/r", presence.XA, "gone"),
	}
	held[0].Since = time.Unix(2, 0) // found later than the item says: still the same state
	for _, c := range held {
		if err := ss.queue.Live(c); err != nil {
			t.Fatal(err)
		}
	}
	if n := ss.dropUnchangedLive(node); n != 3 {
		t.Errorf("dropped %d, want 3", n)
	}
	var left []string
	ss.queue.EachLive(func(c presence.Conn) { left = append(left, c.JID+" "+string(c.Show)) })
	want := []string{"b@x/r dnd", "a@x/r dnd", "a@x/r away", "c@x/r online", "d@x/r offline"}
	if fmt.Sprint(left) != fmt.Sprint(want) {
		t.Errorf("left %q, want %q", left, want)
	}
	if n := ss.dropUnchangedLive(nodeRead{}); n != 0 {
		t.Errorf("against an empty node: dropped %d, want 0", n)
	}
}
