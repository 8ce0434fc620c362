// Package kubedocs checks every block of docs/kubernetes.md against what reads it on a
// node: NodeConfig, EC2NodeClass and NodePool against the CRD schemas of nodeadm and
// Karpenter, ClusterConfig against eksctl's JSON schema (testdata/SOURCES.md says where
// each comes from), user data part by part as nodeadm splits it, shell with bash -n, and
// every storecrypt-agent command line against the agent's own flags. nodeadm, Karpenter
// and eksctl decode leniently or prune unknown fields, so a misspelt field in a copied
// snippet would be dropped on a node without a word: here it fails.
package kubedocs
