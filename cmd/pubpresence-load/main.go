// Command pubpresence-load drives a local XMPP server with many users that
// change presence, and measures what reaches a pubsub subscriber of
// pubpresence's live node and a contact subscribed to the users.
//
//	pubpresence-load -n 1000 -rate 500 -duration 30s -watch reader -contact buddy
//
// The accounts (<prefix>000 … and the watcher and contact) must exist;
// every user logs in, subscribes to the component (and befriends the
// contact), sends available presence, then the users change presence in
// turn at -rate changes per second. It prints what was sent and, for each
// observer, what was received, lost, duplicated or reordered, and the
// latencies from send to receipt. Only loopback servers are accepted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pubpresence/pubpresence/internal/c2s"
	"github.com/pubpresence/pubpresence/internal/load"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	addr, domain, password, prefix, resource string
	n, logins, changes                       int
	component, pubsub, live                  string
	watch, contact                           string
	rate                                     float64
	duration, drain, settle                  time.Duration
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pubpresence-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.addr, "addr", "127.0.0.1:5222", "the server's c2s address (loopback only)")
	fs.StringVar(&o.domain, "domain", "localhost", "the users' domain")
	fs.StringVar(&o.password, "password", "", "every account's password (or PUBPRESENCE_LOAD_PASSWORD)")
	fs.StringVar(&o.prefix, "prefix", "load", "users are <prefix>000, <prefix>001, …")
	fs.StringVar(&o.resource, "resource", "load", "resource of every session")
	fs.IntVar(&o.n, "n", 100, fmt.Sprintf("number of users (at most %d)", load.MaxUsers))
	fs.IntVar(&o.logins, "logins", 32, "logins at once")
	fs.StringVar(&o.component, "component", "pubpresence.localhost", `the component every user subscribes to ("" for none)`)
	fs.StringVar(&o.pubsub, "pubsub", "pubsub.localhost", "the pubsub service")
	fs.StringVar(&o.live, "live", "presence/live", "the live node the watcher subscribes to")
	fs.StringVar(&o.watch, "watch", "", "local part of a reader account that subscribes to the live node and times its events")
	fs.StringVar(&o.contact, "contact", "", "local part of an account that befriends every user and times their presence (the server's own delivery)")
	fs.Float64Var(&o.rate, "rate", 100, "presence changes per second over all users; 0 = as fast as the server takes them (needs -changes)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, fmt.Sprintf("how long to send (at most %v)", load.MaxDuration))
	fs.IntVar(&o.changes, "changes", 0, "stop after this many changes (0: only -duration)")
	fs.DurationVar(&o.drain, "drain", 10*time.Second, "how long to wait for the observers after the last change")
	fs.DurationVar(&o.settle, "settle", 2*time.Second, "pause between the initial presence and the first change")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.password == "" {
		o.password = os.Getenv("PUBPRESENCE_LOAD_PASSWORD")
	}
	if err := drive(ctx, o, stdout); err != nil {
		fmt.Fprintln(stderr, "pubpresence-load:", err)
		return 1
	}
	return 0
}

func drive(ctx context.Context, o options, out io.Writer) error {
	if o.password == "" {
		return errors.New("no password: -password or PUBPRESENCE_LOAD_PASSWORD")
	}
	r, err := load.NewRun(load.RunConfig{Rate: o.rate, Duration: o.duration, Changes: o.changes, Drain: o.drain})
	if err != nil {
		return err
	}
	if err := load.CheckLoopback(o.addr); err != nil {
		return err
	}
	names := load.Names(o.prefix, o.n)
	jids := make([]string, len(names))
	for i, n := range names {
		jids[i] = n + "@" + o.domain
	}
	var subscribe []string
	if o.component != "" {
		subscribe = append(subscribe, o.component)
	}
	if o.contact != "" {
		cl, err := observerLogin(ctx, o, o.contact)
		if err != nil {
			return err
		}
		defer cl.Close()
		if err := load.Befriend(cl, jids); err != nil {
			return err
		}
		r.Observe(load.NewObserver("contact", cl))
		subscribe = append(subscribe, cl.Bare())
	}
	if o.watch != "" {
		cl, err := observerLogin(ctx, o, o.watch)
		if err != nil {
			return err
		}
		defer cl.Close()
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = cl.Subscribe(sctx, o.pubsub, o.live)
		cancel()
		if err != nil {
			return fmt.Errorf("watcher subscribes to %s: %w", o.live, err)
		}
		r.Observe(load.NewObserver("live", cl))
	}
	t0 := time.Now()
	f, err := load.Login(ctx, load.FleetConfig{Addr: o.addr, Domain: o.domain, Password: o.password,
		Users: names, Resource: o.resource, Subscribe: subscribe, Logins: o.logins})
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(out, "logged in %d users in %v\n", f.Len(), time.Since(t0).Round(time.Millisecond))
	if err := f.Available("load start"); err != nil {
		return err
	}
	select {
	case <-time.After(o.settle):
	case <-ctx.Done():
		return ctx.Err()
	}
	rep, err := r.Drive(ctx, f)
	fmt.Fprint(out, rep)
	return err
}

func observerLogin(ctx context.Context, o options, local string) (*c2s.Client, error) {
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cl, err := c2s.Dial(lctx, c2s.Config{Addr: o.addr, JID: local + "@" + o.domain, Password: o.password, Resource: "load-observer"})
	if err != nil {
		return nil, fmt.Errorf("login %s: %w", local, err)
	}
	return cl, nil
}
