package configs

import _ "embed"

// DemoYAML is the configuration `townwatch demo` runs: two cameras served by the simulated
// camera (ingest/simcam) on rtsp://127.0.0.1:8554/. Parse it with Parse(DemoYAML, "demo.yaml").
//
//go:embed demo.yaml
var DemoYAML []byte
