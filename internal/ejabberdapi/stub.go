// Package ejabberdapi: TEMPORARY stub until the harness branch lands.
package ejabberdapi

import (
	"context"
	"errors"
	"net/http"
)

// Session is one c2s session as ejabberd's connected_users_info reports it.
type Session struct {
	JID      string
	Show     string
	Text     string
	Priority int
	IP       string
}

// Client calls ejabberd's HTTP API.
type Client struct {
	URL  string
	HTTP *http.Client
}

// ConnectedUsersInfo is a stub.
func (c *Client) ConnectedUsersInfo(ctx context.Context) ([]Session, error) {
	return nil, errors.New("stub")
}
