// Package ledger is storecrypt's durable record for auditors: one DynamoDB item per
// instance launch, which outlives the instance, its tags and SSM's command history. The
// functions write it, and only by appending; the operator CLI (storecrypt revoke, resume)
// writes the revocation attributes (revoked_*, shredded_*, resumed_*), only those, each
// under a condition (a mark is set once, a resume removes revoked_* and sets resumed_*
// only where nothing is shredded), and no step of the story: each step of a launch's
// story is an entry with an id, written under a condition that the id is not there yet, so a replayed
// or duplicated event changes nothing; the item's summary (status, reason, evidence) moves
// only forward in time, and what was proven once (when it was encrypted, with what) is
// never overwritten.
package ledger

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/storecrypt/storecrypt/internal/contract"
)

// DynamoDB is the part of the DynamoDB client the ledger uses.
type DynamoDB interface {
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
}

// Ledger writes one table.
type Ledger struct {
	DB    DynamoDB
	Table string
}

// Attribute names of an item. The key is the instance and its launch: a stop/start is a
// new launch, with new, blank instance store, and a new item.
const (
	AttrInstance   = "instance_id" // partition key
	AttrLaunchTime = "launch_time" // sort key, RFC 3339 UTC, EC2's LaunchTime
)

// Launch names one launch of one instance, and what is known of it when first seen.
// Each fact is written by the first writer that knows it, and never changed.
type Launch struct {
	InstanceID   string
	LaunchTime   time.Time
	Account      string
	Region       string
	InstanceType string
	Role         string
	KeyARN       string
	KeyState     string // as the launch function's binding check found it
}

// Entry is one step of a launch's story.
type Entry struct {
	// ID makes the entry idempotent: the same step written twice is one entry.
	ID        string
	At        time.Time
	By        string // "launch", "result", "sweep"
	Status    string // a contract.Status*; an opt-out is skipped with contract.ReasonOptedOut
	Reason    contract.Reason
	CommandID string
	Evidence  *Evidence // what proved the instance encrypted, with StatusEncrypted
	// Note is what the instance answered a revoke, resume or shred with (the agent's
	// report, summed up): its claim, kept beside the status it led to.
	Note string
}

// Evidence is what the agent reported, and the stack knew, when the volume was proven
// encrypted.
type Evidence struct {
	KeySource, Cipher, LUKSUUID, Layout string
	// ProvisionedBy is the path that made the volume: the boot-time unit or a command.
	ProvisionedBy string
	// AgentVersion is the agent that made the volume: the boot unit's when it did.
	AgentVersion               string
	DocumentName, DocumentHash string
}

// FromReport is the evidence in the agent's report of the run that proved the volume
// encrypted, and the document content the run was checked against.
func FromReport(r *contract.Report, documentName, documentHash string) *Evidence {
	e := &Evidence{DocumentName: documentName, DocumentHash: documentHash}
	if r == nil {
		return e
	}
	e.AgentVersion = r.AgentVersion
	if l := r.Layout; l != nil {
		e.KeySource, e.Cipher, e.LUKSUUID, e.ProvisionedBy = l.KeySource, l.CipherSpec(), l.LUKSUUID, l.ProvisionedBy
		if l.ProvisionedBy == contract.ProvisionedByBoot && r.BootAgentVersion != "" {
			// The boot unit's agent made the volume, not the run that reports it.
			e.AgentVersion = r.BootAgentVersion
		}
		disks := "1 disk"
		if n := len(r.Devices); n > 1 {
			disks = fmt.Sprintf("%d disks", n)
			if l.Level != "" {
				disks = fmt.Sprintf("%s of %d disks", strings.ToUpper(l.Level), n)
			}
		}
		e.Layout = fmt.Sprintf("%s, %s at %s", disks, l.Filesystem, l.MountPoint)
	}
	return e
}

// EntryID names an entry by what makes it one step: who wrote it, the status, and the
// command or the state it moved from. Empty parts are left out.
func EntryID(parts ...string) string {
	var kept []string
	for _, p := range parts {
		if p != "" {
			kept = append(kept, p)
		}
	}
	return strings.Join(kept, ":")
}

// ErrDuplicate says the entry was already in the ledger: nothing was written.
var ErrDuplicate = errors.New("the entry is already in the ledger")

// MaxEntries bounds an item's story: past it, an entry is not appended (the summary still
// moves, and entries_dropped counts what was left out), so that retries without end, or
// someone rewriting tags to make the functions decide again, cannot grow the item to
// DynamoDB's 400 KB limit, past which nothing more could be recorded.
const MaxEntries = 100

// Record appends e to the launch's item, creating the item on first sight; its summary
// takes e's status unless a later entry is already recorded, and what proves the volume
// encrypted is kept whatever the order of arrival. It writes once in the usual case. A
// duplicate is ErrDuplicate.
func (l *Ledger) Record(ctx context.Context, launch Launch, e Entry) error {
	var failed *ddbtypes.ConditionalCheckFailedException
	// Append and summarize; else the summary is newer, the entry is there, or the story
	// is full: append only; else summarize only, when full.
	for _, m := range []mode{appendAndSummary, appendOnly, summaryOnly} {
		_, err := l.DB.UpdateItem(ctx, l.update(launch, e, m))
		if !errors.As(err, &failed) {
			return l.wrap(launch, err)
		}
	}
	return ErrDuplicate
}

type mode int

const (
	appendAndSummary mode = iota
	appendOnly            // the summary is newer
	summaryOnly           // the story is full
)

func (l *Ledger) wrap(launch Launch, err error) error {
	if err != nil {
		return fmt.Errorf("ledger %s: recording %s launched %s: %w", l.Table, launch.InstanceID, launch.LaunchTime.UTC().Format(time.RFC3339), err)
	}
	return nil
}

// update builds the UpdateItem for an entry in one mode.
func (l *Ledger) update(launch Launch, e Entry, m mode) *dynamodb.UpdateItemInput {
	s := func(v string) ddbtypes.AttributeValue { return &ddbtypes.AttributeValueMemberS{Value: v} }
	entry := map[string]ddbtypes.AttributeValue{"id": s(e.ID), "at": s(stamp(e.At)), "by": s(e.By), "status": s(e.Status)}
	if e.Reason != "" {
		entry["reason"] = s(string(e.Reason))
	}
	if e.CommandID != "" {
		entry["command_id"] = s(e.CommandID)
	}
	if e.Note != "" {
		entry["note"] = s(e.Note)
	}
	values := map[string]ddbtypes.AttributeValue{
		":at":  s(stamp(e.At)),
		":max": &ddbtypes.AttributeValueMemberN{Value: strconv.Itoa(MaxEntries)},
	}
	set := []string{"first_seen = if_not_exists(first_seen, :at)"}
	names := map[string]string{}
	// Facts of the launch are written once, by the first writer that knows them.
	for _, f := range [][2]string{{"account", launch.Account}, {"region", launch.Region}, {"instance_type", launch.InstanceType},
		{"role", launch.Role}, {"key_arn", launch.KeyARN}, {"key_state", launch.KeyState}} {
		if f[1] != "" {
			names["#"+f[0]], values[":"+f[0]] = f[0], s(f[1])
			set = append(set, fmt.Sprintf("#%s = if_not_exists(#%s, :%s)", f[0], f[0], f[0]))
		}
	}
	// The first proof stands, whenever it arrives: a later rerun that proves it again
	// changes nothing.
	if ev := e.Evidence; ev != nil && e.Status == contract.StatusEncrypted {
		for _, a := range [][2]string{
			{"encrypted_at", stamp(e.At)}, {"key_source", ev.KeySource},
			{"cipher", ev.Cipher}, {"luks_uuid", ev.LUKSUUID}, {"layout", ev.Layout}, {"provisioned_by", ev.ProvisionedBy}, {"agent_version", ev.AgentVersion},
			{"document_name", ev.DocumentName}, {"document_hash", ev.DocumentHash},
		} {
			if a[1] == "" {
				continue
			}
			values[":"+a[0]] = s(a[1])
			set = append(set, fmt.Sprintf("%s = if_not_exists(%s, :%s)", a[0], a[0], a[0]))
		}
		values[":seconds"] = &ddbtypes.AttributeValueMemberN{Value: strconv.FormatFloat(e.At.Sub(launch.LaunchTime).Seconds(), 'f', 3, 64)}
		set = append(set, "seconds_to_encrypted = if_not_exists(seconds_to_encrypted, :seconds)")
	}
	var conds []string
	add := ""
	if m != summaryOnly {
		values[":id"] = &ddbtypes.AttributeValueMemberSS{Value: []string{e.ID}}
		values[":eid"] = s(e.ID)
		values[":entry"] = &ddbtypes.AttributeValueMemberL{Value: []ddbtypes.AttributeValue{&ddbtypes.AttributeValueMemberM{Value: entry}}}
		values[":empty"] = &ddbtypes.AttributeValueMemberL{Value: []ddbtypes.AttributeValue{}}
		set = append(set, "entries = list_append(if_not_exists(entries, :empty), :entry)")
		add = " ADD entry_ids :id"
		conds = append(conds, "(attribute_not_exists(entry_ids) OR NOT contains(entry_ids, :eid))", "(attribute_not_exists(entries) OR size(entries) < :max)")
	} else {
		values[":one"] = &ddbtypes.AttributeValueMemberN{Value: "1"}
		add = " ADD entries_dropped :one"
		conds = append(conds, "size(entries) >= :max")
	}
	if m != appendOnly {
		values[":status"], values[":ms"] = s(e.Status), &ddbtypes.AttributeValueMemberN{Value: strconv.FormatInt(e.At.UnixMilli(), 10)}
		values[":reason"], values[":command"] = s(string(e.Reason)), s(e.CommandID)
		names["#status"] = "status"
		set = append(set, "#status = :status", "reason = :reason", "command_id = :command", "status_at = :at", "status_ms = :ms")
		conds = append(conds, "(attribute_not_exists(status_ms) OR status_ms <= :ms)")
		if e.Status == contract.StatusPending && e.CommandID != "" {
			// A command's pending never replaces its own outcome, whatever the clocks say.
			conds = append(conds, "(attribute_not_exists(command_id) OR command_id <> :command OR #status = :status)")
		}
	}
	return &dynamodb.UpdateItemInput{
		TableName:                 aws.String(l.Table),
		Key:                       key(launch.InstanceID, launch.LaunchTime),
		UpdateExpression:          aws.String("SET " + strings.Join(set, ", ") + add),
		ConditionExpression:       aws.String(strings.Join(conds, " AND ")),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	}
}

// Terminated closes the instance's latest launch: it records when the instance
// terminated, once, and says whether this call did. An instance the ledger never saw has
// nothing to close.
func (l *Ledger) Terminated(ctx context.Context, instanceID string, at time.Time) (bool, error) {
	out, err := l.DB.Query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(l.Table),
		KeyConditionExpression:    aws.String(AttrInstance + " = :id"),
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":id": &ddbtypes.AttributeValueMemberS{Value: instanceID}},
		ScanIndexForward:          aws.Bool(false),
		Limit:                     aws.Int32(1),
		ProjectionExpression:      aws.String(AttrLaunchTime),
	})
	if err != nil {
		return false, fmt.Errorf("ledger %s: finding %s's launch: %w", l.Table, instanceID, err)
	}
	if len(out.Items) == 0 {
		return false, nil
	}
	lt, ok := out.Items[0][AttrLaunchTime].(*ddbtypes.AttributeValueMemberS)
	if !ok {
		return false, fmt.Errorf("ledger %s: %s's item has no %s", l.Table, instanceID, AttrLaunchTime)
	}
	_, err = l.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(l.Table),
		Key:                       map[string]ddbtypes.AttributeValue{AttrInstance: &ddbtypes.AttributeValueMemberS{Value: instanceID}, AttrLaunchTime: lt},
		UpdateExpression:          aws.String("SET terminated_at = :at"),
		ConditionExpression:       aws.String("attribute_exists(" + AttrInstance + ") AND attribute_not_exists(terminated_at)"),
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":at": &ddbtypes.AttributeValueMemberS{Value: stamp(at)}},
	})
	var failed *ddbtypes.ConditionalCheckFailedException
	if errors.As(err, &failed) {
		return false, nil // closed already: a replayed event
	}
	if err != nil {
		return false, fmt.Errorf("ledger %s: closing %s: %w", l.Table, instanceID, err)
	}
	return true, nil
}

// Revoked says whether any launch item of the instance holds contract.LedgerShreddedAt
// (contract.ReasonShredded, which wins: it cannot be undone) or contract.LedgerRevokedAt
// (contract.ReasonRevoked); "" when none does.
func (l *Ledger) Revoked(ctx context.Context, instanceID string) (contract.Reason, error) {
	m, err := l.MarksOf(ctx, instanceID)
	switch {
	case err != nil:
		return "", err
	case m.ShreddedAt != "":
		return contract.ReasonShredded, nil
	case m.RevokedAt != "":
		return contract.ReasonRevoked, nil
	}
	return "", nil
}

func key(instanceID string, launch time.Time) map[string]ddbtypes.AttributeValue {
	return map[string]ddbtypes.AttributeValue{
		AttrInstance:   &ddbtypes.AttributeValueMemberS{Value: instanceID},
		AttrLaunchTime: &ddbtypes.AttributeValueMemberS{Value: launch.UTC().Format(time.RFC3339)},
	}
}

// stamp is a time as the ledger writes it: RFC 3339 in UTC, to the millisecond.
func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// Table is the ledger table's definition as the stack makes it, for tests and tools that
// make one elsewhere: the key, on-demand.
func Table(name string) *dynamodb.CreateTableInput {
	return &dynamodb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: ddbtypes.BillingModePayPerRequest,
		AttributeDefinitions: []ddbtypes.AttributeDefinition{
			{AttributeName: aws.String(AttrInstance), AttributeType: ddbtypes.ScalarAttributeTypeS},
			{AttributeName: aws.String(AttrLaunchTime), AttributeType: ddbtypes.ScalarAttributeTypeS},
		},
		KeySchema: []ddbtypes.KeySchemaElement{
			{AttributeName: aws.String(AttrInstance), KeyType: ddbtypes.KeyTypeHash},
			{AttributeName: aws.String(AttrLaunchTime), KeyType: ddbtypes.KeyTypeRange},
		},
	}
}

// Item is one launch's record as the ledger holds it.
type Item struct {
	InstanceID         string        `json:"instance_id"`
	LaunchTime         string        `json:"launch_time"`
	Account            string        `json:"account,omitempty"`
	Region             string        `json:"region,omitempty"`
	InstanceType       string        `json:"instance_type,omitempty"`
	Role               string        `json:"role,omitempty"`
	KeyARN             string        `json:"key_arn,omitempty"`
	KeyState           string        `json:"key_state,omitempty"`
	FirstSeen          string        `json:"first_seen,omitempty"`
	Status             string        `json:"status,omitempty"`
	Reason             string        `json:"reason,omitempty"`
	StatusAt           string        `json:"status_at,omitempty"`
	CommandID          string        `json:"command_id,omitempty"`
	EncryptedAt        string        `json:"encrypted_at,omitempty"`
	SecondsToEncrypted string        `json:"seconds_to_encrypted,omitempty"`
	KeySource          string        `json:"key_source,omitempty"`
	Cipher             string        `json:"cipher,omitempty"`
	LUKSUUID           string        `json:"luks_uuid,omitempty"`
	Layout             string        `json:"layout,omitempty"`
	ProvisionedBy      string        `json:"provisioned_by,omitempty"`
	AgentVersion       string        `json:"agent_version,omitempty"`
	DocumentName       string        `json:"document_name,omitempty"`
	DocumentHash       string        `json:"document_hash,omitempty"`
	TerminatedAt       string        `json:"terminated_at,omitempty"`
	Entries            []EntryRecord `json:"entries"`
	EntriesDropped     string        `json:"entries_dropped,omitempty"` // entries past MaxEntries, counted, not kept
	Marks
}

// EntryRecord is one entry as the ledger holds it.
type EntryRecord struct {
	ID        string `json:"id"`
	At        string `json:"at"`
	By        string `json:"by"`
	Status    string `json:"status"`
	Reason    string `json:"reason,omitempty"`
	CommandID string `json:"command_id,omitempty"`
	Note      string `json:"note,omitempty"`
}

// Get reads one launch's item, strongly consistent; nil when there is none.
func (l *Ledger) Get(ctx context.Context, instanceID string, launch time.Time) (*Item, error) {
	out, err := l.DB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(l.Table), Key: key(instanceID, launch), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, fmt.Errorf("ledger %s: reading %s: %w", l.Table, instanceID, err)
	}
	if out.Item == nil {
		return nil, nil
	}
	return decode(out.Item), nil
}

// Launches reads every launch in [since, until), in no particular order. It scans the
// table: a report for a period is rare, and the table holds one small item per launch.
func (l *Ledger) Launches(ctx context.Context, since, until time.Time) ([]Item, error) {
	p := dynamodb.NewScanPaginator(l.DB, &dynamodb.ScanInput{
		TableName:                aws.String(l.Table),
		FilterExpression:         aws.String("#lt >= :since AND #lt < :until"),
		ExpressionAttributeNames: map[string]string{"#lt": AttrLaunchTime},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{
			":since": &ddbtypes.AttributeValueMemberS{Value: since.UTC().Format(time.RFC3339)},
			":until": &ddbtypes.AttributeValueMemberS{Value: until.UTC().Format(time.RFC3339)},
		},
	})
	var out []Item
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("ledger %s: reading launches: %w", l.Table, err)
		}
		for _, m := range page.Items {
			out = append(out, *decode(m))
		}
	}
	return out, nil
}

func decode(m map[string]ddbtypes.AttributeValue) *Item {
	v := func(m map[string]ddbtypes.AttributeValue, name string) string {
		switch a := m[name].(type) {
		case *ddbtypes.AttributeValueMemberS:
			return a.Value
		case *ddbtypes.AttributeValueMemberN:
			return a.Value
		}
		return ""
	}
	it := &Item{
		InstanceID: v(m, AttrInstance), LaunchTime: v(m, AttrLaunchTime), Account: v(m, "account"), Region: v(m, "region"),
		InstanceType: v(m, "instance_type"), Role: v(m, "role"), KeyARN: v(m, "key_arn"), KeyState: v(m, "key_state"),
		FirstSeen: v(m, "first_seen"), Status: v(m, "status"), Reason: v(m, "reason"), StatusAt: v(m, "status_at"),
		CommandID: v(m, "command_id"), EncryptedAt: v(m, "encrypted_at"), SecondsToEncrypted: v(m, "seconds_to_encrypted"),
		KeySource: v(m, "key_source"), Cipher: v(m, "cipher"), LUKSUUID: v(m, "luks_uuid"), Layout: v(m, "layout"),
		ProvisionedBy: v(m, "provisioned_by"), AgentVersion: v(m, "agent_version"), DocumentName: v(m, "document_name"), DocumentHash: v(m, "document_hash"),
		TerminatedAt: v(m, "terminated_at"), EntriesDropped: v(m, "entries_dropped"), Entries: []EntryRecord{},
		Marks: Marks{RevokedAt: v(m, contract.LedgerRevokedAt), RevokedBy: v(m, contract.LedgerRevokedBy), RevokedReason: v(m, contract.LedgerRevokedReason),
			ShreddedAt: v(m, contract.LedgerShreddedAt), ShreddedBy: v(m, contract.LedgerShreddedBy), ShreddedReason: v(m, contract.LedgerShreddedReason),
			ResumedAt: v(m, contract.LedgerResumedAt), ResumedBy: v(m, contract.LedgerResumedBy), ResumedReason: v(m, contract.LedgerResumedReason)},
	}
	if l, ok := m["entries"].(*ddbtypes.AttributeValueMemberL); ok {
		for _, e := range l.Value {
			if em, ok := e.(*ddbtypes.AttributeValueMemberM); ok {
				it.Entries = append(it.Entries, EntryRecord{ID: v(em.Value, "id"), At: v(em.Value, "at"), By: v(em.Value, "by"),
					Status: v(em.Value, "status"), Reason: v(em.Value, "reason"), CommandID: v(em.Value, "command_id"), Note: v(em.Value, "note")})
			}
		}
	}
	return it
}
