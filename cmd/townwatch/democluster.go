package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest/simcam"
	"github.com/townwatch/townwatch/recorder/archive/s3server"
	"github.com/townwatch/townwatch/recorder/catalog/pgserver"
)

// The cluster demo: `townwatch demo-cluster` (make demo-cluster) runs on one machine,
// on loopback only, what a town with several recorder nodes runs (docs/nodes.md): a
// PostgreSQL catalog, an S3 archive, simulated cameras and two `townwatch serve -node`
// processes sharing them. Nothing to configure; everything lives in temporary
// directories that Ctrl+C removes.

// demoClusterNodes are the demo's two nodes.
var demoClusterNodes = []string{"a", "b"}

// demoClusterBucket is the demo's archive bucket; townwatch creates it.
const demoClusterBucket = "townwatch-demo"

// demoClusterArchiveAfter is how old a closed segment gets before the demo moves it to
// the bucket: minutes, so that a newcomer sees the archive tier at work.
const demoClusterArchiveAfter = "2m"

// demoNodeStop bounds a node's clean stop (its cameras' segments closed, its leases
// handed over); a node still running then is killed.
const demoNodeStop = 60 * time.Second

func runDemoCluster(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("demo-cluster", stderr)
	httpA := fs.String("http-a", "127.0.0.1:8080", "HTTP listen address of node a (port 0 picks a free one)")
	httpB := fs.String("http-b", "127.0.0.1:8081", "HTTP listen address of node b (port 0 picks a free one)")
	rtsp := fs.String("simcam", "127.0.0.1:8554", "RTSP listen address of the simulated cameras (port 0 picks a free one)")
	ncams := fs.Int("cameras", 4, "number of simulated cameras, shared out between the two nodes")
	var lf logFlags
	lf.register(fs)
	log, code, ok := lf.parse(fs, args, stderr)
	if !ok {
		return code
	}
	if *ncams < 1 {
		fmt.Fprintf(stderr, "demo-cluster: -cameras %d: must be at least 1\n", *ncams)
		return exitUsage
	}
	listen := map[string]string{"a": *httpA, "b": *httpB}
	for n, addr := range listen {
		host, _, err := net.SplitHostPort(addr)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			fmt.Fprintf(stderr, "demo-cluster: -http-%s %q: must be a loopback address with a port, such as 127.0.0.1:8080\n", n, addr)
			return exitUsage
		}
	}
	dc := &demoCluster{log: log}
	err := dc.start(ctx, listen, *rtsp, *ncams)
	switch {
	case err == nil:
		dc.print(stdout)
		err = dc.wait(ctx)
	case ctx.Err() != nil:
		err = nil // Ctrl+C while starting: stop what is running, as after it
	}
	if serr := dc.stop(); serr != nil {
		err = errors.Join(err, serr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "demo-cluster: %v\n", err)
		return exitFailure
	}
	fmt.Fprintln(stdout, "townwatch demo cluster stopped; its temporary files are removed")
	return exitOK
}

// demoCluster is what the demo started, so that stop takes it down in order whatever
// point the start reached.
type demoCluster struct {
	log *slog.Logger
	dir string // configurations, node storage, keys, bucket, node logs

	pg      *pgserver.Server
	dbURL   string
	s3      *s3server.Server
	cams    *simcam.Server
	camIDs  []string
	stopCam context.CancelFunc
	camDone chan error

	nodes    []*demoNode
	accounts []demoAccount
}

// demoNode is one `townwatch serve -node` process.
type demoNode struct {
	name, base, config, logFile string
	cmd                         *exec.Cmd
	exited                      chan struct{}
	err                         error // Wait's result, set before exited is closed
}

func (dc *demoCluster) start(ctx context.Context, listen map[string]string, rtsp string, ncams int) error {
	var err error
	if dc.dir, err = os.MkdirTemp("", "townwatch-demo-cluster-"); err != nil {
		return err
	}
	dc.log.Info("starting PostgreSQL 15")
	if dc.pg, err = pgserver.Start(); err != nil {
		return fmt.Errorf("PostgreSQL: %w", err)
	}
	if dc.dbURL, err = dc.pg.NewDatabase(ctx); err != nil {
		return fmt.Errorf("PostgreSQL: %w", err)
	}
	if err := dc.startS3(); err != nil {
		return err
	}
	if err := dc.startCameras(rtsp, ncams); err != nil {
		return err
	}
	token := filepath.Join(dc.dir, "node.token")
	if err := writeSecretFile(token, 32); err != nil {
		return err
	}
	for _, name := range demoClusterNodes {
		addr, err := freeIfZero(listen[name])
		if err != nil {
			return fmt.Errorf("node %s: %w", name, err)
		}
		n := &demoNode{name: name, base: "http://" + addr + "/", config: filepath.Join(dc.dir, name+".yaml"),
			logFile: filepath.Join(dc.dir, name+".log"), exited: make(chan struct{})}
		if err := os.WriteFile(n.config, []byte(dc.nodeConfig(name, addr, token)), 0o600); err != nil {
			return err
		}
		dc.nodes = append(dc.nodes, n)
	}
	// The accounts go into the shared catalog before any node serves; this also makes
	// the catalog's schema and the audit key every node shares.
	if err := dc.makeAccounts(ctx); err != nil {
		return err
	}
	for _, n := range dc.nodes {
		if err := n.start(); err != nil {
			return err
		}
	}
	for _, n := range dc.nodes {
		if err := n.waitListening(ctx); err != nil {
			return err
		}
	}
	return nil
}

// startS3 runs versitygw with fresh random keys, which the nodes read from files.
func (dc *demoCluster) startS3() error {
	access, secret := filepath.Join(dc.dir, "s3-access"), filepath.Join(dc.dir, "s3-secret")
	if err := errors.Join(writeSecretFile(access, 10), writeSecretFile(secret, 20)); err != nil {
		return err
	}
	ak, err1 := os.ReadFile(access)
	sk, err2 := os.ReadFile(secret)
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	dir := filepath.Join(dc.dir, "s3")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	dc.log.Info("starting the S3 server (versitygw)")
	s3, err := s3server.Start(dir, strings.TrimSpace(string(ak)), strings.TrimSpace(string(sk)))
	if err != nil {
		return fmt.Errorf("S3: %w", err)
	}
	dc.s3 = s3
	return nil
}

// startCameras serves ncams simulated cameras, cam1..camN, alternately the moving and
// the still scene.
func (dc *demoCluster) startCameras(rtsp string, ncams int) error {
	specs := make([]simcam.CameraSpec, ncams)
	for i := range specs {
		clip := simcam.ClipMotion
		if i%2 == 1 {
			clip = simcam.ClipStatic
		}
		specs[i] = simcam.CameraSpec{Path: fmt.Sprintf("cam%d", i+1), Clip: clip}
		dc.camIDs = append(dc.camIDs, specs[i].Path)
	}
	cams, err := simcam.New(simcam.Config{Listen: rtsp, Cameras: specs, Logger: dc.log})
	if err != nil {
		return fmt.Errorf("-simcam: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	dc.cams, dc.stopCam, dc.camDone = cams, cancel, make(chan error, 1)
	go func() { dc.camDone <- cams.Run(ctx) }()
	select {
	case <-cams.Ready():
		return nil
	case err := <-dc.camDone:
		dc.stopCam = nil
		return fmt.Errorf("simulated cameras on %s: %w", rtsp, err)
	}
}

// nodeConfig is node name's configuration: its own storage, address and log, the shared
// catalog, archive, audit key and node token, and every camera (none pinned).
func (dc *demoCluster) nodeConfig(name, addr, token string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# townwatch demo-cluster, node %s (written by townwatch; removed at its stop)\n", name)
	fmt.Fprintf(&b, "storage:\n  path: %q\n  archive:\n    url: s3://%s/%s\n    after: %s\n    access_key_file: %q\n    secret_key_file: %q\n",
		filepath.Join(dc.dir, name), dc.s3.Addr, demoClusterBucket, demoClusterArchiveAfter,
		filepath.Join(dc.dir, "s3-access"), filepath.Join(dc.dir, "s3-secret"))
	fmt.Fprintf(&b, "http:\n  listen: %s\nwebrtc:\n  udp_port: 0\n  tcp_port: 0\n", addr)
	// The access log in the shared catalog is one chain, sealed with one key.
	fmt.Fprintf(&b, "audit:\n  key_file: %q\n", filepath.Join(dc.dir, "audit.key"))
	fmt.Fprintf(&b, "catalog:\n  url: %q\nnode:\n  advertise: http://%s\n  token_file: %q\n", dc.dbURL, addr, token)
	b.WriteString("cameras:\n")
	for _, id := range dc.camIDs {
		fmt.Fprintf(&b, "  - id: %s\n    main:\n      url: %s\n      transport: tcp\n    record:\n      mode: continuous\n", id, dc.cams.URL(id))
	}
	return b.String()
}

// makeAccounts makes the demo's accounts, one per role with a new password, in the
// shared catalog (through node a's configuration: its catalog and audit key).
func (dc *demoCluster) makeAccounts(ctx context.Context) error {
	cfg, err := configs.LoadUnion(dc.nodes[0].config)
	if err != nil {
		return fmt.Errorf("the demo's own configuration: %w", err)
	}
	ca, err := openCLIAudit(ctx, cfg, true)
	if err != nil {
		return err
	}
	defer ca.Close()
	dc.accounts, err = ensureDemoAccounts(ctx, ca.cat, ca.log)
	return err
}

// start runs `townwatch serve -node` (this very binary), logging to its file.
func (n *demoNode) start() error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(n.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	n.cmd = exec.Command(self, "serve", "-config", n.config, "-node", n.name, "-log-format", "text")
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	// Its own process group: a Ctrl+C at the terminal reaches the demo only, which stops
	// the nodes first (each hands its cameras over and closes its segments in the
	// catalog) and PostgreSQL after them.
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := n.cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("node %s: %w", n.name, err)
	}
	go func() {
		n.err = n.cmd.Wait()
		logf.Close()
		close(n.exited)
	}()
	return nil
}

// waitListening waits until the node accepts HTTP connections, or fails with the tail of
// its log when it exits first.
func (n *demoNode) waitListening(ctx context.Context) error {
	addr := strings.TrimSuffix(strings.TrimPrefix(n.base, "http://"), "/")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-n.exited:
			return fmt.Errorf("node %s exited at its start (%v):\n%s", n.name, n.err, n.logTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s does not listen on %s after 2 minutes:\n%s", n.name, addr, n.logTail())
		}
	}
}

func (n *demoNode) logTail() string {
	b, _ := os.ReadFile(n.logFile)
	return tailLines(string(b), 20)
}

// tailLines is the last n lines of s.
func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func (dc *demoCluster) print(w io.Writer) {
	fmt.Fprintln(w, "townwatch demo cluster is running (Ctrl+C stops it and removes its files):")
	for _, n := range dc.nodes {
		fmt.Fprintf(w, "  node %s      %s\n", n.name, n.base)
	}
	fmt.Fprintf(w, "  PostgreSQL  %s (the shared catalog; data in %s)\n", dc.dbURL, dc.pg.Dir())
	fmt.Fprintf(w, "  S3          http://%s/%s (the archive, after %s; keys in %s)\n", dc.s3.Addr, demoClusterBucket,
		demoClusterArchiveAfter, dc.dir)
	fmt.Fprintf(w, "  cameras     rtsp://%s/ %s\n", dc.cams.Addr(), strings.Join(dc.camIDs, " "))
	fmt.Fprintf(w, "  files       %s (node logs a.log and b.log)\n", dc.dir)
	fmt.Fprintln(w, "Each node serves every camera; /api/cameras and the camera list name the node recording each.")
	printDemoAccounts(w, dc.accounts)
}

// wait runs until ctx ends (Ctrl+C), or fails when a node or the cameras stop on their
// own.
func (dc *demoCluster) wait(ctx context.Context) error {
	exited := make(chan *demoNode, len(dc.nodes))
	for _, n := range dc.nodes {
		go func() {
			select {
			case <-n.exited:
				exited <- n
			case <-ctx.Done():
			}
		}()
	}
	select {
	case <-ctx.Done():
		return nil
	case n := <-exited:
		return fmt.Errorf("node %s stopped on its own (%v):\n%s", n.name, n.err, n.logTail())
	case err := <-dc.camDone:
		dc.stopCam = nil
		return fmt.Errorf("the simulated cameras stopped: %v", err)
	}
}

// stop takes down what start started, in order: the nodes (each closes its segments
// and hands its leases over, which needs the catalog), the cameras, the S3 server,
// PostgreSQL (a clean shutdown), then the temporary files.
func (dc *demoCluster) stop() error {
	var errs []error
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, n := range dc.nodes {
		if n.cmd == nil {
			continue
		}
		wg.Go(func() {
			if err := n.stop(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if dc.stopCam != nil {
		dc.stopCam()
		<-dc.camDone
	}
	if dc.s3 != nil {
		dc.s3.Stop()
	}
	if dc.pg != nil {
		if err := dc.pg.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("PostgreSQL: %w", err))
		}
	}
	if dc.dir != "" {
		errs = append(errs, os.RemoveAll(dc.dir))
	}
	return errors.Join(errs...)
}

// stop asks the node to stop (SIGTERM) and waits for it; one still running after
// demoNodeStop is killed.
func (n *demoNode) stop() error {
	select {
	case <-n.exited:
		return nil // already gone; wait reported it
	default:
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
		if n.err != nil {
			return fmt.Errorf("node %s stopped with %v:\n%s", n.name, n.err, n.logTail())
		}
		return nil
	case <-time.After(demoNodeStop):
		n.cmd.Process.Kill()
		<-n.exited
		return fmt.Errorf("node %s did not stop within %s of SIGTERM and was killed:\n%s", n.name, demoNodeStop, n.logTail())
	}
}

// writeSecretFile writes n random bytes, hex-encoded, to a file only its owner reads.
func writeSecretFile(path string, n int) error {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(hex.EncodeToString(b)+"\n"), 0o600)
}

// freeIfZero returns addr, with port 0 replaced by a free port: a node must know its
// port before it starts, to advertise it.
func freeIfZero(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port != "0" {
		return addr, err
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
