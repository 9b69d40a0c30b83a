// Package admin runs the XEP-0133 (Service Administration) commands that
// pubpresence needs, through XEP-0050 ad-hoc commands, and parses the answers
// of Prosody 0.12 and ejabberd 23.01.
//
// Two commands are used: get-online-users-list (every online user; on Prosody,
// with details=1, every session with its show, priority and IP) and user-stats
// (the resources and IPs of one user). ejabberd's get-online-users-list gives
// bare JIDs only, so Client.OnlineSessions runs one user-stats per user there,
// with bounded concurrency. The legacy ejabberd disco#items node "online users"
// (full JIDs, no IPs) is available through Client.OnlineResources.
//
// The component must be an admin of the server (Prosody: admins = {...};
// ejabberd: the configure ACL) and send the commands from its bare domain;
// the transport (IQer) takes care of the from address.
package admin

import "github.com/pubpresence/pubpresence/internal/xmpp"

// Namespaces and command nodes. The namespaces are the core's, kept here
// for callers outside the module that read or send these commands.
const (
	NSCommands = xmpp.NSCommands
	NSAdmin    = xmpp.NSAdmin

	NodeOnlineUsersList = NSAdmin + "#get-online-users-list"
	NodeUserStats       = NSAdmin + "#user-stats"

	// NodeOnlineUsers is ejabberd's legacy disco#items node listing the full
	// JID of every session on the host (admins only).
	NodeOnlineUsers = "online users"
)
