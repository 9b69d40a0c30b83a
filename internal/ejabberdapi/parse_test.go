package ejabberdapi

import (
	"fmt"
	"strings"
	"testing"
)

// Bodies of connected_users_info as ejabberd 23.01 sent them
// (TestIntegrationConnectedUsersInfo, logged with -v): every presence state
// the integration test sets up, and no session at all.
const (
	ejabberdStates = `[{"jid":"silent@localhost/desk","connection":"c2s","ip":"127.0.0.1","port":36680,"priority":-1,"node":"nonode@nohost","uptime":0,"status":"unavailable","resource":"desk","statustext":""},{"jid":"away@localhost/desk","connection":"c2s","ip":"127.0.0.1","port":36708,"priority":2,"node":"nonode@nohost","uptime":0,"status":"away","resource":"desk","statustext":"lunch"},{"jid":"dnd@localhost/desk","connection":"c2s","ip":"127.0.0.1","port":36728,"priority":4,"node":"nonode@nohost","uptime":0,"status":"dnd","resource":"desk","statustext":"meeting"},{"jid":"chat@localhost/desk","connection":"c2s","ip":"127.0.0.1","port":36694,"priority":1,"node":"nonode@nohost","uptime":0,"status":"chat","resource":"desk","statustext":"chatty"},{"jid":"negative@localhost/desk","connection":"c2s","ip":"127.0.0.1","port":36736,"priority":-5,"node":"nonode@nohost","uptime":0,"status":"available","resource":"desk","statustext":""},{"jid":"text@localhost/desk","connection":"c2s","ip":"127.0.0.1","port":36746,"priority":0,"node":"nonode@nohost","uptime":0,"status":"away","resource":"desk","statustext":"Grüße, 日本\nsecond line <&>"},{"jid":"xa@localhost/desk","connection":"c2s","ip":"127.0.0.1","port":36722,"priority":3,"node":"nonode@nohost","uptime":0,"status":"xa","resource":"desk","statustext":"holiday"},{"jid":"six@localhost/desk","connection":"c2s","ip":"::1","port":57626,"priority":0,"node":"nonode@nohost","uptime":0,"status":"available","resource":"desk","statustext":"over IPv6"},{"jid":"gone@localhost/desk","connection":"c2s","ip":"127.0.0.1","port":36748,"priority":-1,"node":"nonode@nohost","uptime":0,"status":"unavailable","resource":"desk","statustext":""},{"jid":"mixed@localhost/MiXed Res","connection":"c2s","ip":"127.0.0.1","port":36764,"priority":0,"node":"nonode@nohost","uptime":0,"status":"available","resource":"MiXed Res","statustext":""},{"jid":"plain@localhost/desk","connection":"c2s","ip":"127.0.0.1","port":36690,"priority":0,"node":"nonode@nohost","uptime":0,"status":"available","resource":"desk","statustext":""}]`
	ejabberdEmpty  = `[]`
)

func TestParseConnectedUsersInfo(t *testing.T) {
	got, err := ParseConnectedUsersInfo([]byte(ejabberdStates))
	if err != nil {
		t.Fatal(err)
	}
	want := []Session{
		{JID: "silent@localhost/desk", Show: "", Priority: -1, IP: "127.0.0.1"},
		{JID: "away@localhost/desk", Show: "away", Text: "lunch", Priority: 2, IP: "127.0.0.1"},
		{JID: "dnd@localhost/desk", Show: "dnd", Text: "meeting", Priority: 4, IP: "127.0.0.1"},
		{JID: "chat@localhost/desk", Show: "chat", Text: "chatty", Priority: 1, IP: "127.0.0.1"},
		{JID: "negative@localhost/desk", Show: "online", Priority: -5, IP: "127.0.0.1"},
		{JID: "text@localhost/desk", Show: "away", Text: "Grüße, 日本\nsecond line <&>", IP: "127.0.0.1"},
		{JID: "xa@localhost/desk", Show: "xa", Text: "holiday", Priority: 3, IP: "127.0.0.1"},
		{JID: "six@localhost/desk", Show: "online", Text: "over IPv6", IP: "::1"},
		{JID: "gone@localhost/desk", Show: "", Priority: -1, IP: "127.0.0.1"},
		{JID: "mixed@localhost/MiXed Res", Show: "online", IP: "127.0.0.1"},
		{JID: "plain@localhost/desk", Show: "online", IP: "127.0.0.1"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d sessions, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("session %d: got %+v, want %+v", i, got[i], want[i])
		}
	}

	empty, err := ParseConnectedUsersInfo([]byte(ejabberdEmpty))
	if err != nil || empty == nil || len(empty) != 0 {
		t.Errorf("[]: got %#v, %v; want an empty list", empty, err)
	}
}

// session is one element of the array with the given fields replaced.
func session(fields string) string {
	s := `{"jid":"alice@localhost/web","connection":"c2s","ip":"127.0.0.1","port":37334,"priority":3,` +
		`"node":"nonode@nohost","uptime":1,"status":"away","resource":"web","statustext":"lunch"`
	if fields != "" {
		s += "," + fields // a repeated key: the last one wins in encoding/json
	}
	return "[" + s + "}]"
}

func TestParseConnectedUsersInfoFields(t *testing.T) {
	tests := []struct {
		name, body string
		want       Session
	}{
		{"as ejabberd writes it", session(""), Session{JID: "alice@localhost/web", Show: "away", Text: "lunch", Priority: 3, IP: "127.0.0.1"}},
		{"bare part lower-cased, resource kept", session(`"jid":"Alice@LocalHost./Web Tab"`),
			Session{JID: "alice@localhost/Web Tab", Show: "away", Text: "lunch", Priority: 3, IP: "127.0.0.1"}},
		{"IPv4-mapped IPv6 unmapped", session(`"ip":"::ffff:192.0.2.7"`),
			Session{JID: "alice@localhost/web", Show: "away", Text: "lunch", Priority: 3, IP: "192.0.2.7"}},
		{"IPv6 canonical", session(`"ip":"2001:DB8:0:0::1:2"`),
			Session{JID: "alice@localhost/web", Show: "away", Text: "lunch", Priority: 3, IP: "2001:db8::1:2"}},
		{"unknown IP", session(`"ip":"undefined"`),
			Session{JID: "alice@localhost/web", Show: "away", Text: "lunch", Priority: 3}},
		{"available", session(`"status":"available","statustext":""`),
			Session{JID: "alice@localhost/web", Show: "online", Priority: 3, IP: "127.0.0.1"}},
		{"session died while listed", session(`"status":"offline","statustext":""`),
			Session{JID: "alice@localhost/web", Priority: 3, IP: "127.0.0.1"}},
		{"no priority", `[{"jid":"a@b/c","status":"dnd"}]`, Session{JID: "a@b/c", Show: "dnd"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseConnectedUsersInfo([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0] != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseConnectedUsersInfoErrors(t *testing.T) {
	tests := []struct{ name, body, want string }{
		{"empty", ``, "not a JSON array"},
		{"null", `null`, "got null"},
		{"object", `{"status":"error","code":32,"message":"no"}`, "not a JSON array"},
		{"two arrays", `[][]`, "data after"},
		{"no jid", `[{"status":"away"}]`, `session 0: no "jid"`},
		{"bare jid", session(`"jid":"alice@localhost"`), "want user@domain/resource"},
		{"domain jid", session(`"jid":"localhost/r"`), "want user@domain/resource"},
		{"bad jid", session(`"jid":"a b@localhost/r"`), "forbidden character"},
		{"no status", `[{"jid":"a@b/c"}]`, `no "status"`},
		{"unknown status", session(`"status":"busy"`), `unknown status "busy"`},
		{"priority not a number", session(`"priority":"1"`), "not a JSON array"},
		{"second session bad", "[" + strings.Trim(session(""), "[]") + `,{"jid":"x"}]`, "session 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseConnectedUsersInfo([]byte(tt.body))
			if err == nil || !strings.Contains(err.Error(), tt.want) || got != nil {
				t.Errorf("got %v, %v; want nil and an error containing %q", got, err, tt.want)
			}
		})
	}
}

func BenchmarkParseConnectedUsersInfo(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("[")
	for i := range 1000 {
		if i > 0 {
			sb.WriteString(",")
		}
		fmt.Fprintf(&sb, `{"jid":"u%03d@localhost/load","connection":"c2s","ip":"127.0.0.1","port":%d,"priority":0,`+
			`"node":"nonode@nohost","uptime":12,"status":"available","resource":"load","statustext":"benchmark"}`, i, 40000+i)
	}
	sb.WriteString("]")
	body := []byte(sb.String())
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := ParseConnectedUsersInfo(body); err != nil {
			b.Fatal(err)
		}
	}
}
