// Package load drives a real XMPP server the way a crowd of users does: it
// logs many accounts in over c2s, has each one subscribe to the component
// (and, optionally, to a contact), and changes their presence at a given rate
// while observers time what arrives: the live events a pubsub subscriber
// receives, and the presence the server delivers to a subscribed contact.
// It also publishes raw, with nothing else in the way, to measure the
// server's own ceiling.
//
// It is the engine of cmd/pubpresence-load and of the performance tests.
// Every network address it is given must be loopback (CheckLoopback): it
// is a measuring tool, not a way to flood someone else's server.
package load

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pubpresence/pubpresence/internal/c2s"
	"github.com/pubpresence/pubpresence/internal/xmpp"
)

// Bounds on what one run may ask for.
const (
	MaxUsers    = 100000
	MaxDuration = time.Hour
	MaxChanges  = 10_000_000
)

// CheckLoopback returns an error unless addr ("host:port") names a
// loopback address: 127.0.0.0/8, ::1 or "localhost".
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("address %q: not a loopback address (127.0.0.0/8 or ::1); the load tool only drives a local server", addr)
	}
	return nil
}

// FleetConfig says which accounts to log in and whom they subscribe to.
type FleetConfig struct {
	Addr     string   // c2s address, loopback
	Domain   string   // the users' domain
	Password string   // every account's password
	Users    []string // local parts; the accounts must exist
	Resource string   // resource of every session; default "load"
	// Subscribe lists bare JIDs every user pre-approves and subscribes to
	// (the component, a contact): RFC 6121 §3.4, as a client adding a
	// contact does. A contact must do the same towards the users
	// (Observer.Befriend) for presence to flow to it.
	Subscribe []string
	// Contacts, when set, spreads the users over contacts: user i also
	// pre-approves and subscribes to Contacts[i % len(Contacts)] (see
	// BefriendEvery). One contact of 10 000 users costs Prosody more per
	// login than the logins themselves.
	Contacts []string
	Logins   int           // logins at once; default 32
	Timeout  time.Duration // bound on one login; default 30s
}

// Fleet is a set of logged-in users. Every session's inbound stanzas are
// read and dropped, so that no server queue fills on their account.
type Fleet struct {
	clients []*c2s.Client
	wg      sync.WaitGroup
	parts   []*Fleet // Join's: whose readers each waits for too
}

// Join returns one fleet of the sessions of fleets, in order (e.g. one
// logged in on each node of a cluster). Close and Abort of the joined
// fleet end them all; the parts are not to be used on their own then.
func Join(fleets ...*Fleet) *Fleet {
	j := &Fleet{parts: fleets}
	for _, f := range fleets {
		j.clients = append(j.clients, f.clients...)
	}
	return j
}

// Login logs every user of cfg in, subscribes each to cfg.Subscribe, and
// sends no presence yet (Available does). It fails on the first login that
// fails, after logging out those that succeeded.
func Login(ctx context.Context, cfg FleetConfig) (*Fleet, error) {
	if err := CheckLoopback(cfg.Addr); err != nil {
		return nil, err
	}
	if len(cfg.Users) == 0 || len(cfg.Users) > MaxUsers {
		return nil, fmt.Errorf("users: %d, want 1 to %d", len(cfg.Users), MaxUsers)
	}
	if cfg.Resource == "" {
		cfg.Resource = "load"
	}
	if cfg.Logins <= 0 {
		cfg.Logins = 32
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	f := &Fleet{clients: make([]*c2s.Client, len(cfg.Users))}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
		sem   = make(chan struct{}, cfg.Logins)
	)
	for i, u := range cfg.Users {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			to := cfg.Subscribe
			if len(cfg.Contacts) > 0 {
				to = append(slices.Clip(to), cfg.Contacts[i%len(cfg.Contacts)])
			}
			cl, err := login(ctx, cfg, u, to)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if first == nil {
					first = err
					cancel()
				}
				return
			}
			f.clients[i] = cl
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	for _, cl := range f.clients {
		if cl != nil {
			f.wg.Add(1)
			go func() { defer f.wg.Done(); discard(cl) }()
		}
	}
	if first != nil {
		f.Abort()
		return nil, first
	}
	return f, nil
}

func login(ctx context.Context, cfg FleetConfig, local string, subscribe []string) (*c2s.Client, error) {
	lctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	cl, err := c2s.Dial(lctx, c2s.Config{Addr: cfg.Addr, JID: local + "@" + cfg.Domain,
		Password: cfg.Password, Resource: cfg.Resource, Timeout: cfg.Timeout})
	if err != nil {
		return nil, fmt.Errorf("login %s@%s: %w", local, cfg.Domain, err)
	}
	for _, to := range subscribe {
		if err := cl.ApproveAndSubscribe(to); err != nil {
			_ = cl.Abort()
			return nil, fmt.Errorf("%s@%s subscribe to %s: %w", local, cfg.Domain, to, err)
		}
	}
	return cl, nil
}

// discard reads cl's stanzas until the session ends.
func discard(cl *c2s.Client) {
	for range cl.Stanzas() {
	}
}

// Ended returns the sessions that have ended, by full JID, with why (nil
// when closed by Close or Abort). It is for telling why a run lost some.
func (f *Fleet) Ended() map[string]error {
	ended := make(map[string]error)
	for _, cl := range f.clients {
		if cl == nil {
			continue
		}
		select {
		case <-cl.Done():
			ended[cl.JID()] = cl.Err()
		default:
		}
	}
	return ended
}

// Len returns the number of sessions.
func (f *Fleet) Len() int { return len(f.clients) }

// Client returns session i.
func (f *Fleet) Client(i int) *c2s.Client { return f.clients[i] }

// Available sends plain available presence with status text for every
// session.
func (f *Fleet) Available(text string) error {
	var errs []error
	for _, cl := range f.clients {
		if err := cl.Presence("", text, 0); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", cl.JID(), err))
		}
	}
	return errors.Join(errs...)
}

// Close logs every session out politely (unavailable presence, stream
// close), 64 at a time.
func (f *Fleet) Close() {
	f.each(func(cl *c2s.Client) { _ = cl.Close() })
}

// Abort drops every connection at once, as crashed clients would.
func (f *Fleet) Abort() {
	f.each(func(cl *c2s.Client) { _ = cl.Abort() })
}

func (f *Fleet) each(do func(*c2s.Client)) {
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for _, cl := range f.clients {
		if cl == nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() { defer func() { <-sem; wg.Done() }(); do(cl) }()
	}
	wg.Wait()
	f.wg.Wait()
	for _, p := range f.parts {
		p.wg.Wait()
	}
}

// Befriend makes cl a contact of every JID in users: it sends its own
// available presence (a session that has sent none receives no presence,
// RFC 6121 §4.2), pre-approves their subscription and asks for one, so
// that, once each user does the same towards cl (FleetConfig.Subscribe),
// the server delivers their presence to cl (RFC 6121 §3).
func Befriend(cl *c2s.Client, users []string) error {
	if err := cl.Presence("", "", 0); err != nil {
		return fmt.Errorf("%s: initial presence: %w", cl.Bare(), err)
	}
	for _, u := range users {
		if err := cl.ApproveAndSubscribe(u); err != nil {
			return fmt.Errorf("%s befriends %s: %w", cl.Bare(), u, err)
		}
	}
	return nil
}

// BefriendEvery has contact j of contacts befriend the users i with
// i % len(contacts) == j (FleetConfig.Contacts), and returns once the
// server has worked through it: each contact's ping is answered after its
// subscriptions (10 000 of them kept Prosody from reading a new client's
// stream header for over 10 s).
func BefriendEvery(ctx context.Context, contacts []*c2s.Client, users []string) error {
	for j, cl := range contacts {
		var mine []string
		for i := j; i < len(users); i += len(contacts) {
			mine = append(mine, users[i])
		}
		if err := Befriend(cl, mine); err != nil {
			return err
		}
	}
	for _, cl := range contacts {
		_, domain, _ := strings.Cut(cl.Bare(), "@")
		_, err := cl.IQ(ctx, "get", domain, []byte("<ping xmlns='urn:xmpp:ping'/>"))
		var se *xmpp.StanzaError
		if err != nil && !errors.As(err, &se) { // an error answer is an answer too
			return fmt.Errorf("%s: ping after the subscriptions: %w", cl.Bare(), err)
		}
	}
	return nil
}

// Names returns n local parts, prefix000, prefix001, … (as the tests name
// their users).
func Names(prefix string, n int) []string {
	u := make([]string, n)
	for i := range u {
		u[i] = fmt.Sprintf("%s%03d", prefix, i)
	}
	return u
}
