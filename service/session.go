package service

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/pubpresence/pubpresence/admin"
	"github.com/pubpresence/pubpresence/component"
	"github.com/pubpresence/pubpresence/config"
	"github.com/pubpresence/pubpresence/internal/xmpp"
	"github.com/pubpresence/pubpresence/nodes"
	"github.com/pubpresence/pubpresence/presence"
	"github.com/pubpresence/pubpresence/pubsub"
	"github.com/pubpresence/pubpresence/status"
)

// session is the loop that owns the service's state while at least one of
// the component's streams is up (streams.go). Its goroutine reads the
// streams' stanzas (presence.go), ups and ends, and the events that work
// on other goroutines sends back (crew), feeds the life-cycle events to
// the state machine (lifecycle.go) and carries out the work it returns. No
// other goroutine writes a session's fields.
type session struct {
	svc     *Service
	srv     *server // the streams as one component, and each as the loop knows it
	queue   *nodes.Queue
	replies *outbox // presence answers on their way to the writer
	crew    crew
	// queueStart is closed (doStartQueue) once the nodes exist: the queue
	// sends nothing before, so nothing goes to a node that is not there.
	queueStart chan struct{}
	// fresh: the state was empty when the session began (the process's
	// start) and no initial resync has converged since: each connection
	// found is a change to the state and holds a live event, which the
	// converge drops if the node held the connection so (dropUnchangedLive).
	fresh bool
	// lastAnswer returns when the server last answered a request (the
	// pool's), nil in tests that do no I/O: see patient.
	lastAnswer func() time.Time
	overtaken  func() time.Time // the pool's Group.Overtaken, nil with lastAnswer

	life     lifecycle
	resync   *resync // facts of the resync running, nil when none
	actualOn bool    // changes go to the actual node (after the first diff)
	clock    clock
	addrs    addrs
	track    tracking // the way presence reaches the stream (tracking.go)
	logs     failureLogs
	limit    itemLimit

	// early is what the initial resync queued on the actual node before
	// its diff, by item id (nil: retracted); see prefetch.go.
	early map[string]*presence.Conn
	// purgeRefused: the server answered a purge of the actual node with an
	// error; this session retracts item by item (sync.purge_stale).
	purgeRefused bool
	// absent: the actual node's ids whose retract the server answered
	// item-not-found, and when, until a converge judges them; stuck: the
	// ids the last converge found stuck (stuck.go).
	absent map[string]time.Time
	stuck  map[string]bool
}

// crew runs the session's goroutines: each is started by spawn, ends soon
// after ctx, and reports back with post. The session waits for all of them
// before it returns.
type crew struct {
	ctx    context.Context
	wg     sync.WaitGroup
	events chan any
}

// spawn runs f on a new goroutine owned by the session.
func (c *crew) spawn(f func(ctx context.Context)) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f(c.ctx)
	}()
}

// post sends ev to the loop; once the session ends it is dropped.
func (c *crew) post(ev any) {
	select {
	case c.events <- ev:
	case <-c.ctx.Done():
	}
}

// clock holds the session's timers.
type clock struct {
	ticker     *time.Ticker     // periodic reconciliation, nil when off
	reconcile  <-chan time.Time // ticker.C, or nil
	every      time.Duration    // the reconcile interval in force
	retry      *time.Timer      // next attempt of a failed initial resync
	repair     component.Backoff
	nextRepair time.Time
	readers    []string // the readers last made members of the nodes
}

// itemLimit is the server's cap on items per node, and whether the
// connections exceed it.
type itemLimit struct {
	max  int // 0 unknown
	over bool
}

// evMaxItems: the server's item limit per node was read.
type evMaxItems struct{ limit int }

// evProbesSent: the probes of a resync are all sent.
type evProbesSent struct{ gen uint64 }

// newSession returns a session that talks to the server through the pool
// l, and reads its events (nil in tests that do no I/O).
func newSession(s *Service, l *component.Pool) *session {
	addrs := s.cfg().XMPP.AddressList()
	ss := &session{
		svc:        s,
		srv:        &server{addrs: addrs, streams: make([]stream, len(addrs))},
		queueStart: make(chan struct{}),
		addrs:      newAddrs(),
		fresh:      s.state.Len() == 0,
	}
	if l != nil {
		ss.srv.link, ss.srv.events = l, l.Events()
		ss.lastAnswer, ss.overtaken = l.Group().LastAnswer, l.Group().Overtaken
	}
	ss.crew.events = make(chan any, 256)
	ss.clock.repair = component.Backoff{Min: 5 * time.Second, Max: max(s.cfg().Sync.ReconcileInterval.Duration, time.Minute)}
	ss.replies = newOutbox(func(ctx context.Context, raw []byte) error {
		if err := ss.srv.Send(ctx, raw); err != nil && ctx.Err() != nil {
			return err
		}
		return nil // no stream up for now: this answer is lost with the stream
	}, s.metrics.RepliesDropped.Inc)
	n := s.cfg().Nodes
	ss.queue = nodes.NewQueue(ss.srv, nodes.QueueConfig{
		Service: s.cfg().XMPP.Pubsub, Live: n.Live, Actual: n.Actual, WithIP: n.PublishIP,
		Timeout: ss.quiet(), LiveShare: -1, // held until online
		Last: ss.lastAnswer, Overtaken: ss.overtaken, MaxWait: patienceFactor * s.cfg().XMPP.RequestTimeout.Duration,
	}, ss.published)
	return ss
}

// patienceFactor bounds the wait of one request, while the server sends,
// at this many times xmpp.request_timeout (docs/operations.md, "Request
// timeouts").
const patienceFactor = 10

// quiet is how long the server may send nothing before a request fails:
// xmpp.request_timeout or, when longer, as long as the keepalive lets the
// server be silent before it calls the stream dead (keepalive_interval +
// keepalive_timeout): a request does not fail for a silence the stream
// itself survives.
func (ss *session) quiet() time.Duration {
	x := ss.svc.cfg().XMPP
	q := x.RequestTimeout.Duration
	if x.KeepaliveInterval.Duration > 0 {
		q = max(q, x.KeepaliveInterval.Duration+x.KeepaliveTimeout.Duration)
	}
	return q
}

// patient returns the context of a request to the server: it ends once
// the server has sent nothing on any stream for quiet, or after
// patienceFactor times xmpp.request_timeout in all (xmpp.Patience). A
// server busy with a login storm answers late, but answers: its requests
// wait.
func (ss *session) patient(ctx context.Context) (context.Context, context.CancelFunc) {
	t := ss.svc.cfg().XMPP.RequestTimeout.Duration
	return xmpp.Patience{Quiet: ss.quiet(), Max: patienceFactor * t, Last: ss.lastAnswer, Overtaken: ss.overtaken}.Context(ctx)
}

// admin returns the client of the server's admin commands.
func (ss *session) admin() *admin.Client {
	return &admin.Client{IQ: ss.srv, Concurrency: ss.svc.cfg().Sync.AdminConcurrency}
}

// run is the loop, from the first stream up until the last ends (or ctx,
// or a standby). early are the streams' events read before it ran (see
// holdEvents), taken first.
func (ss *session) run(ctx context.Context, first component.Event, early []component.Event) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ss.crew.ctx = ctx

	// The queue starts sending once all nodes exist, so nothing is
	// published to a node that is not there yet. It outlives ctx by the
	// drain of a clean stop.
	qctx, qcancel := context.WithCancel(context.WithoutCancel(ctx))
	queueDone := make(chan struct{})
	go func() {
		defer close(queueDone)
		select {
		case <-ss.queueStart:
			ss.queue.Run(qctx)
		case <-ctx.Done():
		}
	}()
	defer func() {
		if ss.resync != nil {
			ss.resync.stopTimers()
		}
		if ss.clock.retry != nil {
			ss.clock.retry.Stop()
		}
		ss.setReconcile(0)
		ss.stopTracking()
		cancel()
		qcancel()
		<-queueDone
		ss.crew.wg.Wait()
	}()
	ss.crew.spawn(ss.replies.run)
	ss.clock.readers = ss.svc.cfg().Nodes.Readers
	ss.setReconcile(ss.svc.cfg().Sync.ReconcileInterval.Duration)
	ss.enter(status.Nodes)
	ss.streamUp(first.Stream, first.Conn)
	ss.dispatch(evStart{})
	for _, ev := range early {
		ss.streamEvent(ev)
	}

	check := time.NewTicker(5 * time.Second)
	defer check.Stop()
	burst := 0 // stream events taken in a row without the select below
	for {
		// While the streams have events waiting, take them one after
		// another without the select over every source (its locks cost
		// more than the event itself), but never more than maxBurst in a
		// row: the other sources, ctx first, still have their turn.
		var ev component.Event
		taken := false
		if burst < maxBurst {
			select {
			case ev = <-ss.srv.events:
				taken = true
			default:
			}
		}
		if taken {
			burst++
			ss.streamEvent(ev)
		} else {
			burst = 0
			select {
			case <-ctx.Done():
				if ss.srv.up() > 0 {
					ss.stop()
				}
				return ctx.Err()
			case ev := <-ss.srv.events:
				ss.streamEvent(ev)
			case ev := <-ss.crew.events:
				ss.dispatch(ev)
			case <-ss.clock.reconcile:
				ss.dispatch(evReconcile{})
			case now := <-ss.track.pollC:
				if ss.pollDue(now) {
					ss.dispatch(evPoll{})
				}
			case <-ss.svc.reload:
				ss.reloaded()
			case <-ss.svc.stepBack:
				// An older connection holds the name: give way without
				// publishing anything, the nodes are its.
				return ss.svc.standby()
			case <-check.C:
				if ss.svc.intruders.gone(ss.svc.log, ss.life.phase == status.Online && ss.life.running == noResync) {
					if ss.privileged() {
						// ejabberd dropped our grant when the other
						// connection closed: only a new authentication gets
						// it back, and the new stream resyncs every user.
						ss.track.end = errRegrant{why: "another connection with this component name closed"}
					} else {
						ss.dispatch(evIntruderGone{})
					}
				}
				ss.svc.metrics.QueueDepth.Set(float64(ss.queue.Len()))
				ss.logs.summarize(ss.svc.log)
				ss.retryLookups()
				if ss.life.dirty && time.Now().After(ss.clock.nextRepair) && ss.life.phase == status.Online && ss.life.running == noResync {
					ss.clock.nextRepair = time.Now().Add(ss.clock.repair.Next())
					ss.dispatch(evRepair{})
				}
			}
		}
		if ss.life.phase == status.Connecting {
			return errNoStreams // the last stream ended
		}
		if err := ss.ending(); err != nil {
			// Every stream up must go: stop cleanly, then close them.
			ss.stop()
			ss.closeAll()
			return err
		}
	}
}

// maxBurst is how many stream events the loop takes in a row before it
// looks at its other sources.
const maxBurst = 64

// dispatch handles one event: the life-cycle ones go through the state
// machine, and the work it returns is carried out in order; the others
// (addresses, limits, probes) belong to the loop's own bookkeeping.
func (ss *session) dispatch(ev any) {
	switch ev := ev.(type) {
	case evLooked:
		ss.looked(ev)
		return
	case evMaxItems:
		ss.limit.max = ev.limit
		return
	case evProbesSent:
		ss.armGrace(ev.gen)
		return
	case evGraceOver:
		ss.graceOver(ev.gen)
		return
	case evPrefetched:
		ss.prefetched(ev)
		return
	case evEarlyAnswered:
		ss.earlyAnswered(ev.gen)
		return
	case evGrantWait:
		if st := &ss.srv.streams[ev.stream]; st.conn == ev.conn {
			ss.decide(ev.stream, false)
		}
		return
	case evAbsent:
		ss.noteAbsent(ev)
		return
	case evRequestFailed:
		ss.requestFailed(ev)
	}
	before := ss.life.phase
	for _, w := range ss.life.step(ev) {
		ss.carry(w, ev)
	}
	if ss.life.phase != before {
		ss.setPhase(ss.life.phase)
	}
	ss.svc.status.SetFailing(ss.life.failing)
}

// carry does one piece of work the state machine asked for; cause is the
// event that led to it (its data: the sessions listed, the items fetched).
func (ss *session) carry(w any, cause any) {
	switch w := w.(type) {
	case doEnsureNodes:
		ss.beginResync(w.gen, w.kind)
	case doStartQueue:
		select {
		case <-ss.queueStart:
		default:
			close(ss.queueStart)
		}
	case doListSessions:
		if rs := ss.resync; rs == nil || rs.gen != w.gen {
			// A poll, or the initial resync's list taken again (relist).
			start := time.Now()
			if rs != nil {
				rs.stopTimers()
				if rs.kind == w.kind {
					start = rs.start
				}
			}
			ss.resync = &resync{gen: w.gen, kind: w.kind, start: start, seq: ss.svc.state.Seq()}
		}
		ss.track.listGen = w.gen
		ss.listIfDecided() // once every stream knows how presence reaches it
	case doDiscover:
		ss.discover(cause.(evSessions))
	case doSettle:
		ss.settle()
	case doConverge:
		ss.converge(cause.(evItems).read)
	case doAwait:
		b := ss.queue.Barrier()
		ss.crew.spawn(func(ctx context.Context) {
			select {
			case <-b:
				ss.crew.post(evQueued(w))
			case <-ctx.Done():
			}
		})
	case doPublishOnline:
		// Through the queue, after every change to the actual node queued
		// so far: a reader drops the live events it got before online and
		// fetches the actual node, so each of those changes must be on the
		// node before online is.
		ss.queue.Raw(ss.svc.cfg().Nodes.Status, nodes.StatusItemID, status.StateOnline.Item())
	case doEnter:
		ss.enter(w.phase)
	case doRetry:
		if ss.clock.retry != nil {
			ss.clock.retry.Stop()
		}
		ss.clock.retry = time.AfterFunc(w.wait, func() { ss.crew.post(evRetry{w.gen}) })
		ss.failed(ss.resyncErr(cause)).Str("kind", initial.String()).Dur("retry_in_ms", w.wait).Msg("initial sync failed; staying in init")
	case doFinish:
		ss.finishResync(w)
	case doRepaired:
		ss.svc.log.Info().Msg("the actual node accepts changes again: repaired")
	}
}

// resyncErr is the error an event that failed a resync carries.
func (ss *session) resyncErr(ev any) error {
	if err := errOf(ev); err != nil {
		return err
	}
	if _, ok := ev.(evQueued); ok {
		if ss.life.statusErr != nil {
			return ss.life.statusErr
		}
		return errActualFailed
	}
	return errors.New("resync failed")
}

// enter tells the world of a new phase: in Nodes (init) live events are
// held and changes no longer go to the actual node until the next diff; in
// Online live events flow; the component's presence to every subscriber
// says which.
func (ss *session) enter(p status.Phase) {
	switch p {
	case status.Nodes:
		ss.queue.SetLiveShare(-1)
		ss.actualOn = false // the initial sync's diff publishes everything
	case status.Online:
		ss.queue.SetLiveShare(liveShare)
		ss.svc.log.Info().Int("connections", ss.svc.state.Len()).Int("users", ss.svc.state.Users()).Msg("online")
	}
	ss.setPhase(p)
	ss.announce()
}

// setPhase makes p the phase that others see.
func (ss *session) setPhase(p status.Phase) { ss.svc.setPhase(p) }

// setReconcile (re)starts the periodic reconciliation every d; 0 stops it.
func (ss *session) setReconcile(d time.Duration) {
	if ss.clock.ticker != nil {
		ss.clock.ticker.Stop()
		ss.clock.ticker, ss.clock.reconcile = nil, nil
	}
	if d > 0 {
		ss.clock.ticker = time.NewTicker(d)
		ss.clock.reconcile = ss.clock.ticker.C
	}
	ss.clock.every = d
}

// reloaded applies a new configuration (Service.Reload) to the stream.
func (ss *session) reloaded() {
	cfg := ss.svc.cfg()
	if d := cfg.Sync.ReconcileInterval.Duration; d != ss.clock.every {
		ss.setReconcile(d)
	}
	ss.way() // the sessions poll's interval
	if !slices.Equal(cfg.Tracking.Exclude, ss.svc.exclude.list) {
		ss.excludeNow(cfg.Tracking.Exclude)
	}
	readers := cfg.Nodes.Readers
	if slices.Equal(readers, ss.clock.readers) {
		return
	}
	ss.clock.readers = readers
	if cfg.Nodes.AccessModel != config.AccessWhitelist {
		return
	}
	ss.crew.spawn(func(ctx context.Context) {
		// Before the nodes exist, their set-up affiliates the readers.
		select {
		case <-ss.queueStart:
		case <-ctx.Done():
			return
		}
		n := cfg.Nodes
		for _, node := range []string{n.Status, n.Live, n.Actual} {
			rctx, cancel := ss.patient(ctx)
			err := pubsub.SyncMembers(rctx, ss.srv, cfg.XMPP.Pubsub, node, readers)
			cancel()
			if err != nil {
				ss.svc.iqError(err)
				ss.svc.log.Error().Err(err).Str("node", node).Msg("cannot update the readers (members) of a node")
				return
			}
		}
		ss.svc.log.Info().Int("readers", len(readers)).Msg("readers updated on the nodes")
	})
}

// published is called by the queue for every answer, on its goroutines:
// it counts the request, and sends a failure to the loop as an event.
func (ss *session) published(r nodes.Result) {
	result := "ok"
	if r.Absent && r.Node == ss.svc.cfg().Nodes.Actual {
		ss.crew.post(evAbsent{id: r.ID, at: time.Now()})
	}
	if r.Err != nil {
		result = "error"
		n := ss.svc.cfg().Nodes
		role := otherNode
		switch r.Node {
		case n.Status:
			role = statusNode
		case n.Live:
			role = liveNode
		case n.Actual:
			role = actualNode
		}
		ss.crew.post(evRequestFailed{node: role, err: r.Err, missing: errors.Is(r.Err, xmpp.ErrItemNotFound),
			lost: lost(r.Err), detail: r})
	}
	ss.svc.metrics.Request(r.Node, r.Op, result, r.Duration)
}

// requestFailed counts and logs a failed queued request (the loop's side
// of published).
func (ss *session) requestFailed(ev evRequestFailed) {
	ss.svc.iqError(ev.err)
	if ev.lost && ev.node == liveNode {
		ss.relive(ev.detail.ID)
	}
	if errors.Is(ev.err, context.Canceled) || ev.lost {
		return
	}
	r := ev.detail
	if r.Op == "purge" && !ss.purgeRefused {
		// The initial resync fails (dirty) and is tried again without it.
		ss.purgeRefused = true
		ss.svc.log.Warn().Err(r.Err).Str("node", r.Node).Msg("the server refused to purge the node: retracting its stale items one by one instead (sync.purge_stale)")
		return
	}
	e := ss.svc.log.Debug()
	if ss.logs.requests.add() {
		e = ss.svc.log.Warn()
	}
	e.Err(r.Err).Str("node", r.Node).Str("op", r.Op).Str("id", r.ID).Msg("pubsub request failed")
}

// relive publishes again on the live node the state now of a connection
// whose live event was lost with its stream (the request may or may not
// have reached the server): a reader following the live node then holds
// the right state, perhaps twice, never a stale one. The actual node is
// made true by the resync that the stream's end starts.
func (ss *session) relive(jid string) {
	c, ok := ss.svc.state.Get(jid)
	if !ok {
		c = presence.Conn{JID: jid, Show: presence.Offline, Since: ss.svc.now()}
	}
	ss.publishLive(c)
}
