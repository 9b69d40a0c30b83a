package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestCommands(t *testing.T) {
	t.Setenv("PUBPRESENCE_XMPP_SECRET", "")
	for _, tc := range []struct {
		args       []string
		code       int
		stdout     string // substring
		stderrHas  []string
		stderrNone bool
	}{
		{args: []string{"version"}, code: 0, stdout: "pubpresence ", stderrNone: true},
		{args: []string{"check", "--config", "../../config.example.toml"}, code: 0, stdout: ": ok", stderrNone: true},
		{args: []string{"check", "--config", "../../config/testdata/good.toml"}, code: 0, stdout: ": ok"},
		{args: []string{"check", "--config", "../../config/testdata/missing-secret.toml"}, code: 2,
			stderrHas: []string{"xmpp.secret: required"}},
		{args: []string{"check", "--config", "../../config/testdata/several-mistakes.toml"}, code: 2,
			stderrHas: []string{"xmpp.", "nodes.", "\n"}},
		{args: []string{"check", "--config", "../../config/testdata/bad-address-list.toml"}, code: 2,
			stderrHas: []string{`xmpp.address[1]: "node2.example.org" is not host:port`, "xmpp.address[2]: duplicate of xmpp.address[0]"}},
		{args: []string{"check", "--config", "does-not-exist.toml"}, code: 2, stderrHas: []string{"does-not-exist.toml"}},
		{args: []string{"run", "--config", "../../config/testdata/unknown-key.toml"}, code: 2, stderrHas: []string{"unknown key"}},
		{args: []string{"--config", "../../config/testdata/bad-log-level.toml"}, code: 2, stderrHas: []string{"log.level"}},
		{args: []string{"frobnicate"}, code: 2, stderrHas: []string{`unknown command "frobnicate"`, "usage:"}},
		{args: []string{"check", "--nope"}, code: 2, stderrHas: []string{"flag provided but not defined"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.code, stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.stdout) {
				t.Errorf("stdout %q lacks %q", stdout.String(), tc.stdout)
			}
			for _, s := range tc.stderrHas {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr.String())
				}
			}
			if tc.stderrNone && stderr.Len() > 0 {
				t.Errorf("unexpected stderr:\n%s", stderr.String())
			}
		})
	}
}
