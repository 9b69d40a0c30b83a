package service

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pubpresence/pubpresence/config"
	"github.com/pubpresence/pubpresence/metrics"
	"github.com/pubpresence/pubpresence/status"
)

// The grants of the two servers, as measured (docs/tracking.md).
const (
	ejabberdGrant = "<privilege xmlns='urn:xmpp:privilege:1'><perm type='none' access='message'/><perm type='get' access='roster'/><perm type='managed_entity' access='presence'/></privilege>"
	prosodyGrant  = "<privilege xmlns='urn:xmpp:privilege:2'><perm access='roster' type='get'/><perm access='presence' type='managed_entity'/></privilege>"
)

// trackedService runs a service against f with tracking settings, and
// waits until it is online.
func trackedService(t *testing.T, f *fakeServer, edit func(*config.Config)) *runningService {
	t.Helper()
	return trackedServiceOf(t, f, edit, f)
}

// trackedServiceOf is trackedService for a service of several fakes (the
// nodes of a cluster): online may be published through any of them.
func trackedServiceOf(t *testing.T, f *fakeServer, edit func(*config.Config), fakes ...*fakeServer) *runningService {
	t.Helper()
	cfg := f.config()
	edit(cfg)
	rs := runService(t, cfg, zerolog.New(io.Discard))
	f.waitFor("online", func() bool {
		var online int64
		for _, g := range fakes {
			online += g.online.Load()
		}
		return online > 0 && rs.st.Phase() == status.Online
	})
	return rs
}

// TestPrivilegedTracking: with either server's grant, the stream tracks
// by privileged presence: a user's presence is published without making
// the user a subscriber (no presence of the component goes to them, at
// online or after), and the sessions poll drops a connection the server
// no longer lists (the fake lists none), with its offline live event.
func TestPrivilegedTracking(t *testing.T) {
	for _, grant := range []string{ejabberdGrant, prosodyGrant} {
		ns := grant[strings.Index(grant, "urn:"):strings.Index(grant, "'>")]
		t.Run(ns, func(t *testing.T) {
			f := newFakeServer(t)
			f.grant = grant
			rs := trackedService(t, f, func(c *config.Config) {
				c.Tracking.Mode = config.TrackPrivileged
				c.Tracking.SessionsPoll = config.Duration{Duration: time.Second}
			})
			if v := rs.metric(t, "pubpresence_tracking", "way", "privileged"); v != 1 {
				t.Fatalf("pubpresence_tracking{way=privileged} = %v, want 1", v)
			}
			sent := f.presences.Load()
			f.injectPresence(7, "r", "away", 1, 0)
			f.waitFor("the publishes", func() bool { return f.live.Load() == 1 && f.actual.Load() == 1 })
			f.waitFor("the poll's retract", func() bool { return f.retracts.Load() == 1 && f.live.Load() == 2 })
			if n := rs.metric(t, "pubpresence_tracked_connections"); n != 0 {
				t.Errorf("tracked connections after the poll = %v, want 0", n)
			}
			if n := rs.metric(t, "pubpresence_syncs_total", "kind", "poll", "result", "ok"); n < 1 {
				t.Errorf("polls = %v, want at least 1", n)
			}
			if n := f.presences.Load(); n != sent {
				t.Errorf("the component sent %d presences to a user who only has privileged presence", n-sent)
			}
		})
	}
}

// TestRosterWhenNotGranted: without a grant, auto tracks the roster way
// (no poll: the connection stays), and roster mode ignores a grant.
func TestRosterWhenNotGranted(t *testing.T) {
	for _, tc := range []struct{ name, grant, mode string }{
		{"auto without grant", "", config.TrackAuto},
		{"roster with grant", ejabberdGrant, config.TrackRoster},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeServer(t)
			f.grant = tc.grant
			rs := trackedService(t, f, func(c *config.Config) {
				c.Tracking.Mode = tc.mode
				c.Tracking.SessionsPoll = config.Duration{Duration: time.Second}
			})
			if v := rs.metric(t, "pubpresence_tracking", "way", "roster"); v != 1 {
				t.Fatalf("pubpresence_tracking{way=roster} = %v, want 1", v)
			}
			f.injectPresence(7, "r", "away", 1, 0)
			f.waitFor("the publishes", func() bool { return f.live.Load() == 1 && f.actual.Load() == 1 })
			time.Sleep(1500 * time.Millisecond) // a poll would have run
			if n := f.retracts.Load(); n != 0 {
				t.Errorf("%d retracts: a poll ran in the roster way", n)
			}
		})
	}
}

// TestPrivilegedRequiredNotGranted: tracking.mode privileged and no grant:
// the problem is on /readyz's tracker and the service never goes online.
func TestPrivilegedRequiredNotGranted(t *testing.T) {
	f := newFakeServer(t)
	st := &status.Tracker{}
	cfg := f.config()
	cfg.Tracking.Mode = config.TrackPrivileged
	svc := New(cfg, zerolog.New(io.Discard), metrics.New("test"), st)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	defer func() { cancel(); <-done }()
	f.waitFor("the problem", func() bool { return st.Problem() != "" })
	if !strings.Contains(st.Problem(), "privileged presence not granted") {
		t.Errorf("problem = %q", st.Problem())
	}
	if st.Ready() || f.online.Load() != 0 {
		t.Errorf("ready %v, online published %d times without the grant", st.Ready(), f.online.Load())
	}
}

// TestExcluded: a user or a domain in tracking.exclude is never published
// and only counted.
func TestExcluded(t *testing.T) {
	f := newFakeServer(t)
	rs := trackedService(t, f, func(c *config.Config) {
		c.Tracking.Exclude = []string{"u000001@localhost"}
	})
	f.injectPresence(1, "r", "away", 1, 0)
	f.injectPresence(2, "r", "away", 1, 0)
	f.waitFor("the publishes of the other user", func() bool { return f.live.Load() == 1 && f.actual.Load() == 1 })
	if n := rs.metric(t, "pubpresence_excluded_total"); n != 1 {
		t.Errorf("excluded = %v, want 1", n)
	}
	if n := rs.metric(t, "pubpresence_tracked_users"); n != 1 {
		t.Errorf("tracked users = %v, want 1", n)
	}
}

// TestDropLookups: once the session list gave the addresses, the queued
// lookups of users with no connection waiting are dropped.
func TestDropLookups(t *testing.T) {
	f := newFakeServer(t)
	ss := newSession(New(f.config(), zerolog.New(io.Discard), nil, nil), nil)
	a := &ss.addrs
	a.parked["a@localhost/r"] = nil
	for _, bare := range []string{"a@localhost", "b@localhost", "c@localhost"} {
		a.queue = append(a.queue, bare)
		a.pending[bare] = true
	}
	ss.dropLookups()
	if len(a.queue) != 1 || a.queue[0] != "a@localhost" || len(a.pending) != 1 || !a.pending["a@localhost"] {
		t.Errorf("queue %q, pending %v; want only a@localhost", a.queue, a.pending)
	}
}

// TestPrivilegedAPI: with ejabberd's grant and ejabberd.api_url, the
// sessions and their presence come from connected_users_info: a session
// online before the connect is published without any presence from it,
// one without presence is not; when the API fails, the admin commands
// list the sessions and the service still goes online.
func TestPrivilegedAPI(t *testing.T) {
	var fail atomic.Bool
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() || r.URL.Path != "/api/connected_users_info" {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, `[{"jid":"u000005@localhost/r","connection":"c2s","ip":"10.0.0.5","port":1,"priority":2,"node":"n","uptime":9,"status":"away","resource":"r","statustext":"lunch"},`+
			`{"jid":"u000006@localhost/r","connection":"c2s","ip":"10.0.0.6","port":1,"priority":-1,"node":"n","uptime":9,"status":"unavailable","resource":"r","statustext":""}]`)
	}))
	defer api.Close()
	for _, failing := range []bool{false, true} {
		t.Run(fmt.Sprintf("failing=%v", failing), func(t *testing.T) {
			fail.Store(failing)
			f := newFakeServer(t)
			f.grant = ejabberdGrant
			f.keepLast.Store(true)
			lists := f.lists.Load()
			rs := trackedService(t, f, func(c *config.Config) {
				c.Tracking.Mode = config.TrackPrivileged
				c.Tracking.SessionsPoll = config.Duration{}
				c.Ejabberd.APIURL = api.URL + "/api"
			})
			if failing {
				if f.lists.Load() == lists {
					t.Error("the API failed and the admin commands were not asked")
				}
				if n := f.actual.Load(); n != 0 {
					t.Errorf("%d publishes on actual with no session known", n)
				}
				return
			}
			if f.lists.Load() != lists {
				t.Error("the admin commands were asked although the API answered")
			}
			f.waitFor("the API's session on actual", func() bool { return f.actual.Load() == 1 })
			f.lmu.Lock()
			got := string(f.lastActual)
			f.lmu.Unlock()
			for _, want := range []string{"<item id='u000005@localhost/r'>", "status='away'", "ip='10.0.0.5'", "priority='2'", "<text>lunch</text>"} {
				if !strings.Contains(got, want) {
					t.Errorf("actual publish %s lacks %s", got, want)
				}
			}
			if n := rs.metric(t, "pubpresence_tracked_connections"); n != 1 {
				t.Errorf("tracked connections = %v, want 1 (the session without presence is not)", n)
			}
		})
	}
}

// TestPrivilegedGrantLost: ejabberd drops the grant silently when another
// connection with the name closes. Each poll of its API then finds a change
// the push never brought (here the API's user changes show at every call
// and nothing is pushed): after missedPolls polls in a row the stream
// reconnects to be granted again. A poll that finds nothing missed starts
// the count again.
func TestPrivilegedGrantLost(t *testing.T) {
	var calls atomic.Int64
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		show := []string{"away", "dnd"}[calls.Add(1)%2]
		_, _ = io.WriteString(w, `[{"jid":"u000005@localhost/r","connection":"c2s","ip":"10.0.0.5","port":1,"priority":0,"node":"n","uptime":9,"status":"`+show+`","resource":"r","statustext":""}]`)
	}))
	defer api.Close()
	f := newFakeServer(t)
	f.grant = ejabberdGrant
	rs := trackedService(t, f, func(c *config.Config) {
		c.Tracking.Mode = config.TrackPrivileged
		c.Tracking.SessionsPoll = config.Duration{Duration: time.Second}
		c.Ejabberd.APIURL = api.URL
	})
	f.waitFor("a reconnect for the lost grant", func() bool { return rs.metric(t, "pubpresence_reconnects_total") >= 1 })
	if n := calls.Load(); n < 1+missedPolls {
		t.Errorf("reconnected after %d API calls, want at least the initial one and %d polls", n, missedPolls)
	}
	f.waitFor("online again", func() bool { return rs.st.Phase() == status.Online && f.online.Load() >= 2 })
}

// TestPushMissedCount: the count of polls in a row that missed pushes.
func TestPushMissedCount(t *testing.T) {
	f := newFakeServer(t)
	ss := newSession(New(f.config(), zerolog.New(io.Discard), nil, nil), nil)
	for i, missed := range []int{1, 1, 0, 1, 1} {
		ss.pushMissed(missed)
		if ss.track.end != nil {
			t.Fatalf("poll %d: the stream ends after fewer than %d polls in a row", i, missedPolls)
		}
	}
	ss.pushMissed(2)
	if ss.track.end == nil {
		t.Fatalf("%d polls in a row missed pushes and the stream stays", missedPolls)
	}
}

// TestExcludeReload: a reload that excludes a tracked user retracts their
// connection from actual with no live event, and their presence is dropped
// from then on; one that includes them again tracks their next presence.
func TestExcludeReload(t *testing.T) {
	f := newFakeServer(t)
	rs := trackedService(t, f, func(c *config.Config) {})
	f.injectPresence(1, "r", "away", 1, 0)
	f.injectPresence(2, "r", "away", 1, 0)
	f.waitFor("both published", func() bool { return f.live.Load() == 2 && f.actual.Load() == 2 })
	next := *rs.svc.cfg()
	next.Tracking.Exclude = []string{"u000001@localhost"}
	if applied, _ := rs.svc.Reload(&next); !slices.Contains(applied, "tracking.exclude") {
		t.Fatalf("tracking.exclude not applied: %q", applied)
	}
	f.waitFor("the retract", func() bool { return f.retracts.Load() == 1 })
	if n := f.live.Load(); n != 2 {
		t.Errorf("%d live events after the exclusion, want still 2 (no offline event)", n)
	}
	f.injectPresence(1, "r", "dnd", 2, 0)
	f.injectPresence(2, "r", "dnd", 2, 0)
	f.waitFor("the other user's change", func() bool { return f.live.Load() == 3 && f.actual.Load() == 3 })
	if n := rs.metric(t, "pubpresence_tracked_connections"); n != 1 {
		t.Errorf("tracked connections = %v, want 1", n)
	}
	back := *rs.svc.cfg()
	back.Tracking.Exclude = []string{}
	rs.svc.Reload(&back)
	f.injectPresence(1, "r", "xa", 3, 0)
	f.waitFor("the user tracked again", func() bool { return f.live.Load() == 4 && f.actual.Load() == 4 })
}

// TestPollDue: after a poll that took T, the next waits (1/pollShare-1)×T.
func TestPollDue(t *testing.T) {
	var ss session
	now := time.Unix(1000, 0)
	if !ss.pollDue(now) {
		t.Fatal("the first poll is not due")
	}
	ss.pollDone(time.Second, now)
	for _, c := range []struct {
		after time.Duration
		due   bool
	}{{time.Second, false}, {8 * time.Second, false}, {9 * time.Second, true}, {time.Minute, true}} {
		if got := ss.pollDue(now.Add(c.after)); got != c.due {
			t.Errorf("%v after a poll of 1s: due %v, want %v", c.after, got, c.due)
		}
	}
	ss.pollDone(time.Millisecond, now)
	if !ss.pollDue(now.Add(10 * time.Millisecond)) {
		t.Error("a quick poll holds back the next tick")
	}
}

// TestSlowListSpacesPolls: a session list that takes the server 400 ms
// spaces the polls of a 1 s sessions_poll to one every 4 s or more, so
// that the list takes at most a tenth of the server's time.
func TestSlowListSpacesPolls(t *testing.T) {
	f := newFakeServer(t)
	f.grant = prosodyGrant
	f.listDelay = 400 * time.Millisecond
	rs := trackedService(t, f, func(c *config.Config) {
		c.Tracking.Mode = config.TrackPrivileged
		c.Tracking.SessionsPoll = config.Duration{Duration: time.Second}
	})
	f.waitFor("a poll", func() bool { return rs.metric(t, "pubpresence_syncs_total", "kind", "poll", "result", "ok") >= 1 })
	first := f.lists.Load()
	time.Sleep(6 * time.Second)
	// Polled at every tick, 6 s would hold about 4 more lists (1.4 s each).
	if n := f.lists.Load() - first; n < 1 || n > 2 {
		t.Errorf("%d session lists in 6 s after a poll that took 400 ms, want 1 or 2", n)
	}
}
