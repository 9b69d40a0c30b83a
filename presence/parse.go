package presence

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pubpresence/pubpresence/internal/xmpp"
)

// Kind is what a presence stanza asks or tells.
type Kind int

// The kinds of presence, one per value of the type attribute.
const (
	Available    Kind = iota // no type: the connection is online
	Unavailable              // the connection went away
	Subscribe                // a request to see the sender's presence
	Subscribed               // the sender approved a subscription
	Unsubscribe              // the sender stops seeing presence
	Unsubscribed             // the sender revoked or refused a subscription
	Probe                    // a request for current presence
	Error                    // an error about a presence sent earlier
)

var kindNames = [...]string{"available", "unavailable", "subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe", "error"}

// String returns the kind's name: "available", "unavailable", "subscribe",
// "subscribed", "unsubscribe", "unsubscribed", "probe" or "error".
func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// MaxText is the longest <status/> text kept, in bytes; longer text is cut
// at a rune boundary.
const MaxText = 1024

// Priority bounds (RFC 6121 §4.7.2.3).
const (
	minPriority = -128
	maxPriority = 127
)

// nsXML is the namespace of the xml: prefix.
const nsXML = "http://www.w3.org/XML/1998/namespace"

// Update is one presence stanza, validated.
type Update struct {
	Kind     Kind
	From     JID
	Show     Show   // for Available: Online (no <show/>), Chat, Away, XA, DND; Offline for Unavailable; "" otherwise
	Text     string // <status/> text, trimmed, valid UTF-8, at most MaxText bytes
	Priority int    // clamped to −128…127; read for Available only
	Delayed  bool   // carried <delay xmlns='urn:xmpp:delay'/> or XEP-0091's <x xmlns='jabber:x:delay'/> (a probe answer or subscription, not a live change)
	// Stamp is the stamp of the first <delay xmlns='urn:xmpp:delay'/>
	// (XEP-0203), in UTC with whole seconds; zero without one, or when it
	// does not parse as RFC 3339. XEP-0091's stamp is not read.
	Stamp time.Time
	// Idle is the since of the first <idle xmlns='urn:xmpp:idle:1'/>
	// (XEP-0319), in UTC with whole seconds; zero without one, or when it
	// does not parse as RFC 3339. Read for Available only.
	Idle time.Time
	// Malformed lists what was wrong but repaired, each a reason:
	// "priority" (non-numeric or out of range: clamped, non-numeric → 0),
	// "show" (unknown value → Online), "text_too_long" (cut),
	// "text_utf8" (invalid UTF-8 replaced), "delay" (a stamp missing or
	// not RFC 3339: Stamp left zero), "idle" (a since missing or not
	// RFC 3339: Idle left zero).
	Malformed []string
}

// malformed records reason once.
func (u *Update) malformed(reason string) {
	for _, r := range u.Malformed {
		if r == reason {
			return
		}
	}
	u.Malformed = append(u.Malformed, reason)
}

// ParsePresence validates one presence. from and typ are the stanza's
// attributes; inner is the raw XML between <presence …> and </presence>. Its
// children are in the stream's default namespace when they carry no xmlns;
// "", "jabber:client" and "jabber:component:accept" all count as that
// namespace. Only direct children are read: a <status/> inside an extension
// (MUC's <x><status code='110'/></x>) is not the presence's status.
//
// It fails with a *MalformedError: Reason "type" for an unknown type, "jid"
// for a bad from, "xml" for inner XML that does not parse.
func ParsePresence(from, typ string, inner []byte) (Update, error) {
	var u Update
	switch typ {
	case "":
		u.Kind, u.Show = Available, Online
	case "unavailable":
		u.Kind, u.Show = Unavailable, Offline
	case "subscribe":
		u.Kind = Subscribe
	case "subscribed":
		u.Kind = Subscribed
	case "unsubscribe":
		u.Kind = Unsubscribe
	case "unsubscribed":
		u.Kind = Unsubscribed
	case "probe":
		u.Kind = Probe
	case "error":
		u.Kind = Error
	default:
		if len(typ) > 32 {
			typ = strings.ToValidUTF8(typ[:32], "") + "…"
		}
		return Update{}, &MalformedError{Reason: "type", Err: errors.New("presence type " + strconv.Quote(typ))}
	}
	j, err := xmpp.ParseJID(from) // directly: one call less on the hot path
	if err != nil {
		return Update{}, &MalformedError{Reason: "jid", Err: err}
	}
	u.From = j
	if len(bytes.TrimSpace(inner)) == 0 {
		return u, nil
	}
	var pc presenceChildren
	if !fastChildren(inner, &pc) {
		pc = presenceChildren{}
		if err := decodeChildren(inner, &pc); err != nil {
			return Update{}, &MalformedError{Reason: "xml", Err: err}
		}
	}
	u.apply(&pc)
	return u, nil
}

// childKind is a child of a presence that ParsePresence reads.
type childKind int

const (
	childOther childKind = iota
	childShow
	childPriority
	childStatus
	childOldDelay // XEP-0091's <x/>
	childDelay    // XEP-0203's <delay/>; this and what follows have a time (timed)
	childIdle     // XEP-0319's <idle/>
)

// timed reports whether a child of kind k has a time, in its timeAttr.
func timed(k childKind) bool { return k >= childDelay }

// classifyChild says which child of the presence the element space:local is.
func classifyChild(space, local []byte) childKind {
	switch {
	case len(space) == 0 || string(space) == xmpp.NSComponent || string(space) == xmpp.NSClient:
		switch string(local) {
		case "show":
			return childShow
		case "priority":
			return childPriority
		case "status":
			return childStatus
		}
	case string(space) == xmpp.NSDelay && string(local) == "delay":
		return childDelay
	case string(space) == xmpp.NSOldDelay && string(local) == "x":
		return childOldDelay
	case string(space) == xmpp.NSIdle && string(local) == "idle":
		return childIdle
	}
	return childOther
}

// timeAttr is the attribute that holds the time of a <delay/> (stamp) or
// an <idle/> (since), named local.
func timeAttr(local []byte) string {
	switch string(local) {
	case "delay":
		return "stamp"
	case "idle":
		return "since"
	}
	return ""
}

// presenceChildren is what the children of one presence say, before it is
// checked: the untrimmed character data of the first <show/> and
// <priority/> and of the chosen <status/>, and the raw stamp of the first
// <delay/> and since of the first <idle/>.
type presenceChildren struct {
	show, priority, status                           []byte
	stamp, idle                                      []byte
	haveShow, havePriority, haveStatus, statusNoLang bool
	delayed, haveStamp, haveIdle                     bool
}

// add records one direct child: text is its character data. Of several
// <status/>, the first without xml:lang wins, else the first. The time of
// a <delay/> or <idle/> is recorded by addTime.
func (pc *presenceChildren) add(k childKind, text []byte, noLang bool) {
	switch k {
	case childShow:
		if !pc.haveShow {
			pc.haveShow, pc.show = true, text
		}
	case childPriority:
		if !pc.havePriority {
			pc.havePriority, pc.priority = true, text
		}
	case childStatus:
		if !pc.haveStatus || noLang && !pc.statusNoLang {
			pc.haveStatus, pc.statusNoLang, pc.status = true, noLang, text
		}
	case childDelay, childOldDelay:
		pc.delayed = true
	}
}

// addTime records the raw time of a <delay/> or <idle/> (k), the value of
// its timeAttr; the first of each counts.
func (pc *presenceChildren) addTime(k childKind, when []byte) {
	switch {
	case k == childDelay && !pc.haveStamp:
		pc.haveStamp, pc.stamp = true, when
	case k == childIdle && !pc.haveIdle:
		pc.haveIdle, pc.idle = true, when
	}
}

// apply checks what the children say and stores it in u.
func (u *Update) apply(pc *presenceChildren) {
	u.Delayed = pc.delayed
	if u.Kind == Available {
		if pc.haveShow {
			u.setShow(bytes.TrimSpace(pc.show))
		}
		if pc.havePriority {
			u.setPriority(bytes.TrimSpace(pc.priority))
		}
		if pc.haveIdle {
			u.Idle = u.parseTime(pc.idle, "idle")
		}
	}
	if pc.haveStatus {
		u.Text = u.cleanText(pc.status)
	}
	if pc.haveStamp {
		u.Stamp = u.parseTime(pc.stamp, "delay")
	}
}

// parseTime reads an XEP-0082 date-time (RFC 3339, a fraction and a
// numeric offset allowed, white space around it ignored) and returns it in
// UTC cut to whole seconds. For anything else, a missing value included, it
// records reason and returns the zero time.
func (u *Update) parseTime(v []byte, reason string) time.Time {
	var t time.Time
	// UnmarshalText reads RFC 3339 as time.Parse does, without copying v.
	if err := t.UnmarshalText(bytes.TrimSpace(v)); err != nil {
		u.malformed(reason)
		return time.Time{}
	}
	return t.UTC().Truncate(time.Second)
}

// decodeChildren reads the direct children of the presence from inner with
// encoding/xml. It handles any XML; deep nesting costs memory in the
// decoder's own stack, never recursion.
func decodeChildren(inner []byte, pc *presenceChildren) error {
	d := xml.NewDecoder(bytes.NewReader(inner))
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		k := classifyChild([]byte(se.Name.Space), []byte(se.Name.Local))
		var text []byte
		switch k {
		case childShow, childPriority, childStatus:
			if text, err = readText(d); err != nil {
				return err
			}
		default:
			if err := d.Skip(); err != nil {
				return err
			}
		}
		noLang := true
		for _, a := range se.Attr {
			if a.Name.Space == nsXML && a.Name.Local == "lang" && a.Value != "" {
				noLang = false
			}
		}
		if timed(k) {
			var when []byte
			for _, a := range se.Attr {
				if a.Name.Space == "" && a.Name.Local == timeAttr([]byte(se.Name.Local)) {
					when = []byte(a.Value) // the last of repeated ones, as on the fast path
				}
			}
			pc.addTime(k, when)
		}
		pc.add(k, text, noLang)
	}
}

// readText returns the character data of the element just opened and
// consumes its end; child elements are skipped.
func readText(d *xml.Decoder) ([]byte, error) {
	var buf []byte
	for {
		tok, err := d.Token()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		switch t := tok.(type) {
		case xml.CharData:
			buf = append(buf, t...)
		case xml.StartElement:
			if err := d.Skip(); err != nil {
				return nil, err
			}
		case xml.EndElement:
			return buf, nil
		}
	}
}

// setShow sets u.Show from a trimmed <show/> value.
func (u *Update) setShow(v []byte) {
	switch string(v) {
	case "":
		u.Show = Online
	case "chat":
		u.Show = Chat
	case "away":
		u.Show = Away
	case "xa":
		u.Show = XA
	case "dnd":
		u.Show = DND
	default:
		u.Show = Online
		u.malformed("show")
	}
}

// setPriority sets u.Priority from a trimmed <priority/> value.
func (u *Update) setPriority(v []byte) {
	n, err := strconv.Atoi(string(v))
	switch {
	case err != nil && errors.Is(err, strconv.ErrRange) && len(v) > 0 && v[0] == '-':
		n = minPriority
	case err != nil && errors.Is(err, strconv.ErrRange):
		n = maxPriority
	case err != nil:
		n = 0
	case n < minPriority:
		n = minPriority
	case n > maxPriority:
		n = maxPriority
	default:
		u.Priority = n
		return
	}
	u.Priority = n
	u.malformed("priority")
}

// cleanText trims b, replaces invalid UTF-8 and cuts it to MaxText bytes.
func (u *Update) cleanText(b []byte) string {
	b = bytes.TrimSpace(b)
	if !utf8.Valid(b) {
		b = bytes.ToValidUTF8(b, []byte("\uFFFD"))
		u.malformed("text_utf8")
	}
	if len(b) > MaxText {
		i := MaxText
		for i > 0 && !utf8.RuneStart(b[i]) {
			i--
		}
		b = bytes.TrimSpace(b[:i])
		u.malformed("text_too_long")
	}
	return string(b)
}
