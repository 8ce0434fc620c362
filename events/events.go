// Package events holds real-shaped samples of every event the functions accept or must
// reject. Tests and the demo read them through FS; `sam local invoke -e events/<file>`
// can use them as they are (sqs-running.json for the launch function).
package events

import "embed"

// FS holds the samples.
//
//go:embed *.json
var FS embed.FS

// Read returns one sample.
func Read(name string) ([]byte, error) { return FS.ReadFile(name) }
