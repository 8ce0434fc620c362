package kubedocs

import (
	"strings"
	"testing"
)

// TestCheckerRefusesWhatANodeWouldDrop: each case is a block a reader might paste with one
// mistake; the checker must name it. The accepted cases keep it from refusing what the
// tools take.
func TestCheckerRefusesWhatANodeWouldDrop(t *testing.T) {
	const nodeConfig = "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n"
	const nodeClass = "apiVersion: karpenter.k8s.aws/v1\nkind: EC2NodeClass\nmetadata:\n  name: x\nspec:\n" +
		"  role: r\n  amiSelectorTerms:\n    - alias: al2023@latest\n" +
		"  subnetSelectorTerms:\n    - id: subnet-1\n  securityGroupSelectorTerms:\n    - id: sg-1\n"
	const userData = "  userData: |\n    MIME-Version: 1.0\n    Content-Type: multipart/mixed; boundary=\"//\"\n\n" +
		"    --//\n    Content-Type: text/x-shellscript\n\n    #!/bin/bash\n    true\n    --//--\n"
	const cluster = "apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata:\n  name: c\n  region: us-east-1\n"
	const install = "/usr/local/sbin/storecrypt-agent install --kms-key-id alias/k --bind-dirs /var/lib/containerd,/var/lib/kubelet,/var/log/pods"
	for _, tc := range []struct {
		name, info, text string
		want             string // a substring of one error; "" when the block is accepted
	}{
		{"a fragment of kubelet settings", "yaml", nodeConfig + "  kubelet:\n    config:\n      maxPods: 42\n      kubeReserved:\n        ephemeral-storage: 2Gi\n", ""},
		{"a misspelt NodeConfig field", "yaml", nodeConfig + "  kublet:\n    config: {}\n", `unknown field "kublet"`},
		{"a strategy outside nodeadm's enum", "yaml", nodeConfig + "  instance:\n    localStorage:\n      strategy: none\n", "want one of [RAID0 RAID10 Mount]"},
		{"nodeadm told to take the disks", "yaml", nodeConfig + "  instance:\n    localStorage:\n      strategy: RAID0\n", "spec.instance.localStorage"},
		{"cluster fields in a fragment", "yaml", nodeConfig + "  cluster:\n    name: c\n", "spec.cluster"},
		{"a wrong apiVersion", "yaml", "apiVersion: node.eks.aws/v1\nkind: NodeConfig\n", "got a node.eks.aws/v1 NodeConfig document"},
		{"an EC2NodeClass with storecrypt's user data", "yaml", nodeClass + userData, ""},
		{"a misspelt EC2NodeClass field", "yaml", nodeClass + "  blockDeviceMapping: []\n" + userData, `unknown field "blockDeviceMapping"`},
		{"a volume size that is no quantity", "yaml", nodeClass + "  blockDeviceMappings:\n    - ebs:\n        volumeSize: forty\n" + userData, "want a match of"},
		{"a boolean where a string goes", "yaml", nodeClass + "  blockDeviceMappings:\n    - deviceName: true\n" + userData, "want a string"},
		{"Karpenter told to take the disks", "yaml", nodeClass + "  instanceStorePolicy: RAID0\n" + userData, "spec.instanceStorePolicy"},
		{"an EC2NodeClass without user data", "yaml", nodeClass, "no spec.userData"},
		{"a ClusterConfig without a region", "yaml", "apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata:\n  name: c\n", `got no "region"`},
		{"a misspelt node group field", "yaml", cluster + "managedNodeGroups:\n  - name: n\n    preBootstrapCommand: [true]\n", `unknown field "preBootstrapCommand"`},
		{"a node group command that is no shell", "yaml", cluster + "managedNodeGroups:\n  - name: n\n    preBootstrapCommands:\n      - \"case x in\"\n", "bash -n"},
		{"an agent line with a flag it lacks", "text", "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"//\"\n\n--//\nContent-Type: text/x-shellscript\n\n" + install + " --bind-dir /x\n--//--\n", "got exit 2"},
		{"an install that leaves the kubelet's state on the root disk", "sh", "/usr/local/sbin/storecrypt-agent install --kms-key-id alias/k --bind-dirs /var/lib/containerd,/var/log/pods\n", "want /var/lib/kubelet among them"},
		{"an install on two lines", "sh", "/usr/local/sbin/storecrypt-agent install --kms-key-id alias/k \\\n    --bind-dirs=/var/lib/containerd,/var/lib/kubelet,/var/log/pods --now\n", ""},
		{"a user-data part nodeadm and cloud-init ignore", "text", "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"//\"\n\n--//\nContent-Type: text/plain\n\nx\n--//--\n", `part of type "text/plain"`},
		{"user data that is no multi-part", "text", "MIME-Version: 1.0\nContent-Type: text/x-shellscript\n\n#!/bin/bash\n", "want multipart/mixed"},
		{"a block of a kind nobody checks", "json", "{}\n", `got a "json" block`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := newChecker(t).checkBlock(block{info: tc.info, text: tc.text})
			var got []string
			for _, err := range errs {
				got = append(got, err.Error())
			}
			joined := strings.Join(got, "\n")
			switch {
			case tc.want == "" && len(errs) > 0:
				t.Errorf("got errors:\n%s\nwant none", joined)
			case tc.want != "" && !strings.Contains(joined, tc.want):
				t.Errorf("got errors:\n%s\nwant one saying %q", joined, tc.want)
			}
		})
	}
}
