package component_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/component"
	"github.com/pubpresence/pubpresence/internal/xmpp"
	"github.com/pubpresence/pubpresence/internal/xmpptest"
)

// start starts one request and returns it with the request as the server
// read it.
func start(t *testing.T, c *component.Conn, sc *xmpptest.Conn, payload string) (*component.Call, *xmpptest.Element) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	call, err := c.Start(ctx, "set", "pubsub.localhost", []byte(payload))
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return call, sc.Next(t)
}

// waitCall waits for call.Done.
func waitCall(t *testing.T, call *component.Call) {
	t.Helper()
	select {
	case <-call.Done():
	case <-time.After(wait):
		t.Fatal("Done was not closed")
	}
}

// notDone checks that call has no outcome yet.
func notDone(t *testing.T, call *component.Call) {
	t.Helper()
	select {
	case <-call.Done():
		t.Fatal("Done is closed before the answer")
	default:
	}
	if inner, err := call.Result(); inner != nil || !errors.Is(err, component.ErrPending) {
		t.Errorf("Result before Done = %q, %v, want ErrPending", inner, err)
	}
}

func TestCallDoneResult(t *testing.T) {
	const st = " xmlns='" + xmpp.NSStanzas + "'"
	tests := []struct {
		name   string
		answer func(req *xmpptest.Element) string
		check  func(inner []byte, err error) error
	}{
		{"result",
			func(req *xmpptest.Element) string { return xmpptest.IQAnswer(req, "result", "<ok xmlns='urn:test'/>") },
			func(inner []byte, err error) error {
				if err != nil || string(inner) != "<ok xmlns='urn:test'/>" {
					return fmt.Errorf("want <ok/>")
				}
				return nil
			}},
		{"empty result",
			func(req *xmpptest.Element) string {
				return "<iq type='result' id='" + req.Attr("id") + "' from='pubsub.localhost' to='" + compName + "'/>"
			},
			func(inner []byte, err error) error {
				if err != nil || len(inner) != 0 {
					return fmt.Errorf("want no inner XML and no error")
				}
				return nil
			}},
		{"error answer",
			func(req *xmpptest.Element) string {
				return xmpptest.IQAnswer(req, "error", "<error type='cancel'><item-not-found"+st+"/></error>")
			},
			func(inner []byte, err error) error {
				var se *component.StanzaError
				if inner != nil || !errors.As(err, &se) || !errors.Is(err, xmpp.ErrItemNotFound) || se.Type != "cancel" {
					return fmt.Errorf("want a *StanzaError cancel/item-not-found")
				}
				return nil
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFakeServer(t)
			c, sc := dial(t, srv)
			call, req := start(t, c, sc, "<q xmlns='urn:test'/>")
			notDone(t, call)
			_ = sc.Write(tt.answer(req))
			waitCall(t, call)
			inner, err := call.Result()
			if cerr := tt.check(inner, err); cerr != nil {
				t.Fatalf("Result = %q, %v: %v", inner, err, cerr)
			}
			// The same again, from Result and from Wait; Abandon changes
			// nothing once the answer is in.
			call.Abandon()
			inner2, err2 := call.Result()
			if string(inner2) != string(inner) || err2 != err {
				t.Errorf("second Result = %q, %v, want %q, %v", inner2, err2, inner, err)
			}
			inner3, err3 := call.Wait(context.Background())
			if string(inner3) != string(inner) || err3 != err {
				t.Errorf("Wait after Done = %q, %v, want %q, %v", inner3, err3, inner, err)
			}
			if s := c.Stats(); s.UnknownResults != 0 {
				t.Errorf("Stats = %+v, want no unknown results", s)
			}
		})
	}
}

func TestCallStreamEnd(t *testing.T) {
	srv := newFakeServer(t)
	c, sc := dial(t, srv)
	call, _ := start(t, c, sc, "<q xmlns='urn:test'/>")
	notDone(t, call)
	sc.Close() // EOF without </stream:stream>
	waitCall(t, call)
	inner, err := call.Result()
	if inner != nil || !errors.Is(err, component.ErrClosed) {
		t.Fatalf("Result = %q, %v, want ErrClosed", inner, err)
	}
	if !strings.Contains(err.Error(), "without closing the stream") {
		t.Errorf("Result error %q does not say why the stream ended", err)
	}
	call.Abandon()
	if _, err2 := call.Result(); err2 != err {
		t.Errorf("Result after Abandon = %v, want %v", err2, err)
	}
	if _, err := c.Start(context.Background(), "get", "localhost", nil); !errors.Is(err, component.ErrClosed) {
		t.Errorf("Start after the end = %v, want ErrClosed", err)
	}
}

func TestCallAbandonThenLateAnswer(t *testing.T) {
	srv := newFakeServer(t)
	c, sc := dial(t, srv)
	call, req := start(t, c, sc, "<q xmlns='urn:test'/>")
	other, otherReq := start(t, c, sc, "<q xmlns='urn:test' n='2'/>")
	call.Abandon()
	select {
	case <-call.Done():
	default:
		t.Fatal("Done is not closed after Abandon")
	}
	if inner, err := call.Result(); inner != nil || !errors.Is(err, component.ErrAbandoned) {
		t.Fatalf("Result after Abandon = %q, %v, want ErrAbandoned", inner, err)
	}
	call.Abandon() // again: nothing happens

	// The late answer is dropped and counted, is not foreign, and does not
	// block the reader: the other call's answer and a presence still come.
	_ = sc.Write(xmpptest.IQAnswer(req, "result", "<late/>") + xmpptest.IQAnswer(otherReq, "result", "<other/>") +
		"<presence from='bob@localhost/r' to='" + compName + "'/>")
	if s := recv(t, c); s.Name != "presence" || s.From != "bob@localhost/r" {
		t.Errorf("got %+v, want the presence", s)
	}
	if s := c.Stats(); s.UnknownResults != 1 || s.ForeignResults != 0 {
		t.Errorf("Stats = %+v, want 1 unknown result, none foreign", s)
	}
	if inner, err := call.Result(); inner != nil || !errors.Is(err, component.ErrAbandoned) {
		t.Errorf("Result after the late answer = %q, %v, want ErrAbandoned", inner, err)
	}
	waitCall(t, other)
	if inner, err := other.Result(); err != nil || string(inner) != "<other/>" {
		t.Errorf("the other call's Result = %q, %v", inner, err)
	}
}

// TestCallsOneTimer waits for many calls with one timer, as a pipelining
// caller does: the answered ones complete, the rest are abandoned when the
// timer fires, and their late answers are counted.
func TestCallsOneTimer(t *testing.T) {
	const n = 50
	srv := newFakeServer(t)
	c, sc := dial(t, srv)
	calls := make([]*component.Call, n)
	reqs := make([]*xmpptest.Element, n)
	for i := range calls {
		calls[i], reqs[i] = start(t, c, sc, fmt.Sprintf("<q xmlns='urn:test' n='%d'/>", i))
	}
	var b strings.Builder
	for i := 0; i < n; i += 2 { // answer the even ones
		b.WriteString(xmpptest.IQAnswer(reqs[i], "result", fmt.Sprintf("<a n='%d'/>", i)))
	}
	_ = sc.Write(b.String())

	timer := time.NewTimer(wait)
	defer timer.Stop()
	for i := 0; i < n; i += 2 {
		select {
		case <-calls[i].Done():
		case <-timer.C:
			t.Fatalf("call %d: no answer", i)
		}
		if inner, err := calls[i].Result(); err != nil || string(inner) != fmt.Sprintf("<a n='%d'/>", i) {
			t.Errorf("call %d: Result = %q, %v", i, inner, err)
		}
	}
	for i := 1; i < n; i += 2 {
		calls[i].Abandon()
		if _, err := calls[i].Result(); !errors.Is(err, component.ErrAbandoned) {
			t.Errorf("call %d: Result = %v, want ErrAbandoned", i, err)
		}
	}
	b.Reset()
	for i := 1; i < n; i += 2 {
		b.WriteString(xmpptest.IQAnswer(reqs[i], "result", "<late/>"))
	}
	_ = sc.Write(b.String())
	eventually(t, "the late answers to be counted", func() bool { return c.Stats().UnknownResults == n/2 })
}

// TestCallAbandonRace abandons calls while their answers arrive: each
// ends exactly once, with either its answer or ErrAbandoned, and every
// answer is either delivered or counted as unknown. Run it with -race.
func TestCallAbandonRace(t *testing.T) {
	const n = 200
	srv := newFakeServerWith(t, xmpptest.Config{Handler: xmpptest.AnswerAll})
	c, _ := dial(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	calls := make([]*component.Call, n)
	for i := range calls {
		call, err := c.Start(ctx, "get", "pubsub.localhost", nil)
		if err != nil {
			t.Fatalf("Start %d: %v", i, err)
		}
		calls[i] = call
		if i%3 == 0 {
			go call.Abandon()
		}
	}
	answered := 0
	for i, call := range calls {
		waitCall(t, call)
		_, err := call.Result()
		switch {
		case err == nil:
			answered++
		case i%3 == 0 && errors.Is(err, component.ErrAbandoned):
		default:
			t.Errorf("call %d: %v", i, err)
		}
	}
	eventually(t, "every answer to be read", func() bool { return c.Stats().Received == n })
	if got := uint64(answered) + c.Stats().UnknownResults; got != n {
		t.Errorf("%d answered + %d unknown, want %d in all", answered, c.Stats().UnknownResults, n)
	}
}

// TestAnswerIDMustBeExact: an answer is matched only by the exact id the
// request had, not by one that reads as the same number.
func TestAnswerIDMustBeExact(t *testing.T) {
	srv := newFakeServer(t)
	c, sc := dial(t, srv)
	for range 10 { // so that the next number is "b", a letter
		call, _ := start(t, c, sc, "<q xmlns='urn:test'/>")
		call.Abandon()
	}
	call, req := start(t, c, sc, "<q xmlns='urn:test'/>")
	id := req.Attr("id")
	prefix, num, _ := strings.Cut(id, "-")
	if num != "b" {
		t.Fatalf("request id %q, want one ending in -b", id)
	}
	for _, bad := range []string{
		prefix + "-0" + num,
		prefix + "-" + strings.ToUpper(num),
		prefix + "-" + num + " ",
		prefix + "-+" + num,
		prefix + "-",
		prefix + "-3w5e11264sgsg", // overflows uint64
		prefix + "-" + strings.Repeat("z", 14),
		"x" + id,
	} {
		_ = sc.Write("<iq type='result' id='" + bad + "' from='pubsub.localhost' to='" + compName + "'/>")
	}
	eventually(t, "the answers to be counted as unknown", func() bool { return c.Stats().UnknownResults == 8 })
	notDone(t, call)
	_ = sc.Write(xmpptest.IQAnswer(req, "result", "<ok/>"))
	waitCall(t, call)
	if inner, err := call.Result(); err != nil || string(inner) != "<ok/>" {
		t.Errorf("Result = %q, %v", inner, err)
	}
}

// TestStartConcurrentPayloads starts requests from many goroutines while
// the writer reuses its buffers: the server echoes each request's payload,
// and every call must get its own back.
func TestStartConcurrentPayloads(t *testing.T) {
	const workers, per = 8, 200
	srv := newFakeServerWith(t, xmpptest.Config{Handler: func(sc *xmpptest.Conn, e *xmpptest.Element) bool {
		_ = sc.Write(xmpptest.IQAnswer(e, "result", string(e.Inner)))
		return true
	}})
	c, _ := dial(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			calls := make([]*component.Call, per)
			for i := range calls {
				// Payloads of varied sizes, so buffers of several sizes are reused.
				payload := fmt.Sprintf("<q xmlns='urn:test' w='%d' i='%d'>%s</q>", w, i, strings.Repeat("x", (i*37)%500))
				call, err := c.Start(ctx, "set", "pubsub.localhost", []byte(payload))
				if err != nil {
					errs <- err
					return
				}
				calls[i] = call
			}
			for i, call := range calls {
				want := fmt.Sprintf("<q xmlns='urn:test' w='%d' i='%d'>%s</q>", w, i, strings.Repeat("x", (i*37)%500))
				got, err := call.Wait(ctx)
				if err != nil || string(got) != want {
					errs <- fmt.Errorf("worker %d call %d = %.60q, %v, want %.60q", w, i, got, err, want)
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
