package service

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/component"
	"github.com/pubpresence/pubpresence/status"
)

var (
	errBoom = errors.New("boom")
	// errLost is a request's error when its stream ended before the answer.
	errLost = fmt.Errorf("list online sessions of localhost: %w", component.ErrNoStream)
)

// TestLifecycle walks the state machine through its transitions, stale
// events of earlier generations among them: each step gives an event and
// wants the phase after it and exactly the work it starts.
func TestLifecycle(t *testing.T) {
	type step struct {
		ev    any
		phase status.Phase
		work  []any
	}
	// toOnline is the initial resync of generation gen, from its start to
	// online, with nothing failing.
	toOnline := func(gen uint64) []step {
		return []step{
			{evNodesReady{gen: gen}, status.Discovering, []any{doStartQueue{}, doListSessions{gen, initial}}},
			{evSessions{gen: gen}, status.Discovering, []any{doDiscover{gen}}},
			{evSettled{gen}, status.Converging, []any{doSettle{gen}}},
			{evItems{gen: gen}, status.Converging, []any{doConverge{gen}, doAwait{gen, stageDiff}}},
			{evQueued{gen, stageDiff}, status.Converging, []any{doPublishOnline{}, doAwait{gen, stageOnline}}},
			{evQueued{gen, stageOnline}, status.Online, []any{doFinish{gen: gen, kind: initial}, doEnter{status.Online}}},
		}
	}
	start := step{evStart{}, status.Nodes, []any{doEnsureNodes{1, initial}}}
	cat := func(parts ...[]step) []step {
		var all []step
		for _, p := range parts {
			all = append(all, p...)
		}
		return all
	}

	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"start to online", cat([]step{start}, toOnline(1))},
		{"a second grace or deadline is ignored", cat([]step{start}, toOnline(1)[:3], []step{
			{evSettled{1}, status.Converging, nil},
		}, toOnline(1)[3:])},
		{"failed set-up retries after a backoff, stale retry ignored", cat([]step{start,
			{evNodesReady{gen: 1, err: errBoom}, status.Nodes, []any{doFinish{gen: 1, kind: initial, err: errBoom}, doRetry{1, 2 * time.Second}}},
			// Results of the failed generation that come late change nothing.
			{evSessions{gen: 1}, status.Nodes, nil},
			{evRetry{1}, status.Nodes, []any{doEnsureNodes{2, initial}}},
			{evRetry{1}, status.Nodes, nil}, // a second timer of gen 1: a resync runs
			{evNodesReady{gen: 2, err: errBoom}, status.Nodes, []any{doFinish{gen: 2, kind: initial, err: errBoom}, doRetry{2, 4 * time.Second}}},
			{evRetry{1}, status.Nodes, nil}, // stale: gen 2 failed since
			{evRetry{2}, status.Nodes, []any{doEnsureNodes{3, initial}}},
		}, toOnline(3))},
		{"failed session list and fetch", cat([]step{start,
			{evNodesReady{gen: 1}, status.Discovering, []any{doStartQueue{}, doListSessions{1, initial}}},
			{evSessions{gen: 1, err: errBoom}, status.Nodes, []any{doFinish{gen: 1, kind: initial, err: errBoom}, doRetry{1, 2 * time.Second}}},
			{evRetry{1}, status.Nodes, []any{doEnsureNodes{2, initial}}},
		}, toOnline(2)[:3], []step{
			{evItems{gen: 2, err: errBoom, missing: true}, status.Nodes, []any{doFinish{gen: 2, kind: initial, err: errBoom}, doRetry{2, 4 * time.Second}}},
			{evSettled{2}, status.Nodes, nil}, // the deadline of the failed one
		})},
		{"a failed change of the diff restarts, a failed online too", cat([]step{start}, toOnline(1)[:4], []step{
			{evRequestFailed{node: actualNode, err: errBoom}, status.Converging, nil},
			{evQueued{1, stageDiff}, status.Nodes, []any{doFinish{gen: 1, kind: initial, err: errActualFailed}, doRetry{1, 2 * time.Second}}},
			{evRetry{1}, status.Nodes, []any{doEnsureNodes{2, initial}}},
		}, toOnline(2)[:5], []step{
			{evRequestFailed{node: statusNode, err: errBoom}, status.Converging, nil},
			{evQueued{2, stageOnline}, status.Nodes, []any{doFinish{gen: 2, kind: initial, err: errBoom}, doRetry{2, 4 * time.Second}}},
			{evRetry{2}, status.Nodes, []any{doEnsureNodes{3, initial}}},
		}, toOnline(3))},
		{"reconcile while online, stale events of the initial resync", cat([]step{start}, toOnline(1), []step{
			{evReconcile{}, status.Online, []any{doEnsureNodes{2, reconcile}}},
			{evReconcile{}, status.Online, nil}, // one at a time
			{evQueued{1, stageOnline}, status.Online, nil},
			{evItems{gen: 1}, status.Online, nil},
			{evNodesReady{gen: 2}, status.Online, []any{doStartQueue{}, doListSessions{2, reconcile}}},
			{evSessions{gen: 2}, status.Online, []any{doDiscover{2}}},
			{evSettled{2}, status.Online, []any{doSettle{2}}},
			{evItems{gen: 2}, status.Online, []any{doConverge{2}, doFinish{gen: 2, kind: reconcile}}},
			{evItems{gen: 2}, status.Online, nil},
			{evReconcile{}, status.Online, []any{doEnsureNodes{3, reconcile}}},
		})},
		{"a failed request while online: failing, repair, repaired", cat([]step{start}, toOnline(1), []step{
			{evRepair{}, status.Online, nil}, // nothing to repair
			{evRequestFailed{node: actualNode, err: errBoom}, status.Online, nil},
			{evRepair{}, status.Online, []any{doEnsureNodes{2, reconcile}}},
			{evNodesReady{gen: 2}, status.Online, []any{doStartQueue{}, doListSessions{2, reconcile}}},
			{evSessions{gen: 2}, status.Online, []any{doDiscover{2}}},
			{evSettled{2}, status.Online, []any{doSettle{2}}},
			{evItems{gen: 2}, status.Online, []any{doConverge{2}, doFinish{gen: 2, kind: reconcile}, doAwait{2, stageRepair}}},
			{evQueued{2, stageRepair}, status.Online, []any{doRepaired{}}},
			{evQueued{2, stageRepair}, status.Online, nil},
		})},
		{"a failed reconciliation leaves it dirty for the repair", cat([]step{start}, toOnline(1), []step{
			{evReconcile{}, status.Online, []any{doEnsureNodes{2, reconcile}}},
			{evNodesReady{gen: 2}, status.Online, []any{doStartQueue{}, doListSessions{2, reconcile}}},
			{evSessions{gen: 2, err: errBoom}, status.Online, []any{doFinish{gen: 2, kind: reconcile, err: errBoom}}},
			{evRetry{2}, status.Online, nil}, // no retry while online
			{evRepair{}, status.Online, []any{doEnsureNodes{3, reconcile}}},
		})},
		{"a set-up that may have made a node fails while online: the repair goes through init", cat([]step{start}, toOnline(1), []step{
			{evReconcile{}, status.Online, []any{doEnsureNodes{2, reconcile}}},
			{evNodesReady{gen: 2, created: true, err: errBoom}, status.Online, []any{doFinish{gen: 2, kind: reconcile, err: errBoom}}},
			{evRepair{}, status.Nodes, []any{doEnter{status.Nodes}, doEnsureNodes{3, initial}}},
		}, toOnline(3))},
		{"a set-up that may have made a node fails while online: the next reconcile goes through init", cat([]step{start}, toOnline(1), []step{
			{evReconcile{}, status.Online, []any{doEnsureNodes{2, reconcile}}},
			{evNodesReady{gen: 2, created: true, err: errBoom}, status.Online, []any{doFinish{gen: 2, kind: reconcile, err: errBoom}}},
			{evReconcile{}, status.Nodes, []any{doEnter{status.Nodes}, doEnsureNodes{3, initial}}},
		}, toOnline(3))},
		{"a set-up the server refused while online: the repair stays online", cat([]step{start}, toOnline(1), []step{
			{evReconcile{}, status.Online, []any{doEnsureNodes{2, reconcile}}},
			{evNodesReady{gen: 2, err: errBoom}, status.Online, []any{doFinish{gen: 2, kind: reconcile, err: errBoom}}},
			{evRepair{}, status.Online, []any{doEnsureNodes{3, reconcile}}},
			{evNodesReady{gen: 3}, status.Online, []any{doStartQueue{}, doListSessions{3, reconcile}}},
		})},
		{"a node found replaced goes back to init", cat([]step{start}, toOnline(1), []step{
			{evReconcile{}, status.Online, []any{doEnsureNodes{2, reconcile}}},
			{evNodesReady{gen: 2, created: true}, status.Nodes, []any{doStartQueue{}, doEnter{status.Nodes}, doEnsureNodes{3, initial}}},
			{evSessions{gen: 2}, status.Nodes, nil},
		}, toOnline(3))},
		{"a node found missing by a request: the repair goes back to init", cat([]step{start}, toOnline(1), []step{
			{evRequestFailed{node: liveNode, err: errBoom, missing: true}, status.Online, nil},
			{evRepair{}, status.Nodes, []any{doEnter{status.Nodes}, doEnsureNodes{2, initial}}},
		}, toOnline(2))},
		{"polls while online: the session list only, one at a time, no repair", cat([]step{start,
			{evPoll{}, status.Nodes, nil}, // not before online
		}, toOnline(1), []step{
			{evPoll{}, status.Online, []any{doListSessions{2, poll}}},
			{evPoll{}, status.Online, nil},      // one at a time
			{evReconcile{}, status.Online, nil}, // nor with a reconciliation
			{evSessions{gen: 2}, status.Online, []any{doDiscover{2}}},
			{evSettled{2}, status.Online, []any{doSettle{2}, doFinish{gen: 2, kind: poll}}},
			{evItems{gen: 2}, status.Online, nil},
			{evPoll{}, status.Online, []any{doListSessions{3, poll}}},
			{evSessions{gen: 3, err: errBoom}, status.Online, []any{doFinish{gen: 3, kind: poll, err: errBoom}}},
			{evRepair{}, status.Online, nil}, // a failed poll leaves nothing to repair
			{evReconcile{}, status.Online, []any{doEnsureNodes{4, reconcile}}},
		})},
		{"a poll keeps the marks that ask for a repair", cat([]step{start}, toOnline(1), []step{
			{evRequestFailed{node: actualNode, err: errBoom}, status.Online, nil},
			{evPoll{}, status.Online, []any{doListSessions{2, poll}}},
			{evSessions{gen: 2}, status.Online, []any{doDiscover{2}}},
			{evSettled{2}, status.Online, []any{doSettle{2}, doFinish{gen: 2, kind: poll}}},
			{evRepair{}, status.Online, []any{doEnsureNodes{3, reconcile}}},
		})},
		{"another instance gone: a full resync", cat([]step{start,
			{evIntruderGone{}, status.Nodes, nil}, // not before online
		}, toOnline(1), []step{
			{evIntruderGone{}, status.Online, []any{doEnsureNodes{2, full}}},
			{evIntruderGone{}, status.Online, nil},
		})},
		// Several streams (a cluster): a stream that ends or comes up while
		// others live starts a resync; the last one's end is Connecting.
		{"a stream down while online: reconcile at once; a stream up: full", cat([]step{start}, toOnline(1), []step{
			{evStreamDown{stream: 1, left: 1}, status.Online, []any{doEnsureNodes{2, reconcile}}},
			{evNodesReady{gen: 2}, status.Online, []any{doStartQueue{}, doListSessions{2, reconcile}}},
			{evSessions{gen: 2}, status.Online, []any{doDiscover{2}}},
			{evSettled{2}, status.Online, []any{doSettle{2}}},
			{evItems{gen: 2}, status.Online, []any{doConverge{2}, doFinish{gen: 2, kind: reconcile}}},
			{evStreamUp{stream: 1}, status.Online, []any{doEnsureNodes{3, full}}},
		})},
		{"a stream change while a resync runs: owed, started after it", cat([]step{start}, toOnline(1), []step{
			{evPoll{}, status.Online, []any{doListSessions{2, poll}}},
			{evStreamDown{stream: 1, left: 1}, status.Online, nil},
			{evStreamUp{stream: 1}, status.Online, nil}, // owed: full, the stronger
			{evSessions{gen: 2}, status.Online, []any{doDiscover{2}}},
			{evSettled{2}, status.Online, []any{doSettle{2}, doFinish{gen: 2, kind: poll}, doEnsureNodes{3, full}}},
			{evNodesReady{gen: 3}, status.Online, []any{doStartQueue{}, doListSessions{3, full}}},
			{evSessions{gen: 3, err: errBoom}, status.Online, []any{doFinish{gen: 3, kind: full, err: errBoom}}}, // nothing more owed
			{evStreamDown{stream: 0, left: 1}, status.Online, []any{doEnsureNodes{4, reconcile}}},
		})},
		{"a stream change during the initial resync: its list is taken again", cat([]step{start,
			{evStreamUp{stream: 1}, status.Nodes, nil}, // the list, still to come, waits for its grant
			{evNodesReady{gen: 1}, status.Discovering, []any{doStartQueue{}, doListSessions{1, initial}}},
			{evSessions{gen: 1}, status.Discovering, []any{doDiscover{1}}},
			{evStreamDown{stream: 1, left: 1}, status.Discovering, []any{doListSessions{2, initial}}},
			{evSettled{1}, status.Discovering, nil}, // stale
			{evSessions{gen: 2}, status.Discovering, []any{doDiscover{2}}},
			{evSettled{2}, status.Converging, []any{doSettle{2}}},
			{evStreamUp{stream: 1}, status.Discovering, []any{doListSessions{3, initial}}},
			{evItems{gen: 2}, status.Discovering, nil}, // stale
			{evSessions{gen: 3}, status.Discovering, []any{doDiscover{3}}},
		}, toOnline(3)[2:])},
		{"a stream down while a failed initial resync waits: the retry lists again", cat([]step{start,
			{evNodesReady{gen: 1, err: errBoom}, status.Nodes, []any{doFinish{gen: 1, kind: initial, err: errBoom}, doRetry{1, 2 * time.Second}}},
			{evStreamDown{stream: 1, left: 1}, status.Nodes, nil},
			{evRetry{1}, status.Nodes, []any{doEnsureNodes{2, initial}}},
		}, toOnline(2))},
		{"requests cut short by a lost stream: its end starts the resync again", cat([]step{start,
			{evNodesReady{gen: 1, err: errLost}, status.Nodes, nil}, // not a failure: no retry
			{evStreamDown{stream: 0, left: 1}, status.Nodes, []any{doEnsureNodes{2, initial}}},
			{evNodesReady{gen: 1, err: errBoom}, status.Nodes, nil}, // stale
		}, toOnline(2)[:4], []step{
			{evRequestFailed{node: actualNode, err: errLost, lost: true}, status.Converging, nil},
			{evQueued{2, stageDiff}, status.Converging, nil}, // not online on a diff cut short
			{evStreamDown{stream: 0, left: 1}, status.Discovering, []any{doListSessions{3, initial}}},
		}, toOnline(3)[1:], []step{
			{evRequestFailed{node: actualNode, err: errLost, lost: true}, status.Online, nil},
			{evRepair{}, status.Online, nil}, // not dirty: the stream's end repairs
			{evReconcile{}, status.Online, []any{doEnsureNodes{4, reconcile}}},
			{evNodesReady{gen: 4}, status.Online, []any{doStartQueue{}, doListSessions{4, reconcile}}},
			{evSessions{gen: 4, err: errLost}, status.Online, nil},
			{evReconcile{}, status.Online, nil}, // it still runs, cut
			{evStreamDown{stream: 0, left: 1}, status.Online, []any{doEnsureNodes{5, reconcile}}},
		})},
		{"the last stream down: connecting, whatever runs", cat([]step{start}, toOnline(1), []step{
			{evReconcile{}, status.Online, []any{doEnsureNodes{2, reconcile}}},
			{evStreamDown{stream: 1, left: 1}, status.Online, nil},
			{evStreamDown{stream: 0, left: 0}, status.Connecting, nil},
			{evNodesReady{gen: 2}, status.Connecting, nil},
			{evReconcile{}, status.Connecting, nil},
		})},
		{"the last stream down during the initial resync", []step{start,
			{evStreamDown{stream: 0, left: 0}, status.Connecting, nil},
			{evNodesReady{gen: 1}, status.Connecting, nil},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l lifecycle
			for i, s := range tc.steps {
				work := l.step(s.ev)
				if l.phase != s.phase || !reflect.DeepEqual(work, s.work) {
					t.Fatalf("step %d %T%+v: phase %s, work %s; want %s, %s", i, s.ev, s.ev, l.phase, show(work), s.phase, show(s.work))
				}
			}
		})
	}
}

// TestLifecycleBackoff checks the retry backoff doubles up to 64 s and
// starts again after a success.
func TestLifecycleBackoff(t *testing.T) {
	var l lifecycle
	l.step(evStart{})
	var waits []time.Duration
	for range 8 {
		for _, w := range l.step(evNodesReady{gen: l.gen, err: errBoom}) {
			if r, ok := w.(doRetry); ok {
				waits = append(waits, r.wait)
			}
		}
		l.step(evRetry{l.gen})
	}
	want := []time.Duration{2, 4, 8, 16, 32, 64, 64, 64}
	for i := range want {
		want[i] *= time.Second
	}
	if !reflect.DeepEqual(waits, want) {
		t.Fatalf("waits %v, want %v", waits, want)
	}
	gen := l.gen
	for _, ev := range []any{evNodesReady{gen: gen}, evSessions{gen: gen}, evSettled{gen}, evItems{gen: gen}, evQueued{gen, stageDiff}, evQueued{gen, stageOnline}} {
		l.step(ev)
	}
	if l.phase != status.Online || l.failures != 0 {
		t.Fatalf("phase %s failures %d after success", l.phase, l.failures)
	}
}

func show(work []any) string {
	s := "["
	for i, w := range work {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%T%+v", w, w)
	}
	return s + "]"
}
