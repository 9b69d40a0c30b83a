package admin

import (
	"bytes"
	"encoding/xml"

	"github.com/pubpresence/pubpresence/internal/xmltext"
	"github.com/pubpresence/pubpresence/internal/xmpp"
)

var onlineUsersFields = []xmpp.FieldValue{{Var: "max_items", Value: "all"}, {Var: "details", Value: "1"}}

// OnlineUsersRequest is the one-shot execute of get-online-users-list: the
// submitted form (hidden FORM_TYPE, max_items "all", details "1") goes in the
// first execute, so Prosody answers "completed" at once and keeps no session.
//
// ejabberd 23.01 does not accept it: its mod_configure has no set_form clause
// for this node, so a submitted form gets service-unavailable, while the
// plain execute (OnlineUsersExecuteRequest) completes at once.
// Client.OnlineUsers handles both.
func OnlineUsersRequest() []byte {
	return commandRequest(NodeOnlineUsersList, "execute", "", onlineUsersFields)
}

// OnlineUsersExecuteRequest is get-online-users-list executed with no form.
// ejabberd answers "completed" with the list; Prosody answers "executing" with
// a form to fill in (answer it with OnlineUsersCompleteRequest).
func OnlineUsersExecuteRequest() []byte {
	return commandRequest(NodeOnlineUsersList, "execute", "", nil)
}

// OnlineUsersCompleteRequest completes the get-online-users-list session
// sessionid with max_items "all" and details "1" (Prosody's second step).
func OnlineUsersCompleteRequest(sessionid string) []byte {
	return commandRequest(NodeOnlineUsersList, "complete", sessionid, onlineUsersFields)
}

// UserStatsRequest is the one-shot execute of user-stats for the account
// bare, with the form in the first execute; both servers answer "completed".
func UserStatsRequest(bare string) []byte {
	return commandRequest(NodeUserStats, "execute", "", []xmpp.FieldValue{{Var: "accountjid", Value: bare}})
}

// OnlineResourcesRequest is the disco#items query of ejabberd's
// "online users" node.
func OnlineResourcesRequest() []byte {
	var b bytes.Buffer
	b.WriteString("<query xmlns='" + xmpp.NSDiscoItems + "' node='")
	escape(&b, NodeOnlineUsers)
	b.WriteString("'/>")
	return b.Bytes()
}

// commandRequest builds <command/> for node. With fields, it carries a
// submitted form with the admin FORM_TYPE.
func commandRequest(node, action, sessionid string, fields []xmpp.FieldValue) []byte {
	b := make([]byte, 0, 384) // a user-stats request is about 300 bytes
	b = append(b, "<command xmlns='"+xmpp.NSCommands+"' node='"...)
	b = xmltext.Append(b, node)
	b = append(b, '\'')
	if action != "" {
		b = append(b, " action='"...)
		b = xmltext.Append(b, action)
		b = append(b, '\'')
	}
	if sessionid != "" {
		b = append(b, " sessionid='"...)
		b = xmltext.Append(b, sessionid)
		b = append(b, '\'')
	}
	if fields == nil {
		return append(b, "/>"...)
	}
	b = append(b, '>')
	b = xmpp.AppendForm(b, "submit", xmpp.NSAdmin, fields...)
	return append(b, "</command>"...)
}

// escape writes s as XML text that is also safe inside a quoted attribute.
func escape(b *bytes.Buffer, s string) {
	_ = xml.EscapeText(b, []byte(s)) // a bytes.Buffer never fails
}
