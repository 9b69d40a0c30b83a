// Package service is pubpresence's main loop: it keeps the component stream
// up, turns the presence it receives into changes of the state model, and
// keeps the pubsub nodes equal to that state through the life cycle of
// docs/protocol.md.
//
// One goroutine (the session loop, session.go) owns the state while at
// least one of the component's streams is up: one stream per address,
// one address per node of a cluster (streams.go).
// The life cycle is one state machine (lifecycle.go): typed events in, the
// next phase and the work to start out. Everything that waits on the
// server — admin commands, node setup, fetching items, publishing — runs
// on other goroutines and reports back to the loop as an event, so the
// loop never waits on the stream it reads. The files, in the order a
// stanza flows: service.go (Run), streams.go (the streams, the pool),
// session.go (the loop),
// presence.go (a stanza to a change), lookup.go (addresses), resync.go
// (the resync steps), lifecycle.go (the phases), stop.go (a clean stop),
// instances.go (a second instance), outbox.go, logs.go.
package service

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/pubpresence/pubpresence/component"
	"github.com/pubpresence/pubpresence/config"
	"github.com/pubpresence/pubpresence/internal/ejabberdapi"
	"github.com/pubpresence/pubpresence/internal/feed"
	"github.com/pubpresence/pubpresence/internal/xmpp"
	"github.com/pubpresence/pubpresence/metrics"
	"github.com/pubpresence/pubpresence/presence"
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
	feed    *feed.Feed // the HTTP face's copy of the state; nil when it is off

	domains map[string]bool
	exclude exclusion           // tracking.exclude; the loop's, set again on reload
	api     *ejabberdapi.Client // ejabberd.api_url, nil when off
	state   *presence.State     // owned by the running session loop
	// subscribers are the bare JIDs the component sends its own presence
	// to: the servers keep no roster for a component. Owned by the loop.
	subscribers map[string]bool
	now         func() time.Time

	// instance names this process in its IQ ids (instances.go).
	instance  string
	stepBack  chan struct{} // cap 1: a connection older than ours holds the name
	intruders intruders     // answers meant for a newer connection
	// foreignSeen counts the answers meant for another instance; ownLost
	// is when this process last lost a stream of its own (UnixNano, 0:
	// never). alone reads both (ownStreamStale).
	foreignSeen atomic.Uint64
	ownLost     atomic.Int64
}

// New returns a service for cfg. m and st may be nil.
func New(cfg *config.Config, log zerolog.Logger, m *metrics.Metrics, st *status.Tracker) *Service {
	if m == nil {
		m = metrics.New("")
	}
	if st == nil {
		st = &status.Tracker{}
	}
	m.SetPhase(status.Connecting)
	s := &Service{log: log, metrics: m, status: st, reload: make(chan struct{}, 1),
		domains: make(map[string]bool), state: presence.NewState(),
		subscribers: make(map[string]bool), now: func() time.Time { return time.Now().UTC() },
		instance: component.NewInstance(), stepBack: make(chan struct{}, 1)}
	s.conf.Store(cfg)
	for _, d := range cfg.XMPP.Domains {
		s.domains[strings.ToLower(d)] = true
	}
	s.exclude = newExclusion(cfg.Tracking.Exclude)
	if cfg.Ejabberd.APIURL != "" {
		s.api = &ejabberdapi.Client{URL: cfg.Ejabberd.APIURL}
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

// Run keeps the service going until ctx ends: one component stream per
// address of xmpp.address, each reconnected with backoff after every loss
// (streams.go), and a session while at least one is up. It returns nil
// after a clean stop.
func (s *Service) Run(ctx context.Context) error {
	addrs := s.cfg().XMPP.AddressList()
	s.status.SetAddresses(addrs)
	s.metrics.SetAddresses(addrs)
	for {
		err := s.runPool(ctx, addrs)
		if ctx.Err() != nil {
			return nil
		}
		var sb standbyError
		if !errors.As(err, &sb) {
			return err
		}
		s.metrics.Reconnects.Inc()
		s.setPhase(status.Standby)
		s.log.Error().Dur("retry_in_ms", sb.wait).
			Msg("another pubpresence instance holds the component name (ejabberd spreads stanzas over both): standing by; this one takes over when it goes")
		select {
		case <-time.After(sb.wait):
		case <-ctx.Done():
			return nil
		}
	}
}

// session runs the session that first's stream starts: the check that no
// other instance holds the name, then the loop (session.go), until the
// last stream ends, ctx ends, or the session gives way (a standbyError).
func (s *Service) session(ctx context.Context, pool *component.Pool, first component.Event) error {
	select {
	case <-s.stepBack: // from an earlier stream
	default:
	}
	held := holdEvents(pool.Events())
	err := s.alone(ctx, first.Conn)
	early := held()
	if err != nil {
		if !errors.Is(err, errStandby) && ctx.Err() == nil {
			// The check could not finish: start again on a new stream.
			s.log.Warn().Err(err).Int("stream", first.Stream).Str("address", pool.Address(first.Stream)).Msg("disconnected; reconnecting")
			_ = first.Conn.Close()
		}
		return err
	}
	if s.status.Phase() == status.Standby {
		s.log.Warn().Msg("no other instance holds the component name any more: taking over")
	}
	s.intruders.reset()
	return newSession(s, pool).run(ctx, first, early)
}

// holdEvents reads events into a slice until the returned function is
// called, which returns them. alone's ping answers come after whatever
// the server sent first, and Prosody with privileged presence sends every
// online session's presence right after the handshake: more than the
// pool's buffer (4096) left unread blocked the stream's reader, and with
// it the answers, for request_timeout (10 s at 10 000 users).
func holdEvents(events <-chan component.Event) func() []component.Event {
	var got []component.Event
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case ev := <-events:
				got = append(got, ev)
			case <-quit:
				return
			}
		}
	}()
	return func() []component.Event {
		close(quit)
		<-done
		return got
	}
}

// setPhase makes p the phase that others see: status, metrics and the HTTP
// face.
func (s *Service) setPhase(p status.Phase) {
	s.status.SetPhase(p)
	s.metrics.SetPhase(p)
	if s.feed != nil {
		s.feed.SetPhase(feedPhase(p))
	}
}

// feedPhase is the phase the HTTP face tells of p.
func feedPhase(p status.Phase) string {
	switch p {
	case status.Online:
		return feed.Online
	case status.Standby:
		return feed.Standby
	}
	return feed.Init
}

// SetFeed makes the service tell f every change of its state and phase
// (the HTTP face). Call it before Run.
func (s *Service) SetFeed(f *feed.Feed) {
	s.feed = f
	f.SetPhase(feedPhase(s.status.Phase()))
}

func (s *Service) iqError(err error) {
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
	s.metrics.IQErrors.WithLabelValues(cond).Inc()
}

// errorf wraps err with what was being done.
func errorf(what string, err error) error { return fmt.Errorf("%s: %w", what, err) }

// exclusion is tracking.exclude: bare JIDs and whole domains.
type exclusion struct {
	list    []string        // as configured
	users   map[string]bool // bare JIDs
	domains map[string]bool // from "*@domain"
}

func newExclusion(list []string) exclusion {
	e := exclusion{list: list, users: make(map[string]bool), domains: make(map[string]bool)}
	for _, x := range list {
		if d, ok := strings.CutPrefix(x, "*@"); ok {
			e.domains[d] = true
		} else {
			e.users[x] = true
		}
	}
	return e
}

// any reports whether anyone is excluded: the hot path asks nothing more
// when no one is.
func (e exclusion) any() bool { return len(e.users) > 0 || len(e.domains) > 0 }

// has reports whether the user of jid (any form; normalised here) is
// excluded. A JID that does not parse is not: it is dropped as malformed.
func (e exclusion) has(jid string) bool {
	j, err := xmpp.ParseJID(jid)
	return err == nil && e.hasJID(j)
}

// hasJID is has for a parsed JID.
func (e exclusion) hasJID(j xmpp.JID) bool {
	return e.domains[j.Domain] || (j.Local != "" && e.users[j.Bare()])
}
