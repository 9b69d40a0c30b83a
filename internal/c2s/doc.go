// Package c2s implements a small XMPP client (RFC 6120/6121): stream,
// STARTTLS, SASL through mellium.im/sasl (SCRAM-SHA-256, SCRAM-SHA-1, their
// -PLUS variants on TLS 1.3, and PLAIN over TLS only), resource binding, IQ
// correlation, presence, and the few XEP-0060 pubsub requests a presence
// watcher needs, made and read by package pubsub (a Client is a
// pubsub.IQer).
//
// It is meant for tests and for the watch command. With Config.TLS set it
// requires STARTTLS and verifies the server's certificate, as production
// Prosody and ejabberd deployments need; without it it speaks plain TCP and
// refuses servers that require STARTTLS. Direct TLS (XEP-0368, port 5223)
// is not supported.
package c2s
