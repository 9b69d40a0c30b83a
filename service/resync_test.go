package service

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/config"
	"github.com/pubpresence/pubpresence/internal/xmpp"
	"github.com/pubpresence/pubpresence/status"
)

// TestAnswered: only errors that are all the server's answers say that
// the requests took no effect.
func TestAnswered(t *testing.T) {
	refused := &xmpp.StanzaError{Type: "wait", Condition: xmpp.ErrInternalServerError}
	conflict := &xmpp.StanzaError{Type: "cancel", Condition: xmpp.ErrConflict}
	for _, c := range []struct {
		err  error
		want bool
	}{
		{refused, true},
		{fmt.Errorf("configure node presence/actual: %w", refused), true},
		{errors.Join(fmt.Errorf("a: %w", refused), fmt.Errorf("b: %w", conflict)), true},
		{fmt.Errorf("set up nodes: %w", errors.Join(refused, conflict)), true},
		{context.DeadlineExceeded, false},
		{fmt.Errorf("create node presence/live: %w", context.DeadlineExceeded), false},
		{errors.Join(refused, fmt.Errorf("create node presence/live: %w", context.DeadlineExceeded)), false},
		{fmt.Errorf("set up nodes: %w", errors.Join(refused, errors.New("stream closed"))), false},
	} {
		if got := answered(c.err); got != c.want {
			t.Errorf("answered(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// TestRefusedSetUpStaysOnline: a reconciliation whose set-up of the
// nodes the server answers with errors (ejabberd's "Database failure"
// while a node of its cluster dies) made no node: the service stays
// online (no init on the status node), and the next one succeeds.
func TestRefusedSetUpStaysOnline(t *testing.T) {
	f := newFakeServer(t)
	rs := trackedService(t, f, func(c *config.Config) {
		c.Sync.ReconcileInterval = config.Duration{Duration: time.Second}
	})
	statusBefore := f.statusPub.Load()
	f.failConfigure.Store(2) // the live and actual nodes, set up together
	f.waitFor("a failed reconciliation", func() bool {
		return rs.metric(t, "pubpresence_syncs_total", "kind", "reconcile", "result", "error") >= 1
	})
	ok := rs.metric(t, "pubpresence_syncs_total", "kind", "reconcile", "result", "ok")
	f.waitFor("a reconciliation after it", func() bool {
		return rs.metric(t, "pubpresence_syncs_total", "kind", "reconcile", "result", "ok") > ok
	})
	if n := f.statusPub.Load() - statusBefore; n != 0 {
		t.Errorf("%d publishes on the status node after a refused set-up, want none (init and online again)", n)
	}
	if p := rs.st.Phase(); p != status.Online {
		t.Errorf("phase %s, want online", p)
	}
	if f.failConfigure.Load() != 0 {
		t.Errorf("the fake still has %d configurations to refuse", f.failConfigure.Load())
	}
}
