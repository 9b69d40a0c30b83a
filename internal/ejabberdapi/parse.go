package ejabberdapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/pubpresence/pubpresence/internal/xmpp"
)

// Session is one c2s session as ejabberd's connected_users_info reports it.
type Session struct {
	// JID is the session's full JID: the bare part lower-cased as
	// internal/xmpp's ParseJID does it, the resource as given.
	JID string
	// Show is "online" (available, no <show/>), "chat", "away", "xa" or
	// "dnd"; "" when the session has no available presence: it sent none
	// yet, or sent unavailable while its stream stays open. Callers that
	// track presence skip sessions with an empty Show.
	Show string
	// Text is the status text of the session's last presence, as given
	// (ejabberd reports "" once the session sent unavailable, whatever
	// text that presence had).
	Text string
	// Priority is the priority of the session's last presence. ejabberd
	// reports -1 for a session that has sent no presence at all and after
	// an unavailable presence.
	Priority int
	// IP is the client's address in canonical text, an IPv4-mapped IPv6
	// address unmapped ("::ffff:192.0.2.1" gives "192.0.2.1"); "" when
	// ejabberd gives none that parses.
	IP string
}

// shows maps ejabberd's "status" to Session.Show. What ejabberd 23.01
// reports, measured against the real server (TestIntegrationConnectedUsersInfo;
// docs/ejabberd.md quotes the whole answer):
//
//	what the session did                                 "status"        "priority"  "statustext"
//	bound a resource, sent no presence at all            "unavailable"   -1          ""
//	<presence/>                                          "available"     0           ""
//	<show>chat</show> (away, xa, dnd alike)              "chat"          as sent     as sent
//	<priority>-5</priority>                              "available"     -5          ""
//	<status> with non-ASCII text and a newline          its show        as sent     "Grüße, 日本\nsecond line <&>"
//	<presence type='unavailable'><status>gone for now
//	  </status></presence>, the stream left open         "unavailable"   -1          "" (text dropped)
//	logged in over ::1                                   as above        as above    as above; "ip":"::1"
//
// mod_admin_extra builds "status" from the session's last presence:
// "unavailable" for one of type unavailable (also the state before the
// first presence), "available" for one without <show/>, else the show; and
// "offline" when the session's process ended while the list was made.
// Its priority is -1 when the session has none.
var shows = map[string]string{
	"available": "online",
	"chat":      "chat",
	"away":      "away",
	"xa":        "xa",
	"dnd":       "dnd",
	// Not available: the session is online but not tracked.
	"unavailable": "",
	"offline":     "",
}

// rawSession is one element of connected_users_info's array. Fields the
// package does not use (connection, port, node, uptime, resource) are
// left out.
type rawSession struct {
	JID        *string `json:"jid"`
	IP         string  `json:"ip"`
	Priority   int     `json:"priority"`
	Status     *string `json:"status"`
	StatusText string  `json:"statustext"`
}

// ParseConnectedUsersInfo reads the JSON body of a successful
// connected_users_info call: an array of sessions, e.g.
//
//	[{"jid":"alice@localhost/web","connection":"c2s","ip":"127.0.0.1","port":37334,"priority":3,
//	  "node":"ejabberd@host","uptime":12,"status":"away","resource":"web","statustext":"lunch"}]
//
// It returns the sessions in the server's order. A session whose "jid" is
// not a full JID (user@domain/resource) is an error, as is a "status"
// ejabberd 23.01 does not write, a missing "jid" or "status", or a body that
// is not such an array.
func ParseConnectedUsersInfo(body []byte) ([]Session, error) {
	var raw []rawSession
	d := json.NewDecoder(bytes.NewReader(body))
	if err := d.Decode(&raw); err != nil {
		return nil, fmt.Errorf("ejabberdapi: %s: not a JSON array of sessions: %w", CommandConnectedUsersInfo, err)
	}
	if raw == nil { // JSON null
		return nil, fmt.Errorf("ejabberdapi: %s: got null, want an array of sessions", CommandConnectedUsersInfo)
	}
	if _, err := d.Token(); err == nil {
		return nil, fmt.Errorf("ejabberdapi: %s: data after the array of sessions", CommandConnectedUsersInfo)
	}
	sessions := make([]Session, 0, len(raw))
	for i, r := range raw {
		s, err := r.session()
		if err != nil {
			return nil, fmt.Errorf("ejabberdapi: %s: session %d: %w", CommandConnectedUsersInfo, i, err)
		}
		sessions = append(sessions, s)
	}
	return sessions, nil
}

func (r rawSession) session() (Session, error) {
	if r.JID == nil {
		return Session{}, errors.New(`no "jid"`)
	}
	j, err := xmpp.ParseJID(*r.JID)
	if err != nil {
		return Session{}, fmt.Errorf("jid: %w", err)
	}
	if j.Local == "" || j.Resource == "" {
		return Session{}, fmt.Errorf("jid %q: want user@domain/resource", *r.JID)
	}
	if r.Status == nil {
		return Session{}, fmt.Errorf(`%s: no "status"`, j.Full())
	}
	show, ok := shows[*r.Status]
	if !ok {
		return Session{}, fmt.Errorf("%s: unknown status %.40q", j.Full(), *r.Status)
	}
	return Session{JID: j.Full(), Show: show, Text: r.StatusText, Priority: r.Priority, IP: plainIP(r.IP)}, nil
}

// plainIP returns the IP address s (no port: ejabberd writes it with
// inet_parse:ntoa) in canonical text, unmapped and without zone, or "" when
// it does not parse. admin.ParseAddr is not used: it reads a final decimal
// group of an IPv6 address as a port, which this field never has.
func plainIP(s string) string {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return ""
	}
	return a.Unmap().WithZone("").String()
}
