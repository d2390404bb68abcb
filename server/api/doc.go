// Package api implements Tollgate's gRPC services. Each handler validates its request, calls the
// component that owns the work, and maps errors to gRPC codes in one place (errors.go). Generated proto
// types stop here: the engine and the master-data store see only their own types.
package api
