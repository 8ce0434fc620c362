package agent

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/storecrypt/storecrypt/instance-agent/keysource"
	"github.com/storecrypt/storecrypt/instance-agent/keytoken"
	"github.com/storecrypt/storecrypt/instance-agent/lock"
	"github.com/storecrypt/storecrypt/instance-agent/plan"
	"github.com/storecrypt/storecrypt/internal/contract"
)

// RefusedError is a disk the agent will not touch (plan.RefusedError).
type RefusedError = plan.RefusedError

// MissingToolError names the programs to install.
type MissingToolError struct {
	Tools  []string
	Detail string
}

func (e *MissingToolError) Error() string {
	if e.Detail != "" {
		return e.Detail
	}
	var dnf, apt []string
	for _, t := range e.Tools {
		p := toolPackages[t]
		if !slices.Contains(dnf, p.dnf) {
			dnf = append(dnf, p.dnf)
		}
		if !slices.Contains(apt, p.apt) {
			apt = append(apt, p.apt)
		}
	}
	return fmt.Sprintf("missing %s: install with `dnf install -y %s` (Amazon Linux, RHEL) or `apt-get install -y %s` (Ubuntu, Debian)",
		strings.Join(e.Tools, ", "), strings.Join(dnf, " "), strings.Join(apt, " "))
}

// ExitCodeOf maps a run's error to the process status.
func ExitCodeOf(err error) contract.ExitCode {
	var (
		refused     *RefusedError
		unavailable *keysource.UnavailableError
		invalid     *contract.InvalidError
		missing     *MissingToolError
		unopenable  *keytoken.ContextKeysError
		revoked     *RevokedError
	)
	switch {
	case err == nil:
		return contract.ExitOK
	// A volume whose token this agent cannot open is left as it is, like a disk that is
	// not ours: no retry changes its token, and formatting it would destroy its data.
	case errors.As(err, &refused), errors.As(err, &unopenable):
		return contract.ExitRefusedUnsafe
	case errors.As(err, &unavailable), errors.Is(err, keytoken.ErrEphemeral):
		return contract.ExitKeyUnavailable
	case errors.As(err, &invalid), errors.As(err, &missing):
		return contract.ExitBadInput
	case errors.Is(err, lock.ErrBusy):
		return contract.ExitBusy
	case errors.Is(err, ErrNoDevices):
		return contract.ExitNoDevices
	case errors.As(err, &revoked), errors.Is(err, plan.ErrSuspended):
		return contract.ExitRevoked
	default:
		return contract.ExitSystemError
	}
}

// RevokedError is a run that would open the volume while its access is revoked or
// after it was shredded (the mark at contract.RevocationPath).
type RevokedError struct {
	Mark contract.Revocation
}

func (e *RevokedError) Error() string {
	msg := fmt.Sprintf("the volume was %s at %s by %s (%q); it stays closed", e.Mark.State, e.Mark.At, e.Mark.By, e.Mark.Reason)
	if e.Mark.State == contract.Revoked {
		return msg + ": storecrypt-agent resume restores access"
	}
	return msg + ": its data is gone; remove " + contract.RevocationPath + " to provision new disks"
}
