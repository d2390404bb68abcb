package tollgate

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// FieldError is a JSON input problem at one field. Field is the path from the
// document root in jq style ("actor.type", "resource.attributes",
// "[2].action" for the third element of an array); it is empty for a problem
// with the document as a whole.
type FieldError struct {
	Field string
	Msg   string
}

// Error returns "field: msg", or msg alone for the document root.
func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

// LineError places an error on a line (1-based) of an NDJSON input.
type LineError struct {
	Line int
	Err  error
}

// Error returns "line N: err".
func (e *LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }

// Unwrap returns the error on the line.
func (e *LineError) Unwrap() error { return e.Err }

// ParseDecideRequestJSON decodes one request in the JSON form of
// policy-pack.md §2. Field names may be the proto names (on_behalf_of) or
// their lowerCamel JSON names; enum values may be short ("HUMAN", "EXECUTE"),
// prefixed ("ACTOR_TYPE_HUMAN") or "" (unspecified). Unknown or repeated
// fields, wrongly typed values and unknown enum values fail with a
// *[FieldError] naming the field.
//
// An "ai" object whose fields all hold zero values, as in the spec's example
// of a human's request, is read as no "ai" at all: the server accepts "ai"
// only from AI agents.
func ParseDecideRequestJSON(data []byte) (*tollgatev1.DecideRequest, error) {
	req := &tollgatev1.DecideRequest{}
	if err := ParseJSON(data, req); err != nil {
		return nil, err
	}
	dropEmptyAI(req)
	return req, nil
}

// dropEmptyAI clears an all-zero ai, which JSON writers use to mean "none".
func dropEmptyAI(req *tollgatev1.DecideRequest) {
	if req.Ai != nil && proto.Equal(req.Ai, &tollgatev1.AI{}) {
		req.Ai = nil
	}
}

// ParseDecideRequestsJSON decodes a JSON array of requests, each as
// [ParseDecideRequestJSON] reads one; field paths in errors start with the
// element index ("[2].actor.type").
func ParseDecideRequestsJSON(data []byte) ([]*tollgatev1.DecideRequest, error) {
	root, err := decodeJSON(data)
	if err != nil {
		return nil, err
	}
	elems, ok := root.([]any)
	if !ok {
		return nil, &FieldError{Msg: "want a JSON array of requests, got " + jsonType(root)}
	}
	reqs := make([]*tollgatev1.DecideRequest, len(elems))
	for i, elem := range elems {
		reqs[i] = &tollgatev1.DecideRequest{}
		if err := fromTree(elem, fmt.Sprintf("[%d]", i), reqs[i]); err != nil {
			return nil, err
		}
		dropEmptyAI(reqs[i])
	}
	return reqs, nil
}

// ParseChangeEventsNDJSON reads change events, one JSON object per line
// ({event_id, kind, key, version, op, record}), with op "UPSERT" or "DELETE"
// (or the prefixed names). Blank lines are skipped. The first bad line stops
// the read with a *[LineError] wrapping the *[FieldError]. Lines may be of
// any length.
func ParseChangeEventsNDJSON(r io.Reader) ([]*tollgatev1.ChangeEvent, error) {
	br := bufio.NewReader(r)
	var events []*tollgatev1.ChangeEvent
	for line := 1; ; line++ {
		text, readErr := br.ReadBytes('\n')
		if readErr != nil && readErr != io.EOF {
			return nil, fmt.Errorf("read line %d: %w", line, readErr)
		}
		if len(bytes.TrimSpace(text)) > 0 {
			ev := &tollgatev1.ChangeEvent{}
			if err := ParseJSON(text, ev); err != nil {
				return nil, &LineError{Line: line, Err: err}
			}
			events = append(events, ev)
		}
		if readErr == io.EOF {
			return events, nil
		}
	}
}

// ParseJSON decodes data into m with the rules of [ParseDecideRequestJSON].
// It works for any message of the Tollgate API.
func ParseJSON(data []byte, m proto.Message) error {
	root, err := decodeJSON(data)
	if err != nil {
		return err
	}
	return fromTree(root, "", m)
}

// FormatDecideResponseJSON prints a decision as indented JSON with proto
// field names and short enum names ("effect": "ALLOW"). Unset fields are
// printed with their zero values so the shape is always the same.
func FormatDecideResponseJSON(resp *tollgatev1.DecideResponse) ([]byte, error) {
	v, err := decisionTree(resp)
	if err != nil {
		return nil, err
	}
	return indent(v)
}

// decisionTree is a decision's JSON tree without an empty receipt_json: a receipt is printed only
// when one was asked for, so an ordinary answer reads as it did before receipts existed.
func decisionTree(resp *tollgatev1.DecideResponse) (any, error) {
	v, err := toTree(resp)
	if err != nil {
		return nil, err
	}
	if obj, ok := v.(*object); ok && resp.GetReceiptJson() == "" {
		kept := obj.members[:0]
		for _, m := range obj.members {
			if m.key != "receipt_json" {
				kept = append(kept, m)
			}
		}
		obj.members = kept
	}
	return v, nil
}

// FormatDecideResponsesJSON prints decisions as an indented JSON array, each
// as [FormatDecideResponseJSON] prints one.
func FormatDecideResponsesJSON(resps []*tollgatev1.DecideResponse) ([]byte, error) {
	elems := make([]any, len(resps))
	for i, resp := range resps {
		v, err := decisionTree(resp)
		if err != nil {
			return nil, err
		}
		elems[i] = v
	}
	return indent(elems)
}

// FormatJSON prints any message of the Tollgate API as [FormatDecideResponseJSON]
// prints a decision. 64-bit integers are JSON strings, as protojson prints
// them.
func FormatJSON(m proto.Message) ([]byte, error) {
	v, err := toTree(m)
	if err != nil {
		return nil, err
	}
	return indent(v)
}

// FormatJSONLine prints any message of the Tollgate API as [FormatJSON] does
// but compact, on one line without a trailing newline: one line of NDJSON.
// [ParseJSON] reads it back into the same message.
func FormatJSONLine(m proto.Message) ([]byte, error) {
	v, err := toTree(m)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := encodeJSON(&buf, v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// FormatDecisionRecordJSON prints a decision record for a reader: indented,
// with short enum names ("effect": "ALLOW", "kind": "DECISION"), and with
// facts_json replaced, in place, by a "facts" member holding that JSON
// parsed rather than as an escaped string ("facts": null when the record has
// none). If facts_json is not valid JSON it is kept as it is. The output is
// for reading; use [FormatJSONLine] or [FormatJSON] for a form that
// [ParseJSON] reads back into a record.
func FormatDecisionRecordJSON(rec *tollgatev1.DecisionRecord) ([]byte, error) {
	v, err := toTree(rec)
	if err != nil {
		return nil, err
	}
	if obj, ok := v.(*object); ok {
		for i := range obj.members {
			m := &obj.members[i]
			if m.key != "facts_json" {
				continue
			}
			if rec.GetFactsJson() == "" {
				*m = member{key: "facts", val: nil}
			} else if facts, err := decodeJSON([]byte(rec.GetFactsJson())); err == nil {
				*m = member{key: "facts", val: facts}
			}
		}
	}
	return indent(v)
}

// fromTree checks and normalizes a decoded JSON value against m's
// descriptor, then lets protojson build m from it.
func fromTree(v any, path string, m proto.Message) error {
	if _, ok := v.(*object); !ok {
		return &FieldError{Field: path, Msg: "want a JSON object, got " + jsonType(v)}
	}
	if err := walkMessage(m.ProtoReflect().Descriptor(), v, path, toProto); err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := encodeJSON(&buf, v); err != nil {
		return err
	}
	if err := protojson.Unmarshal(buf.Bytes(), m); err != nil {
		// The walk catches what a caller can get wrong; this is a backstop.
		return &FieldError{Field: path, Msg: err.Error()}
	}
	return nil
}

// toTree renders m with protojson and shortens its enum names.
func toTree(m proto.Message) (any, error) {
	b, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", m.ProtoReflect().Descriptor().Name(), err)
	}
	v, err := decodeJSON(b)
	if err != nil {
		return nil, err
	}
	if err := walkMessage(m.ProtoReflect().Descriptor(), v, "", toShort); err != nil {
		return nil, err
	}
	return v, nil
}

func indent(v any) ([]byte, error) {
	var compact, out bytes.Buffer
	if err := encodeJSON(&compact, v); err != nil {
		return nil, err
	}
	if err := json.Indent(&out, compact.Bytes(), "", "  "); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// The JSON tree: *object (members in document order), []any, json.Number,
// string, bool and nil. Keeping order and number text lets a printed
// response keep protojson's field order and a parsed request keep its exact
// numbers.
type object struct {
	members []member
}

type member struct {
	key string
	val any
}

// decodeJSON decodes exactly one JSON value. A syntax error or data after the
// value is placed at the line and column of its first offending character.
func decodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeValue(dec, "")
	if err == nil {
		end := dec.InputOffset()
		if rest := bytes.TrimLeft(data[end:], jsonSpace); len(rest) > 0 {
			at := int64(len(data) - len(rest))
			return nil, &FieldError{Msg: "invalid JSON at " + position(data, at) + ": unexpected data after the JSON value"}
		}
		return v, nil
	}
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &syn):
		return nil, syntaxError(data, syn)
	case errors.Is(err, io.EOF) && len(bytes.TrimSpace(data)) == 0:
		return nil, &FieldError{Msg: "empty input, want a JSON value"}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return nil, &FieldError{Msg: "invalid JSON: unexpected end of input"}
	case errors.As(err, new(*FieldError)):
		return nil, err
	default:
		return nil, &FieldError{Msg: "invalid JSON: " + err.Error()}
	}
}

// jsonSpace is the whitespace JSON allows between tokens (RFC 8259 §2).
const jsonSpace = " \t\r\n"

// syntaxError places a syntax error the decoder found. The decoder's own
// offsets count only the bytes of some of its tokens, so they are off by the
// length of whatever came before; a fresh scan of the whole input reports the
// offset of the offending byte.
func syntaxError(data []byte, streamErr *json.SyntaxError) *FieldError {
	var raw json.RawMessage
	var syn *json.SyntaxError
	if err := json.Unmarshal(data, &raw); errors.As(err, &syn) && syn.Offset > 0 {
		// Offset counts the bytes read including the offending one.
		return &FieldError{Msg: fmt.Sprintf("invalid JSON at %s: %v", position(data, syn.Offset-1), syn)}
	}
	return &FieldError{Msg: fmt.Sprintf("invalid JSON: %v", streamErr)}
}

func decodeValue(dec *json.Decoder, path string) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		obj := &object{}
		seen := make(map[string]bool)
		for dec.More() {
			keyTok, err := dec.Token()
			if err != nil {
				return nil, err
			}
			key := keyTok.(string) // the decoder guarantees a string key here
			p := joinPath(path, key)
			if seen[key] {
				return nil, &FieldError{Field: p, Msg: "duplicate field"}
			}
			seen[key] = true
			val, err := decodeValue(dec, p)
			if err != nil {
				return nil, err
			}
			obj.members = append(obj.members, member{key: key, val: val})
		}
		if _, err := dec.Token(); err != nil {
			return nil, err
		}
		return obj, nil
	case json.Delim('['):
		arr := []any{}
		for i := 0; dec.More(); i++ {
			val, err := decodeValue(dec, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			arr = append(arr, val)
		}
		if _, err := dec.Token(); err != nil {
			return nil, err
		}
		return arr, nil
	}
	return tok, nil
}

// position turns the byte offset of a character into "line L, column C" (or
// "column C" for a one-line document, such as an NDJSON line). Columns count
// characters, not bytes, from 1.
func position(data []byte, offset int64) string {
	offset = min(max(offset, 0), int64(len(data)))
	before := data[:offset]
	lineStart := bytes.LastIndexByte(before, '\n') + 1
	col := utf8.RuneCount(before[lineStart:]) + 1
	if !bytes.Contains(bytes.TrimRight(data, "\r\n"), []byte("\n")) {
		return fmt.Sprintf("column %d", col)
	}
	return fmt.Sprintf("line %d, column %d", bytes.Count(before, []byte("\n"))+1, col)
}

func encodeJSON(buf *bytes.Buffer, v any) error {
	switch x := v.(type) {
	case nil:
		buf.WriteString("null")
	case bool:
		buf.WriteString(strconv.FormatBool(x))
	case json.Number:
		buf.WriteString(x.String())
	case string:
		enc := json.NewEncoder(buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(x); err != nil {
			return err
		}
		buf.Truncate(buf.Len() - 1) // Encode appends a newline
	case []any:
		buf.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := encodeJSON(buf, e); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case *object:
		buf.WriteByte('{')
		for i, m := range x.members {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := encodeJSON(buf, m.key); err != nil {
				return err
			}
			buf.WriteByte(':')
			if err := encodeJSON(buf, m.val); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	default:
		return fmt.Errorf("encode JSON: unexpected %T", v)
	}
	return nil
}

// direction says which way walkMessage rewrites enum names.
type direction int

const (
	// toProto checks input JSON and rewrites short enum names to proto names.
	toProto direction = iota
	// toShort rewrites protojson's enum names to short names.
	toShort
)

// walkMessage walks a JSON object against md, rewriting enum values and field
// names in place. In the toProto direction it also checks field names and
// value types, so errors name the field.
func walkMessage(md protoreflect.MessageDescriptor, v any, path string, dir direction) error {
	obj, ok := v.(*object)
	if !ok {
		return &FieldError{Field: path, Msg: "want a JSON object, got " + jsonType(v)}
	}
	fields := md.Fields()
	seen := make(map[protoreflect.Name]string)
	for i := range obj.members {
		m := &obj.members[i]
		fd := fields.ByTextName(m.key)
		if fd == nil {
			fd = fields.ByJSONName(m.key)
		}
		if fd == nil {
			return &FieldError{Field: joinPath(path, m.key), Msg: "unknown field"}
		}
		if prev, dup := seen[fd.Name()]; dup {
			return &FieldError{Field: joinPath(path, m.key), Msg: fmt.Sprintf("duplicate field (also given as %q)", prev)}
		}
		seen[fd.Name()] = m.key
		p := joinPath(path, string(fd.Name()))
		if m.val == nil {
			continue // null is the zero value, as protojson reads it
		}
		var err error
		switch {
		case fd.IsList():
			err = walkList(fd, m.val, p, dir)
		case fd.IsMap():
			err = walkMap(fd, m.val, p, dir)
		default:
			m.val, err = walkValue(fd, m.val, p, dir)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func walkList(fd protoreflect.FieldDescriptor, v any, path string, dir direction) error {
	arr, ok := v.([]any)
	if !ok {
		return &FieldError{Field: path, Msg: "want a JSON array, got " + jsonType(v)}
	}
	for i := range arr {
		var err error
		if arr[i], err = walkValue(fd, arr[i], fmt.Sprintf("%s[%d]", path, i), dir); err != nil {
			return err
		}
	}
	return nil
}

func walkMap(fd protoreflect.FieldDescriptor, v any, path string, dir direction) error {
	obj, ok := v.(*object)
	if !ok {
		return &FieldError{Field: path, Msg: "want a JSON object, got " + jsonType(v)}
	}
	for i := range obj.members {
		m := &obj.members[i]
		var err error
		if m.val, err = walkValue(fd.MapValue(), m.val, joinPath(path, m.key), dir); err != nil {
			return err
		}
	}
	return nil
}

// walkValue checks one singular value (a field, a list element or a map
// value) and returns it, rewritten if it is an enum name.
func walkValue(fd protoreflect.FieldDescriptor, v any, path string, dir direction) (any, error) {
	if fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind {
		md := fd.Message()
		if md.ParentFile().Package() == "google.protobuf" {
			if dir == toProto {
				return v, checkWellKnown(md, v, path)
			}
			return v, nil
		}
		return v, walkMessage(md, v, path, dir)
	}
	if fd.Kind() == protoreflect.EnumKind {
		return walkEnum(fd.Enum(), v, path, dir)
	}
	if dir == toShort {
		return v, nil
	}
	want := ""
	switch fd.Kind() {
	case protoreflect.StringKind:
		if _, ok := v.(string); !ok {
			want = "a string"
		}
	case protoreflect.BytesKind:
		if _, ok := v.(string); !ok {
			want = "a base64 string"
		}
	case protoreflect.BoolKind:
		if _, ok := v.(bool); !ok {
			want = "true or false"
		}
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		if _, ok := v.(json.Number); !ok {
			want = "a number"
		}
	default: // the integer kinds
		return v, checkInteger(fd, v, path)
	}
	if want != "" {
		return nil, &FieldError{Field: path, Msg: "want " + want + ", got " + jsonType(v)}
	}
	return v, nil
}

// checkInteger accepts a JSON integer, or for 64-bit kinds also a string
// holding one (protojson prints 64-bit integers as strings).
func checkInteger(fd protoreflect.FieldDescriptor, v any, path string) error {
	var text string
	is64 := false
	signed := true
	switch fd.Kind() {
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		is64 = true
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		is64, signed = true, false
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		signed = false
	}
	switch x := v.(type) {
	case json.Number:
		text = x.String()
	case string:
		if !is64 {
			return &FieldError{Field: path, Msg: "want an integer, got a string"}
		}
		text = x
	default:
		return &FieldError{Field: path, Msg: "want an integer, got " + jsonType(v)}
	}
	bits := 32
	if is64 {
		bits = 64
	}
	var err error
	if signed {
		_, err = strconv.ParseInt(text, 10, bits)
	} else {
		_, err = strconv.ParseUint(text, 10, bits)
	}
	if err == nil {
		return nil
	}
	if errors.Is(err, strconv.ErrRange) {
		return &FieldError{Field: path, Msg: fmt.Sprintf("%s is out of range for %s", text, fd.Kind())}
	}
	kind := "an integer"
	if !signed {
		kind = "a non-negative integer"
	}
	return &FieldError{Field: path, Msg: fmt.Sprintf("want %s, got %s", kind, text)}
}

// checkWellKnown checks the JSON shape of the well-known types the API uses.
func checkWellKnown(md protoreflect.MessageDescriptor, v any, path string) error {
	want := ""
	switch md.Name() {
	case "Struct":
		if _, ok := v.(*object); !ok {
			want = "a JSON object"
		}
	case "ListValue":
		if _, ok := v.([]any); !ok {
			want = "a JSON array"
		}
	case "Timestamp":
		if _, ok := v.(string); !ok {
			want = "an RFC 3339 time string"
		}
	case "Duration":
		if _, ok := v.(string); !ok {
			want = `a duration string such as "1.5s"`
		}
	}
	if want != "" {
		return &FieldError{Field: path, Msg: "want " + want + ", got " + jsonType(v)}
	}
	return nil
}

// walkEnum rewrites an enum value. toProto accepts a short name, the proto
// name, "" (the zero value) or a defined number, and returns the proto name;
// toShort strips the prefix.
func walkEnum(ed protoreflect.EnumDescriptor, v any, path string, dir direction) (any, error) {
	if ed.FullName() == "google.protobuf.NullValue" {
		return v, nil
	}
	prefix := enumPrefix(ed)
	values := ed.Values()
	switch x := v.(type) {
	case string:
		if dir == toShort {
			if short := strings.TrimPrefix(x, prefix); short != "" {
				return short, nil
			}
			return x, nil
		}
		if x == "" {
			return string(values.ByNumber(0).Name()), nil
		}
		if values.ByName(protoreflect.Name(x)) != nil {
			return x, nil
		}
		if values.ByName(protoreflect.Name(prefix+x)) != nil {
			return prefix + x, nil
		}
		return nil, &FieldError{Field: path, Msg: fmt.Sprintf("invalid value %q (want %s)", x, enumChoices(ed, prefix))}
	case json.Number:
		if dir == toShort {
			return v, nil
		}
		n, err := strconv.ParseInt(x.String(), 10, 32)
		if err == nil {
			if ev := values.ByNumber(protoreflect.EnumNumber(n)); ev != nil {
				return string(ev.Name()), nil
			}
		}
		return nil, &FieldError{Field: path, Msg: fmt.Sprintf("invalid value %s (want %s)", x, enumChoices(ed, prefix))}
	default:
		return nil, &FieldError{Field: path, Msg: fmt.Sprintf("want a string (%s), got %s", enumChoices(ed, prefix), jsonType(v))}
	}
}

// enumPrefix is the buf-style prefix shared by an enum's value names,
// derived from its zero value ("ACTOR_TYPE_UNSPECIFIED" → "ACTOR_TYPE_").
func enumPrefix(ed protoreflect.EnumDescriptor) string {
	zero := ed.Values().ByNumber(0)
	if zero == nil {
		return ""
	}
	name := string(zero.Name())
	if !strings.HasSuffix(name, "_UNSPECIFIED") {
		return ""
	}
	return strings.TrimSuffix(name, "UNSPECIFIED")
}

// enumChoices lists the short names of the specified values: "A, B or C".
func enumChoices(ed protoreflect.EnumDescriptor, prefix string) string {
	var names []string
	values := ed.Values()
	for i := range values.Len() {
		if ev := values.Get(i); ev.Number() != 0 {
			names = append(names, strings.TrimPrefix(string(ev.Name()), prefix))
		}
	}
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

func jsonType(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(x)
	case json.Number:
		return "number " + x.String()
	case string:
		return "a string"
	case []any:
		return "an array"
	case *object:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
