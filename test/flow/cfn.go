package flow

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// pseudo are the values the demo gives CloudFormation's pseudo parameters.
var pseudo = map[string]string{
	"AWS::AccountId": "111122223333", "AWS::Region": "us-east-1", "AWS::URLSuffix": "amazonaws.com", "AWS::Partition": "aws",
}

// resolve evaluates the few intrinsics the document's content uses (Fn::Join, Fn::Sub
// with pseudo parameters, Ref to a pseudo parameter) to a string.
func resolve(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case map[string]any:
		if parts, ok := v["Fn::Join"].([]any); ok && len(parts) == 2 {
			sep, _ := parts[0].(string)
			items, _ := parts[1].([]any)
			out := make([]string, len(items))
			for i, it := range items {
				s, err := resolve(it)
				if err != nil {
					return "", err
				}
				out[i] = s
			}
			return strings.Join(out, sep), nil
		}
		if s, ok := v["Fn::Sub"].(string); ok {
			for k, val := range pseudo {
				s = strings.ReplaceAll(s, "${"+k+"}", val)
			}
			return s, nil
		}
		if ref, ok := v["Ref"].(string); ok {
			if val, ok := pseudo[ref]; ok {
				return val, nil
			}
		}
	}
	return "", fmt.Errorf("cannot resolve %v", v)
}

// template is the part of the synthesized stack the demo reads.
type template struct {
	Resources map[string]struct {
		Type       string          `json:"Type"`
		Properties json.RawMessage `json:"Properties"`
	} `json:"Resources"`
}

// ssmDocument is the document as the template holds it.
type ssmDocument struct {
	Name    string `json:"Name"`
	Content struct {
		MainSteps []struct {
			Action string         `json:"action"`
			Name   string         `json:"name"`
			Inputs map[string]any `json:"inputs"`
		} `json:"mainSteps"`
	} `json:"Content"`
}

// readDocument loads the storecrypt document from cdk.out.
func readDocument(cdkOut string) (ssmDocument, error) {
	b, err := os.ReadFile(filepath.Join(cdkOut, "StoreCrypt.template.json"))
	if err != nil {
		return ssmDocument{}, fmt.Errorf("reading the synthesized template (run `make synth`): %w", err)
	}
	var t template
	if err := json.Unmarshal(b, &t); err != nil {
		return ssmDocument{}, err
	}
	for _, r := range t.Resources {
		if r.Type == "AWS::SSM::Document" {
			var d ssmDocument
			return d, json.Unmarshal(r.Properties, &d)
		}
	}
	return ssmDocument{}, fmt.Errorf("no SSM document in %s", cdkOut)
}

// fileAsset is one file asset of the stack and where `cdk deploy` would upload it.
type fileAsset struct {
	Path, Bucket, Key string
}

// readAssets lists the stack's file assets from cdk.out's asset manifest.
func readAssets(cdkOut string) ([]fileAsset, error) {
	b, err := os.ReadFile(filepath.Join(cdkOut, "StoreCrypt.assets.json"))
	if err != nil {
		return nil, err
	}
	var m struct {
		Files map[string]struct {
			Source struct {
				Path      string `json:"path"`
				Packaging string `json:"packaging"`
			} `json:"source"`
			Destinations map[string]struct {
				BucketName string `json:"bucketName"`
				ObjectKey  string `json:"objectKey"`
			} `json:"destinations"`
		} `json:"files"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	var out []fileAsset
	for _, f := range m.Files {
		if f.Source.Packaging != "file" || !strings.HasPrefix(f.Source.Path, "asset.") {
			continue // the functions' code and the template: not the instance's business
		}
		for _, d := range f.Destinations {
			bucket := d.BucketName
			for k, v := range pseudo {
				bucket = strings.ReplaceAll(bucket, "${"+k+"}", v)
			}
			out = append(out, fileAsset{Path: filepath.Join(cdkOut, f.Source.Path), Bucket: bucket, Key: d.ObjectKey})
		}
	}
	return out, nil
}
