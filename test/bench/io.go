package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/storecrypt/storecrypt/test/emu"
	"github.com/storecrypt/storecrypt/test/testbed"
	"github.com/storecrypt/storecrypt/test/vm"
)

// IOResult is one fio job on one variant.
type IOResult struct {
	Variant string  `json:"variant"` // raw, defaults, storecrypt
	Job     string  `json:"job"`     // seq-write-1m, seq-read-1m, rand-read-4k
	MiBps   float64 `json:"mib_per_s"`
	IOPS    float64 `json:"iops"`
}

// ioSetup prepares the devices: the raw disk, cryptsetup's defaults, the agent's own
// volume (unmounted, so fio sees the block device as it does the others), and a volume
// formatted as the agent's that flagVariants open with other dm-crypt flags.
const ioSetup = `set -e
printf %s "$PASS" | cryptsetup luksFormat --batch-mode --key-file - /dev/nvme1n1
printf %s "$PASS" | cryptsetup open --key-file - /dev/nvme1n1 defaults
storecrypt-agent apply --key-source ephemeral --model "$MODEL" --devices /dev/nvme2n1 --mount-point /mnt/io >/dev/null
umount /mnt/io
printf %s "$PASS" | cryptsetup luksFormat --batch-mode --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --sector-size 4096 --key-file - /dev/nvme3n1`

// flagVariants are the dm-crypt flags (dm-crypt.rst, "optional parameters") the agent
// does not set, tried on 4K sectors against storecrypt's no_read/no_write_workqueue:
// the workqueues alone, and with the two flags that shape them (same_cpu_crypt keeps
// encryption on the submitting CPU, submit_from_crypt_cpus skips the sorting thread for
// writes). Without the workqueues neither applies.
var flagVariants = []struct{ name, flags string }{
	{"4k, workqueues", ""},
	{"4k, workqueues, same_cpu_crypt, submit_from_crypt_cpus", "--perf-same_cpu_crypt --perf-submit_from_crypt_cpus"},
}

var ioJobs = []struct{ name, args string }{
	{"seq-write-1m", "--rw=write --bs=1M --size=%[1]dM"},
	{"seq-read-1m", "--rw=read --bs=1M --size=%[1]dM"},
	{"rand-read-4k", "--rw=randread --bs=4k --size=%[1]dM --runtime=%[2]d --time_based"},
}

// IOJobs sizes the fio jobs: MiB each job covers, and the seconds the random reads run.
type IOJobs struct{ MiB, RandSeconds int }

// FullIO is `make bench`'s size.
var FullIO = IOJobs{MiB: 96, RandSeconds: 5}

// IO runs the fio jobs, sized by size, against a raw NVMe disk, a LUKS2 volume with
// cryptsetup's defaults, and storecrypt's volume (4K sectors, no workqueues, discards).
func IO(ctx context.Context, dir, agent string, sizeMiB int, size IOJobs) ([]IOResult, error) {
	sub := filepath.Join(dir, "io")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		return nil, err
	}
	tb, err := testbed.New(ctx, sub, testbed.Options{Disks: 4, SizeMB: sizeMiB, Agent: agent, GuestTools: []string{"fio"}})
	if err != nil {
		return nil, err
	}
	defer tb.Close()
	if err := tb.Boot(ctx); err != nil {
		return nil, err
	}
	res, err := tb.Guest.Exec(ctx, vm.Cmd{Argv: []string{"sh", "-c", ioSetup}, Env: append(emu.Env(), "PASS="+passphrase, "MODEL="+testbed.GuestModel)})
	if err != nil {
		return nil, err
	}
	if res.Code != 0 {
		return nil, fmt.Errorf("setting up the I/O devices: exit %d: %s", res.Code, res.Stderr)
	}
	var out []IOResult
	jobs := func(variant, dev string) error {
		for _, j := range ioJobs {
			r, err := fio(ctx, tb, dev, fmt.Sprintf(j.args, size.MiB, size.RandSeconds))
			if err != nil {
				return fmt.Errorf("%s %s: %w", variant, j.name, err)
			}
			r.Variant, r.Job = variant, j.name
			out = append(out, r)
		}
		return nil
	}
	for _, v := range []struct{ name, dev string }{{"raw", "/dev/nvme0n1"}, {"defaults", "/dev/mapper/defaults"}, {"storecrypt", "/dev/mapper/storecrypt"}} {
		if err := jobs(v.name, v.dev); err != nil {
			return nil, err
		}
	}
	for _, v := range flagVariants {
		open := fmt.Sprintf("printf %%s %q | cryptsetup open --key-file - %s /dev/nvme3n1 flags", passphrase, v.flags)
		if _, err := tb.Sh(ctx, open); err != nil {
			return nil, err
		}
		if err := jobs(v.name, "/dev/mapper/flags"); err != nil {
			return nil, err
		}
		if _, err := tb.Sh(ctx, "cryptsetup close flags"); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func fio(ctx context.Context, tb *testbed.Testbed, dev, args string) (IOResult, error) {
	script := fmt.Sprintf("fio --name=j --filename=%s --direct=1 --ioengine=psync --output-format=json %s", dev, args)
	res, err := tb.Guest.Exec(ctx, vm.Cmd{Argv: []string{"sh", "-c", script}})
	if err != nil {
		return IOResult{}, err
	}
	if res.Code != 0 {
		return IOResult{}, fmt.Errorf("fio exit %d: %s", res.Code, res.Stderr)
	}
	var out struct {
		Jobs []struct {
			Read, Write struct {
				BW   float64 `json:"bw"` // KiB/s
				IOPS float64 `json:"iops"`
			}
		} `json:"jobs"`
	}
	if err := json.Unmarshal([]byte(res.Stdout), &out); err != nil {
		return IOResult{}, fmt.Errorf("parsing fio's output: %w\n%s", err, res.Stdout)
	}
	if len(out.Jobs) == 0 {
		return IOResult{}, fmt.Errorf("fio reported no job:\n%s", res.Stdout)
	}
	j := out.Jobs[0]
	bw, iops := j.Read.BW+j.Write.BW, j.Read.IOPS+j.Write.IOPS
	return IOResult{MiBps: bw / 1024, IOPS: iops}, nil
}
