package opcli

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/config"
)

// defaultOutput is the output format, and where it came from, when --output is not given,
// in the aws CLI's order: AWS_DEFAULT_OUTPUT, then the profile's output in the shared
// config file, then table (storecrypt's default; the aws CLI's is json). The profile and
// the file are the ones the SDK loads the credentials from (--profile, else AWS_PROFILE
// or AWS_DEFAULT_PROFILE, else default; AWS_CONFIG_FILE, else ~/.aws/config).
func defaultOutput(profile string) (format, from string, err error) {
	if v := os.Getenv("AWS_DEFAULT_OUTPUT"); v != "" {
		return v, "AWS_DEFAULT_OUTPUT", nil
	}
	envCfg, err := config.NewEnvConfig()
	if err != nil {
		return "", "", fmt.Errorf("reading the AWS environment: %w", err)
	}
	if profile == "" {
		profile = envCfg.SharedConfigProfile
	}
	if profile == "" {
		profile = "default"
	}
	file := envCfg.SharedConfigFile
	if file == "" {
		file = config.DefaultSharedConfigFilename()
	}
	v, err := profileOutput(file, profile)
	if err != nil || v == "" {
		return "table", "", err
	}
	return v, fmt.Sprintf("output in profile %s of %s", profile, file), nil
}

// profileOutput reads the output setting of profile in an aws CLI config file; "" when
// the file, the profile or the setting is missing (the credentials' loading reports a
// missing profile in its own words). The SDK's config package parses this file but
// exposes no output: it has no field for a setting only the aws CLI reads.
func profileOutput(file, profile string) (string, error) {
	f, err := os.Open(file)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading the output format from %s: %w", file, err)
	}
	defer f.Close()
	// The aws CLI names a profile's section [profile NAME], the default one [default]
	// (or [profile default]).
	sections := []string{"profile " + profile}
	if profile == "default" {
		sections = append(sections, "default")
	}
	in, v := false, ""
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := s.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "["):
			name := strings.TrimSpace(strings.Trim(trimmed, "[]"))
			in = false
			for _, want := range sections {
				in = in || strings.Join(strings.Fields(name), " ") == want
			}
		case in && line == trimmed: // an indented line is a nested setting (s3 = ...)
			if k, val, ok := strings.Cut(trimmed, "="); ok && strings.TrimSpace(k) == "output" {
				v = strings.TrimSpace(val)
			}
		}
	}
	if err := s.Err(); err != nil {
		return "", fmt.Errorf("reading the output format from %s: %w", file, err)
	}
	return v, nil
}
