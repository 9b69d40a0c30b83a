package pubsub

import (
	"bytes"
	"context"
	"encoding/xml"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/pubpresence/pubpresence/internal/xmltext"
)

// answerIQ is an IQer whose every get is answered with answer (the inner
// XML of the result, as the server sent it) and whose sets succeed and are
// recorded.
type answerIQ struct {
	answer []byte
	gets   int
	sets   [][]byte
}

func (a *answerIQ) IQ(_ context.Context, typ, _ string, payload []byte) ([]byte, error) {
	if typ == "set" {
		a.sets = append(a.sets, append([]byte(nil), payload...))
		return nil, nil
	}
	a.gets++
	return a.answer, nil
}

// The answers the servers send (captured from Prosody 0.12 and ejabberd
// 23.01), for the fuzz seeds.
const (
	nodeFuzzProsodyItems = `<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='presence/actual'>` +
		`<item id='alice@localhost/laptop'><user xmlns='urn:pubpresence:0' status='away' name='alice@localhost' fulljid='alice@localhost/laptop' ip='127.0.0.1' priority='5' since='2026-11-21T09:00:00Z'><text>At lunch</text></user></item>` +
		`<item id='bob@localhost/phone'><user xmlns='urn:pubpresence:0' status='online' name='bob@localhost' fulljid='bob@localhost/phone' priority='0'/></item>` +
		`</items></pubsub>`
	nodeFuzzEjabberdItems = `<pubsub xmlns="http://jabber.org/protocol/pubsub"><items node="presence/actual">` +
		`<item id="alice@localhost/home"><user xmlns="urn:pubpresence:0" status="online" ip="127.0.0.1" name="alice@localhost" fulljid="alice@localhost/home"/></item>` +
		`</items><set xmlns="http://jabber.org/protocol/rsm"><count>2</count><first index="1">1763715864873002</first><last>1763715864873002</last></set></pubsub>`
	nodeFuzzProsodyConfig = `<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='presence/actual'><x xmlns='jabber:x:data' type='form'>` +
		`<field type='hidden' var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#node_config</value></field>` +
		`<field type='text-single' var='pubsub#title' label='Title'/>` +
		`<field type='text-single' var='pubsub#max_items' label='Max # of items to persist'><validate xmlns='http://jabber.org/protocol/xdata-validate' datatype='pubsub:integer-or-max'><range min='1' max='256'/></validate><value>max</value></field>` +
		`<field type='boolean' var='pubsub#persist_items' label='Persist items to storage'><value>1</value></field>` +
		`</x></configure></pubsub>`
	nodeFuzzEjabberdConfig = `<pubsub xmlns="http://jabber.org/protocol/pubsub#owner"><configure node="presence/actual"><x type="form" xmlns="jabber:x:data">` +
		`<field var="FORM_TYPE" type="hidden"><value>http://jabber.org/protocol/pubsub#node_config</value></field>` +
		`<field var="pubsub#max_items" type="text-single" label="Max # of items to persist"><value>1000</value></field>` +
		`<field var="pubsub#access_model" type="list-single" label="Specify the access model"><option label="open"><value>open</value></option><value>open</value></field>` +
		`</x></configure></pubsub>`
	nodeFuzzProsodyAffs = `<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><affiliations node='presence/live'>` +
		`<affiliation jid='pubpresence.localhost' affiliation='owner'/><affiliation jid='Alice@localhost' affiliation='member'/>` +
		`<affiliation jid='old@localhost' affiliation='member'/><affiliation jid='pub@localhost' affiliation='publisher'/></affiliations></pubsub>`
	nodeFuzzEjabberdAffs = `<pubsub xmlns="http://jabber.org/protocol/pubsub#owner"><affiliations node="presence/live">` +
		`<affiliation affiliation="owner" jid="pubpresence.localhost"/><affiliation affiliation="outcast" jid="bob@localhost"/></affiliations></pubsub>`
)

// FuzzNodeAnswers feeds arbitrary answers of the pubsub service to the
// requests whose results the service reads: an items request (Items), a
// node configuration request (MaxItemsLimit) and an affiliations request
// (Affiliations, SyncMembers), each through an IQer that returns the fuzzed
// bytes. One target for the three keeps CI short; they share the shape
// <pubsub><x node='…'>…</x></pubsub>, so each learns from the others'
// inputs. See checkItems, checkMaxItemsLimit and checkAffiliations for what
// is asserted.
func FuzzNodeAnswers(f *testing.F) {
	for _, s := range []string{
		nodeFuzzProsodyItems,
		nodeFuzzEjabberdItems,
		`<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='presence/live'/></pubsub>`,
		`<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='presence/status'><item id='current'><x xmlns='jabber:x:data' type='result'><field var='pubpresence#status'><value>online</value></field></x></item></items></pubsub>`,
		`<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='n'><item id='a&amp;b'>  <u xmlns='x'>t</u>  </item><item/><item id='e'></item></items></pubsub>`,
		`<pubsub><items><item id='x'><unclosed></item></items></pubsub>`,
		nodeFuzzProsodyConfig,
		nodeFuzzEjabberdConfig,
		`<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='n'><x xmlns='jabber:x:data' type='form'><field var='pubsub#max_items'><validate><range max=' 20 '/></validate></field></x></configure></pubsub>`,
		`<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='n'><x xmlns='jabber:x:data' type='form'><field var='pubsub#max_items'><value>max</value></field><field var='pubsub#max_items'><value>7</value></field></x></configure></pubsub>`,
		`<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='n'><x xmlns='jabber:x:data' type='form'><field var='pubsub#max_items'><validate><range max='-1'/></validate><value>-5</value></field></x></configure></pubsub>`,
		`<pubsub><configure><x><field var='pubsub#max_items'><value>1`,
		nodeFuzzProsodyAffs,
		nodeFuzzEjabberdAffs,
		`<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><affiliations node='n'/></pubsub>`,
		`<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><affiliations node='n'><affiliation jid='a&amp;b@localhost' affiliation='member'/><affiliation jid='ALICE@localhost' affiliation='none'/><affiliation jid='alice@localhost' affiliation='member'/></affiliations></pubsub>`,
		`<pubsub><affiliations><affiliation jid='x'`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, answer []byte) {
		checkItems(t, answer)
		checkMaxItemsLimit(t, answer)
		checkAffiliations(t, answer)
	})
}

// checkItems: Items never panics, fails with no items, and what it returns
// reads back the same when written as an answer again.
func checkItems(t *testing.T, answer []byte) {
	t.Helper()
	iq := &answerIQ{answer: answer}
	items, err := Items(context.Background(), iq, "pubsub.localhost", "presence/actual")
	if iq.gets != 1 || len(iq.sets) != 0 {
		t.Fatalf("Items sent %d gets, %d sets; want 1 get", iq.gets, len(iq.sets))
	}
	if err != nil {
		if items != nil {
			t.Fatalf("items %v with error %v", items, err)
		}
		return
	}
	var again []byte
	again = append(again, "<pubsub xmlns='"+NS+"'><items node='presence/actual'>"...)
	for _, it := range items {
		if !bytes.Equal(it.Payload, bytes.TrimSpace(it.Payload)) {
			t.Fatalf("payload %q not trimmed", it.Payload)
		}
		if !utf8.ValidString(it.ID) {
			t.Fatalf("id %q is not UTF-8", it.ID)
		}
		again = append(again, "<item id='"...)
		again = xmltext.Append(again, it.ID)
		again = append(again, "'>"...)
		again = append(again, it.Payload...)
		again = append(again, "</item>"...)
	}
	again = append(again, "</items></pubsub>"...)
	back, err := Items(context.Background(), &answerIQ{answer: again}, "pubsub.localhost", "presence/actual")
	if err != nil {
		t.Fatalf("items written back do not read: %v\n%s", err, again)
	}
	if len(back) != len(items) {
		t.Fatalf("read back %d items, want %d\n%s", len(back), len(items), again)
	}
	for i := range items {
		if back[i].ID != items[i].ID || !bytes.Equal(back[i].Payload, items[i].Payload) {
			t.Fatalf("item %d read back as %+v, want %+v", i, back[i], items[i])
		}
	}
}

// checkMaxItemsLimit: MaxItemsLimit never panics and returns a limit ≥ 0,
// and 0 with an error.
func checkMaxItemsLimit(t *testing.T, answer []byte) {
	t.Helper()
	iq := &answerIQ{answer: answer}
	n, err := MaxItemsLimit(context.Background(), iq, "pubsub.localhost", "presence/actual")
	if iq.gets != 1 || len(iq.sets) != 0 {
		t.Fatalf("MaxItemsLimit sent %d gets, %d sets; want 1 get", iq.gets, len(iq.sets))
	}
	if err != nil && n != 0 {
		t.Fatalf("limit %d with error %v", n, err)
	}
	if n < 0 {
		t.Fatalf("negative limit %d", n)
	}
}

// syncReaders are the readers checkAffiliations makes members.
var syncReaders = []string{"alice@localhost", "Carol@Localhost", "pub@localhost"}

// checkAffiliations: Affiliations never panics, fails with no map and
// lower-cases the JIDs; SyncMembers on the same answer then changes exactly
// the affiliations that keep the members equal to the readers, in a
// request that reads back.
func checkAffiliations(t *testing.T, answer []byte) {
	t.Helper()
	readers := syncReaders
	have, err := Affiliations(context.Background(), &answerIQ{answer: answer}, "pubsub.localhost", "presence/live")
	iq := &answerIQ{answer: answer}
	syncErr := SyncMembers(context.Background(), iq, "pubsub.localhost", "presence/live", readers)
	if err != nil {
		if have != nil {
			t.Fatalf("affiliations %v with error %v", have, err)
		}
		if syncErr == nil || len(iq.sets) != 0 {
			t.Fatalf("SyncMembers went on after %v: %v, %d sets", err, syncErr, len(iq.sets))
		}
		return
	}
	if syncErr != nil {
		t.Fatalf("SyncMembers: %v", syncErr)
	}
	for j := range have {
		if j != strings.ToLower(j) {
			t.Fatalf("JID %q not lower-cased", j)
		}
	}
	// What SyncMembers asked for, read back from its request.
	change := map[string]string{}
	switch len(iq.sets) {
	case 0:
	case 1:
		var x struct {
			XMLName xml.Name
			Affs    []struct {
				JID  string `xml:"jid,attr"`
				Affl string `xml:"affiliation,attr"`
			} `xml:"affiliations>affiliation"`
		}
		if err := xml.Unmarshal(iq.sets[0], &x); err != nil || x.XMLName.Space != NSOwner {
			t.Fatalf("set request does not read: %v\n%s", err, iq.sets[0])
		}
		if len(x.Affs) == 0 {
			t.Fatalf("empty set request %s", iq.sets[0])
		}
		for _, a := range x.Affs {
			if _, dup := change[a.JID]; dup {
				t.Fatalf("JID %q twice in %s", a.JID, iq.sets[0])
			}
			change[a.JID] = a.Affl
		}
	default:
		t.Fatalf("%d set requests, want at most 1", len(iq.sets))
	}
	want := map[string]bool{}
	for _, r := range readers {
		want[strings.ToLower(r)] = true
	}
	for j, a := range change {
		switch {
		case a == "member" && want[j] && have[j] != "member" && have[j] != "owner" && have[j] != "publisher":
		case a == "none" && !want[j] && have[j] == "member":
		default:
			t.Fatalf("changed %q from %q to %q (readers %v)", j, have[j], a, readers)
		}
	}
	// After the change: every reader can read, and every member is a reader.
	after := map[string]string{}
	for j, a := range have {
		after[j] = a
	}
	for j, a := range change {
		after[j] = a
	}
	for r := range want {
		if a := after[r]; a != "member" && a != "owner" && a != "publisher" {
			t.Fatalf("reader %q left as %q", r, a)
		}
	}
	for j, a := range after {
		if a == "member" && !want[j] {
			t.Fatalf("%q stays a member", j)
		}
	}
}
