package service

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/pubpresence/pubpresence/component"
	"github.com/pubpresence/pubpresence/internal/xmpp"
)

// Two instances with one component name. Prosody refuses the second
// connection (conflict): it retries with backoff until the first goes.
// ejabberd accepts it and spreads every stanza, IQ answers included, over
// both at random, which would corrupt both instances' view. The ids of this
// instance's requests name it and its stream's start (component.Config
// Instance), so answers meant for another connection are recognised
// (component.Foreign). The rule: the stream that started first stays; the
// other stands by, disconnected, and tries again after the reconnect
// backoff (at most xmpp.reconnect_max), so it takes over once the first is
// gone. The one that stays has lost presence to the other meanwhile: it
// resyncs every user once the other has been quiet for intruderQuiet.

// errStandby ends a session that gives way to another instance.
var errStandby = errors.New("another pubpresence instance holds the component name; standing by")

// standbyError is errStandby with the wait before the next check: each
// check on ejabberd takes some of the active instance's stanzas (it then
// resyncs), so a standby checks at most every standbyMin.
type standbyError struct{ wait time.Duration }

func (e standbyError) Error() string { return errStandby.Error() }
func (e standbyError) Unwrap() error { return errStandby }

// standbyMin is the shortest wait between two checks of a standby.
const standbyMin = 10 * time.Second

// standby returns the error that ends a session giving way.
func (s *Service) standby() error {
	return standbyError{wait: max(standbyMin, s.cfg().XMPP.ReconnectMax.Duration)}
}

const (
	// checkPings is how many pings a new stream sends before it publishes
	// anything: with two connections, each answer goes to the other one
	// with probability 1/2, so a second instance goes unnoticed with
	// probability 2^-checkPings (and is caught later by its answers).
	checkPings = 8
	// intruderQuiet is how long no foreign answer must arrive before the
	// instance that stayed resyncs.
	intruderQuiet = 2 * time.Second
)

// foreign is component.Config.Foreign: it runs on the stream's reader and
// must not block.
func (s *Service) foreign(f component.Foreign) {
	s.metrics.Foreign.Inc()
	s.foreignSeen.Add(1)
	if f.Older {
		select {
		case s.stepBack <- struct{}{}:
		default:
		}
		return
	}
	s.intruders.seen()
}

// alone checks, before the stream publishes anything, that no other
// connection uses the component name: of checkPings pings sent at once,
// every answer must come back on this stream. Once the first answer is in,
// the others get a few times its round trip. When no answer comes at all
// the server is too slow to tell: the check passes, and the answers seen
// later still catch a second instance.
func (s *Service) alone(ctx context.Context, c *component.Conn) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg().XMPP.RequestTimeout.Duration)
	defer cancel()
	start := time.Now()
	foreignBefore := s.foreignSeen.Load()
	answers := make(chan error, checkPings)
	for range checkPings {
		call, err := c.Start(ctx, "get", s.cfg().XMPP.Domains[0], []byte("<ping xmlns='"+xmpp.NSPing+"'/>"))
		if err != nil {
			return err
		}
		go func() {
			_, err := call.Wait(ctx)
			answers <- err
		}()
	}
	var rest <-chan time.Time
	got := 0
	for got < checkPings {
		select {
		case err := <-answers:
			var se *component.StanzaError
			if err != nil && !errors.As(err, &se) {
				if ctx.Err() != nil {
					continue // the ctx.Done case decides
				}
				return err
			}
			got++
			if rest == nil {
				rest = time.After(max(20*time.Since(start), 250*time.Millisecond))
			}
		case <-rest:
			cancel()
			s.log.Debug().Int("answered", got).Int("sent", checkPings).Msg("ping answers went elsewhere")
			if ago, ok := s.ownStreamStale(foreignBefore); ok {
				s.log.Warn().Int("answered", got).Int("sent", checkPings).Dur("own_stream_lost_ms", ago).
					Msg("some ping answers went to another connection with this name, but no answer carried another instance's id, and this process lost its own stream moments ago: " +
						"most likely the server still routes to that stream, not having noticed it closed (a busy ejabberd). Staying: standing by would leave every stanza to it; " +
						"those it gets until it notices are lost")
				return nil
			}
			return s.standby()
		case <-s.stepBack:
			return s.standby()
		case <-ctx.Done():
			if got == 0 {
				s.log.Warn().Dur("took_ms", time.Since(start)).Msg("no ping answered: cannot tell whether another instance holds the component name")
				return nil
			}
			return ctx.Err()
		}
	}
	return nil
}

// ownStaleWindow is how long after this process lost a stream of its own
// a connection that takes some of a new stream's ping answers is taken for
// that lost stream rather than for another instance (ownStreamStale).
// ejabberd keeps routing to a connection until the process that serves it
// reads the socket's close: a process busy with its queue read it 2.5
// minutes after pubpresence had closed it, with 10 000 users logging in
// (docs/ejabberd.md, "10 000 users in roster mode").
const ownStaleWindow = 5 * time.Minute

// lostOwnStream records that a stream of this process ended without the
// service or the pool closing it on purpose.
func (s *Service) lostOwnStream() { s.ownLost.Store(time.Now().UnixNano()) }

// ownStreamStale reports whether the connection that took some of alone's
// ping answers is most likely this process's own lost stream, which the
// server has not yet closed: one was lost within ownStaleWindow, and no
// answer meant for another instance has arrived since foreignBefore. It
// returns how long ago the stream was lost.
func (s *Service) ownStreamStale(foreignBefore uint64) (time.Duration, bool) {
	lost := s.ownLost.Load()
	if lost == 0 || s.foreignSeen.Load() != foreignBefore {
		return 0, false
	}
	ago := time.Since(time.Unix(0, lost))
	return ago, ago < ownStaleWindow
}

// intruders records the answers meant for a newer connection: the stream's
// reader writes (seen), the loop reads (gone).
type intruders struct {
	at     atomic.Int64 // UnixNano of the last one, 0 when none since reset
	logged atomic.Bool  // the loop said so
}

func (in *intruders) seen() { in.at.Store(time.Now().UnixNano()) }

func (in *intruders) reset() {
	in.at.Store(0)
	in.logged.Store(false)
}

// gone is asked by the loop on its periodic tick: it says once that
// another instance was seen, and reports true once that instance has been
// quiet for intruderQuiet and the loop can act (ready: online, no resync
// running): presence meant for this instance went to the other, so every
// user must be resynced. Until the loop is ready the sighting is kept.
func (in *intruders) gone(log zerolog.Logger, ready bool) bool {
	at := in.at.Load()
	if at == 0 {
		return false
	}
	if !in.logged.Swap(true) {
		log.Warn().Msg("another connection with this component name took some of this instance's stanzas; it must stand by; every user is resynced once it is gone")
	}
	if !ready || time.Since(time.Unix(0, at)) < intruderQuiet {
		return false
	}
	if !in.at.CompareAndSwap(at, 0) {
		return false // seen again meanwhile
	}
	in.logged.Store(false)
	return true
}
