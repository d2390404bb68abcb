package perf

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	tollgate "github.com/tollgate/tollgate/clients/go"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// Process is a server started by the harness. Stop it with Stop, also on error paths.
type Process struct {
	Name string
	Addr string
	cmd  *exec.Cmd
	done chan error
}

// PID is the server's process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Start runs bin with args in its own process group; stderr goes to logPath. The process is killed when
// ctx ends.
func Start(ctx context.Context, name, addr, logPath, bin string, args ...string) (*Process, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{Name: name, Addr: addr, cmd: cmd, done: make(chan error, 1)}
	go func() {
		p.done <- cmd.Wait()
		logf.Close()
	}()
	return p, nil
}

// Stop terminates the process (SIGTERM, then SIGKILL after 10 s) and waits for it. It is safe to call
// more than once.
func (p *Process) Stop() {
	if p == nil || p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// WaitReady polls ready until it succeeds, the process exits or timeout passes.
func (p *Process) WaitReady(timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		select {
		case werr := <-p.done:
			p.done <- werr
			return fmt.Errorf("%s exited before it was ready: %v", p.Name, werr)
		default:
		}
		if err = ready(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %s: %w", p.Name, timeout, err)
}

// FreeLoopbackAddr returns a loopback address with a port that was free a moment ago.
func FreeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// OPAClient asks a stock OPA server for data.tollgate.decision over REST.
type OPAClient struct {
	url    string
	http   *http.Client
	bodies [][]byte
}

// NewOPAClient prepares the request bodies ({"input": …}) of the corpus and a keep-alive HTTP client
// with room for maxConns idle connections.
func NewOPAClient(addr string, corpus []Request, maxConns int) (*OPAClient, error) {
	c := &OPAClient{
		url: "http://" + addr + "/v1/data/tollgate/decision",
		http: &http.Client{Transport: &http.Transport{
			MaxIdleConns: maxConns, MaxIdleConnsPerHost: maxConns, MaxConnsPerHost: 0, IdleConnTimeout: time.Minute,
		}},
	}
	for _, r := range corpus {
		b, err := json.Marshal(map[string]any{"input": r.Input})
		if err != nil {
			return nil, fmt.Errorf("encode opa input: %w", err)
		}
		c.bodies = append(c.bodies, b)
	}
	return c, nil
}

// Ready checks OPA's health endpoint (bundles and plugins ready).
func (c *OPAClient) Ready() error {
	resp, err := c.http.Get(strings.TrimSuffix(c.url, "/v1/data/tollgate/decision") + "/health")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("opa health: %s", resp.Status)
	}
	return nil
}

// Decide sends corpus request i.
func (c *OPAClient) Decide(ctx context.Context, i int) (Decision, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(c.bodies[i]))
	if err != nil {
		return Decision{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return Decision{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return Decision{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return Decision{}, fmt.Errorf("opa: %s: %s", resp.Status, body)
	}
	var out struct {
		Result *struct {
			Effect  string `json:"effect"`
			Reasons []struct {
				Code string `json:"code"`
			} `json:"reasons"`
			Approvers []string `json:"approvers"`
		} `json:"result"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return Decision{}, fmt.Errorf("opa: decode answer: %w", err)
	}
	if out.Result == nil {
		// An undefined decision: the engine answers it as a DENY with POLICY_UNDEFINED.
		return Decision{Effect: "DENY", Primary: "POLICY_UNDEFINED"}, nil
	}
	d := Decision{Effect: out.Result.Effect, Approvers: out.Result.Approvers}
	if len(out.Result.Reasons) > 0 {
		d.Primary = out.Result.Reasons[0].Code
	}
	return d, nil
}

// Close drops the idle connections.
func (c *OPAClient) Close() { c.http.CloseIdleConnections() }

// TollgateClient asks Tollgate over gRPC with the Go client, on one connection.
type TollgateClient struct {
	client *tollgate.Client
	reqs   []*tollgatev1.DecideRequest
}

// DialTollgate connects to a Tollgate server on loopback.
func DialTollgate(ctx context.Context, addr string, corpus []Request) (*TollgateClient, error) {
	c, err := tollgate.Dial(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("dial tollgate: %w", err)
	}
	t := &TollgateClient{client: c}
	for _, r := range corpus {
		t.reqs = append(t.reqs, r.Proto)
	}
	return t, nil
}

// Ready checks that Tollgate answers a master-data status call.
func (t *TollgateClient) Ready() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := t.client.MasterDataStatus(ctx)
	return err
}

// Evaluation waits until the active bundle's exactness gate has a verdict (the server decides on
// topdown while it is pending) and returns the path its decisions take.
func (t *TollgateClient) Evaluation(ctx context.Context, timeout time.Duration) (*tollgatev1.EvaluationPath, error) {
	deadline := time.Now().Add(timeout)
	for {
		st, err := tollgatev1.NewPolicyServiceClient(t.client.Conn()).Status(ctx, &tollgatev1.PolicyServiceStatusRequest{})
		if err != nil {
			return nil, err
		}
		if ev := st.GetEvaluation(); ev != nil && ev.GetGate() != "pending" {
			return ev, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the exactness gate has no verdict after %s", timeout)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

var effects = map[tollgatev1.Effect]string{
	tollgatev1.Effect_EFFECT_ALLOW:            "ALLOW",
	tollgatev1.Effect_EFFECT_DENY:             "DENY",
	tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL: "REQUIRE_APPROVAL",
}

// Decide sends corpus request i.
func (t *TollgateClient) Decide(ctx context.Context, i int) (Decision, error) {
	resp, err := t.client.Decide(ctx, t.reqs[i])
	if err != nil {
		return Decision{}, err
	}
	d := Decision{Effect: effects[resp.GetEffect()], Approvers: resp.GetApprovers()}
	if rs := resp.GetReasons(); len(rs) > 0 {
		d.Primary = rs[0].GetCode()
	}
	if d.Effect == "" {
		return d, errors.New("tollgate: answer without an effect")
	}
	return d, nil
}

// Close closes the connection.
func (t *TollgateClient) Close() { _ = t.client.Close() }
