package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"sync"
	"time"
)

// session is one signed-in browser. Only the server sees token: it is checked again on every request
// so that a token removed from the callers file ends its sessions at once.
type session struct {
	id      string
	csrf    string
	token   string // "" in open mode
	caller  string // the caller's name, for the page and the log
	created time.Time
	seen    time.Time // last use, for the idle timeout
}

// errTooManySessions refuses a sign-in while MaxSessions sessions are live.
var errTooManySessions = errors.New("too many console sessions; try again later")

// sessions is the server-side session table. It is safe for concurrent use.
type sessions struct {
	mu        sync.Mutex
	byID      map[string]*session
	ttl, idle time.Duration
	max       int
	now       func() time.Time
}

func newSessions(ttl, idle time.Duration, max int, now func() time.Time) *sessions {
	return &sessions{byID: map[string]*session{}, ttl: ttl, idle: idle, max: max, now: now}
}

// randomID returns 32 bytes from crypto/rand, URL-safe: session ids and CSRF tokens.
func randomID() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it panics on a broken system source)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// create starts a session for caller, signed in with token.
func (s *sessions) create(caller, token string) (*session, error) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	// Sign-ins are rare, so each one clears the expired sessions rather than a goroutine doing it.
	s.sweep(now)
	if len(s.byID) >= s.max {
		return nil, errTooManySessions
	}
	sess := &session{id: randomID(), csrf: randomID(), token: token, caller: caller, created: now, seen: now}
	s.byID[sess.id] = sess
	return sess, nil
}

// get returns the live session with id and marks it used; an expired one is removed.
func (s *sessions) get(id string) (*session, bool) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.byID[id]
	if !ok {
		return nil, false
	}
	if s.expired(sess, now) {
		delete(s.byID, id)
		return nil, false
	}
	sess.seen = now
	cp := *sess
	return &cp, true
}

// end removes a session (sign-out, or a token that stopped authenticating).
func (s *sessions) end(id string) {
	s.mu.Lock()
	delete(s.byID, id)
	s.mu.Unlock()
}

func (s *sessions) expired(sess *session, now time.Time) bool {
	return now.Sub(sess.created) >= s.ttl || now.Sub(sess.seen) >= s.idle
}

// sweep removes expired sessions; s.mu must be held.
func (s *sessions) sweep(now time.Time) {
	for id, sess := range s.byID {
		if s.expired(sess, now) {
			delete(s.byID, id)
		}
	}
}

// sameSecret compares two secrets in constant time; an empty one never matches.
func sameSecret(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
