package sqlite

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/audittest"
)

// BenchmarkAppendIndexCost measures what each secondary index costs an
// append: the full schema, then the schema without one index at a time, the
// wider index keys of migration 001, and no secondary index at all. Records vary like production traffic: increasing time,
// unique resource and workflow ids, a few hundred actors.
//
//	go test -run '^$' -bench AppendIndexCost -benchtime 2000x ./server/audit/sqlite/
func BenchmarkAppendIndexCost(b *testing.B) {
	drops := []string{"", "records_time", "records_actor", "records_action", "records_resource_type",
		"records_resource_id", "records_effect", "records_bundle", "records_workflow", "records_idempotency"}
	for _, drop := range drops {
		name := "full"
		if drop != "" {
			name = "without_" + drop
		}
		b.Run(name, func(b *testing.B) {
			benchAppendSchema(b, 128, func(s *Store) error {
				if drop == "" {
					return nil
				}
				_, err := s.w.Exec("DROP INDEX " + drop)
				return err
			})
		})
	}
	// The keys of migration 001: (column, evaluated_at, decision_id).
	b.Run("wide_keys", func(b *testing.B) {
		benchAppendSchema(b, 128, func(s *Store) error {
			for _, q := range []string{
				"DROP INDEX records_actor", "DROP INDEX records_action", "DROP INDEX records_resource_type",
				"DROP INDEX records_resource_id", "DROP INDEX records_effect", "DROP INDEX records_bundle",
				"DROP INDEX records_workflow",
				"CREATE INDEX records_actor    ON records (actor_id, evaluated_at, decision_id)",
				"CREATE INDEX records_action   ON records (action, evaluated_at, decision_id)",
				"CREATE INDEX records_resource ON records (resource_type, resource_id, evaluated_at, decision_id)",
				"CREATE INDEX records_effect   ON records (effect, evaluated_at, decision_id)",
				"CREATE INDEX records_bundle   ON records (bundle_revision, evaluated_at, decision_id)",
				"CREATE INDEX records_workflow ON records (workflow_id, evaluated_at, decision_id) WHERE workflow_id <> ''",
			} {
				if _, err := s.w.Exec(q); err != nil {
					return err
				}
			}
			return nil
		})
	})
	b.Run("no_secondary_indexes", func(b *testing.B) {
		benchAppendSchema(b, 128, func(s *Store) error {
			for _, d := range drops[1:] {
				if _, err := s.w.Exec("DROP INDEX " + d); err != nil {
					return err
				}
			}
			return nil
		})
	})
}

// realistic returns decision n as production would vary it.
func realistic(n int) *audit.Record {
	r := audittest.Decision(n % 1000)
	r.DecisionId = fmt.Sprintf("01J%023d", n)
	r.EvaluatedAt.Seconds = audittest.Base().Unix() + int64(n/100)
	r.EvaluatedAt.Nanos = int32(n%100) * 1e7
	r.Request.Actor.Id = fmt.Sprintf("u_%d", (n*7919)%300)
	r.Request.Resource.Id = fmt.Sprintf("PO-%d", (n*104729)%1000003)
	r.Request.Context["workflow_id"] = fmt.Sprintf("wf-%d", (n*15485863)%1000003)
	if n%4 == 0 {
		r.IdempotencyKey = fmt.Sprintf("key-%d", (n*32452843)%1000003)
	}
	return r
}

func benchAppendSchema(b *testing.B, batch int, alter func(*Store) error) {
	ctx := context.Background()
	s, err := open(ctx, b.TempDir(), moderncDriver())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := alter(s); err != nil {
		b.Fatal(err)
	}
	total := b.N * batch
	recs := make([]*audit.Record, total)
	for i := range recs {
		recs[i] = realistic(i)
	}
	head := audit.Head{ChainID: "bench"}
	recs, _ = audittest.Sealed(b, head, recs...)
	entries := audittest.Entries(b, recs...)
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime(b)
	for i := 0; i < b.N; i++ {
		chunk := entries[i*batch : (i+1)*batch]
		if err := s.Append(ctx, head, chunk); err != nil {
			b.Fatal(err)
		}
		last := chunk[len(chunk)-1].Record
		head = audit.Head{ChainID: "bench", Seq: last.Seq, Hash: last.Hash}
	}
	elapsed, cpu := time.Since(start), cpuTime(b)-cpu0
	b.StopTimer()
	b.ReportMetric(float64(total)/elapsed.Seconds(), "records/s")
	b.ReportMetric(cpu.Seconds()*1e6/float64(total), "cpu-µs/record")
}

// cpuTime is the CPU time (user+system) the process has used.
func cpuTime(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
