package admin

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// Answers as captured from Prosody 0.12 and ejabberd 23.01, cut to
// the <command/> element that the IQer returns.
const (
	prosodyOnlineDetails = `<command xmlns='http://jabber.org/protocol/commands' sessionid='c92c9e0e-7a4f-4d0e-9a55-2b1f3c1d2e3f' status='completed' node='http://jabber.org/protocol/admin#get-online-users-list'>
     <x xmlns='jabber:x:data' type='result'>
       <field type='hidden' var='FORM_TYPE'><value>http://jabber.org/protocol/admin</value></field>
       <field type='text-multi' var='onlineuserjids' label='The list of all online users'>
         <value>alice@localhost</value>
         <value> - phone: available(1), IP: [127.0.0.1]</value>
         <value> - laptop: away(5), IP: [127.0.0.1]</value></field></x></command>`

	prosodyOnlineNoDetails = `<command xmlns='http://jabber.org/protocol/commands' sessionid='1ccd1ffb-0000' status='completed' node='http://jabber.org/protocol/admin#get-online-users-list'><x xmlns='jabber:x:data' type='result'><field type='hidden' var='FORM_TYPE'><value>http://jabber.org/protocol/admin</value></field><field type='text-multi' var='onlineuserjids' label='The list of all online users'><value>alice@localhost</value><value>bob@localhost</value></field></x></command>`

	prosodyOnlineMixed = `<command xmlns='http://jabber.org/protocol/commands' status='completed' node='http://jabber.org/protocol/admin#get-online-users-list'><x xmlns='jabber:x:data' type='result'><field type='hidden' var='FORM_TYPE'><value>http://jabber.org/protocol/admin</value></field><field type='text-multi' var='onlineuserjids' label='The list of all online users'>` +
		`<value> - orphan: available(1), IP: [10.0.0.1]</value>` +
		`<value>Bob@LocalHost</value>` +
		`<value> - v6: dnd(0), IP: [::1]</value>` +
		`<value> - fresh: unavailable(-), IP: [::ffff:192.0.2.7]</value>` +
		`<value> - odd: name (x): chat(-3), IP: [&lt;unknown&gt;]</value>` +
		`<value> - Work Laptop: xa(10), IP: [2001:db8::1:2]</value>` +
		`<value> - weird: [invalid!](2), IP: [127.0.0.1]</value>` +
		`<value> - old: away(4)</value>` +
		`<value> - : available(1), IP: [127.0.0.1]</value>` +
		`<value> - garbage</value>` +
		`<value>carol@localhost</value>` +
		`</field></x></command>`

	prosodyOnlineEmpty = `<command xmlns='http://jabber.org/protocol/commands' status='completed' node='http://jabber.org/protocol/admin#get-online-users-list'><x xmlns='jabber:x:data' type='result'><field type='hidden' var='FORM_TYPE'><value>http://jabber.org/protocol/admin</value></field><field type='text-multi' var='onlineuserjids' label='The list of all online users'/></x></command>`

	ejabberdOnline = `<command status="completed" sessionid="2026-11-21T09:04:24.870790Z"
        node="http://jabber.org/protocol/admin#get-online-users-list" xmlns="http://jabber.org/protocol/commands">
     <x type="form" xmlns="jabber:x:data">
       <field var="FORM_TYPE" type="hidden"><value>http://jabber.org/protocol/admin</value></field>
       <field var="onlineuserjids" type="jid-multi" label="The list of all online users">
         <value>alice@localhost</value><value>bob@localhost</value></field></x></command>`

	prosodyForbidden = `<command xmlns='http://jabber.org/protocol/commands' status='canceled' node='http://jabber.org/protocol/admin#get-online-users-list'><note type='error'>You don't have permission to execute this command</note></command>`

	prosodyUserStats = `<command xmlns='http://jabber.org/protocol/commands' sessionid='1ccd1ffb-1111' status='completed'
       node='http://jabber.org/protocol/admin#user-stats'>
     <x xmlns='jabber:x:data' type='result'>
       <field type='hidden' var='FORM_TYPE'><value>http://jabber.org/protocol/admin</value></field>
       <field type='text-multi' var='ipaddresses' label='IP Addresses'><value>127.0.0.1</value><value>127.0.0.1</value></field>
       <field type='text-single' var='rostersize' label='Roster size'><value>0</value></field>
       <field type='text-multi' var='onlineresources' label='Online Resources'><value>phone</value><value>laptop</value></field>
     </x></command>`

	prosodyUserStatsV6 = `<command xmlns='http://jabber.org/protocol/commands' status='completed' node='http://jabber.org/protocol/admin#user-stats'><x xmlns='jabber:x:data' type='result'><field type='hidden' var='FORM_TYPE'><value>http://jabber.org/protocol/admin</value></field><field type='text-multi' var='ipaddresses' label='IP Addresses'><value>::1</value><value>2001:db8::1:2</value></field><field type='text-single' var='rostersize' label='Roster size'><value>1</value></field><field type='text-multi' var='onlineresources' label='Online Resources'><value>a</value><value>b</value></field></x></command>`

	prosodyUserStatsOffline = `<command xmlns='http://jabber.org/protocol/commands' status='completed' node='http://jabber.org/protocol/admin#user-stats'><x xmlns='jabber:x:data' type='result'><field type='hidden' var='FORM_TYPE'><value>http://jabber.org/protocol/admin</value></field><field type='text-multi' var='ipaddresses' label='IP Addresses'/><field type='text-single' var='rostersize' label='Roster size'><value>0</value></field><field type='text-multi' var='onlineresources' label='Online Resources'/></x></command>`

	prosodyUserStatsNoUser = `<command xmlns='http://jabber.org/protocol/commands' sessionid='x' status='completed' node='http://jabber.org/protocol/admin#user-stats'><note type='error'>User does not exist</note></command>`

	ejabberdUserStats = `<command status="completed"
        sessionid="2026-11-21T09:04:24.873002Z" node="http://jabber.org/protocol/admin#user-stats" xmlns="http://jabber.org/protocol/commands">
     <x type="form" xmlns="jabber:x:data">
       <field var="FORM_TYPE" type="hidden"><value>http://jabber.org/protocol/admin</value></field>
       <field var="accountjid" type="jid-single" label="Jabber ID"><value>alice@localhost</value></field>
       <field var="rostersize" type="text-single" label="Roster size"><value>0</value></field>
       <field var="ipaddresses" type="text-multi" label="IP addresses">
         <value>127.0.0.1:53324</value><value>::1:40012</value></field>
       <field var="onlineresources" type="text-multi" label="Resources">
         <value>phone</value><value>home</value></field></x></command>`

	ejabberdUserStatsShort = `<command status="completed" sessionid="2026-11-21T09:04:24.873002Z" node="http://jabber.org/protocol/admin#user-stats" xmlns="http://jabber.org/protocol/commands"><x type="form" xmlns="jabber:x:data"><field var="FORM_TYPE" type="hidden"><value>http://jabber.org/protocol/admin</value></field><field var="accountjid" type="jid-single" label="Jabber ID"><value>alice@localhost</value></field><field var="rostersize" type="text-single" label="Roster size"><value>1</value></field><field var="ipaddresses" type="text-multi" label="IP addresses"><value>127.0.0.1:53862</value></field><field var="onlineresources" type="text-multi" label="Resources"><value>phone</value><value>home</value></field></x></command>`

	ejabberdUserStatsOffline = `<command status="completed" sessionid="2026-11-21T09:04:24.9Z" node="http://jabber.org/protocol/admin#user-stats" xmlns="http://jabber.org/protocol/commands"><x type="form" xmlns="jabber:x:data"><field var="FORM_TYPE" type="hidden"><value>http://jabber.org/protocol/admin</value></field><field var="accountjid" type="jid-single" label="Jabber ID"><value>nobody@localhost</value></field><field var="rostersize" type="text-single" label="Roster size"><value>0</value></field><field var="ipaddresses" type="text-multi" label="IP addresses"/><field var="onlineresources" type="text-multi" label="Resources"/></x></command>`

	// ejabberd with a c2s listener on "::": IPv4 clients appear mapped.
	ejabberdUserStatsMapped = `<command status="completed" node="http://jabber.org/protocol/admin#user-stats" xmlns="http://jabber.org/protocol/commands"><x type="result" xmlns="jabber:x:data"><field var="accountjid" type="jid-single"><value>alice@localhost</value></field><field var="ipaddresses" type="text-multi"><value>::ffff:192.0.2.1:5222</value></field><field var="onlineresources" type="text-multi"><value> phone </value></field></x></command>`
)

func TestParseOnlineUsers(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		users    []string
		sessions []Session
		details  bool
	}{
		{
			name:  "prosody details",
			in:    prosodyOnlineDetails,
			users: []string{"alice@localhost"},
			sessions: []Session{
				{JID: "alice@localhost/phone", Show: "available", Priority: 1, HasPriority: true, IP: "127.0.0.1"},
				{JID: "alice@localhost/laptop", Show: "away", Priority: 5, HasPriority: true, IP: "127.0.0.1"},
			},
			details: true,
		},
		{
			name:  "prosody no details",
			in:    prosodyOnlineNoDetails,
			users: []string{"alice@localhost", "bob@localhost"},
		},
		{
			name:  "prosody odd lines",
			in:    prosodyOnlineMixed,
			users: []string{"bob@localhost", "carol@localhost"},
			sessions: []Session{
				{JID: "bob@localhost/v6", Show: "dnd", Priority: 0, HasPriority: true, IP: "::1"},
				{JID: "bob@localhost/fresh", Show: "unavailable", IP: "192.0.2.7"},
				{JID: "bob@localhost/odd: name (x)", Show: "chat", Priority: -3, HasPriority: true},
				{JID: "bob@localhost/Work Laptop", Show: "xa", Priority: 10, HasPriority: true, IP: "2001:db8::1:2"},
				{JID: "bob@localhost/weird", Priority: 2, HasPriority: true, IP: "127.0.0.1"},
				{JID: "bob@localhost/old", Show: "away", Priority: 4, HasPriority: true},
			},
			details: true,
		},
		{
			name: "nobody online",
			in:   prosodyOnlineEmpty,
		},
		{
			name:  "ejabberd jid-multi",
			in:    ejabberdOnline,
			users: []string{"alice@localhost", "bob@localhost"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			users, sessions, details, err := ParseOnlineUsers([]byte(tt.in))
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if !reflect.DeepEqual(users, tt.users) {
				t.Errorf("users = %q, want %q", users, tt.users)
			}
			if !reflect.DeepEqual(sessions, tt.sessions) {
				t.Errorf("sessions =\n%+v\nwant\n%+v", sessions, tt.sessions)
			}
			if details != tt.details {
				t.Errorf("details = %v, want %v", details, tt.details)
			}
		})
	}
}

func TestParseOnlineUsersErrors(t *testing.T) {
	tests := []struct {
		name, in string
		note     string // want a *CommandError with this note; "" = another error
	}{
		{"note error", prosodyForbidden, "You don't have permission to execute this command"},
		{"canceled without note", `<command xmlns='http://jabber.org/protocol/commands' status='canceled' node='n'/>`, "canceled"},
		{"executing", `<command xmlns='http://jabber.org/protocol/commands' status='executing' sessionid='s' node='n'><x xmlns='jabber:x:data' type='form'/></command>`, ""},
		{"no form", `<command xmlns='http://jabber.org/protocol/commands' status='completed' node='n'/>`, ""},
		{"no field", `<command xmlns='http://jabber.org/protocol/commands' status='completed' node='n'><x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE'><value>x</value></field></x></command>`, ""},
		{"not a command", `<query xmlns='http://jabber.org/protocol/disco#items'/>`, ""},
		{"empty", ``, ""},
		{"broken XML", `<command xmlns='http://jabber.org/protocol/commands'><x`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, _, err := ParseOnlineUsers([]byte(tt.in))
			if err == nil {
				t.Fatal("no error")
			}
			var ce *CommandError
			if got := errors.As(err, &ce); got != (tt.note != "") {
				t.Fatalf("CommandError = %v for %v", got, err)
			}
			if ce != nil && ce.Note != tt.note {
				t.Errorf("note = %q, want %q", ce.Note, tt.note)
			}
		})
	}
}

func TestParseUserStats(t *testing.T) {
	tests := []struct {
		name, in, bare string
		want           []Session
	}{
		{"prosody two resources", prosodyUserStats, "alice@localhost", []Session{
			{JID: "alice@localhost/phone", IP: "127.0.0.1"},
			{JID: "alice@localhost/laptop", IP: "127.0.0.1"},
		}},
		// A Prosody IPv6 address ending in a number stays whole.
		{"prosody ipv6", prosodyUserStatsV6, "Alice@Localhost/ignored", []Session{
			{JID: "alice@localhost/a", IP: "::1"},
			{JID: "alice@localhost/b", IP: "2001:db8::1:2"},
		}},
		{"prosody offline", prosodyUserStatsOffline, "alice@localhost", []Session{}},
		{"ejabberd ip:port", ejabberdUserStats, "alice@localhost", []Session{
			{JID: "alice@localhost/phone", IP: "127.0.0.1"},
			{JID: "alice@localhost/home", IP: "::1"},
		}},
		// One IP dropped by ejabberd: we cannot tell whose, so nobody gets one.
		{"ejabberd shorter ipaddresses", ejabberdUserStatsShort, "alice@localhost", []Session{
			{JID: "alice@localhost/phone"},
			{JID: "alice@localhost/home"},
		}},
		{"ejabberd offline", ejabberdUserStatsOffline, "nobody@localhost", []Session{}},
		{"ejabberd mapped", ejabberdUserStatsMapped, "alice@localhost", []Session{
			{JID: "alice@localhost/phone", IP: "192.0.2.1"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseUserStats([]byte(tt.in), tt.bare)
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestParseUserStatsErrors(t *testing.T) {
	_, err := ParseUserStats([]byte(prosodyUserStatsNoUser), "ghost@localhost")
	var ce *CommandError
	if !errors.As(err, &ce) || ce.Note != "User does not exist" || ce.Node != NodeUserStats {
		t.Errorf("err = %#v, want CommandError(User does not exist)", err)
	}
	if _, err := ParseUserStats([]byte(prosodyUserStats), ""); err == nil {
		t.Error("empty bare JID: no error")
	}
	noRes := strings.Replace(prosodyUserStats, "var='onlineresources'", "var='other'", 1)
	if _, err := ParseUserStats([]byte(noRes), "alice@localhost"); err == nil {
		t.Error("missing onlineresources: no error")
	}
}

func TestParseAddr(t *testing.T) {
	tests := []struct {
		in, want string // want "" = error
	}{
		{"1.2.3.4", "1.2.3.4"},
		{" 127.0.0.1\n", "127.0.0.1"},
		{"::1", "::1"},
		{"::", "::"},
		{"[::1]", "::1"},
		{"[::1]:5222", "::1"},
		{"1.2.3.4:5222", "1.2.3.4"},
		{"127.0.0.1:53324", "127.0.0.1"},
		{"::1:40012", "::1"},
		{"::1:5222", "::1"},
		{"::ffff:1.2.3.4", "1.2.3.4"},
		{"::ffff:1.2.3.4:5222", "1.2.3.4"},
		{"[::ffff:1.2.3.4]:5222", "1.2.3.4"},
		{"fe80::1", "fe80::1"},
		{"fe80::1%eth0:5222", "fe80::1"},
		{"2001:db8::1:5222", "2001:db8::1"}, // ejabberd style: last group is the port
		{"2001:DB8:0:0:0:0:0:1", "2001:db8::1"},
		{"1.2.3.4:0", "1.2.3.4"},
		{"", ""},
		{"   ", ""},
		{"garbage", ""},
		{"1.2.3.4:99999", ""},
		{"1.2.3.4:", ""},
		{"1.2.3.4:port", ""},
		{"[::1", ""},
		{"[::1]:x", ""},
		{"<unknown>", ""},
		{"1.2.3.4.5", ""},
	}
	for _, tt := range tests {
		a, err := ParseAddr(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("ParseAddr(%q) = %v, want error", tt.in, a)
			}
			continue
		}
		if err != nil || a.String() != tt.want {
			t.Errorf("ParseAddr(%q) = %v, %v; want %s", tt.in, a, err, tt.want)
		}
	}
}

func TestParseOnlineResources(t *testing.T) {
	// ejabberd 23.01's answer, inner XML of the result.
	in := `<query node="online users" xmlns="http://jabber.org/protocol/disco#items">
     <item name="alice@localhost" jid="alice@localhost/home"/>
     <item name="alice@localhost" jid="alice@localhost/phone"/>
     <item name="bob@localhost" jid="Bob@Localhost/Laptop"/>
     <item name="bob@localhost" jid="bob@localhost/Laptop"/>
     <item name="carol@localhost" jid="carol@localhost"/></query>`
	got, err := ParseOnlineResources([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"alice@localhost/home", "alice@localhost/phone", "bob@localhost/Laptop"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if _, err := ParseOnlineResources([]byte(prosodyUserStats)); err == nil {
		t.Error("a <command/>: no error")
	}
}

func TestRequests(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"online users one-shot", OnlineUsersRequest(),
			`<command xmlns='http://jabber.org/protocol/commands' node='http://jabber.org/protocol/admin#get-online-users-list' action='execute'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/admin</value></field><field var='max_items'><value>all</value></field><field var='details'><value>1</value></field></x></command>`},
		{"online users execute", OnlineUsersExecuteRequest(),
			`<command xmlns='http://jabber.org/protocol/commands' node='http://jabber.org/protocol/admin#get-online-users-list' action='execute'/>`},
		{"online users complete", OnlineUsersCompleteRequest("c92c9e0e-'&"),
			`<command xmlns='http://jabber.org/protocol/commands' node='http://jabber.org/protocol/admin#get-online-users-list' action='complete' sessionid='c92c9e0e-&#39;&amp;'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/admin</value></field><field var='max_items'><value>all</value></field><field var='details'><value>1</value></field></x></command>`},
		{"user-stats", UserStatsRequest("a<b@localhost"),
			`<command xmlns='http://jabber.org/protocol/commands' node='http://jabber.org/protocol/admin#user-stats' action='execute'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/admin</value></field><field var='accountjid'><value>a&lt;b@localhost</value></field></x></command>`},
		{"online resources", OnlineResourcesRequest(),
			`<query xmlns='http://jabber.org/protocol/disco#items' node='online users'/>`},
	}
	for _, tt := range tests {
		if string(tt.got) != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, tt.got, tt.want)
		}
	}
}
