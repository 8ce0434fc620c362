package plan

import (
	"fmt"
	"slices"
	"strings"

	"github.com/storecrypt/storecrypt/instance-agent/raid"
	"github.com/storecrypt/storecrypt/internal/contract"
)

func (pl *planner) decide() error {
	f := pl.facts
	for _, d := range f.Disks {
		if len(d.Mounts) > 0 {
			return refuse(d.Path, "is mounted at %s", strings.Join(d.Mounts, ", "))
		}
		if len(d.Partitions) > 0 {
			return refuse(d.Path, "has partitions (%s)", strings.Join(d.Partitions, ", "))
		}
	}
	if layout := existingLayout(f.Disks); layout != "" && (len(f.Disks) == 1) != (layout == contract.LayoutPerDisk) {
		return &OtherLayoutError{Layout: layout}
	}
	if len(f.Disks) == 1 {
		d := f.Disks[0]
		for _, h := range d.Holders {
			if h.DMName != pl.facts.MapperName() {
				return refuse(d.Path, "is held by %s", h.Name)
			}
		}
		v := volume{Path: d.Path, SizeBytes: d.SizeBytes}
		if d.Sig.Blank() {
			return pl.fresh(v, nil, nil)
		}
		return pl.existing(v, d.Sig)
	}
	var members, blanks []Disk
	for _, d := range f.Disks {
		switch s := d.Sig; {
		case s.Blank():
			if len(d.Holders) > 0 {
				return refuse(d.Path, "is held by %s", holderNames(d.Holders))
			}
			blanks = append(blanks, d)
		case s.Type == raid.MemberType && s.Label == raid.MemberLabel(contract.ArrayName):
			// A member held by anything but the running array the facts name is in use
			// by something this run knows nothing of.
			for _, h := range d.Holders {
				if f.Array == nil || h.Name != f.Array.Name {
					return refuse(d.Path, "is held by %s", holderNames(d.Holders))
				}
			}
			members = append(members, d)
		default:
			return refuse(d.Path, "holds %s", s.What())
		}
	}
	array := volume{Path: "/dev/md/" + contract.ArrayName, SizeBytes: sumSizes(f.Disks)}
	switch {
	case len(blanks) == len(f.Disks):
		return pl.fresh(array, f.Disks, nil)
	case len(members) == len(f.Disks) && f.Array != nil:
		if err := pl.runningArray(members); err != nil {
			return err
		}
		v := volume{Path: f.Array.Path, SizeBytes: f.Array.SizeBytes}
		pl.plan.Layout.RAID, pl.plan.Layout.Level = v.Path, f.Array.Level
		if want := fmt.Sprintf("raid%d", raid.Level(f.Options.Layout)); f.Mode == Apply && f.Array.Level != "" && f.Array.Level != want && !f.Array.Sig.Blank() {
			pl.note("%s stays %s; --layout %s applies to new volumes (after a stop/start)", v.Path, f.Array.Level, f.Options.Layout)
		}
		if f.Array.Sig.Blank() {
			// mdadm --create finished but luksFormat never ran: nothing of a user's exists.
			return pl.fresh(v, nil, nil)
		}
		return pl.existing(v, f.Array.Sig)
	case len(members) == len(f.Disks):
		if err := pl.oneArray(members); err != nil {
			return err
		}
		pl.add(Step{Kind: AssembleArray, Name: "raid-assemble", Action: "assemble the array from " + strings.Join(paths(f.Disks), " "),
			Cmd: raid.AssembleCommand(contract.ArrayName, paths(f.Disks)), Leaves: "array " + array.Path + " running", Replan: true})
		if f.Mode.Dry() {
			pl.note("the array is not running; what follows assembling depends on what it holds")
		}
		return nil
	case f.Array != nil:
		return refuse(members[0].Path, "is a member of a running array while %s is blank", blanks[0].Path)
	default:
		if err := pl.cutShort(members); err != nil {
			return err
		}
		pl.note("%d of %d disks carry superblocks of a storecrypt array that never ran and the rest are blank: an earlier run was cut short while creating the array, which never held data; creating it again",
			len(members), len(f.Disks))
		return pl.fresh(array, f.Disks, members)
	}
}

// runningArray checks that the running array is made of the disks given: as many
// members as disks, and every superblock read of the same array. A member may be given
// that the array does not hold: a RAID10 runs on without a failed disk.
func (pl *planner) runningArray(members []Disk) error {
	a := pl.facts.Array
	if a.Devices != len(pl.facts.Disks) {
		return refuse(a.Path, "has %d members and %d disks were given; name exactly its disks", a.Devices, len(pl.facts.Disks))
	}
	// The members of an array this run created carry no superblock read before it.
	read := slices.DeleteFunc(slices.Clone(members), func(d Disk) bool { return d.Super == nil })
	return pl.oneArray(read)
}

// oneArray checks that the members' superblocks describe one array of exactly the disks
// given: the same array UUID, and as many devices as disks. Assembling a superset or a
// subset of an array, or two arrays as one, is not what the operator asked for.
func (pl *planner) oneArray(members []Disk) error {
	var uuid string
	for _, d := range members {
		sb := d.Super
		switch {
		case sb == nil:
			return fmt.Errorf("%s: the md superblock of a storecrypt array member was not read", d.Path)
		case sb.RaidDevices != len(pl.facts.Disks):
			return refuse(d.Path, "is a member of a %d-disk storecrypt array and %d disks were given; name exactly its disks", sb.RaidDevices, len(pl.facts.Disks))
		case uuid != "" && sb.ArrayUUID != uuid:
			return refuse(d.Path, "is a member of array %s, not of %s", sb.ArrayUUID, uuid)
		}
		uuid = sb.ArrayUUID
	}
	return nil
}

// cutShort checks that members, beside disks that are blank, are what a cut-short
// mdadm --create leaves, and so the array never held data. mdadm writes every member's
// superblock, each with the array's UUID, its device count, a distinct role and an
// event count of 0, before it starts the array (Create.c: write_init_super, then
// RUN_ARRAY), and the kernel adds to the count when it writes them. RAID0 may keep 0
// while it runs, so the count alone proves nothing there: the members' data areas must
// also read as zero, which no array that held storecrypt's LUKS2 header (and its
// random-filled keyslot area, spread over every member's first chunks) does.
// Anything else is a ready array missing disks, or another array: refused.
func (pl *planner) cutShort(members []Disk) error {
	if err := pl.oneArray(members); err != nil {
		return err
	}
	roles := map[int]bool{}
	for _, d := range members {
		sb := d.Super
		switch {
		case sb.Events != 0:
			return refuse(d.Path, "is a member of an array that ran (its superblock's events count is %d): its other disks are missing, not blank", sb.Events)
		case sb.Role < 0 || sb.Role >= sb.RaidDevices || roles[sb.Role]:
			return refuse(d.Path, "is a member with role %d, which no disk of a new %d-disk array has alone", sb.Role, sb.RaidDevices)
		case d.DataArea != "":
			return refuse(d.Path, "is a member of an array that held data (%s in its data area): its other disks are missing, not blank", d.DataArea)
		}
		roles[sb.Role] = true
	}
	return nil
}

// OtherLayoutError says the disks hold storecrypt volumes of another layout than the one
// asked for: the agent opens them as they are, since a layout applies to new volumes.
type OtherLayoutError struct {
	Layout string // contract.LayoutPerDisk, or "raid" for an array
}

func (e *OtherLayoutError) Error() string {
	return "the disks hold storecrypt's " + e.Layout + " volumes"
}

// existingLayout says what storecrypt made on the disks: an array ("raid") when one
// carries its md superblock, per-disk volumes when one carries its LUKS2 header and the
// rest are blank or carry one too, "" otherwise.
func existingLayout(disks []Disk) string {
	luks := 0
	for _, d := range disks {
		switch s := d.Sig; {
		case s.Type == raid.MemberType && s.Label == raid.MemberLabel(contract.ArrayName):
			return "raid"
		case s.Type == "crypto_LUKS" && s.Label == contract.VolumeLabel:
			luks++
		case !s.Blank():
			return ""
		}
	}
	if luks > 0 && len(disks) > 1 {
		return contract.LayoutPerDisk
	}
	return ""
}

func holderNames(hs []Holder) string {
	names := make([]string, len(hs))
	for i, h := range hs {
		names[i] = h.Name
	}
	return strings.Join(names, ", ")
}

func paths(disks []Disk) []string {
	out := make([]string, len(disks))
	for i, d := range disks {
		out[i] = d.Path
	}
	return out
}

func sumSizes(disks []Disk) int64 {
	var n int64
	for _, d := range disks {
		n += d.SizeBytes
	}
	return n
}
