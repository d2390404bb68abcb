// Package e2e holds end-to-end tests: they start the real service (server/app) on port 0 with temporary
// directories and call it over real gRPC through the Go client in clients/go.
package e2e
