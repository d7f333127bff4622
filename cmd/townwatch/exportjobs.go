package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/recorder/evidence"
	"github.com/townwatch/townwatch/recorder/exports"
)

// exportJobs wires the browser's evidence exports: jobs run by exports.Manager, each
// writing an evidence bundle signed with the town's key (made here at the first start).
func (sys *system) exportJobs(cfg *configs.Config, log *slog.Logger) (*exports.Manager, error) {
	key, err := evidence.LoadOrCreateSigningKey(cfg.SigningKeyFile())
	if err != nil {
		return nil, fmt.Errorf("exports.signing_key_file: %w", err)
	}
	request := func(j catalog.ExportJob) evidence.Request {
		return evidence.Request{Cameras: j.Cameras, From: j.From, To: j.To, Reason: j.Reason, Case: j.Case, Recipient: j.Recipient,
			Requester: j.Actor, AuditRowID: j.AuditID, Version: versionString()}
	}
	return exports.New(exports.Options{Catalog: sys.catalog, Dir: filepath.Join(cfg.Storage.Path, "exports"),
		Retention: cfg.ExportRetention(), Log: log,
		Name: func(j catalog.ExportJob) string { return evidence.FileName(request(j)) },
		Bundle: func(ctx context.Context, w io.Writer, j catalog.ExportJob, progress func(done, total int64)) error {
			_, err := evidence.Write(ctx, w, sys.storage, sys.catalog, key, request(j), progress)
			return err
		}})
}
