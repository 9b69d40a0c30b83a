// Command pubpresence publishes the presence of every user of a Jabber
// server on pubsub nodes. See README.md.
//
//	pubpresence [run] --config FILE   run the service (the default)
//	pubpresence check --config FILE   validate the configuration and exit
//	pubpresence version               print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/pubpresence/pubpresence/config"
	"github.com/pubpresence/pubpresence/metrics"
	"github.com/pubpresence/pubpresence/service"
	"github.com/pubpresence/pubpresence/status"
	"github.com/pubpresence/pubpresence/web"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = ""

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: pubpresence [run|check|version] [--config FILE]

  run      run the service until SIGINT or SIGTERM (the default)
  check    validate the configuration: exit 0 when valid, 2 with one line per problem
  version  print the version
`

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("pubpresence "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	path := fs.String("config", "pubpresence.toml", "configuration file (TOML)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	switch cmd {
	case "version":
		fmt.Fprintln(stdout, "pubpresence", versionString())
		return 0
	case "check":
		if _, err := config.Load(*path); err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		fmt.Fprintln(stdout, *path+": ok")
		return 0
	case "run":
		cfg, err := config.Load(*path)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		if err := serve(cfg, stderr); err != nil {
			fmt.Fprintln(stderr, "pubpresence:", err)
			return 1
		}
		return 0
	default:
		fmt.Fprintf(stderr, "unknown command %q\n%s", cmd, usage)
		return 2
	}
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "dev"
}

func newLogger(cfg config.Log, w io.Writer) zerolog.Logger {
	if cfg.Format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	}
	level, err := zerolog.ParseLevel(cfg.Level)
	if err != nil {
		level = zerolog.InfoLevel
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}

func serve(cfg *config.Config, stderr io.Writer) error {
	log := newLogger(cfg.Log, stderr)
	m := metrics.New()
	st := &status.Tracker{}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// After the first signal, a second one ends the process at once.
	go func() { <-ctx.Done(); stop() }()

	log.Info().Str("version", versionString()).Str("component", cfg.XMPP.Component).
		Str("address", cfg.XMPP.Address).Strs("domains", cfg.XMPP.Domains).Msg("starting")

	var srv *http.Server
	if cfg.HTTP.Listen != "" {
		ln, err := net.Listen("tcp", cfg.HTTP.Listen)
		if err != nil {
			return fmt.Errorf("http listener: %w", err)
		}
		srv = &http.Server{Handler: web.Handler(m, st), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error().Err(err).Msg("http listener")
			}
		}()
		log.Info().Str("listen", ln.Addr().String()).Msg("http listening")
	}

	err := service.New(cfg, log, m, st).Run(ctx)

	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = srv.Shutdown(sctx)
		cancel()
	}
	log.Info().Msg("stopped")
	return err
}
