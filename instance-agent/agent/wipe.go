package agent

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"
)

// wipe zero-fills dev, the seed recipe's `dd if=/dev/zero` for those who want it. It is
// off by default: it is O(device size) (hours on multi-TB NVMe), and instance store
// arrives trimmed, so through dm-crypt an attacker sees ciphertext either way.
func wipe(ctx context.Context, dev string, progress io.Writer) error {
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("opening %s to wipe: %w", dev, err)
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("sizing %s: %w", dev, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	buf := make([]byte, 4<<20)
	var done int64
	last := time.Now()
	for done < size {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := int64(len(buf))
		if size-done < n {
			n = size - done
		}
		if _, err := f.Write(buf[:n]); err != nil {
			return fmt.Errorf("wiping %s at byte %d: %w", dev, done, err)
		}
		done += n
		if time.Since(last) > 5*time.Second {
			fmt.Fprintf(progress, "storecrypt-agent: [wipe] %d%% of %d MiB\n", done*100/size, size>>20)
			last = time.Now()
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dev, err)
	}
	return nil
}
