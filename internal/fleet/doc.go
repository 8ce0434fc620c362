// Package fleet is the control plane's domain: which instances a storecrypt stack is
// responsible for (scope), what a run of the storecrypt document on one of them proves
// (an invocation, judged), and what the ledger records for it. The launch and result
// functions and the operator CLI are adapters over it for SQS, EventBridge and cobra;
// each rule here is written once, so that they cannot disagree.
//
// It imports no Lambda, queue or CLI package: only the AWS clients it reads through (as
// narrow interfaces), contract, document and ledger.
package fleet
