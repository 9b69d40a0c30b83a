package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/pubpresence/pubpresence/config"
	"github.com/pubpresence/pubpresence/internal/feed"
	"github.com/pubpresence/pubpresence/metrics"
	"github.com/pubpresence/pubpresence/service"
	"github.com/pubpresence/pubpresence/status"
	"github.com/pubpresence/pubpresence/web"
)

// newLogger returns the service's logger. Its level is the global one
// (zerolog.SetGlobalLevel), which setLevel sets, so that SIGHUP can change
// it while every copy of the logger is in use.
func newLogger(cfg config.Log, w io.Writer) zerolog.Logger {
	// Milliseconds: a start's steps take a few each.
	zerolog.TimeFieldFormat = logTime
	if cfg.Format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: logTime}
	}
	setLevel(cfg.Level)
	return zerolog.New(w).Level(zerolog.TraceLevel).With().Timestamp().Logger()
}

// logTime is RFC 3339 with milliseconds.
const logTime = "2006-01-02T15:04:05.000Z07:00"

// setLevel sets the level of every logger; config validation has checked
// the name.
func setLevel(name string) {
	level, err := zerolog.ParseLevel(name)
	if err != nil {
		level = zerolog.InfoLevel
	}
	zerolog.SetGlobalLevel(level)
}

// Bounds of a stop after SIGINT or SIGTERM, on top of the service's own
// (about 8 s: draining the publish queue, publishing init, closing the
// stream): the HTTP listener gets httpStopTimeout to finish its requests.
const httpStopTimeout = 2 * time.Second

// serve runs the service with cfg, read from path, until SIGINT or SIGTERM;
// SIGHUP reads path again and applies what can change while running.
func serve(cfg *config.Config, path string, stderr io.Writer) error {
	log := newLogger(cfg.Log, stderr)
	m := metrics.New(versionString())
	st := &status.Tracker{}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// After the first signal, a second one ends the process at once.
	go func() { <-ctx.Done(); stop() }()

	ev := log.Info().Str("version", versionString()).Str("config", path).Str("component", cfg.XMPP.Component)
	if addrs := cfg.XMPP.AddressList(); len(addrs) > 1 {
		ev = ev.Strs("addresses", addrs) // one stream per cluster node (docs/ejabberd-cluster.md)
	} else {
		ev = ev.Str("address", cfg.XMPP.Address)
	}
	ev.Strs("domains", cfg.XMPP.Domains).Str("pubsub", cfg.XMPP.Pubsub).
		Str("access_model", cfg.Nodes.AccessModel).Int("readers", len(cfg.Nodes.Readers)).
		Bool("publish_ip", cfg.Nodes.PublishIP).Msg("starting")

	svc := service.New(cfg, log, m, st)
	api, err := newAPI(cfg, svc, m, st, log)
	if err != nil {
		return err
	}
	var srv *http.Server
	if cfg.HTTP.Listen != "" {
		ln, err := net.Listen("tcp", cfg.HTTP.Listen)
		if err != nil {
			return fmt.Errorf("http listener: %w", err)
		}
		srv = &http.Server{Handler: web.Handler(m, st, api), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error().Err(err).Msg("http listener")
			}
		}()
		ev := log.Info().Str("listen", ln.Addr().String())
		if api != nil {
			ev = ev.Str("page", "http://"+ln.Addr().String()+"/")
		}
		ev.Bool("api", api != nil).Msg("http listening")
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-hup:
				reload(path, svc, api, m, log)
			case <-ctx.Done():
				return
			}
		}
	}()

	err = svc.Run(ctx)

	if api != nil {
		api.Close() // event streams end; they would hold Shutdown up
	}
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), httpStopTimeout)
		_ = srv.Shutdown(sctx)
		cancel()
	}
	log.Info().Msg("stopped")
	return err
}

// reload reads the configuration file again (SIGHUP) and applies what can
// change while running. An invalid file changes nothing.
func reload(path string, svc *service.Service, api *web.API, m *metrics.Metrics, log zerolog.Logger) {
	next, err := config.Load(path)
	if err != nil {
		m.Reloads.WithLabelValues("error").Inc()
		var ce *config.Error
		if errors.As(err, &ce) {
			log.Error().Str("config", path).Strs("problems", ce.Problems).Msg("reload refused: invalid configuration; nothing changed")
			return
		}
		log.Error().Err(err).Str("config", path).Msg("reload refused; nothing changed")
		return
	}
	applied, restart := svc.Reload(next)
	if slices.Contains(applied, "log.level") {
		setLevel(next.Log.Level)
	}
	if api != nil {
		if slices.Contains(applied, "http.cors_origins") {
			api.SetCORS(next.HTTP.CORSOrigins)
		}
		// The tokens file is read again on every SIGHUP, changed or not:
		// that is how tokens are added and revoked.
		if !slices.Contains(restart, "http.tokens_file") {
			tokens, err := web.ReadTokens(next.HTTP.TokensFile)
			if err != nil {
				m.Reloads.WithLabelValues("error").Inc()
				log.Error().Err(err).Msg("http.tokens_file not reloaded: the tokens in force are kept")
			} else {
				api.SetTokens(tokens)
				log.Info().Int("tokens", tokens.Len()).Msg("http.tokens_file read again")
			}
		}
	}
	m.Reloads.WithLabelValues("ok").Inc()
	ev := log.Info()
	if len(restart) > 0 {
		ev = log.Warn().Strs("needs_restart", restart)
	}
	if applied == nil {
		applied = []string{}
	}
	ev.Str("config", path).Strs("applied", applied).Msg("configuration reloaded")
}

// newAPI returns the HTTP face of cfg (nil when http.tokens_file is ""),
// with its feed told by svc.
func newAPI(cfg *config.Config, svc *service.Service, m *metrics.Metrics, st *status.Tracker, log zerolog.Logger) (*web.API, error) {
	h := cfg.HTTP
	if h.TokensFile == "" {
		return nil, nil
	}
	tokens, err := web.ReadTokens(h.TokensFile)
	if err != nil {
		return nil, fmt.Errorf("http.tokens_file: %w", err)
	}
	f := feed.New(feed.Config{History: h.ResumeEvents, WithIP: cfg.Nodes.PublishIP})
	svc.SetFeed(f)
	log.Info().Int("tokens", tokens.Len()).Int("max_streams", h.MaxStreams).Strs("cors_origins", h.CORSOrigins).Msg("http API on")
	return web.NewAPI(web.APIConfig{Feed: f, Tokens: tokens, CORSOrigins: h.CORSOrigins, MaxStreams: h.MaxStreams,
		Domains: cfg.XMPP.Domains, Log: log}, m, st), nil
}
