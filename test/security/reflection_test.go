package security_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	tollgate "github.com/tollgate/tollgate/clients/go"
	"github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/test/testserver"
)

// listServices asks the server's reflection service for the services it serves.
func listServices(ctx context.Context, conn grpc.ClientConnInterface) ([]string, error) {
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		return nil, err
	}
	defer stream.CloseSend()
	err = stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	// io.EOF from Send means the server already ended the stream (a refused caller): Recv returns the
	// status it ended it with.
	resp, err := stream.Recv()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	return names, nil
}

func TestReflectionNeedsAConfiguredCaller(t *testing.T) {
	s := startSecure(t, nil)
	ctx := context.Background()
	stranger := s.stranger(t)
	for name, c := range map[string]*tollgate.Client{
		"no credentials": s.as(t, ""),
		"unknown token":  s.as(t, "", tollgate.WithBearerToken("guess")),
		"unknown cert":   s.as(t, stranger),
	} {
		_, err := listServices(ctx, c.Conn())
		if code := codeOf(err); code != codes.Unauthenticated {
			t.Errorf("%s: reflection answered %v (%v), want Unauthenticated", name, code, err)
		}
	}
	for _, cert := range []string{"orchestrator", "agent_alloc", "auditor", "admin"} {
		names, err := listServices(ctx, s.as(t, cert).Conn())
		if err != nil || !slices.Contains(names, "tollgate.v1.DecisionService") {
			t.Errorf("%s: reflection = %v, %v; want the service list", cert, names, err)
		}
	}

	// Open mode (no callers file, loopback only) keeps reflection open like everything else.
	open := testserver.Start(t, app.Config{})
	if names, err := listServices(ctx, open.Client.Conn()); err != nil || len(names) == 0 {
		t.Errorf("open mode reflection = %v, %v", names, err)
	}
}
