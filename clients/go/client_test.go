package tollgate_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	tollgate "github.com/tollgate/tollgate/clients/go"
)

func TestDialRefusesPlaintextToRemote(t *testing.T) {
	for _, addr := range []string{
		"tollgate.example.com:7070",
		"10.1.2.3:7070",
		"[2001:db8::1]:7070",
		"0.0.0.0:7070",
		"dns:///tollgate.internal:7070",
		"dns://10.0.0.53/localhost.example.com:7070",
	} {
		t.Run(addr, func(t *testing.T) {
			_, err := tollgate.Dial(t.Context(), addr)
			if !errors.Is(err, tollgate.ErrNoTransportSecurity) {
				t.Errorf("Dial(%q) error = %v, want ErrNoTransportSecurity", addr, err)
			}
			_, err = tollgate.Dial(t.Context(), addr, tollgate.WithInsecure(), tollgate.WithBearerToken("s3cret"))
			if !errors.Is(err, tollgate.ErrInsecureToken) {
				t.Errorf("Dial(%q, WithInsecure, WithBearerToken) error = %v, want ErrInsecureToken", addr, err)
			}
			c, err := tollgate.Dial(t.Context(), addr, tollgate.WithInsecure())
			if err != nil {
				t.Fatalf("Dial(%q, WithInsecure) without a token: %v", addr, err)
			}
			c.Close()
		})
	}
}

func TestDialAllowsPlaintextTokenToLoopback(t *testing.T) {
	for _, addr := range []string{
		"127.0.0.1:7070",
		"127.9.9.9:7070",
		"[::1]:7070",
		"localhost:7070",
		"LOCALHOST.:7070",
		"dns:///localhost:7070",
		"passthrough:///127.0.0.1:7070",
		"unix:///run/tollgate.sock",
	} {
		t.Run(addr, func(t *testing.T) {
			c, err := tollgate.Dial(t.Context(), addr, tollgate.WithBearerToken("s3cret"))
			if err != nil {
				t.Fatalf("Dial(%q, WithBearerToken): %v", addr, err)
			}
			c.Close()
		})
	}
}

func TestDialAllowsTokenOverTLSToRemote(t *testing.T) {
	c, err := tollgate.Dial(t.Context(), "tollgate.example.com:443",
		tollgate.WithTLS(&tls.Config{MinVersion: tls.VersionTLS13}), tollgate.WithBearerToken("s3cret"))
	if err != nil {
		t.Fatalf("Dial with TLS and token: %v", err)
	}
	c.Close()
}

func TestDialOptionErrors(t *testing.T) {
	dir := t.TempDir()
	pki := newPKI(t, dir)
	for _, tc := range []struct {
		name  string
		opts  []tollgate.Option
		check func(error) bool
	}{
		{"insecure with TLS", []tollgate.Option{tollgate.WithInsecure(), tollgate.WithTLS(&tls.Config{})}, isErr},
		{"TLS and TLS files", []tollgate.Option{tollgate.WithTLS(&tls.Config{}), tollgate.WithTLSFiles(pki.caFile, "", "")}, isErr},
		{"cert without key", []tollgate.Option{tollgate.WithTLSFiles(pki.caFile, pki.clientCertFile, "")}, isErr},
		{"missing CA file", []tollgate.Option{tollgate.WithTLSFiles(filepath.Join(dir, "nope.pem"), "", "")},
			func(err error) bool { return errors.Is(err, fs.ErrNotExist) }},
		{"CA file without PEM", []tollgate.Option{tollgate.WithTLSFiles(pki.clientKeyFile+".txt", "", "")}, isErr},
		{"key does not match cert", []tollgate.Option{tollgate.WithTLSFiles(pki.caFile, pki.clientCertFile, pki.serverKeyFile)}, isErr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tollgate.Dial(t.Context(), "127.0.0.1:7070", tc.opts...)
			if err == nil {
				c.Close()
			}
			if !tc.check(err) {
				t.Errorf("Dial error = %v, not the expected kind", err)
			}
		})
	}
}

func isErr(err error) bool { return err != nil }

func TestDialCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := tollgate.Dial(ctx, "127.0.0.1:7070"); !errors.Is(err, context.Canceled) {
		t.Errorf("Dial error = %v, want context.Canceled", err)
	}
}

// TestLoopbackPlaintextDefault calls a real gRPC server over plaintext with no
// transport option at all, and checks the bearer token arrives.
func TestLoopbackPlaintextDefault(t *testing.T) {
	srv := startHealthServer(t, nil)
	c, err := tollgate.Dial(t.Context(), srv.addr, tollgate.WithBearerToken("s3cret"))
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	checkServing(t, c)
	if got, want := srv.lastAuthorization(), "Bearer s3cret"; got != want {
		t.Errorf("server saw authorization %q, want %q", got, want)
	}
	if got := srv.lastUserAgent(); len(got) < len("tollgate-go") || got[:len("tollgate-go")] != "tollgate-go" {
		t.Errorf("server saw user agent %q, want it to start with tollgate-go", got)
	}
}

func TestNoTokenNoAuthorizationHeader(t *testing.T) {
	srv := startHealthServer(t, nil)
	c, err := tollgate.Dial(t.Context(), srv.addr)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	checkServing(t, c)
	if got := srv.lastAuthorization(); got != "" {
		t.Errorf("server saw authorization %q, want none", got)
	}
}

// TestMutualTLSFiles runs a real mTLS handshake from PEM files: the server
// requires a client certificate signed by the test CA.
func TestMutualTLSFiles(t *testing.T) {
	pki := newPKI(t, t.TempDir())
	srv := startHealthServer(t, pki.serverTLS(t))
	c, err := tollgate.Dial(t.Context(), srv.addr,
		tollgate.WithTLSFiles(pki.caFile, pki.clientCertFile, pki.clientKeyFile), tollgate.WithBearerToken("s3cret"))
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	checkServing(t, c)
	if got, want := srv.lastClientCN(), "orchestrator"; got != want {
		t.Errorf("server saw client certificate CN %q, want %q", got, want)
	}
	if got, want := srv.lastAuthorization(), "Bearer s3cret"; got != want {
		t.Errorf("server saw authorization %q, want %q", got, want)
	}
}

func TestMutualTLSWithoutClientCertificateFails(t *testing.T) {
	pki := newPKI(t, t.TempDir())
	srv := startHealthServer(t, pki.serverTLS(t))
	c, err := tollgate.Dial(t.Context(), srv.addr, tollgate.WithTLSFiles(pki.caFile, "", ""))
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := healthpb.NewHealthClient(c.Conn()).Check(ctx, &healthpb.HealthCheckRequest{}); err == nil {
		t.Errorf("health check without a client certificate succeeded; want a handshake failure")
	}
}

func checkServing(t testing.TB, c *tollgate.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(c.Conn()).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("health check: %v", err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health status = %v, want SERVING", resp.GetStatus())
	}
}

// healthServer is grpc-go's own health service on a loopback port, recording
// what each call carried.
type healthServer struct {
	addr string

	mu            sync.Mutex
	authorization string
	userAgent     string
	clientCN      string
}

func startHealthServer(t testing.TB, tlsConfig *tls.Config) *healthServer {
	t.Helper()
	hs := &healthServer{}
	opts := []grpc.ServerOption{grpc.UnaryInterceptor(hs.record)}
	if tlsConfig != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsConfig)))
	}
	srv := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs.addr = lis.Addr().String()
	go srv.Serve(lis) //nolint:errcheck // Serve returns when Stop runs
	t.Cleanup(srv.Stop)
	return hs
}

func (hs *healthServer) record(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	hs.mu.Lock()
	hs.authorization = first(md.Get("authorization"))
	hs.userAgent = first(md.Get("user-agent"))
	hs.clientCN = ""
	if p, ok := peer.FromContext(ctx); ok {
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(info.State.PeerCertificates) > 0 {
			hs.clientCN = info.State.PeerCertificates[0].Subject.CommonName
		}
	}
	hs.mu.Unlock()
	return handler(ctx, req)
}

func (hs *healthServer) lastAuthorization() string {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return hs.authorization
}

func (hs *healthServer) lastUserAgent() string {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return hs.userAgent
}

func (hs *healthServer) lastClientCN() string {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return hs.clientCN
}

func first(vals []string) string {
	if len(vals) == 0 {
		return ""
	}
	return vals[0]
}

// pki is a throwaway CA with a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files.
type pki struct {
	caFile, serverCertFile, serverKeyFile, clientCertFile, clientKeyFile string
	caPool                                                               *x509.CertPool
}

func newPKI(t testing.TB, dir string) *pki {
	t.Helper()
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "tollgate test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	p := &pki{caFile: filepath.Join(dir, "ca.pem"), caPool: x509.NewCertPool()}
	p.caPool.AddCert(caCert)
	writePEM(t, p.caFile, "CERTIFICATE", caDER)

	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, ips []net.IP, certFile, keyFile string) {
		key := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		writePEM(t, certFile, "CERTIFICATE", der)
		writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
	}
	p.serverCertFile, p.serverKeyFile = filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	p.clientCertFile, p.clientKeyFile = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	leaf(2, "tollgate", x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)}, p.serverCertFile, p.serverKeyFile)
	leaf(3, "orchestrator", x509.ExtKeyUsageClientAuth, nil, p.clientCertFile, p.clientKeyFile)
	// A file with no PEM block, for the CA-file error case.
	if err := os.WriteFile(p.clientKeyFile+".txt", []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// serverTLS requires and verifies client certificates from the test CA.
func (p *pki) serverTLS(t testing.TB) *tls.Config {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(p.serverCertFile, p.serverKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    p.caPool,
		MinVersion:   tls.VersionTLS12,
	}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func writePEM(t testing.TB, path, blockType string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
