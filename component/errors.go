package component

import (
	"errors"

	"github.com/pubpresence/pubpresence/internal/xmpp"
)

// ErrClosed is returned for requests on a stream that has ended.
var ErrClosed = errors.New("component: stream closed")

// ErrAbandoned is the Result of a Call given up with Abandon before its
// answer came: the core's, named here for callers outside the module.
var ErrAbandoned = xmpp.ErrAbandoned

// ErrPending is returned by Call.Result before the call's Done is closed.
var ErrPending = xmpp.ErrPending

// StanzaError is an <error/> returned in answer to a request (RFC 6120
// §8.3), as the core reads it: test its condition with
// errors.Is(err, xmpp.ErrItemNotFound). The alias lets callers outside the
// module name it.
type StanzaError = xmpp.StanzaError

// StreamError is a <stream:error/> sent by the server; it ends the stream.
type StreamError = xmpp.StreamError

// StreamClosed is the condition of the *StreamError a Conn ends with when
// the server closes the stream without a <stream:error/> (not one of RFC
// 6120's).
const StreamClosed xmpp.StreamCondition = "closed"
