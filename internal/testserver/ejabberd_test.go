//go:build integration

package testserver

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// TestIntegrationEjabberdHarness: the private ejabberd starts on loopback,
// takes the component and the harness, creates users (resetting the
// password of existing ones), survives Stop/Start and Kill with its data,
// and leaves no process behind.
func TestIntegrationEjabberdHarness(t *testing.T) {
	const other = "other.localhost"
	s := StartEjabberd(t, WithHost(other), WithMaxItems(500))
	if s.Kind != Ejabberd || s.Domain != "localhost" || s.Component != "pubpresence.localhost" || s.Pubsub != "pubsub.localhost" {
		t.Errorf("server names = %q %q %q %q", s.Kind, s.Domain, s.Component, s.Pubsub)
	}
	addrs := []string{s.ComponentAddr}
	if s.ComponentAddr6 != "" {
		addrs = append(addrs, s.ComponentAddr6)
	}
	for _, addr := range addrs {
		if got, cond := rawHandshake(t, addr, s.Component, s.Secret); got != "handshake" {
			t.Errorf("handshake on %s: got <%s/> (%s), want <handshake/>", addr, got, cond)
		}
	}
	if got, cond := rawHandshake(t, s.ComponentAddr, s.Component, "wrong"); got != "error" || cond != "not-authorized" {
		t.Errorf("handshake with a wrong secret: got <%s/> %q, want a not-authorized stream error", got, cond)
	}
	if n := adminCommandCount(t, s); n < 5 {
		t.Errorf("admin component sees %d commands, want the admin set", n)
	}
	// The harness's stream must not take the component's traffic: with both
	// connected, every answer to the component arrives on its own stream.
	haddr, name, secret := s.Harness()
	if haddr == s.ComponentAddr {
		t.Errorf("the harness shares the component's listener %s", haddr)
	}
	h, err := dialComponent(haddr, name, secret, 10*time.Second)
	if err != nil {
		t.Fatalf("connect as the harness: %v", err)
	}
	for i := range 10 {
		if n := adminCommandCount(t, s); n < 5 {
			t.Fatalf("query %d: the component saw %d commands while the harness was connected", i, n)
		}
	}
	h.close()

	locals := make([]string, 2*commandWindow+88) // more than one window of commands in flight
	for i := range locals {
		locals[i] = fmt.Sprintf("user%03d", i)
	}
	began := time.Now()
	if err := s.CreateUsers(locals, "pw1"); err != nil {
		t.Fatalf("CreateUsers: %v", err)
	}
	t.Logf("created %d users in %v", len(locals), time.Since(began).Round(time.Millisecond))
	if err := s.CreateUsers(locals[:1], "pw2"); err != nil {
		t.Fatalf("CreateUsers of an existing user: %v", err)
	}
	if err := plainLogin(s.C2SAddr, s.Domain, locals[0], "pw2"); err != nil {
		t.Errorf("login with the new password: %v", err)
	}
	if err := plainLogin(s.C2SAddr, s.Domain, locals[0], "pw1"); !errors.Is(err, errAuthFailed) {
		t.Errorf("login with the old password: got %v, want %v", err, errAuthFailed)
	}
	if err := plainLogin(s.C2SAddr, s.Domain, locals[99], "pw1"); err != nil {
		t.Errorf("login: %v", err)
	}
	if s.C2SAddr6 != "" {
		if err := plainLogin(s.C2SAddr6, s.Domain, locals[1], "pw1"); err != nil {
			t.Errorf("login over %s: %v", s.C2SAddr6, err)
		}
	}
	if err := s.CreateUsersOn(other, []string{"eve"}, "pw"); err != nil {
		t.Fatalf("CreateUsersOn(%s): %v", other, err)
	}
	if err := plainLogin(s.C2SAddr, other, "eve", "pw"); err != nil {
		t.Errorf("login eve@%s: %v", other, err)
	}
	for _, want := range []string{"max_items_node: 500", `"pubpresence.localhost":`, "module: ejabberd_service"} {
		if !strings.Contains(s.ConfigSnippet(), want) {
			t.Errorf("ConfigSnippet lacks %q:\n%s", want, s.ConfigSnippet())
		}
	}
	if strings.Contains(s.ConfigSnippet(), s.harness) {
		t.Errorf("ConfigSnippet shows the harness component:\n%s", s.ConfigSnippet())
	}

	// Stop and Start keep the data and the ports.
	stopThenStart(t, s)
	if err := plainLogin(s.C2SAddr, s.Domain, locals[0], "pw2"); err != nil {
		t.Errorf("login after Stop/Start: %v", err)
	}

	// Kill takes the whole process group: no port program is left.
	pid := s.Pid()
	if err := s.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if err := waitGroupGone(pid); err != nil {
		t.Error(err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("Start after Kill: %v", err)
	}
	if err := plainLogin(s.C2SAddr, s.Domain, locals[0], "pw2"); err != nil {
		t.Errorf("login after Kill/Start: %v", err)
	}
}

// waitGroupGone waits up to 5 s until no process is left in the process
// group pgid.
func waitGroupGone(pgid int) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		entries, _ := os.ReadDir("/proc")
		var left []string
		for _, e := range entries {
			b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
			if err != nil {
				continue
			}
			// pid (comm) state ppid pgrp ...: comm may hold spaces.
			f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
			if len(f) > 2 && f[2] == fmt.Sprint(pgid) && f[0] != "Z" {
				left = append(left, e.Name())
			}
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v of group %d still running after Kill", left, pgid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stopThenStart stops s, checks that its c2s port is closed, and starts it
// again.
func stopThenStart(t *testing.T, s *Server) {
	t.Helper()
	began := time.Now()
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	stopped := time.Since(began)
	if c, err := net.DialTimeout("tcp", s.C2SAddr, time.Second); err == nil {
		c.Close()
		t.Errorf("c2s port %s still accepts after Stop", s.C2SAddr)
	}
	began = time.Now()
	if err := s.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("stop took %v, start %v", stopped.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}
