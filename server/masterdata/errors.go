package masterdata

import (
	"errors"
	"fmt"
)

// ErrInvalid is matched (with errors.Is) by every error that makes an event INVALID.
var ErrInvalid = errors.New("invalid master-data event")

// ErrStale is matched (with errors.Is) by the error of a STALE event.
var ErrStale = errors.New("stale master-data event")

// ErrRevision is matched by ApplyAt's error when the revision it is given is not after the current one.
var ErrRevision = errors.New("master-data revision must grow")

// ValidationError says why an event is INVALID. It matches ErrInvalid, and Err (if set) with errors.Is/As.
//
// Its message names the record and the field, e.g.
// `customer C1: credit_limit: "12abc" is not a decimal amount`.
type ValidationError struct {
	Kind    Kind   // the event's kind; empty when the kind itself is unknown
	Key     string // the event's key as given
	Field   string // dotted path of the offending field (e.g. "approval_limits.PO.amount"); empty for the event as a whole
	Problem string // what is wrong, in words
	Err     error  // underlying error, e.g. from Config.Prepare; may be nil
}

// Error implements error.
func (e *ValidationError) Error() string {
	prefix := "event"
	if e.Kind != "" {
		prefix = fmt.Sprintf("%s %s", e.Kind, e.Key)
	}
	msg := e.Problem
	if e.Err != nil {
		msg = fmt.Sprintf("%s: %v", msg, e.Err)
	}
	if e.Field == "" {
		return fmt.Sprintf("%s: %s", prefix, msg)
	}
	return fmt.Sprintf("%s: %s: %s", prefix, e.Field, msg)
}

// Unwrap lets errors.Is match ErrInvalid and the underlying error.
func (e *ValidationError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrInvalid}
	}
	return []error{ErrInvalid, e.Err}
}

// StaleError says that an event's version is not newer than the stored record's (or tombstone's). It
// matches ErrStale.
type StaleError struct {
	Kind   Kind
	Key    string // the stored (canonical) key
	Stored uint64 // version of the stored record or tombstone
	Given  uint64 // version of the event
}

// Error implements error.
func (e *StaleError) Error() string {
	return fmt.Sprintf("%s %s: version %d is not newer than stored version %d", e.Kind, e.Key, e.Given, e.Stored)
}

// Unwrap lets errors.Is match ErrStale.
func (e *StaleError) Unwrap() error { return ErrStale }
