package c2s

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/pubpresence/pubpresence/internal/xmpp"
)

// Item is one pubsub item: its id and the raw XML of its one payload
// element (nil when the item carries no payload).
type Item struct {
	ID      string
	Payload []byte
}

// EventItem is one change in a pubsub notification: a published item, or
// the retraction of the item with that ID when Retract is set.
type EventItem struct {
	Item
	Retract bool
}

// Event is a pubsub notification (XEP-0060 §7.1.2, §7.2.2, §8.4, §8.5).
type Event struct {
	Node   string
	Items  []EventItem // published and retracted items, in document order
	Purge  bool        // the node was purged
	Delete bool        // the node was deleted
}

// Subscribe subscribes the bound full JID to node on the pubsub service.
// A subscription left "pending" or "unconfigured" is an error.
func (c *Client) Subscribe(ctx context.Context, service, node string) error {
	st, err := c.Request(ctx, "set", service, "<pubsub xmlns='"+xmpp.NSPubsub+"'><subscribe node='"+
		escape(node)+"' jid='"+escape(c.jid)+"'/></pubsub>")
	if err != nil {
		return fmt.Errorf("subscribe %s on %s: %w", node, service, err)
	}
	nodes, _ := parseFragment(st.Inner)
	if ps := child(nodes, xmpp.NSPubsub, "pubsub"); ps != nil {
		if sub := ps.child("", "subscription"); sub != nil {
			switch s := sub.attr("subscription"); s {
			case "", "subscribed":
			default:
				return fmt.Errorf("subscribe %s on %s: subscription is %q", node, service, s)
			}
		}
	}
	return nil
}

// Unsubscribe removes the bound full JID's subscription to node.
func (c *Client) Unsubscribe(ctx context.Context, service, node string) error {
	_, err := c.Request(ctx, "set", service, "<pubsub xmlns='"+xmpp.NSPubsub+"'><unsubscribe node='"+
		escape(node)+"' jid='"+escape(c.jid)+"'/></pubsub>")
	if err != nil {
		return fmt.Errorf("unsubscribe %s on %s: %w", node, service, err)
	}
	return nil
}

// ItemsPayload is the request payload for every item of node.
func ItemsPayload(node string) string {
	return "<pubsub xmlns='" + xmpp.NSPubsub + "'><items node='" + escape(node) + "'/></pubsub>"
}

// Items fetches every item of node that the service returns in one answer,
// oldest first (the order both Prosody and ejabberd use).
func (c *Client) Items(ctx context.Context, service, node string) ([]Item, error) {
	inner, err := c.IQ(ctx, "get", service, ItemsPayload(node))
	if err != nil {
		return nil, fmt.Errorf("items %s on %s: %w", node, service, err)
	}
	items, err := ParseItems(inner)
	if err != nil {
		return nil, fmt.Errorf("items %s on %s: %w", node, service, err)
	}
	return items, nil
}

// ParseItems reads the items of an items result (the inner XML of the IQ:
// <pubsub><items><item/>…</items></pubsub>).
func ParseItems(inner []byte) ([]Item, error) {
	nodes, err := parseFragment(inner)
	if err != nil {
		return nil, fmt.Errorf("parse items: %w", err)
	}
	ps := child(nodes, xmpp.NSPubsub, "pubsub")
	if ps == nil {
		return nil, fmt.Errorf("parse items: no <pubsub/> in answer")
	}
	var items []Item
	for _, its := range ps.Children {
		if its.Name.Local != "items" {
			continue
		}
		for _, it := range its.Children {
			if it.Name.Local == "item" {
				items = append(items, Item{ID: it.attr("id"), Payload: payload(it)})
			}
		}
	}
	return items, nil
}

func payload(it *node) []byte {
	if len(it.Children) == 0 {
		return nil
	}
	return it.Children[0].Raw
}

// Event reads the pubsub notification a message carries. ok is false for
// anything else.
func (s Stanza) Event() (ev Event, ok bool) {
	if s.Name != "message" || s.Type == "error" {
		return Event{}, false
	}
	nodes, err := parseFragment(s.Inner)
	if err != nil {
		return Event{}, false
	}
	e := child(nodes, xmpp.NSPubsubEvent, "event")
	if e == nil {
		return Event{}, false
	}
	for _, c := range e.Children {
		switch c.Name.Local {
		case "items":
			ev.Node = c.attr("node")
			for _, it := range c.Children {
				switch it.Name.Local {
				case "item":
					ev.Items = append(ev.Items, EventItem{Item: Item{ID: it.attr("id"), Payload: payload(it)}})
				case "retract":
					ev.Items = append(ev.Items, EventItem{Item: Item{ID: it.attr("id")}, Retract: true})
				}
			}
			return ev, true
		case "purge":
			return Event{Node: c.attr("node"), Purge: true}, true
		case "delete":
			return Event{Node: c.attr("node"), Delete: true}, true
		}
	}
	return Event{}, false
}

// PresenceDetails reads the show, status and priority of a presence stanza.
// A missing or unreadable priority is 0.
func (s Stanza) PresenceDetails() (show, status string, priority int) {
	nodes, _ := parseFragment(s.Inner)
	for _, n := range nodes {
		if n.Name.Space != "" && n.Name.Space != xmpp.NSClient {
			continue
		}
		switch n.Name.Local {
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
