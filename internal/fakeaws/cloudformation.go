package fakeaws

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/smithy-go"
)

// The stack's outputs, which the operator CLI reads for the stack's configuration.
func init() {
	register("CloudFormation", map[string]handler{
		"DescribeStacks": (*World).describeStacks,
	})
}

// Stack is a deployed stack: its outputs by key.
type Stack struct {
	Outputs map[string]string
}

// AddStack records a deployed stack and its outputs.
func (w *World) AddStack(name string, outputs map[string]string) {
	w.With(func() {
		if w.Stacks == nil {
			w.Stacks = map[string]*Stack{}
		}
		w.Stacks[name] = &Stack{Outputs: outputs}
	})
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
	out := cftypes.Stack{StackName: aws.String(name), StackStatus: cftypes.StackStatusCreateComplete}
	for k, v := range st.Outputs {
		out.Outputs = append(out.Outputs, cftypes.Output{OutputKey: aws.String(k), OutputValue: aws.String(v)})
	}
	return &cloudformation.DescribeStacksOutput{Stacks: []cftypes.Stack{out}}, nil
}
