package xmpp

import (
	"testing"

	"github.com/pubpresence/pubpresence/internal/xmltext"
)

// FuzzParseError: any inner XML of an error stanza gives a usable
// *StanzaError, never a panic; so does any <stream:error/> content.
func FuzzParseError(f *testing.F) {
	for _, s := range []string{
		"",
		"<error type='cancel'><conflict" + st + "/><text" + st + ">Field does not match: max_items</text><precondition-not-met xmlns='http://jabber.org/protocol/pubsub#errors'/></error>",
		"<pubsub xmlns='http://jabber.org/protocol/pubsub'/><error type='modify'><bad-request" + st + "/></error>",
		"<error><text" + st + ">only text</text></error>",
		"<error type='auth'><forbidden" + st + "/><text" + st + " xml:lang='en'>x</text></error><error type='cancel'/>",
		"<error",
		"text only & <b>",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, inner []byte) {
		e := ParseError(inner)
		if e == nil || e.Condition == "" {
			t.Fatalf("ParseError(%q) = %+v", inner, e)
		}
		_ = e.Error()
		if se := ParseStreamError(inner); se == nil || se.Condition == "" {
			t.Fatalf("ParseStreamError(%q) = %+v", inner, se)
		}
	})
}

// FuzzParseJID: what ParseJID accepts is normalised: its Full form parses
// back to the same JID, and its parts are within RFC 7622's bounds.
func FuzzParseJID(f *testing.F) {
	for _, s := range []string{"alice@example.org/laptop", "Example.ORG.", "a@b/c/d@e", "a@[::1]/r", "@x", "a@b/", "ÄLICE@b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		j, err := ParseJID(s)
		if err != nil {
			if len(err.Error()) > 400 { // 64 bytes, quoted, and why
				t.Fatalf("error message of %d bytes", len(err.Error()))
			}
			return
		}
		again, err := ParseJID(j.Full())
		if err != nil || again != j {
			t.Fatalf("ParseJID(%q) = %+v; its Full %q parses as %+v, %v", s, j, j.Full(), again, err)
		}
		if j.Domain == "" || len(j.Local) > 1023 || len(j.Domain) > 1023 || len(j.Resource) > 1023 {
			t.Fatalf("ParseJID(%q) = %+v: parts out of bounds", s, j)
		}
		if full, err := NormalFull(s); err != nil || full != j.Full() {
			t.Fatalf("NormalFull(%q) = %q, %v; want %q", s, full, err, j.Full())
		}
		if bare, err := NormalBare(s); err != nil || bare != j.Bare() {
			t.Fatalf("NormalBare(%q) = %q, %v; want %q", s, bare, err, j.Bare())
		}
		if BareOf(j.Full()) != j.Bare() {
			t.Fatalf("BareOf(%q) = %q, want %q", j.Full(), BareOf(j.Full()), j.Bare())
		}
	})
}

// FuzzParseForm: ParseForm never panics, and a form AppendForm writes with
// any var and value XML can carry reads back the same.
func FuzzParseForm(f *testing.F) {
	f.Add([]byte(`<x xmlns='jabber:x:data' type='result'><field var='pubpresence#status'><value>online</value></field></x>`), "v", "1")
	f.Add([]byte(`<x xmlns="jabber:x:data" type="form"><field var="FORM_TYPE" type="hidden"><value>urn:x</value></field><field var="m"><validate xmlns="http://jabber.org/protocol/xdata-validate"><range max="20"/></validate></field></x>`), "a'b", "<&>")
	f.Add([]byte(`<x xmlns='jabber:x:data'><field var='a'><value>1</value>`), "", "")
	f.Fuzz(func(t *testing.T, b []byte, v, val string) {
		if form, err := ParseForm(b); err == nil {
			_ = form.FormType()
			for _, fd := range form.Fields {
				if got, ok := form.Value(fd.Var); ok != (len(form.Field(fd.Var).Values) > 0) {
					t.Fatalf("Value(%q) = %q, %v", fd.Var, got, ok)
				}
			}
		} else if form != nil {
			t.Fatalf("ParseForm gave a form and %v", err)
		}
		if !carries(v) || !carries(val) {
			return
		}
		form, err := ParseForm(AppendForm(nil, "submit", "urn:t", FieldValue{v, val}))
		if err != nil || form.Type != "submit" || form.FormType() != "urn:t" {
			t.Fatalf("AppendForm(%q, %q) reads back as %+v, %v", v, val, form, err)
		}
		if v == FieldFormType {
			return
		}
		if got, ok := form.Value(v); !ok || got != val {
			t.Fatalf("AppendForm(%q, %q): value reads back as %q, %v", v, val, got, ok)
		}
	})
}

// FuzzParsePrivilege: ParsePrivilege never panics, finds only a privilege
// of the two namespaces, and what it finds, written out again, reads back
// the same.
func FuzzParsePrivilege(f *testing.F) {
	for _, s := range []string{
		"<privilege xmlns='urn:xmpp:privilege:2'><perm access='roster' type='get'/><perm access='presence' type='managed_entity'/></privilege>",
		"<privilege xmlns='urn:xmpp:privilege:1'><perm type='none' access='message'/><perm type='get' access='roster'/><perm type='managed_entity' access='presence'/></privilege>",
		"<privilege xmlns='urn:xmpp:privilege:2'/>",
		"<privilege xmlns='urn:xmpp:privilege:2'><perm access='iq'><namespace ns='jabber:iq:roster' type='get'/></perm><perm access='presence' type='ro&amp;ster'/></privilege>",
		"<privilege xmlns='urn:xmpp:privilege:3'><perm access='presence' type='roster'/></privilege>",
		"<body>x</body><p:privilege xmlns:p='urn:xmpp:privilege:1'><p:perm access='roster' type='both'/></p:privilege>",
		"<privilege xmlns='urn:xmpp:privilege:2'><perm access='presence' type='roster'>",
		"<<<>>>",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, inner []byte) {
		p, ok := ParsePrivilege(inner)
		if !ok {
			if p != (Privilege{}) {
				t.Fatalf("not found, but %+v", p)
			}
			return
		}
		if p.NS != NSPrivilege1 && p.NS != NSPrivilege2 {
			t.Fatalf("namespace %q", p.NS)
		}
		if p.PresenceGranted() != (p.Presence == "managed_entity" || p.Presence == "roster") {
			t.Fatalf("PresenceGranted %v for %q", p.PresenceGranted(), p.Presence)
		}
		if !carries(p.Roster) || !carries(p.Message) || !carries(p.Presence) {
			return
		}
		b := []byte("<privilege xmlns='" + p.NS + "'>")
		for _, perm := range [][2]string{{"roster", p.Roster}, {"message", p.Message}, {"presence", p.Presence}} {
			if perm[1] != "" {
				b = append(b, "<perm access='"+perm[0]+"' type='"...)
				b = xmltext.Append(b, perm[1])
				b = append(b, "'/>"...)
			}
		}
		if p.IQ {
			b = append(b, "<perm access='iq'/>"...)
		}
		b = append(b, "</privilege>"...)
		if back, ok := ParsePrivilege(b); !ok || back != p {
			t.Fatalf("%+v written as %s reads back as %+v, %v", p, b, back, ok)
		}
	})
}
