package mutants

// Package paths and files, relative to the module root, that many mutants share.
const (
	agentPkg   = "instance-agent/agent"
	conformPkg = "test/conformance"
	stackPkg   = "infra/storecrypt"
	stackFile  = "infra/storecrypt/storecrypt.go"
	planFile   = "instance-agent/plan/plan.go"
)

// Catalogue is one mutant or more per row of docs/security.md, in the document's order.
// Each Find is the smallest snippet that is the control; Replace removes or weakens it.
var Catalogue = []Mutant{
	// The volume and its key.
	{
		Row:  "Leaks through argv",
		File: "instance-agent/luks/luks.go",
		Find: `	return c.run(ctx, OpenCommand(dev, name, o), key, "opening "+dev)`,
		Replace: `	cmd := OpenCommand(dev, name, o)
	cmd.Args = append(cmd.Args, "--key-file", "/dev/stdin", "--key", string(key))
	return c.run(ctx, cmd, nil, "opening "+dev)`,
		Pkg: "instance-agent/luks", Run: "^TestKeyOnlyOnStdin$",
	},
	{
		Row:     "Leaks through argv",
		File:    "instance-agent/luks/luks.go",
		Find:    `	args = append(args, "--key-slot", "0", "--key-file", "-", dev)`,
		Replace: `	args = append(args, "--key-slot", "0", dev)`,
		Pkg:     "instance-agent/luks", Run: "^TestKeyOnlyOnStdin$",
	},
	{
		Row:     "Leaks through argv",
		File:    "instance-agent/keysource/keysource.go",
		Find:    "	clear(k.Secret)\n	k.Secret = nil",
		Replace: "	k.Secret = nil",
		Pkg:     agentPkg, Run: "^TestApplyFreshDisk$",
	},
	{
		Row:  "A process on another opted-in instance",
		File: stackFile,
		Find: `		deny("StoreCryptOnlyTheOwningInstance", map[string]any{
			"ForAnyValue:StringEquals": map[string]any{"kms:EncryptionContextKeys": contract.ContextInstanceARN},
			"StringNotEquals":          map[string]any{"kms:EncryptionContext:" + contract.ContextInstanceARN: "${ec2:SourceInstanceARN}"},
		}),
`,
		Pkg: conformPkg, Run: "^TestKeyBindsEachVolumeToItsInstance$",
	},
	{
		Row:  "A process on another opted-in instance",
		File: stackFile,
		Find: `		"StringEquals":              map[string]any{"kms:EncryptionContext:" + contract.ContextInstanceARN: "${ec2:SourceInstanceARN}"},
		"StringLike":                map[string]any{"kms:EncryptionContext:" + contract.ContextVolume: "*"},`,
		Replace: `		"StringLike":                map[string]any{"kms:EncryptionContext:" + contract.ContextVolume: "*"},`,
		Pkg:     conformPkg, Run: "^TestKeyBindsEachVolumeToItsInstance$",
	},
	{
		Row:  "An account admin, or any IAM policy",
		File: stackFile,
		Find: `		deny("StoreCryptOnlyTheInstanceRoles", map[string]any{
			"ForAnyValue:StringLike": map[string]any{"kms:EncryptionContextKeys": "storecrypt:*"},
			"ArnNotEquals":           map[string]any{"aws:PrincipalArn": s.roleARNs},
		}),
`,
		Pkg: conformPkg, Run: "^TestKeyBindsEachVolumeToItsInstance$",
	},
	{
		Row:  "used for anything other than storecrypt's volumes",
		File: stackFile,
		Find: `		"ForAllValues:StringEquals": map[string]any{"kms:EncryptionContextKeys": contract.ContextKeys},
`,
		Pkg: conformPkg, Run: "^TestKeyBindsEachVolumeToItsInstance$",
	},
	{
		Row:  "used for anything other than storecrypt's volumes",
		File: stackFile,
		Find: `		"StringLike":                map[string]any{"kms:EncryptionContext:" + contract.ContextVolume: "*"},
`,
		Pkg: conformPkg, Run: "^TestKeyBindsEachVolumeToItsInstance$",
	},
	{
		Row:     "An upgrade locks out volumes",
		File:    "instance-agent/keysource/keysource.go",
		Find:    "	if t.ContextKeys == nil {\n		return contract.LegacyEncryptionContext(v.InstanceID, v.UUID)",
		Replace: "	if false {\n		return contract.LegacyEncryptionContext(v.InstanceID, v.UUID)",
		Pkg:     "instance-agent/keysource", Run: "^TestKMSDataKeyBindsInstanceAndVolume$",
	},
	{
		Row:     "An upgrade locks out volumes",
		File:    stackFile,
		Find:    "	if !s.props.RefuseLegacyVolumes {",
		Replace: "	if false {",
		Pkg:     stackPkg, Run: "^TestKeyPolicy$",
	},
	{
		Row:     "A header copied to another instance",
		File:    "internal/contract/contract.go",
		Find:    "	return map[string]string{ContextInstanceARN: instanceARN, ContextVolume: volumeUUID}",
		Replace: "	return map[string]string{ContextInstanceARN: instanceARN}",
		Pkg:     "instance-agent/keysource", Run: "^TestKMSDataKeyBindsInstanceAndVolume$",
	},
	{
		Row:     "A header copied to another instance",
		File:    "instance-agent/awsenv/awsenv.go",
		Find:    "contract.InstanceARN(partition, doc.Region, doc.AccountID, doc.InstanceID), nil",
		Replace: "contract.InstanceARN(partition, doc.Region, doc.AccountID, \"\"), nil",
		Pkg:     "instance-agent/awsenv", Run: "^TestIdentityFromIMDS$",
	},
	{
		Row:     "The key's Decrypt used on other ciphertexts",
		File:    stackFile,
		Find:    `"Null": map[string]any{"kms:EncryptionContextKeys": "true", "ec2:SourceInstanceARN": "false"},`,
		Replace: `"Null": map[string]any{"kms:EncryptionContextKeys": "true"},`,
		Pkg:     conformPkg, Run: "^TestSeedSecretKeyUse$",
	},
	{
		Row:     "`put-secret` replaces the secret",
		File:    "instance-agent/keysource/keysource.go",
		Find:    "return s.fromS3(ctx, t.Secret, t.SecretVersion)",
		Replace: `return s.fromS3(ctx, t.Secret, "")`,
		Pkg:     "instance-agent/keysource", Run: "^TestS3KMSReadsTheVersionItWasMadeWith$",
	},
	{
		Row:     "`put-secret` replaces the secret",
		File:    "internal/opcli/commands.go",
		Find:    `			in.IfNoneMatch = aws.String("*")`,
		Replace: ``,
		Pkg:     "internal/opcli", Run: "^TestPutSecret$",
	},
	{
		Row:     "A disk that holds something not storecrypt's",
		File:    planFile,
		Find:    "		if d.Sig.Blank() {\n			return pl.fresh(v, nil, nil)",
		Replace: "		if true {\n			return pl.fresh(v, nil, nil)",
		Pkg:     agentPkg, Run: "^TestRefusesBeforeWriting$",
	},
	{
		Row:     "naming EBS (`Amazon Elastic Block Store`)",
		File:    "instance-agent/discover/discover.go",
		Find:    "if d.Model == model && !IsEBS(d.Model) {",
		Replace: "if d.Model == model {",
		Pkg:     "instance-agent/discover", Run: "^TestInstanceStoreNeverReturnsEBSOrRoot$",
	},
	{
		Row:     "naming EBS (`Amazon Elastic Block Store`)",
		File:    "internal/contract/contract.go",
		Find:    `	if strings.Contains(strings.ToLower(o.Model), "elastic block store") {`,
		Replace: `	if false {`,
		Pkg:     "internal/contract", Run: "^TestValidate$",
	},
	{
		Row:     "Written to the mount point while the volume is not mounted",
		File:    "instance-agent/mountpoint/mountpoint.go",
		Find:    "	if !empty {",
		Replace: "	if false {",
		Pkg:     "instance-agent/mountpoint", Run: "^TestPrepare$",
	},
	{
		Row:     "Written to the mount point while the volume is not mounted",
		File:    "instance-agent/mountpoint/mountpoint.go",
		Find:    "	return seal(filepath.Join(root, dir))",
		Replace: "	return nil",
		Pkg:     "instance-agent/mountpoint", Run: "^TestPrepare$",
	},
	{
		Row:     "A container runtime, the kubelet or a database writes",
		File:    "instance-agent/bootunit/unit.service.tmpl",
		Find:    "Before=multi-user.target{{range .RequiredBy}} {{.}}{{end}}",
		Replace: "Before=multi-user.target",
		Pkg:     agentPkg, Run: "^TestInstall$",
	},
	{
		Row:     "With KMS unreachable at boot",
		File:    "instance-agent/bootunit/bootunit.go",
		Find:    `		links = append(links, held+".requires")`,
		Replace: ``,
		Pkg:     agentPkg, Run: "^TestInstall$",
	},
	{
		Row:     "With KMS unreachable at boot",
		File:    "instance-agent/bind/bind.go",
		Find:    "	if err := seal(src); errors.Is(err, mountpoint.ErrUnsupported) {",
		Replace: "	if err := error(nil); errors.Is(err, mountpoint.ErrUnsupported) {",
		Pkg:     agentPkg, Run: "^TestBindDirs$",
	},
	{
		Row:     "What is written under a `--bind-dirs` directory",
		File:    "instance-agent/bind/bind.go",
		Find:    "	if _, err := run.Run(ctx, MountCommand(Target(mountPoint, dir), dir)); err != nil {",
		Replace: "	if err := error(nil); err != nil {",
		Pkg:     agentPkg, Run: "^TestBindDirs$",
	},
	{
		Row:     "`--bind-dirs` hides the system's state",
		File:    "internal/contract/contract.go",
		Find:    "		case systemState(d):",
		Replace: "		case false:",
		Pkg:     "internal/contract", Run: "^TestValidate$",
	},
	{
		Row:     "`--bind-dirs` hides the system's state",
		File:    "internal/contract/contract.go",
		Find:    "		case within(d, o.MountPoint) || within(o.MountPoint, d):",
		Replace: "		case false:",
		Pkg:     "internal/contract", Run: "^TestValidate$",
	},
	{
		Row:     "`--bind-dirs` hides the system's state",
		File:    "instance-agent/bind/bind.go",
		Find:    "	if d.State == Other {",
		Replace: "	if false {",
		Pkg:     agentPkg, Run: "^TestBindDirs$",
	},
	{
		Row:     "A run from the document binds a directory under a runtime",
		File:    "instance-agent/agent/converge.go",
		Find:    `		if unit := ex.runningHeldUnit(); unit != "" {`,
		Replace: `		if unit := ex.runningHeldUnit(); false && unit != "" {`,
		Pkg:     agentPkg, Run: "^TestBindDirs$",
	},
	{
		Row:     "The SSM document's apply rewrites the boot-time unit",
		File:    planFile,
		Find:    "	if o.Boot || f.BootMode {\n		return Step{}, false",
		Replace: "	if o.Boot {\n		return Step{}, false",
		Pkg:     agentPkg, Run: "^TestCommandKeepsTheBootUnit$",
	},
	{
		Row:     "files written beside the per-disk mount points",
		File:    "instance-agent/mountpoint/mountpoint.go",
		Find:    "	return seal(full)",
		Replace: "	return nil",
		Pkg:     agentPkg, Run: "^TestPerDisk$",
	},
	{
		Row:  "a disk refused after another was already formatted",
		File: "instance-agent/agent/perdisk.go",
		Find: `		ex := &executor{run: &subs[i], disks: []discover.Disk{d}}
		if err := ex.check(p, &f); err != nil {
			return err
		}`,
		Replace: `		_ = p`,
		Pkg:     agentPkg, Run: "^TestPerDisk$",
	},
	{
		Row:     "A mount point over `/etc/ssh`",
		File:    "internal/contract/contract.go",
		Find:    "	if systemState(o.MountPoint) {",
		Replace: "	if false {",
		Pkg:     "internal/contract", Run: "^TestValidate$",
	},
	{
		Row:     "A KMS or S3 failure leaves a half-made volume",
		File:    planFile,
		Find:    "	pl.newKey()\n	if len(leftovers) > 0 {",
		Replace: "	defer pl.newKey()\n	if len(leftovers) > 0 {",
		Pkg:     agentPkg, Run: "^TestKeyUnavailableWritesNothing$",
	},
	{
		Row:     "A rerun or a power cut reformats a volume in use",
		File:    planFile,
		Find:    "	case contract.StateProvisioning:\n		if !pl.f.Mode.formats() {",
		Replace: "	case contract.StateProvisioning, contract.StateReady:\n		if !pl.f.Mode.formats() {",
		Pkg:     agentPkg, Run: "^TestReformatsOnlyProvisioning$",
	},
}
