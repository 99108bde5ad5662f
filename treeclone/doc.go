// Package treeclone implements tree clones: a stored version edited as a
// file tree, the shared-master-plus-private-overlay model. The base version
// stays read-only in the repository; each clone has a small writable upper
// of its own.
//
// A clone lives in the repository:
//
//	REPO/treeclones/NAME/clone.json   format version, base version id, created
//	REPO/treeclones/NAME/lock         flock: held while mounted (or committing, removing)
//	REPO/treeclones/NAME/upper/pN     overlayfs upperdir of filesystem pN (the edits)
//	REPO/treeclones/NAME/work/pN      overlayfs workdir
//	REPO/treeclones/NAME/lower        mount point of the base, served by mountfs (FUSE)
//
// Create only writes clone.json: a clone costs nothing until edited. Mount
// serves the base with mountfs at lower/ and mounts one kernel overlay per
// filesystem at DIR/pN (DIR is covered by a tiny read-only tmpfs holding
// the pN mount points). Commit reads the upper alone and builds the new
// version's manifest: the base's entries plus the edits. See the overlay
// options in mount.go for why the upper alone is enough.
//
// The process that calls Mount serves the lower, so a mount lives as long
// as that process. The CLI's shape:
//
//	mis clone --tree NAME:TAG CLONE   resolve the version, Create(repo, CLONE, v.ID)
//	mis mount CLONE DIR               Serve(ctx, r, CLONE, DIR, opt, ready) in a daemon
//	                                  (ctx cancelled on SIGINT/SIGTERM)
//	mis umount DIR                    IsMountedAt(DIR) ? UnmountDir(DIR) : mountfs.Unmount
//	mis commit CLONE NAME:TAG         Get; load the base (layer.Get + LoadManifest);
//	                                  OpenWriter; Commit(ctx, w, params, base, Paths(..).Upper);
//	                                  layer.Save with Parent = base id; optionally Rebase
//
// If the serving process dies, the overlays stay over a dead lower (reads
// fail with ENOTCONN) and the kernel drops the lock; Mount, Remove and
// Commit refuse (ErrMounted) until UnmountDir(DIR) cleans up.
//
// Commit needs the clone unmounted: it takes the clone's lock, so it never
// reads an upper that a live overlay is changing (a copy-up half done).
//
// A committed version is not exactly exportable: its residual and layout
// are the base's, with the disk ranges of replaced or deleted files turned
// into zero runs. CommitStats.NeedsFresh says so; such a version is written
// with a fresh export, and its disk.raw should not be served.
package treeclone
