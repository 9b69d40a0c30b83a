package component

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pubpresence/pubpresence/internal/xmpp"
)

// Group makes several streams one component: the Conns dialled with the
// same Group (Config.Group) share one IQ table, so that the answer to a
// request sent on any of them is matched to it on whichever of them it
// arrives. An ejabberd cluster needs this: a user's answer comes back on
// the component's stream to that user's node, not on the one that sent
// the request (docs/ejabberd-cluster.md). Pool makes and uses one.
//
// The ids of the group's requests carry its instance and the time the
// group was made, instead of the stream's start: a stream that reconnects
// keeps both, so a late answer to a request of an earlier stream is still
// known as this instance's, never as foreign (Config.Foreign).
//
// When a Conn of the group ends, the requests it sent end with an error
// wrapping ErrClosed, as on a Conn of its own, even when their answers
// might still come on another stream: the caller learns at once that the
// stream is gone, and may send again on another one. Such a late answer
// is then counted as unknown (Stats.UnknownResults), not as foreign. The
// requests of the other streams stay in flight.
//
// A Group has no goroutine and nothing to close: once its Conns have
// ended, it holds no request.
type Group struct {
	name     string
	instance string
	stamp    int64 // UnixNano of NewGroup, in the ids
	calls    *xmpp.Calls[[]byte]
}

// NewGroup returns a group for the component name. instance names this
// process in the ids of the group's requests; "" draws a new one
// (NewInstance).
func NewGroup(name, instance string) *Group {
	if instance == "" {
		instance = NewInstance()
	}
	stamp := time.Now().UnixNano()
	return &Group{name: name, instance: instance, stamp: stamp, calls: newCalls(name, instance, stamp)}
}

// newCalls returns an IQ table whose ids are instance, ".", stamp in base
// 36, "-" and a sequence number (see Conn.foreignID), and which takes an
// answer from the address the request went to, or with no from for a
// request to the component's own server (name).
func newCalls(name, instance string, stamp int64) *xmpp.Calls[[]byte] {
	return xmpp.NewCalls[[]byte](instance+"."+strconv.FormatInt(stamp, 36)+"-",
		func(to, from string) bool { return strings.EqualFold(from, to) || from == "" && to == name })
}

// Name returns the component's JID the group was made for.
func (g *Group) Name() string { return g.name }

// Instance returns the instance in the ids of the group's requests.
func (g *Group) Instance() string { return g.instance }

// Pending returns how many requests of the group's streams are waiting for
// their answers.
func (g *Group) Pending() int { return g.calls.Pending() }

// LastAnswer returns when an answer to one of the group's requests last
// came, on any stream (the zero time before the first): a server that
// still answers is busy, not gone (xmpp.Patience).
func (g *Group) LastAnswer() time.Time { return g.calls.LastAnswer() }

// Overtaken returns when the latest-sent of the group's requests that has
// been answered was sent (xmpp.Calls.Overtaken).
func (g *Group) Overtaken() time.Time { return g.calls.Overtaken() }

// check reports a Config that cannot join g.
func (g *Group) check(cfg *Config) error {
	if cfg.Name != g.name {
		return fmt.Errorf("component: Config.Name %q is not the Group's %q", cfg.Name, g.name)
	}
	if cfg.Instance != "" && cfg.Instance != g.instance {
		return fmt.Errorf("component: Config.Instance %q is not the Group's %q", cfg.Instance, g.instance)
	}
	return nil
}
