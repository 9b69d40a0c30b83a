package admin

import (
	"reflect"
	"testing"
)

// realAnswers are the servers' answers of parse_test.go: the fast path must
// read every one, as encoding/xml does.
var realAnswers = []string{prosodyOnlineDetails, prosodyOnlineNoDetails, prosodyOnlineMixed, prosodyOnlineEmpty,
	ejabberdOnline, prosodyForbidden, prosodyUserStats, prosodyUserStatsV6, prosodyUserStatsOffline,
	prosodyUserStatsNoUser, ejabberdUserStats, ejabberdUserStatsShort, ejabberdUserStatsOffline, ejabberdUserStatsMapped}

func TestFastCommandReadsRealAnswers(t *testing.T) {
	for i, s := range realAnswers {
		fast, ok := fastCommand([]byte(s))
		if !ok {
			t.Errorf("answer %d: the fast path gave up:\n%s", i, s)
			continue
		}
		slow, err := decodeCommandXML([]byte(s))
		if err != nil {
			t.Fatalf("answer %d: encoding/xml: %v", i, err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Errorf("answer %d: fast %+v, encoding/xml %+v", i, fast, slow)
		}
	}
}

func TestFastCommand(t *testing.T) {
	const ns = ` xmlns='http://jabber.org/protocol/commands'`
	tests := []struct {
		in     string
		giveUp bool
	}{
		{in: `<command` + ns + ` node='n' status="completed"/>`},
		{in: " \n<command" + ns + `><note type='error'>User &amp; &#65;&#x42; &lt;x&gt;</note></command> trailing`},
		{in: `<command status='completed'><x xmlns='jabber:x:data' type='form'><field var='a' type='text-multi'/><field var='b'><value/><value>x]y</value><value>  </value></field></x></command>`},
		{in: `<command` + ns + `><x xmlns='jabber:x:data'></x><x xmlns='jabber:x:data' type='result'><field var='v&apos;'><value>é ☃</value></field></x></command >`},
		{in: `<command` + ns + ` xml:lang='en'><note>n</note><note type='info'/></command>`},
		// Left to encoding/xml:
		{in: `<?xml version='1.0'?><command` + ns + `/>`, giveUp: true},
		{in: `<other/><command` + ns + `/>`, giveUp: true},
		{in: `<command xmlns='urn:other'/>`, giveUp: true},
		{in: `<commands` + ns + `/>`, giveUp: true},
		{in: `<command` + ns + ` node='a' node='b'/>`, giveUp: true},
		{in: `<command` + ns + ` xmlns:p='urn:p'/>`, giveUp: true},
		{in: `<command` + ns + ` p:node='a'/>`, giveUp: true},
		{in: `<command` + ns + `><actions execute='next'><next/></actions></command>`, giveUp: true},
		{in: `<command` + ns + `><x xmlns='jabber:x:data'><title>t</title></x></command>`, giveUp: true},
		{in: `<command` + ns + `><x><field var='a'/></x></command>`, giveUp: true},
		{in: `<command` + ns + `><x xmlns='jabber:x:data'><field var='a'><validate xmlns='http://jabber.org/protocol/xdata-validate'><range min='1' max='2'/></validate></field></x></command>`, giveUp: true},
		{in: `<command` + ns + `><x xmlns='jabber:x:data'><field var='a'><value>a` + "\r\n" + `b</value></field></x></command>`, giveUp: true},
		{in: `<command` + ns + `><x xmlns='jabber:x:data'><field var='a'><value><![CDATA[x]]></value></field></x></command>`, giveUp: true},
		{in: `<command` + ns + `><!-- c --></command>`, giveUp: true},
		{in: `<command` + ns + `>text</command>`, giveUp: true},
		{in: `<command` + ns + `><note>a<b/></note></command>`, giveUp: true},
		{in: `<command` + ns + `><x xmlns='jabber:x:data'><field var='a'><value>x</valu></field></x></command>`, giveUp: true},
		{in: `<command` + ns + `><note>x`, giveUp: true},
		{in: `<command` + ns + `>`, giveUp: true},
		{in: `<command` + ns + `/`, giveUp: true},
		{in: `<command` + ns + `node='a'/>`, giveUp: true},
		{in: `<command` + ns + ` node='a &bogus;'/>`, giveUp: true},
		{in: "<command" + ns + "><note>\xff</note></command>", giveUp: true},
	}
	for _, tt := range tests {
		fast, ok := fastCommand([]byte(tt.in))
		if ok == tt.giveUp {
			t.Errorf("%q: fast path read it: %v, want %v", tt.in, ok, !tt.giveUp)
			continue
		}
		if !ok {
			if fast != nil {
				t.Errorf("%q: gave up with a command %+v", tt.in, fast)
			}
			continue
		}
		slow, err := decodeCommandXML([]byte(tt.in))
		if err != nil {
			t.Errorf("%q: fast path read what encoding/xml refuses: %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Errorf("%q: fast %+v, encoding/xml %+v", tt.in, fast, slow)
		}
	}
}

// FuzzFastCommand: whatever the fast path reads, encoding/xml reads the
// same.
func FuzzFastCommand(f *testing.F) {
	for _, s := range realAnswers {
		f.Add([]byte(s))
	}
	f.Add([]byte(`<command xmlns='http://jabber.org/protocol/commands'><note type='error'>a &amp; b</note><x xmlns='jabber:x:data'><field var='a'><value/><value>&#x10000;</value></field></x></command>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := fastCommand(b)
		if !ok {
			if fast != nil {
				t.Fatalf("gave up with a command %+v", fast)
			}
			return
		}
		slow, err := decodeCommandXML(b)
		if err != nil {
			t.Fatalf("fast path read %q, encoding/xml refuses it: %v", b, err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%q: fast %+v, encoding/xml %+v", b, fast, slow)
		}
	})
}
