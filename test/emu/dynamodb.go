package emu

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/middleware"

	"github.com/storecrypt/storecrypt/internal/fakeaws/apimodel"
	"github.com/storecrypt/storecrypt/internal/ledger"
	"github.com/storecrypt/storecrypt/internal/modroot"
)

// DynamoDB is dynalite, a DynamoDB-compatible server from npm (pinned in package.json,
// installed by `make test`), run in memory as a child process on 127.0.0.1.
type DynamoDB struct {
	Addr   string
	Client *dynamodb.Client
	// Models keeps Client's requests that broke DynamoDB's API model.
	Models apimodel.Log
	cmd    *exec.Cmd
}

// StartDynamoDB runs dynalite until the test ends. It fails the test when dynalite is
// not installed (the tests that need it never skip), and when Client sent a request
// that breaks DynamoDB's API model.
func StartDynamoDB(t testing.TB) *DynamoDB {
	t.Helper()
	d, err := NewDynamoDB()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	d.Models.FailOn(t)
	return d
}

// NewDynamoDB runs dynalite until Close.
func NewDynamoDB() (*DynamoDB, error) {
	cli, err := dynalite()
	if err != nil {
		return nil, err
	}
	// Port 0 is not dynalite's to choose: it prints the port it was given, so the port
	// comes from a listener opened and closed here.
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command("node", cli, "--host", "127.0.0.1", "--port", fmt.Sprint(port), "--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting dynalite: %w", err)
	}
	d := &DynamoDB{Addr: addr, cmd: cmd}
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening") {
				ready <- nil
				_, _ = io.Copy(io.Discard, out)
				return
			}
		}
		ready <- fmt.Errorf("dynalite exited before listening: %s", stderr.String())
	}()
	select {
	case err := <-ready:
		if err != nil {
			d.Close()
			return nil, err
		}
	case <-time.After(30 * time.Second):
		d.Close()
		return nil, errors.New("dynalite did not listen within 30s")
	}
	d.Client = dynamodb.New(dynamodb.Options{Region: Region, Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String("http://" + addr), APIOptions: []func(*middleware.Stack) error{apimodel.Validate(d.Models.Report)}})
	return d, nil
}

// Close stops dynalite; its tables are gone with it.
func (d *DynamoDB) Close() {
	if d.cmd.Process != nil {
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		_ = d.cmd.Wait()
	}
}

// dynalite finds dynalite's command in the repository's node_modules.
func dynalite() (string, error) {
	root, err := modroot.Dir()
	if err != nil {
		return "", err
	}
	cli := filepath.Join(root, "node_modules", "dynalite", "cli.js")
	if _, err := os.Stat(cli); err != nil {
		return "", fmt.Errorf("no node_modules/dynalite under %s: run `npm ci` (make test does): %w", root, err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		return "", fmt.Errorf("dynalite needs node: %w (run `make deps`)", err)
	}
	return cli, nil
}

// CreateTable makes a table and waits until it is active.
func (d *DynamoDB) CreateTable(ctx context.Context, in *dynamodb.CreateTableInput) error {
	if _, err := d.Client.CreateTable(ctx, in); err != nil {
		return fmt.Errorf("creating table %s: %w", aws.ToString(in.TableName), err)
	}
	w := dynamodb.NewTableExistsWaiter(d.Client, func(o *dynamodb.TableExistsWaiterOptions) { o.MinDelay = 10 * time.Millisecond })
	return w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: in.TableName}, 30*time.Second)
}

// LedgerTable is the table Ledger makes.
const LedgerTable = "storecrypt-ledger"

// Ledger is a ledger in a fresh table of its own dynalite, for the test.
func Ledger(t testing.TB) *ledger.Ledger {
	t.Helper()
	d := StartDynamoDB(t)
	if err := d.CreateTable(context.Background(), ledger.Table(LedgerTable)); err != nil {
		t.Fatal(err)
	}
	return &ledger.Ledger{DB: d.Client, Table: LedgerTable}
}
