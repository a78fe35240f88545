package rest

import (
	"bytes"
	"encoding/json"
	"mime"
	"regexp"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

var (
	unmarshalOpts = protojson.UnmarshalOptions{DiscardUnknown: false}
	marshalOpts   = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}

	fieldInError = []*regexp.Regexp{
		regexp.MustCompile(`(?:unknown|duplicate) field "([^"]+)"`),
		regexp.MustCompile(`invalid value for [a-z0-9]+ field ([A-Za-z0-9_]+)`),
	}
)

// decodeBody decodes a JSON request body into msg strictly: unknown fields, duplicate fields and
// wrong types are errors naming the field.
func decodeBody(body []byte, msg proto.Message) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return &registry.FieldError{Field: "body", Reason: "a JSON object is required"}
	}
	if err := unmarshalOpts.Unmarshal(body, msg); err != nil {
		return &registry.FieldError{Field: fieldOf(err.Error(), msg), Reason: strings.TrimPrefix(err.Error(), "proto: ")}
	}
	return nil
}

// fieldOf extracts the proto field name from a protojson error message, "body" when it has none.
func fieldOf(msg string, m proto.Message) string {
	for _, re := range fieldInError {
		if sub := re.FindStringSubmatch(msg); sub != nil {
			fields := m.ProtoReflect().Descriptor().Fields()
			if fd := fields.ByJSONName(sub[1]); fd != nil {
				return string(fd.Name())
			}
			return sub[1]
		}
	}
	return "body"
}

// decodePatch decodes a PATCH body into msg and returns the mask of the fields it names, so
// fields left out keep their stored values and fields sent as null are cleared.
func decodePatch(body []byte, msg proto.Message) (*fieldmaskpb.FieldMask, error) {
	if err := decodeBody(body, msg); err != nil {
		return nil, err
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(body, &keys); err != nil {
		return nil, &registry.FieldError{Field: "body", Reason: "must be a JSON object: " + err.Error()}
	}
	fields := msg.ProtoReflect().Descriptor().Fields()
	mask := &fieldmaskpb.FieldMask{}
	for k := range keys {
		fd := fields.ByName(protoreflect.Name(k))
		if fd == nil {
			fd = fields.ByJSONName(k)
		}
		if fd == nil { // decodeBody refused unknown fields already
			return nil, &registry.FieldError{Field: k, Reason: "unknown field"}
		}
		mask.Paths = append(mask.Paths, string(fd.Name()))
	}
	if len(mask.Paths) == 0 {
		return nil, &registry.FieldError{Field: "body", Reason: "names no field to change"}
	}
	return mask, nil
}

// queryInt parses an optional integer query parameter.
func queryInt(name, v string) (int32, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil || n < 0 {
		return 0, &registry.FieldError{Field: name, Reason: "must be a non-negative integer, got " + strconv.Quote(v)}
	}
	return int32(n), nil
}

// queryBool parses an optional boolean query parameter.
func queryBool(name, v string) (bool, error) {
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, &registry.FieldError{Field: name, Reason: "must be true or false, got " + strconv.Quote(v)}
	}
	return b, nil
}

// hasMediaType reports whether a Content-Type header names want, parameters aside.
func hasMediaType(contentType, want string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == want
}
