package pubsub

import (
	"context"
	"encoding/xml"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/pubpresence/pubpresence/component"
	"github.com/pubpresence/pubpresence/internal/xmpp"
)

// fakeIQ answers owner requests as a server would, from canned state.
type fakeIQ struct {
	affs     map[string]string // for affiliations get/set
	capItems int               // max_items above it: resource-constraint (ejabberd's max_items_node)
	maxItems string            // the node's current max_items
	sets     []string          // payloads of the set requests, in order
}

var valueRE = regexp.MustCompile(`var='pubsub#max_items'><value>([^<]*)</value>`)

func (f *fakeIQ) IQ(_ context.Context, typ, _ string, payload []byte) ([]byte, error) {
	p := string(payload)
	if typ == "set" {
		f.sets = append(f.sets, p)
	}
	switch {
	case typ == "get" && strings.Contains(p, "<affiliations"):
		var b strings.Builder
		b.WriteString(`<pubsub xmlns="` + NSOwner + `"><affiliations node="n">`)
		for j, a := range f.affs {
			b.WriteString(`<affiliation affiliation="` + a + `" jid="` + j + `"/>`)
		}
		b.WriteString(`</affiliations></pubsub>`)
		return []byte(b.String()), nil
	case typ == "set" && strings.Contains(p, "<affiliations"):
		var x struct {
			Affs []struct {
				JID  string `xml:"jid,attr"`
				Affl string `xml:"affiliation,attr"`
			} `xml:"affiliations>affiliation"`
		}
		if err := xml.Unmarshal(payload, &x); err != nil {
			return nil, err
		}
		for _, a := range x.Affs {
			if a.Affl == "none" {
				delete(f.affs, a.JID)
			} else {
				f.affs[a.JID] = a.Affl
			}
		}
		return nil, nil
	case typ == "set" && strings.Contains(p, "<configure"):
		m := valueRE.FindStringSubmatch(p)
		if m == nil {
			return nil, &component.StanzaError{Type: "modify", Condition: xmpp.ErrBadRequest}
		}
		if n, err := strconv.Atoi(m[1]); err == nil && n > f.capItems {
			return nil, &component.StanzaError{Type: "wait", Condition: xmpp.ErrResourceConstraint, Text: "Bad value of field 'pubsub#max_items'"}
		}
		f.maxItems = m[1]
		return nil, nil
	}
	return nil, &component.StanzaError{Type: "cancel", Condition: xmpp.ErrFeatureNotImplemented}
}

func TestSyncMembers(t *testing.T) {
	f := &fakeIQ{affs: map[string]string{
		"pubpresence.localhost": "owner",
		"old@localhost":         "member", // no longer a reader: removed
		"keep@localhost":        "member",
		"pub@localhost":         "publisher", // left alone
		"out@localhost":         "outcast",   // left alone
	}}
	if err := SyncMembers(context.Background(), f, "pubsub.localhost", "n", []string{"Keep@localhost", "new@localhost", "pub@localhost"}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"pubpresence.localhost": "owner",
		"keep@localhost":        "member",
		"new@localhost":         "member",
		"pub@localhost":         "publisher",
		"out@localhost":         "outcast",
	}
	if len(f.affs) != len(want) {
		t.Fatalf("affiliations = %v, want %v", f.affs, want)
	}
	for j, a := range want {
		if f.affs[j] != a {
			t.Errorf("%s: %q, want %q (all: %v)", j, f.affs[j], a, f.affs)
		}
	}
	// In sync: nothing is sent.
	f.sets = nil
	if err := SyncMembers(context.Background(), f, "pubsub.localhost", "n", []string{"keep@localhost", "new@localhost"}); err != nil {
		t.Fatal(err)
	}
	if len(f.sets) != 0 {
		t.Errorf("members already in sync, yet sent %q", f.sets)
	}
}

func TestProbeMaxItems(t *testing.T) {
	for _, cap := range []int{1, 2, 999, 1000, 100000, 1 << 20} {
		f := &fakeIQ{capItems: cap}
		got, err := ProbeMaxItems(context.Background(), f, "pubsub.localhost", "presence/live", 1<<20, "1")
		if err != nil {
			t.Fatalf("cap %d: %v", cap, err)
		}
		if got != cap {
			t.Errorf("cap %d: probed %d", cap, got)
		}
		if f.maxItems != "1" {
			t.Errorf("cap %d: max_items left at %q, want restored to 1", cap, f.maxItems)
		}
		if len(f.sets) > 22 {
			t.Errorf("cap %d: %d requests, want about log2(2^20)+1", cap, len(f.sets))
		}
	}
	// Above hi: hi.
	f := &fakeIQ{capItems: 1 << 30}
	if got, _ := ProbeMaxItems(context.Background(), f, "s", "n", 5000, "1"); got != 5000 {
		t.Errorf("cap above hi: probed %d, want 5000", got)
	}
	// Every value refused: 0.
	f = &fakeIQ{capItems: 0}
	if got, err := ProbeMaxItems(context.Background(), f, "s", "n", 100, "max"); got != 0 || err != nil {
		t.Errorf("nothing accepted: %d %v, want 0 nil", got, err)
	}
	// Another error is an error, not a limit.
	if _, err := ProbeMaxItems(context.Background(), &failIQ{}, "s", "n", 100, "1"); !errors.Is(err, xmpp.ErrForbidden) {
		t.Errorf("forbidden: err = %v", err)
	}
}

type failIQ struct{}

func (failIQ) IQ(context.Context, string, string, []byte) ([]byte, error) {
	return nil, &component.StanzaError{Type: "auth", Condition: xmpp.ErrForbidden}
}
