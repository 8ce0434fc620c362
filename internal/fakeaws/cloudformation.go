package fakeaws

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/smithy-go"
)

// The stack's outputs, which the operator CLI reads for the stack's configuration.
func init() {
	register("CloudFormation", map[string]handler{
		"DescribeStacks": (*World).describeStacks,
		"ListExports":    (*World).listExports,
	})
}

// Stack is a deployed stack: its outputs by key, and the names of the outputs it exports
// by output key.
type Stack struct {
	Outputs map[string]string
	Exports map[string]string
	id      string
}

// AddStack records a deployed stack and its outputs.
func (w *World) AddStack(name string, outputs map[string]string) {
	w.With(func() {
		if w.Stacks == nil {
			w.Stacks = map[string]*Stack{}
		}
		w.Stacks[name] = &Stack{Outputs: outputs, id: w.stackID(name, len(w.Stacks))}
	})
}

// Export has stack export its output key under name. "For each AWS account, Export names
// must be unique within a Region" (user guide, Get exported outputs from a deployed
// CloudFormation stack): a second stack's export of a taken name fails, and so here.
func (w *World) Export(stack, key, name string) error {
	var err error
	w.With(func() {
		for other, st := range w.Stacks {
			for _, n := range st.Exports {
				if n == name && other != stack {
					err = fmt.Errorf("export %s is already exported by stack %s", name, other)
					return
				}
			}
		}
		st, ok := w.Stacks[stack]
		switch {
		case !ok:
			err = fmt.Errorf("no stack %s", stack)
		case st.Outputs[key] == "":
			err = fmt.Errorf("stack %s has no output %s to export", stack, key)
		default:
			if st.Exports == nil {
				st.Exports = map[string]string{}
			}
			st.Exports[key] = name
		}
	})
	return err
}

// stackID is a stack's ARN: CloudFormation ends it with an id of its own choosing.
func (w *World) stackID(name string, n int) string {
	return fmt.Sprintf("arn:%s:cloudformation:%s:%s:stack/%s/%08d-0000-4000-8000-000000000000", w.partition(), w.region(), w.account(), name, n+1)
}

// exportsPage is how many exports ListExports answers with at most: "If the output
// exceeds 100 exported output values, a string that identifies the next page".
const exportsPage = 100

// listExports answers every export of the account and region, by name, a page at a time.
func (w *World) listExports(params any) (any, error) {
	in := params.(*cloudformation.ListExportsInput)
	var all []cftypes.Export
	for _, st := range w.Stacks {
		for key, name := range st.Exports {
			all = append(all, cftypes.Export{Name: aws.String(name), Value: aws.String(st.Outputs[key]), ExportingStackId: aws.String(st.id)})
		}
	}
	slices.SortFunc(all, func(a, b cftypes.Export) int { return strings.Compare(*a.Name, *b.Name) })
	start := 0
	if tok := aws.ToString(in.NextToken); tok != "" {
		n, err := strconv.Atoi(tok)
		if err != nil || n <= 0 || n >= len(all) {
			return nil, &smithy.GenericAPIError{Code: "ValidationError", Message: "Invalid NextToken"}
		}
		start = n
	}
	out := &cloudformation.ListExportsOutput{Exports: all[start:min(start+exportsPage, len(all))]}
	if start+exportsPage < len(all) {
		out.NextToken = aws.String(strconv.Itoa(start + exportsPage))
	}
	return out, nil
}

// describeStacks answers for one stack by name. A name no stack has is a ValidationError
// ("Stack with id NAME does not exist"), the error CloudFormation answers with (the API
// reference lists no error of its own for it).
func (w *World) describeStacks(params any) (any, error) {
	in := params.(*cloudformation.DescribeStacksInput)
	name := aws.ToString(in.StackName)
	st, ok := w.Stacks[name]
	if !ok {
		return nil, &smithy.GenericAPIError{Code: "ValidationError", Message: "Stack with id " + name + " does not exist"}
	}
	out := cftypes.Stack{StackName: aws.String(name), StackId: aws.String(st.id), StackStatus: cftypes.StackStatusCreateComplete}
	for k, v := range st.Outputs {
		out.Outputs = append(out.Outputs, cftypes.Output{OutputKey: aws.String(k), OutputValue: aws.String(v)})
	}
	return &cloudformation.DescribeStacksOutput{Stacks: []cftypes.Stack{out}}, nil
}
