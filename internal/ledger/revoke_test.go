package ledger_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/ledger"
)

const revoker = "arn:aws:sts::111122223333:assumed-role/revoker/alice"

// shredFirst runs shred before the first removal it passes on: a shred that lands
// between Resume's read and its writes.
type shredFirst struct {
	ledger.DynamoDB
	shred func() error
}

func (s shredFirst) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if strings.HasPrefix(aws.ToString(in.UpdateExpression), "REMOVE") {
		if err := s.shred(); err != nil {
			return nil, err
		}
	}
	return s.DynamoDB.UpdateItem(ctx, in, optFns...)
}

// TestMarks: a revoke or shred mark is set once (the second keeps the first's time, who
// and why), on an item the functions never wrote too; a resume removes revoked_* from
// every launch of the instance and records who and why in resumed_*, and a shredded
// instance cannot be resumed. None of them writes a story entry or a status: the story is
// the functions'.
func TestMarks(t *testing.T) {
	first := ledger.Mark{At: launched.Add(time.Hour), By: revoker, Reason: "INC-1 key compromise"}
	second := ledger.Mark{At: launched.Add(2 * time.Hour), By: "arn:aws:sts::111122223333:assumed-role/revoker/bob", Reason: "again"}
	earlier := ledger.Launch{InstanceID: id, LaunchTime: launched.Add(-24 * time.Hour)}
	for _, tc := range []struct {
		name   string
		steps  func(ctx context.Context, l *ledger.Ledger) error
		check  func(t *testing.T, l *ledger.Ledger)
		refuse error
	}{
		{"revoke twice keeps the first", func(ctx context.Context, l *ledger.Ledger) error {
			if m, wrote, err := l.MarkRevoked(ctx, launch, first); err != nil || !wrote || m != first {
				t.Fatalf("first revoke: got %v, %v, %v, want %v, true, nil", m, wrote, err, first)
			}
			m, wrote, err := l.MarkRevoked(ctx, launch, second)
			if wrote || !m.At.Equal(first.At) || m.By != first.By || m.Reason != first.Reason {
				t.Errorf("second revoke: got %v, wrote %v, want %v, false", m, wrote, first)
			}
			return err
		}, func(t *testing.T, l *ledger.Ledger) {
			it := item(t, l, launched)
			if it.RevokedAt != "2026-11-27T07:00:00.000Z" || it.RevokedBy != revoker || it.RevokedReason != first.Reason {
				t.Errorf("got revoked %q by %q for %q, want the first mark", it.RevokedAt, it.RevokedBy, it.RevokedReason)
			}
			noStory(t, it)
			if why, _ := l.Revoked(context.Background(), id); why != contract.ReasonRevoked {
				t.Errorf("got Revoked %q, want %q", why, contract.ReasonRevoked)
			}
		}, nil},
		{"resume clears every launch", func(ctx context.Context, l *ledger.Ledger) error {
			for _, la := range []ledger.Launch{earlier, launch} {
				if _, _, err := l.MarkRevoked(ctx, la, first); err != nil {
					return err
				}
			}
			return l.Resume(ctx, launch, second)
		}, func(t *testing.T, l *ledger.Ledger) {
			if why, _ := l.Revoked(context.Background(), id); why != "" {
				t.Errorf("got Revoked %q after resume, want none", why)
			}
			for _, lt := range []time.Time{earlier.LaunchTime, launched} {
				it := item(t, l, lt)
				if it.RevokedAt != "" || it.ResumedAt != "2026-11-27T08:00:00.000Z" || it.ResumedBy != second.By || it.ResumedReason != second.Reason {
					t.Errorf("launch %s: got revoked %q, resumed %q by %q for %q, want no revoke, resumed %s by %s for %q",
						lt, it.RevokedAt, it.ResumedAt, it.ResumedBy, it.ResumedReason, "2026-11-27T08:00:00.000Z", second.By, second.Reason)
				}
				noStory(t, it)
			}
		}, nil},
		{"resume of a launch never marked records who and why on it", func(ctx context.Context, l *ledger.Ledger) error {
			return l.Resume(ctx, launch, second)
		}, func(t *testing.T, l *ledger.Ledger) {
			if it := item(t, l, launched); it.ResumedBy != second.By || it.ResumedReason != second.Reason {
				t.Errorf("got resumed by %q for %q, want by %s for %q", it.ResumedBy, it.ResumedReason, second.By, second.Reason)
			}
		}, nil},
		{"shredded on the latest launch: no mark is removed", func(ctx context.Context, l *ledger.Ledger) error {
			if _, _, err := l.MarkRevoked(ctx, earlier, first); err != nil {
				return err
			}
			if _, _, err := l.MarkShredded(ctx, launch, first); err != nil {
				return err
			}
			return l.Resume(ctx, launch, second)
		}, func(t *testing.T, l *ledger.Ledger) {
			if it := item(t, l, earlier.LaunchTime); it.RevokedAt == "" {
				t.Error("got the earlier launch's revoke mark removed, want it kept")
			}
		}, ledger.ErrShredded},
		{"a shred between the read and the removal stays shredded", func(ctx context.Context, l *ledger.Ledger) error {
			if _, _, err := l.MarkRevoked(ctx, launch, first); err != nil {
				return err
			}
			racing := &ledger.Ledger{Table: l.Table}
			racing.DB = shredFirst{DynamoDB: l.DB, shred: func() error {
				_, _, err := l.MarkShredded(ctx, launch, first)
				return err
			}}
			return racing.Resume(ctx, launch, second)
		}, func(t *testing.T, l *ledger.Ledger) {
			if it := item(t, l, launched); it.ShreddedAt == "" {
				t.Error("got the shred mark gone after a racing resume, want it kept")
			}
			if why, _ := l.Revoked(context.Background(), id); why != contract.ReasonShredded {
				t.Errorf("got Revoked %q after a racing resume, want %q", why, contract.ReasonShredded)
			}
		}, nil},
		{"shredded is not resumed", func(ctx context.Context, l *ledger.Ledger) error {
			if _, _, err := l.MarkRevoked(ctx, launch, first); err != nil {
				return err
			}
			if _, _, err := l.MarkShredded(ctx, earlier, first); err != nil {
				return err
			}
			return l.Resume(ctx, launch, second)
		}, func(t *testing.T, l *ledger.Ledger) {
			if it := item(t, l, launched); it.RevokedAt == "" {
				t.Error("got the revoke mark removed, want it kept")
			}
			if why, _ := l.Revoked(context.Background(), id); why != contract.ReasonShredded {
				t.Errorf("got Revoked %q, want %q", why, contract.ReasonShredded)
			}
		}, ledger.ErrShredded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := start(t)
			err := tc.steps(context.Background(), l)
			if tc.refuse == nil && err != nil || !errors.Is(err, tc.refuse) {
				t.Fatalf("got %v, want %v", err, tc.refuse)
			}
			tc.check(t, l)
		})
	}
}

// noStory fails unless the item holds no entry and no status: the CLI writes marks only.
func noStory(t *testing.T, it *ledger.Item) {
	t.Helper()
	if len(it.Entries) != 0 || it.Status != "" || it.FirstSeen != "" {
		t.Errorf("got entries %v, status %q, first_seen %q, want none: only the functions write the story", ids(it), it.Status, it.FirstSeen)
	}
}
