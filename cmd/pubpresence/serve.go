package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/pubpresence/pubpresence/config"
	"github.com/pubpresence/pubpresence/metrics"
	"github.com/pubpresence/pubpresence/service"
	"github.com/pubpresence/pubpresence/status"
	"github.com/pubpresence/pubpresence/web"
)

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
