package admin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pubpresence/pubpresence/internal/xmpp"
)

// IQer sends one IQ request and returns the inner XML of the result (the
// children of <iq type='result'>, e.g. the <command …>…</command> element),
// or an error. An <iq type='error'> answer comes back as a
// *component.StanzaError.
type IQer interface {
	IQ(ctx context.Context, typ, to string, payload []byte) ([]byte, error)
}

// Client runs admin commands with bounded concurrency. The component sends
// them as its bare domain; the IQer takes care of from.
type Client struct {
	IQ          IQer
	Concurrency int // user-stats in flight at once; <1 means 1

	// plainList is set once the server refused the one-shot form and
	// completed the plain execute (ejabberd): later lists skip the form.
	plainList atomic.Bool
}

// Stats counts the work of one OnlineSessions call.
type Stats struct {
	Users           int // users in get-online-users-list
	Sessions        int // sessions returned
	UserStatsCalls  int // user-stats requests sent
	UserStatsErrors int // user-stats requests that failed
}

// OnlineUsers runs get-online-users-list on domain and parses the answer
// (see ParseOnlineUsers). It first sends the one-shot form with details
// (OnlineUsersRequest), which Prosody completes at once. ejabberd answers a
// submitted form with service-unavailable, so on that error it executes the
// command with no form, which ejabberd completes at once; if a server answers
// that with "executing" instead, the session is completed with the form.
// Missing admin rights come back as forbidden from both servers and are
// returned, never retried. Once the plain execute has worked, the Client
// sends it first, saving a round trip per list. Errors read
// "get-online-users-list on <domain>: …".
func (c *Client) OnlineUsers(ctx context.Context, domain string) (users []string, sessions []Session, details bool, err error) {
	users, sessions, details, err = c.onlineUsers(ctx, domain)
	if err != nil {
		return nil, nil, false, fmt.Errorf("get-online-users-list on %s: %w", domain, err)
	}
	return users, sessions, details, nil
}

func (c *Client) onlineUsers(ctx context.Context, domain string) ([]string, []Session, bool, error) {
	var res []byte
	var err error = &xmpp.StanzaError{Type: "cancel", Condition: xmpp.ErrServiceUnavailable}
	if !c.plainList.Load() {
		res, err = c.IQ.IQ(ctx, "set", domain, OnlineUsersRequest())
	}
	if errors.Is(err, xmpp.ErrServiceUnavailable) && ctx.Err() == nil {
		res, err = c.IQ.IQ(ctx, "set", domain, OnlineUsersExecuteRequest())
		if err == nil {
			c.plainList.Store(true)
			var cmd *command
			if cmd, err = decodeCommand(res); err == nil && cmd.Status == "executing" && cmd.SessionID != "" {
				res, err = c.IQ.IQ(ctx, "set", domain, OnlineUsersCompleteRequest(cmd.SessionID))
			}
		}
	}
	if err != nil {
		return nil, nil, false, err
	}
	return ParseOnlineUsers(res)
}

// UserStats runs user-stats for the account bare (a full JID is accepted; the
// resource is ignored) on its domain and parses the answer (see
// ParseUserStats). Errors read "user-stats for <bare>: …".
func (c *Client) UserStats(ctx context.Context, bare string) ([]Session, error) {
	j, err := xmpp.ParseJID(strings.TrimSpace(bare))
	if err != nil {
		return nil, fmt.Errorf("user-stats for %q: not a JID", bare)
	}
	b, _ := xmpp.NormalBare(strings.TrimSpace(bare)) // no copy when normal
	res, err := c.IQ.IQ(ctx, "set", j.Domain, UserStatsRequest(b))
	if err != nil {
		return nil, fmt.Errorf("user-stats for %s: %w", b, err)
	}
	s, err := ParseUserStats(res, b)
	if err != nil {
		return nil, fmt.Errorf("user-stats for %s: %w", b, err)
	}
	return s, nil
}

// OnlineResources lists the full JID of every session on domain through
// ejabberd's disco#items node "online users" (see ParseOnlineResources). It
// has no IPs and also lists zombie sessions (a stream-management session
// waiting to be resumed, or a frozen client). Prosody has no such node.
func (c *Client) OnlineResources(ctx context.Context, domain string) ([]string, error) {
	res, err := c.IQ.IQ(ctx, "get", domain, OnlineResourcesRequest())
	if err != nil {
		return nil, fmt.Errorf("disco#items %q on %s: %w", NodeOnlineUsers, domain, err)
	}
	jids, err := ParseOnlineResources(res)
	if err != nil {
		return nil, fmt.Errorf("disco#items %q on %s: %w", NodeOnlineUsers, domain, err)
	}
	return jids, nil
}

// OnlineSessions returns every online session of domain. It runs
// get-online-users-list (see OnlineUsers); sessions come from Prosody's
// details, and every listed user with no details session (all of them on
// ejabberd) gets a user-stats, with at most Concurrency in flight. Sessions
// are in the order of the user list.
//
// A user-stats that fails for one user is not fatal: the error is counted in
// Stats.UserStatsErrors and the user's sessions are looked up once, for all
// such users together, in the "online users" disco node (ejabberd) and
// returned with unknown IP; when that lookup fails too, the user is skipped.
// An error of get-online-users-list itself (forbidden, service-unavailable,
// …) is returned.
//
// ctx bounds the whole call. If it ends before every user-stats has run,
// OnlineSessions returns the sessions it has, with an error wrapping
// ctx.Err(); users whose user-stats was never sent are not counted.
func (c *Client) OnlineSessions(ctx context.Context, domain string) ([]Session, Stats, error) {
	users, detailed, _, err := c.OnlineUsers(ctx, domain)
	if err != nil {
		return nil, Stats{}, err
	}
	st := Stats{Users: len(users)}

	byUser := make(map[string][]Session, len(users))
	for _, s := range detailed {
		b := xmpp.BareOf(s.JID)
		byUser[b] = append(byUser[b], s)
	}
	var todo []string
	for _, u := range users {
		if len(byUser[u]) == 0 {
			todo = append(todo, u)
		}
	}

	results, errs, calls := c.userStatsAll(ctx, todo)
	st.UserStatsCalls = calls
	var failed map[string]bool
	for i, u := range todo {
		switch {
		case errs[i] != nil:
			st.UserStatsErrors++
			if ctx.Err() == nil {
				if failed == nil {
					failed = make(map[string]bool)
				}
				failed[u] = true
			}
		case results[i] != nil:
			byUser[u] = results[i]
		}
	}
	if len(failed) > 0 && ctx.Err() == nil {
		// Best effort: an error here only means the users stay skipped.
		if jids, err := c.OnlineResources(ctx, domain); err == nil {
			for _, j := range jids {
				b := xmpp.BareOf(j)
				if failed[b] {
					byUser[b] = append(byUser[b], Session{JID: j})
				}
			}
		}
	}

	var out []Session
	for _, u := range users {
		out = append(out, byUser[u]...)
	}
	st.Sessions = len(out)
	if err := ctx.Err(); err != nil {
		return out, st, fmt.Errorf("online sessions on %s: %w", domain, err)
	}
	return out, st, nil
}

// userStatsAll runs UserStats for every user with at most c.Concurrency in
// flight. results[i] is nil when the user is offline, or the call failed
// (errs[i] is set) or was never made because ctx ended (errs[i] is nil).
// calls is the number of calls made.
func (c *Client) userStatsAll(ctx context.Context, users []string) (results [][]Session, errs []error, calls int) {
	results = make([][]Session, len(users))
	errs = make([]error, len(users))
	if len(users) == 0 {
		return results, errs, 0
	}
	n := c.Concurrency
	if n < 1 {
		n = 1
	}
	if n > len(users) {
		n = len(users)
	}
	next := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if ctx.Err() != nil {
					continue // not sent, not counted
				}
				s, err := c.UserStats(ctx, users[i])
				if len(s) == 0 {
					s = nil
				}
				results[i], errs[i] = s, err
				mu.Lock()
				calls++
				mu.Unlock()
			}
		}()
	}
feed:
	for i := range users {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return results, errs, calls
}
