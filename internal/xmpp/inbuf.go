package xmpp

import (
	"fmt"
	"io"
)

// inbuf is the buffered input of a Reader. encoding/xml reads it byte by
// byte (the stream header, and every element the fast path leaves to it);
// the fast path looks at the buffered bytes directly and consumes whole
// elements. It reads from src like bufio.Reader does, except that a read
// error stays: whoever reads next after the buffered bytes gets it too.
//
// For a Reader that keeps each element's text (Reader.Raw), the bytes from
// keep on stay in buf while encoding/xml reads an element, however large
// (up to MaxRaw), so that the element can be cut out of buf once read.
type inbuf struct {
	src  io.Reader
	buf  []byte
	r, w int   // buf[r:w] is unread
	max  int   // the fast path may grow buf up to this size
	err  error // from src; returned once buf[r:w] is drained
	// rawMax bounds buf while it keeps bytes: MaxRaw, or less in tests.
	rawMax int

	off     int64 // input offset of buf[0]
	skipped int64 // bytes consumed with discard: encoding/xml did not see them
	keep    int64 // input offset from which bytes must stay in buf; -1: none
}

const (
	inbufSize = 64 << 10 // what bufio gave the reader before
	// inbufMax bounds the elements the fast path reads; larger ones go to
	// encoding/xml. The answers that grow with the users (the session
	// list, the actual node's items) are hundreds of MB at a million
	// connections, and encoding/xml took three times as long on them.
	inbufMax = 1 << 30
	// inbufKeep is the largest buffer kept after an element: a larger one,
	// grown for one large element, is let go once it has been read.
	inbufKeep = 1 << 20
)

// MaxRaw bounds one element that a Reader with Raw set reads: its whole
// text must fit in memory at once (twice, with the fast path's buffer).
const MaxRaw = 64 << 20

func newInbuf(src io.Reader) *inbuf {
	return &inbuf{src: src, buf: make([]byte, inbufSize), max: inbufMax, rawMax: MaxRaw, keep: -1}
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
func (b *inbuf) discard(n int) {
	b.r += n
	b.skipped += int64(n)
}

// kept returns the bytes from input offset from (at or after keep) up to
// to, which must have been read.
func (b *inbuf) kept(from, to int64) []byte {
	return b.buf[from-b.off : to-b.off]
}

// compact moves the bytes that must stay (the unread ones, and those from
// keep on) to the start of buf.
func (b *inbuf) compact() {
	lo := b.r
	if b.keep >= 0 {
		lo = min(lo, int(b.keep-b.off))
	}
	if lo == 0 {
		return
	}
	b.w = copy(b.buf, b.buf[lo:b.w])
	b.r -= lo
	b.off += int64(lo)
}

// grow makes buf larger, up to limit; it reports false when it cannot.
func (b *inbuf) grow(limit int) bool {
	if len(b.buf) >= limit {
		return false
	}
	nb := make([]byte, min(2*len(b.buf), limit))
	copy(nb, b.buf[:b.w])
	b.buf = nb
	return true
}

// more reads at least one more byte into the buffer, moving the unread
// bytes to its start and growing it (up to max) when it is full. It reports
// false, reading nothing, when a read error is pending or the buffer cannot
// grow any more.
func (b *inbuf) more() bool {
	if b.err != nil {
		return false
	}
	if b.r == b.w || b.w == len(b.buf) {
		b.compact()
	}
	if b.w == len(b.buf) && !b.grow(b.max) {
		return false
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
	if b.r == b.w || b.w == len(b.buf) {
		b.compact()
	}
	if b.w == len(b.buf) && !b.grow(b.rawMax) {
		// Only bytes being kept fill a whole buffer of this size.
		b.err = fmt.Errorf("xmpp: element larger than %d bytes", b.rawMax)
		return
	}
	for range 100 {
		n, err := b.src.Read(b.buf[b.w:])
		if n < 0 || n > len(b.buf)-b.w {
			panic("xmpp: invalid Read count")
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

// shrink lets go of a buffer that grew past inbufKeep for one large
// element once that element has been consumed and what is left fits in a
// buffer of the usual size.
func (b *inbuf) shrink() {
	if len(b.buf) <= inbufKeep || b.w-b.r > inbufSize || b.keep >= 0 {
		return
	}
	nb := make([]byte, inbufSize)
	b.w = copy(nb, b.buf[b.r:b.w])
	b.off += int64(b.r)
	b.r = 0
	b.buf = nb
}

// release lets go of the kept bytes, and of a buffer that grew past max to
// hold them. The byte before the unread ones stays: encoding/xml may have
// read it ahead (the '<' after text), and the next element starts there.
func (b *inbuf) release() {
	b.keep = -1
	lo := max(b.r-1, 0)
	if len(b.buf) > min(b.max, inbufKeep) && b.w-lo <= inbufSize {
		nb := make([]byte, inbufSize)
		b.w = copy(nb, b.buf[lo:b.w])
		b.off += int64(lo)
		b.r -= lo
		b.buf = nb
	}
}
