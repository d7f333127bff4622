package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"gopkg.in/yaml.v3"

	"github.com/townwatch/townwatch/configs"
)

// alertRulesFile is the Prometheus alerting rules shipped with townwatch.
const alertRulesFile = "../../configs/prometheus/townwatch-rules.yml"

// TestAlertRulesNameOnlyExportedMetrics reads every townwatch_ metric name in the shipped
// alerting rules (expressions and annotations) and looks for it in what /metrics serves
// for a system with a recorded, motion-analysed camera after one retention sweep. A
// renamed metric would otherwise leave an alert that silently never fires; promtool's
// rule tests (make test) cannot see this, as they feed the rules made-up series.
func TestAlertRulesNameOnlyExportedMetrics(t *testing.T) {
	text, err := os.ReadFile(alertRulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(text, &file); err != nil {
		t.Fatalf("%s: %v", alertRulesFile, err)
	}
	metricName := regexp.MustCompile(`\btownwatch_[a-z0-9_]+`)
	used := map[string][]string{} // metric name -> alerts naming it
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			texts := []string{r.Expr}
			for _, a := range r.Annotations {
				texts = append(texts, a)
			}
			for _, s := range texts {
				for _, name := range metricName.FindAllString(s, -1) {
					used[name] = append(used[name], r.Alert)
				}
			}
		}
	}
	if len(used) < 5 {
		t.Fatalf("%s names only %d townwatch metrics (%v); is it the rules file?", alertRulesFile, len(used), used)
	}

	exported := exportedMetrics(t)
	for name, alerts := range used {
		if _, ok := exported[name]; ok {
			continue
		}
		// A histogram's series are its name plus _bucket, _sum and _count.
		found := false
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, cut := strings.CutSuffix(name, suffix); cut && exported[base] == dto.MetricType_HISTOGRAM {
				found = true
			}
		}
		if !found {
			t.Errorf("alerts %v use %s, which townwatch does not export", alerts, name)
		}
	}
}

// exportedMetrics opens a whole system (without running it) with one camera that is
// recorded and motion-analysed and an archive tier (whose store is never reached: the
// system is not run), sweeps retention once so that its per-camera figures exist, and
// returns the metric families /metrics would serve, by name.
func exportedMetrics(t *testing.T) map[string]dto.MetricType {
	t.Helper()
	dir := t.TempDir()
	keys := map[string]string{"access": filepath.Join(dir, "s3-access"), "secret": filepath.Join(dir, "s3-secret")}
	for _, path := range keys {
		if err := os.WriteFile(path, []byte("townwatch-test\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	yaml := "storage:\n  path: " + strconv.Quote(filepath.Join(dir, "storage")) + "\n  min_free: 1MiB\n" +
		"  archive: {url: 's3://127.0.0.1:9/townwatch', after: 2d, access_key_file: " + strconv.Quote(keys["access"]) +
		", secret_key_file: " + strconv.Quote(keys["secret"]) + "}\nhttp:\n  listen: 127.0.0.1:0\n" +
		"webrtc: {udp_port: 0, tcp_port: 0}\ncameras:\n" +
		"  - id: ulice\n    main: {url: rtsp://127.0.0.1:8554/ulice}\n    record: {mode: continuous}\n    motion: {enabled: true}\n"
	cfg, err := configs.Parse([]byte(yaml), "townwatch.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sys, err := openSystem(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer sys.close()
	if _, err := sys.retention.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	families, err := sys.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]dto.MetricType{}
	for _, f := range families {
		exported[f.GetName()] = f.GetType()
	}
	return exported
}
