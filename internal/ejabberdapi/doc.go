// Package ejabberdapi calls ejabberd's HTTP API (mod_http_api), so far for
// one command: connected_users_info (from mod_admin_extra), which lists
// every c2s session of the server with its show, status text, priority and
// IP address in one call.
//
// It is a protocol package: it knows ejabberd's JSON and HTTP answers, and
// nothing of what the caller does with the sessions. docs/ejabberd.md shows
// the server configuration (a loopback listener and the api_permissions
// entry) that internal/testserver runs ejabberd with.
package ejabberdapi

// CommandConnectedUsersInfo is the mod_admin_extra command that lists the
// sessions: POST {} to <api URL>/connected_users_info.
const CommandConnectedUsersInfo = "connected_users_info"
