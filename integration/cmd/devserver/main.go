// Command devserver runs a private Prosody or ejabberd on loopback for
// trying pubpresence by hand, and writes a pubpresence config for it.
//
//	go run ./integration/cmd/devserver -dir .run [-server prosody|ejabberd] [-c2s 15222] [-component 15347]
//
// The server keeps its data in DIR/prosody or DIR/ejabberd across runs. It serves the domain
// "localhost" with the users alice, bob (passwords "alice", "bob") and the
// node reader monitor (password "monitor"), the component
// "pubpresence.localhost" as a global admin granted privileged presence
// (XEP-0356: every user is tracked, no roster step; on ejabberd with its
// HTTP API on a port of its own, in the config as ejabberd.api_url), and pubsub on
// "pubsub.localhost". The component secret is made on the first run and kept
// in DIR/component.secret. Once the server is ready, devserver writes
// DIR/pubpresence.toml, prints how to use it, and runs until SIGINT or
// SIGTERM. scripts/run.sh starts it and then pubpresence.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/BurntSushi/toml"

	"github.com/pubpresence/pubpresence/config"
	"github.com/pubpresence/pubpresence/internal/testserver"
)

// The names the dev server uses.
const (
	component = "pubpresence.localhost"
	reader    = "monitor"
)

// users are the accounts made on every start: local part and password.
var users = []struct{ local, password string }{
	{"alice", "alice"},
	{"bob", "bob"},
	{reader, "monitor"},
}

// Files in the -dir directory.
const (
	secretFile = "component.secret"
	configFile = "pubpresence.toml"
	tokensFile = "tokens" // the HTTP API's bearer tokens
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("devserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", ".run", "directory for the server's data, the secret and pubpresence.toml")
	kind := fs.String("server", string(testserver.Prosody), "the server to run: prosody or ejabberd")
	c2s := fs.Int("c2s", 15222, "client port (c2s) on 127.0.0.1 and ::1")
	comp := fs.Int("component", 15347, "component port (XEP-0114) on 127.0.0.1 and ::1")
	listen := fs.String("http", "127.0.0.1:9273", "http.listen written into pubpresence.toml")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "devserver: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if k := testserver.Kind(*kind); k != testserver.Prosody && k != testserver.Ejabberd {
		fmt.Fprintf(stderr, "devserver: -server %q: want prosody or ejabberd\n", *kind)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, testserver.Kind(*kind), *dir, *c2s, *comp, *listen, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "devserver:", err)
		return 1
	}
	return 0
}

// serve runs the server until ctx is done or the server dies.
func serve(ctx context.Context, kind testserver.Kind, dir string, c2s, comp int, listen string, stdout, stderr io.Writer) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	cfgPath := filepath.Join(dir, configFile)
	// The file appears only once the server is ready: scripts/run.sh waits for it.
	if err := os.Remove(cfgPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove old config: %w", err)
	}
	secret, err := loadSecret(filepath.Join(dir, secretFile))
	if err != nil {
		return err
	}
	s, err := testserver.New(kind, filepath.Join(dir, string(kind)),
		testserver.WithPorts(c2s, comp), testserver.WithComponent(component, secret), testserver.WithPrivilege())
	if err != nil {
		return err
	}
	if err := s.Start(); err != nil {
		return fmt.Errorf("%w\n--- %s log tail (%s) ---\n%s", err, kind, s.LogPath, s.LogTail(40))
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = s.Stop()
		}
	}()
	for _, u := range users {
		if err := s.CreateUsers([]string{u.local}, u.password); err != nil {
			return err
		}
	}
	tokensPath, err := filepath.Abs(filepath.Join(dir, tokensFile))
	if err != nil {
		return err
	}
	token, err := loadToken(tokensPath)
	if err != nil {
		return err
	}
	data, err := serviceConfig(s, listen, tokensPath)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(cfgPath, data, 0o600); err != nil {
		return fmt.Errorf("write pubpresence config: %w", err)
	}
	fmt.Fprint(stdout, howTo(s, cfgPath, listen, token))

	select {
	case <-ctx.Done():
		fmt.Fprintf(stderr, "devserver: stopping %s (pid %d)\n", kind, s.Pid())
		stopped = true
		if err := s.Stop(); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "devserver: %s stopped\n", kind)
		return nil
	case <-s.Done():
		stopped = true
		err := s.Stop() // reports how it ended
		if err == nil {
			err = fmt.Errorf("%s exited", kind)
		}
		return fmt.Errorf("%w\n--- %s log tail (%s) ---\n%s", err, kind, s.LogPath, s.LogTail(40))
	}
}

// loadSecret returns the component secret kept at path, making and saving a
// random one when there is none.
func loadSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if s := strings.TrimSpace(string(b)); s != "" {
			return s, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("component secret: %w", err)
	}
	raw := make([]byte, 16)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("component secret: %w", err)
	}
	secret := hex.EncodeToString(raw)
	if err := writeFileAtomic(path, []byte(secret+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("component secret: %w", err)
	}
	return secret, nil
}

// loadToken returns the HTTP API's token kept in the tokens file at path
// ("dev TOKEN"), making and saving a random one when there is none.
func loadToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "dev" {
				return f[1], nil
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("tokens file: %w", err)
	}
	raw := make([]byte, 18)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(raw)
	content := "# bearer tokens of the HTTP API (docs/http.md): NAME TOKEN, one per line\ndev " + token + "\n"
	if err := writeFileAtomic(path, []byte(content), 0o600); err != nil {
		return "", fmt.Errorf("tokens file: %w", err)
	}
	return token, nil
}

// serviceConfig returns a complete pubpresence config for s, checked with
// config.Parse; the HTTP API is on with the tokens file at tokens.
func serviceConfig(s *testserver.Server, listen, tokens string) ([]byte, error) {
	cfg := config.Default()
	cfg.XMPP.Address = s.ComponentAddr
	cfg.XMPP.Component = s.Component
	cfg.XMPP.Secret = s.Secret
	cfg.XMPP.Domains = []string{s.Domain}
	cfg.XMPP.Pubsub = s.Pubsub
	cfg.Nodes.Readers = []string{reader + "@" + s.Domain}
	cfg.HTTP.Listen = listen
	cfg.HTTP.TokensFile = tokens
	cfg.Ejabberd.APIURL = s.APIURL // "" on Prosody
	// As docs/operations.md advises: Prosody's purge is one SQL DELETE,
	// ejabberd's holds the server.
	cfg.Sync.PurgeStale = s.Kind == testserver.Prosody
	cfg.Log = config.Log{Level: "info", Format: "console"}

	var b bytes.Buffer
	b.WriteString("# pubpresence config for the private " + string(s.Kind) + " of integration/cmd/devserver\n" +
		"# (data in " + s.Dir + "). Rewritten on every start of devserver.\n\n")
	enc := toml.NewEncoder(&b)
	enc.Indent = ""
	if err := enc.Encode(cfg); err != nil {
		return nil, fmt.Errorf("encode pubpresence config: %w", err)
	}
	if _, err := config.Parse(b.Bytes(), nil); err != nil {
		return nil, fmt.Errorf("pubpresence config for the dev server is invalid: %w", err)
	}
	return b.Bytes(), nil
}

// writeFileAtomic writes data to a temporary file next to path and renames
// it over path, so a reader never sees half a file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// howTo is what devserver prints once the server is ready.
func howTo(s *testserver.Server, cfgPath, listen, token string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s dev server ready (pid %d, data in %s)\n", s.Kind, s.Pid(), s.Dir)
	fmt.Fprintf(&b, "  XMPP client address: %s", s.C2SAddr)
	if s.C2SAddr6 != "" {
		fmt.Fprintf(&b, " or %s", s.C2SAddr6)
	}
	fmt.Fprintf(&b, ", domain %s (no TLS: allow plain-text login in the client)\n", s.Domain)
	b.WriteString("  users:")
	for i, u := range users {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, " %s@%s password %s", u.local, s.Domain, strconv.Quote(u.password))
	}
	fmt.Fprintf(&b, "\n  %s@%s is the reader allowed to read the nodes on %s\n", reader, s.Domain, s.Pubsub)
	fmt.Fprintf(&b, "  the server grants %s privileged presence (XEP-0356): every user is tracked from login, with nothing in the roster\n", s.Component)
	fmt.Fprintf(&b, "  component %s on %s\n", s.Component, s.ComponentAddr)
	fmt.Fprintf(&b, "  pubpresence config: %s\n", cfgPath)
	fmt.Fprintf(&b, "    go run ./cmd/pubpresence run --config %s\n", cfgPath)
	fmt.Fprintf(&b, "  who is online, in a browser: http://%s/ (token %s, kept in %s)\n", listen, token, filepath.Join(filepath.Dir(cfgPath), tokensFile))
	b.WriteString("Ctrl-C (SIGINT) or SIGTERM stops the server.\n")
	return b.String()
}
