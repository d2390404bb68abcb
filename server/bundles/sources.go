package bundles

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// dirWatcher reports changes anywhere under a directory. fsnotify watches single directories, so each
// subdirectory is added, including ones created later.
type dirWatcher struct {
	root string
	w    *fsnotify.Watcher
}

func newDirWatcher(root string) (*dirWatcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch bundle dir: %w", err)
	}
	d := &dirWatcher{root: root, w: w}
	if err := d.addTree(root); err != nil {
		w.Close()
		return nil, err
	}
	return d, nil
}

func (d *dirWatcher) addTree(dir string) error {
	return filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() {
			return nil
		}
		if err := d.w.Add(path); err != nil {
			return fmt.Errorf("watch bundle dir %s: %w", path, err)
		}
		return nil
	})
}

// watchDir offers the directory's bundle once it has been quiet for Debounce after a change.
func (m *Manager) watchDir(ctx context.Context, d *dirWatcher) {
	defer d.w.Close()
	quiet := time.NewTimer(time.Hour)
	quiet.Stop()
	defer quiet.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-d.w.Events:
			if !ok {
				return
			}
			if ev.Has(fsnotify.Create) {
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
					if err := d.addTree(ev.Name); err != nil {
						m.log.Warn().Err(err).Msg("watch new bundle subdirectory")
					}
				}
			}
			quiet.Reset(m.cfg.Debounce)
		case err, ok := <-d.w.Errors:
			if !ok {
				return
			}
			// An overflow loses events: read the directory anyway rather than miss a change.
			m.log.Warn().Err(err).Str("dir", d.root).Msg("bundle dir watch error")
			quiet.Reset(m.cfg.Debounce)
		case <-quiet.C:
			m.OfferDir(ctx, d.root)
		}
	}
}

// poll fetches the bundle from URL every PollInterval, starting at once. Like OPA's bundle protocol it
// sends the last ETag as If-None-Match: 304 Not Modified means nothing changed and nothing is offered.
func (m *Manager) poll(ctx context.Context) {
	src := "url:" + m.cfg.URL
	var etag string
	t := time.NewTicker(m.cfg.PollInterval)
	defer t.Stop()
	for {
		data, newTag, err := m.fetch(ctx, etag)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			m.log.Warn().Err(err).Str("url", m.cfg.URL).Msg("fetch bundle")
		case data != nil:
			c := m.OfferTarball(ctx, src, data)
			// The same bytes get the same verdict, so a refused bundle is not fetched again until it
			// changes; only a transient failure to keep it is retried.
			if c.Outcome != Failed {
				etag = newTag
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// errTooLarge refuses a fetched bundle above Config.MaxBundleBytes.
var errTooLarge = errors.New("bundle exceeds the size limit")

// fetch gets the bundle unless it still has etag. It returns nil data when not modified.
func (m *Manager) fetch(ctx context.Context, etag string) ([]byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.cfg.URL, nil)
	if err != nil {
		return nil, "", fmt.Errorf("fetch bundle: %w", err)
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := m.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("fetch bundle: %w", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotModified:
		return nil, etag, nil
	case http.StatusOK:
	default:
		return nil, "", fmt.Errorf("fetch bundle: %s", resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, m.cfg.MaxBundleBytes+1))
	if err != nil {
		return nil, "", fmt.Errorf("fetch bundle: %w", err)
	}
	if int64(len(data)) > m.cfg.MaxBundleBytes {
		return nil, "", fmt.Errorf("fetch bundle: %w (%d bytes)", errTooLarge, m.cfg.MaxBundleBytes)
	}
	return data, resp.Header.Get("ETag"), nil
}
