package testserver

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// BundleServer is a local HTTP bundle server: it serves one tarball with a content ETag and answers
// 304 to a matching If-None-Match, as OPA's bundle protocol expects; 404 while it serves nothing.
type BundleServer struct {
	*httptest.Server
	mu   sync.Mutex
	data []byte
	// Full and NotModified count the answers with a body and the 304s.
	Full, NotModified atomic.Int64
}

// NewBundleServer starts a bundle server that serves nothing yet; it is closed when tb ends.
func NewBundleServer(tb testing.TB) *BundleServer {
	tb.Helper()
	bs := &BundleServer{}
	bs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bs.mu.Lock()
		data := bs.data
		bs.mu.Unlock()
		if data == nil {
			http.NotFound(w, r)
			return
		}
		sum := sha256.Sum256(data)
		etag := `"` + hex.EncodeToString(sum[:8]) + `"`
		if strings.Contains(r.Header.Get("If-None-Match"), etag) {
			bs.NotModified.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		bs.Full.Add(1)
		w.Header().Set("ETag", etag)
		w.Header().Set("Content-Type", "application/gzip")
		_, _ = w.Write(data)
	}))
	tb.Cleanup(bs.Close)
	return bs
}

// Serve makes data the bundle served from now on; nil serves nothing (404).
func (bs *BundleServer) Serve(data []byte) {
	bs.mu.Lock()
	bs.data = data
	bs.mu.Unlock()
}
