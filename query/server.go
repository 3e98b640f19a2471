package query

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/enqueue"
	"github.com/notifyd/notifyd/internal/ingest"
	"github.com/notifyd/notifyd/internal/netguard"
	"github.com/notifyd/notifyd/internal/retry"
	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/taskauth"
	"github.com/notifyd/notifyd/internal/tasks"
	"github.com/notifyd/notifyd/query/console"
)

// Config tunes the API server. Zero values take the documented defaults.
type Config struct {
	// AdminToken authorises everything. Empty disables admin access.
	AdminToken string
	// ProducerTokens may ingest and cancel notifications.
	ProducerTokens []string
	// MaxPayload is the largest notification payload (default 256 KiB).
	MaxPayload int
	// Targets decides which callback URLs are accepted.
	Targets netguard.Policy
	// Retry is the service default retry policy (for max_attempts of new notifications).
	Retry retry.Policy
	// SecretGrace is how long a rotated-out signing secret keeps signing (default 24 h).
	SecretGrace time.Duration
	// Ready reports readiness beyond the database and Redis (optional).
	Ready  func(ctx context.Context) error
	Logger *slog.Logger
	// TaskKeys seals the tasks the API queues (NOTIFYD_TASK_KEY; nil: unsigned).
	TaskKeys *taskauth.Keyring

	// RateLimits are the token buckets (zero fields: DefaultRateLimits).
	RateLimits RateLimits
	// TrustedProxies may name the client IP in X-Forwarded-For; without
	// them the client IP is the connection's peer.
	TrustedProxies []netip.Prefix
	// RequestTimeout is every request's deadline (default 30 s).
	RequestTimeout time.Duration
	// ListMaxBytes bounds a listing page's payload bytes (default 4 MiB).
	ListMaxBytes int
	// StreamsPerReceiver bounds a receiver's open event streams on this
	// API process (default 5); StreamHeartbeat is how often an idle stream
	// gets a comment line and catches up from Postgres (default 15 s).
	StreamsPerReceiver int
	StreamHeartbeat    time.Duration
}

func (c *Config) setDefaults() {
	if c.MaxPayload <= 0 {
		c.MaxPayload = ingest.DefaultMaxPayload
	}
	if c.Retry.MaxAttempts == 0 {
		c.Retry = retry.Default()
	}
	if c.SecretGrace <= 0 {
		c.SecretGrace = 24 * time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 30 * time.Second
	}
	if c.ListMaxBytes <= 0 {
		c.ListMaxBytes = DefaultListMaxBytes
	}
	if c.StreamsPerReceiver <= 0 {
		c.StreamsPerReceiver = defaultStreamsPerReceiver
	}
	if c.StreamHeartbeat <= 0 {
		c.StreamHeartbeat = defaultStreamHeartbeat
	}
}

// Server is the HTTP API.
type Server struct {
	cfg   Config
	store *store.Store
	rdb   redis.UniversalClient
	queue tasks.Enqueuer
	auth  *authenticator
	echo  *echo.Echo
	rules ingest.Rules
	limit *rateLimiter
	// routeSet holds the route templates, for the HTTP metrics' route label.
	routeSet map[string]bool
	// streams bounds and ends the pull receivers' event streams.
	streams *streamLimiter
	// ingests records concurrent ingest requests in shared statements;
	// linger queues their notifications in shared batch tasks.
	ingests  *ingestRecorder
	linger   *enqueue.Linger
	producer *enqueue.Producer
}

// New builds the server; it does not listen until Run.
func New(s *store.Store, rdb redis.UniversalClient, queue tasks.Enqueuer, cfg Config) *Server {
	cfg.setDefaults()
	srv := &Server{
		cfg: cfg, store: s, rdb: rdb, queue: queue,
		auth:  newAuthenticator(s, cfg.AdminToken, cfg.ProducerTokens),
		rules: ingest.Rules{MaxPayload: cfg.MaxPayload, Targets: cfg.Targets},
		limit: newRateLimiter(cfg.RateLimits),

		streams: newStreamLimiter(cfg.StreamsPerReceiver),
	}
	srv.ingests = newIngestRecorder(srv)
	srv.producer = enqueue.New(rdb, queue, cfg.TaskKeys)
	srv.linger = enqueue.NewLinger(func(ctx context.Context, ds []*tasks.Deliver) []enqueue.Result {
		res, _ := srv.producer.Enqueue(ctx, ds) // each member's error is in its Result
		return res
	}, enqueue.DefaultLinger, 0)
	// Filled once the routes exist; the metrics middleware reads it.
	srv.routeSet = map[string]bool{}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = srv.handleError
	e.IPExtractor = ipExtractor(cfg.TrustedProxies)
	// Outermost, so that every answer is counted, with the status sent.
	e.Use(httpMetrics(srv.routeSet))
	e.Use(srv.trace)
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{DisableStackAll: true, LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
		cfg.Logger.Error("panic in handler", "path", c.Path(), "err", err, "stack", string(stack))
		return err
	}}))
	// The payload limit plus room for the envelope fields.
	e.Use(bodyLimit(int64(cfg.MaxPayload+envelopeRoom), batchBodyLimit(cfg.MaxPayload)))
	e.Use(middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		LogStatus: true, LogURIPath: true, LogMethod: true, LogLatency: true, LogError: true,
		LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
			level := slog.LevelDebug
			if v.Status >= 500 {
				level = slog.LevelError
			}
			cfg.Logger.Log(c.Request().Context(), level, "http request", "method", v.Method, "path", v.URIPath,
				"status", v.Status, "latency", v.Latency, "err", v.Error)
			return nil
		},
	}))
	e.Use(srv.deadline)
	srv.auth.creds.logger = cfg.Logger
	srv.echo = e
	srv.routes()
	for path := range routeTemplates(e) {
		srv.routeSet[path] = true
	}
	return srv
}

func (s *Server) routes() {
	e := s.echo
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	// No /metrics here: it lives on the ops listener (NOTIFYD_OPS_ADDR).
	e.GET("/openapi.json", s.openapi)

	v1 := e.Group("/v1", s.limit.authFailures, s.auth.middleware, s.limit.perPrincipal, s.audit)
	v1.POST("/receivers", s.createReceiver, requireAdmin)
	v1.GET("/receivers", s.listReceivers, requireAdmin)
	v1.GET("/receivers/:id", s.getReceiver, requireAdminOrSelf)
	v1.PATCH("/receivers/:id", s.updateReceiver, requireAdmin)
	v1.POST("/receivers/:id/rotate-secret", s.rotateSecret, requireAdminOrSelf)
	v1.GET("/receivers/summary", s.receiversSummary, requireAdmin)
	v1.GET("/receivers/:id/summary", s.receiverSummary, requireAdminOrSelf)

	v1.POST("/notifications", s.ingest, requireProducer)
	v1.POST(ingestBatchRoute, s.ingestMany, requireProducer)
	v1.GET("/notifications/:id", s.getNotification)
	v1.GET("/notifications", s.listNotifications)
	v1.GET("/notifications/by-key/:key", s.getByKey)
	v1.GET("/notifications/:id/attempts", s.listAttempts)
	v1.POST("/notifications/:id/redeliver", s.redeliver)
	v1.POST("/notifications/:id/cancel", s.cancel, requireProducer)
	v1.POST("/notifications/recorded", s.recorded, requireProducer)
	v1.POST("/receivers/:id/recover", s.recoverFailed, requireAdminOrSelf)
	// Pull delivery (issue 16).
	v1.GET(streamRoute, s.stream)
	v1.POST("/notifications/:id/ack", s.ack)
	v1.POST("/notifications/ack", s.ackBatch)
	v1.POST("/receivers/:id/enable", s.enableReceiver, requireAdminOrSelf)

	// Audit (issue 11, part D).
	v1.GET("/audit-events", s.listAuditEvents, requireAdmin)
	// Credentials (issue 11, part B): receiver API keys and producer records.
	v1.POST("/receivers/:id/api-keys", s.createAPIKey, requireAdmin)
	v1.GET("/receivers/:id/api-keys", s.listAPIKeys, requireAdmin)
	v1.DELETE("/receivers/:id/api-keys/:key_id", s.revokeAPIKey, requireAdmin)
	v1.POST("/producers", s.createProducer, requireAdmin)
	v1.GET("/producers", s.listProducers, requireAdmin)
	v1.DELETE("/producers/:id", s.deleteProducer, requireAdmin)

	// The web console (issue 12): HTML pages that call this API in process
	// with the logged-in session's credential.
	web := echo.WrapHandler(console.New(console.Config{API: e, Store: s.store, Redis: s.rdb,
		AdminToken: s.cfg.AdminToken, Logger: s.cfg.Logger}))
	e.Any("/console/*", web)
	e.GET("/console", func(c echo.Context) error { return c.Redirect(http.StatusMovedPermanently, "/console/") })
}

// Listen keeps the server subscribed to credential invalidations (a key
// revoked through another API process) until ctx ends. Serve runs it; a
// caller that mounts Handler itself runs it alongside, or the server
// authenticates every request against the database.
//
// When ctx ends, every event stream ends too: the process is stopping, and
// an HTTP server's shutdown would otherwise wait for streams that never end
// on their own.
func (s *Server) Listen(ctx context.Context) {
	s.auth.creds.listen(ctx, s.rdb)
	s.streams.closeAll()
}

// Handler returns the HTTP handler (tests mount it on httptest servers).
func (s *Server) Handler() http.Handler { return s.echo }

// Run serves on addr until ctx is cancelled, then drains in-flight requests
// for up to 15 s.
func (s *Server) Run(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("api listen %s: %w", addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve is Run on an existing listener.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler: s.echo,
		// Slow-loris safe: bounded time to send headers and body.
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		// Past the request deadline, so a timed-out request still gets
		// its 503 answer written.
		WriteTimeout:   s.cfg.RequestTimeout + 30*time.Second,
		IdleTimeout:    120 * time.Second,
		MaxHeaderBytes: 32 << 10,
		ErrorLog:       slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn),
	}
	s.cfg.Logger.Info("api listening", "addr", ln.Addr().String())
	listenCtx, stopListen := context.WithCancel(ctx)
	defer stopListen()
	go s.Listen(listenCtx)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("api serve: %w", err)
	case <-ctx.Done():
	}
	s.streams.closeAll() // clients reconnect, with Last-Event-ID, to another process
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err := hs.Shutdown(shutdownCtx)
	// After the requests: the last of them wait for their batch.
	s.ingests.close()
	s.linger.Close()
	if err != nil {
		return fmt.Errorf("api shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	s.cfg.Logger.Info("api stopped")
	return nil
}

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 only when Postgres and Redis answer, so a load balancer
// stops sending traffic to an instance that cannot accept notifications.
// The public port says only whether: error text names hosts, ports and
// users, so it goes to the log (and the ops listener's /readyz).
func (s *Server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	var errs []error
	if err := s.store.Ping(ctx); err != nil {
		errs = append(errs, fmt.Errorf("postgres: %w", err))
	}
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		errs = append(errs, fmt.Errorf("redis: %w", err))
	}
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(ctx); err != nil {
			errs = append(errs, fmt.Errorf("process: %w", err))
		}
	}
	if len(errs) > 0 {
		s.cfg.Logger.Warn("not ready", "err", errors.Join(errs...))
		return c.JSON(http.StatusServiceUnavailable, map[string]any{"ready": false})
	}
	return c.JSON(http.StatusOK, map[string]any{"ready": true})
}
