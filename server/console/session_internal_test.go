package console

import (
	"errors"
	"testing"
	"time"
)

// clock is a settable time for session expiry.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestSessionsExpireAfterTTLAndWhenIdle(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 2, 9, 0, 0, 0, time.UTC)}
	s := newSessions(8*time.Hour, 30*time.Minute, 10, c.now)
	sess, err := s.create("auditor", "token")
	if err != nil {
		t.Fatal(err)
	}
	if sess.id == sess.csrf || len(sess.id) != 43 || len(sess.csrf) != 43 {
		t.Fatalf("session id %q and CSRF token %q: want two distinct 256-bit random values", sess.id, sess.csrf)
	}
	// Used every 29 minutes, the session lives until its absolute expiry.
	for c.t = c.t.Add(29 * time.Minute); c.t.Before(time.Date(2026, 1, 2, 17, 0, 0, 0, time.UTC)); c.t = c.t.Add(29 * time.Minute) {
		if _, ok := s.get(sess.id); !ok {
			t.Fatalf("session ended at %s while in use", c.t)
		}
	}
	c.t = time.Date(2026, 1, 2, 17, 0, 0, 0, time.UTC)
	if _, ok := s.get(sess.id); ok {
		t.Error("session outlived its 8h lifetime")
	}

	idle, _ := s.create("auditor", "token")
	c.t = c.t.Add(30 * time.Minute)
	if _, ok := s.get(idle.id); ok {
		t.Error("session outlived its idle timeout")
	}
	if _, ok := s.get("unknown"); ok {
		t.Error("an unknown id found a session")
	}
}

func TestSessionsAreBoundedAndSweptAtSignIn(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 2, 9, 0, 0, 0, time.UTC)}
	s := newSessions(time.Hour, time.Minute, 2, c.now)
	for range 2 {
		if _, err := s.create("a", "t"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.create("a", "t"); !errors.Is(err, errTooManySessions) {
		t.Fatalf("third session: %v, want errTooManySessions", err)
	}
	c.t = c.t.Add(time.Minute) // both idle now: the next sign-in sweeps them
	if _, err := s.create("a", "t"); err != nil {
		t.Fatalf("sign-in after the others expired: %v", err)
	}
	if n := len(s.byID); n != 1 {
		t.Errorf("%d sessions kept, want the 1 live one", n)
	}
}

func TestSameSecret(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{{"x", "x", true}, {"x", "y", false}, {"", "", false}, {"x", "", false}, {"xy", "x", false}} {
		if got := sameSecret(tc.a, tc.b); got != tc.want {
			t.Errorf("sameSecret(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}
