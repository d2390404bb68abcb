// Package tollgate is the Go client for the Tollgate policy decision service.
//
// Orchestration engines and AI services call [Client.Decide] before a
// workflow step and act on the effect it returns (ALLOW, DENY or
// REQUIRE_APPROVAL with the approver roles). ERP middleware feeds master data
// with [Client.ApplyMasterData]. Auditors read, verify and replay the
// decision log with [Client.ListDecisions], [Client.DecisionPages],
// [Client.ExportDecisions], [Client.ExportPages],
// [Client.GetDecision], [Client.VerifyLog] and [Client.ReplayDecision].
//
// The JSON helpers ([ParseDecideRequestJSON], [FormatDecideResponseJSON],
// [ParseChangeEventsNDJSON], [FormatDecisionRecordJSON], [FormatJSONLine])
// read and print the JSON form of policy-pack.md §2, with short enum names
// ("HUMAN", "EXECUTE", "ALLOW", "DECISION") in place of the proto's prefixed
// ones.
//
// Transport security follows the server's rule: plaintext is the default only
// for loopback addresses; any other address needs TLS ([WithTLS],
// [WithTLSFiles]) or an explicit [WithInsecure]. A bearer token is never sent
// in clear text to a non-loopback address.
package tollgate

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// userAgent prefixes grpc-go's own user agent so server access logs can tell
// this client apart.
const userAgent = "tollgate-go"

// ErrInsecureToken is returned by [Dial] when a bearer token would travel in
// clear text to an address that is not loopback.
var ErrInsecureToken = errors.New("bearer token needs TLS for a non-loopback address")

// ErrNoTransportSecurity is returned by [Dial] when the address is not
// loopback and neither TLS nor [WithInsecure] was chosen.
var ErrNoTransportSecurity = errors.New("non-loopback address needs TLS (WithTLS, WithTLSFiles) or WithInsecure")

// Option configures [Dial].
type Option func(*dialConfig)

type dialConfig struct {
	tlsConfig   *tls.Config
	caFile      string
	certFile    string
	keyFile     string
	tlsFiles    bool
	insecure    bool
	token       string
	dialOptions []grpc.DialOption
}

// WithTLS makes the client use TLS with a copy of cfg. Set cfg.Certificates
// for mutual TLS.
func WithTLS(cfg *tls.Config) Option {
	return func(c *dialConfig) { c.tlsConfig = cfg.Clone() }
}

// WithTLSFiles makes the client use TLS configured from PEM files, read when
// [Dial] runs. caFile is the CA bundle that verifies the server (empty: the
// system roots). certFile and keyFile are the client certificate and key for
// mutual TLS; give both or neither.
func WithTLSFiles(caFile, certFile, keyFile string) Option {
	return func(c *dialConfig) {
		c.tlsFiles = true
		c.caFile, c.certFile, c.keyFile = caFile, certFile, keyFile
	}
}

// WithBearerToken sends "authorization: Bearer <token>" with every call.
// [Dial] refuses it with [ErrInsecureToken] over plaintext to a non-loopback
// address.
func WithBearerToken(token string) Option {
	return func(c *dialConfig) { c.token = token }
}

// WithInsecure makes the client use plaintext even for a non-loopback
// address (a server started with its explicit insecure flag). It cannot be
// combined with TLS options or, for non-loopback addresses, a bearer token.
func WithInsecure() Option {
	return func(c *dialConfig) { c.insecure = true }
}

// WithDialOptions appends raw grpc dial options after the ones Dial derives
// (interceptors, keepalive, message size limits). Transport credentials
// belong to WithTLS, WithTLSFiles and WithInsecure, not here.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(c *dialConfig) { c.dialOptions = append(c.dialOptions, opts...) }
}

// Client calls a Tollgate server over one gRPC connection. It is safe for
// concurrent use; create one per server and share it. Close releases it.
type Client struct {
	conn       *grpc.ClientConn
	decisions  tollgatev1.DecisionServiceClient
	masterData tollgatev1.MasterDataServiceClient
	audit      tollgatev1.AuditServiceClient
}

// Dial creates a client for addr (host:port, or a grpc target such as
// dns:///host:port or unix:///path). A comma-separated list of host:port
// addresses, "r1:7070,r2:7070,r3:7070", is a fleet: calls go round robin to
// the replicas that are up, and a replica that goes down is skipped until it
// is back (client-side load balancing; the plaintext rule then holds for
// every address). Like grpc.NewClient it does not connect:
// the connection is made by the first call, so an unreachable server shows up
// as an Unavailable error from that call. ctx bounds only the setup work
// (reading TLS files). Dial returns [ErrNoTransportSecurity] or
// [ErrInsecureToken] (wrapped) when the options would send traffic or a token
// in clear text to a non-loopback address, and an error for unreadable TLS
// files or conflicting options.
func Dial(ctx context.Context, addr string, opts ...Option) (*Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	var cfg dialConfig
	for _, opt := range opts {
		opt(&cfg)
	}
	fleet, err := fleetAddrs(addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	loopback := isLoopback(addr)
	if fleet != nil {
		loopback = allLoopback(fleet)
	}
	creds, err := cfg.transportCredentials(loopback)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	dialOpts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithUserAgent(userAgent),
	}
	target := addr
	if fleet != nil {
		var fleetOpts []grpc.DialOption
		target, fleetOpts = fleetDial(fleet)
		dialOpts = append(dialOpts, fleetOpts...)
	}
	if cfg.token != "" {
		dialOpts = append(dialOpts, grpc.WithPerRPCCredentials(bearerToken{
			token:      cfg.token,
			requireTLS: creds.Info().SecurityProtocol != "insecure",
		}))
	}
	dialOpts = append(dialOpts, cfg.dialOptions...)
	conn, err := grpc.NewClient(target, dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return &Client{
		conn:       conn,
		decisions:  tollgatev1.NewDecisionServiceClient(conn),
		masterData: tollgatev1.NewMasterDataServiceClient(conn),
		audit:      tollgatev1.NewAuditServiceClient(conn),
	}, nil
}

// transportCredentials picks TLS or plaintext and enforces the loopback rule;
// loopback says whether the target is on this machine.
func (c *dialConfig) transportCredentials(loopback bool) (credentials.TransportCredentials, error) {
	useTLS := c.tlsConfig != nil || c.tlsFiles
	switch {
	case useTLS && c.insecure:
		return nil, errors.New("WithInsecure conflicts with TLS options")
	case c.tlsConfig != nil && c.tlsFiles:
		return nil, errors.New("WithTLS conflicts with WithTLSFiles")
	}
	if useTLS {
		cfg := c.tlsConfig
		if c.tlsFiles {
			var err error
			if cfg, err = loadTLSFiles(c.caFile, c.certFile, c.keyFile); err != nil {
				return nil, err
			}
		}
		return credentials.NewTLS(cfg), nil
	}
	if !loopback && !c.insecure {
		return nil, ErrNoTransportSecurity
	}
	if !loopback && c.token != "" {
		return nil, ErrInsecureToken
	}
	return insecure.NewCredentials(), nil
}

// loadTLSFiles builds a client TLS config from PEM files.
func loadTLSFiles(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read CA file %s: no PEM certificates", caFile)
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("client certificate and key must be given together")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// isLoopback reports whether a grpc target names this machine: a loopback IP,
// "localhost", or a unix socket.
func isLoopback(target string) bool {
	if strings.HasPrefix(target, "unix:") || strings.HasPrefix(target, "unix-abstract:") {
		return true
	}
	// dns:///host:port, dns://resolver/host:port and passthrough:///host:port
	// name the endpoint after the last slash.
	if i := strings.Index(target, "://"); i >= 0 {
		target = target[i+len("://"):]
		if j := strings.LastIndex(target, "/"); j >= 0 {
			target = target[j+1:]
		}
	}
	host := target
	if h, _, err := net.SplitHostPort(target); err == nil {
		host = h
	}
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// bearerToken is the per-RPC credential set by WithBearerToken.
type bearerToken struct {
	token      string
	requireTLS bool
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (b bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials; it is
// false only for plaintext to loopback, which Dial has already checked.
func (b bearerToken) RequireTransportSecurity() bool { return b.requireTLS }

// Decide asks for one decision. A structurally bad request fails with an
// InvalidArgument status naming the field; every business problem is a DENY
// in the response, not an error. Errors are gRPC status errors
// (status.Code(err) works on them).
func (c *Client) Decide(ctx context.Context, req *tollgatev1.DecideRequest) (*tollgatev1.DecideResponse, error) {
	return c.decisions.Decide(ctx, req)
}

// DecideBatch asks for independent decisions in one call and returns them in
// request order. The server caps a batch (100 requests); a larger one fails
// with InvalidArgument. It returns an error if the server answers with a
// different number of responses than requests.
func (c *Client) DecideBatch(ctx context.Context, reqs []*tollgatev1.DecideRequest) ([]*tollgatev1.DecideResponse, error) {
	resp, err := c.decisions.DecideBatch(ctx, &tollgatev1.DecideBatchRequest{Requests: reqs})
	if err != nil {
		return nil, err
	}
	if got := len(resp.GetResponses()); got != len(reqs) {
		return nil, fmt.Errorf("decide batch: server answered %d of %d requests", got, len(reqs))
	}
	return resp.GetResponses(), nil
}

// ApplyMasterData sends a batch of change events, applied by the server in
// one transaction, and returns the outcome of each event in order with the
// revision after the batch. An INVALID or STALE event is an outcome, not an
// error: callers must inspect the results.
func (c *Client) ApplyMasterData(ctx context.Context, events []*tollgatev1.ChangeEvent) (*tollgatev1.ApplyResponse, error) {
	return c.masterData.Apply(ctx, &tollgatev1.ApplyRequest{Events: events})
}

// GetMasterData returns one master-data record; a missing record is a
// NotFound status error.
func (c *Client) GetMasterData(ctx context.Context, kind, key string) (*tollgatev1.GetResponse, error) {
	return c.masterData.Get(ctx, &tollgatev1.GetRequest{Kind: kind, Key: key})
}

// MasterDataStatus returns the record counts per kind and the revision.
func (c *Client) MasterDataStatus(ctx context.Context) (*tollgatev1.StatusResponse, error) {
	return c.masterData.Status(ctx, &tollgatev1.StatusRequest{})
}

// Decisions returns the raw DecisionService stub on the client's connection.
func (c *Client) Decisions() tollgatev1.DecisionServiceClient { return c.decisions }

// MasterData returns the raw MasterDataService stub on the client's
// connection.
func (c *Client) MasterData() tollgatev1.MasterDataServiceClient { return c.masterData }

// Audit returns the raw AuditService stub on the client's connection.
func (c *Client) Audit() tollgatev1.AuditServiceClient { return c.audit }

// Conn returns the underlying connection, for services this package does not
// wrap (health, reflection, newer Tollgate services). It stays owned by the
// Client: do not close it directly.
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Close closes the connection; calls in flight fail with Canceled.
func (c *Client) Close() error { return c.conn.Close() }
