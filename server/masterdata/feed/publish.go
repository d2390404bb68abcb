package feed

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/server/masterdata"
)

// Publisher publishes change events to the master-data stream. It is safe for concurrent use; Close it.
type Publisher struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	subject string
}

// Ack is JetStream's acknowledgement of one published event: the stream sequence it was stored at, or,
// for a Duplicate (an event id already stored within the duplicate window), the sequence of the stored
// one.
type Ack struct {
	EventID   string
	Sequence  uint64
	Duplicate bool
}

// ErrNoEventID is returned by Publish for an event without an event_id: JetStream deduplicates by it.
var ErrNoEventID = errors.New("event_id is required")

// NewPublisher connects to cfg.URL and makes sure the stream exists (EnsureStream), so events may be
// published before any replica started.
func NewPublisher(ctx context.Context, cfg Config) (*Publisher, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	nc, err := Connect(cfg, zerolog.Nop())
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err == nil {
		_, err = EnsureStream(ctx, js, cfg.Stream, cfg.Subject)
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &Publisher{nc: nc, js: js, subject: cfg.Subject}, nil
}

// Publish publishes one event, body being its JSON (one line of `masterdata apply` NDJSON), with
// Nats-Msg-Id = event_id, and waits for the stream's acknowledgement. A body that does not decode
// (masterdata.DecodeEvent) or has no event_id (ErrNoEventID) is refused before anything is sent. The
// event is not validated further: a replica rejects an invalid event and reports it.
func (p *Publisher) Publish(ctx context.Context, body []byte) (Ack, error) {
	ev, err := masterdata.DecodeEvent(body)
	if err != nil {
		return Ack{}, err
	}
	if ev.EventID == "" {
		return Ack{}, ErrNoEventID
	}
	pa, err := p.js.Publish(ctx, p.subject, body, jetstream.WithMsgID(ev.EventID))
	if err != nil {
		return Ack{EventID: ev.EventID}, fmt.Errorf("publish event %q: %w", ev.EventID, err)
	}
	return Ack{EventID: ev.EventID, Sequence: pa.Sequence, Duplicate: pa.Duplicate}, nil
}

// Close closes the connection.
func (p *Publisher) Close() { p.nc.Close() }
