package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"
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
type fileStamp struct {
	info os.FileInfo // nil: the file could not be read (mid-rename, or removed)
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{info: fi}
}

func (a fileStamp) same(b fileStamp) bool {
	if a.info == nil || b.info == nil {
		return a.info == nil && b.info == nil
	}
	return os.SameFile(a.info, b.info) && a.info.Size() == b.info.Size() && a.info.ModTime().Equal(b.info.ModTime())
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
