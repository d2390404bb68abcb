package policies_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/cover"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"

	"github.com/tollgate/tollgate/server/engine"
)

// minCoverage is the line coverage (percent) the Rego unit tests must reach
// on the non-test policy files.
const minCoverage = 90.0

// TestRego runs every *_test.rego of the pack through OPA's tester with the
// engine's master-data builtins declared, fails on any failing Rego test and
// reports line coverage of the non-test policy files.
func TestRego(t *testing.T) {
	b := loadPack(t)
	ctx := context.Background()
	store := inmem.New()
	txn := storage.NewTransactionOrDie(ctx, store, storage.WriteParams)
	defer store.Abort(ctx, txn)
	cov := cover.New()
	ch, err := tester.NewRunner().
		SetStore(store).
		SetBundles(map[string]*bundle.Bundle{"policies": b}).
		AddCustomBuiltins(engine.TesterBuiltins()).
		SetCoverageQueryTracer(cov).
		RaiseBuiltinErrors(true).
		CapturePrintOutput(true).
		RunTests(ctx, txn)
	if err != nil {
		t.Fatalf("run rego tests: %v", err)
	}
	var passed, failed int
	for r := range ch {
		switch {
		case r.Error != nil:
			failed++
			t.Errorf("%s.%s: error: %v", r.Package, r.Name, r.Error)
		case r.Fail:
			failed++
			t.Errorf("%s.%s (%s): FAIL\n%s", r.Package, r.Name, r.Location, r.Output)
		case r.Skip:
		default:
			passed++
		}
	}
	t.Logf("rego tests: %d passed, %d failed", passed, failed)
	if passed == 0 {
		t.Fatal("no rego test ran")
	}

	modules := map[string]*ast.Module{}
	for _, mf := range b.Modules {
		if strings.HasSuffix(mf.Path, "_test.rego") {
			continue
		}
		modules[mf.Parsed.Package.Location.File] = mf.Parsed
	}
	report := cov.Report(modules)
	var covered, notCovered int
	var files []string
	for file := range modules {
		files = append(files, file)
	}
	sort.Strings(files)
	for _, file := range files {
		fr := report.Files[file]
		if fr == nil {
			t.Errorf("coverage: no report for %s", file)
			continue
		}
		covered += fr.CoveredLines
		notCovered += fr.NotCoveredLines
		var lines []string
		for _, r := range fr.NotCovered {
			lines = append(lines, fmt.Sprintf("%d-%d", r.Start.Row, r.End.Row))
		}
		t.Logf("coverage %-40s %6.2f%% not covered: %s", file, fr.Coverage, strings.Join(lines, " "))
	}
	total := 100 * float64(covered) / float64(covered+notCovered)
	t.Logf("coverage of non-test policy files: %.2f%% (%d of %d lines)", total, covered, covered+notCovered)
	if total < minCoverage {
		t.Errorf("coverage %.2f%% below %.0f%%", total, minCoverage)
	}
}
