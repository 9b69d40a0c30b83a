package watch

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/internal/c2s"
	"github.com/pubpresence/pubpresence/internal/xmpp"
	"github.com/pubpresence/pubpresence/nodes"
	"github.com/pubpresence/pubpresence/presence"
	"github.com/pubpresence/pubpresence/pubsub"
)

const service = "pubsub.localhost"

var names = DefaultNodes()

type fetchReq struct {
	node  string
	reply chan fetchReply
}

type fetchReply struct {
	items []pubsub.Item
	err   error
}

// fakeSession plays the c2s client: the test feeds stanzas and answers
// fetches; subscriptions are recorded.
type fakeSession struct {
	stanzas chan c2s.Stanza
	fetches chan fetchReq

	mu      sync.Mutex
	subs    []string
	unsubs  []string
	subErrs map[string][]error // returned, in order, for a node's Subscribe calls
	err     error
}

func newFakeSession() *fakeSession {
	return &fakeSession{stanzas: make(chan c2s.Stanza), // unbuffered: a send returns once Run took the stanza
		fetches: make(chan fetchReq), subErrs: map[string][]error{}}
}

func (s *fakeSession) Stanzas() <-chan c2s.Stanza { return s.stanzas }

func (s *fakeSession) Subscribe(ctx context.Context, svc, node string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if svc != service {
		return errors.New("wrong service " + svc)
	}
	s.subs = append(s.subs, node)
	if errs := s.subErrs[node]; len(errs) > 0 {
		s.subErrs[node] = errs[1:]
		return errs[0]
	}
	return nil
}

func (s *fakeSession) Unsubscribe(ctx context.Context, svc, node string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unsubs = append(s.unsubs, node)
	return nil
}

func (s *fakeSession) Items(ctx context.Context, svc, node string) ([]pubsub.Item, error) {
	r := fetchReq{node: node, reply: make(chan fetchReply, 1)}
	select {
	case s.fetches <- r:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case a := <-r.reply:
		return a.items, a.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *fakeSession) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *fakeSession) recorded() (subs, unsubs []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.subs...), append([]string(nil), s.unsubs...)
}

// notification builds a pubsub event message from service.
func notification(node, items string) c2s.Stanza {
	return c2s.Stanza{Name: "message", Type: "headline", From: service,
		Inner: []byte("<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='" + node + "'>" + items + "</items></event>")}
}

func userItem(jid string, show presence.Show) string {
	return "<item id='" + jid + "'>" + string(nodes.AppendUser(nil, conn(jid, show), true)) + "</item>"
}

func statusNote(s string) c2s.Stanza {
	return notification(names.Status, "<item id='current'>"+string(nodes.AppendStatus(nil, s))+"</item>")
}

func live(jid string, show presence.Show) c2s.Stanza {
	return notification(names.Live, userItem(jid, show))
}

func retract(jid string) c2s.Stanza {
	return notification(names.Actual, "<retract id='"+jid+"'/>")
}

// published is the notification of an item published on presence/actual.
func published(jid string, show presence.Show) c2s.Stanza {
	return notification(names.Actual, userItem(jid, show))
}

func actualItems(conns ...string) []pubsub.Item {
	var items []pubsub.Item
	for _, c := range conns {
		jid, show, _ := strings.Cut(c, "=")
		items = append(items, pubsub.Item{ID: jid, Payload: nodes.AppendUser(nil, conn(jid, presence.Show(show)), true)})
	}
	return items
}

// harness runs a Follower on a fake session.
type harness struct {
	t    *testing.T
	sess *fakeSession
	f    *Follower
	done chan error
	stop context.CancelFunc
	evs  chan Event
	log  chan string // OnStatus and OnSnapshot calls, in order
}

func startFollower(t *testing.T, setup func(*fakeSession)) *harness {
	t.Helper()
	sess := newFakeSession()
	if setup != nil {
		setup(sess)
	}
	h := &harness{t: t, sess: sess, f: newFollower(sess, service, names), done: make(chan error, 1), evs: make(chan Event, 100), log: make(chan string, 100)}
	h.f.OnEvent = func(e Event) { h.evs <- e; h.log <- "event " + e.ID + "=" + string(e.Conn.Show) }
	h.f.OnStatus = func(s string) { h.log <- "status " + s }
	h.f.OnSnapshot = func(cs []presence.Conn) { h.log <- fmt.Sprint("snapshot ", jids(cs)) }
	ctx, cancel := context.WithCancel(context.Background())
	h.stop = cancel
	go func() { h.done <- h.f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-h.done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return")
		}
	})
	return h
}

func (h *harness) send(sts ...c2s.Stanza) {
	h.t.Helper()
	for _, st := range sts {
		select {
		case h.sess.stanzas <- st:
		case err := <-h.done:
			h.done <- err // for the cleanup
			h.t.Fatalf("Run returned early: %v", err)
		case <-time.After(5 * time.Second):
			h.t.Fatal("Run did not take a stanza")
		}
	}
}

// fetch waits for the Follower to ask for presence/actual and answers.
func (h *harness) fetch(items []pubsub.Item, err error) {
	h.t.Helper()
	select {
	case r := <-h.sess.fetches:
		if r.node != names.Actual {
			h.t.Fatalf("fetched node %q", r.node)
		}
		r.reply <- fetchReply{items, err}
	case <-time.After(5 * time.Second):
		h.t.Fatal("no fetch of presence/actual")
	}
}

func (h *harness) noFetch() {
	h.t.Helper()
	select {
	case r := <-h.sess.fetches:
		h.t.Fatalf("unexpected fetch of %q", r.node)
	default:
	}
}

// want waits until the view is status with exactly conns ("jid=show").
func (h *harness) want(status string, conns ...string) {
	h.t.Helper()
	wantView(h.t, h.f, status, conns...)
}

// waiter is a follower of either kind.
type waiter interface {
	WaitFor(ctx context.Context, cond func(status string, conns []presence.Conn) bool) (string, []presence.Conn, error)
}

// wantView waits until f's view is status with exactly conns
// ("jid=show").
func wantView(t *testing.T, f waiter, status string, conns ...string) {
	t.Helper()
	if conns == nil {
		conns = []string{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, cs, err := f.WaitFor(ctx, func(s string, cs []presence.Conn) bool {
		return s == status && reflect.DeepEqual(jids(cs), conns)
	})
	if err != nil {
		t.Fatalf("view is %q %v, want %q %v (%v)", st, jids(cs), status, conns, err)
	}
}

// calls returns the hook calls so far, in order.
func (h *harness) calls() []string {
	var out []string
	for {
		select {
		case c := <-h.log:
			out = append(out, c)
		default:
			return out
		}
	}
}

func (h *harness) events() []string {
	var out []string
	for {
		select {
		case e := <-h.evs:
			out = append(out, e.ID+"="+string(e.Conn.Show))
		default:
			return out
		}
	}
}

func TestFollowerNormalStartup(t *testing.T) {
	h := startFollower(t, nil)
	h.send(live("x@l/1", presence.Online)) // before online: discarded
	h.send(statusNote(StatusOnline))
	h.fetch(actualItems("a@l/1=online", "b@l/1=away"), nil)
	h.want(StatusOnline, "a@l/1=online", "b@l/1=away")
	if got := h.events(); len(got) != 0 {
		t.Errorf("events before the snapshot: %v", got)
	}
	h.send(live("c@l/1", presence.DND), live("b@l/1", presence.Offline), retract("a@l/1"))
	h.want(StatusOnline, "c@l/1=dnd")
	if got, want := h.events(), []string{"c@l/1=dnd", "b@l/1=offline", "a@l/1=offline"}; !reflect.DeepEqual(got, want) {
		t.Errorf("events = %v, want %v", got, want)
	}
	// Run subscribes on a goroutine of its own, alongside the stanzas.
	var subs []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if subs, _ = h.sess.recorded(); len(subs) >= 3 || time.Now().After(deadline) {
			break
		}
	}
	if want := []string{names.Live, names.Actual, names.Status}; !reflect.DeepEqual(subs, want) {
		t.Errorf("subscriptions = %v, want %v", subs, want)
	}
	h.stop()
	if err := <-h.done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	h.done <- nil // for the cleanup
	if _, unsubs := h.sess.recorded(); !reflect.DeepEqual(unsubs, []string{names.Status, names.Live, names.Actual}) {
		t.Errorf("unsubscribed from %v", unsubs)
	}
}

func TestFollowerWaitsForOnline(t *testing.T) {
	h := startFollower(t, nil)
	h.send(statusNote(StatusInit), live("x@l/1", presence.Online), retract("x@l/1"))
	h.want(StatusInit)
	h.noFetch()
	h.send(statusNote(StatusOnline))
	h.fetch(actualItems("x@l/1=away"), nil)
	h.want(StatusOnline, "x@l/1=away")
}

// Live events that arrive while the snapshot is on its way are replayed on
// top of it, in order.
func TestFollowerReplaysEventsDuringFetch(t *testing.T) {
	h := startFollower(t, nil)
	h.send(statusNote(StatusOnline))
	r := <-h.sess.fetches
	h.send(live("a@l/1", presence.Away), live("n@l/1", presence.Chat), live("n@l/1", presence.XA), retract("b@l/1"))
	// Run has handled those once it takes the next stanza.
	h.send(c2s.Stanza{Name: "message", From: "someone@else"})
	r.reply <- fetchReply{items: actualItems("a@l/1=online", "b@l/1=online")}
	h.want(StatusOnline, "a@l/1=away", "n@l/1=xa")
	if got, want := h.events(), []string{"a@l/1=away", "n@l/1=chat", "n@l/1=xa", "b@l/1=offline"}; !reflect.DeepEqual(got, want) {
		t.Errorf("events = %v, want %v", got, want)
	}
}

func TestFollowerServiceRestart(t *testing.T) {
	h := startFollower(t, nil)
	h.send(statusNote(StatusOnline))
	h.fetch(actualItems("a@l/1=online", "b@l/1=online"), nil)
	h.want(StatusOnline, "a@l/1=online", "b@l/1=online")

	h.send(statusNote(StatusInit))
	h.want(StatusInit, "a@l/1=online", "b@l/1=online") // kept until the new snapshot
	h.send(live("b@l/1", presence.Offline), retract("a@l/1"), statusNote(StatusInit))
	h.send(statusNote(StatusOnline))
	h.fetch(actualItems("c@l/1=xa"), nil)
	h.want(StatusOnline, "c@l/1=xa")
	h.send(live("c@l/1", presence.Chat))
	h.want(StatusOnline, "c@l/1=chat")
}

// TestFollowerAppliesActualItems: the service's live events may go out
// ahead of its writes to presence/actual. A connection whose last live
// event came before the subscription, and whose item was written after
// the fetch, is in the view once that item's notification comes; one
// while the fetch is on its way is replayed on top of the snapshot, in
// order with the live events. (A follower that ignored them lacked a
// connection for good: TestIntegrationFaultServerRestart on ejabberd.)
func TestFollowerAppliesActualItems(t *testing.T) {
	h := startFollower(t, nil)
	h.send(live("late@l/1", presence.Away)) // before online: discarded
	h.send(statusNote(StatusOnline))
	r := <-h.sess.fetches
	h.send(published("n@l/1", presence.Chat), live("n@l/1", presence.XA))
	h.send(c2s.Stanza{Name: "message", From: "someone@else"}) // Run has handled those
	r.reply <- fetchReply{items: actualItems("a@l/1=online")}
	h.want(StatusOnline, "a@l/1=online", "n@l/1=xa")
	h.send(published("late@l/1", presence.Away))
	h.want(StatusOnline, "a@l/1=online", "late@l/1=away", "n@l/1=xa")
	h.send(published("a@l/1", presence.DND), retract("n@l/1"))
	h.want(StatusOnline, "a@l/1=dnd", "late@l/1=away")
	if got, want := h.events(), []string{"n@l/1=chat", "n@l/1=xa", "late@l/1=away", "a@l/1=dnd", "n@l/1=offline"}; !reflect.DeepEqual(got, want) {
		t.Errorf("events = %v, want %v", got, want)
	}
}

// A fetch overtaken by a restart is dropped: only the newer snapshot counts.
func TestFollowerDropsStaleFetch(t *testing.T) {
	h := startFollower(t, nil)
	h.send(statusNote(StatusOnline))
	first := <-h.sess.fetches
	h.send(statusNote(StatusInit), statusNote(StatusOnline))
	h.fetch(actualItems("new@l/1=online"), nil)
	first.reply <- fetchReply{items: actualItems("old@l/1=online")}
	h.want(StatusOnline, "new@l/1=online")
	h.send(live("z@l/1", presence.Online))
	h.want(StatusOnline, "new@l/1=online", "z@l/1=online")
}

func TestFollowerIgnoresForeignAndBadStanzas(t *testing.T) {
	h := startFollower(t, nil)
	h.send(statusNote(StatusOnline))
	h.fetch(actualItems("a@l/1=online"), nil)
	h.want(StatusOnline, "a@l/1=online")
	spoof := live("evil@l/1", presence.Online)
	spoof.From = "evil.localhost"
	other := notification("other/node", userItem("o@l/1", presence.Online))
	bad := notification(names.Live, "<item id='q@l/1'><user xmlns='urn:pubpresence:0' status='sleepy' fulljid='q@l/1'/></item>")
	badStatus := notification(names.Status, "<item id='current'><x xmlns='jabber:x:data'/></item>")
	chat := c2s.Stanza{Name: "message", Type: "chat", From: service, Inner: []byte("<body>hi</body>")}
	h.send(spoof, other, bad, badStatus, chat, live("b@l/1", presence.Away))
	h.want(StatusOnline, "a@l/1=online", "b@l/1=away")
}

func TestFollowerPurgeOfActualClears(t *testing.T) {
	h := startFollower(t, nil)
	h.send(statusNote(StatusOnline))
	h.fetch(actualItems("a@l/1=online", "b@l/1=online"), nil)
	h.want(StatusOnline, "a@l/1=online", "b@l/1=online")
	h.send(c2s.Stanza{Name: "message", From: service,
		Inner: []byte("<event xmlns='http://jabber.org/protocol/pubsub#event'><purge node='" + names.Actual + "'/></event>")})
	h.want(StatusOnline)
}

func TestFollowerSubscribeRetriesMissingNode(t *testing.T) {
	notFound := &xmpp.StanzaError{Type: "cancel", Condition: xmpp.ErrItemNotFound}
	h := startFollower(t, func(s *fakeSession) { s.subErrs[names.Live] = []error{notFound, notFound} })
	// The server sends nothing about status before it is subscribed to.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if subs, _ := h.sess.recorded(); len(subs) == 5 || time.Now().After(deadline) {
			break
		}
	}
	h.send(statusNote(StatusOnline))
	h.fetch(actualItems("a@l/1=online"), nil)
	h.want(StatusOnline, "a@l/1=online")
	subs, _ := h.sess.recorded()
	if want := []string{names.Live, names.Live, names.Live, names.Actual, names.Status}; !reflect.DeepEqual(subs, want) {
		t.Errorf("subscriptions = %v, want %v", subs, want)
	}
}

func TestFollowerFatalErrors(t *testing.T) {
	forbidden := &xmpp.StanzaError{Type: "auth", Condition: xmpp.ErrForbidden}
	t.Run("subscription refused", func(t *testing.T) {
		h := startFollower(t, func(s *fakeSession) { s.subErrs[names.Actual] = []error{forbidden} })
		_, _, err := h.f.WaitFor(context.Background(), func(string, []presence.Conn) bool { return false })
		if !errors.Is(err, xmpp.ErrForbidden) {
			t.Fatalf("WaitFor = %v, want forbidden", err)
		}
	})
	t.Run("fetch refused", func(t *testing.T) {
		h := startFollower(t, nil)
		h.send(statusNote(StatusOnline))
		h.fetch(nil, forbidden)
		if err := <-h.done; !errors.Is(err, xmpp.ErrForbidden) {
			t.Fatalf("Run = %v, want forbidden", err)
		}
		h.done <- nil
	})
	t.Run("connection ends", func(t *testing.T) {
		h := startFollower(t, func(s *fakeSession) { s.err = &xmpp.StreamError{Condition: xmpp.ErrStreamSystemShutdown} })
		close(h.sess.stanzas)
		var se *xmpp.StreamError
		if err := <-h.done; !errors.As(err, &se) {
			t.Fatalf("Run = %v, want the stream error", err)
		}
		h.done <- nil
		if err := h.f.Run(context.Background()); err == nil {
			t.Error("second Run accepted")
		}
	})
}

func TestFollowerChangesSignal(t *testing.T) {
	h := startFollower(t, nil)
	h.send(statusNote(StatusInit))
	select {
	case <-h.f.Changes():
	case <-time.After(5 * time.Second):
		t.Fatal("no change signalled for the status")
	}
	h.send(statusNote(StatusInit)) // no change
	h.send(statusNote(StatusOnline))
	h.fetch(nil, nil)
	h.want(StatusOnline)
	select {
	case <-h.f.Changes():
	case <-time.After(5 * time.Second):
		t.Fatal("no change signalled for online")
	}
	if s, cs := h.f.Snapshot(); s != StatusOnline || len(cs) != 0 {
		t.Errorf("Snapshot = %q %v", s, cs)
	}
}

// TestFollowerHooks: the status hook sees every status, the snapshot hook
// sees each loaded snapshot (also one equal to the view before, as after a
// restart of the service), and events kept during the fetch come after it.
func TestFollowerHooks(t *testing.T) {
	h := startFollower(t, nil)
	h.send(statusNote(StatusOnline))
	h.send(live("b@l/1", presence.Away)) // kept during the fetch
	h.fetch(actualItems("a@l/1=online"), nil)
	h.want(StatusOnline, "a@l/1=online", "b@l/1=away")
	h.send(statusNote(StatusInit), statusNote(StatusOnline))
	h.fetch(actualItems("a@l/1=online", "b@l/1=away"), nil)
	h.send(live("c@l/1", presence.DND))
	h.want(StatusOnline, "a@l/1=online", "b@l/1=away", "c@l/1=dnd")
	want := []string{
		"status online", "snapshot [a@l/1=online]", "event b@l/1=away",
		"status init", "status online", "snapshot [a@l/1=online b@l/1=away]", "event c@l/1=dnd",
	}
	if got := h.calls(); !reflect.DeepEqual(got, want) {
		t.Errorf("hook calls:\n got %q\nwant %q", got, want)
	}
}

// The actual node deleted while it is fetched (an admin deleted it): the
// follower waits for the service to set it up again (init, then online)
// instead of giving up.
func TestFollowerFetchOfDeletedNode(t *testing.T) {
	h := startFollower(t, nil)
	h.send(statusNote(StatusOnline))
	h.fetch(nil, &xmpp.StanzaError{Type: "cancel", Condition: xmpp.ErrItemNotFound})
	h.want(StatusOnline)
	h.send(live("a@l/1", presence.Away)) // discarded: no snapshot yet
	h.send(statusNote(StatusInit), statusNote(StatusOnline))
	h.fetch(actualItems("b@l/1=xa"), nil)
	h.want(StatusOnline, "b@l/1=xa")
	h.send(live("b@l/1", presence.Chat))
	h.want(StatusOnline, "b@l/1=chat")
}

// A server that answers "try again later" (ejabberd's wait/internal-server-
// error "Database failure" while a node is being deleted) is asked again:
// the subscription and the fetch both go through on the next try, and Run
// goes on.
func TestFollowerRetriesBusyServer(t *testing.T) {
	dbFailure := &xmpp.StanzaError{Type: "wait", Condition: xmpp.ErrInternalServerError, Text: "Database failure"}
	h := startFollower(t, func(s *fakeSession) { s.subErrs[names.Actual] = []error{dbFailure} })
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if subs, _ := h.sess.recorded(); len(subs) == 4 || time.Now().After(deadline) {
			break
		}
	}
	if subs, _ := h.sess.recorded(); !reflect.DeepEqual(subs, []string{names.Live, names.Actual, names.Actual, names.Status}) {
		t.Fatalf("subscriptions = %v, want actual asked again", subs)
	}
	h.send(statusNote(StatusOnline))
	h.fetch(nil, dbFailure)
	h.fetch(actualItems("a@l/1=online"), nil)
	h.want(StatusOnline, "a@l/1=online")
}

// WaitFor says why Run ended even when its own ctx has ended too.
func TestWaitForPrefersRunsError(t *testing.T) {
	forbidden := &xmpp.StanzaError{Type: "auth", Condition: xmpp.ErrForbidden}
	h := startFollower(t, func(s *fakeSession) { s.subErrs[names.Live] = []error{forbidden} })
	if _, _, err := h.f.WaitFor(context.Background(), func(string, []presence.Conn) bool { return false }); !errors.Is(err, xmpp.ErrForbidden) {
		t.Fatalf("WaitFor = %v, want forbidden", err)
	}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for i := 0; i < 50; i++ { // the select would pick either at random
		if _, _, err := h.f.WaitFor(done, func(string, []presence.Conn) bool { return false }); !errors.Is(err, xmpp.ErrForbidden) {
			t.Fatalf("WaitFor with an ended ctx = %v, want Run's error", err)
		}
	}
}
