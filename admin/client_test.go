package admin

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/component"
	"github.com/pubpresence/pubpresence/internal/xmpp"
)

// fakeIQ answers IQs from a function and records them. It is a fake on
// purpose: the Client is pure request/response logic.
type fakeIQ struct {
	answer func(ctx context.Context, typ, to string, payload []byte) ([]byte, error)

	mu   sync.Mutex
	sent []string // "typ to payload"
}

func (f *fakeIQ) IQ(ctx context.Context, typ, to string, payload []byte) ([]byte, error) {
	f.mu.Lock()
	f.sent = append(f.sent, typ+" "+to+" "+string(payload))
	f.mu.Unlock()
	return f.answer(ctx, typ, to, payload)
}

func (f *fakeIQ) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.sent...)
}

// onlineList is an ejabberd get-online-users-list answer for users.
func onlineList(users ...string) []byte {
	var b strings.Builder
	b.WriteString(`<command xmlns="http://jabber.org/protocol/commands" status="completed" node="` + NodeOnlineUsersList + `"><x type="form" xmlns="jabber:x:data"><field var="onlineuserjids" type="jid-multi">`)
	for _, u := range users {
		b.WriteString("<value>" + u + "</value>")
	}
	b.WriteString("</field></x></command>")
	return []byte(b.String())
}

// userStats is an ejabberd user-stats answer for bare, with one session
// "res" at ip:port 10.0.0.1:5000.
func userStats(bare string) []byte {
	return []byte(`<command xmlns="http://jabber.org/protocol/commands" status="completed" node="` + NodeUserStats + `"><x type="form" xmlns="jabber:x:data"><field var="accountjid"><value>` + bare + `</value></field><field var="ipaddresses"><value>10.0.0.1:5000</value></field><field var="onlineresources"><value>res</value></field></x></command>`)
}

// accountOf returns the accountjid of a user-stats request.
func accountOf(payload []byte) string {
	s := string(payload)
	i := strings.Index(s, "<field var='accountjid'><value>")
	if i < 0 {
		return ""
	}
	s = s[i+len("<field var='accountjid'><value>"):]
	return s[:strings.Index(s, "<")]
}

var (
	errServiceUnavailable = &component.StanzaError{Type: "cancel", Condition: xmpp.ErrServiceUnavailable}
	errForbidden          = &component.StanzaError{Type: "auth", Condition: xmpp.ErrForbidden, Text: "Access denied by service policy"}
)

// ejabberd answers like ejabberd 23.01: a submitted form to
// get-online-users-list is service-unavailable, the plain execute completes.
func ejabberd(users []string, stats func(ctx context.Context, bare string) ([]byte, error)) func(context.Context, string, string, []byte) ([]byte, error) {
	return func(ctx context.Context, typ, to string, payload []byte) ([]byte, error) {
		p := string(payload)
		switch {
		case strings.Contains(p, NodeOnlineUsersList) && strings.Contains(p, "<x "):
			return nil, errServiceUnavailable
		case strings.Contains(p, NodeOnlineUsersList):
			return onlineList(users...), nil
		case strings.Contains(p, NodeUserStats):
			return stats(ctx, accountOf(payload))
		case strings.Contains(p, NodeOnlineUsers):
			return nil, errors.New("unexpected disco")
		}
		return nil, fmt.Errorf("unexpected request %s", p)
	}
}

func TestOnlineSessionsProsodyDetails(t *testing.T) {
	f := &fakeIQ{answer: func(ctx context.Context, typ, to string, payload []byte) ([]byte, error) {
		if typ != "set" || to != "localhost" || string(payload) != string(OnlineUsersRequest()) {
			return nil, fmt.Errorf("unexpected %s %s %s", typ, to, payload)
		}
		return []byte(prosodyOnlineDetails), nil
	}}
	c := &Client{IQ: f, Concurrency: 4}
	got, st, err := c.OnlineSessions(context.Background(), "localhost")
	if err != nil {
		t.Fatal(err)
	}
	want := []Session{
		{JID: "alice@localhost/phone", Show: "available", Priority: 1, HasPriority: true, IP: "127.0.0.1"},
		{JID: "alice@localhost/laptop", Show: "away", Priority: 5, HasPriority: true, IP: "127.0.0.1"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("sessions = %+v, want %+v", got, want)
	}
	if st != (Stats{Users: 1, Sessions: 2}) {
		t.Errorf("stats = %+v", st)
	}
	if n := len(f.requests()); n != 1 {
		t.Errorf("%d requests, want 1 (one-shot, no user-stats)", n)
	}
}

func TestOnlineSessionsBoundedConcurrency(t *testing.T) {
	const users, limit = 40, 3
	var names []string
	for i := range users {
		names = append(names, fmt.Sprintf("u%02d@localhost", i))
	}
	var inFlight, maxInFlight atomic.Int32
	f := &fakeIQ{answer: ejabberd(names, func(ctx context.Context, bare string) ([]byte, error) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := maxInFlight.Load()
			if n <= m || maxInFlight.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(2 * time.Millisecond)
		if bare == "u07@localhost" {
			return nil, errors.New("boom") // one failing user is not fatal
		}
		return userStats(bare), nil
	})}
	c := &Client{IQ: f, Concurrency: limit}
	got, st, err := c.OnlineSessions(context.Background(), "localhost")
	if err != nil {
		t.Fatal(err)
	}
	if m := maxInFlight.Load(); m > limit || m < 2 {
		t.Errorf("max in flight = %d, want 2..%d", m, limit)
	}
	want := Stats{Users: users, Sessions: users - 1, UserStatsCalls: users, UserStatsErrors: 1}
	if st != want {
		t.Errorf("stats = %+v, want %+v", st, want)
	}
	if len(got) != users-1 {
		t.Fatalf("%d sessions, want %d", len(got), users-1)
	}
	for i, s := range got { // in list order, u07 skipped
		j := i
		if i >= 7 {
			j++
		}
		if w := (Session{JID: fmt.Sprintf("u%02d@localhost/res", j), IP: "10.0.0.1"}); s != w {
			t.Errorf("session %d = %+v, want %+v", i, s, w)
		}
	}
}

func TestOnlineSessionsConcurrencyDefault(t *testing.T) {
	var inFlight, maxInFlight atomic.Int32
	f := &fakeIQ{answer: ejabberd([]string{"a@localhost", "b@localhost", "c@localhost"}, func(ctx context.Context, bare string) ([]byte, error) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		if n > maxInFlight.Load() {
			maxInFlight.Store(n)
		}
		time.Sleep(time.Millisecond)
		return userStats(bare), nil
	})}
	c := &Client{IQ: f} // Concurrency 0 means 1
	_, st, err := c.OnlineSessions(context.Background(), "localhost")
	if err != nil || st.Sessions != 3 {
		t.Fatalf("stats %+v, err %v", st, err)
	}
	if m := maxInFlight.Load(); m != 1 {
		t.Errorf("max in flight = %d, want 1", m)
	}
}

func TestOnlineSessionsFailedUserFromDisco(t *testing.T) {
	base := ejabberd([]string{"alice@localhost", "bob@localhost"}, func(ctx context.Context, bare string) ([]byte, error) {
		if bare == "bob@localhost" {
			return nil, &component.StanzaError{Type: "wait", Condition: xmpp.ErrResourceConstraint}
		}
		return userStats(bare), nil
	})
	f := &fakeIQ{answer: func(ctx context.Context, typ, to string, payload []byte) ([]byte, error) {
		if typ == "get" && string(payload) == string(OnlineResourcesRequest()) {
			return []byte(`<query xmlns='http://jabber.org/protocol/disco#items' node='online users'><item jid='alice@localhost/res'/><item jid='bob@localhost/laptop'/><item jid='bob@localhost/phone'/></query>`), nil
		}
		return base(ctx, typ, to, payload)
	}}
	got, st, err := (&Client{IQ: f, Concurrency: 2}).OnlineSessions(context.Background(), "localhost")
	if err != nil {
		t.Fatal(err)
	}
	want := []Session{
		{JID: "alice@localhost/res", IP: "10.0.0.1"},
		{JID: "bob@localhost/laptop"},
		{JID: "bob@localhost/phone"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("sessions = %+v, want %+v", got, want)
	}
	if st != (Stats{Users: 2, Sessions: 3, UserStatsCalls: 2, UserStatsErrors: 1}) {
		t.Errorf("stats = %+v", st)
	}
}

func TestOnlineSessionsEjabberdRequests(t *testing.T) {
	f := &fakeIQ{answer: ejabberd([]string{"alice@localhost"}, func(ctx context.Context, bare string) ([]byte, error) {
		return []byte(ejabberdUserStats), nil
	})}
	got, _, err := (&Client{IQ: f}).OnlineSessions(context.Background(), "localhost")
	if err != nil {
		t.Fatal(err)
	}
	want := []Session{{JID: "alice@localhost/phone", IP: "127.0.0.1"}, {JID: "alice@localhost/home", IP: "::1"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("sessions = %+v, want %+v", got, want)
	}
	wantReq := []string{
		"set localhost " + string(OnlineUsersRequest()),
		"set localhost " + string(OnlineUsersExecuteRequest()),
		"set localhost " + string(UserStatsRequest("alice@localhost")),
	}
	if r := f.requests(); !reflect.DeepEqual(r, wantReq) {
		t.Errorf("requests =\n%s\nwant\n%s", strings.Join(r, "\n"), strings.Join(wantReq, "\n"))
	}
}

// TestOnlineSessionsRemembersPlainExecute: once ejabberd has refused the
// form, the next list goes straight to the plain execute.
func TestOnlineSessionsRemembersPlainExecute(t *testing.T) {
	f := &fakeIQ{answer: ejabberd([]string{"alice@localhost"}, func(ctx context.Context, bare string) ([]byte, error) {
		return []byte(ejabberdUserStats), nil
	})}
	c := &Client{IQ: f}
	for range 2 {
		if _, _, err := c.OnlineSessions(context.Background(), "localhost"); err != nil {
			t.Fatal(err)
		}
	}
	forms := 0
	for _, r := range f.requests() {
		if r == "set localhost "+string(OnlineUsersRequest()) {
			forms++
		}
	}
	if forms != 1 {
		t.Errorf("the refused form was sent %d times over two lists, want 1:\n%s", forms, strings.Join(f.requests(), "\n"))
	}
	// Prosody completes the form: it keeps being sent.
	p := &fakeIQ{answer: func(ctx context.Context, typ, to string, payload []byte) ([]byte, error) {
		if strings.Contains(string(payload), NodeOnlineUsersList) {
			return onlineList(), nil
		}
		return nil, fmt.Errorf("unexpected request %s", payload)
	}}
	pc := &Client{IQ: p}
	for range 2 {
		if _, _, err := pc.OnlineSessions(context.Background(), "localhost"); err != nil {
			t.Fatal(err)
		}
	}
	if r := p.requests(); len(r) != 2 || r[1] != "set localhost "+string(OnlineUsersRequest()) {
		t.Errorf("Prosody-like server: requests %q, want the form twice", r)
	}
}

func TestOnlineUsersExecutingIsCompleted(t *testing.T) {
	// A server that refuses the one-shot form and answers the plain execute
	// with a form gets the form completed in its session.
	f := &fakeIQ{answer: func(ctx context.Context, typ, to string, payload []byte) ([]byte, error) {
		switch string(payload) {
		case string(OnlineUsersRequest()):
			return nil, errServiceUnavailable
		case string(OnlineUsersExecuteRequest()):
			return []byte(`<command xmlns='http://jabber.org/protocol/commands' sessionid='s1' status='executing' node='` + NodeOnlineUsersList + `'><x xmlns='jabber:x:data' type='form'/></command>`), nil
		case string(OnlineUsersCompleteRequest("s1")):
			return []byte(prosodyOnlineDetails), nil
		}
		return nil, fmt.Errorf("unexpected %s", payload)
	}}
	users, sessions, details, err := (&Client{IQ: f}).OnlineUsers(context.Background(), "localhost")
	if err != nil || !details || len(users) != 1 || len(sessions) != 2 {
		t.Errorf("users %q sessions %d details %v err %v", users, len(sessions), details, err)
	}
}

func TestOnlineSessionsListErrors(t *testing.T) {
	tests := []struct {
		name    string
		answers []error // for the requests in order; nil = not expected
		cond    xmpp.Condition
		nreq    int
	}{
		{"forbidden is not retried", []error{errForbidden}, xmpp.ErrForbidden, 1},
		{"service-unavailable twice", []error{errServiceUnavailable, errServiceUnavailable}, xmpp.ErrServiceUnavailable, 2},
		{"forbidden on retry", []error{errServiceUnavailable, errForbidden}, xmpp.ErrForbidden, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int32
			f := &fakeIQ{answer: func(ctx context.Context, typ, to string, payload []byte) ([]byte, error) {
				i := int(n.Add(1)) - 1
				if i >= len(tt.answers) {
					return nil, errors.New("too many requests")
				}
				return nil, tt.answers[i]
			}}
			_, _, err := (&Client{IQ: f}).OnlineSessions(context.Background(), "localhost")
			if !errors.Is(err, tt.cond) {
				t.Errorf("err = %v, want condition %s", err, tt.cond)
			}
			if err == nil || !strings.HasPrefix(err.Error(), "get-online-users-list on localhost: ") {
				t.Errorf("err = %v, want it wrapped", err)
			}
			if got := len(f.requests()); got != tt.nreq {
				t.Errorf("%d requests, want %d", got, tt.nreq)
			}
		})
	}
	// A command error (Prosody's canceled + note) is returned too.
	f := &fakeIQ{answer: func(context.Context, string, string, []byte) ([]byte, error) {
		return []byte(prosodyForbidden), nil
	}}
	_, _, err := (&Client{IQ: f}).OnlineSessions(context.Background(), "localhost")
	var ce *CommandError
	if !errors.As(err, &ce) {
		t.Errorf("err = %v, want *CommandError", err)
	}
}

func TestOnlineSessionsContextEnds(t *testing.T) {
	var names []string
	for i := range 20 {
		names = append(names, fmt.Sprintf("u%02d@localhost", i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var calls atomic.Int32
	f := &fakeIQ{answer: ejabberd(names, func(ctx context.Context, bare string) ([]byte, error) {
		if calls.Add(1) == 5 {
			cancel()
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return userStats(bare), nil
	})}
	got, st, err := (&Client{IQ: f, Concurrency: 1}).OnlineSessions(ctx, "localhost")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if len(got) != 4 || st.Sessions != 4 || st.UserStatsCalls < 5 || st.UserStatsCalls > 6 {
		t.Errorf("%d sessions, stats %+v; want the 4 done before the cancel", len(got), st)
	}
	for _, r := range f.requests() {
		if strings.Contains(r, NodeOnlineUsers+"'") {
			t.Errorf("disco fallback after cancel: %s", r)
		}
	}
}

func TestUserStats(t *testing.T) {
	f := &fakeIQ{answer: func(ctx context.Context, typ, to string, payload []byte) ([]byte, error) {
		if typ != "set" || to != "localhost" || string(payload) != string(UserStatsRequest("alice@localhost")) {
			return nil, fmt.Errorf("unexpected %s %s %s", typ, to, payload)
		}
		return []byte(prosodyUserStats), nil
	}}
	got, err := (&Client{IQ: f}).UserStats(context.Background(), "Alice@LOCALHOST/phone")
	if err != nil || len(got) != 2 || got[0].JID != "alice@localhost/phone" {
		t.Errorf("got %+v, %v", got, err)
	}
	f.answer = func(context.Context, string, string, []byte) ([]byte, error) {
		return []byte(prosodyUserStatsNoUser), nil
	}
	_, err = (&Client{IQ: f}).UserStats(context.Background(), "ghost@localhost")
	var ce *CommandError
	if !errors.As(err, &ce) || !strings.HasPrefix(err.Error(), "user-stats for ghost@localhost: ") {
		t.Errorf("err = %v", err)
	}
	if _, err := (&Client{IQ: f}).UserStats(context.Background(), " "); err == nil {
		t.Error("empty JID: no error")
	}
}
