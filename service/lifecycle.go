package service

import (
	"errors"
	"time"

	"github.com/pubpresence/pubpresence/admin"
	"github.com/pubpresence/pubpresence/component"
	"github.com/pubpresence/pubpresence/internal/ejabberdapi"
	"github.com/pubpresence/pubpresence/nodes"
	"github.com/pubpresence/pubpresence/status"
)

// The life cycle of one stream as a state machine: lifecycle.step takes
// the phase and one event to the next phase and the work to start. It is
// pure — no I/O, no clock, no goroutine — so a table test walks it
// (lifecycle_test.go); the session's loop (session.go) feeds it events
// and carries out the work it returns.
//
//	Connecting ─start→ Nodes ─nodesReady→ Discovering ─sessions, settled→ Converging
//	     ▲                ▲                                                   │ items, queued(diff),
//	     │ stream lost    └──── failed (retry) / a node was replaced ─────────┤ queued(online)
//	     │                                                                    ▼
//	     └────────────────────────────────────────────────────────────────  Online
//
// Online runs resyncs of its own (reconcile, repair, full) without leaving
// Online, unless one finds a node replaced: then back to Nodes. Every resync
// has a generation; every event that answers work of a resync carries the
// generation it was started with, and an event of another generation is
// stale: step ignores it.
//
// The session lives while at least one of the component's streams is up
// (one per address: the nodes of a cluster, streams.go). A stream that
// ends while others live, or one that comes up, may leave the state wrong
// without a word from the server — a dead node's users get no unavailable,
// a node whose stream was down pushed nothing of its users — so each starts
// a resync: at once when none runs, else right after the one running (it
// is owed). During the initial resync, the session list is taken again. A
// request cut short by a lost stream is not a failure of the server: the
// stream's end is what starts the work again. The last stream's end is
// Connecting: the session is over.

// resyncKind says why a resync runs.
type resyncKind uint8

const (
	noResync  resyncKind = iota
	initial              // after a connect, or back from a replaced node: ends in online
	reconcile            // periodic or repair, while online: probes untracked users only
	full                 // while online, after another instance took stanzas: probes every user
	poll                 // while online with privileged presence: the session list only, for ends the server did not report
)

func (k resyncKind) String() string {
	switch k {
	case initial:
		return "initial"
	case reconcile, full:
		return "reconcile"
	case poll:
		return "poll"
	}
	return "none"
}

// stage names what a wait on the publish queue's barrier is for.
type stage uint8

const (
	stageDiff   stage = iota // the diff of the initial resync is answered: publish online
	stageOnline              // online is answered: the phase is Online
	stageRepair              // a reconciliation's changes are answered: failing is over
)

// The events. Those that answer work carry its generation (gen).
type (
	// evStart: the stream is up and no other instance holds the name.
	evStart struct{}
	// evNodesReady: the nodes are set up (created: one had to be made;
	// with err, one may have been).
	evNodesReady struct {
		gen     uint64
		created bool
		err     error
	}
	// evSessions: the server listed its sessions (carried to discover).
	evSessions struct {
		gen      uint64
		err      error
		sessions []admin.Session
		partial  int // users whose sessions are unknown (user-stats failed)
		// api is ejabberd's answer when the list came from its HTTP API
		// (presence of every session included); apiErr why it did not.
		api    []ejabberdapi.Session
		apiErr error
	}
	// evSettled: every probed user answered, or the grace or deadline passed.
	evSettled struct{ gen uint64 }
	// evItems: the actual node was fetched (carried to converge).
	evItems struct {
		gen     uint64
		err     error
		missing bool // the actual node is gone (item-not-found)
		read    nodeRead
	}
	// evQueued: every request queued before a barrier was answered.
	evQueued struct {
		gen   uint64
		stage stage
	}
	// evRetry: the backoff after a failed initial resync is over.
	evRetry struct{ gen uint64 }
	// evReconcile: the reconcile interval passed.
	evReconcile struct{}
	// evRepair: the repair backoff passed (the loop's periodic check).
	evRepair struct{}
	// evIntruderGone: another instance took stanzas and has been quiet since.
	evIntruderGone struct{}
	// evPoll: the sessions poll interval passed (privileged presence).
	evPoll struct{}
	// evRequestFailed: a queued publish or retract failed.
	evRequestFailed struct {
		node    nodeRole
		missing bool // item-not-found: the node is gone
		lost    bool // its stream ended before the answer (component.ErrClosed)
		err     error
		detail  nodes.Result
	}
	// evStreamUp: a stream came up while the session lives on another.
	evStreamUp struct{ stream int }
	// evStreamDown: a stream ended; left streams are still up.
	evStreamDown struct{ stream, left int }
)

// nodeRole says which of the three nodes a request went to.
type nodeRole uint8

const (
	otherNode nodeRole = iota
	statusNode
	liveNode
	actualNode
)

// The work step asks for. The loop carries it out (session.carry).
type (
	// doEnsureNodes sets the nodes up; with publishInit, init goes out first.
	doEnsureNodes struct {
		gen  uint64
		kind resyncKind // initial publishes init first
	}
	// doStartQueue lets the publish queue send: the nodes exist.
	doStartQueue struct{}
	// doListSessions asks the server for its sessions (a poll starts here).
	doListSessions struct {
		gen  uint64
		kind resyncKind
	}
	// doDiscover takes the sessions of evSessions, drops the connections
	// they lack, and probes their users.
	doDiscover struct{ gen uint64 }
	// doSettle ends the probes and fetches actual.
	doSettle struct{ gen uint64 }
	// doConverge queues what makes the actual node of evItems equal to the
	// state.
	doConverge struct{ gen uint64 }
	// doAwait waits on the queue's barrier and then sends evQueued.
	doAwait struct {
		gen   uint64
		stage stage
	}
	// doPublishOnline queues online on the status node.
	doPublishOnline struct{}
	// doEnter tells readers and subscribers of a new phase: the component's
	// presence, the queue's live share; init: changes stop going to actual.
	doEnter struct{ phase status.Phase }
	// doRetry arms the retry of a failed initial resync after wait.
	doRetry struct {
		gen  uint64
		wait time.Duration
	}
	// doFinish records a finished resync (metrics, log).
	doFinish struct {
		gen  uint64
		kind resyncKind
		err  error
	}
	// doRepaired logs that the actual node accepts changes again.
	doRepaired struct{}
)

// errActualFailed ends an initial resync whose changes to the actual node
// were not all accepted.
var errActualFailed = errors.New("some changes to the actual node failed")

// lifecycle is the phase of one stream and what the next events mean. It
// is owned by the loop.
type lifecycle struct {
	phase    status.Phase
	gen      uint64     // generation of the resync running or last run
	running  resyncKind // noResync when none runs
	settled  bool       // the running resync is past its probes
	failures int        // failed initial resyncs in a row
	// dirty: a change to the actual node failed, so the node may not be
	// true: an initial resync fails, an online one repairs.
	dirty bool
	// failing: dirty while online, until a repair is answered (/readyz).
	failing bool
	// nodeMissing: a request found a node gone: set the nodes up again.
	nodeMissing bool
	// statusErr: the last queued publish to the status node failed.
	statusErr error
	// owed: a stream came or went while a resync ran, whose session list
	// may predate it: a resync of this kind follows the one running.
	owed resyncKind
	// cut: a step of the running resync was cut short by a lost stream;
	// that stream's end (evStreamDown) starts it again.
	cut bool
}

// step applies ev and returns the work to start, in order; a resync owed
// starts once none runs.
func (l *lifecycle) step(ev any) []any {
	work := l.apply(ev)
	if l.owed != noResync && l.phase == status.Online && l.running == noResync {
		kind := l.owed
		l.owed = noResync
		work = append(work, l.online(kind)...)
	}
	return work
}

// apply is step without the owed resync.
func (l *lifecycle) apply(ev any) []any {
	if err := errOf(ev); err != nil && lost(err) {
		// Cut short by a lost stream: its evStreamDown starts the work
		// again (or ends the session, when it was the last).
		if l.current(genOf(ev)) {
			l.cut = true
		}
		return nil
	}
	switch ev := ev.(type) {
	case evStart:
		return l.begin(initial, status.Nodes)
	case evNodesReady:
		if !l.current(ev.gen) {
			return nil
		}
		if ev.err != nil {
			if l.running != initial && ev.created {
				// A set-up that failed may still have created a node (a
				// create's answer lost or late): the repair then finds our
				// title on it and could not tell. Readers subscribed to the
				// deleted node must start over, so the repair goes through
				// init. A set-up the server answered with errors created
				// nothing (ejabberd's "Database failure" while a cluster
				// node dies): the repair stays online.
				l.nodeMissing = true
			}
			return l.fail(ev.err)
		}
		work := []any{doStartQueue{}}
		if ev.created && l.running != initial {
			// A node was deleted and made again (by us, or by a publish
			// with the server's defaults): readers must start over, and
			// init tells them to.
			return append(work, l.reinit()...)
		}
		if l.running == initial {
			l.phase = status.Discovering
		}
		return append(work, doListSessions{l.gen, l.running})
	case evSessions:
		if !l.current(ev.gen) {
			return nil
		}
		if ev.err != nil {
			return l.fail(ev.err)
		}
		return []any{doDiscover{l.gen}} // evSettled follows
	case evSettled:
		if !l.current(ev.gen) || l.settled {
			return nil
		}
		l.settled = true
		if l.running == initial {
			l.phase = status.Converging
		}
		if l.running == poll {
			// A poll only drops the connections the server no longer
			// lists: the actual node follows by the usual changes.
			l.running = noResync
			return []any{doSettle{l.gen}, doFinish{gen: l.gen, kind: poll}}
		}
		return []any{doSettle{l.gen}}
	case evItems:
		if !l.current(ev.gen) {
			return nil
		}
		if ev.err != nil {
			l.nodeMissing = l.nodeMissing || ev.missing
			return l.fail(ev.err)
		}
		if l.running == initial {
			return []any{doConverge{l.gen}, doAwait{l.gen, stageDiff}}
		}
		// A reconciliation is done once its changes are queued; the
		// failing mark goes once they are answered.
		kind := l.running
		l.running = noResync
		l.failures = 0
		work := []any{doConverge{l.gen}, doFinish{gen: l.gen, kind: kind}}
		if l.failing {
			work = append(work, doAwait{l.gen, stageRepair})
		}
		return work
	case evQueued:
		return l.queued(ev)
	case evRetry:
		if ev.gen != l.gen || l.running != noResync || l.phase == status.Online {
			return nil
		}
		return l.begin(initial, status.Nodes)
	case evReconcile:
		if l.phase != status.Online || l.running != noResync {
			return nil
		}
		return l.online(reconcile)
	case evRepair:
		if l.phase != status.Online || l.running != noResync || !l.dirty {
			return nil
		}
		return l.online(reconcile)
	case evPoll:
		if l.phase != status.Online || l.running != noResync {
			return nil
		}
		// Not begin: a poll sets no node up and repairs nothing, so the
		// marks that ask for a repair stay.
		l.gen++
		l.running, l.settled = poll, false
		return []any{doListSessions{l.gen, poll}}
	case evIntruderGone:
		if l.phase != status.Online || l.running != noResync {
			return nil
		}
		return l.online(full)
	case evStreamUp:
		return l.streamChanged(full)
	case evStreamDown:
		if ev.left == 0 {
			l.phase = status.Connecting
			l.running, l.owed, l.cut = noResync, noResync, false
			return nil
		}
		return l.streamChanged(reconcile)
	case evRequestFailed:
		if ev.lost {
			// The stream's end starts a resync that makes the nodes true;
			// an initial one must not go online on a diff cut short.
			if l.running == initial {
				l.cut = true
			}
			return nil
		}
		switch ev.node {
		case statusNode:
			l.statusErr = ev.err
		case actualNode:
			l.dirty = true
			if l.phase == status.Online {
				l.failing = true // until a repair makes it true
			}
		}
		if ev.missing {
			l.nodeMissing, l.dirty = true, true
		}
		return nil
	}
	return nil
}

// streamChanged starts what a stream that came up (kind full: its node's
// users may have changed unseen) or went down (reconcile: its node's users
// may be gone) asks for, while other streams keep the session.
func (l *lifecycle) streamChanged(kind resyncKind) []any {
	switch {
	case l.phase == status.Online && l.running == noResync:
		return l.online(kind)
	case l.phase == status.Online && l.cut:
		if l.running == full {
			kind = full
		}
		l.running = noResync
		return l.online(kind)
	case l.phase == status.Online:
		if kind == full || l.owed == noResync {
			l.owed = kind
		}
		return nil
	case l.running != initial:
		return nil // waiting for the retry of a failed initial resync: it lists again
	case l.phase == status.Nodes && l.cut:
		l.running = noResync
		return l.begin(initial, status.Nodes)
	case l.phase == status.Nodes:
		return nil // the session list is still to come, after every stream's grant
	}
	return l.relist() // the initial resync's list may predate the change
}

// relist takes the running initial resync back to its session list, under
// a new generation: what the earlier list started is stale.
func (l *lifecycle) relist() []any {
	l.gen++
	l.settled, l.cut = false, false
	l.phase = status.Discovering
	return []any{doListSessions{l.gen, l.running}}
}

// current reports whether gen is the resync running now.
func (l *lifecycle) current(gen uint64) bool {
	return gen == l.gen && l.running != noResync
}

// begin starts a resync of kind in phase.
func (l *lifecycle) begin(kind resyncKind, phase status.Phase) []any {
	l.gen++
	l.running, l.settled, l.cut = kind, false, false
	l.phase = phase
	if kind == initial {
		l.owed = noResync // it lists everything anew
	}
	// A resync makes actual true again and sets the nodes up again: a
	// node deleted by an admin may have been made again by a publish with
	// the server's defaults (ejabberd), which may let anyone read it.
	l.dirty, l.nodeMissing = false, false
	return []any{doEnsureNodes{gen: l.gen, kind: kind}}
}

// online starts a resync of kind while online; when a node was found
// missing, or a set-up may have made one again, it goes through init
// instead, whichever event comes first.
func (l *lifecycle) online(kind resyncKind) []any {
	if l.nodeMissing {
		return l.reinit()
	}
	return l.begin(kind, status.Online)
}

// reinit goes back to init and through the whole life cycle again.
func (l *lifecycle) reinit() []any {
	l.running = noResync
	work := []any{doEnter{status.Nodes}}
	return append(work, l.begin(initial, status.Nodes)...)
}

// fail ends the running resync with err. An initial one is tried again
// after a backoff, back in Nodes; a reconciliation leaves the node dirty,
// to be repaired after the repair backoff.
func (l *lifecycle) fail(err error) []any {
	kind := l.running
	l.running = noResync
	work := []any{doFinish{gen: l.gen, kind: kind, err: err}}
	if kind == poll {
		return work // the next poll, or the reconciliation, tries again
	}
	if kind != initial {
		l.dirty = true
		return work
	}
	l.failures++
	l.phase = status.Nodes
	return append(work, doRetry{gen: l.gen, wait: 2 * time.Second << min(l.failures-1, 5)})
}

// queued handles the end of a wait on the queue's barrier.
func (l *lifecycle) queued(ev evQueued) []any {
	if ev.stage == stageRepair {
		// Not tied to a running resync: any later failure sets dirty.
		if ev.gen == l.gen && !l.dirty && l.failing {
			l.failing = false
			return []any{doRepaired{}}
		}
		return nil
	}
	if !l.current(ev.gen) || l.running != initial {
		return nil
	}
	switch ev.stage {
	case stageDiff:
		if l.cut {
			return nil // a change of the diff was lost with its stream: evStreamDown lists again
		}
		if l.dirty {
			// A request of the diff failed: actual is not true, so online
			// would be a lie. Start over.
			return l.fail(errActualFailed)
		}
		l.statusErr = nil
		return []any{doPublishOnline{}, doAwait{l.gen, stageOnline}}
	case stageOnline:
		if l.cut {
			return nil // online was lost with its stream: evStreamDown lists again
		}
		if l.statusErr != nil {
			return l.fail(l.statusErr)
		}
		l.running = noResync
		l.failures = 0
		l.failing = false
		l.phase = status.Online
		return []any{doFinish{gen: l.gen, kind: initial}, doEnter{status.Online}}
	}
	return nil
}

// errOf returns the error an event that answers work carries, or nil.
func errOf(ev any) error {
	switch ev := ev.(type) {
	case evNodesReady:
		return ev.err
	case evSessions:
		return ev.err
	case evItems:
		return ev.err
	}
	return nil
}

// genOf returns the generation of an event that answers work.
func genOf(ev any) uint64 {
	switch ev := ev.(type) {
	case evNodesReady:
		return ev.gen
	case evSessions:
		return ev.gen
	case evItems:
		return ev.gen
	}
	return 0
}

// lost reports whether err says that the request's stream ended before the
// answer, rather than that the server refused or failed it.
func lost(err error) bool { return errors.Is(err, component.ErrClosed) }
