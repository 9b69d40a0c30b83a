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
// force (decide): when the grant arrives, or grantWait after the stream
// came up. Each node of a cluster grants on its own stream, and forwards
// only its own users' presence there. The resync's session list waits for
// the decision of every stream up, since
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
//     name closes on the node (a standby's check, instances.go): once the
//     other connection is gone, the privileged streams reconnect to be
//     granted again;
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

// evGrantWait: grantWait passed since stream came up with conn.
type evGrantWait struct {
	stream int
	conn   *component.Conn
}

// grant is what the loop knows of the way presence reaches one stream.
// Each stream decides on its own: a node of a cluster grants privileged
// presence only on the stream to that node.
type grant struct {
	start      time.Time
	decided    bool
	privileged bool
	timer      *time.Timer // grantWait
	problem    string      // why tracking.mode is not met on this stream
}

// tracking is what the loop knows of the way presence reaches the
// streams, all of them (each stream's grant is in its stream).
type tracking struct {
	listGen   uint64 // a resync whose session list waits for the streams' decisions; 0 none
	poll      *time.Ticker
	pollC     <-chan time.Time
	pollEvery time.Duration
	// lastPoll is how long the last poll took, and pollEnd when it ended:
	// pollDue spaces the polls by their cost.
	lastPoll time.Duration
	pollEnd  time.Time
	missing  int // polls in a row that found presence ejabberd never pushed
	// end, when set, ends the privileged streams: every one of them must
	// be granted again (the loop closes them; ending, streams.go).
	end error
}

// startGrant starts the wait for stream i's grant; in roster mode nothing
// waits.
func (ss *session) startGrant(i int) {
	st := &ss.srv.streams[i]
	st.grant = grant{start: time.Now()}
	if ss.svc.cfg().Tracking.Mode == config.TrackRoster {
		ss.decide(i, false)
		return
	}
	c := st.conn
	st.grant.timer = time.AfterFunc(grantWait, func() { ss.crew.post(evGrantWait{stream: i, conn: c}) })
}

// stopGrant stops the wait for stream i's grant.
func (ss *session) stopGrant(i int) {
	if t := ss.srv.streams[i].grant.timer; t != nil {
		t.Stop()
	}
}

// stopTracking stops the timers of every stream.
func (ss *session) stopTracking() {
	for i := range ss.srv.streams {
		ss.stopGrant(i)
	}
	ss.setPoll(0)
}

// message handles a message to the component on stream i: the server's
// <privilege/> grant is the only one that matters.
func (ss *session) message(i int, st component.Stanza) {
	p, ok := xmpp.ParsePrivilege(st.Inner)
	if !ok {
		ss.svc.log.Debug().Str("from", st.From).Msg("ignored message")
		return
	}
	g := &ss.srv.streams[i].grant
	log := ss.svc.log.Info().Str("from", st.From).Str("ns", p.NS).Str("presence", p.Presence).Str("roster", p.Roster).Int("stream", i)
	if !p.PresenceGranted() {
		log.Msg("the server's privilege grant does not include presence (XEP-0356 presence managed_entity)")
		return
	}
	if g.decided && time.Since(g.start) > grantWait {
		// Another connection with this name authenticated (ejabberd
		// routes its grant to either connection on its node): when it
		// closes, ejabberd drops the grant of this one too.
		ss.svc.intruders.seen()
		log.Msg("a privilege grant for another connection with this component name")
		return
	}
	log.Msg("privileged presence granted")
	switch {
	case !g.decided:
		ss.decide(i, true)
	case !g.privileged && ss.svc.cfg().Tracking.Mode == config.TrackAuto:
		ss.srv.streams[i].end = errRegrant{why: "the grant came after the stream had decided on the roster way"}
	}
}

// decide fixes the way presence reaches stream i, and lets a waiting
// session list go once every stream has decided.
func (ss *session) decide(i int, granted bool) {
	st := &ss.srv.streams[i]
	g := &st.grant
	if g.decided {
		return
	}
	g.decided = true
	if g.timer != nil {
		g.timer.Stop()
	}
	cfg := ss.svc.cfg()
	log := ss.svc.log.With().Int("stream", i).Str("address", ss.srv.addrs[i]).Logger()
	g.problem = ""
	switch {
	case cfg.Tracking.Mode == config.TrackRoster:
		log.Info().Msg("tracking users who have the component in their roster (tracking.mode = \"roster\")")
	case granted:
		g.privileged = true
		log.Info().Msg("tracking every user by privileged presence (XEP-0356): no roster entry needed")
	case cfg.Tracking.Mode == config.TrackPrivileged:
		g.problem = "privileged presence not granted by the server (tracking.mode = \"privileged\")"
		if len(ss.srv.streams) > 1 {
			g.problem += " on the stream to " + ss.srv.addrs[i]
		}
		log.Error().Dur("waited_ms", grantWait).
			Str("hint", "Prosody: install prosody-modules and load \"privilege\" both in the VirtualHost's modules_enabled and in the Component section, "+
				"with privileged_entities = { [\""+cfg.XMPP.Component+"\"] = { presence = \"managed_entity\" } } in the VirtualHost (or global) section, "+
				"not in the Component section (Prosody reports none of these mistakes); "+
				"ejabberd: mod_privilege with presence: managed_entity for an access rule that matches the component (on every node of a cluster)").
			Msg(g.problem + ": tracking no one through it, reconnecting to ask again")
		st.end = errNoPrivilege
	default:
		log.Info().Msg("the server grants no privileged presence (XEP-0356): tracking users who have the component in their roster")
	}
	ss.problems()
	ss.way()
	ss.listIfDecided()
}

// problems tells /readyz the first stream's problem, "" when none has one.
func (ss *session) problems() {
	for i := range ss.srv.streams {
		if p := ss.srv.streams[i].grant.problem; p != "" {
			ss.svc.status.SetProblem(p)
			return
		}
	}
	ss.svc.status.SetProblem("")
}

// privileged reports whether a stream up has privileged presence: then
// the server pushes its users' presence, ejabberd's API tells the
// presence of every session, and the sessions poll runs.
func (ss *session) privileged() bool {
	for i := range ss.srv.streams {
		if st := &ss.srv.streams[i]; st.conn != nil && st.grant.privileged {
			return true
		}
	}
	return false
}

// decided reports whether every stream up that the loop keeps knows how
// presence reaches it, and there is one.
func (ss *session) decided() bool {
	n := 0
	for i := range ss.srv.streams {
		st := &ss.srv.streams[i]
		if st.conn == nil || st.end != nil {
			continue
		}
		if !st.grant.decided {
			return false
		}
		n++
	}
	return n > 0
}

// listIfDecided lists the sessions of the resync waiting for the streams'
// decisions, once they are made: its answer must come after every grant,
// or it could miss what a stream's node did before its grant.
func (ss *session) listIfDecided() {
	gen := ss.track.listGen
	if gen == 0 || !ss.decided() {
		return
	}
	ss.track.listGen = 0
	if rs := ss.resync; rs != nil && rs.gen == gen && !ss.life.settled && ss.life.current(gen) {
		ss.listSessions(gen)
	}
}

// way sets what follows from the way presence reaches the streams up:
// pubpresence_tracking, and the sessions poll, which runs while a stream
// has privileged presence (ejabberd reports no end of an abrupt session)
// or while a stream is down (a cluster node may have died, or its
// sessions may end while nobody hears: its users get no unavailable).
func (ss *session) way() {
	way, poll := "", time.Duration(0)
	for i := range ss.srv.streams {
		if st := &ss.srv.streams[i]; st.conn != nil && st.grant.decided && way != "privileged" {
			way = "roster"
			if st.grant.privileged {
				way = "privileged"
			}
		}
	}
	ss.svc.metrics.SetTracking(way)
	if way == "privileged" || ss.srv.up() < len(ss.srv.streams) {
		poll = ss.svc.cfg().Tracking.SessionsPoll.Duration
	}
	if poll != ss.track.pollEvery {
		ss.setPoll(poll)
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

// pollShare is the most of the server's time the sessions poll may take:
// after a poll that took T, the next waits at least (1/pollShare - 1)×T.
// Listing 10 000 sessions took Prosody 1.2 s; polled every 2 s it spent
// most of its one thread on the lists, and the publishes waited behind.
const pollShare = 0.1

// pollDue reports whether a tick of the sessions poll should poll: not
// before the last poll's cost has been paid back.
func (ss *session) pollDue(now time.Time) bool {
	t := &ss.track
	rest := time.Duration(float64(t.lastPoll) * (1/pollShare - 1))
	return t.pollEnd.IsZero() || now.Sub(t.pollEnd) >= rest
}

// pollDone records a finished poll that took d.
func (ss *session) pollDone(d time.Duration, now time.Time) {
	ss.track.lastPoll, ss.track.pollEnd = d, now
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

// subscriber reports whether a presence of kind from a user, read on
// stream i, makes the user one of the component's subscribers (they get
// its own presence). With privileged presence everyone's presence arrives:
// only a subscription or a probe says the user has the component in the
// roster.
func (ss *session) subscriber(i int, k presence.Kind) bool {
	switch k {
	case presence.Available, presence.Unavailable:
		return !ss.srv.streams[i].grant.privileged
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
