package watch

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// sseResult is everything a reader gives for a stream.
type sseResult struct {
	Events   []SSEEvent
	Err      string // the final error: "EOF", or its text
	LastID   string
	Retry    time.Duration
	HasRetry bool
}

func readAll(r io.Reader, limit int) sseResult {
	sr := NewSSEReader(r, limit)
	var res sseResult
	for {
		ev, err := sr.Next()
		if err != nil {
			res.Err = err.Error()
			if errors.Is(err, io.EOF) {
				res.Err = "EOF"
			}
			if _, err2 := sr.Next(); err2 == nil || err2.Error() != err.Error() {
				res.Err += fmt.Sprintf(" (then %v)", err2)
			}
			break
		}
		res.Events = append(res.Events, ev)
	}
	res.LastID = sr.LastEventID()
	res.Retry, res.HasRetry = sr.Retry()
	return res
}

// chunkReader returns data in reads of the sizes rng picks (1 to 16
// bytes, sometimes none).
type chunkReader struct {
	data []byte
	rng  *rand.Rand
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(c.data), c.rng.IntN(17))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

func sse(typ, data, id string) SSEEvent { return SSEEvent{Type: typ, Data: data, ID: id} }

func TestSSEReader(t *testing.T) {
	const big = 1 << 20
	for _, tc := range []struct {
		name  string
		in    string
		limit int
		want  []SSEEvent
		err   string // "" for EOF; else a substring
		last  string
		retry time.Duration
	}{
		{name: "empty", in: ""},
		{name: "the service's frames",
			in: "retry: 2000\n\n" +
				"id: 41\nevent: snapshot\ndata: {\"service\":\"online\",\"seq\":41,\"connections\":[]}\n\n" +
				": keepalive\n\n" +
				"id: 42\nevent: change\ndata: {\"fulljid\":\"a@x/r\"}\n\n" +
				"event: service\ndata: {\"service\":\"init\"}\n\n",
			want: []SSEEvent{sse("snapshot", `{"service":"online","seq":41,"connections":[]}`, "41"),
				sse("change", `{"fulljid":"a@x/r"}`, "42"), sse("service", `{"service":"init"}`, "42")},
			last: "42", retry: 2 * time.Second},
		{name: "multi-line data", in: "data: a\ndata:b\ndata:  c\ndata\ndata:\n\n",
			want: []SSEEvent{sse("message", "a\nb\n c\n\n", "")}},
		{name: "only an empty data field", in: "data\n\n", want: []SSEEvent{sse("message", "", "")}},
		{name: "CRLF, CR and LF", in: "data: a\r\ndata: b\rdata: c\n\r\nevent: x\rdata: d\r\r",
			want: []SSEEvent{sse("message", "a\nb\nc", ""), sse("x", "d", "")}},
		{name: "CR CR is a blank line", in: "data: a\r\rdata: b\r\n\r\n",
			want: []SSEEvent{sse("message", "a", ""), sse("message", "b", "")}},
		{name: "no space after the colon is kept once", in: "event:  two\ndata:x\n\n", want: []SSEEvent{sse(" two", "x", "")}},
		{name: "event without data is not dispatched", in: "event: lost\n\ndata: y\n\n", want: []SSEEvent{sse("message", "y", "")}},
		{name: "id persists and can be reset", in: "id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\nid: 3\n\n",
			want: []SSEEvent{sse("message", "a", "1"), sse("message", "b", "1"), sse("message", "c", "")}, last: "3"},
		{name: "id with NUL is ignored", in: "id: 5\ndata: a\n\nid: 6\x007\ndata: b\n\n",
			want: []SSEEvent{sse("message", "a", "5"), sse("message", "b", "5")}, last: "5"},
		{name: "unknown fields and comments", in: ":hi\nfoo: bar\nDATA: no\ndata: yes\n: more\n\n",
			want: []SSEEvent{sse("message", "yes", "")}},
		{name: "retry needs digits", in: "retry: 1500\n\nretry: 1s\n\nretry: -1\n\nretry\n\n", retry: 1500 * time.Millisecond},
		{name: "byte order mark", in: "\uFEFFdata: a\n\n\uFEFFdata: b\n\n", want: []SSEEvent{sse("message", "a", "")}},
		{name: "an event cut by the end is dropped", in: "id: 1\ndata: a\n\nid: 2\ndata: b\n",
			want: []SSEEvent{sse("message", "a", "1")}, last: "1"},
		{name: "a line cut by the end is dropped", in: "data: a\n\ndata: b", want: []SSEEvent{sse("message", "a", "")}},
		{name: "line at the limit", in: "data: 0123\n\n", limit: 10, want: []SSEEvent{sse("message", "0123", "")}},
		{name: "line over the limit", in: "data: a\n\ndata: 01234\n\n", limit: 10,
			want: []SSEEvent{sse("message", "a", "")}, err: "too large: a line of more than 10 bytes (line 3)"},
		{name: "unterminated line over the limit", in: "data: 0123456789", limit: 10, err: "a line of more than 10 bytes"},
		{name: "long comment", in: ": " + strings.Repeat("x", 20) + "\ndata: a\n\n", limit: 10, err: "a line of more than 10 bytes"},
		{name: "event over the limit", in: "data: 1234\ndata: 1234\ndata: 12\n\n", limit: 12, err: "an event of more than 12 bytes (line 3)"},
		{name: "big event", in: "data: " + strings.Repeat("é", 300000) + "\n\n", limit: big,
			want: []SSEEvent{sse("message", strings.Repeat("é", 300000), "")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			limit := tc.limit
			if limit == 0 {
				limit = big
			}
			want := sseResult{Events: tc.want, Err: "EOF", LastID: tc.last, Retry: tc.retry, HasRetry: tc.retry > 0}
			for name, r := range map[string]func() io.Reader{
				"whole":    func() io.Reader { return strings.NewReader(tc.in) },
				"bytes":    func() io.Reader { return iotest.OneByteReader(strings.NewReader(tc.in)) },
				"data+EOF": func() io.Reader { return iotest.DataErrReader(strings.NewReader(tc.in)) },
				"chunks":   func() io.Reader { return &chunkReader{data: []byte(tc.in), rng: rand.New(rand.NewPCG(1, 2))} },
			} {
				got := readAll(r(), limit)
				if tc.err != "" {
					if !strings.Contains(got.Err, tc.err) || !strings.Contains(got.Err, ErrSSETooLarge.Error()) {
						t.Errorf("%s: error %q, want %q", name, got.Err, tc.err)
					}
					got.Err = "EOF"
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s:\n got %+v\nwant %+v", name, got, want)
				}
			}
		})
	}
}

func TestSSEReaderReadError(t *testing.T) {
	boom := errors.New("connection reset")
	sr := NewSSEReader(io.MultiReader(strings.NewReader("data: a\n\ndata: b\n"), iotest.ErrReader(boom)), 100)
	if e, err := sr.Next(); err != nil || e.Data != "a" {
		t.Fatalf("first: %+v %v", e, err)
	}
	for range 2 {
		if _, err := sr.Next(); !errors.Is(err, boom) {
			t.Fatalf("then %v, want the read error", err)
		}
	}
}

// sseOracle is a plain reading of the standard's rules on the whole
// stream, without limits: what SSEReader must give.
func sseOracle(in string) sseResult {
	in = strings.TrimPrefix(in, "\uFEFF")
	in = strings.ReplaceAll(in, "\r\n", "\n")
	in = strings.ReplaceAll(in, "\r", "\n")
	lines := strings.Split(in, "\n")
	lines = lines[:len(lines)-1] // the last one has no end: dropped
	var res sseResult
	var data, event, idBuf string
	hasData := false
	for _, line := range lines {
		switch {
		case line == "":
			res.LastID = idBuf
			if hasData {
				typ := event
				if typ == "" {
					typ = "message"
				}
				res.Events = append(res.Events, SSEEvent{Type: typ, Data: strings.TrimSuffix(data, "\n"), ID: idBuf})
			}
			data, event, hasData = "", "", false
			continue
		case line[0] == ':':
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			event = value
		case "data":
			data += value + "\n"
			hasData = true
		case "id":
			if !strings.Contains(value, "\x00") {
				idBuf = value
			}
		case "retry":
			if value != "" && strings.Trim(value, "0123456789") == "" {
				ms, _ := digits([]byte(value))
				res.Retry, res.HasRetry = time.Duration(ms)*time.Millisecond, true
			}
		}
	}
	res.Err = "EOF"
	return res
}

// FuzzSSE: SSEReader never panics, gives the same events, last event ID,
// retry and error whatever the reads the stream comes in, and, when no
// limit is hit, what the standard's rules read from the whole stream.
func FuzzSSE(f *testing.F) {
	for _, s := range []string{
		"retry: 2000\n\nid: 7\nevent: snapshot\ndata: {\"service\":\"init\",\"partial\":true,\"seq\":7,\"connections\":[]}\n\n: keepalive\n\n",
		"id: 8\r\nevent: change\r\ndata: {\"fulljid\":\"a@x/r\",\"status\":\"offline\"}\r\n\r\nevent: service\rdata: {\"service\":\"online\"}\r\r",
		"\uFEFFdata: a\ndata:b\n\nid\x00\ndata\n\nretry: 12x\n\n",
		"data: " + strings.Repeat("x", 300) + "\n\n",
	} {
		f.Add([]byte(s), uint16(64), uint64(1))
	}
	f.Fuzz(func(t *testing.T, data []byte, limit uint16, seed uint64) {
		lim := int(limit%512) + 1
		whole := readAll(bytes.NewReader(data), lim)
		chunked := readAll(&chunkReader{data: data, rng: rand.New(rand.NewPCG(seed, seed>>1))}, lim)
		if !reflect.DeepEqual(whole, chunked) {
			t.Fatalf("whole and in chunks differ:\n whole %+v\nchunks %+v", whole, chunked)
		}
		for _, e := range whole.Events {
			if e.Type == "" || strings.ContainsAny(e.Data, "\r") || strings.ContainsAny(e.ID, "\r\n\x00") || strings.ContainsAny(e.Type, "\r\n") {
				t.Fatalf("bad event %+v", e)
			}
			if len(e.Data)+len(e.Type) > lim+len("message") {
				t.Fatalf("event of %d bytes over the limit %d", len(e.Data), lim)
			}
		}
		if whole.Err == "EOF" {
			if want := sseOracle(string(data)); !reflect.DeepEqual(whole, want) {
				t.Fatalf("differs from the standard's rules:\n   got %+v\nwanted %+v", whole, want)
			}
		} else if !strings.Contains(whole.Err, ErrSSETooLarge.Error()) {
			t.Fatalf("error %q", whole.Err)
		}
	})
}
