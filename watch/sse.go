package watch

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// SSEEvent is one event of a Server-Sent Events stream, as the WHATWG
// HTML standard's parsing rules dispatch it ("9.2.6 Interpreting an event
// stream").
type SSEEvent struct {
	Type string // the event field; "message" when there was none
	Data string // the data fields, joined with "\n"
	ID   string // the last event ID after this event (an id field of an earlier event persists)
}

// ErrSSETooLarge is wrapped by the error of SSEReader.Next when a line, or
// the fields of one event, are longer than its limit.
var ErrSSETooLarge = errors.New("event stream: too large")

// sseReadSize is how much SSEReader reads at a time.
const sseReadSize = 32 << 10

// SSEReader reads the events of a Server-Sent Events stream: fields id,
// event, data and retry, comment lines (ignored), other fields (ignored),
// lines ending in CRLF, LF or CR (also split across reads), a leading
// byte order mark. A line, and an event's data, event and id fields
// together, may be at most max bytes; more is an error wrapping
// ErrSSETooLarge. An event that the stream ends in the middle of is not
// dispatched.
type SSEReader struct {
	r   io.Reader
	max int

	buf      []byte // read, not yet parsed: buf[start:end]
	start    int
	end      int
	line     []byte // a line begun in an earlier read
	afterCR  bool   // the last line ended with CR: a LF first is part of that ending
	lines    int    // lines read
	err      error  // the read error, once met
	sticky   error  // what every later Next returns
	data     []byte // the data buffer
	hasData  bool   // a data field was seen (the buffer may be "")
	event    string // the event type buffer
	idBuf    string // the last event ID buffer
	lastID   string // the last event ID string, set at dispatch
	retry    time.Duration
	hasRetry bool
}

// NewSSEReader returns a reader of the stream r; limit bounds a line and
// an event (at least 1 byte).
func NewSSEReader(r io.Reader, limit int) *SSEReader {
	return &SSEReader{r: r, max: max(limit, 1), buf: make([]byte, sseReadSize)}
}

// LastEventID returns the last event ID: what a reconnecting client sends
// as Last-Event-ID ("" for none). It changes when an event is dispatched
// (or a block with an id but no data ends), never in the middle of one.
func (s *SSEReader) LastEventID() string { return s.lastID }

// Retry returns the reconnection time of the last valid retry field, and
// whether there was one.
func (s *SSEReader) Retry() (time.Duration, bool) { return s.retry, s.hasRetry }

// Next returns the next event. At the end of the stream it returns io.EOF
// (or the read error); a line or event over the limit is an error wrapping
// ErrSSETooLarge. Once it has returned an error it returns it again.
func (s *SSEReader) Next() (SSEEvent, error) {
	if s.sticky != nil {
		return SSEEvent{}, s.sticky
	}
	for {
		line, err := s.readLine()
		if err != nil {
			s.sticky = err
			return SSEEvent{}, err
		}
		if len(line) == 0 {
			if ev, ok := s.dispatch(); ok {
				return ev, nil
			}
			continue
		}
		if line[0] == ':' {
			continue // a comment
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) {
		case "event":
			s.event = string(value)
		case "data":
			s.data = append(s.data, value...)
			s.data = append(s.data, '\n')
			s.hasData = true
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				s.idBuf = string(value)
			}
		case "retry":
			if ms, ok := digits(value); ok {
				s.retry, s.hasRetry = time.Duration(ms)*time.Millisecond, true
			}
		}
		if n := len(s.data) + len(s.event) + len(s.idBuf); n > s.max {
			s.sticky = fmt.Errorf("%w: an event of more than %d bytes (line %d)", ErrSSETooLarge, s.max, s.lines)
			return SSEEvent{}, s.sticky
		}
	}
}

// digits reads a retry value: ASCII digits only, capped at a day.
func digits(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	const day = 24 * 3600 * 1000
	if len(b) > 9 {
		return day, true
	}
	n, _ := strconv.ParseInt(string(b), 10, 64) // at most 9 digits
	return min(n, day), true
}

// dispatch ends an event at a blank line: ok is false when it has no data.
func (s *SSEReader) dispatch() (SSEEvent, bool) {
	s.lastID = s.idBuf
	if !s.hasData {
		s.data, s.event = s.data[:0], ""
		return SSEEvent{}, false
	}
	ev := SSEEvent{Type: s.event, Data: string(bytes.TrimSuffix(s.data, []byte("\n"))), ID: s.lastID}
	if ev.Type == "" {
		ev.Type = "message"
	}
	if cap(s.data) > 64<<10 {
		s.data = nil // a snapshot's buffer is not kept
	}
	s.data, s.hasData, s.event = s.data[:0], false, ""
	return ev, true
}

// readLine returns the next line without its ending. The result is valid
// until the next call. A line the stream ends in the middle of is
// dropped: io.EOF.
func (s *SSEReader) readLine() ([]byte, error) {
	if cap(s.line) > 64<<10 {
		s.line = nil // a snapshot's line is not kept
	}
	for {
		if s.afterCR && s.start < s.end {
			if s.buf[s.start] == '\n' {
				s.start++
			}
			s.afterCR = false
		}
		chunk := s.buf[s.start:s.end]
		if i := bytes.IndexAny(chunk, "\r\n"); i >= 0 {
			s.afterCR = chunk[i] == '\r'
			s.start += i + 1
			line := chunk[:i]
			if len(s.line) > 0 {
				s.line = append(s.line, line...)
				line = s.line
				s.line = s.line[:0]
			}
			return s.checkLine(line)
		}
		if len(s.line)+len(chunk) > s.max {
			return nil, s.tooLong()
		}
		s.line = append(s.line, chunk...)
		s.start, s.end = 0, 0
		if s.err != nil {
			return nil, s.err
		}
		n, err := s.r.Read(s.buf)
		s.end = n
		if err != nil {
			s.err = err
		} else if n == 0 {
			continue
		}
	}
}

// checkLine bounds line (a byte order mark included) and drops a byte
// order mark at the start of the stream.
func (s *SSEReader) checkLine(line []byte) ([]byte, error) {
	if len(line) > s.max {
		return nil, s.tooLong()
	}
	s.lines++
	if s.lines == 1 {
		line = bytes.TrimPrefix(line, []byte("\uFEFF"))
	}
	return line, nil
}

func (s *SSEReader) tooLong() error {
	return fmt.Errorf("%w: a line of more than %d bytes (line %d)", ErrSSETooLarge, s.max, s.lines+1)
}
