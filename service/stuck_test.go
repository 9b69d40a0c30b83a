package service

import (
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pubpresence/pubpresence/config"
	"github.com/pubpresence/pubpresence/status"
)

// TestStuckItems: items the server lists though it answers item-not-found
// to their retract (ejabberd 23.01 keeps such items: docs/ejabberd.md) are
// found stuck by the resync after the one that retracted them: warned of
// once, counted in pubpresence_actual_stuck_items and not as fixes. Once
// the server no longer lists them the gauge is 0; when they come back,
// they are fixes again until found stuck, and warned of again.
func TestStuckItems(t *testing.T) {
	const n = 5
	const warning = "it keeps them, and no request removes them"
	f := newFakeServer(t)
	f.sessions, f.items = n, itemsStale
	f.retractGone.Store(true)
	var logs syncBuffer
	cfg := f.config()
	cfg.Tracking.Mode = config.TrackRoster
	cfg.Sync.ReconcileInterval = config.Duration{Duration: 200 * time.Millisecond}
	rs := runService(t, cfg, zerolog.New(&logs))

	stuck := func() float64 { return rs.metric(t, "pubpresence_actual_stuck_items") }
	fixes := func() float64 { return rs.metric(t, "pubpresence_reconcile_fixes_total", "kind", "item_retracted") }
	reconciled := func() float64 {
		return rs.metric(t, "pubpresence_syncs_total", "kind", "reconcile", "result", "ok")
	}
	warnings := func() int { return strings.Count(logs.String(), warning) }
	// afterReconciles waits for k more reconciliations.
	afterReconciles := func(k float64) {
		t.Helper()
		r := reconciled()
		f.waitFor("reconciliations", func() bool { return reconciled() >= r+k })
	}

	// The start retracts the stale items (answered item-not-found); the
	// first reconciliation finds them all listed still.
	f.waitFor("online, then the stale items found stuck", func() bool {
		return rs.st.Phase() == status.Online && stuck() == n
	})
	afterReconciles(3)
	if got := stuck(); got != n {
		t.Errorf("pubpresence_actual_stuck_items = %v, want %d", got, n)
	}
	if got := fixes(); got != 0 {
		t.Errorf("%v items counted retracted as fixes, want 0: every one was stuck\n%s", got, logs.String())
	}
	if got := warnings(); got != 1 {
		t.Errorf("%d warnings of stuck items, want 1 (once, not at each reconciliation):\n%s", got, logs.String())
	}
	if !strings.Contains(logs.String(), "u000000@localhost/"+fakeStaleRes) {
		t.Errorf("the warning names no stuck item:\n%s", logs.String())
	}
	retracts := f.retracts.Load()
	afterReconciles(1)
	if f.retracts.Load() <= retracts {
		t.Error("the stuck items are no longer retracted: the server might let them go")
	}

	// The server lets them go.
	f.itemsGone.Store(true)
	f.waitFor("no item stuck", func() bool { return stuck() == 0 })

	// They come back: retracted as fixes once, then stuck again.
	f.itemsGone.Store(false)
	f.waitFor("the items stuck again, warned of again", func() bool { return stuck() == n && warnings() == 2 })
	if got := fixes(); got != n {
		t.Errorf("%v items counted retracted as fixes, want %d: those retracted before they were known stuck", got, n)
	}
}
