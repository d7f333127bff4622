package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/townwatch/townwatch/configs"
)

// configPollInterval is how often serve looks at the configuration file. A stat is one
// system call, so four a second cost nothing measurable, and with the settle check below
// an edit is applied within about half a second to a second. Polling instead of inotify
// (fsnotify) keeps a dependency out and sees every way a file is replaced: editors save
// by writing a new file and renaming it over the old one, which a watch on the file
// itself would lose.
const configPollInterval = 250 * time.Millisecond

// fileStamp is what the poll compares: a rename gives a new file (os.SameFile fails), an
// edit in place a new size or modification time.
// The cameras.d directory is stamped too: its modification time changes whenever a
// camera file is added, renamed into place or removed, which is how every writer (the
// API, the command line, an editor) changes it.
type fileStamp struct {
	info os.FileInfo // nil: the file could not be read (mid-rename, or removed)
	dir  os.FileInfo // cameras.d; nil when there is none
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	dir, _ := os.Stat(configs.CamerasDir(path))
	return fileStamp{info: fi, dir: dir}
}

func (a fileStamp) same(b fileStamp) bool {
	return sameInfo(a.info, b.info) && sameInfo(a.dir, b.dir)
}

func sameInfo(a, b os.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// watch reloads the configuration on SIGHUP and when the file changes, until ctx is done.
// A change is applied once the file has stayed the same for one poll, so an editor's
// half-written file is not read; a missing file (between an editor's delete and create)
// is waited out, not reported.
func (rl *reloader) watch(ctx context.Context) error {
	if rl.file == "" {
		return nil
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	tick := time.NewTicker(configPollInterval)
	defer tick.Stop()
	applied := stampOf(rl.file)
	seen := applied
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			applied = stampOf(rl.file)
			seen = applied
			rl.Reload("sighup")
		case <-tick.C:
			now := stampOf(rl.file)
			settled := now.same(seen)
			seen = now
			if !settled || now.info == nil || now.same(applied) {
				continue
			}
			applied = now
			rl.Reload("file")
		}
	}
}
