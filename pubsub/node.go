// Package pubsub implements the XEP-0060 operations pubpresence performs as a
// node owner and publisher (create, configure, affiliations, publish,
// retract, items), and those of a subscriber (subscribe, unsubscribe, items,
// notifications). It knows nothing of the items pubpresence publishes:
// those are package nodes'.
package pubsub

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/pubpresence/pubpresence/internal/xmltext"
	"github.com/pubpresence/pubpresence/internal/xmpp"
)

// Namespaces of XEP-0060: the core's, kept here for callers outside the
// module that read or send pubsub stanzas.
const (
	NS           = xmpp.NSPubsub
	NSOwner      = xmpp.NSPubsubOwner
	NSEvent      = xmpp.NSPubsubEvent
	NSErrors     = xmpp.NSPubsubErrors
	NSNodeConfig = xmpp.NSPubsubNodeConfig
)

// IQer sends one IQ request and returns the inner XML of its result.
// *component.Conn is one, whose error answers are *component.StanzaError,
// as Ensure, ProbeMaxItems and Retract expect; a client (internal/c2s) is
// one for a subscriber's requests, which pass its errors on wrapped.
type IQer interface {
	IQ(ctx context.Context, typ, to string, payload []byte) ([]byte, error)
}

// NodeConfig is the configuration pubpresence keeps on one node.
type NodeConfig struct {
	Node        string
	Title       string
	Persist     bool   // pubsub#persist_items
	MaxItems    string // pubsub#max_items: a number or "max"
	SendLast    string // pubsub#send_last_published_item: never, on_sub
	AccessModel string // whitelist or open
}

// form returns the submitted node_config form, FORM_TYPE included.
func (nc NodeConfig) form() []byte {
	fields := make([]xmpp.FieldValue, 0, 11)
	if nc.Title != "" {
		fields = append(fields, xmpp.FieldValue{Var: "pubsub#title", Value: nc.Title})
	}
	fields = append(fields,
		xmpp.FieldValue{Var: "pubsub#persist_items", Value: boolValue(nc.Persist)},
		xmpp.FieldValue{Var: "pubsub#max_items", Value: nc.MaxItems},
		xmpp.FieldValue{Var: "pubsub#access_model", Value: nc.AccessModel},
		xmpp.FieldValue{Var: "pubsub#publish_model", Value: "publishers"},
		xmpp.FieldValue{Var: "pubsub#send_last_published_item", Value: nc.SendLast},
		xmpp.FieldValue{Var: "pubsub#deliver_notifications", Value: "1"},
		xmpp.FieldValue{Var: "pubsub#deliver_payloads", Value: "1"},
		xmpp.FieldValue{Var: "pubsub#notify_retract", Value: "1"},
		xmpp.FieldValue{Var: "pubsub#notify_delete", Value: "1"},
		xmpp.FieldValue{Var: "pubsub#notification_type", Value: "headline"},
	)
	return xmpp.AppendForm(nil, "submit", NSNodeConfig, fields...)
}

func boolValue(v bool) string {
	if v {
		return "1"
	}
	return "0"
}

// Ensure makes node exist with cfg: it creates the node with its
// configuration, or, when the node exists already, configures it. It never
// deletes or purges a node. created says which happened.
func Ensure(ctx context.Context, iq IQer, service string, cfg NodeConfig) (created bool, err error) {
	form := cfg.form()
	var b bytes.Buffer
	b.WriteString("<pubsub xmlns='" + NS + "'><create node='")
	xml.EscapeText(&b, []byte(cfg.Node))
	b.WriteString("'/><configure>")
	b.Write(form)
	b.WriteString("</configure></pubsub>")
	_, err = iq.IQ(ctx, "set", service, b.Bytes())
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, xmpp.ErrConflict) {
		return false, fmt.Errorf("create node %s: %w", cfg.Node, err)
	}
	if err := Configure(ctx, iq, service, cfg.Node, form); err != nil {
		return false, err
	}
	return false, nil
}

// Configure submits a node_config form to an existing node.
func Configure(ctx context.Context, iq IQer, service, node string, form []byte) error {
	var b bytes.Buffer
	b.WriteString("<pubsub xmlns='" + NSOwner + "'><configure node='")
	xml.EscapeText(&b, []byte(node))
	b.WriteString("'>")
	b.Write(form)
	b.WriteString("</configure></pubsub>")
	if _, err := iq.IQ(ctx, "set", service, b.Bytes()); err != nil {
		return fmt.Errorf("configure node %s: %w", node, err)
	}
	return nil
}

// configForm reads node's configuration form (owner configure get).
func configForm(ctx context.Context, iq IQer, service, node string) (*xmpp.Form, error) {
	var b bytes.Buffer
	b.WriteString("<pubsub xmlns='" + NSOwner + "'><configure node='")
	xml.EscapeText(&b, []byte(node))
	b.WriteString("'/></pubsub>")
	inner, err := iq.IQ(ctx, "get", service, b.Bytes())
	if err != nil {
		return nil, fmt.Errorf("get configuration of %s: %w", node, err)
	}
	var x struct {
		Form xmpp.Form `xml:"pubsub>configure>x"`
	}
	if err := xml.Unmarshal(wrap(inner), &x); err != nil {
		return nil, fmt.Errorf("configuration of %s: %w", node, err)
	}
	return &x.Form, nil
}

// MaxItemsLimit reads the node's configuration form and returns the
// largest pubsub#max_items the server allows (the range Prosody announces
// for "max"), or 0 when the server does not say.
func MaxItemsLimit(ctx context.Context, iq IQer, service, node string) (int, error) {
	form, err := configForm(ctx, iq, service, node)
	if err != nil {
		return 0, err
	}
	for _, f := range form.Fields {
		if f.Var != "pubsub#max_items" {
			continue
		}
		// A negative number is no limit (found by FuzzNodeAnswers).
		if n, err := strconv.Atoi(strings.TrimSpace(f.Range.Max)); err == nil && n >= 0 {
			return n, nil
		}
		if len(f.Values) > 0 {
			if n, err := strconv.Atoi(strings.TrimSpace(f.Values[0])); err == nil && n >= 0 {
				return n, nil
			}
		}
	}
	return 0, nil
}

// Title returns the node's pubsub#title, "" when it has none. A node
// created again by someone else (ejabberd creates a deleted node at the
// next publish, with its defaults) lacks the title it was given.
func Title(ctx context.Context, iq IQer, service, node string) (string, error) {
	form, err := configForm(ctx, iq, service, node)
	if err != nil {
		return "", err
	}
	title, _ := form.Value("pubsub#title")
	return title, nil
}

// ProbeMaxItems finds the largest pubsub#max_items the service accepts on
// node, up to hi, for a server whose configuration form does not say it
// (ejabberd: its max_items_node, default 1000, rejected above with
// resource-constraint). It binary-searches with owner configure requests,
// about log2(hi) of them, and sets max_items back to restore at the end.
// Probe on a node without stored items (the live node): a lower max_items
// could otherwise drop items on the next publish. It returns hi when hi is
// accepted.
func ProbeMaxItems(ctx context.Context, iq IQer, service, node string, hi int, restore string) (int, error) {
	set := func(v string) error {
		b := []byte("<pubsub xmlns='" + NSOwner + "'><configure node='")
		b = xmltext.Append(b, node)
		b = append(b, "'>"...)
		b = xmpp.AppendForm(b, "submit", NSNodeConfig, xmpp.FieldValue{Var: "pubsub#max_items", Value: v})
		b = append(b, "</configure></pubsub>"...)
		_, err := iq.IQ(ctx, "set", service, b)
		return err
	}
	accepts := func(n int) (bool, error) {
		err := set(strconv.Itoa(n))
		if err == nil {
			return true, nil
		}
		switch xmpp.ConditionOf(err) {
		case xmpp.ErrResourceConstraint, xmpp.ErrNotAcceptable, xmpp.ErrBadRequest, xmpp.ErrPolicyViolation:
			return false, nil
		}
		return false, fmt.Errorf("probe max_items of %s: %w", node, err)
	}
	lo := 0 // largest accepted so far (0: none yet)
	for top := hi; lo < top; {
		mid := lo + (top-lo+1)/2
		ok, err := accepts(mid)
		if err != nil {
			return 0, err
		}
		if ok {
			lo = mid
		} else {
			top = mid - 1
		}
	}
	if err := set(restore); err != nil {
		return lo, fmt.Errorf("restore max_items of %s to %s: %w", node, restore, err)
	}
	return lo, nil
}

// Affiliations returns the node's affiliations, JID → affiliation.
func Affiliations(ctx context.Context, iq IQer, service, node string) (map[string]string, error) {
	var b bytes.Buffer
	b.WriteString("<pubsub xmlns='" + NSOwner + "'><affiliations node='")
	xml.EscapeText(&b, []byte(node))
	b.WriteString("'/></pubsub>")
	inner, err := iq.IQ(ctx, "get", service, b.Bytes())
	if err != nil {
		return nil, fmt.Errorf("affiliations of %s: %w", node, err)
	}
	var x struct {
		Affs []struct {
			JID  string `xml:"jid,attr"`
			Affl string `xml:"affiliation,attr"`
		} `xml:"pubsub>affiliations>affiliation"`
	}
	if err := xml.Unmarshal(wrap(inner), &x); err != nil {
		return nil, fmt.Errorf("affiliations of %s: %w", node, err)
	}
	m := make(map[string]string, len(x.Affs))
	for _, a := range x.Affs {
		m[jidKey(a.JID)] = a.Affl
	}
	return m, nil
}

// jidKey is jid as the core normalises it, or jid lower-cased when it
// does not parse, as before the core: one spelling per key.
func jidKey(jid string) string {
	if full, err := xmpp.NormalFull(jid); err == nil {
		return full
	}
	return strings.ToLower(jid)
}

// SetAffiliations changes affiliations, JID → affiliation ("member", "none"…).
func SetAffiliations(ctx context.Context, iq IQer, service, node string, affs map[string]string) error {
	if len(affs) == 0 {
		return nil
	}
	jids := make([]string, 0, len(affs))
	for j := range affs {
		jids = append(jids, j)
	}
	sort.Strings(jids)
	var b bytes.Buffer
	b.WriteString("<pubsub xmlns='" + NSOwner + "'><affiliations node='")
	xml.EscapeText(&b, []byte(node))
	b.WriteString("'>")
	for _, j := range jids {
		b.WriteString("<affiliation jid='")
		xml.EscapeText(&b, []byte(j))
		b.WriteString("' affiliation='")
		xml.EscapeText(&b, []byte(affs[j]))
		b.WriteString("'/>")
	}
	b.WriteString("</affiliations></pubsub>")
	if _, err := iq.IQ(ctx, "set", service, b.Bytes()); err != nil {
		return fmt.Errorf("set affiliations of %s: %w", node, err)
	}
	return nil
}

// SyncMembers makes the members of node exactly readers: readers become
// members, other members lose their affiliation. Owners and publishers are
// left alone.
func SyncMembers(ctx context.Context, iq IQer, service, node string, readers []string) error {
	have, err := Affiliations(ctx, iq, service, node)
	if err != nil {
		return err
	}
	want := make(map[string]bool, len(readers))
	change := make(map[string]string)
	for _, r := range readers {
		r = jidKey(r)
		want[r] = true
		if have[r] != "member" && have[r] != "owner" && have[r] != "publisher" {
			change[r] = "member"
		}
	}
	for j, a := range have {
		if a == "member" && !want[j] {
			change[j] = "none"
		}
	}
	return SetAffiliations(ctx, iq, service, node, change)
}

// Item is one item of a node: its id and the raw XML of its one payload
// element (nil when the item carries no payload).
type Item struct {
	ID      string
	Payload []byte
}

// Items fetches every item of node that the service returns in one
// answer, oldest first (the order both Prosody and ejabberd use).
func Items(ctx context.Context, iq IQer, service, node string) ([]Item, error) {
	inner, err := iq.IQ(ctx, "get", service, ItemsRequest(nil, node))
	if err != nil {
		return nil, fmt.Errorf("items of %s: %w", node, err)
	}
	items, err := ParseItems(inner)
	if err != nil {
		return nil, fmt.Errorf("items of %s: %w", node, err)
	}
	return items, nil
}

// PublishRequest appends the <pubsub/> payload that publishes one item.
func PublishRequest(b []byte, node, id string, payload []byte) []byte {
	b = PublishOpen(b, node, id)
	b = append(b, payload...)
	return PublishClose(b)
}

// PublishOpen appends PublishRequest's payload up to the item's content,
// for a caller that encodes the item in place, with no copy; PublishClose
// appends the rest.
func PublishOpen(b []byte, node, id string) []byte {
	b = append(b, "<pubsub xmlns='"+NS+"'><publish node='"...)
	b = xmltext.Append(b, node)
	b = append(b, "'><item id='"...)
	b = xmltext.Append(b, id)
	return append(b, "'>"...)
}

// PublishClose ends a payload begun with PublishOpen.
func PublishClose(b []byte) []byte {
	return append(b, "</item></publish></pubsub>"...)
}

// RetractRequest returns the <pubsub/> payload that retracts one item and
// tells subscribers (Prosody notifies only when the request asks for it).
func RetractRequest(b []byte, node, id string) []byte {
	b = append(b, "<pubsub xmlns='"+NS+"'><retract node='"...)
	b = xmltext.Append(b, node)
	b = append(b, "' notify='true'><item id='"...)
	b = xmltext.Append(b, id)
	return append(b, "'/></retract></pubsub>"...)
}

// PurgeRequest returns the owner's <pubsub/> payload that removes every
// item of node at once (XEP-0060 §8.5); subscribers get a <purge/> event.
func PurgeRequest(b []byte, node string) []byte {
	b = append(b, "<pubsub xmlns='"+NSOwner+"'><purge node='"...)
	b = xmltext.Append(b, node)
	return append(b, "'/></pubsub>"...)
}

// Publish publishes one item.
func Publish(ctx context.Context, iq IQer, service, node, id string, payload []byte) error {
	if _, err := iq.IQ(ctx, "set", service, PublishRequest(nil, node, id, payload)); err != nil {
		return fmt.Errorf("publish %s to %s: %w", id, node, err)
	}
	return nil
}

// Retract removes one item, notifying subscribers. An item that is not
// there is not an error.
func Retract(ctx context.Context, iq IQer, service, node, id string) error {
	_, err := iq.IQ(ctx, "set", service, RetractRequest(nil, node, id))
	if err != nil && !errors.Is(err, xmpp.ErrItemNotFound) {
		return fmt.Errorf("retract %s from %s: %w", id, node, err)
	}
	return nil
}

func wrap(inner []byte) []byte {
	b := make([]byte, 0, len(inner)+7)
	b = append(b, "<r>"...)
	b = append(b, inner...)
	return append(b, "</r>"...)
}
