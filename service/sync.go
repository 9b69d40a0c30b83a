package service

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/pubpresence/pubpresence/admin"
	"github.com/pubpresence/pubpresence/internal/xmpp"
	"github.com/pubpresence/pubpresence/presence"
	"github.com/pubpresence/pubpresence/pubsub"
	"github.com/pubpresence/pubpresence/status"
)

// errActualFailed ends an initial resync whose changes to the actual node
// were not all accepted.
var errActualFailed = errors.New("some changes to the actual node failed")

// syncRun is one resync with the server (PRODUCT.md §3 steps 2–5): the
// initial one after a connect, or a periodic reconciliation.
//
//  1. (initial) ensure the nodes, then let the queue send;
//  2. list the online sessions with admin commands;
//  3. probe their users and wait for the answers, which arrive as ordinary
//     presence and are applied as they come; a user who does not answer
//     within the grace period (or the deadline) is not subscribed to us;
//  4. drop connections the server no longer lists (ghosts), fetch the actual
//     node and make it equal to the state;
//  5. (initial) once those requests are answered, publish online.
type syncRun struct {
	initial  bool
	probeAll bool // probe every listed user, not only the untracked ones
	start    time.Time
	seq      uint64          // state.Seq() before the sessions were asked for
	online   map[string]bool // full JIDs the server listed
	awaiting map[string]bool // users probed that have not answered
	grace    *time.Timer
	deadline *time.Timer
	settled  bool
	partial  bool // the server's answer missed some users: drop no ghosts
	ghosts   int
	// untracked are the listed connections the state did not have when
	// the list came (a reconciliation counts those found by then as missing).
	untracked []string
}

func (sr *syncRun) kind() string {
	if sr.initial {
		return "initial"
	}
	return "reconcile"
}

func (sr *syncRun) stopTimers() {
	if sr.grace != nil {
		sr.grace.Stop()
	}
	if sr.deadline != nil {
		sr.deadline.Stop()
	}
}

// startSync begins a resync unless one is running.
func (ss *session) startSync(initial bool) {
	ss.beginSync(&syncRun{initial: initial})
}

// startFullSync begins a reconciliation that probes every user again, as
// the initial sync does, without leaving online: presence may have been
// lost, not only connections.
func (ss *session) startFullSync() {
	ss.beginSync(&syncRun{probeAll: true})
}

// reinit goes back to init and through the whole life cycle again, once a
// node was found missing (deleted by an admin): readers must drop what they
// hold and fetch the actual node anew once online, and init says so.
func (ss *session) reinit() {
	ss.log.Warn().Msg("a node is missing (deleted?): back to init to set the nodes up again")
	ss.phase = status.Init
	ss.queue.SetLiveShare(-1)
	ss.status.Set(status.Init)
	ss.metrics.SetState(string(status.Init))
	ss.actualOn = false // the initial sync's diff publishes everything
	ss.announce()
	ss.startSync(true)
}

func (ss *session) beginSync(sr *syncRun) {
	if ss.sync != nil {
		return
	}
	initial := sr.initial
	sr.start, sr.seq = time.Now(), ss.state.Seq()
	ss.sync = sr
	ss.dirty.Store(false)
	// Every resync sets the nodes up again: a node deleted by an admin may
	// have been created again by a publish with the server's defaults
	// (ejabberd auto-creates), which may let anyone read it.
	ss.needNodes.Store(false)
	ss.goAsync(func(ctx context.Context) {
		created, err := ss.ensureNodes(ctx, initial)
		if err != nil {
			ss.do(func() { ss.syncFailed(sr, errorf("set up nodes", err)) })
			return
		}
		ss.do(ss.startQueue)
		if created && !initial {
			// A node was gone: readers must start over, and init says so.
			ss.do(func() {
				if ss.sync == sr {
					ss.sync = nil
					ss.reinit()
				}
			})
			return
		}
		var all []admin.Session
		partial := 0
		for _, d := range ss.cfg().XMPP.Domains {
			actx, cancel := context.WithTimeout(ctx, ss.cfg().Sync.InitTimeout.Duration+ss.cfg().XMPP.RequestTimeout.Duration)
			sessions, stats, err := ss.admin.OnlineSessions(actx, d)
			cancel()
			if err != nil {
				ss.do(func() { ss.syncFailed(sr, errorf("list online sessions of "+d, err)) })
				return
			}
			all = append(all, sessions...)
			partial += stats.UserStatsErrors
		}
		ss.do(func() {
			if partial > 0 {
				// Some users' sessions are unknown: a connection missing
				// from the answer may still be there. Keep them this time.
				sr.partial = true
				ss.log.Warn().Int("users", partial).Msg("user-stats failed for some users; ghosts are kept until the next resync")
			}
			ss.discovered(sr, all)
		})
	})
}

// liveShare is how many live events the publish queue sends for each
// change of the actual node while both wait, once online. A persistent
// item costs the server about ten live events (Prosody with SQLite: 1.3 ms
// against 0.14 ms), and changes to one item merge while they wait: during
// a flood, events flow at close to the server's live rate and the actual
// node follows each connection's latest state. In init the live events
// are held (share -1) until online: no reader uses them before, and on a
// busy server every request counts (1000 live events are 0.3 s of
// Prosody's time in a cold start).
const liveShare = 8

// probeItemsMax is the largest item limit ProbeMaxItems looks for: 2^20
// connections, in 21 requests.
const probeItemsMax = 1 << 20

// ensureNodes creates or reconfigures the three nodes and their members.
// With publishInit, init is published on the status node first of all: a
// status left at online by an earlier run must not stand while the nodes
// are set up. It goes out before the nodes are checked, in one round trip
// (each round trip counts when the server is busy: during a flood Prosody
// answered one in about 3 s), and once more after the status node is set
// up if that first try failed (the node was not there). The live and
// actual nodes are then set up at the same time, and the status node after
// them.
func (ss *session) ensureNodes(ctx context.Context, publishInit bool) (createdAny bool, err error) {
	n := ss.cfg().Nodes
	service := ss.cfg().XMPP.Pubsub
	initDone := false
	if publishInit {
		rctx, cancel := context.WithTimeout(ctx, ss.cfg().XMPP.RequestTimeout.Duration)
		initDone = pubsub.Publish(rctx, ss.conn, service, n.Status, status.ItemID, status.Init.Item()) == nil
		cancel()
	}
	nodes := []pubsub.NodeConfig{
		{Node: n.Status, Title: "pubpresence: service status", Persist: true, MaxItems: "1", SendLast: "on_sub", AccessModel: n.AccessModel},
		{Node: n.Live, Title: "pubpresence: presence events", Persist: false, MaxItems: "1", SendLast: "never", AccessModel: n.AccessModel},
		{Node: n.Actual, Title: "pubpresence: online connections", Persist: true, MaxItems: "max", SendLast: "never", AccessModel: n.AccessModel},
	}
	// Live and actual at the same time, then status: reconfiguring the
	// status node may send its last item (online) to readers again, who
	// then fetch the actual node; it must be there with its members by
	// then (a reader got forbidden from a node created a moment before).
	created := make([]bool, len(nodes))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, nc := range nodes[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			created[i+1], errs[i+1] = ss.ensureNode(ctx, nc, publishInit, false)
		}()
	}
	wg.Wait()
	if errs[1] == nil && errs[2] == nil {
		created[0], errs[0] = ss.ensureNode(ctx, nodes[0], publishInit, publishInit && !initDone)
	}
	if err := errors.Join(errs...); err != nil {
		return slices.Contains(created, true), err
	}
	for i, nc := range nodes {
		createdAny = createdAny || created[i]
		ev := ss.log.Debug()
		if created[i] || publishInit {
			ev = ss.log.Info()
		}
		ev.Str("node", nc.Node).Bool("created", created[i]).Str("access_model", nc.AccessModel).Msg("node ready")
	}
	if !publishInit {
		return createdAny, nil // the item limit is read once per stream
	}
	rctx, cancel := context.WithTimeout(ctx, ss.cfg().XMPP.RequestTimeout.Duration)
	defer cancel()
	limit, err := pubsub.MaxItemsLimit(rctx, ss.conn, service, n.Actual)
	if err == nil && limit == 0 {
		// The form does not say (ejabberd): ask for larger and larger
		// max_items on the live node, which stores nothing.
		limit, err = pubsub.ProbeMaxItems(rctx, ss.conn, service, n.Live, probeItemsMax, "1")
		if limit == probeItemsMax {
			limit = 0 // no limit that matters
		}
	}
	if err != nil {
		ss.log.Warn().Err(err).Msg("cannot read the server's item limit")
	} else {
		ss.log.Info().Int("limit", limit).Msg("server item limit per node (0: none found)")
		ss.do(func() { ss.maxItems = limit })
	}
	return createdAny, nil
}

// ensureNode creates or reconfigures one node and its members, and then,
// with publishInit, publishes init on it. initial is false in a
// reconciliation: a node found with another title counts as created.
func (ss *session) ensureNode(ctx context.Context, nc pubsub.NodeConfig, initial, publishInit bool) (bool, error) {
	n := ss.cfg().Nodes
	service := ss.cfg().XMPP.Pubsub
	rctx, cancel := context.WithTimeout(ctx, ss.cfg().XMPP.RequestTimeout.Duration)
	defer cancel()
	replaced := false
	if !initial {
		// A node with another title was deleted and created again by
		// someone else: as good as created now.
		title, err := pubsub.Title(rctx, ss.conn, service, nc.Node)
		replaced = err == nil && title != nc.Title
	}
	created, err := pubsub.Ensure(rctx, ss.conn, service, nc)
	created = created || replaced
	if err == nil && n.AccessModel == "whitelist" {
		err = pubsub.SyncMembers(rctx, ss.conn, service, nc.Node, n.Readers)
	}
	if err == nil && publishInit {
		err = pubsub.Publish(rctx, ss.conn, service, n.Status, status.ItemID, status.Init.Item())
	}
	return created, err
}

// syncFailed ends a resync that could not finish. An initial one is tried
// again after a backoff, staying in init.
func (ss *session) syncFailed(sr *syncRun, err error) {
	if ss.sync != sr {
		return
	}
	sr.stopTimers()
	ss.sync = nil
	ss.iqError(err)
	ss.metrics.Syncs.WithLabelValues(sr.kind(), "error").Inc()
	ev := ss.log.Error().Err(err).Str("kind", sr.kind())
	switch xmpp.ConditionOf(err) {
	case xmpp.ErrForbidden, xmpp.ErrNotAuthorized, xmpp.ErrNotAllowed:
		ev = ev.Str("hint", "give the component JID admin rights on the server and owner rights on the pubsub service")
	case xmpp.ErrItemNotFound, xmpp.ErrServiceUnavailable, xmpp.ErrRemoteServerNotFound:
		ev = ev.Str("hint", "check xmpp.pubsub and xmpp.domains, and that the server has the pubsub service and admin commands")
	}
	if !sr.initial {
		ss.dirty.Store(true) // try again, after the repair backoff
		ev.Msg("reconciliation failed")
		return
	}
	ss.failures++
	wait := 2 * time.Second << min(ss.failures-1, 5)
	ev.Dur("retry_in_ms", wait).Msg("initial sync failed; staying in init")
	ss.retry = time.AfterFunc(wait, func() { ss.do(func() { ss.startSync(true) }) })
}

// discovered takes the server's list of sessions and probes their users.
func (ss *session) discovered(sr *syncRun, sessions []admin.Session) {
	if ss.sync != sr {
		return
	}
	sr.online = make(map[string]bool, len(sessions))
	sr.awaiting = make(map[string]bool)
	for _, se := range sessions {
		j, err := presence.ParseJID(se.JID)
		if err != nil || j.Resource == "" || !ss.domains[j.Domain] {
			continue
		}
		if se.Show == "unavailable" {
			continue // Prosody lists a session that has sent no presence (or unavailable): not online
		}
		jid := j.Full()
		sr.online[jid] = true
		if se.IP != "" && ss.cfg().Nodes.PublishIP {
			ss.ips[jid] = se.IP
			if c, ok := ss.state.Get(jid); ok && c.IP != se.IP {
				c.IP = se.IP
				c.Since = ss.now()
				ss.apply(c)
			}
			ss.release(jid)
		}
		_, tracked := ss.state.Get(jid)
		if !tracked {
			sr.untracked = append(sr.untracked, jid)
		}
		if sr.initial || sr.probeAll || !tracked {
			sr.awaiting[j.Bare()] = true
		}
	}
	ss.metrics.SyncSessions.Set(float64(len(sr.online)))
	if len(sr.awaiting) == 0 {
		ss.settle(sr)
		return
	}
	users := make([]string, 0, len(sr.awaiting))
	for u := range sr.awaiting {
		users = append(users, u)
	}
	ss.goAsync(func(ctx context.Context) {
		for _, u := range users {
			if err := ss.conn.SendPresence(ctx, u, "probe", "", ""); err != nil {
				return
			}
		}
		ss.do(func() { ss.armGrace(sr) })
	})
	ss.log.Debug().Int("sessions", len(sr.online)).Int("probed", len(users)).Msg("probing")
}

func (ss *session) armGrace(sr *syncRun) {
	if ss.sync != sr || sr.settled {
		return
	}
	if sr.grace == nil {
		// The deadline counts from the start of the resync, but the users
		// get at least the grace period to answer.
		grace := ss.cfg().Sync.ProbeGrace.Duration
		left := ss.cfg().Sync.InitTimeout.Duration - time.Since(sr.start)
		sr.deadline = time.AfterFunc(max(left, grace), func() { ss.do(func() { ss.settle(sr) }) })
		sr.grace = time.AfterFunc(grace, func() { ss.do(func() { ss.settle(sr) }) })
		return
	}
	sr.grace.Reset(ss.cfg().Sync.ProbeGrace.Duration)
}

// answered notes that bare answered a probe (or sent anything).
func (ss *session) answered(bare string) {
	sr := ss.sync
	if sr == nil || sr.settled || !sr.awaiting[bare] {
		return
	}
	delete(sr.awaiting, bare)
	if len(sr.awaiting) == 0 {
		ss.settle(sr)
		return
	}
	if sr.grace != nil {
		sr.grace.Reset(ss.cfg().Sync.ProbeGrace.Duration)
	}
}

// settle drops the ghosts and fetches the actual node to compare.
func (ss *session) settle(sr *syncRun) {
	if ss.sync != sr || sr.settled {
		return
	}
	sr.settled = true
	sr.stopTimers()
	if !sr.partial {
		for _, jid := range ss.state.Stale(sr.online, sr.seq) {
			if c, ok := ss.state.Remove(jid); ok {
				ss.removed(c)
				sr.ghosts++
			}
		}
	}
	if !sr.initial {
		found := 0
		for _, jid := range sr.untracked {
			if _, ok := ss.state.Get(jid); ok {
				found++
			}
		}
		ss.metrics.Fixes.WithLabelValues("ghost").Add(float64(sr.ghosts))
		ss.metrics.Fixes.WithLabelValues("missing").Add(float64(found))
	}
	ss.pruneIPs()
	ss.goAsync(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, ss.cfg().XMPP.RequestTimeout.Duration)
		items, err := pubsub.Items(ctx, ss.conn, ss.cfg().XMPP.Pubsub, ss.cfg().Nodes.Actual)
		cancel()
		ss.do(func() {
			if err != nil {
				if errors.Is(err, xmpp.ErrItemNotFound) {
					ss.needNodes.Store(true)
				}
				ss.syncFailed(sr, errorf("fetch "+ss.cfg().Nodes.Actual, err))
				return
			}
			ss.converge(sr, items)
		})
	})
}

// converge makes the actual node equal to the state.
func (ss *session) converge(sr *syncRun, items []pubsub.Item) {
	if ss.sync != sr {
		return
	}
	have := make([]presence.Conn, 0, len(items))
	var bad []string
	for _, it := range items {
		c, err := pubsub.ParseUser(it.Payload)
		if err != nil || c.JID != it.ID {
			bad = append(bad, it.ID)
			continue
		}
		have = append(have, c)
	}
	plan := presence.Diff(have, ss.state.Snapshot())
	for _, c := range plan.Unchanged {
		ss.state.SetSince(c.JID, c.Since)
	}
	for _, id := range append(plan.Retract, bad...) {
		ss.queue.Retract(id)
	}
	for _, c := range plan.Publish {
		ss.queue.Actual(c)
	}
	ss.actualOn = true
	fixes := len(plan.Retract) + len(plan.Publish) + len(bad)
	if !sr.initial {
		ss.metrics.Fixes.WithLabelValues("item_retracted").Add(float64(len(plan.Retract) + len(bad)))
		ss.metrics.Fixes.WithLabelValues("item_published").Add(float64(len(plan.Publish)))
	}
	ss.checkLimit()
	ev := ss.log.Info()
	if !sr.initial && fixes == 0 && sr.ghosts == 0 {
		ev = ss.log.Debug()
	}
	ev.Str("kind", sr.kind()).Int("connections", ss.state.Len()).Int("users", ss.state.Users()).
		Int("items", len(items)).Int("publish", len(plan.Publish)).Int("retract", len(plan.Retract)+len(bad)).
		Int("ghosts", sr.ghosts).Dur("took_ms", time.Since(sr.start)).Msg("resync")
	if !sr.initial {
		if fixes == 0 && sr.ghosts == 0 {
			ss.repair.Reset()
		}
		if ss.status.Failing() {
			ss.whenRepaired()
		}
		ss.finishSync(sr)
		return
	}
	// Once every request of the diff is answered, publish online, and be
	// online when the server has taken it.
	ss.afterQueued(func() { ss.publishOnline(sr) })
}

// afterQueued runs f on the loop once every state request queued so far
// has been answered (Queue.Barrier), unless the session ends first.
func (ss *session) afterQueued(f func()) {
	b := ss.queue.Barrier()
	ss.goAsync(func(ctx context.Context) {
		select {
		case <-b:
		case <-ctx.Done():
			return
		}
		ss.do(f)
	})
}

// publishOnline publishes online once the diff is answered. It goes through
// the queue, after every change to the actual node queued so far: a reader
// drops the live events it got before online and fetches the actual node,
// so each of those changes must be on the node before online is.
func (ss *session) publishOnline(sr *syncRun) {
	if ss.sync != sr {
		return
	}
	if ss.dirty.Load() {
		// A request of the diff failed: actual is not true, so online
		// would be a lie. Start over.
		ss.syncFailed(sr, errActualFailed)
		return
	}
	ss.statusFailed.Store(nil)
	ss.queue.Raw(ss.cfg().Nodes.Status, status.ItemID, status.Online.Item())
	ss.afterQueued(func() {
		if err := ss.statusFailed.Load(); err != nil {
			ss.syncFailed(sr, *err)
			return
		}
		ss.goOnline(sr)
	})
}

// whenRepaired clears the failing mark once the requests queued so far
// are answered, if none of them failed.
func (ss *session) whenRepaired() {
	ss.afterQueued(func() {
		if !ss.dirty.Load() && ss.status.Failing() {
			ss.status.SetFailing(false)
			ss.log.Info().Msg("the actual node accepts changes again: repaired")
		}
	})
}

func (ss *session) goOnline(sr *syncRun) {
	if ss.sync != sr {
		return
	}
	ss.status.SetFailing(false)
	ss.queue.SetLiveShare(liveShare)
	ss.phase = status.Online
	ss.status.Set(status.Online)
	ss.metrics.SetState(string(status.Online))
	ss.finishSync(sr)
	ss.log.Info().Int("connections", ss.state.Len()).Int("users", ss.state.Users()).
		Dur("took_ms", time.Since(sr.start)).Msg("online")
	ss.announce()
}

func (ss *session) finishSync(sr *syncRun) {
	ss.sync = nil
	ss.failures = 0
	ss.metrics.Syncs.WithLabelValues(sr.kind(), "ok").Inc()
	ss.metrics.SyncSeconds.WithLabelValues(sr.kind()).Observe(time.Since(sr.start).Seconds())
}
