// Package demo embeds the demo master data: NDJSON change events, one file per kind, that the default
// `tollgate serve` loads so the README tour works without an ERP. README.md beside this file lists the
// notable records.
package demo

import "embed"

// FS holds the demo *.ndjson files, for masterdata.Store.LoadDir. It is read-only.
//
//go:embed *.ndjson
var FS embed.FS

// RequestsFS holds the README tour's requests (requests/*.json), one per rule family, with their
// expected answers in requests/expected.json.
//
//go:embed requests/*.json
var RequestsFS embed.FS
