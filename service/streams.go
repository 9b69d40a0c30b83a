package service

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/pubpresence/pubpresence/component"
	"github.com/pubpresence/pubpresence/internal/xmpp"
	"github.com/pubpresence/pubpresence/status"
)

// The component's streams: one per address of xmpp.address — one for a
// single server, one per node of an ejabberd cluster — kept up by a
// component.Pool, which makes them one component: a request goes out on
// the first stream that is up and its answer is matched on whichever
// stream it comes; the presence read on every stream feeds the one state
// (docs/ejabberd-cluster.md).
//
// A session (session.go) lives while at least one stream is up. With one
// address that is one session per connection, as it always was. With
// several, a stream that ends while others live, or that comes up again,
// is an event of the session's life cycle (lifecycle.go): a resync
// against the server's session list, taken through a stream that lives.
// Each stream is granted privileged presence, or not, on its own
// (tracking.go): a node grants it only on the stream to that node.

// link is how the session talks to the server: every stream of the pool
// as one component. A *component.Pool is one.
type link interface {
	Start(ctx context.Context, typ, to string, payload []byte) (*component.Call, error)
	StartNotify(ctx context.Context, typ, to string, payload []byte, n component.Notify) (uint64, error)
	Abandon(seq uint64) bool
	IQ(ctx context.Context, typ, to string, payload []byte) ([]byte, error)
	Send(ctx context.Context, raw []byte) error
	SendPresence(ctx context.Context, to, typ, show, status string) error
	TrySend(raw []byte) bool
	Presence(to, typ, show, status string) []byte
}

// server is the session's side of the pool: the link, and what the loop
// knows of each stream, kept from the pool's events.
type server struct {
	link
	events  <-chan component.Event
	addrs   []string
	streams []stream // by index, one per address
}

// stream is what the loop knows of one stream.
type stream struct {
	conn  *component.Conn // nil while down
	grant grant           // how presence reaches it (tracking.go)
	// end, when set, makes the loop close the stream (the pool dials it
	// again); closing says it did, until the stream's end is read.
	end     error
	closing bool
}

// up returns how many streams are up.
func (s *server) up() int {
	n := 0
	for i := range s.streams {
		if s.streams[i].conn != nil {
			n++
		}
	}
	return n
}

// errNoStreams ends a session whose last stream has ended.
var errNoStreams = errors.New("no component stream is up")

// runPool keeps the component's streams up with a new Pool, and runs a
// session while at least one of them is up, until ctx ends (ctx.Err()) or
// another instance holds the component name (a standbyError: the Pool is
// closed, every stream with it).
func (s *Service) runPool(ctx context.Context, addrs []string) error {
	x := s.cfg().XMPP
	cfg := component.Config{
		Name:              x.Component,
		Secret:            x.Secret,
		DialTimeout:       x.DialTimeout.Duration,
		KeepaliveInterval: x.KeepaliveInterval.Duration,
		KeepaliveTimeout:  x.KeepaliveTimeout.Duration,
		PingTo:            x.Domains[0],
		Instance:          s.instance,
		Foreign:           s.foreign,
		WriteWaited:       s.metrics.WriteWaits.Inc,
	}
	// The pool outlives ctx by a session's clean stop, which drains the
	// publish queue and says goodbye on the streams.
	pctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	var live atomic.Bool // a session runs
	pool, err := component.NewPool(cfg, addrs, x.ReconnectMax.Duration, s.poolHooks(ctx, pctx, addrs, &live))
	if err != nil {
		stop()
		return err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = pool.Run(pctx)
	}()
	defer func() {
		stop()
		for range pool.Events() { // closed once Run has returned
		}
		<-done
	}()
	for {
		var ev component.Event
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev = <-pool.Events():
		}
		if ev.Kind != component.EventUp {
			continue // what a stream read, or its end, with no session: dropped
		}
		live.Store(true)
		err := s.session(ctx, pool, ev)
		live.Store(false)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, errStandby):
			return err
		}
		s.setPhase(status.Connecting)
	}
}

// poolHooks count and log what the pool's streams do, and keep the gauges
// of the streams up. ctx is the service's, pctx the pool's: once it ends
// (shutdown, standby), the streams' ends are the pool's closing.
func (s *Service) poolHooks(ctx, pctx context.Context, addrs []string, live *atomic.Bool) component.PoolHooks {
	name := s.cfg().XMPP.Component
	return component.PoolHooks{
		Connected: func(i int, c *component.Conn) {
			s.streamUp(i, addrs[i], true)
			s.log.Info().Int("stream", i).Str("address", addrs[i]).Str("component", name).Msg("connected")
		},
		Disconnected: func(i int, err error, up time.Duration) {
			s.streamUp(i, addrs[i], false)
			if pctx.Err() != nil {
				return
			}
			s.metrics.Reconnects.Inc()
			if err == component.ErrClosed {
				return // closed by the service, which said why
			}
			s.lostOwnStream()
			s.log.Warn().Err(err).Int("stream", i).Str("address", addrs[i]).Dur("up_ms", up).Msg("disconnected; reconnecting")
		},
		DialFailed: func(i int, err error, wait time.Duration) {
			if ctx.Err() != nil {
				return
			}
			s.metrics.Reconnects.Inc()
			ev := s.log.Error().Err(err).Int("stream", i).Str("address", addrs[i]).Dur("retry_in_ms", wait)
			var se *component.StreamError
			if errors.As(err, &se) {
				switch se.Condition {
				case xmpp.ErrStreamNotAuthorized:
					ev.Msg("the server refused the component secret (xmpp.secret)")
					return
				case xmpp.ErrStreamConflict:
					// Prosody's answer to a second instance: stand by.
					if !live.Load() {
						s.setPhase(status.Standby)
					}
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
}

// streamUp records whether stream i is up, for /readyz and the metrics.
func (s *Service) streamUp(i int, addr string, up bool) {
	s.status.SetStreamUp(i, up)
	s.metrics.SetStreamUp(i, addr, up)
}

// streamEvent takes one event of the pool into the session: a stanza to
// handle, or a stream that came up or ended.
func (ss *session) streamEvent(ev component.Event) {
	switch ev.Kind {
	case component.EventStanza:
		ss.handleOn(ev.Stream, ev.Stanza)
	case component.EventUp:
		ss.streamUp(ev.Stream, ev.Conn)
		ss.dispatch(evStreamUp{stream: ev.Stream})
	case component.EventDown:
		if ss.srv.streams[ev.Stream].conn != ev.Conn {
			return // a stream that ended before the session began
		}
		left := ss.streamDown(ev.Stream)
		if left > 0 {
			ss.svc.log.Info().Int("stream", ev.Stream).Str("address", ss.srv.addrs[ev.Stream]).Int("streams_up", left).
				Msg("a component stream ended while others are up: checking the server's sessions")
		}
		ss.dispatch(evStreamDown{stream: ev.Stream, left: left})
	}
}

// streamUp takes stream i, up with c, into the session.
func (ss *session) streamUp(i int, c *component.Conn) {
	ss.srv.streams[i] = stream{conn: c}
	ss.startGrant(i)
}

// streamDown takes the end of stream i into the session, and returns how
// many streams are still up.
func (ss *session) streamDown(i int) int {
	st := &ss.srv.streams[i]
	ss.stopGrant(i)
	st.conn, st.end, st.closing = nil, nil, false
	left := ss.srv.up()
	if left > 0 {
		ss.way()
		ss.listIfDecided()
	}
	return left
}

// ending closes the streams the loop gives up (the privileged ones, when
// the grant must be asked for again; one that was not granted what
// tracking.mode requires) while others stay. When every stream up must
// go, it closes none and returns why: the session stops cleanly first.
func (ss *session) ending() error {
	if err := ss.track.end; err != nil {
		ss.track.end = nil
		for i := range ss.srv.streams {
			if st := &ss.srv.streams[i]; st.conn != nil && st.grant.privileged && st.end == nil {
				st.end = err
			}
		}
	}
	var why error
	all := true
	for i := range ss.srv.streams {
		switch st := &ss.srv.streams[i]; {
		case st.conn == nil:
		case st.end == nil:
			all = false
		case why == nil:
			why = st.end
		}
	}
	if why == nil || all {
		return why
	}
	for i := range ss.srv.streams {
		if st := &ss.srv.streams[i]; st.conn != nil && st.end != nil && !st.closing {
			ss.closeStream(i)
		}
	}
	return nil
}

// closeStream closes stream i, saying why; the pool dials it again.
func (ss *session) closeStream(i int) {
	st := &ss.srv.streams[i]
	st.closing = true
	ss.svc.log.Warn().Err(st.end).Int("stream", i).Str("address", ss.srv.addrs[i]).Msg("disconnected; reconnecting")
	c := st.conn
	ss.crew.spawn(func(context.Context) { _ = c.Close() }) // waits a moment for the server's close
}

// closeAll closes every stream up, once the session has stopped.
func (ss *session) closeAll() {
	for i := range ss.srv.streams {
		if st := &ss.srv.streams[i]; st.conn != nil && !st.closing {
			ss.closeStream(i)
		}
	}
}
