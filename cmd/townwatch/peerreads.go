package main

import (
	"fmt"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/recorder"
	"github.com/townwatch/townwatch/recorder/cluster"
	"github.com/townwatch/townwatch/viewer"
)

// attachPeers lets a command run on node (its -node flag) read footage that is still on
// the other nodes' disks, through their node routes with the node token, as serve -node
// does (recorder.Storage.SetPeers). It only looks addresses up in the nodes table: it
// joins no lease round. Without -node the command reads this disk and the archive, and
// names the node of any segment it cannot reach. close releases the connection.
func attachPeers(cfg *configs.Config, st *recorder.Storage, node string) (close func(), err error) {
	if node == "" {
		return func() {}, nil
	}
	if err := cfg.CheckNode(node); err != nil {
		return nil, err
	}
	token, err := cfg.Node.Token()
	if err != nil {
		return nil, err
	}
	// The same trust as serve -node: the node token goes only to a node the cluster's CA
	// vouches for (node.ca_file).
	roots, err := cfg.Node.CAPool()
	if err != nil {
		return nil, fmt.Errorf("node.ca_file: %w", err)
	}
	nodes, err := cluster.New(cfg.Catalog.URL, cluster.Options{Node: node})
	if err != nil {
		return nil, err
	}
	st.SetPeers(node, &viewer.Peers{Self: node, Token: token, Advertise: nodes.Advertise, Client: viewer.PeerClient(roots)})
	return func() { nodes.Close() }, nil
}
