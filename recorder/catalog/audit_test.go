package catalog

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	auditKey = []byte("townwatch test audit key 0123456")
	otherKey = []byte("someone else's key")
)

// auditEntry is the i-th test row: a playback by an officer, every column set.
func auditEntry(i int) AuditEntry {
	return AuditEntry{
		Time: at(time.Duration(i) * time.Minute), Actor: "novakova", Roles: []string{"officer", "dispatch"},
		Session: "3f2a9c01", Client: "10.0.0.7", Action: "playback", Camera: "namesti",
		From: at(-time.Hour), To: at(-time.Hour + time.Minute), Reason: "incident review", Case: "2026/17",
		Recipient: "state attorney", Outcome: AuditOK, Details: json.RawMessage(fmt.Sprintf(`{"n": %d}`, i)),
	}
}

// appendAudit appends entries and returns them as stored.
func appendAudit(t *testing.T, c *Catalog, entries ...AuditEntry) []AuditEntry {
	t.Helper()
	var out []AuditEntry
	for _, e := range entries {
		got, err := c.AppendAudit(context.Background(), auditKey, e)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, got)
	}
	return out
}

func verify(t *testing.T, c *Catalog) AuditVerification {
	t.Helper()
	v, err := c.VerifyAudit(context.Background(), auditKey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func auditIDs(entries []AuditEntry) []int64 {
	out := []int64{}
	for _, e := range entries {
		out = append(out, e.ID)
	}
	return out
}

// rawAuditRows reads every row through the writer connection, as a tamperer would.
func rawAuditRows(t *testing.T, c *Catalog) []auditRow {
	t.Helper()
	rows, err := c.w.QueryContext(context.Background(), `SELECT `+auditColumns+` FROM audit ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []auditRow
	for rows.Next() {
		r, err := scanAuditRow(rows)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// rechain recomputes every row's prev_hash and hash under key with raw SQL: what someone
// who can write the database but does not hold the real key would do to hide a change.
func rechain(t *testing.T, c *Catalog, key []byte) {
	t.Helper()
	prev := AuditGenesis
	for _, r := range rawAuditRows(t, c) {
		r.prevHash = prev
		r.hash = r.sum(key)
		if _, err := c.w.ExecContext(context.Background(), `UPDATE audit SET prev_hash = $2, hash = $3 WHERE id = $1`, r.id, r.prevHash, r.hash); err != nil {
			t.Fatal(err)
		}
		prev = r.hash
	}
}

func rawExec(t *testing.T, c *Catalog, query string, args ...any) {
	t.Helper()
	if _, err := c.w.ExecContext(context.Background(), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// flipByte changes one byte of a text column of row id (or adds one to an empty value).
func flipByte(t *testing.T, c *Catalog, column string, id int64) {
	t.Helper()
	var v string
	if err := c.w.QueryRowContext(context.Background(), `SELECT `+column+` FROM audit WHERE id = $1`, id).Scan(&v); err != nil {
		t.Fatal(err)
	}
	b := []byte(v)
	if len(b) == 0 {
		b = []byte("x")
	} else {
		b[len(b)/2] ^= 1
	}
	rawExec(t, c, `UPDATE audit SET `+column+` = $2 WHERE id = $1`, id, string(b))
}

// An entry is stored and read back exactly, chained to the one before it, and its hash
// is the HMAC of its canonical form.
func TestAuditRoundTrip(t *testing.T) {
	ctx := context.Background()
	c, _ := openTest(t)
	if id, head, n, err := c.AuditHead(ctx); err != nil || id != 0 || head != AuditGenesis || n != 0 {
		t.Errorf("AuditHead of an empty log = %d, %q, %d, %v; want 0, genesis, 0", id, head, n, err)
	}
	if len(AuditGenesis) != 64 || strings.Trim(AuditGenesis, "0") != "" {
		t.Errorf("AuditGenesis = %q, want 64 zeros", AuditGenesis)
	}
	prague, err := time.LoadLocation("Europe/Prague")
	if err != nil {
		t.Fatal(err)
	}
	full := auditEntry(1)
	full.Time = full.Time.In(prague)
	full.Details = json.RawMessage(" {\"segments\": [1, 2],\n \"bytes\": 1e3} ") // kept byte for byte
	bare := AuditEntry{Time: at(2 * time.Minute), Actor: "cli:root", Action: "login", Outcome: AuditDenied}
	got := appendAudit(t, c, full, bare)

	want := []AuditEntry{full, bare}
	want[0].ID, want[0].Time, want[0].Roles, want[0].PrevHash = 1, at(time.Minute), []string{"dispatch", "officer"}, AuditGenesis
	want[1].ID, want[1].Roles, want[1].Details, want[1].PrevHash = 2, []string{}, json.RawMessage("{}"), got[0].Hash
	for i := range want {
		want[i].Hash = got[i].Hash
		r, err := newAuditRow(auditKey, want[i])
		if err != nil {
			t.Fatal(err)
		}
		r.prevHash = want[i].PrevHash
		mac := hmac.New(sha256.New, auditKey)
		mac.Write(r.canonical())
		if h := hex.EncodeToString(mac.Sum(nil)); got[i].Hash != h {
			t.Errorf("row %d hash = %s, want HMAC-SHA256 of its canonical form %s", i+1, got[i].Hash, h)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("AppendAudit returned\n%+v\nwant\n%+v", got, want)
	}
	if stored, err := c.AuditEntries(ctx, AuditQuery{}); err != nil || !reflect.DeepEqual(stored, want) {
		t.Errorf("AuditEntries =\n%+v, %v\nwant\n%+v", stored, err, want)
	}
	if id, head, n, err := c.AuditHead(ctx); err != nil || id != 2 || head != got[1].Hash || n != 2 {
		t.Errorf("AuditHead = %d, %q, %d, %v; want 2, %q, 2", id, head, n, err, got[1].Hash)
	}
}

// The canonical form is a published format: outside checkers reproduce it from this
// description, so its exact bytes and hash are pinned here.
func TestAuditCanonicalForm(t *testing.T) {
	r := auditRow{
		id: 77, timeNS: 1773480413589793238, actor: "novakova", roles: "dispatch,officer", session: "",
		client: "10.0.0.7", action: "export", camera: "náměstí", from: sql.NullInt64{Int64: -5, Valid: true}, reason: "",
		caseRef: "2026/17", recipient: "state attorney", outcome: "ok", details: `{"a": 1}`,
		prevHash: AuditGenesis, hash: "not covered",
	}
	want := "18:townwatch-audit-v1,19:1773480413589793238,8:novakova,16:dispatch,officer,0:,8:10.0.0.7,6:export," +
		"10:náměstí,2:-5,0:,0:,7:2026/17,14:state attorney,2:ok,8:{\"a\": 1},64:" + AuditGenesis + ","
	if got := string(r.canonical()); got != want {
		t.Errorf("canonical =\n%s\nwant\n%s", got, want)
	}
	mac := hmac.New(sha256.New, []byte("key"))
	mac.Write([]byte(want))
	if got, want := r.sum([]byte("key")), hex.EncodeToString(mac.Sum(nil)); got != want {
		t.Errorf("sum = %s, want %s", got, want)
	}
	// Moving a byte from one field to the next changes the bytes: no two rows share them.
	shifted := r
	shifted.actor, shifted.roles = "novakovad", "ispatch,officer"
	if string(shifted.canonical()) == want {
		t.Error("canonical is ambiguous across a field boundary")
	}
}

func TestAppendAuditRejects(t *testing.T) {
	ctx := context.Background()
	c, _ := openTest(t)
	for _, tc := range []struct {
		name   string
		key    []byte
		mutate func(*AuditEntry)
		want   string
	}{
		{"no key", nil, func(*AuditEntry) {}, "catalog: append audit: audit key is empty"},
		{"no actor", auditKey, func(e *AuditEntry) { e.Actor = "" }, "catalog: append audit: actor is empty"},
		{"no action", auditKey, func(e *AuditEntry) { e.Action = "" }, "catalog: append audit: action is empty"},
		{"no outcome", auditKey, func(e *AuditEntry) { e.Outcome = "" }, `catalog: append audit: outcome "": must be ok, denied or error`},
		{"bad outcome", auditKey, func(e *AuditEntry) { e.Outcome = "OK" }, `catalog: append audit: outcome "OK": must be ok, denied or error`},
		{"no time", auditKey, func(e *AuditEntry) { e.Time = time.Time{} }, "catalog: append audit: time is not set"},
		{"to before from", auditKey, func(e *AuditEntry) { e.To = e.From.Add(-1) }, "catalog: append audit: to 2026-03-14T08:26:53.589793237Z is before from 2026-03-14T08:26:53.589793238Z"},
		{"details an array", auditKey, func(e *AuditEntry) { e.Details = json.RawMessage(`[1]`) }, "catalog: append audit: details is not a JSON object"},
		{"details not JSON", auditKey, func(e *AuditEntry) { e.Details = json.RawMessage(`{"a":`) }, "catalog: append audit: details is not a JSON object"},
		{"role with a comma", auditKey, func(e *AuditEntry) { e.Roles = []string{"a,b"} }, `catalog: append audit: role "a,b": must be non-empty and hold no comma`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := auditEntry(1)
			tc.mutate(&e)
			_, err := c.AppendAudit(ctx, tc.key, e)
			wantErr(t, err, nil, tc.want)
		})
	}
	if _, _, n, err := c.AuditHead(ctx); err != nil || n != 0 {
		t.Errorf("after refused appends the log has %d rows (%v), want 0", n, err)
	}
}

// smallAuditPages makes VerifyAudit read two rows per query, so that a few rows cross
// page boundaries.
func smallAuditPages(t *testing.T) {
	orig := auditPage
	auditPage = 2
	t.Cleanup(func() { auditPage = orig })
}

func TestVerifyAuditClean(t *testing.T) {
	smallAuditPages(t)
	c, _ := openTest(t)
	if v := verify(t, c); !reflect.DeepEqual(v, AuditVerification{Head: AuditGenesis}) {
		t.Errorf("empty log: %+v, want no rows, genesis head, clean", v)
	}
	for n := 1; n <= 5; n++ { // odd and even counts: the last page full and not
		entries := appendAudit(t, c, auditEntry(n))
		want := AuditVerification{Rows: int64(n), HeadID: int64(n), Head: entries[0].Hash}
		if v := verify(t, c); !reflect.DeepEqual(v, want) {
			t.Errorf("%d rows: %+v, want %+v", n, v, want)
		}
	}
	_, err := c.VerifyAudit(context.Background(), nil)
	wantErr(t, err, nil, "catalog: verify audit: audit key is empty")
}

// Every kind of tampering is found, and VerifyAudit names the first row it broke.
func TestVerifyAuditTamper(t *testing.T) {
	smallAuditPages(t)
	const (
		hashReason = "hash does not match its content (changed, or the chain was recomputed without the key)"
		linkReason = "previous hash does not match row 2's hash (a row before it was deleted or changed)"
	)
	type tamper struct {
		name   string
		change func(*testing.T, *Catalog)
		bad    int64
		reason string
		rows   int64
		headID int64
		clean  bool
	}
	var cases []tamper
	for _, col := range []string{"actor", "roles", "session", "client", "action", "camera", "reason", "case_ref", "recipient", "details", "hash"} {
		cases = append(cases, tamper{name: "one byte of " + col, change: func(t *testing.T, c *Catalog) { flipByte(t, c, col, 3) }, bad: 3, reason: hashReason})
	}
	for _, col := range []string{"time_ns", "from_ns", "to_ns"} {
		cases = append(cases, tamper{name: "one more in " + col, change: func(t *testing.T, c *Catalog) {
			rawExec(t, c, `UPDATE audit SET `+col+` = `+col+` + 1 WHERE id = 3`)
		}, bad: 3, reason: hashReason})
		if col != "time_ns" {
			cases = append(cases, tamper{name: col + " set where it was NULL", change: func(t *testing.T, c *Catalog) {
				rawExec(t, c, `UPDATE audit SET `+col+` = 0 WHERE id = 4`)
			}, bad: 4, reason: hashReason})
			cases = append(cases, tamper{name: col + " cleared", change: func(t *testing.T, c *Catalog) {
				rawExec(t, c, `UPDATE audit SET `+col+` = NULL WHERE id = 3`)
			}, bad: 3, reason: hashReason})
		}
	}
	cases = append(cases,
		tamper{name: "outcome", change: func(t *testing.T, c *Catalog) {
			rawExec(t, c, `UPDATE audit SET outcome = 'denied' WHERE id = 3`) // the CHECK allows only the three values
		}, bad: 3, reason: hashReason},
		tamper{name: "one byte of prev_hash", change: func(t *testing.T, c *Catalog) { flipByte(t, c, "prev_hash", 3) }, bad: 3, reason: linkReason},
		tamper{name: "id moved to the end", change: func(t *testing.T, c *Catalog) {
			rawExec(t, c, `UPDATE audit SET id = 100 WHERE id = 3`)
		}, bad: 4, reason: linkReason, headID: 100},
		tamper{name: "middle row deleted", change: func(t *testing.T, c *Catalog) {
			rawExec(t, c, `DELETE FROM audit WHERE id = 3`)
		}, bad: 4, reason: linkReason, rows: 5},
		tamper{name: "first row deleted", change: func(t *testing.T, c *Catalog) {
			rawExec(t, c, `DELETE FROM audit WHERE id = 1`)
		}, bad: 2, reason: "previous hash is not the chain's start and no purge row accounts for the rows before it", rows: 5},
		tamper{name: "chain recomputed with another key", change: func(t *testing.T, c *Catalog) { rechain(t, c, otherKey) }, bad: 1, reason: hashReason},
		tamper{name: "row changed and chain recomputed", change: func(t *testing.T, c *Catalog) {
			rawExec(t, c, `UPDATE audit SET actor = 'someone else' WHERE id = 5`)
			rechain(t, c, otherKey)
		}, bad: 1, reason: hashReason},
		// The limit of a chain on its own: cutting off the newest rows leaves a valid
		// chain. Only a head recorded elsewhere (AuditHead) shows it.
		tamper{name: "last row deleted", change: func(t *testing.T, c *Catalog) {
			rawExec(t, c, `DELETE FROM audit WHERE id = 6`)
		}, rows: 5, headID: 5, clean: true},
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Each case has a catalog of its own and mostly waits on its commits' fsyncs.
			// auditPage, set above, is restored only after every case has finished.
			t.Parallel()
			c, _ := openTest(t)
			var entries []AuditEntry
			for i := 1; i <= 6; i++ {
				e := auditEntry(i)
				if i == 4 {
					e.From, e.To = time.Time{}, time.Time{}
				}
				entries = append(entries, appendAudit(t, c, e)...)
			}
			if v := verify(t, c); v.FirstBad != nil {
				t.Fatalf("before tampering: %+v", v.FirstBad)
			}
			tc.change(t, c)
			v := verify(t, c)
			if tc.clean {
				if v.FirstBad != nil {
					t.Errorf("FirstBad = %+v, want none", *v.FirstBad)
				}
			} else if v.FirstBad == nil {
				t.Fatalf("tampering not detected: %+v", v)
			} else if v.FirstBad.ID != tc.bad || !strings.Contains(v.FirstBad.Reason, tc.reason) {
				t.Errorf("FirstBad = %+v, want row %d: %s", *v.FirstBad, tc.bad, tc.reason)
			}
			rows, headID := orDefault(tc.rows, 6), orDefault(tc.headID, 6)
			if v.Rows != rows || v.HeadID != headID {
				t.Errorf("Rows, HeadID = %d, %d; want %d, %d (the whole log is counted)", v.Rows, v.HeadID, rows, headID)
			}
			if tc.clean && v.Head != entries[headID-1].Hash {
				t.Errorf("Head = %s, want row %d's hash %s", v.Head, headID, entries[headID-1].Hash)
			}
		})
	}
}

// orDefault returns v, or def when v is zero.
func orDefault(v, def int64) int64 {
	if v == 0 {
		return def
	}
	return v
}

func TestAuditEntriesFilters(t *testing.T) {
	ctx := context.Background()
	c, _ := openTest(t)
	m := time.Minute
	rows := []struct {
		offset                time.Duration
		actor, action, camera string
	}{
		{0, "novakova", "live", "namesti"},
		{1 * m, "novakova", "playback", "most"},
		{2 * m, "dvorak", "live", "most"},
		{3 * m, "dvorak", "export", "namesti"},
		{4 * m, "cli:root", "export", ""},
		{5 * m, "novakova", "live", "ghost"},
		{6 * m, "novakova", "export", "namesti"},
	}
	for _, r := range rows {
		appendAudit(t, c, AuditEntry{Time: at(r.offset), Actor: r.actor, Action: r.action, Camera: r.camera, Outcome: AuditOK})
	}
	for _, tc := range []struct {
		name string
		q    AuditQuery
		want []int64
	}{
		{"all", AuditQuery{}, []int64{1, 2, 3, 4, 5, 6, 7}},
		{"from, inclusive", AuditQuery{From: at(2 * m)}, []int64{3, 4, 5, 6, 7}},
		{"to, exclusive", AuditQuery{To: at(2 * m)}, []int64{1, 2}},
		{"from and to", AuditQuery{From: at(1 * m), To: at(3*m + 1)}, []int64{2, 3, 4}},
		{"actor", AuditQuery{Actor: "dvorak"}, []int64{3, 4}},
		{"camera", AuditQuery{Camera: "namesti"}, []int64{1, 4, 7}},
		{"camera that does not exist", AuditQuery{Camera: "ghost"}, []int64{6}},
		{"action", AuditQuery{Action: "export"}, []int64{4, 5, 7}},
		{"all filters", AuditQuery{From: at(1 * m), To: at(7 * m), Actor: "novakova", Camera: "namesti", Action: "export"}, []int64{7}},
		{"no match", AuditQuery{Actor: "nikdo"}, []int64{}},
		{"first page", AuditQuery{Limit: 3}, []int64{1, 2, 3}},
		{"second page", AuditQuery{AfterID: 3, Limit: 3}, []int64{4, 5, 6}},
		{"last page", AuditQuery{AfterID: 6, Limit: 3}, []int64{7}},
		{"paging a filter", AuditQuery{Actor: "novakova", AfterID: 2, Limit: 2}, []int64{6, 7}},
	} {
		got, err := c.AuditEntries(ctx, tc.q)
		if err != nil || !reflect.DeepEqual(auditIDs(got), tc.want) {
			t.Errorf("%s: AuditEntries = %v, %v; want %v", tc.name, auditIDs(got), err, tc.want)
		}
	}
	_, err := c.AuditEntries(ctx, AuditQuery{Limit: MaxAuditLimit + 1})
	wantErr(t, err, nil, "catalog: audit entries: limit 5001 is outside 1-5000")
	_, err = c.AuditEntries(ctx, AuditQuery{Limit: -1})
	wantErr(t, err, nil, "catalog: audit entries: limit -1 is outside 1-5000")
}

// PurgeAudit removes the oldest rows first, stops at the first young one, and leaves a
// chain that still verifies and still shows tampering.
func TestPurgeAudit(t *testing.T) {
	smallAuditPages(t)
	ctx := context.Background()
	h := time.Hour
	olderThan := func(limit time.Time) func(time.Time) bool {
		return func(rowTime time.Time) bool { return rowTime.Before(limit) }
	}
	setup := func(t *testing.T) (*Catalog, []AuditEntry) {
		c, _ := openTest(t)
		var entries []AuditEntry
		// Row 5 is old but comes after a young row: purging stops at row 4, so the log
		// stays one chain.
		for _, offset := range []time.Duration{0, 1 * h, 2 * h, 3 * h, 1 * h, 5 * h} {
			e := auditEntry(0)
			e.Time = at(offset)
			entries = append(entries, appendAudit(t, c, e)...)
		}
		return c, entries
	}
	purgeAt := at(24 * h)

	c, entries := setup(t)
	n, err := c.PurgeAudit(ctx, auditKey, olderThan(at(2*h+30*time.Minute)), purgeAt, "system")
	if err != nil || n != 3 {
		t.Fatalf("PurgeAudit = %d, %v; want 3", n, err)
	}
	left, err := c.AuditEntries(ctx, AuditQuery{})
	if err != nil || !reflect.DeepEqual(auditIDs(left), []int64{4, 5, 6, 7}) {
		t.Fatalf("rows left %v, %v; want 4, 5, 6 and the purge row 7", auditIDs(left), err)
	}
	purge := left[3]
	want := AuditEntry{ID: 7, Time: purgeAt, Actor: "system", Roles: []string{}, Action: AuditPurgeAction, Outcome: AuditOK,
		Details:  json.RawMessage(fmt.Sprintf(`{"purged_through":3,"last_purged_hash":"%s","rows":3,"first_purged":1}`, entries[2].Hash)),
		PrevHash: entries[5].Hash}
	r, err := newAuditRow(auditKey, want)
	if err != nil {
		t.Fatal(err)
	}
	r.prevHash = want.PrevHash
	want.Hash = r.sum(auditKey)
	if !reflect.DeepEqual(purge, want) {
		t.Errorf("purge row =\n%+v\nwant\n%+v", purge, want)
	}
	if v := verify(t, c); !reflect.DeepEqual(v, AuditVerification{Rows: 4, HeadID: 7, Head: want.Hash}) {
		t.Errorf("after the purge VerifyAudit = %+v, want 4 clean rows up to 7", v)
	}
	if n, err := c.PurgeAudit(ctx, auditKey, olderThan(at(2*h+30*time.Minute)), purgeAt.Add(h), "system"); err != nil || n != 0 {
		t.Errorf("second PurgeAudit = %d, %v; want 0", n, err)
	}
	if id, head, rows, err := c.AuditHead(ctx); err != nil || id != 7 || head != want.Hash || rows != 4 {
		t.Errorf("a purge of nothing changed the log: head %d %s, %d rows, %v", id, head, rows, err)
	}

	for _, tc := range []struct {
		name   string
		change func(*testing.T, *Catalog, []AuditEntry)
		bad    int64
		reason string
	}{
		{"row after the purge deleted", func(t *testing.T, c *Catalog, entries []AuditEntry) { rawExec(t, c, `DELETE FROM audit WHERE id = 5`) },
			6, "previous hash does not match row 4's hash"},
		{"first row after the purge deleted", func(t *testing.T, c *Catalog, entries []AuditEntry) { rawExec(t, c, `DELETE FROM audit WHERE id = 4`) },
			5, "previous hash does not match the last purged hash recorded by purge row 7"},
		// Claiming fewer rows were purged keeps the start hash it names, but the purge
		// row's own hash gives it away.
		{"purge row forged", func(t *testing.T, c *Catalog, entries []AuditEntry) {
			rawExec(t, c, `UPDATE audit SET details = replace(details, '"purged_through":3', '"purged_through":2') WHERE id = 7`)
		}, 7, "hash does not match its content"},
		// Pointing the start elsewhere breaks the first row's link before the purge row
		// is reached.
		{"purge row's last purged hash changed", func(t *testing.T, c *Catalog, entries []AuditEntry) {
			rawExec(t, c, `UPDATE audit SET details = replace(details, $1, $2) WHERE id = 7`, entries[2].Hash, entries[1].Hash)
		}, 4, "previous hash does not match the last purged hash recorded by purge row 7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, entries := setup(t)
			if _, err := c.PurgeAudit(ctx, auditKey, olderThan(at(2*h+30*time.Minute)), purgeAt, "system"); err != nil {
				t.Fatal(err)
			}
			tc.change(t, c, entries)
			v := verify(t, c)
			if v.FirstBad == nil || v.FirstBad.ID != tc.bad || !strings.Contains(v.FirstBad.Reason, tc.reason) {
				t.Errorf("FirstBad = %+v, want row %d: %s", v.FirstBad, tc.bad, tc.reason)
			}
		})
	}

}

func TestPurgeAuditRejects(t *testing.T) {
	ctx := context.Background()
	c, _ := openTest(t)
	appendAudit(t, c, auditEntry(0))
	all := func(time.Time) bool { return true }
	for _, tc := range []struct {
		name   string
		key    []byte
		cutoff func(time.Time) bool
		at     time.Time
		actor  string
		want   string
	}{
		{"no cutoff", auditKey, nil, at(time.Hour), "system", "catalog: purge audit: cutoff is nil"},
		{"no actor", auditKey, all, at(time.Hour), "", "catalog: purge audit: actor is empty"},
		{"no key", nil, all, at(time.Hour), "system", "catalog: purge audit: audit key is empty"},
		{"no time", auditKey, all, time.Time{}, "system", "catalog: purge audit: time is not set"},
	} {
		n, err := c.PurgeAudit(ctx, tc.key, tc.cutoff, tc.at, tc.actor)
		if n != 0 {
			t.Errorf("%s: purged %d", tc.name, n)
		}
		wantErr(t, err, nil, tc.want)
	}
	if id, _, rows, err := c.AuditHead(ctx); err != nil || id != 1 || rows != 1 {
		t.Errorf("refused purges changed the log: head %d, %d rows, %v; want row 1 alone", id, rows, err)
	}
}

// A large purge is done in bounded slices, each with its own purge row, and the chain
// verifies after each; purging every row leaves a purge row that starts the chain.
func TestPurgeAuditInSlices(t *testing.T) {
	smallAuditPages(t)
	orig := maxAuditPurge
	maxAuditPurge = 2
	t.Cleanup(func() { maxAuditPurge = orig })
	ctx := context.Background()
	c, _ := openTest(t)
	for i := range 5 {
		appendAudit(t, c, auditEntry(i)) // minutes 0-4
	}
	// The purge rows (at 2 h) are young: each call takes the two oldest footage rows.
	old := func(rt time.Time) bool { return rt.Before(at(time.Hour)) }
	var got []int64
	for {
		n, err := c.PurgeAudit(ctx, auditKey, old, at(2*time.Hour), "system")
		if err != nil {
			t.Fatal(err)
		}
		if v := verify(t, c); v.FirstBad != nil {
			t.Fatalf("after purging %v and %d: %+v", got, n, *v.FirstBad)
		}
		got = append(got, n)
		if n == 0 || len(got) == 10 {
			break
		}
	}
	if want := []int64{2, 2, 1, 0}; !reflect.DeepEqual(got, want) {
		t.Errorf("purged per call %v, want %v", got, want)
	}
	left, err := c.AuditEntries(ctx, AuditQuery{})
	if err != nil || !reflect.DeepEqual(auditIDs(left), []int64{6, 7, 8}) {
		t.Errorf("rows left %v, %v; want the purge rows 6, 7, 8", auditIDs(left), err)
	}

	maxAuditPurge = orig
	n, err := c.PurgeAudit(ctx, auditKey, func(rt time.Time) bool { return rt.Before(at(3 * time.Hour)) }, at(4*time.Hour), "system")
	if err != nil || n != 3 {
		t.Fatalf("purging every row: %d, %v; want 3", n, err)
	}
	last, err := c.AuditEntries(ctx, AuditQuery{})
	if err != nil || len(last) != 1 || last[0].PrevHash != left[2].Hash {
		t.Fatalf("after purging every row: %+v, %v; want one purge row linked to row 8's hash %s", last, err, left[2].Hash)
	}
	if v := verify(t, c); !reflect.DeepEqual(v, AuditVerification{Rows: 1, HeadID: 9, Head: last[0].Hash}) {
		t.Errorf("after purging every row VerifyAudit = %+v, want the purge row 9 alone, clean", v)
	}
}

// Two processes (serve and the CLI) appending at once through their own Catalog handles
// leave one unbroken chain: the read of the last hash and the insert are one immediate
// transaction.
func TestAuditConcurrentAppends(t *testing.T) {
	const perWriter = 200
	ctx := context.Background()
	serve, path := openTest(t)
	cli, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })

	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for w, c := range []*Catalog{serve, cli} {
		wg.Go(func() {
			for i := range perWriter {
				e := AuditEntry{Time: at(time.Duration(i) * time.Second), Actor: fmt.Sprintf("writer%d", w), Action: "live", Camera: "namesti", Outcome: AuditOK}
				if _, err := c.AppendAudit(ctx, auditKey, e); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	v := verify(t, serve)
	if v.FirstBad != nil || v.Rows != 2*perWriter {
		t.Errorf("VerifyAudit = %+v (first bad %+v), want %d clean rows", v, v.FirstBad, 2*perWriter)
	}
	for w := range 2 {
		got, err := cli.AuditEntries(ctx, AuditQuery{Actor: fmt.Sprintf("writer%d", w), Limit: MaxAuditLimit})
		if err != nil || len(got) != perWriter {
			t.Errorf("writer%d has %d rows (%v), want %d", w, len(got), err, perWriter)
		}
	}
}
