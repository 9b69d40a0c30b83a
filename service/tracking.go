package service

import (
	"errors"
	"time"

	"github.com/pubpresence/pubpresence/component"
	"github.com/pubpresence/pubpresence/config"
	"github.com/pubpresence/pubpresence/internal/xmpp"
	"github.com/pubpresence/pubpresence/presence"
)

// How presence reaches the service (docs/tracking.md). A server that grants
// the component privileged presence (XEP-0356) sends it a <privilege/>
// message right after the handshake — Prosody with the handshake, ejabberd
// a few milliseconds later — and from then on every user's presence, with
// no roster entry. Without the grant, presence comes from users who have
// the component in their roster (their own subscription, or a shared
// roster): the "roster" way. Each stream decides once which way is in
// force (tracking.decide): when the grant arrives, or grantWait after the
// loop starts. The resync's session list waits for that decision, since
// the two ways discover differently: the roster way probes the users;
// privileged presence needs no probe (Prosody sends every session's
// presence after the handshake; ejabberd sends none, and its HTTP API
// tells them: resync.go's applyAPI).
//
// What privileged presence on ejabberd 23.01 lacks, and what makes up for
// it:
//   - no unavailable for a session that ends without one (abrupt close,
//     stream-management timeout, server stop): the session list is read
//     every tracking.sessions_poll (a poll, lifecycle.go) and connections
//     it no longer lists leave the state;
//   - the grant is dropped for the whole name when any connection of that
//     name closes (a standby's check, instances.go): once the other
//     connection is gone, this one reconnects to be granted again;
//   - no presence of sessions online before the connect: ejabberd.api_url,
//     else probes (answered only where a roster subscription exists), else
//     unknown: listed, counted (pubpresence_sessions_unknown), never
//     published with an invented show.

// grantWait is how long a stream waits for the <privilege/> message before
// it decides that none comes. Prosody sends it with the handshake and
// ejabberd within 25 ms of it (measured); the wait overlaps the node
// set-up, so only a server that grants nothing pays it, once per connect.
const grantWait = 2 * time.Second

// errNoPrivilege ends a stream whose server did not grant privileged
// presence while tracking.mode requires it: the service reconnects with
// backoff, since a server grants it only when a component authenticates.
var errNoPrivilege = errors.New("the server did not grant privileged presence (XEP-0356) and tracking.mode is \"privileged\"")

// errRegrant ends a stream to be granted privileged presence again (or for
// the first time, when the grant came late).
type errRegrant struct{ why string }

func (e errRegrant) Error() string {
	return "reconnecting to be granted privileged presence again: " + e.why
}
func (e errRegrant) RetryAfter() time.Duration { return 100 * time.Millisecond }

// evGrantWait: grantWait passed since the loop started.
type evGrantWait struct{}

// tracking is what the loop knows of the way presence reaches it.
type tracking struct {
	start      time.Time
	decided    bool
	privileged bool
	listGen    uint64      // a resync whose session list waits for the decision; 0 none
	timer      *time.Timer // grantWait
	poll       *time.Ticker
	pollC      <-chan time.Time
	pollEvery  time.Duration
	missing    int // polls in a row that found presence ejabberd never pushed
	// end, when set, ends the stream: the loop returns it.
	end error
}

// startTracking starts the wait for the grant; in roster mode nothing
// waits.
func (ss *session) startTracking() {
	t := &ss.track
	t.start = time.Now()
	if ss.svc.cfg().Tracking.Mode == config.TrackRoster {
		ss.decide(false)
		return
	}
	t.timer = time.AfterFunc(grantWait, func() { ss.crew.post(evGrantWait{}) })
}

// stopTracking stops the timers of the stream.
func (ss *session) stopTracking() {
	t := &ss.track
	if t.timer != nil {
		t.timer.Stop()
	}
	ss.setPoll(0)
}

// message handles a message to the component: the server's <privilege/>
// grant is the only one that matters.
func (ss *session) message(st component.Stanza) {
	p, ok := xmpp.ParsePrivilege(st.Inner)
	if !ok {
		ss.svc.log.Debug().Str("from", st.From).Msg("ignored message")
		return
	}
	t := &ss.track
	log := ss.svc.log.Info().Str("from", st.From).Str("ns", p.NS).Str("presence", p.Presence).Str("roster", p.Roster)
	if !p.PresenceGranted() {
		log.Msg("the server's privilege grant does not include presence (XEP-0356 presence managed_entity)")
		return
	}
	if t.decided && time.Since(t.start) > grantWait {
		// Another connection with this name authenticated (ejabberd
		// routes its grant to either connection): when it closes, ejabberd
		// drops the grant of this one too.
		ss.svc.intruders.seen()
		log.Msg("a privilege grant for another connection with this component name")
		return
	}
	log.Msg("privileged presence granted")
	switch {
	case !t.decided:
		ss.decide(true)
	case !t.privileged && ss.svc.cfg().Tracking.Mode == config.TrackAuto:
		t.end = errRegrant{why: "the grant came after the stream had decided on the roster way"}
	}
}

// decide fixes the way presence reaches this stream, and lets a waiting
// session list go.
func (ss *session) decide(granted bool) {
	t := &ss.track
	if t.decided {
		return
	}
	t.decided = true
	if t.timer != nil {
		t.timer.Stop()
	}
	cfg := ss.svc.cfg()
	switch {
	case cfg.Tracking.Mode == config.TrackRoster:
		ss.svc.log.Info().Msg("tracking users who have the component in their roster (tracking.mode = \"roster\")")
	case granted:
		t.privileged = true
		ss.svc.log.Info().Msg("tracking every user by privileged presence (XEP-0356): no roster entry needed")
	case cfg.Tracking.Mode == config.TrackPrivileged:
		problem := "privileged presence not granted by the server (tracking.mode = \"privileged\")"
		ss.svc.status.SetProblem(problem)
		ss.svc.log.Error().Dur("waited_ms", grantWait).
			Str("hint", "Prosody: install prosody-modules and load \"privilege\" both in the VirtualHost's modules_enabled and in the Component section, "+
				"with privileged_entities = { [\""+cfg.XMPP.Component+"\"] = { presence = \"managed_entity\" } } in the VirtualHost (or global) section, "+
				"not in the Component section (Prosody reports none of these mistakes); "+
				"ejabberd: mod_privilege with presence: managed_entity for an access rule that matches the component").
			Msg(problem + ": tracking no one, reconnecting to ask again")
		t.end = errNoPrivilege
		return
	default:
		ss.svc.log.Info().Msg("the server grants no privileged presence (XEP-0356): tracking users who have the component in their roster")
	}
	ss.svc.status.SetProblem("")
	way := "roster"
	if t.privileged {
		way = "privileged"
		ss.setPoll(cfg.Tracking.SessionsPoll.Duration)
	}
	ss.svc.metrics.SetTracking(way)
	if gen := t.listGen; gen != 0 {
		t.listGen = 0
		if rs := ss.resync; rs != nil && rs.gen == gen {
			ss.listSessions(gen)
		}
	}
}

// missedPolls is how many polls in a row must find presence the stream
// never brought before the stream counts its grant as lost. One can be a
// race (the API answered before the push arrived on the stream), two under
// load too; three in a row, while users change presence, are not.
const missedPolls = 3

// pushMissed takes what a poll with ejabberd's API found: connections
// whose presence the privileged push never brought. ejabberd drops the
// grant of every connection with the name when any of them closes,
// including one this stream never saw (a half-open connection of an
// earlier stream of this service, which ejabberd drops late). Only the
// push stopping tells, and only while users change presence: then every
// poll finds changes it missed, and the stream reconnects to be granted
// again.
func (ss *session) pushMissed(missed int) {
	t := &ss.track
	if missed == 0 {
		t.missing = 0
		return
	}
	t.missing++
	ss.svc.log.Info().Int("connections", missed).Int("polls_in_a_row", t.missing).
		Msg("the sessions poll found presence the privileged push never brought")
	if t.missing >= missedPolls {
		t.end = errRegrant{why: "polls in a row found presence ejabberd never pushed: the grant was lost"}
	}
}

// setPoll (re)starts the sessions poll every d; 0 stops it.
func (ss *session) setPoll(d time.Duration) {
	t := &ss.track
	if t.poll != nil {
		t.poll.Stop()
		t.poll, t.pollC = nil, nil
	}
	if d > 0 {
		t.poll = time.NewTicker(d)
		t.pollC = t.poll.C
	}
	t.pollEvery = d
}

// subscriber reports whether a presence of kind from a user makes the user
// one of the component's subscribers (they get its own presence). With
// privileged presence everyone's presence arrives: only a subscription or
// a probe says the user has the component in the roster.
func (ss *session) subscriber(k presence.Kind) bool {
	switch k {
	case presence.Available, presence.Unavailable:
		return !ss.track.privileged
	}
	return true
}

// excludeNow makes list tracking.exclude (a reload): the connections of
// users it now names leave the state and the actual node at once, with no
// live event (an offline event would publish them once more); users it no
// longer names are tracked again from their next presence, or the next
// resync that learns it (a probe, ejabberd's API).
func (ss *session) excludeNow(list []string) {
	s := ss.svc
	s.exclude = newExclusion(list)
	var hidden []string
	for _, c := range s.state.Snapshot() {
		if !s.exclude.has(c.JID) {
			continue
		}
		s.state.Remove(c.JID)
		delete(ss.addrs.ips, c.JID)
		if ss.actualOn {
			ss.queue.Retract(c.JID)
		}
		hidden = append(hidden, c.JID)
	}
	if f := s.feed; f != nil {
		f.Hide(hidden...) // HTTP clients get a fresh snapshot
	}
	for jid := range ss.addrs.parked {
		if s.exclude.has(jid) {
			delete(ss.addrs.parked, jid)
			delete(ss.addrs.retried, jid)
		}
	}
	for bare := range s.subscribers {
		if s.exclude.has(bare) {
			delete(s.subscribers, bare)
		}
	}
	ss.gauges()
	s.log.Info().Int("excluded", len(list)).Int("connections_removed", len(hidden)).Msg("tracking.exclude changed")
}
