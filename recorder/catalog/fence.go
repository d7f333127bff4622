package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ErrFenced: the write was for a camera whose lease this node no longer holds at the
// epoch the write carries (it expired, or another node took it). Nothing was written. The
// recorder stops the camera: another node records it now.
var ErrFenced = errors.New("fenced: this node no longer holds the camera's lease")

// Fence is the lease a node held on a camera when it started recording it: the camera's
// catalog writes carry it (WithFence), and each one commits only while that lease is
// still the camera's current, unexpired lease.
type Fence struct {
	Camera string
	Epoch  int64
}

type fenceKey struct{}

// WithFence returns ctx carrying f: every catalog write made with the returned context
// (or one derived from it) is conditioned on f. This is the whole fencing seam: the
// recorder makes its writes with its run context, so one value set where a camera is
// started under a lease fences them all.
func WithFence(ctx context.Context, f Fence) context.Context {
	return context.WithValue(ctx, fenceKey{}, f)
}

// fenceOf is the fence ctx carries, if any.
func fenceOf(ctx context.Context) (Fence, bool) {
	f, ok := ctx.Value(fenceKey{}).(Fence)
	return f, ok
}

// SetNode names the recorder node this Catalog runs in, for a catalog several nodes share
// (PostgreSQL only). Segments it creates are marked as on this node's disk, and fenced
// writes are checked against this node's leases. Call it once, before any write.
func (c *Catalog) SetNode(name string) error {
	if c.dialect != postgresDialect {
		return errors.New("catalog: several recorder nodes need a PostgreSQL catalog (catalog.url)")
	}
	if name == "" {
		return errors.New("catalog: the node name is empty")
	}
	c.node = name
	return nil
}

// Node is the name SetNode gave; "" for a single-node installation.
func (c *Catalog) Node() string { return c.node }

// NodeNames are the recorder nodes that ever joined this catalog (the nodes table), in
// name order; none for a single-node installation.
func (c *Catalog) NodeNames(ctx context.Context) ([]string, error) {
	rows, err := c.r.QueryContext(ctx, `SELECT name FROM nodes WHERE name <> '' ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("catalog: nodes: %w", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("catalog: nodes: %w", err)
		}
		names = append(names, n)
	}
	return names, rows.Err()
}

// onThisNode is the condition that keeps a query on segments (named alias, "" for the
// bare table) to the files on this node's disk, its argument appended to args; "" in a
// single-node installation, where every file is local. What weighs a disk (retention's
// space rules, its deletion candidates, the archive job's work list) must see only this
// node's files: another node's footage is not on this disk, and counting it would make
// this node delete footage to free space it does not take up.
func (c *Catalog) onThisNode(alias string, args *[]any) string {
	if c.node == "" {
		return ""
	}
	*args = append(*args, c.node)
	return fmt.Sprintf(" AND %snode = $%d", alias, len(*args))
}

// checkFence runs inside a write transaction that carries a fence. FOR SHARE holds the
// lease row until the transaction ends, so a takeover (an UPDATE of that row by another
// node) waits for this write to commit, and a write that starts after the takeover sees
// the new epoch and is refused: every committed write of an epoch precedes the next epoch.
// clock_timestamp(), not now(): now() is when the transaction began, possibly before it
// waited for the catalog write lock, and the lease may have run out meanwhile. Only
// PostgreSQL's clock is read, never the node's.
func (c *Catalog) checkFence(ctx context.Context, tx *sql.Tx, f Fence) error {
	if c.node == "" {
		return fmt.Errorf("camera %q: a fenced write needs the node's name (SetNode)", f.Camera)
	}
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM camera_leases
WHERE camera = $1 AND node = $2 AND epoch = $3 AND expires_at > clock_timestamp() FOR SHARE`, f.Camera, c.node, f.Epoch).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("camera %q epoch %d on node %q: %w", f.Camera, f.Epoch, c.node, ErrFenced)
	}
	return err
}
