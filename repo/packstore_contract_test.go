package repo_test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"mis/repo"
	"mis/repo/packstoretest"
)

// TestLocalPackStoreContract runs the PackStore contract checks against
// the local directory store.
func TestLocalPackStoreContract(t *testing.T) {
	var mu sync.Mutex
	dirs := map[repo.PackStore]string{}
	packstoretest.Run(t, packstoretest.Harness{
		New: func(t *testing.T) repo.PackStore {
			dir := t.TempDir()
			s := repo.NewLocalPackStore(dir)
			mu.Lock()
			dirs[s] = dir
			mu.Unlock()
			return s
		},
		// A writer killed while writing a pack leaves a partial file in tmp/.
		Leftover: func(t *testing.T, s repo.PackStore) {
			mu.Lock()
			dir := dirs[s]
			mu.Unlock()
			if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "tmp", "pack-killed"), []byte("MISPACK1 partial"), 0o644); err != nil {
				t.Fatal(err)
			}
		},
	})
}
