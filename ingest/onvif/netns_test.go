package onvif_test

// Discovery runs multicast, which must not reach any network but the test's own: the test
// runs in a network namespace of its own (onviftest.InNetns) with a simulated ONVIF camera
// (onviftest, its stream URIs on simcam), Debian's wsdd as a WS-Discovery responder that
// is no camera, and townwatch's discovery, profile reading and probe.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/ingest/onvif"
	"github.com/townwatch/townwatch/ingest/onvif/onviftest"
	"github.com/townwatch/townwatch/ingest/probe"
	"github.com/townwatch/townwatch/ingest/simcam"
)

func TestDiscoveryFindsTheCameraAndNotWsdd(t *testing.T) {
	if !onviftest.InNetns(t) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	sim, err := simcam.New(simcam.Config{Listen: "127.0.0.1:0", Cameras: []simcam.CameraSpec{
		{Path: "main", Clip: simcam.ClipMotion, Username: "spravce", Password: "Heslo-kamery-1"},
		{Path: "sub", Clip: simcam.ClipStatic, Username: "spravce", Password: "Heslo-kamery-1"}}})
	if err != nil {
		t.Fatal(err)
	}
	stopSim, err := sim.Start(ctx)
	if err != nil {
		t.Fatalf("simcam: %v", err)
	}
	defer stopSim()

	cam, err := onviftest.Start(onviftest.Camera{
		Endpoint: "urn:uuid:6b1f1d4e-0000-4000-8000-00000000c0de", Name: "Sim Namesti", Hardware: "SIM-1",
		Username: "spravce", Password: "Heslo-kamery-1", Interface: "lo",
		Profiles: []onviftest.Profile{
			{Token: "p-main", Name: "mainStream", Encoding: "H264", Width: 1920, Height: 1080, FPS: 25, URI: sim.URL("main")},
			{Token: "p-sub", Name: "subStream", Encoding: "H264", Width: 640, Height: 360, FPS: 25, URI: sim.URL("sub")},
			{Token: "p-mjpeg", Name: "mjpeg", Encoding: "JPEG", Width: 320, Height: 240, FPS: 5, URI: "rtsp://127.0.0.1:1/mjpeg"},
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer cam.Close()

	wsddUUID := startWsdd(t)

	start := time.Now()
	devs, err := (&onvif.Discoverer{}).Discover(ctx, "lo")
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	t.Logf("discovery took %s and found %+v", elapsed, devs)
	if len(devs) != 1 {
		t.Fatalf("found %d devices, want the simulated camera alone (wsdd %s is no camera): %+v", len(devs), wsddUUID, devs)
	}
	d := devs[0]
	if d.Endpoint != "urn:uuid:6b1f1d4e-0000-4000-8000-00000000c0de" || d.XAddr != cam.XAddr() || d.Host != "127.0.0.1" ||
		d.Name != "Sim Namesti" || d.Hardware != "SIM-1" || d.Interface != "lo" {
		t.Errorf("device %+v, want the simulated camera at %s", d, cam.XAddr())
	}

	client := &onvif.Client{}
	if _, err := client.Profiles(ctx, d.XAddr, "spravce", "wrong-password"); !errors.Is(err, onvif.ErrAuth) {
		t.Errorf("wrong password: %v, want ErrAuth", err)
	}
	profiles, err := client.Profiles(ctx, d.XAddr, "spravce", "Heslo-kamery-1")
	if err != nil {
		t.Fatalf("Profiles: %v", err)
	}
	s := onvif.Suggest(profiles)
	if len(profiles) != 3 || s.Main == nil || s.Sub == nil || s.Main.StreamURI != sim.URL("main") || s.Sub.StreamURI != sim.URL("sub") ||
		s.Main.Width != 1920 || s.Sub.Encoding != "H264" {
		t.Fatalf("profiles %+v suggest %+v, want main %s and sub %s", profiles, s, sim.URL("main"), sim.URL("sub"))
	}
	if p := profiles[2]; p.Supported || p.Encoding != "JPEG" {
		t.Errorf("the MJPEG profile %+v is offered as supported", p)
	}

	// The suggested main stream can be probed as it is, with the same credentials.
	res, err := (&probe.Prober{}).Run(ctx, probe.Request{URL: s.Main.StreamURI, Username: "spravce", Password: "Heslo-kamery-1"})
	if err != nil || !res.OK || res.Codec != ingest.CodecH264 || res.Width != 640 || res.Height != 360 {
		t.Fatalf("probing the main stream: %v %+v", err, res)
	}
}

// startWsdd runs Debian's wsdd on lo and waits until it answers a WS-Discovery Probe
// for its own type, so that the camera-only discovery is shown to pass it over while it
// is up. It returns wsdd's endpoint UUID.
func startWsdd(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("wsdd")
	if err != nil {
		t.Fatalf("wsdd is needed (apt-get install wsdd): %v", err)
	}
	const id = "0e2c6a62-77a1-4b9e-9a58-3a1d5d0f7a11"
	cmd := exec.Command(bin, "-i", "lo", "-4", "-U", id, "-n", "fileserver")
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatalf("wsdd: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("wsdd's log:\n%s", log.String())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if answer := probeDevprof(t); strings.Contains(answer, id) {
			return id
		}
	}
	t.Fatalf("wsdd does not answer a wsdp:Device probe within 15 s")
	return ""
}

// probeDevprof sends a Probe for wsdp:Device (what Windows asks for, and what wsdd
// answers) and returns the first answer within half a second.
func probeDevprof(t *testing.T) string {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msg := fmt.Sprintf(`<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope" xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing"
 xmlns:wsd="http://schemas.xmlsoap.org/ws/2005/04/discovery" xmlns:wsdp="http://schemas.xmlsoap.org/ws/2006/02/devprof">
<soap:Header><wsa:To>urn:schemas-xmlsoap-org:ws:2005:04:discovery</wsa:To>
<wsa:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</wsa:Action>
<wsa:MessageID>urn:uuid:%d</wsa:MessageID></soap:Header>
<soap:Body><wsd:Probe><wsd:Types>wsdp:Device</wsd:Types></wsd:Probe></soap:Body></soap:Envelope>`, time.Now().UnixNano())
	if _, err := conn.WriteToUDP([]byte(msg), &net.UDPAddr{IP: net.IPv4(239, 255, 255, 250), Port: 3702}); err != nil {
		t.Fatalf("sending a devprof probe: %v", err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	buf := make([]byte, 64<<10)
	n, _, err := conn.ReadFromUDP(buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}
