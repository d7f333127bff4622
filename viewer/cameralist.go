package viewer

import "slices"

// CameraList is the configured cameras as of now, in the order the wall shows them. The
// list changes while the server runs (a configuration reload adds, updates or removes a
// camera), so every request reads it afresh and no part of the server keeps a copy: a
// removed camera is unknown to every route at once, and an added one known to all.
type CameraList interface {
	Cameras() []Camera
}

// StaticCameras is a CameraList that never changes (tests and tools).
type StaticCameras []Camera

// Cameras returns the list itself.
func (c StaticCameras) Cameras() []Camera { return c }

// cameraSet gives the events, playback and export APIs the server's one camera list
// (Server.New hands it to them), so they never disagree with the guard about which
// cameras exist.
type cameraSet struct{ list CameraList }

// ids are the configured camera ids now.
func (c cameraSet) ids() []string {
	cams := c.list.Cameras()
	out := make([]string, len(cams))
	for i, cam := range cams {
		out[i] = cam.ID
	}
	return out
}

// known reports whether id is a configured camera now.
func (c cameraSet) known(id string) bool {
	return slices.ContainsFunc(c.list.Cameras(), func(cam Camera) bool { return cam.ID == id })
}

// find returns the configured camera id.
func (c cameraSet) find(id string) (Camera, bool) {
	cams := c.list.Cameras()
	if i := slices.IndexFunc(cams, func(cam Camera) bool { return cam.ID == id }); i >= 0 {
		return cams[i], true
	}
	return Camera{}, false
}
