package xmpp

// The XMPP namespaces pubpresence uses.
const (
	NSClient    = "jabber:client"                       // RFC 6120 §4.8.3
	NSComponent = "jabber:component:accept"             // XEP-0114
	NSStream    = "http://etherx.jabber.org/streams"    // the stream: prefix, RFC 6120 §4.8.1
	NSStreams   = "urn:ietf:params:xml:ns:xmpp-streams" // stream error conditions, RFC 6120 §4.9.3
	NSStanzas   = "urn:ietf:params:xml:ns:xmpp-stanzas" // stanza error conditions, RFC 6120 §8.3.3
	NSTLS       = "urn:ietf:params:xml:ns:xmpp-tls"     // STARTTLS, RFC 6120 §5
	NSSASL      = "urn:ietf:params:xml:ns:xmpp-sasl"    // RFC 6120 §6
	NSSASLCB    = "urn:xmpp:sasl-cb:0"                  // XEP-0440: the channel-binding types a server supports
	NSBind      = "urn:ietf:params:xml:ns:xmpp-bind"    // RFC 6120 §7
	NSSession   = "urn:ietf:params:xml:ns:xmpp-session" // RFC 3921 §3, optional in RFC 6121
	NSRoster    = "jabber:iq:roster"                    // RFC 6121 §2
	NSVersion   = "jabber:iq:version"                   // XEP-0092

	NSPing       = "urn:xmpp:ping"                          // XEP-0199
	NSDiscoInfo  = "http://jabber.org/protocol/disco#info"  // XEP-0030
	NSDiscoItems = "http://jabber.org/protocol/disco#items" // XEP-0030
	NSDelay      = "urn:xmpp:delay"                         // XEP-0203
	NSOldDelay   = "jabber:x:delay"                         // XEP-0091, still sent by some servers
	NSIdle       = "urn:xmpp:idle:1"                        // XEP-0319 last user interaction in presence
	NSRSM        = "http://jabber.org/protocol/rsm"         // XEP-0059

	NSData     = "jabber:x:data"                       // XEP-0004 data forms
	NSCommands = "http://jabber.org/protocol/commands" // XEP-0050 ad-hoc commands
	NSAdmin    = "http://jabber.org/protocol/admin"    // XEP-0133 service administration

	NSPrivilege1 = "urn:xmpp:privilege:1" // XEP-0356 privileged entity, the older namespace (ejabberd 23.01)
	NSPrivilege2 = "urn:xmpp:privilege:2" // XEP-0356 privileged entity, the current namespace (Prosody's mod_privilege)

	NSPubsub           = "http://jabber.org/protocol/pubsub"             // XEP-0060
	NSPubsubOwner      = "http://jabber.org/protocol/pubsub#owner"       // XEP-0060 §8
	NSPubsubEvent      = "http://jabber.org/protocol/pubsub#event"       // XEP-0060 notifications
	NSPubsubErrors     = "http://jabber.org/protocol/pubsub#errors"      // XEP-0060 application error conditions
	NSPubsubNodeConfig = "http://jabber.org/protocol/pubsub#node_config" // XEP-0060 §16.4 FORM_TYPE
)
