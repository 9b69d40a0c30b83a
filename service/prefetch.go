package service

import (
	"context"
	"errors"
	"time"

	"github.com/pubpresence/pubpresence/internal/xmpp"
	"github.com/pubpresence/pubpresence/nodes"
	"github.com/pubpresence/pubpresence/presence"
	"github.com/pubpresence/pubpresence/pubsub"
)

// The initial resync overlaps its work on the actual node with the wait
// for the server (docs/architecture.md, "The initial sync"):
//
//   - the actual node is fetched while the sessions are listed (the
//     prefetch), not after the probes;
//   - once both are in, the items of connections the server does not list
//     are retracted, and the connections the state already holds (with
//     privileged presence, all of them: Prosody's push, ejabberd's API)
//     are published where the node differs: the early converge;
//   - the probes' grace of quiet starts once those requests are answered
//     (evEarlyAnswered): a busy server answers probes late;
//   - from then on, each change the probes bring (an answer, a session
//     that ends) is queued at once and laid over the items too (earlyOn);
//   - after the probes, converge compares the prefetched items, with what
//     was queued laid over them (session.early), to the state, and queues
//     only what is still different.
//
// Nothing else writes the actual node during init (changes reach it only
// once actualOn), and the queue sends one item's requests in order, so the
// node ends as the overlay says, whichever of its requests the server has
// answered when a fetch reads it. The overlay is kept across a relist of
// the same initial resync and dropped when a resync begins.

// earlyOn reports whether a change during the initial resync goes to the
// actual node at once: after the early converge, each probe answer (and
// each connection that ends) is queued as it comes and laid over the
// prefetched items like the early converge's own requests, so that the
// probes' wait and the publishes overlap and converge finds nothing left
// for them.
func (ss *session) earlyOn() bool {
	rs := ss.resync
	return !ss.actualOn && ss.early != nil && rs != nil && rs.kind == initial && rs.earlyDone
}

// earlyItem is the item id of the actual node, as the requests queued so
// far leave it: the overlay (session.early) laid over the prefetched
// items. ok is false when the node will not hold it.
func (ss *session) earlyItem(id string) (c presence.Conn, ok bool) {
	if e, queued := ss.early[id]; queued {
		if e == nil {
			return presence.Conn{}, false
		}
		return *e, true
	}
	c, ok = ss.resync.nodeHas[id]
	return c, ok
}

// evPrefetched: the actual node fetched at the start of an initial
// resync's discovery.
type evPrefetched struct {
	gen  uint64
	read nodeRead
	err  error
}

// evEarlyAnswered: the early converge's requests are answered.
type evEarlyAnswered struct{ gen uint64 }

// earlyAnswered starts the probes' grace, held while the early changes
// were in the server's hands.
func (ss *session) earlyAnswered(gen uint64) {
	rs := ss.resync
	if rs == nil || rs.gen != gen || !rs.earlyBusy {
		return
	}
	rs.earlyBusy = false
	if rs.probesSent && !ss.life.settled {
		ss.armGrace(gen)
	}
}

// prefetch is the actual node as an initial resync's discovery read it.
type prefetch struct {
	in   bool // the answer came
	read nodeRead
	err  error
	// wanted: the probes are over (settle) and wait for the items.
	wanted bool
}

// startPrefetch fetches the actual node for the initial resync gen while
// its sessions are listed.
func (ss *session) startPrefetch(gen uint64) {
	rs := ss.resync
	if rs == nil || rs.gen != gen || rs.kind != initial || rs.pre != nil {
		return
	}
	rs.pre = &prefetch{}
	ss.crew.spawn(func(ctx context.Context) {
		read, err := ss.readActual(ctx)
		ss.crew.post(evPrefetched{gen: gen, read: read, err: err})
	})
}

// prefetched takes the prefetch's answer: the early converge once the
// sessions are listed too, the converge once the probes are over.
func (ss *session) prefetched(ev evPrefetched) {
	rs := ss.resync
	if rs == nil || rs.gen != ev.gen || rs.pre == nil || !ss.life.current(ev.gen) {
		return
	}
	pre := rs.pre
	pre.in, pre.read, pre.err = true, ev.read, ev.err
	if ev.err != nil {
		ss.svc.log.Debug().Err(ev.err).Msg("prefetch of the actual node failed; fetching it after the probes")
		if pre.wanted {
			ss.fetchActual(rs.gen)
		}
		return
	}
	if rs.online != nil {
		ss.earlyConverge()
	}
	if pre.wanted {
		ss.dispatch(evItems{gen: rs.gen, read: pre.read})
	}
}

// settleItems is settle's fetch of the actual node: the prefetch's items
// when they came, or when they come; a fetch of its own otherwise.
func (ss *session) settleItems() {
	rs := ss.resync
	pre := rs.pre
	switch {
	case pre == nil || (pre.in && pre.err != nil):
		ss.fetchActual(rs.gen)
	case !pre.in:
		pre.wanted = true
	default:
		// Handed on here, not posted: the loop posting to its own events
		// would block it for good were they full.
		ss.dispatch(evItems{gen: rs.gen, read: pre.read})
	}
}

// fetchActual fetches the actual node for resync gen (evItems).
func (ss *session) fetchActual(gen uint64) {
	ss.crew.spawn(func(ctx context.Context) {
		read, err := ss.readActual(ctx)
		if err != nil {
			err = errorf("fetch "+ss.svc.cfg().Nodes.Actual, err)
		}
		ss.crew.post(evItems{gen: gen, read: read, err: err, missing: errors.Is(err, xmpp.ErrItemNotFound)})
	})
}

// readActual fetches every item of the actual node, patiently, and parses
// them in the caller's goroutine (a crew's, not the session's loop).
func (ss *session) readActual(ctx context.Context) (nodeRead, error) {
	cfg := ss.svc.cfg()
	ctx, cancel := ss.patient(ctx)
	defer cancel()
	asked := time.Now()
	items, err := pubsub.Items(ctx, ss.srv, cfg.XMPP.Pubsub, cfg.Nodes.Actual)
	if err != nil {
		return nodeRead{}, err
	}
	read := parseNode(items)
	read.asked = asked
	return read, nil
}

// nodeRead is the actual node as a fetch read it, parsed once: the early
// converge and the converge both read the prefetch's.
type nodeRead struct {
	conns []presence.Conn // the items that are a connection's
	bad   []string        // the ids of the others
	asked time.Time       // when the fetch was sent
}

// parseNode parses items: an item is a connection's when its payload
// parses and names the connection of its id.
func parseNode(items []pubsub.Item) nodeRead {
	r := nodeRead{conns: make([]presence.Conn, 0, len(items))}
	for _, it := range items {
		c, err := nodes.ParseUser(it.Payload)
		if err != nil || c.JID != it.ID {
			r.bad = append(r.bad, it.ID)
			continue
		}
		r.conns = append(r.conns, c)
	}
	return r
}

// earlyConverge queues, once the prefetch and the session list are both
// in, what is already known to be wrong on the actual node: the items of
// connections the server does not list, and the connections the state
// holds that the node lacks or holds otherwise.
func (ss *session) earlyConverge() {
	rs := ss.resync
	if rs.earlyDone || rs.partial {
		return // a partial list may lack connections that are there
	}
	rs.earlyDone = true
	have, bad := ss.nodeView(rs.pre.read)
	rs.nodeHas = make(map[string]presence.Conn, len(have))
	for _, c := range have {
		rs.nodeHas[c.JID] = c
	}
	plan := ss.svc.state.Diff(have)
	if ss.early == nil {
		ss.early = make(map[string]*presence.Conn)
	}
	// The items to retract: those of connections the server does not
	// list (a listed one's presence is still to come).
	var stale []string
	for _, id := range append(plan.Retract, bad...) {
		if !rs.online[id] {
			stale = append(stale, id)
		}
	}
	retract := len(stale)
	publish := plan.Publish
	purge := ss.purgeWorth(retract, len(have)+len(bad)-retract)
	if purge {
		// Every item goes, and every connection the state holds is
		// published again: the listed ones still to answer are published
		// as they do (earlyItem finds no item for them).
		ss.queue.Purge(ss.svc.cfg().Nodes.Actual)
		rs.purged = true
		ss.svc.log.Info().Int("stale", retract).Int("items", len(have)+len(bad)).
			Msg("initial sync: most of the actual node is stale: purging it in one request (sync.purge_stale)")
		for _, c := range have {
			ss.early[c.JID] = nil
		}
		for _, id := range bad {
			ss.early[id] = nil
		}
		clear(rs.nodeHas)
		publish = append(publish, plan.Unchanged...)
	} else {
		for _, id := range stale {
			ss.queue.Retract(id)
			ss.early[id] = nil
		}
	}
	for _, c := range publish {
		ss.queue.Actual(c)
		ss.early[c.JID] = &c
	}
	ss.checkLimit()
	if retract+len(publish) > 0 {
		// While the server works through these, the answers to the probes
		// may wait behind them (ejabberd answered 10 000 probes slower than
		// the grace while it retracted 10 000 items, and went online with
		// half the connections): the grace of quiet starts once they are
		// answered; all answers, or the deadline, still end the wait.
		rs.earlyBusy = true
		b, gen := ss.queue.Barrier(), rs.gen
		ss.crew.spawn(func(ctx context.Context) {
			select {
			case <-b:
				ss.crew.post(evEarlyAnswered{gen})
			case <-ctx.Done():
			}
		})
	}
	ss.svc.log.Debug().Int("publish", len(publish)).Int("retract", retract).Bool("purge", purge).
		Dur("took_ms", time.Since(rs.start)).Msg("initial sync: early changes queued")
}

// purgeMin is the fewest stale items a start purges the actual node for
// (sync.purge_stale): below it the retracts cost little, and subscribers
// of the node get their retractions rather than a purge.
const purgeMin = 64

// purgeWorth reports whether the early converge purges the actual node
// instead of retracting its retract stale items one by one, keep items
// being those it would leave (listed, or true already): with
// sync.purge_stale, when there are at least purgeMin to retract and twice
// as many as to keep, for a purge costs one request and the publishes of
// the kept items again (on Prosody with SQL storage, one DELETE and a
// publish costing about a retract).
func (ss *session) purgeWorth(retract, keep int) bool {
	return ss.svc.cfg().Sync.PurgeStale && !ss.purgeRefused && retract >= purgeMin && retract >= 2*keep
}

// nodeView lays over the node as r read it what the early converge
// queued: the connections the node holds once those requests are
// answered, and the ids of the items that are not a connection's.
func (ss *session) nodeView(r nodeRead) (have []presence.Conn, bad []string) {
	have = make([]presence.Conn, 0, len(r.conns))
	// overlaid takes what the early converge queued for item id, if it
	// queued anything: the published connection, or nothing (retracted).
	overlaid := func(id string) bool {
		e, ok := ss.early[id]
		if ok && e != nil {
			have = append(have, *e)
		}
		return ok
	}
	for _, c := range r.conns {
		if !overlaid(c.JID) {
			have = append(have, c)
		}
	}
	for _, id := range r.bad {
		if !overlaid(id) {
			bad = append(bad, id)
		}
	}
	if len(ss.early) == 0 {
		return have, bad
	}
	seen := make(map[string]bool, len(r.conns)+len(r.bad))
	for _, c := range r.conns {
		seen[c.JID] = true
	}
	for _, id := range r.bad {
		seen[id] = true
	}
	for id, e := range ss.early {
		if e != nil && !seen[id] {
			have = append(have, *e)
		}
	}
	return have, bad
}
