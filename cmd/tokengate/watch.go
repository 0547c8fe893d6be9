package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/tokengate/tokengate/config"
)

// defaultWatchDebounce lets a burst of events settle: an editor's
// write-then-rename, or Kubernetes' swap of a mounted volume.
const defaultWatchDebounce = 250 * time.Millisecond

// kubeDataLink is the symlink Kubernetes swaps atomically when a mounted
// ConfigMap or Secret changes: FILE -> ..data/FILE, ..data -> ..2026_01_02_...
// The files themselves see no event, so an event on ..data counts for all.
const kubeDataLink = "..data"

// configWatcher reloads the server when the configuration file, or a signing
// key file it names, changes on disk. It watches the folders rather than the
// files: a file replaced by rename, or reached through a swapped symlink,
// would silently drop a watch on the file itself. Events only wake it up;
// it then hashes the files' contents and reloads only when they changed, so
// touches, chmods and no-op rewrites cost nothing.
type configWatcher struct {
	srv      *server
	fsw      *fsnotify.Watcher
	debounce time.Duration
	log      *slog.Logger

	// names are the base names, per watched folder, whose events matter.
	names map[string]map[string]bool
	// last is the hash of the files as of the last reload attempt (or start).
	last [sha256.Size]byte
	// checks counts debounced looks at the files (tests wait on it).
	checks atomic.Int64

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// startWatcher watches the server's configuration file and signing keys.
func startWatcher(s *server, debounce time.Duration) (*configWatcher, error) {
	if debounce <= 0 {
		debounce = defaultWatchDebounce
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	}
	w := &configWatcher{
		srv:      s,
		fsw:      fsw,
		debounce: debounce,
		log:      s.proc.Logger,
		names:    map[string]map[string]bool{},
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	files := watchedFiles(s.opts.ConfigPath, s.gen.Load().Config())
	if err := w.watch(files); err != nil {
		fsw.Close()
		return nil, err
	}
	w.last = hashFiles(files)
	go w.loop()
	return w, nil
}

// watchedFiles are the files whose content a reload reads: the
// configuration, the local signing keys and the STS client-assertion key.
// (TLS files are read by the listener, which a reload does not rebuild.)
func watchedFiles(configPath string, cfg *config.Config) []string {
	files := []string{configPath}
	if cfg == nil {
		return files
	}
	switch ex := cfg.Exchange; ex.Mode {
	case config.ModeLocal:
		for _, k := range ex.Local.SigningKeys {
			files = append(files, k.File)
		}
	case config.ModeRemote:
		// A rotated client-assertion key must reach the STS client too.
		if ex.Remote.AuthMethod == config.AuthPrivateKeyJWT && ex.Remote.PrivateKey.File != "" {
			files = append(files, ex.Remote.PrivateKey.File)
		}
	}
	return files
}

// watch makes the watched folders those of files, adding new ones and
// dropping folders no file lives in any more.
func (w *configWatcher) watch(files []string) error {
	want := map[string]map[string]bool{}
	for _, f := range files {
		dir, base := splitPath(f)
		if want[dir] == nil {
			want[dir] = map[string]bool{kubeDataLink: true}
		}
		want[dir][base] = true
	}
	for dir := range want {
		if w.names[dir] == nil {
			if err := w.fsw.Add(dir); err != nil {
				return fmt.Errorf("watch %s: %w", dir, err)
			}
		}
	}
	for dir := range w.names {
		if want[dir] == nil {
			_ = w.fsw.Remove(dir) // the folder may be gone already
		}
	}
	w.names = want
	return nil
}

// relevant reports an event on a watched file (or the Kubernetes data link).
func (w *configWatcher) relevant(ev fsnotify.Event) bool {
	dir, base := splitPath(ev.Name)
	return w.names[dir][base]
}

// splitPath returns the cleaned folder and base name of path.
func splitPath(path string) (dir, base string) {
	path = filepath.Clean(path)
	return filepath.Dir(path), filepath.Base(path)
}

func (w *configWatcher) loop() {
	defer close(w.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return
			}
			if ev.Op == fsnotify.Chmod || !w.relevant(ev) {
				continue
			}
			timer.Reset(w.debounce)
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return
			}
			w.log.Warn("configuration watcher", "error", err)
			// Events may have been lost: look at the files anyway.
			timer.Reset(w.debounce)
		case <-timer.C:
			w.check()
		case <-w.stop:
			timer.Stop()
			return
		}
	}
}

// check reloads when the watched files' contents changed since the last
// attempt. A failed reload is not retried until the files change again.
func (w *configWatcher) check() {
	defer w.checks.Add(1)
	files := watchedFiles(w.srv.opts.ConfigPath, w.srv.gen.Load().Config())
	sum := hashFiles(files)
	if sum == w.last {
		return
	}
	w.last = sum
	w.log.Info("configuration changed on disk; reloading")
	if err := w.srv.Reload(context.Background()); err != nil {
		w.log.Error("reload failed; the running configuration is kept", "error", err)
		return
	}
	// The new configuration may name other key files.
	next := watchedFiles(w.srv.opts.ConfigPath, w.srv.gen.Load().Config())
	if err := w.watch(next); err != nil {
		w.log.Warn("configuration watcher", "error", err)
	}
	w.last = hashFiles(next)
}

// hashFiles hashes the names and contents of files; a file that cannot be
// read hashes as its error, so its coming back is a change.
func hashFiles(files []string) [sha256.Size]byte {
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%s\x00", f)
		if err := hashFile(h, f); err != nil {
			h.Write([]byte("\x00unreadable"))
		}
		h.Write([]byte{0})
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

func hashFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

// Stop ends the watcher and waits for it.
func (w *configWatcher) Stop() {
	w.stopOnce.Do(func() {
		close(w.stop)
		<-w.done
		w.fsw.Close()
	})
}
