package access

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/recorder/catalog"
)

// Audit log actions: what each row records. The names are stable: auditors filter by
// them and reports built on the log depend on them.
const (
	AuditLoginOK        = "login.ok"
	AuditLoginFail      = "login.fail"
	AuditLoginThrottled = "login.throttled"
	AuditLogout         = "logout"
	AuditDenied         = "access.denied"
	AuditLiveStart      = "live.start"
	AuditLiveStop       = "live.stop"
	AuditSnapshotView   = "snapshot.view"   // the first snapshot of a camera a user sees in an hour
	AuditSnapshotViews  = "snapshot.views"  // how many more followed in that hour
	AuditPlaybackStart  = "playback.start"  // with the reason, before any recorded footage of the camera
	AuditFrameView      = "playback.frame"  // one full-resolution still of recorded footage
	AuditMotionSearch   = "playback.search" // a "when did something move here" search
	AuditCaseCreate     = "case.create"
	AuditBookmarkCreate = "bookmark.create"
	AuditBookmarkDelete = "bookmark.delete"
	AuditLockCreate     = "lock.create"
	AuditLockChange     = "lock.change"
	AuditLockRemove     = "lock.remove"
	AuditRetentionOK    = "retention.confirm"
	AuditRetentionPass  = "retention.erase"
	AuditExportRequest  = "export.request"
	AuditExportDownload = "export.download"
	AuditUserAdd        = "user.add"
	AuditUserPassword   = "user.password"
	AuditUserDisable    = "user.disable"
	AuditUserEnable     = "user.enable"
	AuditUserGrant      = "user.grant"
	AuditConfigChange   = "config.change"
	AuditCameraProbe    = "camera.probe"   // a camera probed before it is saved (URL redacted)
	AuditONVIFDiscover  = "onvif.discover" // WS-Discovery on the camera network
	AuditONVIFProfiles  = "onvif.profiles" // a camera's ONVIF media profiles read
	AuditRead           = "audit.read"
	AuditExport         = "audit.export"
	AuditVerify         = "audit.verify"
	AuditPurge          = "audit.purge" // written by the catalog's purge itself
	// AuditCatalogRebuilt records a catalog rebuilt from a damaged file: what was
	// salvaged and what was lost, so the gap in the chain is itself in the log.
	AuditCatalogRebuilt = "catalog.rebuilt"
	// AuditCatalogMigrated records an installation's catalog moved to PostgreSQL
	// (`townwatch catalog migrate`): the tables, row counts and segments verified.
	AuditCatalogMigrated = "catalog.migrate"
)

// Actors that are not accounts.
const (
	ActorSystem = "system" // retention and other automatic work
)

// CLIActor names an operator on the host's command line: cli:<os user>.
func CLIActor() string {
	name := os.Getenv("SUDO_USER")
	if name == "" {
		name = os.Getenv("USER")
	}
	if name == "" {
		name = fmt.Sprintf("uid%d", os.Getuid())
	}
	return "cli:" + name
}

// auditKeyLen is the HMAC key's size: 256 bits, as SHA-256's block security.
const auditKeyLen = 32

// AuditStore is the catalog's access log.
type AuditStore interface {
	AppendAudit(ctx context.Context, key []byte, e catalog.AuditEntry) (catalog.AuditEntry, error)
	AuditEntries(ctx context.Context, q catalog.AuditQuery) ([]catalog.AuditEntry, error)
	AuditHead(ctx context.Context) (id int64, hash string, n int64, err error)
	VerifyAudit(ctx context.Context, key []byte) (catalog.AuditVerification, error)
}

// AuditLog appends chained rows to the catalog's access log with a key kept outside the
// database: whoever can edit the catalog but not read the key cannot rewrite history
// without `townwatch audit verify` finding it.
type AuditLog struct {
	store AuditStore
	key   []byte
}

// NewAuditLog returns the log of store keyed by key.
func NewAuditLog(store AuditStore, key []byte) (*AuditLog, error) {
	if len(key) != auditKeyLen {
		return nil, fmt.Errorf("audit key is %d bytes; want %d", len(key), auditKeyLen)
	}
	return &AuditLog{store: store, key: key}, nil
}

// Append writes e and returns it with its id and hashes once it is committed.
func (l *AuditLog) Append(ctx context.Context, e catalog.AuditEntry) (catalog.AuditEntry, error) {
	return l.store.AppendAudit(ctx, l.key, e)
}

// Entries reads rows (see catalog.AuditQuery).
func (l *AuditLog) Entries(ctx context.Context, q catalog.AuditQuery) ([]catalog.AuditEntry, error) {
	return l.store.AuditEntries(ctx, q)
}

// Head is the newest row's id and hash, and the row count: logged at start, daily and at
// shutdown, so a log that was cut short can be compared with what the server said.
func (l *AuditLog) Head(ctx context.Context) (id int64, hash string, n int64, err error) {
	return l.store.AuditHead(ctx)
}

// Verify checks the whole chain with the key.
func (l *AuditLog) Verify(ctx context.Context) (catalog.AuditVerification, error) {
	return l.store.VerifyAudit(ctx, l.key)
}

// Key returns the HMAC key (for the catalog's purge, which appends its own row).
func (l *AuditLog) Key() []byte { return l.key }

// LoadAuditKey reads the key file, or creates it (0600, in a 0700 directory) when create
// is true and it does not exist yet: at a server's first start. Commands that only read
// or append to an existing log pass create=false, so a wrong path is an error instead of
// a new key that would make every existing row look forged.
func LoadAuditKey(path string, create bool) ([]byte, error) {
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		key, derr := hex.DecodeString(strings.TrimSpace(string(data)))
		if derr != nil || len(key) != auditKeyLen {
			return nil, fmt.Errorf("audit key %s: not %d hex-encoded bytes", path, auditKeyLen)
		}
		return key, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("audit key: %w", err)
	case !create:
		return nil, fmt.Errorf("audit key %s does not exist: start `townwatch serve` once to create it, or point audit.key_file at it", path)
	}
	key := make([]byte, auditKeyLen)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	if err := configs.CreateKeyFile(path, []byte(hex.EncodeToString(key)+"\n")); errors.Is(err, fs.ErrExist) {
		return LoadAuditKey(path, false) // made by another process meanwhile: that one is the key
	} else if err != nil {
		return nil, fmt.Errorf("audit key %s: %w", path, err)
	}
	return key, nil
}
