package fleet_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/postgres"
	"github.com/tollgate/tollgate/server/audit/postgres/pgtest"
	"github.com/tollgate/tollgate/test/testserver"
)

// tcpProxy forwards a loopback port to PostgreSQL, and can cut it: the port refuses connections and
// every open connection is closed, as when the database host goes away; restore listens on the same
// port again.
type tcpProxy struct {
	t        testing.TB
	addr     string // the proxy's host:port, fixed across cuts
	upstream string

	mu    sync.Mutex
	lis   net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newTCPProxy(t testing.TB, upstream string) *tcpProxy {
	t.Helper()
	p := &tcpProxy{t: t, upstream: upstream, conns: map[net.Conn]struct{}{}}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = lis.Addr().String()
	p.serve(lis)
	t.Cleanup(func() {
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *tcpProxy) serve(lis net.Listener) {
	p.mu.Lock()
	p.lis = lis
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := lis.Accept()
			if err != nil {
				return // closed by cut
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.forward(c)
			}()
		}
	}()
}

func (p *tcpProxy) forward(c net.Conn) {
	up, err := net.Dial("tcp", p.upstream)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.lis == nil { // cut while dialling
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		dst.Close()
		src.Close()
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// cut closes the listener and every forwarded connection.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lis != nil {
		p.lis.Close()
		p.lis = nil
	}
	for c := range p.conns {
		c.Close()
	}
}

// restore listens on the proxy's port again.
func (p *tcpProxy) restore() {
	p.t.Helper()
	var lis net.Listener
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if lis, err = net.Listen("tcp", p.addr); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		p.t.Fatalf("restore proxy on %s: %v", p.addr, err)
	}
	p.serve(lis)
}

// viaProxy is dbURL with its host replaced by the proxy's, and the upstream host:port.
func viaProxy(t testing.TB, dbURL string) (proxied string, upstream string) {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	upstream = u.Host
	if u.Port() == "" {
		upstream = net.JoinHostPort(u.Hostname(), "5432")
	}
	return u.String(), upstream
}

// waitHealth waits until the service's gRPC health and /healthz both report want.
func waitHealth(t testing.TB, srv *testserver.Server, want healthpb.HealthCheckResponse_ServingStatus, within time.Duration) {
	t.Helper()
	hc := healthpb.NewHealthClient(srv.Client.Conn())
	wantHTTP := http.StatusOK
	if want != healthpb.HealthCheckResponse_SERVING {
		wantHTTP = http.StatusServiceUnavailable
	}
	var got healthpb.HealthCheckResponse_ServingStatus
	var gotHTTP int
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatalf("health check: %v", err)
		}
		got = resp.GetStatus()
		r, err := http.Get("http://" + srv.App.HTTPAddr().String() + "/healthz")
		if err != nil {
			t.Fatalf("/healthz: %v", err)
		}
		r.Body.Close()
		gotHTTP = r.StatusCode
		if got == want && gotHTTP == wantHTTP {
			return
		}
	}
	t.Fatalf("health %s, /healthz %d after %s; want %s, %d", got, gotHTTP, within, want, wantHTTP)
}

// TestPostgresDown runs a replica in sync mode on PostgreSQL through a proxy that the test cuts and
// restores, under a steady load of decisions (every fourth with an idempotency key). While the database
// is away, decisions fail Unavailable (none is answered unrecorded) and health is NOT_SERVING, even on
// an idle replica; once it is back, health is SERVING and decisions succeed again. Afterwards every
// answered decision is in PostgreSQL and the chain verifies.
func TestPostgresDown(t *testing.T) {
	ctx := context.Background()
	dbURL, upstream := viaProxy(t, pgtest.NewDatabase(t))
	proxy := newTCPProxy(t, upstream)
	u, _ := url.Parse(dbURL)
	u.Host = proxy.addr
	srv := testserver.Start(t, app.Config{AuditStore: u.String(), ReplicaID: "replica-pgdown", PayloadKeyFile: payloadKeyFile(t)})
	waitHealth(t, srv, healthpb.HealthCheckResponse_SERVING, 5*time.Second)

	// An idle replica notices the outage too: a load balancer must not send it the next caller.
	proxy.cut()
	waitHealth(t, srv, healthpb.HealthCheckResponse_NOT_SERVING, 5*time.Second)
	if _, err := srv.Client.Decide(ctx, testserver.POSubmit("u-buyer", "900.00")); status.Code(err) != codes.Unavailable {
		t.Fatalf("decision while PostgreSQL is down: %v; want Unavailable", err)
	}
	proxy.restore()
	waitHealth(t, srv, healthpb.HealthCheckResponse_SERVING, 10*time.Second)

	// Now under load: a phase up, down, and up again.
	var (
		mu       sync.Mutex
		answered = map[string]string{} // decision id → phase
		refused  = map[string]int{}    // phase → Unavailable answers
		phase    atomic.Value
		stop     = make(chan struct{})
		wg       sync.WaitGroup
		n        atomic.Int64
	)
	phase.Store("up")
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := n.Add(1)
				req := testserver.POSubmit("u-buyer", fmt.Sprintf("%d.00", 100+i))
				if i%4 == 0 {
					req.IdempotencyKey = fmt.Sprintf("order-%d-%d", w, i)
				}
				p := phase.Load().(string)
				callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
				resp, err := srv.Client.Decide(callCtx, req)
				cancel()
				mu.Lock()
				switch {
				case err == nil:
					answered[resp.GetDecisionId()] = p
				case status.Code(err) == codes.Unavailable:
					refused[p]++
				default:
					t.Errorf("decision in phase %s: %v; want an answer or Unavailable", p, err)
				}
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	count := func() (int, map[string]int) {
		mu.Lock()
		defer mu.Unlock()
		byPhase := map[string]int{}
		for _, p := range answered {
			byPhase[p]++
		}
		return len(answered), byPhase
	}
	time.Sleep(500 * time.Millisecond)
	proxy.cut()
	phase.Store("down")
	waitHealth(t, srv, healthpb.HealthCheckResponse_NOT_SERVING, 5*time.Second)
	time.Sleep(time.Second)
	phase.Store("restoring")
	proxy.restore()
	waitHealth(t, srv, healthpb.HealthCheckResponse_SERVING, 10*time.Second)
	phase.Store("up again")
	_, before := count()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, now := count(); now["up again"] >= before["up again"]+20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("decisions did not succeed again after PostgreSQL came back")
		}
	}
	close(stop)
	wg.Wait()

	total, byPhase := count()
	mu.Lock()
	t.Logf("answered by phase %v, refused Unavailable by phase %v", byPhase, refused)
	if refused["down"] == 0 {
		t.Errorf("no decision was refused while PostgreSQL was down")
	}
	if byPhase["up"] == 0 {
		t.Errorf("no decision answered before the outage")
	}
	mu.Unlock()

	// Every answered decision is in PostgreSQL, read directly, not through the replica.
	s, err := postgres.Open(ctx, postgres.Config{URL: dbURL})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for id, p := range answered {
		if _, err := s.Get(ctx, id); err != nil {
			t.Errorf("decision %s answered in phase %s: %v; want it stored", id, p, err)
		}
	}
	rep, err := audit.Verify(ctx, s, "")
	if err != nil || !rep.OK || rep.RecordsChecked < uint64(total) {
		t.Errorf("Verify = %+v, %v; want OK over at least the %d answered decisions", rep, err, total)
	}
	if v, err := srv.Client.VerifyLog(ctx, ""); err != nil || !v.GetOk() {
		t.Errorf("VerifyLog on the replica = %v, %v", v, err)
	}
}
