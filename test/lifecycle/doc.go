// Package lifecycle holds end-to-end tests of the policy lifecycle: the real service (server/app) on
// port 0 with temporary directories, a real local HTTP bundle server, signed bundles, gated activation,
// hot reload under load and impact analysis, called over real gRPC.
package lifecycle
