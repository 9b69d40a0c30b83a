package service

import (
	"context"
	"strings"

	"github.com/pubpresence/pubpresence/admin"
)

// A new connection's first event waits for its IP address: the events of
// that connection are parked, in order, while user-stats runs for its user,
// then released with the address found. At most admin_concurrency lookups
// run at once; the others wait in a queue, one entry per user.

// lookup queues user-stats for bare.
func (ss *session) lookup(bare string) {
	if ss.lookups[bare] {
		return
	}
	ss.lookups[bare] = true
	ss.lookupQueue = append(ss.lookupQueue, bare)
	ss.pumpLookups()
}

// pumpLookups starts queued lookups while fewer than admin_concurrency run.
func (ss *session) pumpLookups() {
	for ss.lookupsBusy < ss.cfg().Sync.AdminConcurrency && len(ss.lookupQueue) > 0 {
		bare := ss.lookupQueue[0]
		ss.lookupQueue = ss.lookupQueue[1:]
		ss.lookupsBusy++
		ss.goAsync(func(ctx context.Context) {
			ctx, cancel := context.WithTimeout(ctx, ss.cfg().XMPP.RequestTimeout.Duration)
			sessions, err := ss.admin.UserStats(ctx, bare)
			cancel()
			ss.do(func() {
				ss.lookupsBusy--
				delete(ss.lookups, bare)
				ss.looked(bare, sessions, err)
				ss.pumpLookups()
			})
		})
	}
	if len(ss.lookupQueue) == 0 {
		ss.lookupQueue = nil
	}
}

// looked releases the parked connections of bare with the addresses found.
// A connection the answer does not list yet (it logged in after the server
// answered) is looked up once more; after that, or when user-stats failed,
// it is published without an address.
func (ss *session) looked(bare string, sessions []admin.Session, err error) {
	if err != nil {
		ss.iqError(err)
		ev := ss.log.Debug()
		if ss.lookupFailures.add() {
			ev = ss.log.Warn()
		}
		ev.Err(err).Str("user", bare).Msg("user-stats failed; publishing without ip")
	}
	for _, se := range sessions {
		if se.IP != "" {
			ss.ips[se.JID] = se.IP
		}
	}
	again := false
	for jid := range ss.parked {
		if !strings.HasPrefix(jid, bare+"/") {
			continue
		}
		if _, ok := ss.ips[jid]; !ok && err == nil && !ss.retried[jid] {
			ss.retried[jid] = true
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
	q, ok := ss.parked[jid]
	if !ok {
		return
	}
	delete(ss.parked, jid)
	delete(ss.retried, jid)
	if _, ok := ss.ips[jid]; !ok {
		ss.ips[jid] = "" // known to have none
	}
	for _, u := range q {
		ss.event(u)
	}
}

// forgetUser drops the parked events of bare's connections.
func (ss *session) forgetUser(bare string) {
	for jid := range ss.parked {
		if strings.HasPrefix(jid, bare+"/") {
			delete(ss.parked, jid)
			delete(ss.retried, jid)
		}
	}
}

// pruneIPs forgets the addresses of connections that are neither tracked
// nor waiting, so the cache does not grow with users who never subscribe.
func (ss *session) pruneIPs() {
	for jid := range ss.ips {
		if _, ok := ss.state.Get(jid); ok {
			continue
		}
		if _, ok := ss.parked[jid]; ok {
			continue
		}
		delete(ss.ips, jid)
	}
}
