package api

import "golang.org/x/mod/sumdb/note"

// verifyConfig is what VerifyLog checks checkpoint signatures with.
type verifyConfig struct {
	verifier     note.Verifier
	originPrefix string
}

// WithCheckpointVerifier makes VerifyLog check the signatures of stored checkpoints and of
// since_checkpoint with v, the service's checkpoint key, under originPrefix (default
// transparency.DefaultOriginPrefix), and returns s. Without it VerifyLog checks only their sizes
// and roots. Call it before s serves.
func (s *AuditServer) WithCheckpointVerifier(v note.Verifier, originPrefix string) *AuditServer {
	s.verify = verifyConfig{verifier: v, originPrefix: originPrefix}
	return s
}
