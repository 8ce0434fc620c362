package fleet

import (
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/ledger"
)

// LedgerLaunch is the ledger's record of an instance's launch under the stack's key;
// role is "" where the writer does not know it.
func LedgerLaunch(inst ec2types.Instance, keyARN, role string) ledger.Launch {
	key, _ := arn.Parse(keyARN) // the stack's account and region; unrecorded if it does not parse
	return ledger.Launch{InstanceID: aws.ToString(inst.InstanceId), LaunchTime: aws.ToTime(inst.LaunchTime), Account: key.AccountID,
		Region: key.Region, InstanceType: string(inst.InstanceType), Role: role, KeyARN: keyARN}
}

// ResultEntry is the ledger entry of a run's outcome. The result function writes it when
// SSM reports the run; the launch function (by) writes it on the result's behalf when it
// finds the run ended unrecorded. Both get the one id, so whichever writes second
// changes nothing. An encrypted outcome carries the agent's evidence.
func ResultEntry(by string, at time.Time, commandID string, out Outcome, documentName, digest string) ledger.Entry {
	e := ledger.Entry{ID: ledger.EntryID("result", out.Status, string(out.Reason), commandID), At: at, By: by,
		Status: out.Status, Reason: out.Reason, CommandID: commandID}
	if out.Status == contract.StatusEncrypted {
		e.Evidence = ledger.FromReport(out.Report, documentName, digest)
	}
	return e
}
