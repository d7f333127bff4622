package viewer

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/viewer/access"
)

// An officer draws cells and gets the seconds something moved there, only inside a
// playback session and audited; bad cells are refused by name.
func TestMotionSearchAPI(t *testing.T) {
	rig := newRouteRig(t)
	h := rig.server.Handler()
	rig.fx.addUser(t, "straznik", []access.Role{access.Officer}, false, "namesti")
	officer := withCookie(h, login(t, h, "straznik"))
	minute := rig.fx.clock.Now().UTC().Truncate(time.Minute).Add(-10 * time.Minute)
	m := catalog.GridMinute{Camera: "namesti", Start: minute}
	m.Seconds[20][(4*16+3)/8] |= 1 << ((4*16 + 3) % 8) // cell (3, 4)
	if err := rig.fx.cat.AddGridMinute(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	q := "/api/search/motion?cameras=namesti&from=" + url.QueryEscape(minute.Format(time.RFC3339)) +
		"&to=" + url.QueryEscape(minute.Add(time.Hour).Format(time.RFC3339))

	if rec := do(officer, "GET", q+"&cells=2.3-4.5", "", ""); rec.Code != http.StatusPreconditionRequired {
		t.Fatalf("search before a reason: %d %s, want 428", rec.Code, rec.Body)
	}
	if rec := do(officer, "POST", "/api/playback", "application/json", `{"cameras":["namesti"],"reason":"pátrání po vozidle"}`); rec.Code != http.StatusCreated {
		t.Fatalf("start playback: %d %s", rec.Code, rec.Body)
	}
	for _, bad := range []string{"", "16.0", "3", "4.4-2.2", "a.b"} {
		if rec := do(officer, "GET", q+"&cells="+url.QueryEscape(bad), "", ""); rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "cells") {
			t.Errorf("cells=%q: %d %s, want 400 naming cells", bad, rec.Code, rec.Body)
		}
	}
	var ans struct {
		Hits []struct {
			Camera     string
			Start, End time.Time
		}
	}
	rec := do(officer, "GET", q+"&cells=2.3-4.5", "", "")
	if err := json.Unmarshal(rec.Body.Bytes(), &ans); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("search: %d %s", rec.Code, rec.Body)
	}
	if len(ans.Hits) != 1 || !ans.Hits[0].Start.Equal(minute.Add(20*time.Second)) || !ans.Hits[0].End.Equal(minute.Add(21*time.Second)) {
		t.Errorf("hits %+v, want second 20 of the minute", ans.Hits)
	}
	if rec := do(officer, "GET", q+"&cells=10.10", "", ""); !strings.Contains(rec.Body.String(), `"count":0`) {
		t.Errorf("search elsewhere: %s, want no hits", rec.Body)
	}
	if rows := rig.fx.auditRows(t, access.AuditMotionSearch); len(rows) != 2 || rows[0].Actor != "straznik" || rows[0].Camera != "namesti" {
		t.Errorf("playback.search rows %+v, want one per search by straznik", rows)
	}
	if rec := do(officer, "GET", strings.Replace(q, "namesti", "most", 1)+"&cells=1.1", "", ""); rec.Code != http.StatusNotFound {
		t.Errorf("search of an ungranted camera: %d %s, want 404", rec.Code, rec.Body)
	}
}
