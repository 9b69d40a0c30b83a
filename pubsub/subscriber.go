package pubsub

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"

	"github.com/pubpresence/pubpresence/internal/xmltext"
)

// EventItem is one change in a notification: a published item, or the
// retraction of the item with that ID when Retract is set.
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

// SubscribeRequest appends the <pubsub/> payload that subscribes jid to
// node.
func SubscribeRequest(b []byte, node, jid string) []byte {
	return subscription(b, "subscribe", node, jid)
}

// UnsubscribeRequest appends the <pubsub/> payload that removes jid's
// subscription to node.
func UnsubscribeRequest(b []byte, node, jid string) []byte {
	return subscription(b, "unsubscribe", node, jid)
}

func subscription(b []byte, op, node, jid string) []byte {
	b = append(b, "<pubsub xmlns='"+NS+"'><"+op+" node='"...)
	b = xmltext.Append(b, node)
	b = append(b, "' jid='"...)
	b = xmltext.Append(b, jid)
	return append(b, "'/></pubsub>"...)
}

// ItemsRequest appends the <pubsub/> payload that asks for every item of
// node.
func ItemsRequest(b []byte, node string) []byte {
	b = append(b, "<pubsub xmlns='"+NS+"'><items node='"...)
	b = xmltext.Append(b, node)
	return append(b, "'/></pubsub>"...)
}

// Subscribe subscribes jid, the subscriber's own full JID, to node. A
// subscription the service leaves "pending" or "unconfigured" is an error.
func Subscribe(ctx context.Context, iq IQer, service, node, jid string) error {
	inner, err := iq.IQ(ctx, "set", service, SubscribeRequest(nil, node, jid))
	if err != nil {
		return fmt.Errorf("subscribe %s on %s: %w", node, service, err)
	}
	switch s := subscriptionState(inner); s {
	case "", "subscribed":
		return nil
	default:
		return fmt.Errorf("subscribe %s on %s: subscription is %q", node, service, s)
	}
}

// Unsubscribe removes jid's subscription to node.
func Unsubscribe(ctx context.Context, iq IQer, service, node, jid string) error {
	if _, err := iq.IQ(ctx, "set", service, UnsubscribeRequest(nil, node, jid)); err != nil {
		return fmt.Errorf("unsubscribe %s on %s: %w", node, service, err)
	}
	return nil
}

// subscriptionState returns the subscription attribute of a subscribe
// result, "" when the result does not say (a service may answer with no
// payload) or cannot be read.
func subscriptionState(inner []byte) string {
	f := newFragment(inner)
	state, seen, found := "", false, false
	err := f.each(func(se xml.StartElement) error {
		if se.Name != (xml.Name{Space: NS, Local: "pubsub"}) || seen {
			return f.skip()
		}
		seen = true
		return f.each(func(se xml.StartElement) error {
			if se.Name.Local == "subscription" && !found {
				state, found = attr(se, "subscription"), true
			}
			return f.skip()
		})
	})
	if err != nil {
		return ""
	}
	return state
}

// ParseItems reads the items of an items result (the inner XML of the IQ:
// <pubsub><items><item/>…</items></pubsub>), in document order. An item's
// payload is its first child element, nil when it has none; it points into
// inner. A result set (XEP-0059 <set/>) next to the items is not read: a
// service that pages its answer gives its first page. An empty result has
// no items; one with other elements but no <pubsub/> is an error.
func ParseItems(inner []byte) ([]Item, error) {
	f := newFragment(inner)
	var items []Item
	empty, found := true, false
	err := f.each(func(se xml.StartElement) error {
		empty = false
		if se.Name != (xml.Name{Space: NS, Local: "pubsub"}) || found {
			return f.skip()
		}
		found = true
		return f.each(func(se xml.StartElement) error {
			if se.Name.Local != "items" {
				return f.skip()
			}
			return f.each(func(se xml.StartElement) error {
				if se.Name.Local != "item" {
					return f.skip()
				}
				it := Item{ID: attr(se, "id")}
				var err error
				it.Payload, err = f.payload()
				items = append(items, it)
				return err
			})
		})
	})
	if err != nil {
		return nil, fmt.Errorf("parse items: %w", err)
	}
	if !found && !empty {
		return nil, errors.New("parse items: no <pubsub/> in answer")
	}
	return items, nil
}

// ParseEvent reads the pubsub notification in the content of a message
// (its inner XML): the first <event/> of the pubsub#event namespace, by
// its first <items/>, <purge/> or <delete/>. ok is false for anything else,
// and for content that is not well-formed.
func ParseEvent(inner []byte) (ev Event, ok bool) {
	f := newFragment(inner)
	seen := false
	err := f.each(func(se xml.StartElement) error {
		if se.Name != (xml.Name{Space: NSEvent, Local: "event"}) || seen {
			return f.skip()
		}
		seen = true
		return f.each(func(se xml.StartElement) error {
			if ok {
				return f.skip()
			}
			switch se.Name.Local {
			case "items":
				ev, ok = Event{Node: attr(se, "node")}, true
				return f.each(func(se xml.StartElement) error {
					switch se.Name.Local {
					case "item":
						payload, err := f.payload()
						ev.Items = append(ev.Items, EventItem{Item: Item{ID: attr(se, "id"), Payload: payload}})
						return err
					case "retract":
						ev.Items = append(ev.Items, EventItem{Item: Item{ID: attr(se, "id")}, Retract: true})
					}
					return f.skip()
				})
			case "purge":
				ev, ok = Event{Node: attr(se, "node"), Purge: true}, true
			case "delete":
				ev, ok = Event{Node: attr(se, "node"), Delete: true}, true
			}
			return f.skip()
		})
	})
	if err != nil || !ok {
		return Event{}, false
	}
	return ev, true
}

// fragment reads a sequence of elements (the content of a stanza) one
// element at a time, to its end: what is not well-formed anywhere in it
// is an error, wherever the part the caller wants.
type fragment struct {
	b []byte
	d *xml.Decoder
}

func newFragment(b []byte) *fragment {
	return &fragment{b: b, d: xml.NewDecoder(bytes.NewReader(b))}
}

// each calls fn for every child element of the element just opened (or,
// before any, for every top-level element), in order; fn must consume the
// element it is given (skip, payload or each).
func (f *fragment) each(fn func(xml.StartElement) error) error {
	for {
		tok, err := f.d.Token()
		if err == io.EOF {
			return nil // at the top level: Token reports an element left open
		}
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if err := fn(t); err != nil {
				return err
			}
		case xml.EndElement:
			return nil
		}
	}
}

// skip consumes the rest of the element just opened.
func (f *fragment) skip() error { return f.d.Skip() }

// payload consumes the rest of the element just opened and returns the
// raw text of its first child element, nil when it has none.
func (f *fragment) payload() ([]byte, error) {
	var p []byte
	for {
		start := f.d.InputOffset()
		tok, err := f.d.Token()
		if err != nil {
			return nil, err // io.EOF cannot be: the element is open
		}
		switch tok.(type) {
		case xml.StartElement:
			if err := f.d.Skip(); err != nil {
				return nil, err
			}
			if p == nil {
				p = f.b[start:f.d.InputOffset():f.d.InputOffset()]
			}
		case xml.EndElement:
			return p, nil
		}
	}
}

// attr returns the value of the attribute local (no namespace) of se.
func attr(se xml.StartElement, local string) string {
	for _, a := range se.Attr {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}
