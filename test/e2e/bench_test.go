package e2e_test

import (
	"context"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/server/engine"
)

// benchRequests is a small mix across families over the demo data.
func benchRequests() []*tollgatev1.DecideRequest {
	so := func(customer string) *tollgatev1.DecideRequest {
		attrs, _ := structpb.NewStruct(map[string]any{"customer_id": customer, "site_id": "DC1", "amount": "1200.00", "currency": "USD"})
		return &tollgatev1.DecideRequest{
			Actor:    &tollgatev1.Actor{Id: "u_od1", Type: tollgatev1.ActorType_ACTOR_TYPE_HUMAN},
			Action:   "SO.RELEASE",
			Resource: &tollgatev1.Resource{Type: "sales_order", Id: "SO-1", Attributes: attrs},
		}
	}
	return []*tollgatev1.DecideRequest{poSubmit("u_buyer1", "100.00"), poSubmit("u_buyer1", "8000.00"), so("C1"), so("C2")}
}

// BenchmarkDecide measures one decision in-process (engine only) and over gRPC (client, server, engine).
// Run: go test -run '^$' -bench BenchmarkDecide -benchmem ./test/e2e/
func BenchmarkDecide(b *testing.B) {
	srv := startServer(b, app.Config{})
	reqs := benchRequests()

	b.Run("in-process", func(b *testing.B) {
		eng := srv.App.Engine()
		ins := make([]*engine.Request, len(reqs))
		for i, r := range reqs {
			ins[i] = &engine.Request{
				Actor:    engine.Actor{ID: r.GetActor().GetId(), Type: engine.ActorHuman},
				Action:   r.GetAction(),
				Resource: engine.Resource{Type: r.GetResource().GetType(), ID: r.GetResource().GetId(), Attributes: r.GetResource().GetAttributes()},
			}
		}
		ctx := context.Background()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if res := eng.Decide(ctx, ins[i%len(ins)]); res.Failure != "" {
					b.Fatalf("decision failed: %v", res.Reasons)
				}
				i++
			}
		})
	})
	b.Run("grpc", func(b *testing.B) {
		ctx := context.Background()
		b.ReportAllocs()
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if _, err := srv.Client.Decide(ctx, reqs[i%len(reqs)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	})
}
