// Package feed keeps a masterdata.Store in step with a NATS JetStream stream of change events, so that
// every replica of a fleet applies the same events in the same order and reports the same revision.
//
// Each message carries one change event, the same JSON as one line of `tollgatectl masterdata apply`,
// published with Nats-Msg-Id = event_id so that JetStream drops a resent event within the stream's
// duplicate window (the store's seen event ids are the second line of defence). Every replica reads the
// whole stream with its own ordered consumer (never a shared queue group), from its revision + 1, and
// applies each message with masterdata.Store.ApplyAt at the message's stream sequence: the revision is
// the sequence of the last message processed, bad and duplicate messages included.
//
// The stream is the source of truth a replica replays at start (the store is in memory), so it is
// created with file storage and no age or size limit; see EnsureStream.
package feed

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/server/masterdata"
)

// Defaults for Config.
const (
	DefaultStream       = "TOLLGATE_MASTERDATA"
	DefaultSubject      = "tollgate.masterdata"
	DefaultStartTimeout = 2 * time.Minute
	DefaultHeadInterval = time.Second
	// DuplicateWindow is the duplicate window of a stream EnsureStream creates: a message whose
	// Nats-Msg-Id was stored within it is acknowledged as a duplicate and not stored again.
	DuplicateWindow = 10 * time.Minute
)

// Config configures a Feed (and, through URL, Stream and Subject, a Publisher).
type Config struct {
	// URL is the NATS server, nats://host:4222 (a comma-separated list for a cluster). Required.
	URL string
	// Stream is the JetStream stream's name. Default DefaultStream.
	Stream string
	// Subject is the subject events are published on and consumed from. Default DefaultSubject.
	Subject string
	// Name names the NATS connection (the replica id), for the server's monitoring.
	Name string
	// StartTimeout bounds New's catch-up: New returns once the store has applied every message that
	// was in the stream when it started, or an error when that takes longer. Default DefaultStartTimeout.
	StartTimeout time.Duration
	// HeadInterval is how often the stream's head is read for Status (lag). Default DefaultHeadInterval.
	HeadInterval time.Duration
	// Registry, if set, receives the feed's metrics.
	Registry prometheus.Registerer
	// Observe, if set, is called with the outcome of every event applied from the stream (for the
	// service's event counter), on the consuming goroutine after the event is applied: it holds the
	// feed back while it runs, so it must be quick.
	Observe func(masterdata.Outcome)
}

func (c Config) withDefaults() (Config, error) {
	if c.URL == "" {
		return c, errors.New("master-data stream: URL is required")
	}
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.Subject == "" {
		c.Subject = DefaultSubject
	}
	if strings.ContainsAny(c.Subject, "*> ") {
		return c, fmt.Errorf("master-data stream: subject %q must be a literal subject (no wildcards)", c.Subject)
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = DefaultStartTimeout
	}
	if c.HeadInterval <= 0 {
		c.HeadInterval = DefaultHeadInterval
	}
	return c, nil
}

// Rejection reasons, the reason label of tollgate_masterdata_stream_rejected_total.
const (
	ReasonUnparseable = "unparseable"
	ReasonInvalid     = "invalid"
	ReasonStale       = "stale"
)

// Rejected describes a message the feed refused. EventID is empty when the message did not parse.
type Rejected struct {
	Sequence uint64
	EventID  string
	Reason   string
	Error    string
	At       time.Time
}

// Status is a replica's view of its stream.
type Status struct {
	URL     string // without credentials
	Stream  string
	Subject string
	// Connected is false while NATS cannot be reached; the store keeps its data meanwhile.
	Connected bool
	// Revision is the store's revision: the sequence of the last message applied.
	Revision uint64
	// Head is the sequence of the stream's last message on Subject as last seen, at HeadSeenAt; Lag is
	// Head minus Revision (0 when the replica is ahead of what it last saw).
	Head       uint64
	HeadSeenAt time.Time
	Lag        uint64
	// RejectedEvents counts refused messages; LastRejected is the last one, or nil.
	RejectedEvents uint64
	LastRejected   *Rejected
}

// Feed consumes the stream into a store. It is safe for concurrent use.
type Feed struct {
	cfg     Config
	store   *masterdata.Store
	log     zerolog.Logger
	nc      *nats.Conn
	js      jetstream.JetStream
	stream  jetstream.Stream
	metrics *metrics

	mu           sync.Mutex
	head         uint64
	headSeenAt   time.Time
	rejected     uint64
	lastRejected *Rejected

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New connects to NATS, creates the stream if it does not exist (EnsureStream), starts consuming it into
// store from the store's revision + 1, and returns once the store has caught up with the stream's head
// as it was at the start. It returns an error, and leaves nothing running, if NATS cannot be reached, the
// stream cannot be created, or the catch-up does not finish within Config.StartTimeout: a replica that
// has not seen the data must not answer on it.
//
// store must be fed by this Feed only (ApplyAt); Close stops it.
func New(ctx context.Context, cfg Config, store *masterdata.Store, log zerolog.Logger) (*Feed, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	f := &Feed{cfg: cfg, store: store, log: log.With().Str("component", "masterdata-stream").Logger()}
	f.nc, err = Connect(cfg, f.log)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
		}
	}()
	if f.js, err = jetstream.New(f.nc); err != nil {
		return nil, fmt.Errorf("master-data stream: %w", err)
	}
	setupCtx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	if f.stream, err = EnsureStream(setupCtx, f.js, cfg.Stream, cfg.Subject); err != nil {
		return nil, err
	}
	startHead, err := f.readHead(setupCtx)
	if err != nil {
		return nil, fmt.Errorf("master-data stream %s: read head: %w", cfg.Stream, err)
	}
	if f.metrics, err = newMetrics(cfg.Registry, f); err != nil {
		return nil, fmt.Errorf("master-data stream: register metrics: %w", err)
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	f.cancel = stop
	f.wg.Add(2)
	go func() { defer f.wg.Done(); f.consume(runCtx) }()
	go func() { defer f.wg.Done(); f.watchHead(runCtx) }()

	if err := f.waitRevision(setupCtx, startHead); err != nil {
		return nil, fmt.Errorf("master-data stream %s: catch up to sequence %d (at revision %d after %s): %w",
			cfg.Stream, startHead, store.Snapshot().Revision(), cfg.StartTimeout, err)
	}
	f.log.Info().Str("url", redact(cfg.URL)).Str("stream", cfg.Stream).Str("subject", cfg.Subject).
		Uint64("revision", store.Snapshot().Revision()).Msg("master data caught up with the stream")
	ok = true
	return f, nil
}

// Connect connects to the NATS server of cfg.URL, reconnecting forever after a loss (a replica keeps
// serving its last data meanwhile), and logs connection changes.
func Connect(cfg Config, log zerolog.Logger) (*nats.Conn, error) {
	nc, err := nats.Connect(cfg.URL,
		nats.Name(strings.TrimSpace("tollgate "+cfg.Name)),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500*time.Millisecond),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if nc.IsClosed() { // Close, at shutdown
				return
			}
			log.Warn().Err(err).Msg("NATS disconnected: deciding on the last applied master data")
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info().Str("server", redact(nc.ConnectedUrl())).Msg("NATS reconnected: catching up")
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", redact(cfg.URL), err)
	}
	return nc, nil
}

// EnsureStream returns the stream named name, creating it if it does not exist: file storage, subject,
// a DuplicateWindow duplicate window and no age, size or count limit, because replicas replay it from
// the start. An existing stream is used as it is (an operator may have sized it); it must hold subject.
func EnsureStream(ctx context.Context, js jetstream.JetStream, name, subject string) (jetstream.Stream, error) {
	s, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, jetstream.StreamConfig{
			Name:        name,
			Description: "Tollgate master-data change events (one JSON event per message, Nats-Msg-Id = event_id)",
			Subjects:    []string{subject},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			Duplicates:  DuplicateWindow,
		})
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) { // another replica created it meanwhile
			s, err = js.Stream(ctx, name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("master-data stream %s: %w", name, err)
	}
	return s, nil
}

// Close stops consuming and closes the connection, waiting for the feed's goroutines. The store keeps
// its data. Close is idempotent.
func (f *Feed) Close() {
	if f.cancel != nil {
		f.cancel()
	}
	f.wg.Wait()
	if f.nc != nil {
		f.nc.Close()
	}
}

// Status returns the feed's status now.
func (f *Feed) Status() Status {
	rev := f.store.Snapshot().Revision()
	f.mu.Lock()
	defer f.mu.Unlock()
	st := Status{
		URL: redact(f.cfg.URL), Stream: f.cfg.Stream, Subject: f.cfg.Subject,
		Connected: f.nc != nil && f.nc.IsConnected(),
		Revision:  rev, Head: f.head, HeadSeenAt: f.headSeenAt, RejectedEvents: f.rejected,
	}
	if f.head > rev {
		st.Lag = f.head - rev
	}
	if f.lastRejected != nil {
		r := *f.lastRejected
		st.LastRejected = &r
	}
	return st
}

// StreamHead returns the stream's last sequence as last seen, and false before it was first read. A
// decision refused for a consistency token names it (api.StreamHead).
func (f *Feed) StreamHead() (uint64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.head, !f.headSeenAt.IsZero()
}

// consume runs ordered consumers until ctx ends: the ordered consumer itself resumes after a lost
// connection; should it give up, a new one starts from the store's revision + 1.
func (f *Feed) consume(ctx context.Context) {
	for {
		err := f.consumeOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		f.log.Warn().Err(err).Msg("master-data stream consumer stopped; starting a new one")
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func (f *Feed) consumeOnce(ctx context.Context) error {
	createCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cons, err := f.js.OrderedConsumer(createCtx, f.cfg.Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{f.cfg.Subject},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    f.store.Snapshot().Revision() + 1,
	})
	if err != nil {
		return fmt.Errorf("create consumer: %w", err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	defer it.Stop()
	unhook := context.AfterFunc(ctx, it.Stop) // Next returns once ctx ends
	defer unhook()
	for {
		msg, err := it.Next()
		if err != nil {
			return err
		}
		f.handle(msg)
	}
}

// handle applies one message at its stream sequence. A message the store cannot take is rejected and
// reported; the revision still moves past it.
func (f *Feed) handle(msg jetstream.Msg) {
	md, err := msg.Metadata()
	if err != nil {
		f.log.Error().Err(err).Msg("master-data stream message without metadata: skipped")
		return
	}
	seq := md.Sequence.Stream
	ev, decodeErr := masterdata.DecodeEvent(msg.Data())
	var events []masterdata.Event
	if decodeErr == nil {
		events = []masterdata.Event{ev}
	}
	res, err := f.store.ApplyAt(events, seq, md.Timestamp)
	if errors.Is(err, masterdata.ErrRevision) {
		// A consumer starts after the revision, so this is a stream whose sequences went back (deleted
		// and created again): its messages cannot be told from those applied. Restart the replica.
		f.log.Error().Err(err).Uint64("sequence", seq).Msg("master-data stream sequence not after the revision: message skipped; was the stream recreated? restart this replica")
		return
	}
	if err != nil {
		f.log.Error().Err(err).Uint64("sequence", seq).Msg("apply master-data stream message")
		return
	}
	f.sawHead(seq, time.Now())
	if decodeErr != nil {
		f.reject(Rejected{Sequence: seq, Reason: ReasonUnparseable, Error: decodeErr.Error()})
		return
	}
	r := res.Results[0]
	if f.cfg.Observe != nil {
		f.cfg.Observe(r.Outcome)
	}
	switch r.Outcome {
	case masterdata.OutcomeInvalid:
		f.reject(Rejected{Sequence: seq, EventID: r.EventID, Reason: ReasonInvalid, Error: r.Err.Error()})
	case masterdata.OutcomeStale:
		f.reject(Rejected{Sequence: seq, EventID: r.EventID, Reason: ReasonStale, Error: r.Err.Error()})
	}
}

func (f *Feed) reject(r Rejected) {
	r.At = time.Now()
	f.log.Warn().Uint64("sequence", r.Sequence).Str("event_id", r.EventID).Str("reason", r.Reason).
		Str("error", r.Error).Msg("master-data stream event rejected; the feed goes on")
	f.metrics.rejected.WithLabelValues(r.Reason).Inc()
	f.mu.Lock()
	f.rejected++
	f.lastRejected = &r
	f.mu.Unlock()
}

// watchHead reads the stream's head every HeadInterval, for the lag.
func (f *Feed) watchHead(ctx context.Context) {
	t := time.NewTicker(f.cfg.HeadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !f.nc.IsConnected() {
			continue // the last head seen stays, with its time
		}
		if _, err := f.readHead(ctx); err != nil && ctx.Err() == nil {
			f.log.Debug().Err(err).Msg("read master-data stream head")
		}
	}
}

// readHead reads the sequence of the last message on the subject and records it.
func (f *Feed) readHead(ctx context.Context) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var seq uint64
	m, err := f.stream.GetLastMsgForSubject(ctx, f.cfg.Subject)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
	case err != nil:
		return 0, err
	default:
		seq = m.Sequence
	}
	f.sawHead(seq, time.Now())
	return seq, nil
}

func (f *Feed) sawHead(seq uint64, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.head = max(f.head, seq)
	f.headSeenAt = at
}

// waitRevision waits until the store's revision reaches seq or ctx ends.
func (f *Feed) waitRevision(ctx context.Context, seq uint64) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for f.store.Snapshot().Revision() < seq {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// redact drops credentials from NATS URLs, for logs and status.
func redact(raw string) string {
	parts := strings.Split(raw, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if !strings.Contains(p, "@") {
			parts[i] = p // no credentials; also keeps host:port, which url.Parse refuses
			continue
		}
		u, err := url.Parse(p)
		if err != nil {
			parts[i] = "(unparseable URL)"
			continue
		}
		u.User = nil
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}
