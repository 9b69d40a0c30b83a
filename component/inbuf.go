package component

import "io"

// inbuf is the buffered reader of the inbound stream. encoding/xml reads it
// byte by byte (the handshake, and every element the fast path leaves to
// it); the fast path looks at the buffered bytes directly and consumes whole
// elements. It reads from src like bufio.Reader does, except that a read
// error stays: whoever reads next after the buffered bytes gets it too.
type inbuf struct {
	src  io.Reader
	buf  []byte
	r, w int   // buf[r:w] is unread
	max  int   // the fast path may grow buf up to this size
	err  error // from src; returned once buf[r:w] is drained
}

const (
	inbufSize = 64 << 10 // what bufio gave the reader before
	inbufMax  = 1 << 20  // larger elements go to encoding/xml
)

func newInbuf(src io.Reader) *inbuf {
	return &inbuf{src: src, buf: make([]byte, inbufSize), max: inbufMax}
}

// ReadByte implements io.ByteReader for encoding/xml.
func (b *inbuf) ReadByte() (byte, error) {
	for b.r == b.w {
		if b.err != nil {
			return 0, b.err
		}
		b.fill()
	}
	c := b.buf[b.r]
	b.r++
	return c, nil
}

// Read implements io.Reader.
func (b *inbuf) Read(p []byte) (int, error) {
	for b.r == b.w {
		if b.err != nil {
			return 0, b.err
		}
		if len(p) == 0 {
			return 0, nil
		}
		b.fill()
	}
	n := copy(p, b.buf[b.r:b.w])
	b.r += n
	return n, nil
}

// buffered returns the unread bytes; they stay valid until the next fill.
func (b *inbuf) buffered() []byte { return b.buf[b.r:b.w] }

// discard consumes n buffered bytes.
func (b *inbuf) discard(n int) { b.r += n }

// more reads at least one more byte into the buffer, moving the unread
// bytes to its start and growing it (up to max) when it is full. It reports
// false, reading nothing, when a read error is pending or the buffer cannot
// grow any more.
func (b *inbuf) more() bool {
	if b.err != nil {
		return false
	}
	if b.r == b.w {
		b.r, b.w = 0, 0
	} else if b.r > 0 && b.w == len(b.buf) {
		b.w = copy(b.buf, b.buf[b.r:b.w])
		b.r = 0
	}
	if b.w == len(b.buf) {
		if len(b.buf) >= b.max {
			return false
		}
		nb := make([]byte, min(2*len(b.buf), b.max))
		b.w = copy(nb, b.buf[b.r:b.w])
		b.r = 0
		b.buf = nb
	}
	n := b.w
	for b.w == n && b.err == nil {
		b.fill()
	}
	return b.w > n
}

// fill reads once into the free space at the end of buf, as bufio.Reader
// does: a reader that keeps returning nothing gets io.ErrNoProgress.
func (b *inbuf) fill() {
	if b.r == b.w {
		b.r, b.w = 0, 0
	}
	if b.w == len(b.buf) {
		b.w = copy(b.buf, b.buf[b.r:b.w])
		b.r = 0
	}
	for range 100 {
		n, err := b.src.Read(b.buf[b.w:])
		if n < 0 || n > len(b.buf)-b.w {
			panic("component: invalid Read count")
		}
		b.w += n
		if err != nil {
			b.err = err
			return
		}
		if n > 0 {
			return
		}
	}
	b.err = io.ErrNoProgress
}
