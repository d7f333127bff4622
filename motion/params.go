package motion

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/motion/report"
)

// params is a camera's motion configuration, checked and in the form the analyser uses.
type params struct {
	camera        string
	stream        string // ingest.StreamSub when the camera has one, else ingest.StreamMain
	keyframesOnly bool   // decode and analyse keyframes only
	interval      time.Duration
	width         int
	sensitivity   int
	minArea       float64 // percent of the frame
	cooldown      time.Duration
	zones         []namedPolygon
	masks         []polygon
}

// newParams checks cam's motion settings (configs.Parse has usually done so; a caller that
// builds a Camera by hand gets the same kind of message) and resolves "auto".
func newParams(cam configs.Camera) (*params, error) {
	m := cam.Motion
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("cameras[%s].motion.%s: %s", cam.ID, field, fmt.Sprintf(format, args...)))
	}
	if cam.ID == "" {
		errs = append(errs, errors.New("camera id: required"))
	}
	if !m.Enabled {
		bad("enabled", "motion detection is off for this camera")
	}
	p := &params{camera: cam.ID, stream: report.AnalysedStream(cam), width: m.Width, sensitivity: m.Sensitivity,
		minArea: m.MinArea, cooldown: time.Duration(m.Cooldown)}
	switch m.Analyze {
	case configs.AnalyzeAuto, "":
		// A sub stream is cheap to decode fully; a main stream costs 10-20 times more per
		// frame, so only its keyframes (decodable on their own) are analysed.
		p.keyframesOnly = p.stream == ingest.StreamMain
	case configs.AnalyzeKeyframes:
		p.keyframesOnly = true
	case configs.AnalyzeAll:
	default:
		bad("analyze", "%q is not one of auto, keyframes, all", m.Analyze)
	}
	if m.FPS <= 0 || m.FPS > 30 {
		bad("fps", "%g must be above 0 and at most 30", m.FPS)
	} else {
		p.interval = time.Duration(float64(time.Second) / m.FPS)
	}
	if m.Width < 64 || m.Width > 1920 {
		bad("width", "%d must be between 64 and 1920", m.Width)
	}
	if m.Sensitivity < 1 || m.Sensitivity > 100 {
		bad("sensitivity", "%d must be between 1 and 100", m.Sensitivity)
	}
	if m.MinArea < 0 || m.MinArea > 100 {
		bad("min_area", "%g must be a percentage between 0 and 100", m.MinArea)
	}
	if p.cooldown < time.Second {
		bad("cooldown", "%v must be at least 1s", p.cooldown)
	}
	if len(m.Zones) > configs.MaxMotionZones {
		bad("zones", "%d zones, at most %d", len(m.Zones), configs.MaxMotionZones)
	}
	names := make(map[string]bool, len(m.Zones))
	for i, z := range m.Zones {
		field := fmt.Sprintf("zones[%d]", i)
		if z.Name == "" {
			bad(field+".name", "required (events name the zones they hit)")
		} else if names[z.Name] {
			bad(field+".name", "duplicate name %q", z.Name)
		}
		names[z.Name] = true
		poly, err := toPolygon(z.Points)
		if err != nil {
			bad(field+".points", "%v", err)
		}
		p.zones = append(p.zones, namedPolygon{name: z.Name, poly: poly})
	}
	for i, z := range m.Masks {
		poly, err := toPolygon(z.Points)
		if err != nil {
			bad(fmt.Sprintf("masks[%d].points", i), "%v", err)
		}
		p.masks = append(p.masks, poly)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

func toPolygon(points [][]float64) (polygon, error) {
	if len(points) < 3 {
		return nil, fmt.Errorf("want at least 3 points [x, y], got %d", len(points))
	}
	poly := make(polygon, len(points))
	for i, pt := range points {
		if len(pt) != 2 {
			return nil, fmt.Errorf("point %d: want [x, y], got %d numbers", i, len(pt))
		}
		if pt[0] < 0 || pt[0] > 1 || pt[1] < 0 || pt[1] > 1 {
			return nil, fmt.Errorf("point %d: [%g, %g] is outside 0..1", i, pt[0], pt[1])
		}
		poly[i] = [2]float64{pt[0], pt[1]}
	}
	return poly, nil
}

// zoneNames lists the zones set in a hit mask, in configuration order.
func (p *params) zoneNames(hit uint64) []string {
	var names []string
	for i, z := range p.zones {
		if hit&(1<<i) != 0 {
			names = append(names, z.name)
		}
	}
	return names
}

// zoneBits is the hit mask of the named zones that are configured; others are left out.
func (p *params) zoneBits(names []string) uint64 {
	var hit uint64
	for i, z := range p.zones {
		if slices.Contains(names, z.name) {
			hit |= 1 << i
		}
	}
	return hit
}
