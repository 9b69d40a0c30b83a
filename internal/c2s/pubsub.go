package c2s

import (
	"context"
	"strconv"
	"strings"

	"github.com/pubpresence/pubpresence/internal/xmpp"
	"github.com/pubpresence/pubpresence/pubsub"
)

// Subscribe subscribes the bound full JID to node on the pubsub service.
// A subscription left "pending" or "unconfigured" is an error.
func (c *Client) Subscribe(ctx context.Context, service, node string) error {
	return pubsub.Subscribe(ctx, c, service, node, c.jid)
}

// Unsubscribe removes the bound full JID's subscription to node.
func (c *Client) Unsubscribe(ctx context.Context, service, node string) error {
	return pubsub.Unsubscribe(ctx, c, service, node, c.jid)
}

// Items fetches every item of node that the service returns in one answer,
// oldest first (the order both Prosody and ejabberd use).
func (c *Client) Items(ctx context.Context, service, node string) ([]pubsub.Item, error) {
	return pubsub.Items(ctx, c, service, node)
}

// Event reads the pubsub notification a message carries. ok is false for
// anything else.
func (s Stanza) Event() (ev pubsub.Event, ok bool) {
	if s.Name != "message" || s.Type == "error" {
		return pubsub.Event{}, false
	}
	return pubsub.ParseEvent(s.Inner)
}

// PresenceDetails reads the show, status and priority of a presence stanza.
// A missing or unreadable priority is 0.
func (s Stanza) PresenceDetails() (show, status string, priority int) {
	var cs children
	if unmarshalInner(s.Inner, &cs) != nil {
		return "", "", 0
	}
	for _, n := range cs.All {
		if n.XMLName.Space != "" && n.XMLName.Space != xmpp.NSClient {
			continue
		}
		switch n.XMLName.Local {
		case "show":
			show = strings.TrimSpace(n.Text)
		case "status":
			status = n.Text
		case "priority":
			priority, _ = strconv.Atoi(strings.TrimSpace(n.Text))
		}
	}
	return show, status, priority
}

// Err returns the stanza's error when its type is "error", else nil.
func (s Stanza) Err() *xmpp.StanzaError {
	if s.Type != "error" {
		return nil
	}
	return xmpp.ParseError(s.Inner)
}
