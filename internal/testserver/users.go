package testserver

import (
	"bufio"
	"encoding/xml"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pubpresence/pubpresence/internal/xmpp"
)

const (
	nodeAddUser = xmpp.NSAdmin + "#add-user"
	nodeSetPass = xmpp.NSAdmin + "#change-user-password"

	// msgAccountExists is the note Prosody's admin#add-user gives for an
	// existing user; ejabberd answers with a conflict error.
	msgAccountExists = "Account already exists"
)

// CreateUsers creates accounts <local>@Domain with password, or sets the
// password of those that exist already. It runs XEP-0133 admin#add-user
// commands, pipelined, from the harness's own admin component, so it works
// while the server runs. The server hashes each password (PBKDF2, 4096
// rounds): about 2 to 5 ms per user, 1000 users in 2 to 5 s.
func (s *Server) CreateUsers(locals []string, password string) error {
	return s.createUsers(s.Domain, locals, password)
}

// CreateUsersOn is CreateUsers for the users <local>@host. host is Domain
// or one of the extra hosts of WithHost.
func (s *Server) CreateUsersOn(host string, locals []string, password string) error {
	if host != s.Domain && !slices.Contains(s.Hosts, host) {
		return fmt.Errorf("create users on %s: not a host of this server (want %s or one of WithHost %q)", host, s.Domain, s.Hosts)
	}
	return s.createUsers(host, locals, password)
}

func (s *Server) createUsers(host string, locals []string, password string) error {
	if password == "" {
		return fmt.Errorf("create users on %s: empty password", host)
	}
	for _, l := range locals {
		if err := checkLocal(l); err != nil {
			return fmt.Errorf("create users on %s: %w", host, err)
		}
	}
	if len(locals) == 0 {
		return nil
	}
	c, err := dialComponent(s.harnessAddr, s.harness, s.harnessSecret, 10*time.Second)
	if err != nil {
		return fmt.Errorf("create users on %s: %w", host, err)
	}
	defer c.close()
	// Generous: the server hashes each password, a few ms apiece.
	if err := c.conn.SetDeadline(time.Now().Add(30*time.Second + time.Duration(len(locals))*20*time.Millisecond)); err != nil {
		return fmt.Errorf("create users on %s: %w", host, err)
	}
	exist, err := c.adminCommands(host, nodeAddUser, locals, password)
	if err != nil {
		return fmt.Errorf("create users on %s: %w", host, err)
	}
	if len(exist) > 0 {
		if _, err := c.adminCommands(host, nodeSetPass, exist, password); err != nil {
			return fmt.Errorf("create users on %s: reset password of existing users: %w", host, err)
		}
	}
	return nil
}

// forbiddenInLocal are the characters RFC 7622 keeps out of a local part.
const forbiddenInLocal = `"&'/:<>@`

// checkLocal rejects local parts that would not make a plain user JID.
func checkLocal(l string) error {
	switch {
	case l == "":
		return errors.New("empty local part")
	case len(l) > 1023:
		return fmt.Errorf("local part %.20q…: longer than 1023 bytes", l)
	case !utf8.ValidString(l):
		return fmt.Errorf("local part %q: not UTF-8", l)
	case strings.ContainsAny(l, forbiddenInLocal):
		return fmt.Errorf("local part %q: contains one of %s", l, forbiddenInLocal)
	case strings.IndexFunc(l, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return fmt.Errorf("local part %q: contains space or control characters", l)
	}
	return nil
}

// commandReply is an <iq/> answer to an ad-hoc command.
type commandReply struct {
	XMLName xml.Name
	ID      string `xml:"id,attr"`
	Type    string `xml:"type,attr"`
	Command *struct {
		Status string `xml:"status,attr"`
		Notes  []struct {
			Type string `xml:"type,attr"`
			Text string `xml:",chardata"`
		} `xml:"note"`
	} `xml:"http://jabber.org/protocol/commands command"`
	Inner []byte `xml:",innerxml"`
}

// stanzaError returns the answer's error, nil for a result.
func (r *commandReply) stanzaError() error {
	if r.Type != "error" {
		return nil
	}
	return xmpp.ParseError(r.Inner)
}

// problem returns what went wrong, or "" when the command completed.
func (r *commandReply) problem() string {
	if err := r.stanzaError(); err != nil {
		return "iq error: " + err.Error()
	}
	if r.Command == nil {
		return "no <command/> in the result"
	}
	for _, n := range r.Command.Notes {
		if n.Type == "error" {
			return strings.TrimSpace(n.Text)
		}
	}
	if r.Command.Status != "completed" {
		return "status " + r.Command.Status
	}
	return ""
}

// commandWindow bounds the admin commands in flight on one connection: all
// 10 001 at once lost ejabberd some of their answers.
const commandWindow = 256

// adminCommands runs the one-shot admin command node for every local part,
// pipelined on c (commandWindow at a time), and waits for every answer.
// For admin#add-user it returns the local parts that already existed
// instead of failing on them.
func (c *componentConn) adminCommands(domain, node string, locals []string, password string) (exist []string, err error) {
	writeErr := make(chan error, 1)
	slots := make(chan struct{}, commandWindow) // one per command in flight
	stop := make(chan struct{})                 // the reader is done
	go func() {
		w := bufio.NewWriterSize(c.conn, 64<<10)
		var b []byte
		for i, l := range locals {
			select {
			case slots <- struct{}{}:
			default:
				// The window is full: what is buffered must reach the
				// server before its answers can free a slot.
				if err := w.Flush(); err != nil {
					writeErr <- err
					return
				}
				select {
				case slots <- struct{}{}:
				case <-stop:
					writeErr <- nil
					return
				}
			}
			b = fmt.Appendf(b[:0], "<iq type='set' id='h%d' from='%s' to='%s'><command xmlns='%s' node='%s' action='execute'>",
				i, xmlEscape(c.name), xmlEscape(domain), xmpp.NSCommands, node)
			b = xmpp.AppendForm(b, "submit", xmpp.NSAdmin,
				xmpp.FieldValue{Var: "accountjid", Value: l + "@" + domain},
				xmpp.FieldValue{Var: "password", Value: password},
				xmpp.FieldValue{Var: "password-verify", Value: password})
			_, _ = w.Write(append(b, "</command></iq>"...))
		}
		writeErr <- w.Flush()
	}()
	defer func() {
		close(stop) // unblocks a writer waiting for a slot
		if err != nil {
			c.conn.Close() // unblocks a writer in Write
		}
		if werr := <-writeErr; werr != nil && err == nil {
			err = fmt.Errorf("%s: send: %w", node, werr)
		}
	}()

	var failed []string
	pending := len(locals)
	for pending > 0 {
		start, err := c.nextElement()
		if err != nil {
			return nil, fmt.Errorf("%s: %d of %d answers missing: %w", node, pending, len(locals), err)
		}
		var r commandReply
		if err := c.dec.DecodeElement(&r, &start); err != nil {
			return nil, fmt.Errorf("%s: read answer: %w", node, err)
		}
		if r.XMLName.Local != "iq" || (r.Type != "result" && r.Type != "error") || !strings.HasPrefix(r.ID, "h") {
			continue // not an answer of ours
		}
		var i int
		if _, err := fmt.Sscanf(r.ID, "h%d", &i); err != nil || i < 0 || i >= len(locals) {
			continue
		}
		pending--
		<-slots
		switch p := r.problem(); {
		case p == "":
		case node == nodeAddUser && (p == msgAccountExists || errors.Is(r.stanzaError(), xmpp.ErrConflict)):
			exist = append(exist, locals[i])
		default:
			failed = append(failed, fmt.Sprintf("%s: %s", locals[i], p))
		}
	}
	if len(failed) > 0 {
		more := ""
		if len(failed) > 5 {
			more = fmt.Sprintf(" (and %d more)", len(failed)-5)
			failed = failed[:5]
		}
		return nil, fmt.Errorf("%s: %s%s", node, strings.Join(failed, "; "), more)
	}
	return exist, nil
}
