// Package xmpp is pubpresence's XMPP core: the one place that knows the
// protocol's vocabulary, shared by the component stream (component), the
// client (internal/c2s) and the packages above them. It holds the
// namespaces the project uses (ns.go), stanza and stream errors with typed
// conditions (RFC 6120 §8.3, §4.9; errors.go), JID parsing and
// normalisation (RFC 7622; jid.go), XEP-0004 data forms (form.go) and
// XEP-0356 privilege grants (privilege.go), and the wire pieces both
// streams share: the Reader of a stream's header and top-level elements
// (reader.go, inbuf.go), the scanner primitives of its fast path, which
// presence's parser uses too (scan.go), and Calls, which correlates IQ
// requests with their answers (calls.go).
//
// The connections themselves, their writers and their read loops live in
// component and internal/c2s.
package xmpp
