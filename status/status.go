// Package status holds the service's life-cycle phase as others see it:
// the state published on the status node (init or online), the
// component's own presence in each phase, and the readiness that /readyz
// and the metrics report. The phases and what moves between them are
// described in docs/protocol.md and docs/architecture.md; the service's
// loop (package service) is the only writer.
package status

import (
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/pubpresence/pubpresence/nodes"
)

// Phase is where the service is in its life cycle. One stream goes
// Connecting → Nodes → Discovering → Converging → Online; a failed or
// restarted initial resync goes back to Nodes; a lost stream back to
// Connecting; a second instance that finds the component name taken waits
// in Standby. Readers see init in every phase but Online.
type Phase uint32

// The phases, in the order a stream goes through them.
const (
	// Connecting: no stream yet, or the stream checks that no other
	// instance holds the component name.
	Connecting Phase = iota
	// Nodes: init is published and the three nodes are set up.
	Nodes
	// Discovering: the server's sessions are listed and their users probed.
	Discovering
	// Converging: connections the server no longer has are dropped, the
	// actual node is made equal to the state, and online is published.
	Converging
	// Online: the nodes are kept true, change by change.
	Online
	// Standby: another instance holds the component name; this one tries
	// again later and takes over once it is gone.
	Standby
)

var phaseNames = [...]string{"connecting", "nodes", "discovering", "converging", "online", "standby"}

// Phases lists every phase, for metrics that have one series per phase.
var Phases = []Phase{Connecting, Nodes, Discovering, Converging, Online, Standby}

func (p Phase) String() string {
	if int(p) < len(phaseNames) {
		return phaseNames[p]
	}
	return "unknown"
}

// State is the state published on the status node in p.
func (p Phase) State() State {
	if p == Online {
		return StateOnline
	}
	return StateInit
}

// Connected reports whether a stream is up in p.
func (p Phase) Connected() bool { return p != Connecting && p != Standby }

// State is the service state published on the status node: the client
// protocol has two (docs/protocol.md).
type State string

// The two states of the client protocol.
const (
	StateInit   State = "init"
	StateOnline State = "online"
)

// Item returns the status node's payload for s: a data form.
func (s State) Item() []byte { return nodes.AppendStatus(nil, string(s)) }

// Presence returns the show and status text the component answers probes
// with in state s: dnd while initialising, plain available when online.
func (s State) Presence() (show, text string) {
	if s == StateOnline {
		return "", ""
	}
	return "dnd", "initialising"
}

// Tracker holds the current phase, and whether the last changes to the
// actual node were accepted, for readers on other goroutines (/readyz,
// metrics). The zero value is Connecting. The service's loop is its only
// writer.
type Tracker struct {
	phase   atomic.Uint32
	failing atomic.Bool
	problem atomic.Pointer[string]
	// The component streams, one per address (a cluster node): their
	// addresses, and bit i of up set while stream i is up.
	addresses atomic.Pointer[[]string]
	up        atomic.Uint64
}

// SetAddresses records the addresses of the component streams the service
// keeps, one per node of a cluster (at most 64), all down.
func (t *Tracker) SetAddresses(addrs []string) {
	a := append([]string(nil), addrs...)
	t.addresses.Store(&a)
	t.up.Store(0)
}

// SetStreamUp records whether stream i is up.
func (t *Tracker) SetStreamUp(i int, up bool) {
	if i < 0 || i >= 64 {
		return
	}
	for {
		old := t.up.Load()
		next := old &^ (1 << i)
		if up {
			next |= 1 << i
		}
		if t.up.CompareAndSwap(old, next) {
			return
		}
	}
}

// Streams returns the addresses of the streams up and of those down, in
// the order of the addresses.
func (t *Tracker) Streams() (up, down []string) {
	a := t.addresses.Load()
	if a == nil {
		return nil, nil
	}
	bits := t.up.Load()
	for i, addr := range *a {
		if bits&(1<<i) != 0 {
			up = append(up, addr)
		} else {
			down = append(down, addr)
		}
	}
	return up, down
}

// StreamsSummary says which streams are up when the service keeps more
// than one ("2 of 2 streams up", or "1 of 2 streams up; down: addr"), and
// "" when it keeps one.
func (t *Tracker) StreamsSummary() string {
	up, down := t.Streams()
	n := len(up) + len(down)
	if n < 2 {
		return ""
	}
	s := strconv.Itoa(len(up)) + " of " + strconv.Itoa(n) + " streams up"
	if len(down) > 0 {
		s += "; down: " + strings.Join(down, ", ")
	}
	return s
}

// SetProblem records why the service cannot track anyone although it may
// connect (a grant the configuration requires is missing); "" clears it.
func (t *Tracker) SetProblem(p string) {
	if p == "" {
		t.problem.Store(nil)
		return
	}
	t.problem.Store(&p)
}

// Problem returns what SetProblem recorded, "" when none.
func (t *Tracker) Problem() string {
	if p := t.problem.Load(); p != nil {
		return *p
	}
	return ""
}

// SetPhase records the phase.
func (t *Tracker) SetPhase(p Phase) { t.phase.Store(uint32(p)) }

// Phase returns the current phase.
func (t *Tracker) Phase() Phase { return Phase(t.phase.Load()) }

// SetFailing records that requests to the actual node are failing, so
// the node may not be true (true), or that a repair made it true (false).
func (t *Tracker) SetFailing(v bool) { t.failing.Store(v) }

// Failing reports whether requests to the actual node are failing.
func (t *Tracker) Failing() bool { return t.failing.Load() }

// State returns the state published on the status node.
func (t *Tracker) State() State { return t.Phase().State() }

// Ready reports whether the service is online and its last changes to the
// actual node were accepted.
func (t *Tracker) Ready() bool {
	return t.Phase() == Online && !t.failing.Load() && t.problem.Load() == nil
}
