package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestRefuses checks the bounds the tool keeps before it dials anything.
func TestRefuses(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-addr", "192.0.2.1:5222", "-password", "pw"}, 1, "not a loopback address"},
		{[]string{"-password", "pw", "-rate", "0"}, 1, "needs a number of changes"},
		{[]string{"-password", "pw", "-n", "100001"}, 1, "users: 100001"},
		{[]string{"-password", "pw", "-duration", "2h"}, 1, "duration"},
		{[]string{}, 1, "no password"},
		{[]string{"-nosuchflag"}, 2, "flag provided but not defined"},
	} {
		var out, errb bytes.Buffer
		t.Setenv("PUBPRESENCE_LOAD_PASSWORD", "")
		code := run(context.Background(), tc.args, &out, &errb)
		if code != tc.code || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit %d with %q", tc.args, code, errb.String(), tc.code, tc.want)
		}
	}
}
