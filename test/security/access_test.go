package security_test

import (
	"bufio"
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	// Registered for protoregistry: the services the server lists by reflection.
	_ "google.golang.org/grpc/health/grpc_health_v1"
	_ "google.golang.org/grpc/reflection/grpc_reflection_v1"
	_ "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"

	tollgate "github.com/tollgate/tollgate/clients/go"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// outcome is what the access table promises a caller: allowed (the call got past authorization: any
// code but PermissionDenied and Unauthenticated), PermissionDenied or Unauthenticated.
type outcome string

const (
	allowed         outcome = "allowed"
	denied          outcome = "PermissionDenied"
	unauthenticated outcome = "Unauthenticated"
)

func outcomeOf(err error) outcome {
	switch codeOf(err) {
	case codes.PermissionDenied:
		return denied
	case codes.Unauthenticated:
		return unauthenticated
	}
	return allowed
}

// accessColumns are the README table's caller columns, in order.
var accessColumns = []string{"decide", "agent:<id>", "audit", "admin", "unknown caller", "no credentials"}

// readmeAccessTable reads the RPC × caller table of the README's "Running securely" section: full
// method name → column → outcome.
func readmeAccessTable(t *testing.T) map[string]map[string]outcome {
	t.Helper()
	f, err := os.Open("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	table := map[string]map[string]outcome{}
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "| RPC |") {
			in = true
			continue
		}
		if !in || strings.HasPrefix(line, "|---") {
			continue
		}
		if !strings.HasPrefix(line, "|") {
			break
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) != 1+len(accessColumns) {
			t.Fatalf("README access table row has %d cells, want %d: %s", len(cells), 1+len(accessColumns), line)
		}
		method := "/" + strings.Trim(strings.TrimSpace(cells[0]), "`")
		row := map[string]outcome{}
		for i, col := range accessColumns {
			cell := strings.ToLower(strings.TrimSpace(cells[1+i]))
			switch {
			case strings.HasPrefix(cell, "yes"):
				row[col] = allowed
			case cell == "no":
				row[col] = denied
			case cell == "unauthenticated":
				row[col] = unauthenticated
			default:
				t.Fatalf("README access table: %s, %s: cell %q is not yes, no or Unauthenticated", method, col, cell)
			}
		}
		table[method] = row
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(table) == 0 {
		t.Fatal("README has no access table (a line starting with \"| RPC |\")")
	}
	return table
}

// servedMethods lists every method of every service the server serves, by asking its reflection service
// for the services and the generated descriptors for their methods.
func servedMethods(t *testing.T, conn grpc.ClientConnInterface) []protoreflect.MethodDescriptor {
	t.Helper()
	names, err := listServices(context.Background(), conn)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		tollgatev1.DecisionService_ServiceDesc.ServiceName, tollgatev1.MasterDataService_ServiceDesc.ServiceName,
		tollgatev1.AuditService_ServiceDesc.ServiceName, tollgatev1.PolicyService_ServiceDesc.ServiceName,
		"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
	} {
		if !slices.Contains(names, want) {
			t.Errorf("the server does not list %s (it lists %v)", want, names)
		}
	}
	var methods []protoreflect.MethodDescriptor
	for _, name := range names {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name))
		if err != nil {
			t.Fatalf("service %s: %v", name, err)
		}
		sd := d.(protoreflect.ServiceDescriptor)
		for i := range sd.Methods().Len() {
			methods = append(methods, sd.Methods().Get(i))
		}
	}
	return methods
}

// call sends one minimal request to method and returns the call's error. Decide asks for the dev
// agent itself, so the agent's "for itself" rule admits it.
func call(ctx context.Context, conn *grpc.ClientConn, m protoreflect.MethodDescriptor) error {
	full := "/" + string(m.Parent().FullName()) + "/" + string(m.Name())
	mt, err := protoregistry.GlobalTypes.FindMessageByName(m.Input().FullName())
	if err != nil {
		return err
	}
	req := mt.New().Interface()
	if full == tollgatev1.DecisionService_Decide_FullMethodName {
		req = &tollgatev1.DecideRequest{Actor: &tollgatev1.Actor{Id: "agent_alloc", Type: tollgatev1.ActorType_ACTOR_TYPE_AI_AGENT}}
	}
	respType, err := protoregistry.GlobalTypes.FindMessageByName(m.Output().FullName())
	if err != nil {
		return err
	}
	resp := respType.New().Interface()
	if !m.IsStreamingClient() && !m.IsStreamingServer() {
		return conn.Invoke(ctx, full, req, resp)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: m.IsStreamingServer(), ClientStreams: m.IsStreamingClient()}, full)
	if err != nil {
		return err
	}
	if err := stream.SendMsg(req); err != nil {
		return stream.RecvMsg(resp)
	}
	if err := stream.CloseSend(); err != nil {
		return err
	}
	return stream.RecvMsg(resp)
}

// TestAccessTable calls every RPC the server serves as every kind of caller over real TLS and checks
// the outcome against the README's access table; a served method the table lacks, or a row the server
// does not serve, fails the test.
func TestAccessTable(t *testing.T) {
	s := startSecure(t, nil)
	want := readmeAccessTable(t)
	callers := map[string]*tollgate.Client{
		"decide":         s.as(t, "orchestrator"),
		"agent:<id>":     s.as(t, "agent_alloc"),
		"audit":          s.as(t, "auditor"),
		"admin":          s.as(t, "admin"),
		"unknown caller": s.as(t, s.stranger(t)),
		"no credentials": s.as(t, ""),
	}
	// The bearer-token caller holds decide, and an unknown token is an unknown caller.
	also := map[string]struct {
		client *tollgate.Client
		column string
	}{
		"decide (token)": {s.as(t, "", tollgate.WithBearerToken(s.token)), "decide"},
		"unknown token":  {s.as(t, "", tollgate.WithBearerToken("guess")), "unknown caller"},
	}

	served := map[string]bool{}
	for _, m := range servedMethods(t, s.as(t, "admin").Conn()) {
		full := "/" + string(m.Parent().FullName()) + "/" + string(m.Name())
		served[full] = true
		row, ok := want[full]
		if !ok {
			t.Errorf("%s is served but has no row in the README's access table", full)
			continue
		}
		check := func(who, column string, c *tollgate.Client) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := call(ctx, c.Conn(), m)
			if code := codeOf(err); code == codes.Unavailable || code == codes.DeadlineExceeded {
				t.Errorf("%s as %s: %v: the call did not reach the service", full, who, err)
				return
			}
			if got := outcomeOf(err); got != row[column] {
				t.Errorf("%s as %s: %s (%v), want %s", full, who, got, err, row[column])
			}
		}
		for _, column := range accessColumns {
			check(column, column, callers[column])
		}
		for who, a := range also {
			check(who, a.column, a.client)
		}
	}
	for method := range want {
		if !served[method] {
			t.Errorf("the README's access table lists %s, which the server does not serve", method)
		}
	}
}
