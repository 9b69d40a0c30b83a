package c2s

import (
	"bufio"
	"bytes"
	"encoding/xml"

	"github.com/pubpresence/pubpresence/internal/xmpp"
)

// The fake servers of these tests read the client's stream with the core's
// Reader, through this adapter: next returns an element, whose attr reads
// any attribute of its start tag, and the end of the stream is
// errStreamEnd.

var errStreamEnd = xmpp.ErrStreamEnd

type streamReader struct{ r *xmpp.Reader }

func newStreamReader(br *bufio.Reader) *streamReader {
	r := xmpp.NewReader(br)
	r.Raw = true
	return &streamReader{r}
}

func (s *streamReader) header() (xml.StartElement, error) { return s.r.Header() }

func (s *streamReader) next() (*element, error) {
	el := new(element)
	if err := s.r.Next(&el.Element); err != nil {
		return nil, err
	}
	return el, nil
}

type element struct{ xmpp.Element }

// attr returns the value of the attribute local (no namespace), read from
// the element's start tag.
func (e *element) attr(local string) string {
	tok, err := xml.NewDecoder(bytes.NewReader(e.Raw)).Token()
	if se, ok := tok.(xml.StartElement); ok && err == nil {
		for _, a := range se.Attr {
			if a.Name.Space == "" && a.Name.Local == local {
				return a.Value
			}
		}
	}
	return ""
}
