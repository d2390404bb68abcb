//go:build mattn

package sqlite

import (
	"testing"

	_ "github.com/mattn/go-sqlite3" // registers driver "sqlite3" (cgo)
)

// BenchmarkAppendMattn is BenchmarkAppend with github.com/mattn/go-sqlite3:
// go test -tags mattn -run '^$' -bench Append ./server/audit/sqlite/
func BenchmarkAppendMattn(b *testing.B) {
	benchAppend(b, driver{name: "sqlite3", dsn: func(path string, readOnly bool) string {
		q := "?_busy_timeout=10000&_journal_mode=WAL&_synchronous=FULL&_foreign_keys=1&_txlock=immediate"
		if readOnly {
			q += "&_query_only=1"
		}
		return path + q
	}})
}
