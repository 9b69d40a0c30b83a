package ejabberdapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Bounds of one call.
const (
	// DefaultTimeout bounds a whole call (connect, request, answer) when
	// Client.HTTP is nil.
	DefaultTimeout = 10 * time.Second
	// maxBody bounds the answer read: some 300 000 sessions.
	maxBody = 64 << 20
	// maxMessage bounds the server's message quoted in an HTTPError.
	maxMessage = 200
)

var defaultHTTP = &http.Client{Timeout: DefaultTimeout}

// Client calls ejabberd's HTTP API.
type Client struct {
	// URL is the API's base URL, the path mod_http_api is mounted on:
	// "http://127.0.0.1:5280/api". Credentials may be given in it, as
	// "http://admin%40example.org:password@127.0.0.1:5280/api" (the @ of
	// the JID may also be left unescaped): they are sent as HTTP basic
	// auth, and ejabberd checks them against that account. Errors show
	// the URL with the password replaced by "xxxxx".
	URL string
	// HTTP is the client the calls go through; nil means one with
	// DefaultTimeout.
	HTTP *http.Client
}

// HTTPError is an answer other than 200 OK.
type HTTPError struct {
	URL        string // the command's URL, password redacted
	StatusCode int    // e.g. 403
	Status     string // e.g. "403 Forbidden"
	// Code is ejabberd's error code from a JSON error body ({"status":
	// "error","code":32,"message":"…"}), 0 when there was none.
	Code int
	// Message is ejabberd's message: the "message" of a JSON error body,
	// a JSON string body ("unknown_command"), or the body's text, white
	// space collapsed and cut to 200 bytes.
	Message string
}

func (e *HTTPError) Error() string {
	msg := fmt.Sprintf("ejabberdapi: POST %s: %s", e.URL, e.Status)
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.Code != 0 {
		msg += " (code " + strconv.Itoa(e.Code) + ")"
	}
	if hint := e.hint(); hint != "" {
		msg += "; " + hint
	}
	return msg
}

// hint says what the operator may have to change, for the answers measured
// on ejabberd 23.01.
func (e *HTTPError) hint() string {
	switch {
	case e.StatusCode == http.StatusForbidden:
		return "ejabberd's api_permissions do not let this caller run the command"
	case e.StatusCode == http.StatusUnauthorized:
		return "ejabberd refused the credentials in the URL"
	case e.StatusCode == http.StatusBadRequest && e.Message == "unknown_command":
		return "is mod_admin_extra loaded? it provides " + CommandConnectedUsersInfo
	case e.StatusCode == http.StatusNotFound:
		return "is mod_http_api mounted on this path?"
	}
	return ""
}

// ConnectedUsersInfo POSTs {} to URL+"/connected_users_info" and returns
// the sessions (see ParseConnectedUsersInfo). An answer other than 200 is
// an *HTTPError.
func (c *Client) ConnectedUsersInfo(ctx context.Context) ([]Session, error) {
	body, err := c.call(ctx, CommandConnectedUsersInfo)
	if err != nil {
		return nil, err
	}
	return ParseConnectedUsersInfo(body)
}

// call POSTs {} to the command and returns the body of a 200 answer.
func (c *Client) call(ctx context.Context, command string) ([]byte, error) {
	base, err := url.Parse(c.URL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error quotes the URL, password and all
		}
		return nil, fmt.Errorf("ejabberdapi: API URL %s: %w", redactRaw(c.URL), err)
	}
	if base.Scheme != "http" && base.Scheme != "https" || base.Host == "" {
		return nil, fmt.Errorf("ejabberdapi: API URL %s: want http://host:port/path or https://…", base.Redacted())
	}
	u := base.JoinPath(command)
	shown := u.Redacted()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader("{}"))
	if err != nil {
		return nil, fmt.Errorf("ejabberdapi: POST %s: %w", shown, err)
	}
	req.Header.Set("Content-Type", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = defaultHTTP
	}
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its URL is ours, redacted below
		}
		return nil, fmt.Errorf("ejabberdapi: POST %s: %w", shown, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("ejabberdapi: POST %s: read answer: %w", shown, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, newHTTPError(shown, resp, body)
	}
	if len(body) > maxBody {
		return nil, fmt.Errorf("ejabberdapi: POST %s: answer longer than %d MiB", shown, maxBody>>20)
	}
	return body, nil
}

func newHTTPError(shown string, resp *http.Response, body []byte) *HTTPError {
	e := &HTTPError{URL: shown, StatusCode: resp.StatusCode, Status: resp.Status}
	var obj struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	var str string
	switch {
	case json.Unmarshal(body, &obj) == nil && obj.Message != "":
		e.Code, e.Message = obj.Code, obj.Message
	case json.Unmarshal(body, &str) == nil:
		e.Message = str
	default:
		e.Message = bodyText(body)
	}
	e.Message = bound(strings.Join(strings.Fields(e.Message), " "))
	if e.Message == e.Status {
		e.Message = "" // "400 Bad Request": 400 Bad Request
	}
	return e
}

// bodyText is the text of an error body: an HTML page's text without its
// tags (ejabberd answers a request it cannot route with an XHTML page
// whose text is "404 Not Found"), or the body as it is.
func bodyText(body []byte) string {
	s := string(body)
	if !strings.HasPrefix(strings.TrimSpace(s), "<") {
		return s
	}
	if i := strings.Index(s, "<body"); i >= 0 {
		s = s[i:]
	}
	var b strings.Builder
	in := false
	for _, r := range s {
		switch {
		case r == '<':
			in = true
			b.WriteByte(' ')
		case r == '>':
			in = false
		case !in:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// bound cuts s to maxMessage bytes, at a rune boundary.
func bound(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	s = s[:maxMessage]
	return strings.ToValidUTF8(s, "") + "…"
}

// redactRaw hides the password of a URL that does not parse: the text
// between the first ':' after "//" and the last '@' of the authority.
func redactRaw(s string) string {
	rest := s
	if i := strings.Index(s, "//"); i >= 0 {
		rest = s[i+2:]
	}
	auth := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		auth = rest[:i]
	}
	at := strings.LastIndexByte(auth, '@')
	if at < 0 {
		return strconv.Quote(s)
	}
	user := auth[:at]
	if i := strings.IndexByte(user, ':'); i >= 0 {
		user = user[:i] + ":xxxxx"
	}
	start := len(s) - len(rest)
	return strconv.Quote(s[:start] + user + s[start+at:])
}
