package bundles

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// StateFileName is the state file's name in the service's data directory.
const StateFileName = "active-bundle.json"

// state is what the state file records about the active bundle.
type state struct {
	Revision    string    `json:"revision"`
	Source      string    `json:"source"`
	ActivatedAt time.Time `json:"activated_at"`
}

func readState(path string) (state, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return state{}, fmt.Errorf("read active bundle state: %w", err)
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return state{}, fmt.Errorf("read active bundle state %s: %w", path, err)
	}
	if st.Revision == "" || st.Source == "" {
		return state{}, fmt.Errorf("read active bundle state %s: revision or source missing", path)
	}
	return st, nil
}

// writeState replaces the state file atomically: a crash leaves the old file or the new one, never a
// torn one. The file and its directory are synced before writeState returns.
func writeState(path string, st state) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("record active bundle: %w", err)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("record active bundle: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("record active bundle: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("record active bundle: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("record active bundle: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("record active bundle: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("record active bundle: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("record active bundle: %w", err)
	}
	return nil
}
