package app

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/tollgate/tollgate/server/auth"
)

// DefaultMaxConcurrentStreams bounds concurrent calls per client connection.
const DefaultMaxConcurrentStreams = 256

// security loads the callers and the TLS material and enforces where plaintext and open mode may run.
// Both listeners follow one rule: with a TLS certificate both serve TLS with it (the HTTP listener's
// /metrics and /healthz need no client certificate); without one both are plaintext, allowed only on
// loopback or with Insecure (warned at every start). Open mode (no callers) runs only on loopback. It
// returns the gRPC server options and the HTTP listener's TLS configuration (nil for plaintext).
func (a *App) security() ([]grpc.ServerOption, *tls.Config, error) {
	cfg := a.cfg
	var callers *auth.Config
	if cfg.CallersFile != "" {
		c, err := auth.LoadConfig(cfg.CallersFile)
		if err != nil {
			return nil, nil, err
		}
		callers = c
	}
	authn, err := auth.New(callers, a.log)
	if err != nil {
		return nil, nil, fmt.Errorf("callers file %s: %w", cfg.CallersFile, err)
	}
	a.auth = authn

	if authn.Open() {
		if !isLoopback(cfg.Addr) {
			return nil, nil, fmt.Errorf("no callers configured (--callers): every RPC would be open, which is allowed only on a loopback address, not %s", cfg.Addr)
		}
		a.log.Warn().Str("addr", cfg.Addr).Msg("no callers configured: every RPC is open to anyone who can reach this loopback address")
	}

	maxStreams := cfg.MaxConcurrentStreams
	if maxStreams == 0 {
		maxStreams = DefaultMaxConcurrentStreams
	}
	opts := []grpc.ServerOption{grpc.MaxConcurrentStreams(maxStreams)}
	switch {
	case cfg.TLSCert != "" || cfg.TLSKey != "":
		tlsCfg, err := serverTLS(cfg)
		if err != nil {
			return nil, nil, err
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsCfg)))
		httpTLS := tlsCfg.Clone()
		httpTLS.NextProtos = []string{"http/1.1"}
		return opts, httpTLS, nil
	case cfg.ClientCA != "":
		return nil, nil, fmt.Errorf("a client CA needs the server's own certificate: give the TLS certificate and key too")
	}
	for _, l := range []struct{ flag, addr, what string }{
		{"--addr", cfg.Addr, "gRPC"},
		{"--http-addr", cfg.HTTPAddr, "HTTP (/metrics, /healthz)"},
	} {
		switch {
		case isLoopback(l.addr):
		case !cfg.Insecure:
			return nil, nil, fmt.Errorf("refusing plaintext on non-loopback address %s (%s): give a TLS certificate and key, or --insecure", l.addr, l.flag)
		default:
			a.log.Warn().Str("addr", l.addr).Msg("INSECURE: plaintext " + l.what + " on a non-loopback address; what it serves crosses the network in clear")
		}
	}
	return opts, nil, nil
}

func serverTLS(cfg Config) (*tls.Config, error) {
	if cfg.TLSCert == "" || cfg.TLSKey == "" {
		return nil, fmt.Errorf("TLS needs both a certificate and a key")
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("load TLS key pair: %w", err)
	}
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if cfg.ClientCA != "" {
		pem, err := os.ReadFile(cfg.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("read client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client CA %s holds no PEM certificate", cfg.ClientCA)
		}
		tlsCfg.ClientCAs = pool
		// Certificates are verified when given; callers that cannot do mTLS use a bearer token instead.
		tlsCfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return tlsCfg, nil
}

// isLoopback reports whether a listen address binds only loopback interfaces.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ReloadCallers re-reads the callers file and swaps it in: a rotated token stops working at once.
func (a *App) ReloadCallers() error {
	if a.cfg.CallersFile == "" {
		return fmt.Errorf("no callers file configured")
	}
	callers, err := auth.LoadConfig(a.cfg.CallersFile)
	if err != nil {
		return err
	}
	if len(callers.Callers) == 0 {
		return fmt.Errorf("callers file %s configures no callers; refusing to switch to open mode", a.cfg.CallersFile)
	}
	if err := a.auth.Reload(callers); err != nil {
		return fmt.Errorf("callers file %s: %w", a.cfg.CallersFile, err)
	}
	a.log.Info().Int("callers", len(callers.Callers)).Msg("callers reloaded")
	return nil
}
