// Package service is pubpresence's main loop: it keeps the component stream
// up, turns the presence it receives into changes of the state model, and
// keeps the pubsub nodes equal to that state through the init/online life
// cycle (PRODUCT.md §3–4).
//
// One goroutine per stream (the session loop) owns the state. Everything
// that waits on the server — admin commands, node setup, fetching items,
// publishing — runs on other goroutines and reports back to the loop as a
// function to run, so the loop never waits on the stream it reads.
package service

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/pubpresence/pubpresence/admin"
	"github.com/pubpresence/pubpresence/component"
	"github.com/pubpresence/pubpresence/config"
	"github.com/pubpresence/pubpresence/internal/xmpp"
	"github.com/pubpresence/pubpresence/metrics"
	"github.com/pubpresence/pubpresence/presence"
	"github.com/pubpresence/pubpresence/pubsub"
	"github.com/pubpresence/pubpresence/status"
)

// Service is pubpresence. Create it with New and call Run once.
type Service struct {
	// conf is the configuration in force: Reload swaps it for a new one
	// whose restart-only keys are the old ones.
	conf    atomic.Pointer[config.Config]
	reload  chan struct{} // cap 1: the running session has a new conf to apply
	log     zerolog.Logger
	metrics *metrics.Metrics
	status  *status.Tracker

	domains map[string]bool
	state   *presence.State // owned by the running session loop
	// subscribers are the bare JIDs the component sends its own presence
	// to: the servers keep no roster for a component.
	subscribers map[string]bool
	now         func() time.Time

	// instance names this process in its IQ ids (instances.go).
	instance   string
	stepBack   chan struct{} // cap 1: a connection older than ours holds the name
	intruderAt atomic.Int64  // UnixNano of the last answer meant for a newer connection
}

// New returns a service for cfg. m and st may be nil.
func New(cfg *config.Config, log zerolog.Logger, m *metrics.Metrics, st *status.Tracker) *Service {
	if m == nil {
		m = metrics.New("")
	}
	if st == nil {
		st = &status.Tracker{}
	}
	s := &Service{log: log, metrics: m, status: st, reload: make(chan struct{}, 1),
		domains: make(map[string]bool), state: presence.NewState(),
		subscribers: make(map[string]bool), now: func() time.Time { return time.Now().UTC() },
		instance: component.NewInstance(), stepBack: make(chan struct{}, 1)}
	s.conf.Store(cfg)
	for _, d := range cfg.XMPP.Domains {
		s.domains[strings.ToLower(d)] = true
	}
	return s
}

// cfg returns the configuration in force. Each call may return a newer one
// after a Reload: take it once where several values must agree.
func (s *Service) cfg() *config.Config { return s.conf.Load() }

// Reload takes the keys of next that can change while running (log level,
// readers, reconcile interval, probe grace, init timeout; config.Reload) and
// applies them without reconnecting: readers become the nodes' members at
// once. It returns the keys applied and the keys that changed but need a
// restart. Safe to call from any goroutine.
func (s *Service) Reload(next *config.Config) (applied, restart []string) {
	merged, applied, restart := config.Reload(s.cfg(), next)
	if len(applied) == 0 {
		return applied, restart
	}
	s.conf.Store(merged)
	select {
	case s.reload <- struct{}{}:
	default:
	}
	return applied, restart
}

// Run keeps the service going until ctx ends, reconnecting with backoff
// after every loss of the stream. It returns nil after a clean stop.
func (s *Service) Run(ctx context.Context) error {
	x := s.cfg().XMPP
	ccfg := component.Config{
		Address:           x.Address,
		Name:              x.Component,
		Secret:            x.Secret,
		DialTimeout:       x.DialTimeout.Duration,
		KeepaliveInterval: x.KeepaliveInterval.Duration,
		KeepaliveTimeout:  x.KeepaliveTimeout.Duration,
		PingTo:            x.Domains[0],
		Instance:          s.instance,
		Foreign:           s.foreign,
	}
	hooks := component.Hooks{
		Connected: func(c *component.Conn) {
			s.status.SetConnected(true)
			s.metrics.Connected.Set(1)
			s.log.Info().Str("address", x.Address).Str("component", x.Component).Msg("connected")
		},
		Disconnected: func(err error, up time.Duration) {
			s.status.SetConnected(false)
			s.metrics.Connected.Set(0)
			s.metrics.SetState(string(status.Init))
			if ctx.Err() != nil {
				return
			}
			s.metrics.Reconnects.Inc()
			if errors.Is(err, errStandby) {
				s.standBy()
				return
			}
			s.log.Warn().Err(err).Dur("up_ms", up).Msg("disconnected; reconnecting")
		},
		DialFailed: func(err error, wait time.Duration) {
			s.metrics.Reconnects.Inc()
			ev := s.log.Error().Err(err).Dur("retry_in_ms", wait)
			var se *component.StreamError
			if errors.As(err, &se) {
				switch se.Condition {
				case xmpp.ErrStreamNotAuthorized:
					ev.Msg("the server refused the component secret (xmpp.secret)")
					return
				case xmpp.ErrStreamConflict:
					// Prosody's answer to a second instance: stand by.
					s.status.SetStandby(true)
					s.metrics.SetState("standby")
					ev.Msg("another connection already uses this component name: standing by, retrying")
					return
				case xmpp.ErrStreamHostUnknown:
					ev.Msg("the server has no component with this name (xmpp.component)")
					return
				}
			}
			ev.Msg("cannot connect")
		},
	}
	err := component.Run(ctx, ccfg, x.ReconnectMax.Duration, hooks, s.session)
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil
	}
	return err
}

// session runs one stream: the life cycle and the event loop.
func (s *Service) session(ctx context.Context, c *component.Conn) error {
	select {
	case <-s.stepBack: // from an earlier stream
	default:
	}
	if err := s.alone(ctx, c); err != nil {
		return err
	}
	if s.status.Standby() {
		s.status.SetStandby(false)
		s.log.Warn().Msg("no other instance holds the component name any more: taking over")
	}
	s.intruderAt.Store(0)
	ss := newSession(s, c)
	return ss.run(ctx)
}

// session is the state of one stream. Its fields are used by the loop
// goroutine only, except where noted.
type session struct {
	*Service
	conn    *component.Conn
	admin   *admin.Client
	queue   *pubsub.Queue
	replies *outbox     // presence answers on their way to the writer
	calls   chan func() // work for the loop, from other goroutines
	// queueStart is closed (by startQueue) once the nodes exist: the queue
	// sends nothing before, so nothing goes to a node that is not there.
	queueStart chan struct{}
	async      sync.WaitGroup
	ctx        context.Context

	phase    status.State
	actualOn bool        // changes go to the actual node (after the first diff)
	sync     *syncRun    // the resync in progress, or nil
	failures int         // failed initial resyncs in a row
	dirty    atomic.Bool // a publish to actual failed: reconcile soon (any goroutine)
	// statusFailed is the error of the last queued publish to the status
	// node, nil when it was accepted (any goroutine).
	statusFailed atomic.Pointer[error]
	maxItems     int         // the server's cap on items per node, 0 unknown
	overLimit    bool        // more connections than maxItems
	needNodes    atomic.Bool // a node was missing: set them up again (any goroutine)
	repair       component.Backoff
	nextRepair   time.Time
	retry        *time.Timer // next attempt of a failed initial resync

	ticker    *time.Ticker     // periodic reconciliation, nil when off
	reconcile <-chan time.Time // ticker.C, or nil
	every     time.Duration    // the reconcile interval in force
	readers   []string         // the readers last made members of the nodes

	intruderLogged bool // the other instance seen lately was reported

	requestFailures burst // pubsub requests that failed (any goroutine)
	liveDrops       burst // live events dropped, queue full
	lookupFailures  burst // user-stats that failed (the loop only)

	ips         map[string]string            // full JID → address ("" known to have none)
	parked      map[string][]presence.Update // events waiting for their connection's IP
	retried     map[string]bool              // parked JIDs looked up a second time
	lookups     map[string]bool              // bare JIDs queued or in flight
	lookupQueue []string
	lookupsBusy int
}

func newSession(s *Service, c *component.Conn) *session {
	ss := &session{
		Service:    s,
		conn:       c,
		admin:      &admin.Client{IQ: c, Concurrency: s.cfg().Sync.AdminConcurrency},
		calls:      make(chan func(), 64),
		queueStart: make(chan struct{}),
		phase:      status.Init,
		ips:        make(map[string]string),
		parked:     make(map[string][]presence.Update),
		retried:    make(map[string]bool),
		lookups:    make(map[string]bool),
		repair:     component.Backoff{Min: 5 * time.Second, Max: max(s.cfg().Sync.ReconcileInterval.Duration, time.Minute)},
	}
	ss.replies = newOutbox(c.Send, s.metrics.RepliesDropped.Inc)
	n := s.cfg().Nodes
	ss.queue = pubsub.NewQueue(pubsub.ConnStarter{Conn: c}, pubsub.QueueConfig{
		Service: s.cfg().XMPP.Pubsub, Live: n.Live, Actual: n.Actual, WithIP: n.PublishIP,
		Timeout: s.cfg().XMPP.RequestTimeout.Duration, LiveShare: -1, // held until online
	}, ss.published)
	return ss
}

// do runs f on the loop goroutine. Called from other goroutines.
func (ss *session) do(f func()) {
	select {
	case ss.calls <- f:
	case <-ss.ctx.Done():
	}
}

// startQueue lets the publish queue send. Called on the loop; idempotent.
func (ss *session) startQueue() {
	select {
	case <-ss.queueStart:
	default:
		close(ss.queueStart)
	}
}

// goAsync runs f on a new goroutine owned by the session: f must return
// soon after ctx ends, and the session waits for it before it returns.
func (ss *session) goAsync(f func(ctx context.Context)) {
	ss.async.Add(1)
	go func() {
		defer ss.async.Done()
		f(ss.ctx)
	}()
}

func (ss *session) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ss.ctx = ctx
	ss.metrics.SetState(string(status.Init))
	ss.status.Set(status.Init)

	// init is published by the first resync, right after the status node
	// is there; the queue starts sending once all nodes exist, so nothing
	// is published to a node that is not there yet. The queue outlives ctx
	// by the drain of a clean stop.
	ss.announce()
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
		if ss.sync != nil {
			ss.sync.stopTimers()
		}
		if ss.retry != nil {
			ss.retry.Stop()
		}
		ss.setReconcile(0)
		cancel()
		qcancel()
		<-queueDone
		ss.async.Wait()
	}()
	ss.goAsync(ss.replies.run)
	ss.readers = ss.cfg().Nodes.Readers
	ss.setReconcile(ss.cfg().Sync.ReconcileInterval.Duration)
	ss.startSync(true)

	check := time.NewTicker(5 * time.Second)
	defer check.Stop()
	for {
		select {
		case <-ctx.Done():
			if ss.conn.Err() == nil {
				ss.stop()
			}
			return ctx.Err()
		case st := <-ss.conn.Inbound():
			ss.handle(st)
		case f := <-ss.calls:
			f()
		case <-ss.reconcile:
			if ss.phase == status.Online {
				ss.startSync(false)
			}
		case <-ss.Service.reload:
			ss.reloaded()
		case <-ss.stepBack:
			// An older connection holds the name: give way without
			// publishing anything, the nodes are its.
			return ss.standby()
		case <-check.C:
			ss.intruded()
			ss.metrics.QueueDepth.Set(float64(ss.queue.Len()))
			ss.summarize()
			if ss.phase == status.Online && ss.dirty.Load() && ss.sync == nil && time.Now().After(ss.nextRepair) {
				ss.nextRepair = time.Now().Add(ss.repair.Next())
				if ss.needNodes.Swap(false) {
					ss.reinit()
				} else {
					ss.startSync(false)
				}
			}
		}
	}
}

// setReconcile (re)starts the periodic reconciliation every d; 0 stops it.
func (ss *session) setReconcile(d time.Duration) {
	if ss.ticker != nil {
		ss.ticker.Stop()
		ss.ticker, ss.reconcile = nil, nil
	}
	if d > 0 {
		ss.ticker = time.NewTicker(d)
		ss.reconcile = ss.ticker.C
	}
	ss.every = d
}

// reloaded applies a new configuration (Service.Reload) to the stream.
func (ss *session) reloaded() {
	cfg := ss.cfg()
	if d := cfg.Sync.ReconcileInterval.Duration; d != ss.every {
		ss.setReconcile(d)
	}
	readers := cfg.Nodes.Readers
	if slices.Equal(readers, ss.readers) {
		return
	}
	ss.readers = readers
	if cfg.Nodes.AccessModel != config.AccessWhitelist {
		return
	}
	ss.goAsync(func(ctx context.Context) {
		// Before the nodes exist, their set-up affiliates the readers.
		select {
		case <-ss.queueStart:
		case <-ctx.Done():
			return
		}
		n := cfg.Nodes
		for _, node := range []string{n.Status, n.Live, n.Actual} {
			rctx, cancel := context.WithTimeout(ctx, cfg.XMPP.RequestTimeout.Duration)
			err := pubsub.SyncMembers(rctx, ss.conn, cfg.XMPP.Pubsub, node, readers)
			cancel()
			if err != nil {
				ss.iqError(err)
				ss.log.Error().Err(err).Str("node", node).Msg("cannot update the readers (members) of a node")
				return
			}
		}
		ss.log.Info().Int("readers", len(readers)).Msg("readers updated on the nodes")
	})
}

// Bounds of a clean stop: the queue gets drainTimeout to send what it has,
// then leave gets leaveTimeout to publish init; component.Conn.Close waits
// one more second for the server's end of the stream.
const (
	drainTimeout = 4 * time.Second
	leaveTimeout = 3 * time.Second
)

// stop ends the stream cleanly (SIGINT, SIGTERM) while it is up: what is
// queued is sent and answered within drainTimeout, or abandoned and counted;
// then readers are told the nodes are no longer kept. Presence that arrives
// meanwhile is read and dropped: the next start resyncs.
func (ss *session) stop() {
	start := time.Now()
	drained := false
	select {
	case <-ss.queueStart:
		ss.queue.SetLiveShare(liveShare) // live events held in init go too
		drained = ss.waitDiscarding(ss.queue.Drained(), drainTimeout)
	default: // the queue never started: what it holds was never sent
	}
	abandoned := 0
	if !drained {
		abandoned = ss.queue.Pending()
	}
	ev := ss.log.Info()
	if abandoned > 0 {
		ev = ss.log.Warn()
	}
	ev.Int("abandoned", abandoned).Dur("took_ms", time.Since(start)).Msg("stopping: publish queue drained")
	ss.leave()
}

// waitDiscarding waits until done is closed, the stream ends or timeout
// passes, reading and dropping inbound stanzas meanwhile so that the
// stream's reader can deliver the answers being waited for. It reports
// whether done was closed.
func (ss *session) waitDiscarding(done <-chan struct{}, timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case <-done:
			return true
		case <-ss.conn.Inbound():
		case <-ss.conn.Done():
			return false
		case <-t.C:
			return false
		}
	}
}

// leave tells readers the nodes are no longer kept, on a clean stop while
// the stream is still up: init on the status node and unavailable presence
// to the subscribers, within leaveTimeout.
func (ss *session) leave() {
	var err error
	published := make(chan struct{})
	go func() {
		defer close(published)
		ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
		defer cancel()
		err = pubsub.Publish(ctx, ss.conn, ss.cfg().XMPP.Pubsub, ss.cfg().Nodes.Status, status.ItemID, status.Init.Item())
	}()
	ss.waitDiscarding(published, leaveTimeout)
	<-published // bounded by the publish's own leaveTimeout
	for jid := range ss.subscribers {
		if !ss.conn.TrySend(ss.conn.Presence(jid, "unavailable", "", "")) {
			break
		}
	}
	ev := ss.log.Info()
	if err != nil {
		ev = ss.log.Warn().Err(err)
	}
	ev.Int("subscribers", len(ss.subscribers)).Msg("leaving: init published")
}

// announce sends the component's presence for the current phase to every
// known subscriber, through the outbox, so that it goes out after the
// answers queued before it (an answer of the earlier phase must not follow
// it). All of them are queued, however many: one per subscriber.
func (ss *session) announce() {
	show, text := ss.phase.Presence()
	all := make([][]byte, 0, len(ss.subscribers))
	for jid := range ss.subscribers {
		all = append(all, ss.conn.Presence(jid, "", show, text))
	}
	ss.replies.pushAll(all)
}

// handle applies one inbound stanza.
func (ss *session) handle(st component.Stanza) {
	if st.Name != "presence" {
		ss.log.Debug().Str("name", st.Name).Str("from", st.From).Msg("ignored stanza")
		return
	}
	u, err := presence.ParsePresence(st.From, st.Type, st.Inner)
	if err != nil {
		reason := "invalid"
		var me *presence.MalformedError
		if errors.As(err, &me) {
			reason = me.Reason
		}
		ss.metrics.Malformed.WithLabelValues(reason).Inc()
		ss.log.Debug().Err(err).Str("from", st.From).Msg("dropped malformed presence")
		return
	}
	for _, reason := range u.Malformed {
		ss.metrics.Malformed.WithLabelValues(reason).Inc()
		ss.log.Debug().Str("from", st.From).Str("reason", reason).Msg("repaired malformed presence")
	}
	ss.metrics.Event(u.Kind.String())
	ss.log.Debug().Str("from", st.From).Stringer("type", u.Kind).Msg("presence")
	bare := u.From.Bare()
	if !ss.domains[u.From.Domain] || u.From.Local == "" {
		ss.metrics.Malformed.WithLabelValues("foreign").Inc()
		if u.Kind == presence.Subscribe {
			ss.send("unsubscribed", bare)
		}
		return
	}
	ss.answered(bare)
	switch u.Kind {
	case presence.Subscribe:
		ss.subscribers[bare] = true
		ss.send("subscribed", bare)
		ss.send("subscribe", bare)
		ss.own(bare)
	case presence.Subscribed:
		ss.subscribers[bare] = true
	case presence.Unsubscribe, presence.Unsubscribed:
		delete(ss.subscribers, bare)
		if u.Kind == presence.Unsubscribe {
			ss.send("unsubscribed", bare)
		} else {
			ss.send("unsubscribe", bare)
		}
		ss.forgetUser(bare)
		for _, c := range ss.state.RemoveUser(bare) {
			ss.removed(c)
		}
	case presence.Probe:
		ss.subscribers[bare] = true
		ss.own(u.From.Full())
	case presence.Available, presence.Unavailable:
		if u.From.Resource == "" {
			// A bare-JID unavailable answers a probe of a user with no
			// session, or is Prosody's receipt for our subscribe: it is not
			// a connection's event. Ghosts are left to the resync.
			return
		}
		ss.subscribers[bare] = true
		ss.event(u)
	case presence.Error:
		ss.log.Debug().Str("from", st.From).Msg("error presence")
	}
}

// send sends a presence of type typ from the component to to, through the
// outbox: the loop never waits on the writer (that could stall the reader
// of the stream it serves).
func (ss *session) send(typ, to string) {
	ss.replies.push(ss.conn.Presence(to, typ, "", ""))
}

// own sends the component's own presence for the current phase to to.
func (ss *session) own(to string) {
	show, text := ss.phase.Presence()
	ss.replies.push(ss.conn.Presence(to, "", show, text))
}

// event applies an available or unavailable presence of one connection,
// after looking up its IP when it is a new connection.
func (ss *session) event(u presence.Update) {
	jid := u.From.Full()
	if q, ok := ss.parked[jid]; ok {
		ss.parked[jid] = append(q, u)
		return
	}
	if u.Kind == presence.Unavailable {
		if c, ok := ss.state.Remove(jid); ok {
			ss.removed(c)
		}
		delete(ss.ips, jid)
		return
	}
	ip, known := ss.ips[jid]
	if old, ok := ss.state.Get(jid); ok {
		ip, known = old.IP, true
	}
	if !known && ss.cfg().Nodes.PublishIP {
		ss.parked[jid] = []presence.Update{u}
		ss.lookup(u.From.Bare())
		return
	}
	ss.apply(presence.Conn{JID: jid, Show: u.Show, Text: u.Text, Priority: u.Priority, IP: ip, Since: ss.now()})
}

// apply stores c and publishes it if it changed anything visible.
func (ss *session) apply(c presence.Conn) {
	if !ss.cfg().Nodes.PublishIP {
		c.IP = ""
	}
	c, changed := ss.state.Set(c)
	if !changed {
		return
	}
	ss.ips[c.JID] = c.IP
	ss.gauges()
	ss.publishLive(c)
	if ss.actualOn {
		ss.queue.Actual(c)
		ss.checkLimit()
	}
}

// checkLimit reports, once each time it happens, that there are more
// connections than the server keeps items on the actual node: the server
// would drop the oldest items silently.
func (ss *session) checkLimit() {
	over := ss.maxItems > 0 && ss.state.Len() > ss.maxItems
	if over && !ss.overLimit {
		ss.log.Error().Int("connections", ss.state.Len()).Int("server_limit", ss.maxItems).
			Msg("more connections than the server keeps items on " + ss.cfg().Nodes.Actual +
				": raise pubsub_max_items (Prosody) or max_items_node (ejabberd)")
	}
	ss.overLimit = over
}

// removed publishes that c went away.
func (ss *session) removed(c presence.Conn) {
	c.Since = ss.now()
	delete(ss.ips, c.JID)
	ss.gauges()
	ss.publishLive(c)
	if ss.actualOn {
		ss.queue.Retract(c.JID)
	}
}

func (ss *session) publishLive(c presence.Conn) {
	if err := ss.queue.Live(c); err != nil {
		ss.metrics.LiveDropped.Inc()
		ev := ss.log.Debug()
		if ss.liveDrops.add() {
			ev = ss.log.Warn()
		}
		ev.Str("jid", c.JID).Msg("live queue full: event dropped")
	}
}

// summarize logs, once per check period, how many requests failed and
// events were dropped since the last one (the first of each was logged
// when it happened).
func (ss *session) summarize() {
	if n := ss.requestFailures.take(); n > 1 {
		ss.log.Warn().Int("failed", n).Msg("pubsub requests failed since the last summary (each is logged at debug)")
	}
	if n := ss.lookupFailures.take(); n > 1 {
		ss.log.Warn().Int("failed", n).Msg("user-stats failed since the last summary; those connections are published without ip")
	}
	if n := ss.liveDrops.take(); n > 1 {
		ss.log.Warn().Int("dropped", n).Msg("live events dropped, publish queue full")
	}
}

func (ss *session) gauges() {
	ss.metrics.Connections.Set(float64(ss.state.Len()))
	ss.metrics.Users.Set(float64(ss.state.Users()))
}

// published is called by the queue for every answer, on its goroutines.
func (ss *session) published(r pubsub.Result) {
	result := "ok"
	if r.Err != nil {
		result = "error"
		if r.Node == ss.cfg().Nodes.Status {
			err := r.Err
			ss.statusFailed.Store(&err)
		}
		if r.Node == ss.cfg().Nodes.Actual {
			ss.dirty.Store(true)
			ss.status.SetFailing(true) // until a repair makes it true
		}
		if errors.Is(r.Err, xmpp.ErrItemNotFound) {
			ss.needNodes.Store(true) // deleted under us: set it up again
			ss.dirty.Store(true)
		}
		ss.iqError(r.Err)
		if !errors.Is(r.Err, context.Canceled) && !errors.Is(r.Err, component.ErrClosed) {
			ev := ss.log.Debug()
			if ss.requestFailures.add() {
				ev = ss.log.Warn()
			}
			ev.Err(r.Err).Str("node", r.Node).Str("op", r.Op).Str("id", r.ID).Msg("pubsub request failed")
		}
	}
	ss.metrics.Request(r.Node, r.Op, result, r.Duration)
}

func (ss *session) iqError(err error) {
	cond := string(xmpp.ConditionOf(err)) // the condition's name is the metric label
	switch {
	case cond != "":
	case errors.Is(err, context.DeadlineExceeded):
		cond = "timeout"
	case errors.Is(err, component.ErrClosed), errors.Is(err, context.Canceled):
		return
	default:
		cond = "other"
	}
	ss.metrics.IQErrors.WithLabelValues(cond).Inc()
}

// errorf wraps err with what was being done.
func errorf(what string, err error) error { return fmt.Errorf("%s: %w", what, err) }
