package zones

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ErrInvalid is matched, with errors.Is, by every error Parse and Load
// return: the zone file could not be read, is not YAML, does not have the
// expected keys, or holds values that are not valid.
var ErrInvalid = errors.New("invalid zone file")

// invalidError is one problem with a zone file. Its text is exactly what the
// operator needs (key path, value, what would be valid), with no prefix, so
// that a list of them joined by errors.Join reads one problem per line.
type invalidError struct {
	msg string
	err error // underlying error, if any
}

func (e *invalidError) Error() string        { return e.msg }
func (e *invalidError) Unwrap() error        { return e.err }
func (e *invalidError) Is(target error) bool { return target == ErrInvalid }

func invalidf(format string, args ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, args...)}
}

// Load reads and parses the zone file at path. Each problem is reported on a
// line of its own, prefixed with path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return nil, prefixErrors(path, err)
	}
	return cfg, nil
}

// prefixErrors puts prefix in front of each of the joined errors in err.
func prefixErrors(prefix string, err error) error {
	var list []error
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		list = joined.Unwrap()
	} else {
		list = []error{err}
	}
	out := make([]error, len(list))
	for i, e := range list {
		out[i] = fmt.Errorf("%s: %w", prefix, e)
	}
	return errors.Join(out...)
}

// Parse parses a zone file: YAML with one document, every key known. It sets
// the defaults and validates the result. On error it returns every problem
// found, joined with errors.Join, one per line: first the YAML syntax or
// structure problems and, once there are none, every invalid value.
func Parse(data []byte) (*Config, error) {
	root, err := parseDocument(data)
	if err != nil {
		return nil, err
	}
	if errs := checkStructure(root); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	var fc fileConfig
	if err := decodeStrict(data, &fc); err != nil {
		return nil, err
	}
	fc.setDefaults()
	if errs := fc.validate(); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return fc.config(), nil
}

// parseDocument returns the root node of the only YAML document in data.
func parseDocument(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errEmpty()
		}
		return nil, syntaxError(err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		return nil, invalidf("line %d: a second YAML document is not valid; want one document per zone file", next.Line)
	case !errors.Is(err, io.EOF):
		return nil, syntaxError(err)
	}
	if len(doc.Content) != 1 || doc.Content[0].ShortTag() == "!!null" {
		return nil, errEmpty()
	}
	return doc.Content[0], nil
}

func errEmpty() error {
	return invalidf("the zone file is empty; want a mapping with at least zone, regions and clusters")
}

func syntaxError(err error) error {
	return &invalidError{msg: "YAML syntax: " + strings.TrimPrefix(err.Error(), "yaml: "), err: err}
}

// decodeStrict decodes data into fc with unknown keys rejected. It runs after
// checkStructure, which reports the same problems better, so an error here
// means the two disagree; its message is passed on as is.
func decodeStrict(data []byte, fc *fileConfig) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(fc)
	if err == nil {
		return nil
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return syntaxError(err)
	}
	errs := make([]error, len(te.Errors))
	for i, msg := range te.Errors {
		errs[i] = &invalidError{msg: msg, err: err}
	}
	return errors.Join(errs...)
}
