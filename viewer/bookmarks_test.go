package viewer

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/townwatch/townwatch/viewer/access"
)

// Officers file bookmarks under a case; each sees the bookmarks of the cameras they may
// play back; a bookmark is removed by its author or a supervisor, and to anyone else it
// does not exist. Everything is audited.
func TestBookmarksAndCases(t *testing.T) {
	rig := newRouteRig(t)
	h := rig.server.Handler()
	rig.fx.addUser(t, "novak", []access.Role{access.Officer}, false, "namesti")
	rig.fx.addUser(t, "svoboda", []access.Role{access.Officer}, false, "namesti", "most")
	rig.fx.addUser(t, "velitel", []access.Role{access.Supervisor}, true)
	novak, svoboda, velitel := withCookie(h, login(t, h, "novak")), withCookie(h, login(t, h, "svoboda")), withCookie(h, login(t, h, "velitel"))

	rec := do(novak, "POST", "/api/cases", "application/json", `{"ref":"KRPP-88/2026","title":"Vloupání do trafiky"}`)
	var made struct{ ID int64 }
	if json.Unmarshal(rec.Body.Bytes(), &made); rec.Code != http.StatusCreated || made.ID == 0 {
		t.Fatalf("create case: %d %s", rec.Code, rec.Body)
	}
	if rec := do(svoboda, "POST", "/api/cases", "application/json", `{"ref":"KRPP-88/2026"}`); rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), "ref") {
		t.Errorf("duplicate case reference: %d %s, want 409 naming ref", rec.Code, rec.Body)
	}
	at := rig.fx.clock.Now().UTC().Add(-time.Hour).Format(time.RFC3339)
	until := rig.fx.clock.Now().UTC().Add(-50 * time.Minute).Format(time.RFC3339)
	body := func(camera string) string {
		return `{"camera":"` + camera + `","from":"` + at + `","to":"` + until + `","title":"muž s kapucí","note":"odchází k nádraží","case_id":` + jsonInt(made.ID) + `}`
	}
	if rec := do(novak, "POST", "/api/bookmarks", "application/json", body("most")); rec.Code != http.StatusNotFound {
		t.Errorf("bookmark on an ungranted camera: %d %s, want 404", rec.Code, rec.Body)
	}
	if rec := do(novak, "POST", "/api/bookmarks", "application/json", strings.Replace(body("namesti"), `"title":"muž s kapucí"`, `"title":" "`, 1)); rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "title") {
		t.Errorf("blank title: %d %s, want 400 naming title", rec.Code, rec.Body)
	}
	var mine, theirs struct{ ID int64 }
	rec = do(novak, "POST", "/api/bookmarks", "application/json", body("namesti"))
	json.Unmarshal(rec.Body.Bytes(), &mine)
	rec2 := do(svoboda, "POST", "/api/bookmarks", "application/json", body("most"))
	json.Unmarshal(rec2.Body.Bytes(), &theirs)
	if rec.Code != http.StatusCreated || rec2.Code != http.StatusCreated {
		t.Fatalf("bookmarks: %d %s / %d %s", rec.Code, rec.Body, rec2.Code, rec2.Body)
	}
	// The case as novak sees it: his bookmark, not the one on a camera he may not see.
	var kase struct {
		Ref       string
		Bookmarks []struct {
			ID     int64
			Camera string
			Play   string
		}
	}
	rec = do(novak, "GET", "/api/cases/"+jsonInt(made.ID), "", "")
	if json.Unmarshal(rec.Body.Bytes(), &kase); rec.Code != http.StatusOK || kase.Ref != "KRPP-88/2026" || len(kase.Bookmarks) != 1 ||
		kase.Bookmarks[0].ID != mine.ID || !strings.HasPrefix(kase.Bookmarks[0].Play, "/playback?camera=namesti&t=") {
		t.Errorf("case for novak: %d %s", rec.Code, rec.Body)
	}
	// Another officer cannot remove novak's bookmark (it does not exist for him); novak
	// can, and so can a supervisor remove svoboda's.
	if rec := do(svoboda, "DELETE", "/api/bookmarks/"+jsonInt(mine.ID), "", ""); rec.Code != http.StatusNotFound {
		t.Errorf("svoboda deletes novak's bookmark: %d %s, want 404", rec.Code, rec.Body)
	}
	if rec := do(novak, "DELETE", "/api/bookmarks/"+jsonInt(mine.ID), "", ""); rec.Code != http.StatusNoContent {
		t.Errorf("novak deletes his bookmark: %d %s", rec.Code, rec.Body)
	}
	if rec := do(velitel, "DELETE", "/api/bookmarks/"+jsonInt(theirs.ID), "", ""); rec.Code != http.StatusNoContent {
		t.Errorf("supervisor deletes svoboda's bookmark: %d %s", rec.Code, rec.Body)
	}
	for action, n := range map[string]int{access.AuditCaseCreate: 1, access.AuditBookmarkCreate: 2, access.AuditBookmarkDelete: 2} {
		if rows := rig.fx.auditRows(t, action); len(rows) != n {
			t.Errorf("%s rows: %d, want %d", action, len(rows), n)
		}
	}
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }
