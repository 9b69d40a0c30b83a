package watch

import (
	"context"
	"errors"
	"sync"

	"github.com/pubpresence/pubpresence/presence"
)

// Hooks are what a follower (Follower, HTTPFollower) tells as it goes. Set
// them before Run; they are called from Run's goroutine, in order, and
// must not block for long.
type Hooks struct {
	// OnEvent is called with each event applied to the view after the
	// snapshot (not with the events the protocol discards), before the
	// view changes.
	OnEvent func(Event)
	// OnStatus is called with every status the service says ("init",
	// "online", "" for none; "standby" over HTTP), in order, repeats
	// included.
	OnStatus func(status string)
	// OnSnapshot is called each time the state is complete again (after
	// every "online"), with the connections it holds, sorted by JID;
	// the events kept meanwhile follow through OnEvent.
	OnSnapshot func(conns []presence.Conn)
}

// SetHooks sets the hooks (before Run).
func (h *Hooks) SetHooks(x Hooks) { *h = x }

// state is a follower's view and what readers of it wait on.
type state struct {
	mu      sync.Mutex
	view    View
	changed chan struct{} // closed and replaced on every change
	changes chan struct{} // cap 1, for Changes
	ran     bool
	ended   chan struct{} // closed when Run returns
	runErr  error
}

func (s *state) init() {
	s.changed = make(chan struct{})
	s.changes = make(chan struct{}, 1)
	s.ended = make(chan struct{})
}

// begin marks the start of Run, which may run once.
func (s *state) begin() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ran {
		return errors.New("watch: Run called twice")
	}
	s.ran = true
	return nil
}

// end records Run's error and wakes the waiters.
func (s *state) end(err error) {
	s.mu.Lock()
	s.runErr = err
	s.mu.Unlock()
	close(s.ended)
}

// Snapshot returns the current status and connections (sorted by JID).
func (s *state) Snapshot() (status string, conns []presence.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.view.Status(), s.view.Conns()
}

// Changes returns a channel that receives a value (without blocking the
// follower; at most one is pending) after every change of the view.
func (s *state) Changes() <-chan struct{} { return s.changes }

// WaitFor blocks until cond(status, conns) holds, ctx ends or Run ends,
// and returns the last snapshot with nil, ctx.Err(), or Run's error
// (ErrStopped when it had none). When both ctx and Run have ended, Run's
// error wins: it says why the view stopped.
func (s *state) WaitFor(ctx context.Context, cond func(status string, conns []presence.Conn) bool) (string, []presence.Conn, error) {
	for {
		s.mu.Lock()
		status, conns := s.view.Status(), s.view.Conns()
		changed := s.changed
		s.mu.Unlock()
		if cond(status, conns) {
			return status, conns, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			select {
			case <-s.ended: // Run's error says more
				return s.endedWith(cond)
			default:
			}
			return status, conns, ctx.Err()
		case <-s.ended:
			return s.endedWith(cond)
		}
	}
}

// endedWith is WaitFor's answer once Run has ended.
func (s *state) endedWith(cond func(status string, conns []presence.Conn) bool) (string, []presence.Conn, error) {
	status, conns := s.Snapshot()
	if cond(status, conns) {
		return status, conns, nil
	}
	s.mu.Lock()
	err := s.runErr
	s.mu.Unlock()
	if err == nil {
		err = ErrStopped
	}
	return status, conns, err
}

// update runs fn on the view under the lock and signals a change when it
// reports one.
func (s *state) update(fn func(v *View) bool) {
	s.mu.Lock()
	changed := fn(&s.view)
	if changed {
		close(s.changed)
		s.changed = make(chan struct{})
	}
	s.mu.Unlock()
	if changed {
		select {
		case s.changes <- struct{}{}:
		default:
		}
	}
}
