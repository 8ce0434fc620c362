package fakeaws

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// SSM, from the Systems Manager API Reference (DescribeInstanceInformation, SendCommand,
// GetCommandInvocation, GetDocument, DescribeDocument, ListDocumentVersions) and the user
// guide ("Data elements and parameters", "Schemas, features, and examples").
func init() {
	register("SSM", map[string]handler{
		"DescribeInstanceInformation": (*World).describeInstanceInformation,
		"SendCommand":                 (*World).sendCommand,
		"GetCommandInvocation":        (*World).getCommandInvocation,
		"ListCommandInvocations":      (*World).listCommandInvocations,
		"GetDocument":                 (*World).getDocument,
		"DescribeDocument":            (*World).describeDocument,
		"ListDocumentVersions":        (*World).listDocumentVersions,
	})
}

// AddDocument registers a document, or a new version of one. As with UpdateDocument,
// "Any update to a document creates a new version"; the new version becomes the default
// only when makeDefault is set (CloudFormation's UpdateMethod NewVersion does that).
func (w *World) AddDocument(name, content string, makeDefault bool) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.Documents == nil {
		w.Documents = map[string]*Document{}
	}
	d := w.Documents[name]
	if d == nil {
		d = &Document{Name: name}
		w.Documents[name] = d
	}
	d.Versions = append(d.Versions, content)
	if makeDefault || d.Default == 0 {
		d.Default = len(d.Versions)
	}
	return len(d.Versions)
}

// docContent is the part of a Command document the fake reads: its parameters and steps.
type docContent struct {
	Parameters map[string]struct {
		Type              string   `json:"type"`
		Default           any      `json:"default"`
		AllowedPattern    string   `json:"allowedPattern"`
		AllowedValues     []string `json:"allowedValues"`
		InterpolationType string   `json:"interpolationType"`
	} `json:"parameters"`
	MainSteps []struct {
		Action       string                     `json:"action"`
		Name         string                     `json:"name"`
		Precondition map[string]json.RawMessage `json:"precondition"`
		Inputs       json.RawMessage            `json:"inputs"`
	} `json:"mainSteps"`
}

func parseDocument(content string) (docContent, error) {
	var doc docContent
	if err := json.Unmarshal([]byte(content), &doc); err != nil {
		return doc, &ssmtypes.InvalidDocument{Message: aws.String("the document content is not JSON: " + err.Error())}
	}
	return doc, nil
}

var versionPattern = regexp.MustCompile(`^([$]LATEST|[$]DEFAULT|[1-9][0-9]*)$`)

// version resolves a document and version ("", $DEFAULT, $LATEST or a number) to the
// version's number and content.
func (w *World) version(name, version *string) (*Document, int, error) {
	d, ok := w.Documents[aws.ToString(name)]
	if !ok {
		return nil, 0, &ssmtypes.InvalidDocument{Message: aws.String("The specified document does not exist.")}
	}
	v := aws.ToString(version)
	if v != "" && !versionPattern.MatchString(v) {
		return nil, 0, &ssmtypes.InvalidDocumentVersion{Message: aws.String("The document version isn't valid or doesn't exist.")}
	}
	switch v {
	case "", "$DEFAULT":
		return d, d.Default, nil
	case "$LATEST":
		return d, len(d.Versions), nil
	}
	n, _ := strconv.Atoi(v)
	if n > len(d.Versions) {
		return nil, 0, &ssmtypes.InvalidDocumentVersion{Message: aws.String("The document version isn't valid or doesn't exist.")}
	}
	return d, n, nil
}

func (w *World) getDocument(params any) (any, error) {
	in := params.(*ssm.GetDocumentInput)
	d, n, err := w.version(in.Name, in.DocumentVersion)
	if err != nil {
		return nil, err
	}
	return &ssm.GetDocumentOutput{
		Name: in.Name, DocumentVersion: aws.String(strconv.Itoa(n)), Content: aws.String(d.Versions[n-1]),
		DocumentType: ssmtypes.DocumentTypeCommand, DocumentFormat: ssmtypes.DocumentFormatJson, Status: ssmtypes.DocumentStatusActive,
	}, nil
}

func (w *World) describeDocument(params any) (any, error) {
	in := params.(*ssm.DescribeDocumentInput)
	d, n, err := w.version(in.Name, in.DocumentVersion)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(d.Versions[n-1]))
	return &ssm.DescribeDocumentOutput{Document: &ssmtypes.DocumentDescription{
		Name: in.Name, DocumentVersion: aws.String(strconv.Itoa(n)), DefaultVersion: aws.String(strconv.Itoa(d.Default)),
		LatestVersion: aws.String(strconv.Itoa(len(d.Versions))), Hash: aws.String(hex.EncodeToString(sum[:])), HashType: ssmtypes.DocumentHashTypeSha256,
		DocumentType: ssmtypes.DocumentTypeCommand, Status: ssmtypes.DocumentStatusActive,
	}}, nil
}

// listDocumentVersions: MaxResults 1 to 50, paged by NextToken.
func (w *World) listDocumentVersions(params any) (any, error) {
	in := params.(*ssm.ListDocumentVersionsInput)
	if in.MaxResults != nil && (*in.MaxResults < 1 || *in.MaxResults > 50) {
		return nil, invalid("ValidationException", "MaxResults must be between 1 and 50")
	}
	d, _, err := w.version(in.Name, nil)
	if err != nil {
		return nil, err
	}
	start, end, next, err := page(len(d.Versions), in.NextToken, in.MaxResults)
	if err != nil {
		return nil, err
	}
	out := &ssm.ListDocumentVersionsOutput{NextToken: next}
	for n := start + 1; n <= end; n++ {
		out.DocumentVersions = append(out.DocumentVersions, ssmtypes.DocumentVersionInfo{
			Name: in.Name, DocumentVersion: aws.String(strconv.Itoa(n)), IsDefaultVersion: n == d.Default, Status: ssmtypes.DocumentStatusActive,
		})
	}
	return out, nil
}

// describeInstanceInformation: every filter takes 1 to 100 values; MaxResults is 5 to 50
// ("The default value is 10 items"); "Attempting to use InstanceInformationFilterList
// and Filters leads to an exception error"; stopped and terminated nodes are left out.
func (w *World) describeInstanceInformation(params any) (any, error) {
	in := params.(*ssm.DescribeInstanceInformationInput)
	if len(in.Filters) > 0 && len(in.InstanceInformationFilterList) > 0 {
		return nil, invalid("InvalidFilterKey", "InstanceInformationFilterList and Filters cannot be used together")
	}
	if in.MaxResults != nil && (*in.MaxResults < 5 || *in.MaxResults > 50) {
		return nil, invalid("ValidationException", "MaxResults must be between 5 and 50")
	}
	var ids []string
	for _, f := range in.Filters {
		if len(f.Values) == 0 || len(f.Values) > 100 {
			return nil, &ssmtypes.InvalidInstanceInformationFilterValue{Message: aws.String("a filter takes 1 to 100 values")}
		}
		if aws.ToString(f.Key) != "InstanceIds" {
			return nil, &ssmtypes.InvalidFilterKey{Message: aws.String("fakeaws: filter " + aws.ToString(f.Key) + " is not implemented")}
		}
		ids = append(ids, f.Values...)
	}
	var infos []ssmtypes.InstanceInformation
	for _, id := range ids {
		inst, ok := w.Instances[id]
		if !ok || inst.State != "running" {
			continue
		}
		status := ssmtypes.PingStatusConnectionLost
		switch {
		case inst.OnlineAfter == 0:
			status = ssmtypes.PingStatusOnline
		case inst.OnlineAfter > 0:
			inst.OnlineAfter--
			continue // not yet registered with SSM: absent from the answer
		}
		infos = append(infos, ssmtypes.InstanceInformation{InstanceId: aws.String(id), PingStatus: status})
	}
	max := in.MaxResults
	if max == nil {
		max = aws.Int32(10)
	}
	start, end, next, err := page(len(infos), in.NextToken, max)
	if err != nil {
		return nil, err
	}
	return &ssm.DescribeInstanceInformationOutput{InstanceInformationList: infos[start:end], NextToken: next}, nil
}

// Rate controls of SendCommand, from its API reference: MaxConcurrency and MaxErrors are
// 1 to 7 characters, a number or a percentage; MaxErrors may be 0, MaxConcurrency not.
var (
	maxConcurrencyPattern = regexp.MustCompile(`^([1-9][0-9]*|[1-9][0-9]%|[1-9]%|100%)$`)
	maxErrorsPattern      = regexp.MustCompile(`^([1-9][0-9]*|[0]|[1-9][0-9]%|[0-9]%|100%)$`)
)

// rateControl checks a MaxConcurrency or MaxErrors value as SendCommand's API reference
// constrains it; nil is the default.
func rateControl(member string, v *string, pattern *regexp.Regexp) error {
	if v == nil {
		return nil
	}
	if len(*v) < 1 || len(*v) > 7 || !pattern.MatchString(*v) {
		return invalid("ValidationException", "1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: Member must satisfy regular expression pattern: %s", *v, member, pattern)
	}
	return nil
}

// sendCommand: "you can specify up to 50 IDs"; DocumentVersion "$DEFAULT, $LATEST, or a
// specific version number"; "You can only supply values to parameters defined in the SSM
// document" (InvalidParameters); "If the user input doesn't match the allowed pattern,
// the execution fails to start"; allowedValues is "An array of values allowed for the
// parameter" ("Data elements and parameters"); CloudWatchLogGroupName 1 to 512 characters;
// MaxConcurrency and MaxErrors as rateControl says.
func (w *World) sendCommand(params any) (any, error) {
	in := params.(*ssm.SendCommandInput)
	if len(in.InstanceIds) > 50 {
		return nil, invalid("ValidationException", "1 validation error detected: Value at 'instanceIds' failed to satisfy constraint: Member must have length less than or equal to 50")
	}
	if err := rateControl("maxConcurrency", in.MaxConcurrency, maxConcurrencyPattern); err != nil {
		return nil, err
	}
	if err := rateControl("maxErrors", in.MaxErrors, maxErrorsPattern); err != nil {
		return nil, err
	}
	if len(in.InstanceIds) == 0 && len(in.Targets) == 0 {
		return nil, invalid("ValidationException", "InstanceIds or Targets is required")
	}
	if c := in.CloudWatchOutputConfig; c != nil && c.CloudWatchLogGroupName != nil && (len(*c.CloudWatchLogGroupName) == 0 || len(*c.CloudWatchLogGroupName) > 512) {
		return nil, invalid("ValidationException", "CloudWatchLogGroupName must be 1 to 512 characters")
	}
	d, n, err := w.version(in.DocumentName, in.DocumentVersion)
	if err != nil {
		return nil, err
	}
	doc, err := parseDocument(d.Versions[n-1])
	if err != nil {
		return nil, err
	}
	if err := checkParameters(doc, in.Parameters); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, id := range in.InstanceIds {
		if seen[id] {
			return nil, &ssmtypes.DuplicateInstanceId{Message: aws.String("Instance " + id + " is duplicated")}
		}
		seen[id] = true
		if inst, ok := w.Instances[id]; !ok || inst.State != "running" {
			return nil, &ssmtypes.InvalidInstanceId{Message: aws.String("Instances [" + id + "] not in a valid state for account " + w.account())}
		}
	}
	requested := aws.ToString(in.DocumentVersion)
	if requested == "" {
		requested = "$DEFAULT"
	}
	c := &Command{ID: w.newCommandID(), DocumentName: aws.ToString(in.DocumentName), DocumentVersion: strconv.Itoa(n), RequestedVersion: requested,
		InstanceIDs: slices.Clone(in.InstanceIds), Parameters: in.Parameters, Requested: time.Now(), Invocations: map[string]*Invocation{},
		MaxConcurrency: aws.ToString(in.MaxConcurrency), MaxErrors: aws.ToString(in.MaxErrors)}
	if cw := in.CloudWatchOutputConfig; cw != nil && cw.CloudWatchOutputEnabled {
		c.LogGroup = aws.ToString(cw.CloudWatchLogGroupName)
	}
	for _, id := range in.InstanceIds {
		c.Invocations[id] = &Invocation{Status: "Pending"}
	}
	w.Commands = append(w.Commands, c)
	if w.OnCommand != nil {
		// In its own goroutine: the hook may call back into the world (SetInvocation).
		go w.OnCommand(c)
	}
	return &ssm.SendCommandOutput{Command: &ssmtypes.Command{
		CommandId: aws.String(c.ID), DocumentName: in.DocumentName, DocumentVersion: aws.String(c.DocumentVersion), InstanceIds: in.InstanceIds,
		RequestedDateTime: aws.Time(c.Requested),
	}}, nil
}

func checkParameters(doc docContent, given map[string][]string) error {
	for name, values := range given {
		p, ok := doc.Parameters[name]
		if !ok {
			return &ssmtypes.InvalidParameters{Message: aws.String("Parameter " + name + " is not defined in the document")}
		}
		if p.Type == "String" && len(values) != 1 {
			return &ssmtypes.InvalidParameters{Message: aws.String("Parameter " + name + " of type String takes one value")}
		}
		for _, v := range values {
			if p.AllowedValues != nil && !slices.Contains(p.AllowedValues, v) {
				return &ssmtypes.InvalidParameters{Message: aws.String(fmt.Sprintf("Parameter %q %q is not one of the allowed values %v", name, v, p.AllowedValues))}
			}
		}
		if p.AllowedPattern == "" {
			continue
		}
		re, err := regexp.Compile(p.AllowedPattern)
		if err != nil {
			return &ssmtypes.InvalidDocument{Message: aws.String("allowedPattern of " + name + ": " + err.Error())}
		}
		for _, v := range values {
			if !re.MatchString(v) {
				return &ssmtypes.InvalidParameters{Message: aws.String(fmt.Sprintf("Parameter %q %q failed to satisfy constraint: Member must satisfy regular expression pattern: %s", name, v, p.AllowedPattern))}
			}
		}
	}
	for name, p := range doc.Parameters {
		if _, ok := given[name]; !ok && p.Default == nil {
			return &ssmtypes.InvalidParameters{Message: aws.String("Parameter " + name + " is required")}
		}
	}
	return nil
}

// getCommandInvocation: "If the document contains more than one step, you must specify
// the name of the step for which you want to view details" ("the name of the step, not
// the name of a plugin"); an unknown step is InvalidPluginName. Output is cut to its
// first 24,000 characters.
func (w *World) getCommandInvocation(params any) (any, error) {
	in := params.(*ssm.GetCommandInvocationInput)
	for _, c := range w.Commands {
		if c.ID != aws.ToString(in.CommandId) {
			continue
		}
		inv, ok := c.Invocations[aws.ToString(in.InstanceId)]
		if !ok {
			break
		}
		steps, err := w.steps(c)
		if err != nil {
			return nil, err
		}
		plugin := aws.ToString(in.PluginName)
		if plugin == "" && len(steps) > 1 || plugin != "" && !slices.Contains(steps, plugin) {
			return nil, &ssmtypes.InvalidPluginName{Message: aws.String("The plugin name isn't valid.")}
		}
		version := c.RequestedVersion
		if version == "" {
			version = c.DocumentVersion
		}
		out := &ssm.GetCommandInvocationOutput{
			CommandId: in.CommandId, InstanceId: in.InstanceId, DocumentName: aws.String(c.DocumentName), DocumentVersion: aws.String(version),
			PluginName: in.PluginName, Status: ssmtypes.CommandInvocationStatus(inv.Status), StatusDetails: aws.String(inv.statusDetails()),
			ResponseCode: inv.ResponseCode, StandardOutputContent: aws.String(cut(inv.Stdout, 24000)),
		}
		if plugin != "" && plugin != steps[len(steps)-1] {
			// An earlier step: it finished before the last one ran.
			out.Status, out.StatusDetails, out.ResponseCode, out.StandardOutputContent = ssmtypes.CommandInvocationStatusSuccess, aws.String("Success"), 0, aws.String("")
		}
		return out, nil
	}
	return nil, &ssmtypes.InvocationDoesNotExist{Message: aws.String("The command ID and managed node ID you specified didn't match any invocations.")}
}

// listCommandInvocations answers by the API reference (ListCommandInvocations,
// CommandFilter): MaxResults 1 to 50; 1 to 5 filters; InvokedAfter and InvokedBefore take
// a timestamp ("2024-07-07T00:00:00Z ... occurring July 7 and later"); "The
// ExecutionStage filter can't be used with the ListCommandInvocations operation"; an
// instance the command has not reached yet is Pending.
func (w *World) listCommandInvocations(params any) (any, error) {
	in := params.(*ssm.ListCommandInvocationsInput)
	if in.MaxResults != nil && (*in.MaxResults < 1 || *in.MaxResults > 50) {
		return nil, invalid("ValidationException", "MaxResults must be between 1 and 50")
	}
	if in.Filters != nil && (len(in.Filters) < 1 || len(in.Filters) > 5) {
		return nil, invalid("ValidationException", "Filters must have 1 to 5 members")
	}
	match := []func(c *Command, status string) bool{}
	for _, f := range in.Filters {
		v := aws.ToString(f.Value)
		switch f.Key {
		case ssmtypes.CommandFilterKeyInvokedAfter, ssmtypes.CommandFilterKeyInvokedBefore:
			at, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return nil, &ssmtypes.InvalidFilterValue{Message: aws.String("invalid timestamp " + v)}
			}
			after := f.Key == ssmtypes.CommandFilterKeyInvokedAfter
			match = append(match, func(c *Command, _ string) bool { return !c.Requested.Before(at) == after })
		case ssmtypes.CommandFilterKeyDocumentName:
			match = append(match, func(c *Command, _ string) bool { return c.DocumentName == v })
		case ssmtypes.CommandFilterKeyStatus:
			match = append(match, func(_ *Command, status string) bool { return status == v })
		case ssmtypes.CommandFilterKeyExecutionStage:
			return nil, &ssmtypes.InvalidFilterKey{Message: aws.String("The ExecutionStage filter can't be used with ListCommandInvocations")}
		default:
			return nil, &ssmtypes.InvalidFilterKey{Message: aws.String("unknown filter key " + string(f.Key))}
		}
	}
	var all []ssmtypes.CommandInvocation
	for _, c := range w.commandsOf(in.InstanceId) {
		if in.CommandId != nil && c.ID != *in.CommandId {
			continue
		}
		for _, id := range c.InstanceIDs {
			if in.InstanceId != nil && id != *in.InstanceId {
				continue
			}
			status, details := "Pending", "Pending"
			if inv, ok := c.Invocations[id]; ok {
				status, details = inv.Status, inv.statusDetails()
			}
			ok := true
			for _, m := range match {
				ok = ok && m(c, status)
			}
			if ok {
				all = append(all, ssmtypes.CommandInvocation{CommandId: aws.String(c.ID), InstanceId: aws.String(id), DocumentName: aws.String(c.DocumentName),
					DocumentVersion: aws.String(c.DocumentVersion), RequestedDateTime: aws.Time(c.Requested),
					Status: ssmtypes.CommandInvocationStatus(status), StatusDetails: aws.String(details)})
			}
		}
	}
	start, end, next, err := page(len(all), in.NextToken, in.MaxResults)
	if err != nil {
		return nil, err
	}
	return &ssm.ListCommandInvocationsOutput{CommandInvocations: all[start:end], NextToken: next}, nil
}

func (inv *Invocation) statusDetails() string {
	if inv.StatusDetails != "" {
		return inv.StatusDetails
	}
	return inv.Status
}

// steps names the steps of the document version a command ran.
func (w *World) steps(c *Command) ([]string, error) {
	d, ok := w.Documents[c.DocumentName]
	if !ok {
		return nil, fmt.Errorf("fakeaws: command %s names document %q, which the world does not hold (AddDocument it)", c.ID, c.DocumentName)
	}
	n, err := strconv.Atoi(c.DocumentVersion)
	if err != nil || n < 1 || n > len(d.Versions) {
		n = d.Default
	}
	doc, err := parseDocument(d.Versions[n-1])
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range doc.MainSteps {
		names = append(names, s.Name)
	}
	return names, nil
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

// SetInvocation records how a command ended on an instance (the demo's SSM runner and the
// tests call it).
func (w *World) SetInvocation(commandID, instanceID string, inv Invocation) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.Commands {
		if c.ID == commandID {
			if _, ok := c.Invocations[instanceID]; !ok {
				return fmt.Errorf("command %s did not target %s", commandID, instanceID)
			}
			c.Invocations[instanceID] = &inv
			return nil
		}
	}
	return fmt.Errorf("no command %s", commandID)
}

// commandIndex is the world's commands by instance, so that reading one instance's runs
// does not read every command of a burst (2,000 at 100,000 launches). Tests append to
// Commands and reset it: the index takes in what was appended, and starts over when the
// slice was replaced or cut.
type commandIndex struct {
	base       **Command // &Commands[0] when indexed
	n          int
	byInstance map[string][]int
}

// commandsOf are the commands that name instance id, in order; all of them when id is nil.
func (w *World) commandsOf(id *string) []*Command {
	if id == nil {
		return w.Commands
	}
	x := &w.commands
	if x.n > len(w.Commands) || x.n > 0 && x.base != &w.Commands[0] {
		*x = commandIndex{}
	}
	if x.byInstance == nil {
		x.byInstance = map[string][]int{}
	}
	for ; x.n < len(w.Commands); x.n++ {
		for _, i := range w.Commands[x.n].InstanceIDs {
			if l := x.byInstance[i]; len(l) == 0 || l[len(l)-1] != x.n {
				x.byInstance[i] = append(l, x.n)
			}
		}
	}
	if len(w.Commands) > 0 {
		x.base = &w.Commands[0]
	}
	out := make([]*Command, len(x.byInstance[*id]))
	for k, i := range x.byInstance[*id] {
		out[k] = w.Commands[i]
	}
	return out
}
