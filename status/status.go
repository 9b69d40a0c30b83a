// Package status holds the service's own state, init or online (the seed's
// protocol on presence/status), and what it means for the component's
// presence: dnd while initialising, plain available once online.
package status

import (
	"sync/atomic"

	"github.com/pubpresence/pubpresence/nodes"
)

// State is the service state published on the status node.
type State string

// The two states of the seed's protocol.
const (
	Init   State = "init"
	Online State = "online"
)

// Item returns the status node's payload for s: the seed's data form (its
// id is nodes.StatusItemID).
func (s State) Item() []byte { return nodes.AppendStatus(nil, string(s)) }

// Presence returns the show and status text the component answers probes
// with in state s: dnd while initialising, plain available when online.
func (s State) Presence() (show, text string) {
	if s == Online {
		return "", ""
	}
	return "dnd", "initialising"
}

// Tracker holds the current state and whether the stream is up, for
// readers on other goroutines (health checks, metrics). The zero value is
// disconnected and in Init.
type Tracker struct {
	online    atomic.Bool
	connected atomic.Bool
	standby   atomic.Bool
	failing   atomic.Bool
}

// SetStandby records that another instance holds the component name and
// this one waits to take over (true), or that it no longer waits (false).
func (t *Tracker) SetStandby(v bool) { t.standby.Store(v) }

// Standby reports whether the service waits for another instance to go.
func (t *Tracker) Standby() bool { return t.standby.Load() }

// SetFailing records that requests to the actual node are failing, so
// the node may not be true (true), or that a repair made it true (false).
func (t *Tracker) SetFailing(v bool) { t.failing.Store(v) }

// Failing reports whether requests to the actual node are failing.
func (t *Tracker) Failing() bool { return t.failing.Load() }

// Set records the state.
func (t *Tracker) Set(s State) { t.online.Store(s == Online) }

// SetConnected records whether the component stream is up.
func (t *Tracker) SetConnected(up bool) {
	t.connected.Store(up)
	if !up {
		t.online.Store(false)
	}
}

// State returns the current state.
func (t *Tracker) State() State {
	if t.online.Load() {
		return Online
	}
	return Init
}

// Connected reports whether the component stream is up.
func (t *Tracker) Connected() bool { return t.connected.Load() }

// Ready reports whether the service is connected, online, and its last
// changes to the actual node were accepted.
func (t *Tracker) Ready() bool {
	return t.connected.Load() && t.online.Load() && !t.failing.Load()
}
