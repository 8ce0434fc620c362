package flow

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/test/cfn"
)

// where the demo deploys: the account and region the emulators report.
var where = cfn.Env{Partition: "aws", Region: "us-east-1", Account: "111122223333"}

// deployed is what the demo takes from the synthesized stack: the document as
// CloudFormation would create it, and each function's environment.
type deployed struct {
	documentName string
	document     map[string]any // content, intrinsics resolved
	// revocation holds the revoke, resume and shred documents' content by name.
	revocation map[string]map[string]any
	launchEnv  map[string]string
	resultEnv  map[string]string
	exports    map[string]string // output key -> its export's name: how the CLI finds the stack
}

// readStack reads cdk.out's template, resolved for where.
func readStack(cdkOut string) (deployed, error) {
	var d deployed
	tpl, err := cfn.Load(filepath.Join(cdkOut, "StoreCrypt.template.json"))
	if err != nil {
		return d, fmt.Errorf("%w (run `make synth`)", err)
	}
	r := tpl.In(where)
	docs := map[string]map[string]any{}
	for _, id := range r.Of("AWS::SSM::Document") {
		name, err := r.String(r.Resources[id].Properties["Name"])
		if err != nil {
			return d, err
		}
		content, err := r.Property(id, "Content")
		if err != nil {
			return d, err
		}
		docs[name], _ = content.(map[string]any)
	}
	for _, id := range r.Of("AWS::Lambda::Function") {
		vars, err := r.Eval(r.Resources[id].Properties["Environment"].(map[string]any)["Variables"])
		if err != nil {
			return d, err
		}
		env := map[string]string{}
		for k, v := range vars.(map[string]any) {
			env[k] = fmt.Sprint(v)
		}
		switch r.Resources[id].Properties["Description"] {
		case "storecrypt launch function":
			d.launchEnv = env
		case "storecrypt result function":
			d.resultEnv = env
		}
	}
	if d.launchEnv == nil || d.resultEnv == nil {
		return d, fmt.Errorf("the template lacks a function")
	}
	// The functions name the documents: the launch function the apply document, the
	// result function each revocation document.
	d.documentName = d.launchEnv[contract.EnvDocumentName]
	d.document = docs[d.documentName]
	d.revocation = map[string]map[string]any{}
	for _, rd := range contract.RevocationDocuments {
		name := d.resultEnv[rd.EnvName]
		if docs[name] == nil {
			return d, fmt.Errorf("the template has no document %q for the result function's %s", name, rd.EnvName)
		}
		d.revocation[name] = docs[name]
	}
	if d.document == nil || len(docs) != 1+len(d.revocation) {
		return d, fmt.Errorf("got SSM documents %v in the template, want the launch function's %s and the result function's revoke, resume and shred", slices.Sorted(maps.Keys(docs)), d.documentName)
	}
	d.exports = map[string]string{}
	for key, o := range r.Outputs {
		if o.Export == nil {
			continue
		}
		if d.exports[key], err = r.String(o.Export.Name); err != nil {
			return d, fmt.Errorf("output %s's export: %w", key, err)
		}
	}
	return d, nil
}

// content is the document as SSM would hold it in the demo's account, whose key is the
// emulator's: the KmsKeyId default names that key (the functions' digest leaves the
// default aside and checks it against their own key).
func (d deployed) content(keyARN string) (string, error) {
	params, _ := d.document["parameters"].(map[string]any)
	p, _ := params["KmsKeyId"].(map[string]any)
	if p == nil {
		return "", fmt.Errorf("the document has no KmsKeyId parameter")
	}
	p["default"] = keyARN
	b, err := json.Marshal(d.document)
	return string(b), err
}

// env is a function's environment in the demo's account: its key is the emulator's.
func env(vars map[string]string, keyARN string, more map[string]string) func(string) string {
	out := map[string]string{}
	for k, v := range vars {
		out[k] = v
	}
	out[contract.EnvKMSKeyARN] = keyARN
	for k, v := range more {
		out[k] = v
	}
	return func(k string) string { return out[k] }
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
			bucket := strings.NewReplacer("${AWS::AccountId}", where.Account, "${AWS::Region}", where.Region, "${AWS::Partition}", where.Partition).Replace(d.BucketName)
			out = append(out, fileAsset{Path: filepath.Join(cdkOut, f.Source.Path), Bucket: bucket, Key: d.ObjectKey})
		}
	}
	return out, nil
}
