package perf

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Decider answers one corpus request by index; it is what the load driver calls. It must be safe for
// concurrent use.
type Decider interface {
	Decide(ctx context.Context, i int) (Decision, error)
}

// Decision is the part of an answer the harness compares across servers.
type Decision struct {
	Effect    string // ALLOW, DENY or REQUIRE_APPROVAL
	Primary   string // code of reasons[0]
	Approvers []string
}

// Equal reports whether two decisions have the same effect, primary reason and (for REQUIRE_APPROVAL)
// approvers.
func (d Decision) Equal(o Decision) bool {
	if d.Effect != o.Effect || d.Primary != o.Primary {
		return false
	}
	return d.Effect != "REQUIRE_APPROVAL" || slices.Equal(d.Approvers, o.Approvers)
}

func (d Decision) String() string {
	if len(d.Approvers) > 0 {
		return fmt.Sprintf("%s %s %v", d.Effect, d.Primary, d.Approvers)
	}
	return d.Effect + " " + d.Primary
}

// RunStats is one closed-loop run against one server.
type RunStats struct {
	Decisions  int
	Errors     int
	FirstError string
	Elapsed    time.Duration
	// Latencies sorted ascending, one per answered decision.
	Latencies []time.Duration
	// ServerCPU and ClientCPU are user+system CPU time spent during the run by the server process and by
	// this (load) process.
	ServerCPU, ClientCPU time.Duration
	// StoreCPU is CPU time spent during the run by the server's store in other processes: PostgreSQL's
	// backends for Tollgate on PostgreSQL (see PostgresDB.BackendCPU); zero where there are none.
	StoreCPU time.Duration
}

// Rate is decisions per second.
func (s RunStats) Rate() float64 { return float64(s.Decisions) / s.Elapsed.Seconds() }

// Quantile returns the latency at quantile q in [0,1] (nearest rank).
func (s RunStats) Quantile(q float64) time.Duration {
	return quantileSorted(s.Latencies, q)
}

// ServerCPUPerDecision and ClientCPUPerDecision divide the CPU time by the decisions answered.
func (s RunStats) ServerCPUPerDecision() time.Duration { return perDecision(s.ServerCPU, s.Decisions) }

// StoreCPUPerDecision is the store processes' CPU time per answered decision.
func (s RunStats) StoreCPUPerDecision() time.Duration { return perDecision(s.StoreCPU, s.Decisions) }

// ClientCPUPerDecision is the load process's CPU time per answered decision.
func (s RunStats) ClientCPUPerDecision() time.Duration { return perDecision(s.ClientCPU, s.Decisions) }

func perDecision(d time.Duration, n int) time.Duration {
	if n == 0 {
		return 0
	}
	return d / time.Duration(n)
}

// Drive runs a closed loop of concurrency workers against d for dur: each sends a request, waits for the
// answer, and sends the next (corpus indexes 0..n-1 in turn, shared across workers). serverPID's CPU time
// is read from /proc before and after. Errors are counted, not retried; their latency is not kept.
func Drive(ctx context.Context, d Decider, n, concurrency int, dur time.Duration, serverPID int) (RunStats, error) {
	if n <= 0 || concurrency <= 0 || dur <= 0 {
		return RunStats{}, errors.New("drive: corpus, concurrency and duration must be positive")
	}
	srvBefore, err := ProcessCPU(serverPID)
	if err != nil {
		return RunStats{}, err
	}
	cliBefore := SelfCPU()
	var next atomic.Int64
	var errCount atomic.Int64
	var firstErr atomic.Value
	lat := make([][]time.Duration, concurrency)
	runCtx, cancel := context.WithTimeout(ctx, dur)
	defer cancel()
	start := time.Now()
	deadline := start.Add(dur)
	ctxDeadline, _ := runCtx.Deadline()
	var wg sync.WaitGroup
	for w := range concurrency {
		wg.Go(func() {
			samples := make([]time.Duration, 0, 1<<14)
			for time.Now().Before(deadline) {
				i := int(next.Add(1)-1) % n
				t0 := time.Now()
				_, err := d.Decide(runCtx, i)
				el := time.Since(t0)
				if err != nil {
					if runCtx.Err() != nil || !time.Now().Before(ctxDeadline) {
						break // the run ended while this call was in flight (gRPC may report it first)
					}
					errCount.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				samples = append(samples, el)
			}
			lat[w] = samples
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	srvAfter, err := ProcessCPU(serverPID)
	if err != nil {
		return RunStats{}, err
	}
	st := RunStats{Elapsed: elapsed, ServerCPU: srvAfter - srvBefore, ClientCPU: SelfCPU() - cliBefore, Errors: int(errCount.Load())}
	if s, ok := firstErr.Load().(string); ok {
		st.FirstError = s
	}
	for _, l := range lat {
		st.Latencies = append(st.Latencies, l...)
	}
	slices.Sort(st.Latencies)
	st.Decisions = len(st.Latencies)
	return st, nil
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100 on every Linux architecture
// Go supports.
const clockTicks = 100

// ProcessCPU returns the user+system CPU time of process pid so far, from /proc/pid/stat.
func ProcessCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read cpu of process %d: %w", pid, err)
	}
	// The command name (field 2) may hold spaces; the fields after its closing parenthesis are fixed.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("read cpu of process %d: short stat line", pid)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(fields[12], 10, 64) // field 15
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("read cpu of process %d: %w", pid, err)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// SelfCPU returns the user+system CPU time of this process so far (getrusage).
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
