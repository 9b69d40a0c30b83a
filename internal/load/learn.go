package load

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pubpresence/pubpresence/admin"
	"github.com/pubpresence/pubpresence/component"
	"github.com/pubpresence/pubpresence/internal/xmpp"
	"github.com/pubpresence/pubpresence/pubsub"
)

// LearnWay is how a raw learner has the server tell it the presence of
// the sessions online: the three ways a warm start of the service uses
// (docs/tracking.md).
type LearnWay uint8

const (
	// LearnProbe lists the sessions with admin commands (as
	// admin.Client.OnlineSessions: one get-online-users-list, and on
	// ejabberd one user-stats per user) and probes every listed user: the
	// roster way.
	LearnProbe LearnWay = iota
	// LearnPush waits for the presence the server pushes after the
	// handshake: privileged presence on Prosody.
	LearnPush
	// LearnAPI reads every session's presence with ejabberd's HTTP API
	// (connected_users_info): privileged presence on ejabberd.
	LearnAPI
)

func (w LearnWay) String() string {
	switch w {
	case LearnProbe:
		return "list+probe"
	case LearnPush:
		return "push"
	case LearnAPI:
		return "api"
	}
	return fmt.Sprint("way", uint8(w))
}

// LearnConfig says how a raw learner connects, and what it must learn.
type LearnConfig struct {
	Addr   string // component address, loopback
	Name   string // component JID
	Secret string
	Domain string // the users' domain
	Way    LearnWay
	// API (LearnAPI) reads every session from ejabberd's HTTP API and
	// returns the bare JID of each session that has available presence
	// (the caller's ejabberdapi.Client.ConnectedUsersInfo: this package
	// does not import it, whose own tests import this one), and how many
	// sessions were listed.
	API func(ctx context.Context) (present []string, listed int, err error)
	// Want is how many sessions it must learn the presence of; it ends
	// when it has (LearnAPI: when the one answer is in).
	Want int
	// Users, when set, are the bare JIDs whose sessions count; others'
	// presence is ignored (an observer of the test, say).
	Users []string
	// Concurrency is the user-stats in flight (LearnProbe on ejabberd);
	// default 32, as the service's sync.admin_concurrency.
	Concurrency int
	// Grace is LearnProbe's wait for answers as the service waits
	// (sync.probe_grace): a listed user who has not answered when none
	// came for Grace is taken as one who never will (no subscription).
	// LearnReport.Settled is when that rule ends the wait.
	Grace   time.Duration
	Timeout time.Duration // the whole run; default 5 minutes
	// Service and Node, when set: once learned, fetch every item of that
	// node (what a start must read besides the presence) and time it.
	Service, Node string
}

// LearnReport is how a raw learner's run went.
type LearnReport struct {
	Listed  int           // sessions the server listed (LearnProbe, LearnAPI)
	Probed  int           // users probed (LearnProbe)
	Learned int           // sessions whose available presence came
	Listing time.Duration // dial → session list in (LearnProbe, LearnAPI)
	Took    time.Duration // dial → the Want-th presence learned
	// Settled (LearnProbe with Grace) is dial → every probed user
	// answered, or Grace passed with no answer: when a component that
	// does not know Want is done.
	Settled time.Duration
	Items   int           // items of Node
	Fetch   time.Duration // the fetch of Node alone
}

// Learn is the server's own time for what a warm start of the service
// must have the server do: it connects as the component and learns the
// presence of cfg.Want sessions by cfg.Way, with no state, no nodes and
// no publishing. Its time counts the dial, as the service's start does.
// The service must be stopped: the learner takes its name.
func Learn(ctx context.Context, cfg LearnConfig) (LearnReport, error) {
	if err := CheckLoopback(cfg.Addr); err != nil {
		return LearnReport{}, err
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 32
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	var rep LearnReport
	start := time.Now()
	conn, err := component.Dial(ctx, component.Config{Address: cfg.Addr, Name: cfg.Name, Secret: cfg.Secret})
	if err != nil {
		return rep, fmt.Errorf("raw learner: %w", err)
	}
	defer conn.Close()

	// Every available presence from a user of the domain counts once per
	// session; probed (when set) limits it to the users asked.
	var only map[string]bool
	if len(cfg.Users) > 0 {
		only = make(map[string]bool, len(cfg.Users))
		for _, u := range cfg.Users {
			only[u] = true
		}
	}
	var (
		mu      sync.Mutex
		probed  map[string]bool
		learned = make(map[string]bool)
		answers = make(map[string]bool) // probed users who answered
		last    time.Time               // the last answer
		done    = make(chan struct{})
		doneAt  time.Time
		closed  bool
	)
	go func() {
		for st := range conn.Inbound() {
			if st.Name != "presence" || st.Type != "" {
				continue
			}
			j, err := xmpp.ParseJID(st.From)
			if err != nil || j.Domain != cfg.Domain || j.Resource == "" {
				continue
			}
			mu.Lock()
			if probed[j.Bare()] { // any user asked, counted or not
				answers[j.Bare()], last = true, time.Now()
			}
			if (probed == nil || probed[j.Bare()]) && (only == nil || only[j.Bare()]) && !learned[st.From] {
				learned[st.From] = true
				if len(learned) == cfg.Want && cfg.Way != LearnAPI && !closed {
					doneAt, closed = time.Now(), true
					close(done)
				}
			}
			mu.Unlock()
		}
	}()

	switch cfg.Way {
	case LearnAPI:
		if cfg.API == nil {
			return rep, errors.New("raw learner: LearnAPI without API")
		}
		present, listed, err := cfg.API(ctx)
		if err != nil {
			return rep, fmt.Errorf("raw learner: %w", err)
		}
		rep.Took = time.Since(start)
		rep.Listing = rep.Took
		rep.Listed = listed
		for _, bare := range present {
			if only == nil || only[bare] {
				rep.Learned++
			}
		}
		if rep.Learned < cfg.Want {
			return rep, fmt.Errorf("raw learner: the API told %d sessions' presence, want %d", rep.Learned, cfg.Want)
		}
		return rep, fetchNode(ctx, conn, cfg, &rep)
	case LearnProbe:
		sessions, _, err := (&admin.Client{IQ: conn, Concurrency: cfg.Concurrency}).OnlineSessions(ctx, cfg.Domain)
		if err != nil {
			return rep, fmt.Errorf("raw learner: %w", err)
		}
		rep.Listing = time.Since(start)
		rep.Listed = len(sessions)
		users := make(map[string]bool)
		for _, s := range sessions {
			users[xmpp.BareOf(s.JID)] = true
		}
		mu.Lock()
		probed = users
		for jid := range learned { // pushed before the list came: not asked
			if !users[xmpp.BareOf(jid)] {
				delete(learned, jid)
			}
		}
		mu.Unlock()
		rep.Probed = len(users)
		for u := range users {
			if err := conn.SendPresence(ctx, u, "probe", "", ""); err != nil {
				return rep, fmt.Errorf("raw learner: probe %s: %w", u, err)
			}
		}
		if cfg.Grace > 0 {
			sent := time.Now()
			for {
				mu.Lock()
				answered, quiet := len(answers) == rep.Probed, last
				mu.Unlock()
				if quiet.Before(sent) {
					quiet = sent
				}
				if answered || time.Since(quiet) >= cfg.Grace {
					rep.Settled = time.Since(start)
					break
				}
				select {
				case <-time.After(time.Millisecond):
				case <-ctx.Done():
					return rep, fmt.Errorf("raw learner: %w", ctx.Err())
				}
			}
		}
	case LearnPush:
	default:
		return rep, fmt.Errorf("raw learner: unknown way %v", cfg.Way)
	}
	select {
	case <-done:
		mu.Lock()
		rep.Took, rep.Learned = doneAt.Sub(start), len(learned)
		mu.Unlock()
		return rep, fetchNode(ctx, conn, cfg, &rep)
	case <-ctx.Done():
		mu.Lock()
		rep.Learned = len(learned)
		mu.Unlock()
		return rep, fmt.Errorf("raw learner: learned %d of %d sessions: %w", rep.Learned, cfg.Want, ctx.Err())
	}
}

// fetchNode fetches cfg.Node's items, when set, into rep.
func fetchNode(ctx context.Context, conn *component.Conn, cfg LearnConfig, rep *LearnReport) error {
	if cfg.Node == "" {
		return nil
	}
	start := time.Now()
	items, err := pubsub.Items(ctx, conn, cfg.Service, cfg.Node)
	rep.Fetch, rep.Items = time.Since(start), len(items)
	if err != nil {
		return fmt.Errorf("raw learner: fetch %s: %w", cfg.Node, err)
	}
	return nil
}
