//go:build integration

package component_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/component"
	"github.com/pubpresence/pubpresence/internal/c2s"
	"github.com/pubpresence/pubpresence/internal/testserver"
)

// eventLog records everything a Pool reports, for a test that waits for
// events of several streams at once.
type eventLog struct {
	mu     sync.Mutex
	events []component.Event
	added  chan struct{} // a token after each append
}

func recordEvents(p *component.Pool) *eventLog {
	l := &eventLog{added: make(chan struct{}, 1)}
	go func() { // ends when Run closes Events
		for ev := range p.Events() {
			l.mu.Lock()
			l.events = append(l.events, ev)
			l.mu.Unlock()
			select {
			case l.added <- struct{}{}:
			default:
			}
		}
	}()
	return l
}

// all returns the events so far.
func (l *eventLog) all() []component.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

// wait returns the index and the first event at or after index from that
// match accepts, waiting up to d for it.
func (l *eventLog) wait(t *testing.T, from int, d time.Duration, what string, match func(component.Event) bool) (int, component.Event) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		evs := l.all()
		for i := from; i < len(evs); i++ {
			if match(evs[i]) {
				return i, evs[i]
			}
		}
		select {
		case <-l.added:
		case <-deadline.C:
			t.Fatalf("no %s within %v", what, d)
		}
	}
}

func isPrivilegeGrant(ev component.Event) bool {
	return ev.Kind == component.EventStanza && ev.Stanza.Name == "message" &&
		bytes.Contains(ev.Stanza.Inner, []byte("urn:xmpp:privilege"))
}

// TestIntegrationPool: one Pool, one stream per node of a real two-node
// ejabberd cluster with mod_privilege. Both handshakes succeed and each
// node grants privileged presence on its own stream; a node-2 user's
// presence comes out tagged with stream 1 (and never 0); a ping sent on
// stream 0 to that user is answered on stream 1 and its Call completes.
// Node 2 killed: the Pool reports stream 1 down, requests go on stream 0
// and succeed. Node 2 restarted: stream 1 comes back by itself, with a new
// grant, and serves again.
func TestIntegrationPool(t *testing.T) {
	began := time.Now()
	cl := testserver.StartCluster(t, testserver.WithPrivilege())
	t.Logf("cluster up in %v", time.Since(began).Round(time.Millisecond))
	n1, n2 := cl.Nodes[0], cl.Nodes[1]
	if err := cl.CreateUsers([]string{"bob"}, "pw"); err != nil {
		t.Fatal(err)
	}

	var dialMu sync.Mutex
	var dialFailures []string
	cfg := component.Config{Name: n1.Component, Secret: n1.Secret, DialTimeout: 10 * time.Second}
	p, err := component.NewPool(cfg, cl.Addresses(), 500*time.Millisecond, component.PoolHooks{
		DialFailed: func(i int, err error, wait time.Duration) {
			dialMu.Lock()
			dialFailures = append(dialFailures, fmt.Sprintf("stream %d: %v (next in %v)", i, err, wait.Round(time.Millisecond)))
			dialMu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	log := recordEvents(p)
	go func() { runDone <- p.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case <-runDone:
		case <-time.After(10 * time.Second):
			t.Error("Pool.Run did not return")
		}
	}()

	// Both handshakes; each node's grant on its own stream.
	began = time.Now()
	first := make([]*component.Conn, 2)
	for i := range first {
		_, up := log.wait(t, 0, 10*time.Second, fmt.Sprintf("stream %d up", i), func(ev component.Event) bool {
			return ev.Stream == i && ev.Kind == component.EventUp
		})
		first[i] = up.Conn
		log.wait(t, 0, 5*time.Second, fmt.Sprintf("node %d's privilege grant on stream %d", i+1, i), func(ev component.Event) bool {
			return ev.Stream == i && isPrivilegeGrant(ev) && ev.Stanza.From == n1.Domain
		})
	}
	t.Logf("both streams up and granted in %v", time.Since(began).Round(time.Millisecond))
	for _, ev := range log.all() {
		if isPrivilegeGrant(ev) && ev.Kind == component.EventStanza {
			t.Logf("grant on stream %d: %s", ev.Stream, ev.Stanza.Inner)
		}
	}

	// bob on node 2: his presence comes on stream 1.
	bob, err := c2s.Dial(context.Background(), c2s.Config{Addr: n2.C2SAddr, JID: "bob@" + n2.Domain, Password: "pw", Resource: "b2"})
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	go func() {
		for range bob.Stanzas() {
		}
	}()
	if err := bob.Presence("away", "on node 2", 0); err != nil {
		t.Fatal(err)
	}
	_, ev := log.wait(t, 0, 5*time.Second, "bob's presence", func(ev component.Event) bool {
		return ev.Kind == component.EventStanza && ev.Stanza.Name == "presence" && ev.Stanza.From == bob.JID() &&
			bytes.Contains(ev.Stanza.Inner, []byte("<show>away</show>"))
	})
	if ev.Stream != 1 {
		t.Errorf("bob's presence (node 2) came on stream %d, want 1", ev.Stream)
	}

	// A ping sent on stream 0 to bob is answered on stream 1, once node 1
	// knows his session (Mnesia replicates it a little after the login:
	// a ping before that is "User session not found").
	deadline := time.Now().Add(5 * time.Second)
	for {
		sessions, err := cl.Sessions(ctx, 0)
		if err == nil && slices.Contains(sessions, bob.JID()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node 1 never listed %s: %v %v", bob.JID(), sessions, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	received := func(c *component.Conn) uint64 { return c.Stats().Received }
	before0, before1 := received(first[0]), received(first[1])
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	defer rcancel()
	call, err := p.StartOn(rctx, 0, "get", bob.JID(), []byte("<ping xmlns='urn:xmpp:ping'/>"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := call.Wait(rctx); err != nil {
		t.Fatalf("ping sent on stream 0 to %s: %v", bob.JID(), err)
	}
	got0, got1 := received(first[0])-before0, received(first[1])-before1
	t.Logf("during the ping, stream 0 read %d stanzas, stream 1 read %d", got0, got1)
	if got0 != 0 || got1 < 1 {
		t.Errorf("the answer did not come on stream 1 only (stream 0 read %d, stream 1 %d)", got0, got1)
	}
	for i, c := range first {
		if s := c.Stats(); s.UnknownResults != 0 || s.ForeignResults != 0 {
			t.Errorf("stream %d: %+v", i, s)
		}
	}
	for _, ev := range log.all() {
		if ev.Stream == 0 && ev.Kind == component.EventStanza && strings.HasPrefix(ev.Stanza.From, "bob@") {
			t.Errorf("bob's stanza on stream 0: %+v", ev.Stanza)
		}
	}

	// Node 2 dies: stream 1 is reported down; requests go on stream 0.
	mark := len(log.all())
	began = time.Now()
	if err := cl.Kill(1); err != nil {
		t.Fatal(err)
	}
	_, down := log.wait(t, mark, 5*time.Second, "stream 1 down", func(ev component.Event) bool {
		return ev.Stream == 1 && ev.Kind == component.EventDown
	})
	t.Logf("stream 1 down %v after the kill: %v (up %v)", time.Since(began).Round(time.Millisecond), down.Err, down.Uptime.Round(time.Millisecond))
	if down.Conn != first[1] || down.Err == nil {
		t.Errorf("EventDown = %+v", down)
	}
	if h := p.Healthy(); !slices.Equal(h, []int{0}) {
		t.Errorf("Healthy after the kill = %v, want [0]", h)
	}
	if _, err := p.StartOn(rctx, 1, "get", n1.Pubsub, nil); !errors.Is(err, component.ErrNoStream) {
		t.Errorf("StartOn(1) while node 2 is down = %v, want ErrNoStream", err)
	}
	for range 3 {
		inner, err := p.IQ(rctx, "get", n1.Pubsub, []byte("<query xmlns='http://jabber.org/protocol/disco#info'/>"))
		if err != nil || !bytes.Contains(inner, []byte("pubsub")) {
			t.Fatalf("disco#info of %s with node 2 down: %q, %v", n1.Pubsub, inner, err)
		}
	}

	// Node 2 comes back; so does stream 1, by itself.
	began = time.Now()
	if err := cl.Restart(1); err != nil {
		t.Fatal(err)
	}
	restarted := time.Since(began)
	i, up := log.wait(t, mark, 15*time.Second, "stream 1 up again", func(ev component.Event) bool {
		return ev.Stream == 1 && ev.Kind == component.EventUp
	})
	t.Logf("node 2 restarted in %v; stream 1 up again %v after the restart began", restarted.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
	if up.Conn == first[1] {
		t.Error("stream 1's EventUp carries the old Conn")
	}
	log.wait(t, i, 5*time.Second, "node 2's new grant on stream 1", func(ev component.Event) bool {
		return ev.Stream == 1 && isPrivilegeGrant(ev)
	})
	eventually(t, "both streams healthy", func() bool { return slices.Equal(p.Healthy(), []int{0, 1}) })
	call, err = p.StartOn(rctx, 1, "get", n2.Pubsub, []byte("<query xmlns='http://jabber.org/protocol/disco#info'/>"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := call.Wait(rctx); err != nil {
		t.Fatalf("disco#info on the new stream 1: %v", err)
	}
	dialMu.Lock()
	t.Logf("dial failures while node 2 was down: %d %q", len(dialFailures), dialFailures)
	dialMu.Unlock()
	t.Logf("events: %d", len(log.all()))
}
