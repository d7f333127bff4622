package main

import (
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
	nodes, err := cluster.New(cfg.Catalog.URL, cluster.Options{Node: node})
	if err != nil {
		return nil, err
	}
	st.SetPeers(node, &viewer.Peers{Self: node, Token: token, Advertise: nodes.Advertise})
	return func() { nodes.Close() }, nil
}
