package presence

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// fastSeeds are inner XML that Prosody and ejabberd send, or like it: the
// fast path must read all of them.
var fastSeeds = []string{
	"",
	"<show>away</show><status>At lunch</status><priority>5</priority>",
	"<show>dnd</show><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/>",
	"<x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='member'/><status code='110'/></x>",
	"<status xml:lang='de'>Mittag</status><status>Lunch</status>",
	"<status>I&apos;m &lt;here&gt; &amp; &quot;there&quot; &#x263A;&#65;</status>",
	"<status>a<b>x</b>c<d/>e</status>",
	"<priority>-129</priority><show>busy</show>",
	"<delay xmlns='urn:xmpp:delay' stamp='2026-11-21T09:00:00Z'/>",
	"<show xmlns=\"jabber:client\" >xa</show ><status\txmlns='jabber:component:accept'\n>t</status>",
	"<show>xa</show><status>in pocket</status><priority>-1</priority><delay xmlns='urn:xmpp:delay' stamp='2026-12-03T07:55:13Z' from='localhost'/>",
	"<show>away</show><idle xmlns='urn:xmpp:idle:1' since='2026-11-21T08:55:00Z'/>",
	"<idle since='2026-11-21T10:55:00.5+02:00' xmlns='urn:xmpp:idle:1'></idle><delay xmlns='urn:xmpp:delay' stamp='x'/>",
	"<idle xmlns='urn:xmpp:idle:1'/><delay stamp='2026-11-21T09:00:00Z' xmlns='urn:other'/><x xmlns='jabber:x:delay' stamp='20261121T09:00:00'/>",
}

// parseSeeds are inner XML samples for the fuzz targets and the fast path
// tests: fastSeeds and more.
var parseSeeds = append(fastSeeds[:len(fastSeeds):len(fastSeeds)],
	"<status><![CDATA[<x>]]></status>",
	"<!-- c --><show>chat</show>",
	"<status>a\r\nb</status>",
	"<status>]]></status>",
	"<status>&#xD800;</status>",
	"<status>&#X41;</status>",
	"<status xmlns:a='http://www.w3.org/XML/1998/namespace' a:lang='de'>x</status><status>y</status>",
	"<p:show xmlns:p='jabber:client'>away</p:show>",
	"<a><b></a></b>",
	"<show>away",
	"</show>",
	"<status xml:lang=''>x</status><status>y</status>",
	"<status a='1'b='2'>x</status>",
	"<status a = '1'>x</status>",
	"<show>\xff</show>",
	"<status>\uFFFE</status>",
	"<status>&#0000000065;</status>",
	"<status xmlns='jabber:client' xmlns='urn:other'>x</status>",
	"<idle xmlns='urn:xmpp:idle:1' since='2026-11-21T09:00:00Z' since='bogus'/>",
	"<idle xmlns='urn:xmpp:idle:1' since='2026-11-21T09:00:00&#x5A;'/>",
	"<idle xmlns:p='urn:x' p:since='2026-11-21T09:00:00Z' xmlns='urn:xmpp:idle:1'/>",
	"<delay xmlns='urn:xmpp:delay' stamp='2026-11-21T09:00:00\r\nZ'/>",
)

// FuzzParsePresence checks that ParsePresence never panics, that what it
// returns is in range, and that the fast path agrees with encoding/xml
// wherever it answers.
func FuzzParsePresence(f *testing.F) {
	for _, s := range parseSeeds {
		f.Add("alice@example.org/laptop", "", []byte(s))
	}
	f.Add("Alice@Example.org", "unavailable", []byte("<status>bye</status>"))
	f.Add("bad@", "probe", []byte(""))
	f.Add("a@b/c", "bogus", []byte(""))
	f.Fuzz(func(t *testing.T, from, typ string, inner []byte) {
		u, err := ParsePresence(from, typ, inner)
		checkFastAgrees(t, inner)
		if err != nil {
			var me *MalformedError
			if !errors.As(err, &me) {
				t.Fatalf("error %v is not a *MalformedError", err)
			}
			switch me.Reason {
			case "jid", "type", "xml":
			default:
				t.Fatalf("reason %q", me.Reason)
			}
			return
		}
		if u.Priority < minPriority || u.Priority > maxPriority {
			t.Errorf("Priority %d out of range", u.Priority)
		}
		if !utf8.ValidString(u.Text) || len(u.Text) > MaxText {
			t.Errorf("Text invalid or %d bytes", len(u.Text))
		}
		if u.Kind == Available && !u.Show.Valid() || u.Kind == Available && u.Show == Offline {
			t.Errorf("Show %q for available", u.Show)
		}
		if j, err := ParseJID(u.From.Full()); err != nil || j != u.From {
			t.Errorf("From %+v does not parse back: %+v, %v", u.From, j, err)
		}
		for _, tm := range []time.Time{u.Stamp, u.Idle} {
			if !tm.IsZero() && (tm.Location() != time.UTC || tm.Nanosecond() != 0) {
				t.Errorf("Stamp %v or Idle %v not UTC in whole seconds", u.Stamp, u.Idle)
			}
		}
		if !u.Stamp.IsZero() && !u.Delayed {
			t.Errorf("Stamp %v without Delayed", u.Stamp)
		}
		if !u.Idle.IsZero() && u.Kind != Available {
			t.Errorf("Idle %v for %v", u.Idle, u.Kind)
		}
	})
}

// checkFastAgrees fails when the fast path answers differently from
// encoding/xml: in what it takes from the children, and in the Update made
// of that, for each kind that reads them differently.
func checkFastAgrees(t *testing.T, inner []byte) {
	t.Helper()
	var fast, slow presenceChildren
	if !fastChildren(inner, &fast) {
		return
	}
	if err := decodeChildren(inner, &slow); err != nil {
		t.Fatalf("fast path accepted %q, encoding/xml: %v", inner, err)
	}
	if fast.haveShow != slow.haveShow || !bytes.Equal(fast.show, slow.show) ||
		fast.havePriority != slow.havePriority || !bytes.Equal(fast.priority, slow.priority) ||
		fast.haveStatus != slow.haveStatus || fast.statusNoLang != slow.statusNoLang || !bytes.Equal(fast.status, slow.status) ||
		fast.delayed != slow.delayed ||
		fast.haveStamp != slow.haveStamp || !bytes.Equal(fast.stamp, slow.stamp) ||
		fast.haveIdle != slow.haveIdle || !bytes.Equal(fast.idle, slow.idle) {
		t.Fatalf("%q:\nfast %+v\nslow %+v", inner, fast, slow)
	}
	for _, k := range []Kind{Available, Unavailable} {
		uf, us := Update{Kind: k}, Update{Kind: k}
		uf.apply(&fast)
		us.apply(&slow)
		if !reflect.DeepEqual(uf, us) {
			t.Fatalf("%q as %v:\nfast %+v\nslow %+v", inner, k, uf, us)
		}
	}
}

func TestFastPathAgrees(t *testing.T) {
	for _, s := range parseSeeds {
		checkFastAgrees(t, []byte(s))
	}
}

func TestFastPathTaken(t *testing.T) {
	// What Prosody and ejabberd send must not need encoding/xml.
	for _, s := range fastSeeds {
		var pc presenceChildren
		if !fastChildren([]byte(s), &pc) {
			t.Errorf("fast path refused %q", s)
		}
	}
}

// TestFastPathAgreesGenerated builds many inner XML documents from pieces
// that sit on both sides of what the fast path handles, and checks that it
// agrees with encoding/xml on each one it answers, and that it answers most
// of the well-formed ones.
func TestFastPathAgreesGenerated(t *testing.T) {
	names := []string{"show", "status", "priority", "delay", "idle", "x", "c", "a", "p:show", "show2", "sh.ow", "_s", "1s", "é"}
	attrs := []string{
		"", " xmlns='jabber:client'", " xmlns=\"jabber:component:accept\"", " xmlns=''", " xmlns='urn:xmpp:delay'",
		" xmlns='jabber:x:delay'", " xmlns='urn:other'", " xml:lang='de'", " xml:lang=''", " a='1'", "  b = \"2\" ",
		" xmlns:p='jabber:client'", " p:lang='x'", " a='&amp;'", " a='<'", " a=1", " a='\r'", " a='\t\n'", "a='x'",
		" xmlns='jabber:client' xmlns='urn:other'", " a:='1'", " a:b:c='1'",
		" xmlns='urn:xmpp:idle:1'", " xmlns='urn:xmpp:idle:1' since='2026-11-21T09:00:00Z'", " since=' 2026-11-21T10:00:00.5+01:00 '",
		" since='bogus'", " xmlns='urn:xmpp:delay' stamp='2026-11-21T09:00:00Z'", " stamp=\"2026-11-21T09:00:00-01:00\"", " stamp=''",
		" stamp='2026-11-21T09:00:00&#x5A;'", " p:since='2026-11-21T09:00:00Z'",
	}
	texts := []string{
		"", "away", " dnd ", "5", "-300", "x&amp;y", "&lt;&gt;&apos;&quot;", "&#65;&#x42;&#x263a;", "&#0;", "&#xD800;",
		"&#X41;", "&#;", "&#x110000;", "&bogus;", "&amp", "]]>", "]]", "] ]>", "\r", "\t\n", "é☺😀", "\xff", "\uFFFE",
		"\x01", "<!-- c -->", "<![CDATA[x]]>", "<?pi?>", "&#00000000065;",
	}
	r := rand.New(rand.NewPCG(1, 2))
	pick := func(s []string) string { return s[r.IntN(len(s))] }
	var elem func(depth int) string
	elem = func(depth int) string {
		n := pick(names)
		if r.IntN(4) == 0 {
			return "<" + n + pick(attrs) + "/>"
		}
		var b strings.Builder
		b.WriteString("<" + n + pick(attrs) + ">")
		for k := r.IntN(3); k > 0; k-- {
			if depth < 3 && r.IntN(3) == 0 {
				b.WriteString(elem(depth + 1))
			} else {
				b.WriteString(pick(texts))
			}
		}
		end := n
		if r.IntN(20) == 0 {
			end = pick(names)
		}
		b.WriteString("</" + end + pick([]string{">", " >", "\n>"}) + "")
		return b.String()
	}
	fast, wellFormed := 0, 0
	for range 20000 {
		var b strings.Builder
		for k := r.IntN(4); k >= 0; k-- {
			if r.IntN(5) == 0 {
				b.WriteString(pick(texts))
			}
			b.WriteString(elem(0))
		}
		inner := []byte(b.String())
		checkFastAgrees(t, inner)
		var pc presenceChildren
		if decodeChildren(inner, &pc) == nil {
			wellFormed++
			if fastChildren(inner, &presenceChildren{}) {
				fast++
			}
		}
	}
	t.Logf("%d well-formed, %d of them on the fast path", wellFormed, fast)
	if wellFormed < 1000 || fast < wellFormed/4 {
		t.Errorf("generator too weak: %d well-formed, %d fast", wellFormed, fast)
	}
}
