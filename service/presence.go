package service

import (
	"errors"

	"github.com/pubpresence/pubpresence/component"
	"github.com/pubpresence/pubpresence/internal/xmpp"
	"github.com/pubpresence/pubpresence/presence"
)

// The hot path: one inbound stanza → a presence update → a change of the
// state → a live event and a change of the actual node, queued.

// handle applies one inbound stanza of the first stream (of the only one,
// with one address).
func (ss *session) handle(st component.Stanza) { ss.handleOn(0, st) }

// handleOn applies one inbound stanza, read on stream i.
func (ss *session) handleOn(i int, st component.Stanza) {
	s := ss.svc
	if st.Name == "message" {
		ss.message(i, st) // tracking.go
		return
	}
	if st.Name != "presence" {
		s.log.Debug().Str("name", st.Name).Str("from", st.From).Msg("ignored stanza")
		return
	}
	u, err := presence.ParsePresence(st.From, st.Type, st.Inner)
	if s.exclude.any() && (err == nil && s.exclude.hasJID(u.From) || err != nil && s.exclude.has(st.From)) {
		// Never tracked, published, logged or answered with our presence;
		// a subscription request is refused, as from a foreign domain.
		s.metrics.Excluded.Inc()
		if st.Type == "subscribe" {
			ss.send("unsubscribed", xmpp.BareOf(st.From))
		}
		return
	}
	if err != nil {
		reason := "invalid"
		var me *presence.MalformedError
		if errors.As(err, &me) {
			reason = me.Reason
		}
		s.metrics.Malformed.WithLabelValues(reason).Inc()
		s.log.Debug().Err(err).Str("from", st.From).Msg("dropped malformed presence")
		return
	}
	for _, reason := range u.Malformed {
		s.metrics.Malformed.WithLabelValues(reason).Inc()
		s.log.Debug().Str("from", st.From).Str("reason", reason).Msg("repaired malformed presence")
	}
	s.metrics.Event(u.Kind.String())
	s.log.Debug().Str("from", st.From).Stringer("type", u.Kind).Msg("presence")
	// The connection's JID and its bare part are st.From's own bytes when
	// the server sent it normalised, as servers do: no copy per event.
	full := u.From.FullIn(st.From)
	bare := xmpp.BareOf(full)
	if !s.domains[u.From.Domain] || u.From.Local == "" {
		s.metrics.Malformed.WithLabelValues("foreign").Inc()
		if u.Kind == presence.Subscribe {
			ss.send("unsubscribed", bare)
		}
		return
	}
	// The user answered a probe (or sent anything): once the answer is
	// applied, the running resync may settle. Settling first would fetch
	// actual and forget the addresses of connections not yet tracked,
	// this one's included: it would then wait for a lookup and miss online.
	answerOf := ""
	if u.Kind == presence.Available || u.Kind == presence.Unavailable {
		answerOf = full // one session's answer: the user's others may follow
	}
	defer ss.answered(bare, answerOf)
	switch u.Kind {
	case presence.Subscribe:
		s.subscribers[bare] = true
		ss.send("subscribed", bare)
		ss.send("subscribe", bare)
		ss.own(bare)
	case presence.Subscribed:
		s.subscribers[bare] = true
	case presence.Unsubscribe, presence.Unsubscribed:
		delete(s.subscribers, bare)
		if u.Kind == presence.Unsubscribe {
			ss.send("unsubscribed", bare)
		} else {
			ss.send("unsubscribe", bare)
		}
		ss.forgetUser(bare)
		for _, c := range s.state.RemoveUser(bare) {
			ss.removed(c)
		}
	case presence.Probe:
		s.subscribers[bare] = true
		ss.own(full)
	case presence.Available, presence.Unavailable:
		if u.From.Resource == "" {
			// A bare-JID unavailable answers a probe of a user with no
			// session, or is Prosody's receipt for our subscribe: it is not
			// a connection's event. Ghosts are left to the resync.
			return
		}
		if ss.subscriber(i, u.Kind) {
			s.subscribers[bare] = true
		}
		ss.event(u, full)
	case presence.Error:
		s.log.Debug().Str("from", st.From).Msg("error presence")
	}
}

// send sends a presence of type typ from the component to to, through the
// outbox: the loop never waits on the writer (that could stall the reader
// of the stream it serves).
func (ss *session) send(typ, to string) {
	ss.replies.push(ss.srv.Presence(to, typ, "", ""))
}

// own sends the component's own presence for the current phase to to.
func (ss *session) own(to string) {
	show, text := ss.life.phase.State().Presence()
	ss.replies.push(ss.srv.Presence(to, "", show, text))
}

// announce sends the component's presence for the current phase to every
// known subscriber, through the outbox, so that it goes out after the
// answers queued before it (an answer of the earlier phase must not follow
// it). All of them are queued, however many: one per subscriber.
func (ss *session) announce() {
	show, text := ss.life.phase.State().Presence()
	all := make([][]byte, 0, len(ss.svc.subscribers))
	for jid := range ss.svc.subscribers {
		all = append(all, ss.srv.Presence(jid, "", show, text))
	}
	ss.replies.pushAll(all)
}

// event applies an available or unavailable presence of one connection,
// jid (u.From.Full()), after looking up its IP when it is a new connection
// (lookup.go).
func (ss *session) event(u presence.Update, jid string) {
	if q, ok := ss.addrs.parked[jid]; ok {
		ss.addrs.parked[jid] = append(q, u)
		return
	}
	state := ss.svc.state
	if u.Kind == presence.Unavailable {
		if c, ok := state.Remove(jid); ok {
			ss.removed(c)
		}
		delete(ss.addrs.ips, jid)
		return
	}
	ip, known := ss.addrs.ips[jid]
	if old, ok := state.Get(jid); ok {
		ip, known = old.IP, true
	}
	if !known && ss.svc.cfg().Nodes.PublishIP {
		ss.addrs.parked[jid] = []presence.Update{u}
		ss.lookup(xmpp.BareOf(jid))
		return
	}
	since := ss.svc.now()
	if !u.Stamp.IsZero() && u.Stamp.Before(since) {
		// A <delay/> stamp: when the presence was sent (Prosody's presence
		// of the sessions online when the component connects, a probe's
		// answer), not when it reached us.
		since = u.Stamp
	}
	ss.apply(presence.Conn{JID: jid, Show: u.Show, Text: u.Text, Priority: u.Priority, IP: ip, Since: since, Idle: u.Idle})
}

// apply stores c and publishes it if it changed anything visible.
func (ss *session) apply(c presence.Conn) {
	if !ss.svc.cfg().Nodes.PublishIP {
		c.IP = ""
	}
	c, changed := ss.svc.state.Set(c)
	if !changed {
		return
	}
	ss.addrs.ips[c.JID] = c.IP
	ss.gauges()
	if f := ss.svc.feed; f != nil {
		f.Set(c)
	}
	ss.publishLive(c)
	if len(ss.absent) > 0 {
		delete(ss.absent, c.JID) // published again: its retract's answer is old news
	}
	switch {
	case ss.actualOn:
		ss.queue.Actual(c)
		ss.checkLimit()
	case ss.earlyOn():
		// A warm start's answers (the state is empty after a restart,
		// the node true) need no request.
		if held, ok := ss.earlyItem(c.JID); ok && held.SameState(c) {
			return
		}
		ss.queue.Actual(c)
		// A copy: &c would move every call's c to the heap, the hot
		// path's included.
		held := c
		ss.early[c.JID] = &held
		ss.checkLimit()
	}
}

// removed publishes that c went away.
func (ss *session) removed(c presence.Conn) {
	if rs := ss.resync; rs != nil {
		// An answer the resync asked for before this may still list it.
		if rs.gone == nil {
			rs.gone = make(map[string]bool)
		}
		rs.gone[c.JID] = true
	}
	c.Since = ss.svc.now()
	delete(ss.addrs.ips, c.JID)
	ss.gauges()
	if f := ss.svc.feed; f != nil {
		f.Gone(c)
	}
	ss.publishLive(c)
	switch {
	case ss.actualOn:
		ss.queue.Retract(c.JID)
	case ss.earlyOn():
		if _, ok := ss.earlyItem(c.JID); ok {
			ss.queue.Retract(c.JID)
			ss.early[c.JID] = nil
		}
	}
}

func (ss *session) publishLive(c presence.Conn) {
	if err := ss.queue.Live(c); err != nil {
		ss.svc.metrics.LiveDropped.Inc()
		ev := ss.svc.log.Debug()
		if ss.logs.liveDrops.add() {
			ev = ss.svc.log.Warn()
		}
		ev.Str("jid", c.JID).Msg("live queue full: event dropped")
	}
}

// checkLimit reports, once each time it happens, that there are more
// connections than the server keeps items on the actual node: the server
// would drop the oldest items silently.
func (ss *session) checkLimit() {
	n := ss.svc.state.Len()
	over := ss.limit.max > 0 && n > ss.limit.max
	if over && !ss.limit.over {
		ss.svc.log.Error().Int("connections", n).Int("server_limit", ss.limit.max).
			Msg("more connections than the server keeps items on " + ss.svc.cfg().Nodes.Actual +
				": raise pubsub_max_items (Prosody) or max_items_node (ejabberd)")
	}
	ss.limit.over = over
}

func (ss *session) gauges() {
	ss.svc.metrics.Connections.Set(float64(ss.svc.state.Len()))
	ss.svc.metrics.Users.Set(float64(ss.svc.state.Users()))
}
