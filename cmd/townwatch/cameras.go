package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/recorder"
	"github.com/townwatch/townwatch/viewer"
	"github.com/townwatch/townwatch/viewer/live"
)

// cameraRegistry is the one list of running cameras. Everything that lists cameras (the
// HTTP API and its guard, the live view, the metrics collectors) reads its current
// snapshot at the moment it needs it, so a camera added or removed by a reload is seen
// everywhere at once and nothing keeps a list frozen at start.
type cameraRegistry struct {
	// snap is replaced whole on every change (copy on write): readers never lock and a
	// reader's slice never changes under it.
	snap atomic.Pointer[[]*cameraUnit]
}

// units is the current snapshot, in configuration order.
func (r *cameraRegistry) units() []*cameraUnit {
	if p := r.snap.Load(); p != nil {
		return *p
	}
	return nil
}

// set replaces the snapshot. Only the reload path (serialised by reloader.mu) and
// openSystem call it.
func (r *cameraRegistry) set(units []*cameraUnit) { r.snap.Store(&units) }

// unit is the running camera id, or nil.
func (r *cameraRegistry) unit(id string) *cameraUnit {
	units := r.units()
	if i := slices.IndexFunc(units, func(u *cameraUnit) bool { return u.id == id }); i >= 0 {
		return units[i]
	}
	return nil
}

// Cameras makes the registry the viewer's camera list.
func (r *cameraRegistry) Cameras() []viewer.Camera {
	units := r.units()
	out := make([]viewer.Camera, len(units))
	for i, u := range units {
		out[i] = u.view()
	}
	return out
}

// ids are the running cameras' ids.
func (r *cameraRegistry) ids() []string {
	units := r.units()
	out := make([]string, len(units))
	for i, u := range units {
		out[i] = u.id
	}
	return out
}

// cameraUnit is one camera at work: its main and sub ingest sources, its recorder and,
// with motion detection, the forwarding of its video to the motion worker, all under the
// unit's own context. Stopping the unit stops exactly these; the shared parts (hub,
// catalog, retention, live view, HTTP) go on for the other cameras.
type cameraUnit struct {
	id        string
	main, sub *ingest.Source
	writer    *recorder.Writer
	sys       *system

	// cfg is the camera's configuration as started or last updated in place (name,
	// zones, masks, motion tuning, retention change without a restart).
	cfg atomic.Pointer[configs.Camera]

	// credentials is credentialsDigest of cfg as started: a reload that finds it changed
	// (a password file rewritten in place) restarts the camera.
	credentials string

	stop context.CancelFunc // set by start
	// epoch is the lease the unit was started under, on one of several nodes (its
	// recorder's catalog writes are fenced by it, and so are its motion events and search
	// grid, see system.cameraWrites); 0 on a single node and before it starts. Atomic: the
	// motion pool's goroutines read it while a lease change starts the unit.
	epoch atomic.Int64
	done  chan struct{} // closed when every goroutine of the unit has returned
}

// credentialsKey keys credentialsDigest; made at start, it never leaves the process.
var credentialsKey = func() []byte {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}()

// credentialsDigest identifies what camera c dials with, password files' and environment
// passwords' content included: the configuration names a password file, so a password
// rewritten in that file leaves the configuration equal, and only this tells a reload that
// the camera's credentials changed. An HMAC under a key made at start, never logged:
// nothing of it can be checked against guessed passwords outside the process. A stream
// whose password cannot be read digests its error, so a file that comes back is a change.
func credentialsDigest(c configs.Camera) string {
	mac := hmac.New(sha256.New, credentialsKey)
	for _, st := range []*configs.Stream{&c.Main, c.Sub} {
		if st == nil {
			mac.Write([]byte{0})
			continue
		}
		dial, err := st.DialURL()
		if err != nil {
			dial = "error: " + err.Error()
		}
		mac.Write([]byte(dial))
		mac.Write([]byte{0})
	}
	return hex.EncodeToString(mac.Sum(nil))
}

// newUnit builds camera c's sources and recorder. It starts nothing.
func (sys *system) newUnit(c configs.Camera) (*cameraUnit, error) {
	u := &cameraUnit{id: c.ID, sys: sys, done: make(chan struct{}), credentials: credentialsDigest(c)}
	u.cfg.Store(&c)
	var err error
	if u.main, err = ingest.NewSource(c.ID, ingest.StreamMain, c.Main, sys.hub, sys.log); err != nil {
		return nil, err
	}
	if c.Sub != nil {
		if u.sub, err = ingest.NewSource(c.ID, ingest.StreamSub, *c.Sub, sys.hub, sys.log); err != nil {
			return nil, err
		}
	}
	u.writer, err = recorder.NewWriter(c, sys.storage, sys.catalog, sys.hub, sys.log, recorder.WriterOptions{
		DiskFull: sys.retention.Poke,
		FragmentLatency: func(d time.Duration) {
			sys.fragLatency.Observe(d.Seconds())
			sys.faultPoint(c.ID, "recorder")
		},
		MinFree:       sys.cfg.Storage.MinFree,
		ProgressEvery: sys.progressEvery(),
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// config is the camera's current configuration.
func (u *cameraUnit) config() configs.Camera { return *u.cfg.Load() }

// sources are the unit's ingest sources (main, then sub when configured).
func (u *cameraUnit) sources() []*ingest.Source {
	if u.sub != nil {
		return []*ingest.Source{u.main, u.sub}
	}
	return []*ingest.Source{u.main}
}

// live is how the live view knows the camera.
func (u *cameraUnit) live() live.Camera {
	c := u.config()
	return live.Camera{ID: c.ID, HasSub: c.Sub != nil, Audio: c.Live.Audio}
}

// view is how the API shows the camera.
func (u *cameraUnit) view() viewer.Camera {
	c := u.config()
	vc := viewer.Camera{ID: u.id, Name: c.Name, Main: u.main, Recording: u.sys.recordingStatus(u.id, u.writer)}
	if u.sub != nil {
		vc.Sub = u.sub
	}
	if u.sys.cluster != nil {
		vc.Node = func() string { return u.sys.holder(u.id) }
	}
	if c.Motion.Enabled {
		vc.Motion = func() viewer.Motion {
			st := u.sys.motion.Stats(u.id)
			return viewer.Motion{Active: st.Active, Events: st.Events}
		}
	}
	return vc
}

// start runs the unit's components, each supervised (a panic restarts that component
// alone), until stop.
func (u *cameraUnit) start(ctx context.Context) {
	ctx, u.stop = context.WithCancel(ctx)
	var wg sync.WaitGroup
	sys := u.sys
	// supervised returns only once ctx is done, always with nil: there is no error to keep.
	for _, src := range u.sources() {
		wg.Go(func() { _ = sys.supervised(ctx, u.id, "source_"+src.StreamName(), src.Run) })
	}
	wg.Go(func() { _ = sys.supervised(ctx, u.id, "recorder", u.writer.Run) })
	// Motion forwarding runs for every camera and idles for one without motion detection
	// (see motionPool.forward), so that enabling it is an update in place.
	wg.Go(func() {
		_ = sys.supervised(ctx, u.id, "motion", func(ctx context.Context) error { return sys.motion.forward(ctx, u.id) })
	})
	go func() {
		wg.Wait()
		close(u.done)
	}()
}

// halt stops the unit and waits until its components have returned: the recorder has
// closed its open segment at the last complete fragment and the sources have hung up.
func (u *cameraUnit) halt() {
	u.stop()
	<-u.done
}
