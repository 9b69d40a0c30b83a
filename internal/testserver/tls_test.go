package testserver

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWriteTLSFiles: the CA signs a server certificate for exactly the
// given names, the key matches it and only its owner may read it, and
// writing again (New on an existing dir) replaces all three.
func TestWriteTLSFiles(t *testing.T) {
	dir := t.TempDir()
	// A key file left readable by a previous run must end up 0600 too.
	if err := os.MkdirAll(filepath.Join(dir, "tls"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls", "server.key"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := writeTLSFiles(dir, []string{"localhost", "*.localhost", "other.localhost"})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(f.key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	pair, err := tls.LoadX509KeyPair(f.cert, f.key)
	if err != nil {
		t.Fatalf("certificate and key do not load as a pair: %v", err)
	}
	if len(pair.Certificate) != 1 {
		t.Errorf("server.crt holds %d certificates, want the server's only", len(pair.Certificate))
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got > certValidity+2*time.Hour || got < certValidity {
		t.Errorf("validity %v, want about %v", got, certValidity)
	}
	if leaf.IsCA {
		t.Error("server certificate is a CA")
	}
	caPEM, err := os.ReadFile(f.ca)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(caPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("ca.crt is not a PEM certificate: %q", caPEM)
	}
	fromFile := x509.NewCertPool()
	fromFile.AppendCertsFromPEM(caPEM)
	if !fromFile.Equal(f.pool) {
		t.Error("ca.crt and the pool hold different CAs")
	}
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"localhost", true},
		{"pubsub.localhost", true},
		{"other.localhost", true},
		{"conference.other.localhost", false},
		{"example.org", false},
	} {
		_, err := leaf.Verify(x509.VerifyOptions{DNSName: tt.name, Roots: f.pool})
		if (err == nil) != tt.ok {
			t.Errorf("verify for %s: %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "localhost", Roots: x509.NewCertPool()}); err == nil {
		t.Error("certificate verifies without the CA")
	}

	again, err := writeTLSFiles(dir, []string{"localhost"})
	if err != nil {
		t.Fatalf("second write: %v", err)
	}
	if again.pool.Equal(f.pool) {
		t.Error("second write kept the old CA")
	}
	if _, err := tls.LoadX509KeyPair(again.cert, again.key); err != nil {
		t.Errorf("second write: %v", err)
	}
}

// TestRenderConfigTLS: WithTLS makes both kinds require STARTTLS on c2s
// with the generated files, certificate names cover the extra hosts, and
// without it neither config mentions a certificate.
func TestRenderConfigTLS(t *testing.T) {
	wants := map[Kind]struct{ with, without []string }{
		Prosody: {
			with: []string{`"posix"; "tls";`, "c2s_require_encryption = true", "ssl = {\n\tcertificate = ", "/tls/server.crt\";",
				"/tls/server.key\";", "STARTTLS required on c2s"},
			without: []string{"c2s_require_encryption = false", "no TLS"},
		},
		Ejabberd: {
			with: []string{"certfiles:\n  - \"", "/tls/server.crt\"\n  - \"", "/tls/server.key\"\n", "ca_file: \"", "/tls/ca.crt\"",
				"auto: false", "    starttls: true ", "    starttls_required: true ", "STARTTLS required on c2s"},
			without: []string{"    starttls: false\n", "    starttls_required: false\n", "no TLS"},
		},
	}
	for _, kind := range Kinds {
		w := wants[kind]
		t.Run(string(kind), func(t *testing.T) {
			o, err := buildOptions(kind, []Option{WithTLS(), WithHost("other.localhost")})
			if err != nil {
				t.Fatal(err)
			}
			s, err := newServer(kind, t.TempDir(), o)
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(s.ConfigPath)
			if err != nil {
				t.Fatal(err)
			}
			cfg := string(b)
			for _, want := range w.with {
				if !strings.Contains(cfg, want) {
					t.Errorf("WithTLS config lacks %q:\n%s", want, cfg)
				}
			}
			for _, not := range w.without {
				if strings.Contains(cfg, not) {
					t.Errorf("WithTLS config has %q", not)
				}
			}
			if kind == Ejabberd && strings.Count(cfg, "starttls_required: true") != len(s.configData().Interfaces) {
				t.Errorf("not every c2s listener requires STARTTLS:\n%s", cfg)
			}
			if s.CAFile != filepath.Join(s.Dir, "tls", "ca.crt") {
				t.Errorf("CAFile = %q", s.CAFile)
			}
			tc := s.TLSConfig()
			if tc == nil || tc.ServerName != s.Domain || tc.RootCAs == nil || !tc.RootCAs.Equal(s.tls.pool) {
				t.Fatalf("TLSConfig = %+v", tc)
			}
			if tc2 := s.TLSConfig(); tc2 == tc {
				t.Error("TLSConfig returns the same *tls.Config twice: callers may change it")
			}
			pair, err := tls.LoadX509KeyPair(s.tls.cert, s.tls.key)
			if err != nil {
				t.Fatal(err)
			}
			leaf, _ := x509.ParseCertificate(pair.Certificate[0])
			for _, name := range []string{s.Domain, s.Pubsub, "other.localhost", "pubsub.other.localhost"} {
				if err := leaf.VerifyHostname(name); err != nil {
					t.Errorf("certificate: %v", err)
				}
			}

			o, err = buildOptions(kind, nil)
			if err != nil {
				t.Fatal(err)
			}
			plain, err := newServer(kind, t.TempDir(), o)
			if err != nil {
				t.Fatal(err)
			}
			b, err = os.ReadFile(plain.ConfigPath)
			if err != nil {
				t.Fatal(err)
			}
			cfg = string(b)
			for _, want := range w.without {
				if !strings.Contains(cfg, want) {
					t.Errorf("plain config lacks %q:\n%s", want, cfg)
				}
			}
			for _, not := range []string{"ssl", "certfiles", "ca_file", "/tls/", "starttls: true", `"tls"`} {
				if strings.Contains(cfg, not) {
					t.Errorf("plain config has %q:\n%s", not, cfg)
				}
			}
			if plain.TLSConfig() != nil || plain.CAFile != "" {
				t.Errorf("without WithTLS: TLSConfig = %v, CAFile = %q; want nil and \"\"", plain.TLSConfig(), plain.CAFile)
			}
			if _, err := os.Stat(filepath.Join(plain.Dir, "tls")); !os.IsNotExist(err) {
				t.Errorf("without WithTLS the tls dir exists: %v", err)
			}
		})
	}
}
