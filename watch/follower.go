package watch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pubpresence/pubpresence/internal/c2s"
	"github.com/pubpresence/pubpresence/internal/xmpp"
	"github.com/pubpresence/pubpresence/nodes"
	"github.com/pubpresence/pubpresence/presence"
	"github.com/pubpresence/pubpresence/pubsub"
)

// Nodes names the three pubsub nodes of the service.
type Nodes struct {
	Live   string // non-persistent, one event per change
	Actual string // persistent, one item per online connection
	Status string // persistent, the service state ("init", "online")
}

// DefaultNodes returns the default node names.
func DefaultNodes() Nodes {
	return Nodes{Live: "presence/live", Actual: "presence/actual", Status: "presence/status"}
}

// ErrStopped is returned by WaitFor when Run has ended without an error of
// its own (which cannot happen before its ctx ends).
var ErrStopped = errors.New("watch: follower stopped")

// Retry bounds for a subscription to a node that does not exist yet, and
// for a request the server asked to try again later.
const (
	subscribeRetryMin = 100 * time.Millisecond
	subscribeRetryMax = 2 * time.Second
	unsubscribeWait   = 2 * time.Second
)

// busy reports whether err is the server asking to try again later: an
// error of type wait (RFC 6120, 8.3.2). ejabberd answers so, with
// internal-server-error "Database failure", when a request meets a node
// being deleted.
func busy(err error) bool {
	var se *xmpp.StanzaError
	return errors.As(err, &se) && se.Type == "wait"
}

// backoff sleeps d, or until ctx ends (false), and returns the next wait.
func backoff(ctx context.Context, d *time.Duration) bool {
	t := time.NewTimer(*d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	}
	*d = min(2**d, subscribeRetryMax)
	return true
}

// session is what the Follower needs of a c2s client.
type session interface {
	Stanzas() <-chan c2s.Stanza
	Subscribe(ctx context.Context, service, node string) error
	Unsubscribe(ctx context.Context, service, node string) error
	Items(ctx context.Context, service, node string) ([]pubsub.Item, error)
	Err() error
}

// Follower drives a c2s session through the client protocol
// (docs/protocol.md, "How a client follows it"):
//
//  1. subscribe to the live and actual nodes, and last to the status node,
//     whose current item the server sends on subscription (on_sub);
//  2. while the status is not "online", discard what live says;
//  3. on "online", fetch every item of the actual node: that is the state;
//  4. from then on, apply live items, and the items and retracts of
//     actual, in order.
//
// When the status goes back to "init" (the service restarted) it starts
// again at step 2, keeping the last state until the new snapshot arrives.
//
// Between asking for the snapshot and receiving it, live events are kept
// and replayed, in order, on top of the snapshot: live events of one
// connection come in order, so the replay ends on the newest state whatever
// the order in which the service updates live and actual.
//
// The Follower owns the session's Stanzas channel: stanzas that are not
// notifications from the service about these nodes are dropped.
type Follower struct {
	sess    session
	service string
	nodes   Nodes

	Hooks // set before Run
	state // the view: Snapshot, Changes, WaitFor
}

// NewFollower returns a Follower of the nodes on service (the pubsub
// service, "pubsub.example.org") for the logged-in client cl. Call Run.
func NewFollower(cl *c2s.Client, service string, nodes Nodes) *Follower {
	return newFollower(cl, service, nodes)
}

// fromService reports whether from is the pubsub service's JID, once
// normalised.
func (f *Follower) fromService(from string) bool {
	j, err := xmpp.ParseJID(from)
	return err == nil && j.Full() == f.service
}

func newFollower(s session, service string, nodes Nodes) *Follower {
	if j, err := xmpp.ParseJID(service); err == nil {
		service = j.Full() // as fromService compares it
	}
	f := &Follower{sess: s, service: service, nodes: nodes}
	f.state.init()
	return f
}

// change is one buffered or applied change: a live event, a retract on
// actual (an Event with Show offline), or a purge of actual.
type change struct {
	ev    Event
	clear bool
}

type fetchResult struct {
	gen      int
	snapshot []Event
	err      error
}

// Run follows the nodes until ctx ends or the session does. On the way out
// it unsubscribes (best effort, two seconds at most). It returns ctx.Err(),
// or why it could not go on (the connection ended, a subscription or a
// fetch was refused). Run may be called once.
func (f *Follower) Run(ctx context.Context) (err error) {
	if err := f.begin(); err != nil {
		return err
	}
	defer func() { f.end(err) }()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	subscribed := make(chan error, 1)
	go func() { subscribed <- f.subscribe(ctx) }()
	defer f.unsubscribe(ctx)

	const (
		waiting   = iota // status not online: discard
		fetching         // snapshot requested: keep changes
		following        // apply changes
	)
	phase := waiting
	var pending []change
	gen := 0
	fetched := make(chan fetchResult, 1)
	stopFetch := func() {}
	defer func() { stopFetch() }()

	startFetch := func() {
		stopFetch()
		gen++
		fctx, fcancel := context.WithCancel(ctx)
		stopFetch = fcancel
		g := gen
		go func() {
			snap, err := f.fetch(fctx)
			select {
			case fetched <- fetchResult{gen: g, snapshot: snap, err: err}:
			case <-fctx.Done():
			}
		}()
		phase, pending = fetching, nil
	}
	apply := func(ch change) {
		if ch.clear {
			f.update((*View).Clear)
			return
		}
		// The event first: whoever sees the view change has had the event.
		if f.OnEvent != nil {
			f.OnEvent(ch.ev)
		}
		f.update(func(v *View) bool { return v.Apply(ch.ev) })
	}
	onChange := func(ch change) {
		switch phase {
		case fetching:
			pending = append(pending, ch)
		case following:
			apply(ch)
		}
	}

	stanzas := f.sess.Stanzas()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-subscribed:
			if err != nil {
				return err
			}
		case r := <-fetched:
			if r.gen != gen {
				continue
			}
			if r.err != nil {
				if !errors.Is(r.err, xmpp.ErrItemNotFound) {
					return r.err
				}
				// The node is gone (deleted by an admin): the service
				// sets it up again and says init, then online. Wait.
				f.update((*View).Clear)
				phase, pending = waiting, nil
				continue
			}
			f.update(func(v *View) bool { return v.Load(r.snapshot) })
			if f.OnSnapshot != nil {
				_, conns := f.Snapshot()
				f.OnSnapshot(conns)
			}
			for _, ch := range pending {
				apply(ch)
			}
			phase, pending = following, nil
		case st, ok := <-stanzas:
			if !ok {
				err := f.sess.Err()
				if err == nil {
					err = c2s.ErrClosed
				}
				return fmt.Errorf("watch: connection ended: %w", err)
			}
			if !f.fromService(st.From) {
				continue
			}
			ev, ok := st.Event()
			if !ok {
				continue
			}
			switch ev.Node {
			case f.nodes.Status:
				s, ok := statusOf(ev)
				if !ok {
					continue
				}
				f.update(func(v *View) bool { return v.SetStatus(s) })
				if f.OnStatus != nil {
					f.OnStatus(s)
				}
				if s == StatusOnline {
					startFetch() // also on a repeated "online": a fresh snapshot is never wrong
				} else {
					stopFetch()
					gen++ // the cancelled fetch's answer must not count
					phase, pending = waiting, nil
				}
			case f.nodes.Live:
				for _, it := range ev.Items {
					if it.Retract {
						continue
					}
					if e, ok := parseUser(it.Item); ok {
						onChange(change{ev: e})
					}
				}
			case f.nodes.Actual:
				// Publishes too: the service's live events may go out ahead
				// of its writes to actual, so a connection's last event
				// can come before the subscription and its item after the
				// fetch. The notifications of both nodes come in the order
				// the service sent them, and an item is never older than
				// an event sent before it.
				if ev.Purge || ev.Delete {
					onChange(change{clear: true})
				}
				for _, it := range ev.Items {
					if it.Retract {
						onChange(change{ev: Event{ID: it.ID, Conn: presence.Conn{JID: it.ID, Show: presence.Offline}}})
					} else if e, ok := parseUser(it.Item); ok {
						onChange(change{ev: e})
					}
				}
			}
		}
	}
}

// statusOf reads the service status from a notification on the status
// node: the last item wins; a retract, purge or delete means "" (unknown).
// ok is false when nothing in it can be read.
func statusOf(ev pubsub.Event) (string, bool) {
	if ev.Purge || ev.Delete {
		return "", true
	}
	s, ok := "", false
	for _, it := range ev.Items {
		if it.Retract {
			s, ok = "", true
			continue
		}
		if v, err := nodes.ParseStatus(it.Payload); err == nil {
			s, ok = v, true
		}
	}
	return s, ok
}

// parseUser reads a <user/> item; items that cannot be read are skipped.
func parseUser(it pubsub.Item) (Event, bool) {
	c, err := nodes.ParseUser(it.Payload)
	if err != nil {
		return Event{}, false
	}
	if c.JID == "" {
		c.JID = it.ID
	}
	id := it.ID
	if id == "" {
		id = c.JID
	}
	return Event{ID: id, Conn: c}, true
}

// fetch reads the actual node, again while the server is busy.
func (f *Follower) fetch(ctx context.Context) ([]Event, error) {
	wait := subscribeRetryMin
	for {
		items, err := f.sess.Items(ctx, f.service, f.nodes.Actual)
		if busy(err) && ctx.Err() == nil {
			if !backoff(ctx, &wait) {
				return nil, ctx.Err()
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("watch: fetch state: %w", err)
		}
		snap := make([]Event, 0, len(items))
		for _, it := range items {
			if e, ok := parseUser(it); ok {
				snap = append(snap, e)
			}
		}
		return snap, nil
	}
}

// subscribe subscribes to live, actual and then status. A node that does
// not exist yet (the service has not created it, or an admin deleted it)
// and a busy server are tried again until ctx ends.
func (f *Follower) subscribe(ctx context.Context) error {
	for _, node := range []string{f.nodes.Live, f.nodes.Actual, f.nodes.Status} {
		wait := subscribeRetryMin
		for {
			err := f.sess.Subscribe(ctx, f.service, node)
			if err == nil {
				break
			}
			if !(errors.Is(err, xmpp.ErrItemNotFound) || busy(err)) || ctx.Err() != nil {
				return fmt.Errorf("watch: %w", err)
			}
			if !backoff(ctx, &wait) {
				return ctx.Err()
			}
		}
	}
	return nil
}

// unsubscribe drops the subscriptions, which would otherwise outlive the
// session on the server. It drains the stanzas meanwhile, so that a full
// buffer cannot hold up the answers.
func (f *Follower) unsubscribe(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unsubscribeWait)
	defer cancel()
	go func() {
		for {
			select {
			case _, ok := <-f.sess.Stanzas():
				if !ok {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	for _, node := range []string{f.nodes.Status, f.nodes.Live, f.nodes.Actual} {
		if err := f.sess.Unsubscribe(ctx, f.service, node); errors.Is(err, c2s.ErrClosed) || ctx.Err() != nil {
			return
		}
	}
}
