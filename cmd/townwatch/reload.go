package main

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/motion/report"
)

// cameraChange is what a reload does to one camera.
type cameraChange int

const (
	cameraSame    cameraChange = iota // untouched: no reconnect, no new segment
	cameraUpdate                      // name, zones, masks, motion, retention, live audio: in place
	cameraRestart                     // streams or recording: only this camera restarts
)

// changeOf classifies a camera's new configuration against the running one. Whatever is
// not known to be safe to change under a running recorder restarts the camera: a restart
// closes the open segment at its last complete fragment, so it costs a reconnect and never
// footage.
func changeOf(old, next configs.Camera) cameraChange {
	if reflect.DeepEqual(old, next) {
		return cameraSame
	}
	if reflect.DeepEqual(withoutInPlace(old), withoutInPlace(next)) {
		return cameraUpdate
	}
	return cameraRestart
}

// withoutInPlace blanks the settings a running camera takes without a restart: the API
// and metrics read the name from the registry, motion goes to the motion worker,
// retention to Retention, live audio to the next live feed.
func withoutInPlace(c configs.Camera) configs.Camera {
	c.Name = ""
	c.Motion = configs.Motion{}
	c.Live = configs.Live{}
	c.Record.Retention, c.Record.Quota, c.Record.EventRetention = 0, 0, 0
	return c
}

// globalChanges lists the settings outside cameras that differ, by their config path
// (http.listen, storage.path, webrtc.udp_port, ...). None of them is applied by a reload:
// they are bound into listeners, open files and keys at start, so each needs a restart.
func globalChanges(old, next *configs.Config) []string {
	var out []string
	ov, nv := reflect.ValueOf(*old), reflect.ValueOf(*next)
	for i := range ov.NumField() {
		f := ov.Type().Field(i)
		tag := yamlName(f)
		if tag == "cameras" {
			continue
		}
		diffPaths(tag, ov.Field(i), nv.Field(i), &out)
	}
	return out
}

// diffPaths appends the config paths below path whose values differ.
func diffPaths(path string, a, b reflect.Value, out *[]string) {
	if a.Kind() == reflect.Struct && a.Type().NumField() > 0 && yamlName(a.Type().Field(0)) != "" {
		for i := range a.NumField() {
			if name := yamlName(a.Type().Field(i)); name != "" && name != "-" {
				diffPaths(path+"."+name, a.Field(i), b.Field(i), out)
			}
		}
		return
	}
	if !reflect.DeepEqual(a.Interface(), b.Interface()) {
		*out = append(*out, path)
	}
}

func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

// reloadStatus is GET /api/config/status: the outcome of the last reload. An invalid
// configuration lists every problem with its path, in the words of check-config.
type reloadStatus struct {
	File string `json:"file"` // the configuration file reloads read
	// Running is when the running configuration was loaded (start or last good reload).
	Running time.Time `json:"running_since"`
	// Last is the last reload tried, nil before the first.
	Last *reloadAttempt `json:"last_reload,omitempty"`
}

type reloadAttempt struct {
	At      time.Time `json:"at"`
	Trigger string    `json:"trigger"` // sighup, file, api
	Success bool      `json:"success"`
	// Problems are the reasons the new configuration was refused; the running one stays.
	Problems []configProblem `json:"problems,omitempty"`
	// RestartRequired are the changed settings a reload does not apply (http.listen,
	// storage.path, webrtc ports ...): they take effect at the next start.
	RestartRequired []string `json:"restart_required,omitempty"`
	Added           []string `json:"added,omitempty"`
	Updated         []string `json:"updated,omitempty"`
	Restarted       []string `json:"restarted,omitempty"`
	Removed         []string `json:"removed,omitempty"`
}

func (a *reloadAttempt) changedNothing() bool {
	return len(a.RestartRequired)+len(a.Added)+len(a.Updated)+len(a.Restarted)+len(a.Removed) == 0
}

// configProblem is one reason a configuration was refused. Text is the line check-config
// prints for it.
type configProblem struct {
	Path string `json:"path,omitempty"` // empty for a file that cannot be read or parsed
	Text string `json:"text"`
}

// reloader applies a changed configuration to the running system, one reload at a time,
// whatever the trigger: SIGHUP, a change of the config file, or an API write (Apply).
type reloader struct {
	sys  *system
	file string // the configuration file; "" when the system was built from a Config

	mu     sync.Mutex // one reload at a time; guards status and sys.cfg
	status reloadStatus
	// running is the context camera units are started under; nil until system.run.
	running context.Context
	stopped bool // system.run has ended: nothing is applied any more

	success prometheus.Gauge // townwatch_config_last_reload_success
}

func newReloader(sys *system, file string) *reloader {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "townwatch_config_last_reload_success",
		Help: "1 when the last configuration reload was applied (or none was tried since start), 0 when it was refused and the previous configuration runs on.",
	})
	g.Set(1)
	return &reloader{sys: sys, file: file, success: g, status: reloadStatus{Running: time.Now().UTC()}}
}

// currentStatus is the status as of now (for the API).
func (rl *reloader) currentStatus() any {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	st := rl.status
	st.File = rl.file
	return st
}

// Reload reads the configuration file and cameras.d again and applies it (see Apply). trigger names
// what asked for it, for the log and the status.
func (rl *reloader) Reload(trigger string) error {
	if rl.file == "" {
		return errors.New("reload: townwatch was not started from a configuration file")
	}
	// The files are read under the reload lock: a union read before an API write must not
	// be applied after that write's own reload, which would stop the camera just added
	// until the next poll. Read and applied in one turn, the later turn always wins.
	rl.mu.Lock()
	defer rl.mu.Unlock()
	cfg, err := configs.LoadUnion(rl.file)
	if err != nil {
		rl.refused(trigger, err)
		return err
	}
	return rl.apply(cfg, trigger)
}

// Apply makes cfg the running configuration: cfg is validated whole first (a refused one
// changes nothing), then every camera is diffed against the running one and only what
// changed is touched (see changeOf); settings outside cameras are reported as needing a
// restart and not applied. It is the entry point for an API write of the configuration.
func (rl *reloader) Apply(cfg *configs.Config, trigger string) error {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	return rl.apply(cfg, trigger)
}

// apply is Apply under rl.mu.
func (rl *reloader) apply(cfg *configs.Config, trigger string) error {
	if rl.stopped {
		return errors.New("reload: townwatch is stopping")
	}
	if err := cfg.Validate(); err != nil {
		rl.refused(trigger, err)
		return err
	}
	att, err := rl.sys.applyCameras(rl.running, cfg)
	att.At, att.Trigger = time.Now().UTC(), trigger
	// An API write is applied at once and then seen again by the file poll, whose reload
	// finds nothing to do: that one must not replace the record of the write in the
	// status (an administrator would read "file, nothing changed" instead of what the
	// write did). A poll's empty reload after a refused one is kept: it says the files
	// are good again.
	if err == nil && trigger == "file" && att.changedNothing() && rl.status.Last != nil && rl.status.Last.Success {
		return nil
	}
	if err != nil {
		// Validation passed, so this is a component refusing its part (a motion setting the
		// analyser cannot take, say): what was applied stays, the rest is reported.
		att.Problems = []configProblem{{Text: err.Error()}}
		rl.success.Set(0)
	} else {
		att.Success = true
		rl.success.Set(1)
		rl.status.Running = att.At
	}
	rl.status.Last = &att
	rl.sys.log.Info("configuration reloaded", "trigger", trigger, "applied", att.Success,
		"added", att.Added, "updated", att.Updated, "restarted", att.Restarted, "removed", att.Removed,
		"restart_required", att.RestartRequired)
	if len(att.RestartRequired) > 0 {
		rl.sys.log.Warn("changed settings take effect only after a restart of townwatch; they were not applied",
			"settings", att.RestartRequired)
	}
	return err
}

// refused records a configuration that was not applied. The running one stays.
func (rl *reloader) refused(trigger string, err error) {
	att := reloadAttempt{At: time.Now().UTC(), Trigger: trigger}
	var verr *configs.ValidationError
	if errors.As(err, &verr) {
		for _, p := range verr.Problems {
			att.Problems = append(att.Problems, configProblem{Path: p.Path, Text: p.String()})
		}
	} else {
		att.Problems = []configProblem{{Text: err.Error()}}
	}
	rl.status.Last = &att
	rl.success.Set(0)
	rl.sys.log.Error("configuration not reloaded: the running configuration stays", "trigger", trigger, "err", err)
}

// applyCameras brings the running cameras to next's, camera by camera, and reports what
// it did. It runs under reloader.mu. With running nil (before system.run) units are
// built but started by run.
func (sys *system) applyCameras(running context.Context, next *configs.Config) (reloadAttempt, error) {
	var att reloadAttempt
	att.RestartRequired = globalChanges(sys.cfg, next)
	// The streams carry ingest.max_resolution, a global: pinned to the running value so
	// that a global change restarts no camera (it is reported above instead).
	cams := slices.Clone(next.Cameras)
	for i := range cams {
		cams[i].Main.MaxResolution = sys.cfg.Ingest.MaxResolution
		if cams[i].Sub != nil {
			sub := *cams[i].Sub
			sub.MaxResolution = sys.cfg.Ingest.MaxResolution
			cams[i].Sub = &sub
		}
	}

	old := sys.cams.units()
	units := make([]*cameraUnit, 0, len(cams))
	var errs []error
	var disabled []configs.Camera
	for _, c := range cams {
		if c.Disabled {
			// Not run: a running one is stopped below like a removed camera.
			disabled = append(disabled, c)
			continue
		}
		u := sys.cams.unit(c.ID)
		switch {
		case u == nil:
			nu, err := sys.newUnit(c)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			sys.startUnit(running, nu)
			u = nu
			att.Added = append(att.Added, c.ID)
		default:
			change := changeOf(u.config(), c)
			if change != cameraRestart && credentialsDigest(c) != u.credentials {
				change = cameraRestart // same configuration, new password in its file
			}
			switch change {
			case cameraUpdate:
				u.cfg.Store(&c)
				att.Updated = append(att.Updated, c.ID)
			case cameraRestart:
				nu, err := sys.newUnit(c)
				if err != nil {
					errs = append(errs, err) // the camera runs on as it was
					break
				}
				// The old unit is stopped before the new one starts: two sources of
				// one camera must not publish to the hub at once.
				sys.stopUnit(u)
				sys.startUnit(running, nu)
				u = nu
				att.Restarted = append(att.Restarted, c.ID)
			}
		}
		if err := sys.live.PutCamera(u.live()); err != nil {
			errs = append(errs, err)
		}
		units = append(units, u)
	}
	for _, u := range old {
		if !slices.ContainsFunc(units, func(n *cameraUnit) bool { return n.id == u.id }) {
			sys.removeUnit(u)
			att.Removed = append(att.Removed, u.id)
		}
	}
	sys.cams.set(units)
	applied := *sys.cfg
	applied.Cameras = make([]configs.Camera, len(units), len(units)+len(disabled))
	for i, u := range units {
		applied.Cameras[i] = u.config()
	}
	// Disabled cameras stay in the running configuration: retention keeps their footage
	// by their own record.retention, not by the rule for cameras no longer configured.
	applied.Cameras = append(applied.Cameras, disabled...)
	sys.cfg = &applied
	if err := sys.retention.Reconfigure(applied.Cameras); err != nil {
		errs = append(errs, err)
	}
	sys.motion.setCameras(sys.motionCameras())
	return att, errors.Join(errs...)
}

// motionCameras are the running cameras with motion detection and their event sinks,
// and the others, whose scrub-preview thumbnails the worker makes from keyframes.
func (sys *system) motionCameras() ([]configs.Camera, []string, map[string]func(report.Event)) {
	var cams []configs.Camera
	var thumbed []string
	sinks := map[string]func(report.Event){}
	for _, u := range sys.cams.units() {
		if c := u.config(); c.Motion.Enabled {
			cams = append(cams, c)
			sinks[c.ID] = sys.eventSink(c, u.writer).onEvent
		} else {
			thumbed = append(thumbed, c.ID)
		}
	}
	return cams, thumbed, sinks
}

// startUnit starts u under running; before system.run (running nil) run starts it. On
// one of several nodes only a camera whose lease the node holds starts, under its fence.
func (sys *system) startUnit(running context.Context, u *cameraUnit) {
	if running == nil {
		return
	}
	if ctx, epoch, ok := sys.unitContext(running, u); ok {
		u.epoch.Store(epoch)
		u.start(ctx)
	}
}

// stopUnit stops a running unit and banks what must outlive it.
func (sys *system) stopUnit(u *cameraUnit) {
	if u.stop != nil {
		u.halt()
	}
	st := u.writer.Stats()
	sys.health.retiredFailures.Add(st.CatalogFailures)
	sys.health.retiredFenced.Add(st.FencedWrites)
}

// removeUnit stops a camera that left the configuration: its live viewers are ended and
// its WHEP offers get 404, its metric series go. Its footage stays, under retention and
// evidence locks like any camera no longer configured.
func (sys *system) removeUnit(u *cameraUnit) {
	sys.live.RemoveCamera(u.id)
	sys.stopUnit(u)
	sys.restarts.DeletePartialMatch(prometheus.Labels{"camera": u.id})
	sys.analysisTime.DeletePartialMatch(prometheus.Labels{"camera": u.id})
}

// start starts every unit built before run, and from now on reloads start the units
// they add under ctx.
func (rl *reloader) start(ctx context.Context) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	rl.running = ctx
	for _, u := range rl.sys.cams.units() {
		rl.sys.startUnit(ctx, u)
	}
}

// stop waits for every unit to stop (ctx is done) and refuses reloads from then on.
func (rl *reloader) stop() {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	for _, u := range rl.sys.cams.units() {
		if u.stop != nil {
			u.halt()
		}
	}
	rl.running, rl.stopped = nil, true
}
