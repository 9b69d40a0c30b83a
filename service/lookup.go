package service

import (
	"context"
	"strings"

	"github.com/pubpresence/pubpresence/admin"
	"github.com/pubpresence/pubpresence/internal/xmpp"
	"github.com/pubpresence/pubpresence/presence"
)

// A new connection's first event waits for its IP address: the events of
// that connection are parked, in order, while user-stats runs for its user,
// then released with the address found. At most admin_concurrency lookups
// run at once; the others wait in a queue, one entry per user.

// addrs is what the loop knows of connections' addresses.
type addrs struct {
	ips     map[string]string            // full JID → address ("" known to have none)
	parked  map[string][]presence.Update // events waiting for their connection's IP
	retried map[string]bool              // parked JIDs looked up a second time
	pending map[string]bool              // bare JIDs queued or in flight
	queue   []string                     // bare JIDs waiting for a lookup slot
	busy    int                          // lookups in flight
	// failed holds the users whose last lookup failed, with the failures
	// in a row: their connections went out without an address, and
	// retryLookups asks again.
	failed map[string]int
}

// maxLookupFailures is how many failed lookups in a row of one user make
// the service give up its address until the user's next new connection.
const maxLookupFailures = 20

func newAddrs() addrs {
	return addrs{ips: make(map[string]string), parked: make(map[string][]presence.Update),
		retried: make(map[string]bool), pending: make(map[string]bool), failed: make(map[string]int)}
}

// evLooked: user-stats for bare answered.
type evLooked struct {
	bare     string
	sessions []admin.Session
	err      error
}

// lookup queues user-stats for bare.
func (ss *session) lookup(bare string) {
	a := &ss.addrs
	if a.pending[bare] {
		return
	}
	a.pending[bare] = true
	a.queue = append(a.queue, bare)
	ss.pumpLookups()
}

// pumpLookups starts queued lookups while fewer than admin_concurrency run.
func (ss *session) pumpLookups() {
	a := &ss.addrs
	for a.busy < ss.svc.cfg().Sync.AdminConcurrency && len(a.queue) > 0 {
		bare := a.queue[0]
		a.queue = a.queue[1:]
		a.busy++
		ss.crew.spawn(func(ctx context.Context) {
			ctx, cancel := ss.patient(ctx)
			sessions, err := ss.admin().UserStats(ctx, bare)
			cancel()
			ss.crew.post(evLooked{bare: bare, sessions: sessions, err: err})
		})
	}
	if len(a.queue) == 0 {
		a.queue = nil
	}
}

// looked releases the parked connections of bare with the addresses found.
// A connection the answer does not list yet (it logged in after the server
// answered) is looked up once more; after that, or when user-stats failed,
// it is published without an address, and a failed lookup is tried again
// (retryLookups). A tracked connection whose address the answer brings is
// published again with it.
func (ss *session) looked(ev evLooked) {
	a := &ss.addrs
	a.busy--
	delete(a.pending, ev.bare)
	defer ss.pumpLookups()
	bare, err := ev.bare, ev.err
	if err != nil {
		ss.svc.iqError(err)
		e := ss.svc.log.Debug()
		if ss.logs.lookups.add() {
			e = ss.svc.log.Warn()
		}
		e.Err(err).Str("user", bare).Msg("user-stats failed; publishing without ip")
		a.failed[bare]++
	} else {
		delete(a.failed, bare)
	}
	for _, se := range ev.sessions {
		if se.IP == "" {
			continue
		}
		a.ips[se.JID] = se.IP
		if _, waits := a.parked[se.JID]; waits {
			continue
		}
		if c, ok := ss.svc.state.Get(se.JID); ok && c.IP != se.IP {
			c.IP = se.IP // published without it after a failed lookup
			ss.apply(c)
		}
	}
	again := false
	for jid := range a.parked {
		if !strings.HasPrefix(jid, bare+"/") {
			continue
		}
		if _, ok := a.ips[jid]; !ok && err == nil && !a.retried[jid] {
			a.retried[jid] = true
			again = true
			continue
		}
		ss.release(jid)
	}
	if again {
		ss.lookup(bare)
	}
}

// release applies the parked events of jid, in order.
func (ss *session) release(jid string) {
	a := &ss.addrs
	q, ok := a.parked[jid]
	if !ok {
		return
	}
	delete(a.parked, jid)
	delete(a.retried, jid)
	if _, ok := a.ips[jid]; !ok {
		a.ips[jid] = "" // known to have none
	}
	for _, u := range q {
		ss.event(u, jid)
	}
}

// retryLookups looks up again the users whose last lookup failed and who
// are still tracked, each until maxLookupFailures in a row. The loop calls
// it every few seconds.
func (ss *session) retryLookups() {
	a := &ss.addrs
	for bare, n := range a.failed {
		switch {
		case !ss.svc.state.HasUser(bare):
			delete(a.failed, bare)
		case n >= maxLookupFailures:
			delete(a.failed, bare)
			ss.svc.log.Warn().Str("user", bare).Int("failures", n).Msg("user-stats failed too often: this user's connections stay without ip")
		default:
			ss.lookup(bare)
		}
	}
}

// forgetUser drops the parked events of bare's connections.
func (ss *session) forgetUser(bare string) {
	a := &ss.addrs
	delete(a.failed, bare)
	for jid := range a.parked {
		if strings.HasPrefix(jid, bare+"/") {
			delete(a.parked, jid)
			delete(a.retried, jid)
		}
	}
}

// pruneIPs forgets the addresses of connections that are neither tracked
// nor waiting, so the cache does not grow with users who never subscribe.
func (ss *session) pruneIPs() {
	a := &ss.addrs
	for jid := range a.ips {
		if _, ok := ss.svc.state.Get(jid); ok {
			continue
		}
		if _, ok := a.parked[jid]; ok {
			continue
		}
		delete(a.ips, jid)
	}
}

// dropLookups forgets the queued lookups of users none of whose
// connections wait any more: the session list gave their addresses (with
// privileged presence, Prosody's presence of every session arrives before
// the list, and each new connection queued a lookup).
func (ss *session) dropLookups() {
	a := &ss.addrs
	if len(a.queue) == 0 {
		return
	}
	waiting := make(map[string]bool, len(a.parked))
	for jid := range a.parked {
		waiting[xmpp.BareOf(jid)] = true
	}
	kept := a.queue[:0]
	for _, bare := range a.queue {
		if waiting[bare] {
			kept = append(kept, bare)
		} else {
			delete(a.pending, bare)
		}
	}
	a.queue = kept
}
