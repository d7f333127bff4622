package live

import (
	"bytes"
	"io"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/townwatch/townwatch/ingest/simcam"
)

// TestICETCPOnlyViewerConnects: a viewer that can only use TCP (UDP blocked on its
// network) connects through the ICE-TCP fallback and gets decodable video.
func TestICETCPOnlyViewerConnects(t *testing.T) {
	t.Parallel()
	r := newRig(t, Options{})
	v, err := dialWHEP(t, r.http.URL, "cam", viewerOpts{tcpOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var stream bytes.Buffer
	for i := 0; i < 75; i++ {
		f := v.nextFrame(t, 10*time.Second)
		if i == 0 && !f.isKey() {
			t.Fatal("first frame over ICE-TCP is not a keyframe")
		}
		stream.Write(f.annexB)
	}
	checkDecodes(t, stream.Bytes())
}

// stallProxy relays one ICE-TCP connection and can stop relaying towards the viewer, as
// a viewer whose network or machine stalls does. Its socket towards the server has a
// tiny receive buffer, so the server feels the stall within seconds; when the network
// recovers the buffer grows to an ordinary size again: through a 4 KiB window loopback
// TCP carried less than the 1.5 Mbit/s camera, so the "recovered" viewer fell further
// behind, dropped on and on, and took a minute to see 150 frames.
type stallProxy struct {
	ln      net.Listener
	target  string
	mu      sync.Mutex
	stalled bool
	resume  *sync.Cond
	closed  bool
	conns   []net.Conn
	ups     []*net.TCPConn // the sockets towards the server
	wg      sync.WaitGroup
}

const (
	stalledReadBuffer   = 4096
	recoveredReadBuffer = 1 << 20
)

func newStallProxy(t *testing.T, target string) *stallProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln, target: target}
	p.resume = sync.NewCond(&p.mu)
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

func (p *stallProxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *stallProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		up.(*net.TCPConn).SetReadBuffer(stalledReadBuffer)
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.ups = append(p.ups, up.(*net.TCPConn))
		p.mu.Unlock()
		p.wg.Go(func() { io.Copy(up, c) })
		p.wg.Go(func() { p.relayDown(c, up) })
	}
}

// relayDown copies server → viewer, pausing while stalled.
func (p *stallProxy) relayDown(down, up net.Conn) {
	buf := make([]byte, 4096)
	for {
		p.mu.Lock()
		for p.stalled && !p.closed {
			p.resume.Wait()
		}
		closed := p.closed
		p.mu.Unlock()
		if closed {
			return
		}
		n, err := up.Read(buf)
		if n > 0 {
			if _, werr := down.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// setStalled stops or resumes relaying towards the viewer. Resuming is a recovered
// network: the tiny receive buffer that made the stall bite goes too.
func (p *stallProxy) setStalled(s bool) {
	p.mu.Lock()
	p.stalled = s
	if !s {
		for _, up := range p.ups {
			up.SetReadBuffer(recoveredReadBuffer)
		}
	}
	p.resume.Broadcast()
	p.mu.Unlock()
}

func (p *stallProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	p.closed = true
	p.resume.Broadcast()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// busyClip writes a 4 s, 640x360, 25 fps, about 1.5 Mbit/s clip of noise with an IDR
// (and SPS/PPS) every second, for simcam to loop.
func busyClip(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "busy.h264")
	if err := simcam.GenerateClip(path, simcam.NoiseClip{Width: 640, Height: 360, FPS: 25, Frames: 100, GOP: 25, Bitrate: "1500k"}); err != nil {
		t.Fatal(err)
	}
	return path
}

// viaProxy rewrites an answer so the viewer reaches the server's ICE-TCP candidate through
// the proxy and has no UDP candidate to use.
func viaProxy(tcpPort, proxyPort int) func(string) string {
	tcpCand := regexp.MustCompile(`( tcp \d+ 127\.0\.0\.1 )` + strconv.Itoa(tcpPort) + ` `)
	udpCand := regexp.MustCompile(`a=candidate:[^\r\n]* udp [^\r\n]*\r\n`)
	return func(sdp string) string {
		sdp = udpCand.ReplaceAllString(sdp, "")
		return tcpCand.ReplaceAllString(sdp, "${1}"+strconv.Itoa(proxyPort)+" ")
	}
}

// TestStalledViewerDropsOnlyItsOwnPackets: a viewer whose connection stops draining loses
// its own frames (counted), while a second viewer on the same camera receives every
// frame intact, and the stalled one resumes at a keyframe once its network recovers.
func TestStalledViewerDropsOnlyItsOwnPackets(t *testing.T) {
	// A 1.5 Mbit/s camera fills the stalled connection's buffers within seconds, so the
	// drops begin long before ICE's consent checks (which the stall blocks too) would end
	// the session; the bundled 0.3 Mbit/s clip took tens of seconds on a loaded box.
	r := newRigFrom(t, simcam.CameraSpec{Path: "cam", File: busyClip(t)}, Options{})
	proxy := newStallProxy(t, r.m.TCPAddr().String())
	slow, err := dialWHEP(t, r.http.URL, "cam", viewerOpts{tcpOnly: true, patient: true,
		rewriteAnswer: viaProxy(r.m.TCPAddr().(*net.TCPAddr).Port, proxy.port())})
	if err != nil {
		t.Fatal(err)
	}
	fast, err := dialWHEP(t, r.http.URL, "cam", viewerOpts{})
	if err != nil {
		t.Fatal(err)
	}
	slow.nextFrame(t, 10*time.Second)
	var fastStream bytes.Buffer
	first := fast.nextFrame(t, 10*time.Second)
	if !first.isKey() {
		t.Fatal("fast viewer's first frame is not a keyframe")
	}
	fastStream.Write(first.annexB)

	proxy.setStalled(true)
	byID := func() map[bool]SessionStats { // keyed by "is the slow one"
		out := map[bool]SessionStats{}
		for _, s := range r.m.Sessions("cam") {
			out[slow.location == "/api/cameras/cam/whep/"+s.ID] = s
		}
		return out
	}
	deadline := time.Now().Add(90 * time.Second)
	fastFrames := 1
	for byID()[true].DroppedPackets == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the stalled viewer dropped nothing in 90 s: %+v", byID())
		}
		f := fast.nextFrame(t, 5*time.Second)
		if f.broken {
			t.Errorf("fast viewer: frame %d broken while the other viewer stalls", fastFrames)
		}
		fastStream.Write(f.annexB)
		fastFrames++
	}
	// Keep watching a little after the drops began: the fast viewer still gets everything.
	for range 50 {
		f := fast.nextFrame(t, 5*time.Second)
		if f.broken {
			t.Errorf("fast viewer: frame %d broken while the other viewer drops", fastFrames)
		}
		fastStream.Write(f.annexB)
		fastFrames++
	}
	st := byID()
	t.Logf("after %d fast frames: slow %+v, fast %+v", fastFrames, st[true], st[false])
	if st[false].DroppedPackets != 0 {
		t.Errorf("the fast viewer dropped %d packets", st[false].DroppedPackets)
	}
	if cs := r.m.Stats("cam"); cs.DroppedPackets != st[true].DroppedPackets {
		t.Errorf("camera drop count %d, the slow viewer's %d", cs.DroppedPackets, st[true].DroppedPackets)
	}
	checkDecodes(t, fastStream.Bytes())

	// The network recovers: what was in flight arrives, then the viewer resumes at a
	// keyframe (sequence numbers continue, so the client sees no loss, only a jump).
	for len(slow.frames) > 0 {
		<-slow.frames
	}
	proxy.setStalled(false)
	// First comes what the server's socket had already taken before it felt the stall
	// (its send buffer: hundreds of frames on a loopback that autotunes it to megabytes),
	// then the keyframe the viewer resumes at, then the stream from there on.
	var resumed bytes.Buffer
	backlog := 0
	keyBy := time.Now().Add(30 * time.Second)
	for resumed.Len() == 0 {
		if time.Now().After(keyBy) {
			t.Fatalf("the slow viewer got no keyframe within 30 s of recovering (%d frames)", backlog)
		}
		f := slow.nextFrame(t, 10*time.Second)
		if f.broken {
			t.Errorf("slow viewer: broken frame after recovering")
		}
		if f.isKey() {
			resumed.Write(f.annexB)
		} else {
			backlog++
		}
	}
	for range 100 {
		f := slow.nextFrame(t, 10*time.Second)
		if f.broken {
			t.Errorf("slow viewer: broken frame after resuming")
		}
		resumed.Write(f.annexB)
	}
	t.Logf("recovered: %d frames in flight, then a keyframe and 100 more", backlog)
	checkDecodes(t, resumed.Bytes())
}
