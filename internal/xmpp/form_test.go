package xmpp

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/pubpresence/pubpresence/internal/xmltext"
)

func TestAppendForm(t *testing.T) {
	got := string(AppendForm(nil, "submit", NSPubsubNodeConfig, FieldValue{"pubsub#max_items", "max"}, FieldValue{"pubsub#title", "a<'&b"}))
	want := "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#node_config</value></field>" +
		"<field var='pubsub#max_items'><value>max</value></field><field var='pubsub#title'><value>a&lt;&#39;&amp;b</value></field></x>"
	if got != want {
		t.Errorf("AppendForm:\n got %s\nwant %s", got, want)
	}
	got = string(AppendForm([]byte("<item>"), "result", "", FieldValue{"pubpresence#status", "online"}))
	want = "<item><x xmlns='jabber:x:data' type='result'><field var='pubpresence#status'><value>online</value></field></x>"
	if got != want {
		t.Errorf("AppendForm without FORM_TYPE:\n got %s\nwant %s", got, want)
	}
}

func TestParseForm(t *testing.T) {
	const ejabberd = `<!-- c --> <x type="form" xmlns="jabber:x:data"><field var="FORM_TYPE" type="hidden"><value>http://jabber.org/protocol/admin</value></field>` +
		`<field var="accountjid" type="jid-single" label="Jabber ID"><value>alice@localhost</value></field>` +
		`<field var="ipaddresses" type="text-multi"><value>::1</value><value>10.0.0.1</value></field>` +
		`<field var="pubsub#max_items"><validate xmlns="http://jabber.org/protocol/xdata-validate" datatype="xs:integer"><range min="1" max="256"/></validate><value>10</value></field>` +
		`<field var="empty"/><other xmlns="urn:x"><field var="hidden"><value>no</value></field></other></x><trailing junk`
	f, err := ParseForm([]byte(ejabberd))
	if err != nil {
		t.Fatal(err)
	}
	if f.Type != "form" || f.FormType() != NSAdmin || len(f.Fields) != 5 {
		t.Errorf("form = %+v", f)
	}
	if v, ok := f.Value("accountjid"); !ok || v != "alice@localhost" {
		t.Errorf("accountjid = %q, %v", v, ok)
	}
	if ips := f.Field("ipaddresses"); ips == nil || strings.Join(ips.Values, ",") != "::1,10.0.0.1" || ips.Type != "text-multi" {
		t.Errorf("ipaddresses = %+v", ips)
	}
	if m := f.Field("pubsub#max_items"); m == nil || m.Range.Max != "256" || m.Range.Min != "1" {
		t.Errorf("max_items = %+v", m)
	}
	if v, ok := f.Value("empty"); ok || v != "" {
		t.Errorf("empty = %q, %v", v, ok)
	}
	if f.Field("hidden") != nil || f.Field("nope") != nil {
		t.Error("a field outside the form, or an absent one, was found")
	}

	for _, bad := range []string{
		``,
		`  `,
		`text <x xmlns='jabber:x:data'/>`,
		`<x/>`,
		`<x xmlns='urn:other'/>`,
		`<user xmlns='urn:pubpresence:0'/>`,
		`<x xmlns='jabber:x:data'><field var='a'><value>1</value>`,
		`<x xmlns='jabber:x:data'><field var='a'><value>&bad;</value></field></x>`,
	} {
		if f, err := ParseForm([]byte(bad)); err == nil || f != nil {
			t.Errorf("ParseForm(%q) = %+v, %v; want an error", bad, f, err)
		}
	}
	// A field in another namespace is not one of the form's.
	f, err = ParseForm([]byte(`<x xmlns='jabber:x:data'><field xmlns='urn:x' var='a'><value>1</value></field></x>`))
	if err != nil || len(f.Fields) != 0 {
		t.Errorf("foreign field: %+v, %v", f, err)
	}
}

// carries reports whether XML text can carry s unchanged (xmltext.Append
// turns the rest into U+FFFD, and the reader turns \r into \n).
func carries(s string) bool {
	if !utf8.ValidString(s) || strings.ContainsRune(s, '\r') {
		return false
	}
	for _, r := range s {
		if !xmltext.IsChar(r) {
			return false
		}
	}
	return true
}
