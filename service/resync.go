package service

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/pubpresence/pubpresence/admin"
	"github.com/pubpresence/pubpresence/internal/ejabberdapi"
	"github.com/pubpresence/pubpresence/internal/xmpp"
	"github.com/pubpresence/pubpresence/nodes"
	"github.com/pubpresence/pubpresence/presence"
	"github.com/pubpresence/pubpresence/pubsub"
	"github.com/pubpresence/pubpresence/status"
)

// A resync makes the nodes equal to the server's truth: the initial one
// after a connect (it ends in online), a periodic reconciliation, a repair
// after failed requests, a full one after another instance took stanzas.
// Its steps, each started by the state machine (lifecycle.go):
//
//  1. set the nodes up (initial: publish init first), then let the queue send;
//  2. list the online sessions with admin commands, and drop the
//     connections the server no longer lists (ghosts) at once: no answer
//     can bring them back, and a node of a cluster that died must not
//     wait for probes to have its users retracted;
//  3. probe their users; the answers arrive as ordinary presence and are
//     applied as they come; a user who does not answer within the grace
//     period (or the deadline) is not subscribed to us;
//  4. fetch the actual node and queue what makes it equal to the state;
//  5. (initial) once those requests are answered, publish online, and be
//     online once that is answered.
//
// resync holds the facts of the one running; the loop owns it.
type resync struct {
	gen      uint64
	kind     resyncKind
	start    time.Time
	seq      uint64          // state.Seq() before the sessions were asked for
	online   map[string]bool // full JIDs the server listed
	awaiting map[string]bool // users probed that have not answered
	// sessionsLeft counts, per user awaited, the listed sessions whose
	// answer has not come: a user is answered once all have (or by a
	// stanza that is no session's). heard are the sessions that answered.
	sessionsLeft map[string]int
	heard        map[string]bool
	grace        *time.Timer
	heardAt      time.Time // the last answer taken, or the grace armed
	deadline     *time.Timer
	partial      bool // the server's answer missed some users: drop no ghosts
	ghosts       int
	gone         map[string]bool // connections removed since the resync began
	// untracked are the listed connections the state did not have when
	// the list came (a reconciliation counts those found by then as missing).
	untracked []string
	// listed and settled are when the session list came and when the
	// probes were over, from start (the resync log line has them).
	listed, settled time.Duration
	pre             *prefetch // initial: the actual node, fetched while listing (prefetch.go)
	earlyDone       bool      // the early converge has run
	// nodeHas is the actual node as the early converge saw it: the
	// prefetched items, with the overlay of a relist laid over them.
	nodeHas    map[string]presence.Conn
	purged     bool // the early converge purged the node (sync.purge_stale)
	earlyBusy  bool // its requests are not all answered: no grace yet
	probesSent bool // armGrace ran
}

func (rs *resync) stopTimers() {
	if rs.grace != nil {
		rs.grace.Stop()
	}
	if rs.deadline != nil {
		rs.deadline.Stop()
	}
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

// beginResync starts resync gen of kind with the set-up of the nodes.
func (ss *session) beginResync(gen uint64, kind resyncKind) {
	if ss.resync != nil {
		ss.resync.stopTimers()
	}
	ss.resync = &resync{gen: gen, kind: kind, start: time.Now(), seq: ss.svc.state.Seq()}
	ss.early = nil // the last initial resync failed before its converge
	publishInit := kind == initial
	ss.crew.spawn(func(ctx context.Context) {
		created, err := ss.ensureNodes(ctx, publishInit)
		if err != nil {
			// A request whose answer did not come may have made a node.
			created = created || !answered(err)
			err = errorf("set up nodes", err)
		}
		ss.crew.post(evNodesReady{gen: gen, created: created, err: err})
	})
}

// answered reports whether err is only the server's answers of type
// error (every one of errors joined): the requests took no effect.
func answered(err error) bool {
	switch e := err.(type) {
	case *xmpp.StanzaError:
		return true
	case interface{ Unwrap() []error }:
		for _, inner := range e.Unwrap() {
			if !answered(inner) {
				return false
			}
		}
		return true
	case interface{ Unwrap() error }:
		return answered(e.Unwrap())
	}
	return false
}

// listSessions asks the server for the online sessions of every domain:
// with privileged presence and ejabberd.api_url, ejabberd's
// connected_users_info (one call, every session's presence with it), else,
// or when that fails, the admin commands.
func (ss *session) listSessions(gen uint64) {
	ss.startPrefetch(gen)
	cfg := ss.svc.cfg()
	api := ss.svc.api
	if !ss.privileged() {
		api = nil
	}
	ss.crew.spawn(func(ctx context.Context) {
		var apiErr error
		if api != nil {
			actx, cancel := context.WithTimeout(ctx, cfg.XMPP.RequestTimeout.Duration)
			listed, err := api.ConnectedUsersInfo(actx)
			cancel()
			if err == nil {
				ss.crew.post(evSessions{gen: gen, sessions: apiSessions(listed), api: listed})
				return
			}
			apiErr = err
		}
		var all []admin.Session
		partial := 0
		for _, d := range cfg.XMPP.Domains {
			actx, cancel := context.WithTimeout(ctx, cfg.Sync.InitTimeout.Duration+cfg.XMPP.RequestTimeout.Duration)
			sessions, stats, err := ss.admin().OnlineSessions(actx, d)
			cancel()
			if err != nil {
				ss.crew.post(evSessions{gen: gen, err: errorf("list online sessions of "+d, err)})
				return
			}
			all = append(all, sessions...)
			partial += stats.UserStatsErrors
		}
		ss.crew.post(evSessions{gen: gen, sessions: all, partial: partial, apiErr: apiErr})
	})
}

// apiSessions turns ejabberd's sessions into the admin commands' form
// (discover reads that); a session without available presence is listed
// as unavailable, as Prosody's details list it.
func apiSessions(listed []ejabberdapi.Session) []admin.Session {
	out := make([]admin.Session, len(listed))
	for i, se := range listed {
		show := se.Show
		switch show {
		case "":
			show = "unavailable"
		case string(presence.Online):
			show = "available"
		}
		out[i] = admin.Session{JID: se.JID, Show: show, Priority: se.Priority, HasPriority: true, IP: se.IP}
	}
	return out
}

// applyAPI takes the presence of each session ejabberd's HTTP API listed,
// unless the stream said something newer about that connection since the
// resync asked (a change, or its end): ejabberd sends no presence of the
// sessions online before the component connected, and the API is how the
// service learns them (and, at each poll, anything a lost grant hid).
//
// It returns how many connections it changed: presence the stream never
// brought.
func (ss *session) applyAPI(listed []ejabberdapi.Session) (missed int) {
	rs := ss.resync
	state := ss.svc.state
	publishIP := ss.svc.cfg().Nodes.PublishIP
	for _, se := range listed {
		if se.Show == "" || !presence.Show(se.Show).Valid() || se.Show == string(presence.Offline) {
			continue // no available presence: never published
		}
		j, err := presence.ParseJID(se.JID)
		if err != nil || j.Resource == "" || !ss.svc.domains[j.Domain] {
			continue
		}
		if ss.svc.exclude.any() && ss.svc.exclude.has(se.JID) {
			continue
		}
		jid := j.Full()
		if rs.gone[jid] || state.SetAfter(jid, rs.seq) {
			continue
		}
		if _, parked := ss.addrs.parked[jid]; parked {
			continue // a pushed presence waits for its address: it is newer
		}
		ip := ""
		if publishIP {
			ip = se.IP
		}
		c := presence.Conn{JID: jid, Show: presence.Show(se.Show), Text: presence.CleanText(se.Text),
			Priority: max(-128, min(127, se.Priority)), IP: ip, Since: ss.svc.now()}
		if old, ok := state.Get(jid); !ok || !old.SameState(c) {
			missed++
		}
		ss.apply(c) // an unchanged connection keeps its since
	}
	return missed
}

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
	cfg := ss.svc.cfg()
	n := cfg.Nodes
	service := cfg.XMPP.Pubsub
	initDone := false
	if publishInit {
		rctx, cancel := ss.patient(ctx)
		initDone = pubsub.Publish(rctx, ss.srv, service, n.Status, nodes.StatusItemID, status.StateInit.Item()) == nil
		cancel()
	}
	configs := nodes.Configs(n) // status, live, actual
	// Live and actual at the same time, then status: reconfiguring the
	// status node may send its last item (online) to readers again, who
	// then fetch the actual node; it must be there with its members by
	// then (a reader got forbidden from a node created a moment before).
	created := make([]bool, len(configs))
	errs := make([]error, len(configs))
	var wg sync.WaitGroup
	for i, nc := range configs[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			created[i+1], errs[i+1] = ss.ensureNode(ctx, nc, publishInit, false)
		}()
	}
	wg.Wait()
	if errs[1] == nil && errs[2] == nil {
		created[0], errs[0] = ss.ensureNode(ctx, configs[0], publishInit, publishInit && !initDone)
	}
	if err := errors.Join(errs...); err != nil {
		return slices.Contains(created, true), err
	}
	for i, nc := range configs {
		createdAny = createdAny || created[i]
		ev := ss.svc.log.Debug()
		if created[i] || publishInit {
			ev = ss.svc.log.Info()
		}
		ev.Str("node", nc.Node).Bool("created", created[i]).Str("access_model", nc.AccessModel).Msg("node ready")
	}
	if !publishInit {
		return createdAny, nil // the item limit is read once per stream
	}
	rctx, cancel := ss.patient(ctx)
	defer cancel()
	limit, err := pubsub.MaxItemsLimit(rctx, ss.srv, service, n.Actual)
	if err == nil && limit == 0 {
		// The form does not say (ejabberd): ask for larger and larger
		// max_items on the live node, which stores nothing.
		limit, err = pubsub.ProbeMaxItems(rctx, ss.srv, service, n.Live, probeItemsMax, "1")
		if limit == probeItemsMax {
			limit = 0 // no limit that matters
		}
	}
	if err != nil {
		ss.svc.log.Warn().Err(err).Msg("cannot read the server's item limit")
	} else {
		ss.svc.log.Info().Int("limit", limit).Msg("server item limit per node (0: none found)")
		ss.crew.post(evMaxItems{limit})
	}
	return createdAny, nil
}

// ensureNode creates or reconfigures one node and its members, and then,
// with publishInit, publishes init on it. initial is false in a
// reconciliation: a node found with another title counts as created.
func (ss *session) ensureNode(ctx context.Context, nc pubsub.NodeConfig, initial, publishInit bool) (bool, error) {
	cfg := ss.svc.cfg()
	n := cfg.Nodes
	service := cfg.XMPP.Pubsub
	rctx, cancel := ss.patient(ctx)
	defer cancel()
	replaced := false
	if !initial {
		// A node with another title was deleted and created again by
		// someone else: as good as created now.
		title, err := pubsub.Title(rctx, ss.srv, service, nc.Node)
		replaced = err == nil && title != nc.Title
	}
	created, err := pubsub.Ensure(rctx, ss.srv, service, nc)
	created = created || replaced
	if err == nil && n.AccessModel == "whitelist" {
		err = pubsub.SyncMembers(rctx, ss.srv, service, nc.Node, n.Readers)
	}
	if err == nil && publishInit {
		err = pubsub.Publish(rctx, ss.srv, service, n.Status, nodes.StatusItemID, status.StateInit.Item())
	}
	return created, err
}

// discover takes the server's list of sessions and probes their users.
func (ss *session) discover(ev evSessions) {
	sessions, partial := ev.sessions, ev.partial
	rs := ss.resync
	rs.listed = time.Since(rs.start)
	if ev.apiErr != nil {
		e := ss.svc.log.Debug()
		if ss.logs.api.add() {
			e = ss.svc.log.Warn()
		}
		e.Err(ev.apiErr).Msg("ejabberd's HTTP API failed (ejabberd.api_url); listing the sessions with admin commands, without their presence")
	}
	if partial > 0 {
		// Some users' sessions are unknown: a connection missing from the
		// answer may still be there. Keep them this time.
		rs.partial = true
		ss.svc.log.Warn().Int("users", partial).Msg("user-stats failed for some users; ghosts are kept until the next resync")
	}
	if ev.api != nil {
		// First: the sessions whose presence the API told are then
		// tracked, and nobody probes them.
		missed := ss.applyAPI(ev.api)
		if rs.kind == poll {
			ss.pushMissed(missed)
		}
	}
	publishIP := ss.svc.cfg().Nodes.PublishIP
	rs.online = make(map[string]bool, len(sessions))
	rs.awaiting = make(map[string]bool)
	rs.sessionsLeft, rs.heard = make(map[string]int), make(map[string]bool)
	for _, se := range sessions {
		j, err := presence.ParseJID(se.JID)
		if err != nil || j.Resource == "" || !ss.svc.domains[j.Domain] {
			continue
		}
		if ss.svc.exclude.any() && ss.svc.exclude.has(se.JID) {
			ss.svc.metrics.Excluded.Inc()
			continue
		}
		if se.Show == "unavailable" {
			continue // Prosody lists a session that has sent no presence (or unavailable): not online
		}
		jid := j.Full()
		rs.online[jid] = true
		if se.IP != "" && publishIP {
			ss.addrs.ips[jid] = se.IP
			if c, ok := ss.svc.state.Get(jid); ok && c.IP != se.IP {
				c.IP = se.IP
				c.Since = ss.svc.now()
				ss.apply(c)
			}
			ss.release(jid)
		}
		_, tracked := ss.svc.state.Get(jid)
		if !tracked {
			rs.untracked = append(rs.untracked, jid)
		}
		// A probe asks a user for the presence of their sessions: those
		// not tracked yet; in the roster way also every user at the start
		// of the stream, to refresh what the state holds. With privileged
		// presence the server pushes every change (and Prosody every
		// session at connect), and only users with the component in their
		// roster answer a probe; a poll probes no one.
		switch {
		case rs.kind == poll:
		case !tracked, rs.kind != reconcile && !ss.privileged():
			rs.awaiting[j.Bare()] = true
			rs.sessionsLeft[j.Bare()]++
		}
	}
	if !rs.partial {
		for _, jid := range ss.svc.state.Stale(rs.online, rs.seq) {
			if c, ok := ss.svc.state.Remove(jid); ok {
				ss.removed(c)
				rs.ghosts++
			}
		}
	}
	if pre := rs.pre; pre != nil && pre.in && pre.err == nil {
		ss.earlyConverge()
	}
	ss.dropLookups()
	ss.svc.metrics.SyncSessions.Set(float64(len(rs.online)))
	if len(rs.awaiting) == 0 {
		ss.dispatch(evSettled{rs.gen})
		return
	}
	users := make([]string, 0, len(rs.awaiting))
	for u := range rs.awaiting {
		users = append(users, u)
	}
	gen := rs.gen
	ss.crew.spawn(func(ctx context.Context) {
		for _, u := range users {
			if err := ss.srv.SendPresence(ctx, u, "probe", "", ""); err != nil {
				return
			}
		}
		ss.crew.post(evProbesSent{gen})
	})
	ss.svc.log.Debug().Int("sessions", len(rs.online)).Int("probed", len(users)).Msg("probing")
}

// probePerUser is how much longer than sync.init_timeout a resync may
// wait for probe answers, per user probed: a server answers 1 000 000
// probes in 25 to 76 s on 2 cores (docs/performance.md, "Scale"), and a
// fixed 30 s cut such a start short with 6 % of its users still to come.
const probePerUser = 100 * time.Microsecond

// probeDeadline is how long after its start a resync waits for the
// answers of probed users at most: init_timeout, or 0.1 ms per user
// probed when that is longer (100 s for a million).
func probeDeadline(initTimeout time.Duration, probed int) time.Duration {
	return max(initTimeout, time.Duration(probed)*probePerUser)
}

// armGrace starts, once the probes are sent, the wait for their answers:
// the grace period, renewed by each answer, and the deadline.
func (ss *session) armGrace(gen uint64) {
	rs := ss.resync
	if rs == nil || rs.gen != gen || rs.awaiting == nil || ss.life.settled {
		return
	}
	rs.probesSent = true
	grace := ss.svc.cfg().Sync.ProbeGrace.Duration
	if rs.deadline == nil {
		// The deadline counts from the start of the resync, but the users
		// get at least the grace period to answer.
		left := probeDeadline(ss.svc.cfg().Sync.InitTimeout.Duration, len(rs.awaiting)) - time.Since(rs.start)
		rs.deadline = time.AfterFunc(max(left, grace), func() { ss.crew.post(evSettled{gen}) })
	}
	if rs.earlyBusy {
		return // the grace starts once the early changes are answered (earlyAnswered)
	}
	rs.heardAt = time.Now()
	if rs.grace != nil {
		rs.grace.Reset(grace)
		return
	}
	rs.grace = time.AfterFunc(grace, func() { ss.crew.post(evGraceOver{gen}) })
}

// evGraceOver: the grace timer of resync gen fired.
type evGraceOver struct{ gen uint64 }

// graceOver ends the wait for the probes' answers once no answer has come
// for the grace period: the server's silence, not the loop's. An answer
// taken after the timer fired, stream events waiting for the loop (busy
// with other work: 8 s at once in a start of a million), or, once the
// initial resync queues each answer at once (earlyOn), changes of the
// actual node still queued for the server, renew the wait.
func (ss *session) graceOver(gen uint64) {
	rs := ss.resync
	if rs == nil || rs.gen != gen || ss.life.settled || rs.grace == nil {
		return
	}
	grace := ss.svc.cfg().Sync.ProbeGrace.Duration
	since := time.Since(rs.heardAt)
	if grace > 0 {
		if len(ss.srv.events) > 0 || ss.earlyOn() && ss.queue != nil && ss.queue.StateQueued() > 0 {
			// Answers wait for the loop, or the server has the early
			// changes still to work through: the answers to the last
			// probes may wait behind them (after a purge, the answers'
			// own publishes are all the early changes).
			rs.grace.Reset(grace)
			return
		}
		if since < grace {
			rs.grace.Reset(grace - since)
			return
		}
	}
	ss.dispatch(evSettled{gen})
}

// answered notes that bare answered a probe (or sent anything); full is
// the session that answered, when the stanza was one session's presence:
// the user counts as answered once every listed session has (the early
// converge's prefetch made converge follow settle at once, and a user's
// second session's answer, a moment behind the first, was missed).
func (ss *session) answered(bare, full string) {
	rs := ss.resync
	if rs == nil || ss.life.settled || !rs.awaiting[bare] {
		return
	}
	if full != "" && rs.online[full] && !rs.heard[full] {
		rs.heard[full] = true
		rs.sessionsLeft[bare]--
	}
	if full == "" || rs.sessionsLeft[bare] <= 0 {
		delete(rs.awaiting, bare)
	}
	if len(rs.awaiting) == 0 {
		ss.dispatch(evSettled{rs.gen})
		return
	}
	rs.heardAt = time.Now()
}

// settle counts what the resync found and fetches the actual node to
// compare.
func (ss *session) settle() {
	rs := ss.resync
	rs.stopTimers()
	rs.settled = time.Since(rs.start)
	if rs.kind != initial {
		found := 0
		for _, jid := range rs.untracked {
			if _, ok := ss.svc.state.Get(jid); ok {
				found++
			}
		}
		ss.svc.metrics.Fixes.WithLabelValues("ghost").Add(float64(rs.ghosts))
		ss.svc.metrics.Fixes.WithLabelValues("missing").Add(float64(found))
	}
	ss.countUnknown()
	ss.pruneIPs()
	if rs.kind == poll {
		return // the actual node follows the changes made
	}
	ss.settleItems()
}

// countUnknown counts, with privileged presence, the sessions the server
// listed whose presence it never sent (ejabberd: online before the
// service connected, without ejabberd.api_url, and no roster subscription
// to answer a probe): they are not published, since any show would be
// invented, until their next presence change.
func (ss *session) countUnknown() {
	rs := ss.resync
	unknown := 0
	if ss.privileged() && !rs.partial {
		for jid := range rs.online {
			if _, ok := ss.svc.state.Get(jid); !ok {
				unknown++
			}
		}
	}
	ss.svc.metrics.Unknown.Set(float64(unknown))
	if unknown > 0 && rs.kind != poll {
		ss.svc.log.Warn().Int("sessions", unknown).
			Msg("sessions online whose presence the server never told (privileged presence on ejabberd sends none for sessions online before the service connected): not published until they change presence; ejabberd.api_url tells them")
	}
}

// converge queues what makes the actual node equal to the state.
func (ss *session) converge(read nodeRead) {
	rs := ss.resync
	state := ss.svc.state
	have, bad := ss.nodeView(read)
	// The early changes are laid over: from here the queue holds what
	// the node is to become. Kept, the overlay held a cold start's every
	// connection until the next resync (190 B each at 100 000).
	ss.early = nil
	plan := state.Diff(have)
	for _, c := range plan.Unchanged {
		state.SetSince(c.JID, c.Since)
		if f := ss.svc.feed; f != nil {
			f.Set(c) // the node's since, which readers of the nodes hold
		}
	}
	retract := append(plan.Retract, bad...)
	// Retracted all the same, but not counted as fixes.
	stuck := ss.stuckItems(retract, read.asked)
	for _, id := range retract {
		ss.queue.Retract(id)
	}
	for _, c := range plan.Publish {
		ss.queue.Actual(c)
	}
	ss.actualOn = true
	unchanged := 0
	if rs.kind == initial && ss.fresh {
		// After a retry too: the events of the attempts before are held.
		unchanged = ss.dropUnchangedLive(read)
		ss.fresh = false
	}
	fixes := len(retract) - stuck + len(plan.Publish)
	if rs.kind != initial {
		ss.svc.metrics.Fixes.WithLabelValues("item_retracted").Add(float64(len(retract) - stuck))
		ss.svc.metrics.Fixes.WithLabelValues("item_published").Add(float64(len(plan.Publish)))
		if fixes == 0 && rs.ghosts == 0 {
			ss.clock.repair.Reset()
		}
	}
	ss.checkLimit()
	ev := ss.svc.log.Info()
	if rs.kind != initial && fixes == 0 && rs.ghosts == 0 {
		ev = ss.svc.log.Debug()
	}
	ev.Str("kind", rs.kind.String()).Int("connections", state.Len()).Int("users", state.Users()).
		Int("items", len(read.conns)+len(read.bad)).Int("publish", len(plan.Publish)).Int("retract", len(retract)).Int("stuck", stuck).
		Int("ghosts", rs.ghosts).Bool("purged", rs.purged).Int("live_unchanged", unchanged).Dur("listed_ms", rs.listed).Dur("settled_ms", rs.settled).
		Dur("took_ms", time.Since(rs.start)).Msg("resync")
}

// dropUnchangedLive drops, at the converge of a fresh session's initial
// resync (session.fresh), the held live events that tell readers nothing
// new. The state was empty, so each connection found was a change to it
// and queued an event; but one found as the actual node held it when read
// (what readers had before this start: a warm restart finds every
// connection so) did not change. Each connection's events are dropped
// until its first that differs from its item; from that one on, all of
// its events stay, in their order. It returns how many it dropped. Only
// the connections with an event held are looked up: at most MaxLive,
// however large the node.
func (ss *session) dropUnchangedLive(read nodeRead) int {
	type seen struct {
		item    presence.Conn // the node's item; none (no JID: never the same state) if it has none
		changed bool          // one of its events was kept: the later ones are too
	}
	held := make(map[string]seen)
	ss.queue.EachLive(func(c presence.Conn) { held[c.JID] = seen{} })
	if len(held) == 0 {
		return 0
	}
	for _, c := range read.conns {
		if _, ok := held[c.JID]; ok {
			held[c.JID] = seen{item: c}
		}
	}
	return ss.queue.FilterLive(func(c presence.Conn) bool {
		s := held[c.JID]
		if s.changed {
			return true
		}
		if s.item.SameState(c) {
			return false
		}
		s.changed = true
		held[c.JID] = s
		return true
	})
}

// finishResync records the end of a resync, done or failed.
func (ss *session) finishResync(w doFinish) {
	rs := ss.resync
	if rs == nil || rs.gen != w.gen {
		return
	}
	rs.stopTimers()
	ss.resync = nil
	kind := w.kind.String()
	if w.kind == poll {
		ss.pollDone(time.Since(rs.start), time.Now())
	}
	if w.err == nil {
		ss.svc.metrics.Syncs.WithLabelValues(kind, "ok").Inc()
		ss.svc.metrics.SyncSeconds.WithLabelValues(kind).Observe(time.Since(rs.start).Seconds())
		if w.kind == initial {
			ss.svc.log.Info().Dur("took_ms", time.Since(rs.start)).Msg("initial sync done")
		}
		return
	}
	ss.svc.iqError(w.err)
	ss.svc.metrics.Syncs.WithLabelValues(kind, "error").Inc()
	if w.kind != initial { // an initial one is logged with its retry (doRetry)
		ss.failed(w.err).Str("kind", kind).Msg("reconciliation failed")
	}
}

// failed starts the log line of a failed resync, with a hint for the
// errors a setting causes.
func (ss *session) failed(err error) *zerolog.Event {
	ev := ss.svc.log.Error().Err(err)
	switch xmpp.ConditionOf(err) {
	case xmpp.ErrForbidden, xmpp.ErrNotAuthorized, xmpp.ErrNotAllowed:
		ev = ev.Str("hint", "give the component JID admin rights on the server and owner rights on the pubsub service")
	case xmpp.ErrItemNotFound, xmpp.ErrServiceUnavailable, xmpp.ErrRemoteServerNotFound:
		ev = ev.Str("hint", "check xmpp.pubsub and xmpp.domains, and that the server has the pubsub service and admin commands")
	}
	return ev
}
