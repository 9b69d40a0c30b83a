package service

import (
	"bytes"
	"testing"
)

// TestLookupRetried: a user-stats that fails publishes the connection
// without its address, and the lookup is tried again: the connection is
// published again with it.
func TestLookupRetried(t *testing.T) {
	f := newFakeServer(t)
	f.keepLast.Store(true)
	rs := startService(t, f)
	defer rs.stop(t)
	f.failStats.Store(1)
	f.injectPresence(7, "r", "away", 1, 0)
	f.waitFor("the publish without an address", func() bool { return f.actual.Load() == 1 })
	f.lmu.Lock()
	first := string(f.lastActual)
	f.lmu.Unlock()
	if bytes.Contains([]byte(first), []byte("ip=")) {
		t.Fatalf("first publish %s has an address though user-stats failed", first)
	}
	f.waitFor("the publish with the address", func() bool { return f.actual.Load() == 2 })
	f.lmu.Lock()
	second := string(f.lastActual)
	f.lmu.Unlock()
	for _, want := range []string{"<item id='u000007@localhost/r'>", "ip='10.0.0.7'", "status='away'"} {
		if !bytes.Contains([]byte(second), []byte(want)) {
			t.Errorf("second publish %s lacks %s", second, want)
		}
	}
	if n := f.userStats.Load(); n != 2 {
		t.Errorf("user-stats asked %d times, want 2", n)
	}
	if n := rs.metric(t, "pubpresence_iq_errors_total", "condition", "internal-server-error"); n != 1 {
		t.Errorf("iq errors counted %v, want 1", n)
	}
}
