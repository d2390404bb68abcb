package audit

import (
	"encoding/base64"
	"errors"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gowebpki/jcs"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
)

// The direct encoder writes the canonical form (see the package doc) in one
// walk over the message instead of encoding protojson and having JCS parse
// and re-serialize it, which showed up as about 5 % of the service's CPU per
// decision. It must produce exactly the bytes of canonicalSlow: existing
// logs verify against them. Tests compare the two over the records the
// package builds, edge cases and a fuzz target.
//
// It covers what decision records and requests hold: scalars, enums, bytes,
// repeated and map fields, Timestamp, Duration, Struct, Value, ListValue and
// the wrapper types. Anything else (Any, FieldMask, Empty, extensions) and
// every error make Canonical use canonicalSlow, so the error text and the
// rarely used types stay exactly protojson's.

// errDirectUnsupported means the direct encoder does not handle a message.
var errDirectUnsupported = errors.New("canonical: not supported by the direct encoder")

// errDirectInvalid means the message has no canonical form (protojson or JCS
// would fail); canonicalSlow reports why.
var errDirectInvalid = errors.New("canonical: message has no canonical form")

// wkt says how a message type is encoded.
type wkt uint8

const (
	wktNone wkt = iota // an ordinary message: a JSON object of its populated fields
	wktUnsupported
	wktTimestamp
	wktDuration
	wktStruct
	wktListValue
	wktValue
	wktWrapper
)

// plan is how to encode one message type, derived once from its descriptor.
type plan struct {
	kind wkt
	// fields are the message's fields in JCS member order (UTF-16 code units
	// of their proto names), each with its member name already encoded.
	fields []planField
}

type planField struct {
	fd   protoreflect.FieldDescriptor
	name []byte // `"name":`
}

// plans caches a plan per message descriptor. Descriptors are immutable and
// live as long as the program, and a plan is derived from nothing else, so
// this memo cannot change behaviour; it only saves sorting field names on
// every call.
var plans sync.Map // protoreflect.MessageDescriptor → *plan

func planFor(md protoreflect.MessageDescriptor) *plan {
	if p, ok := plans.Load(md); ok {
		return p.(*plan)
	}
	p := newPlan(md)
	plans.Store(md, p)
	return p
}

func newPlan(md protoreflect.MessageDescriptor) *plan {
	switch md.FullName() {
	case "google.protobuf.Timestamp":
		return &plan{kind: wktTimestamp}
	case "google.protobuf.Duration":
		return &plan{kind: wktDuration}
	case "google.protobuf.Struct":
		return &plan{kind: wktStruct}
	case "google.protobuf.ListValue":
		return &plan{kind: wktListValue}
	case "google.protobuf.Value":
		return &plan{kind: wktValue}
	case "google.protobuf.BoolValue", "google.protobuf.Int32Value", "google.protobuf.Int64Value",
		"google.protobuf.UInt32Value", "google.protobuf.UInt64Value", "google.protobuf.FloatValue",
		"google.protobuf.DoubleValue", "google.protobuf.StringValue", "google.protobuf.BytesValue":
		return &plan{kind: wktWrapper}
	case "google.protobuf.Any", "google.protobuf.FieldMask", "google.protobuf.Empty":
		return &plan{kind: wktUnsupported}
	}
	// protojson writes set extensions as "[full.name]" members; a type that
	// can have them is left to it.
	if md.ExtensionRanges().Len() > 0 {
		return &plan{kind: wktUnsupported}
	}
	fds := md.Fields()
	p := &plan{kind: wktNone, fields: make([]planField, fds.Len())}
	for i := range fds.Len() {
		fd := fds.Get(i)
		// protojson with UseProtoNames names members by TextName, which is
		// the field name except for proto2 groups.
		name, err := appendString(nil, fd.TextName())
		if err != nil {
			return &plan{kind: wktUnsupported}
		}
		p.fields[i] = planField{fd: fd, name: append(name, ':')}
	}
	slices.SortFunc(p.fields, func(a, b planField) int {
		return compareJCS(a.fd.TextName(), b.fd.TextName())
	})
	return p
}

// canonicalDirect returns the canonical form of m written directly. It
// returns errDirectUnsupported or errDirectInvalid where canonicalSlow must
// decide.
func canonicalDirect(m protoreflect.Message) ([]byte, error) {
	b, err := appendMessage(make([]byte, 0, 1024), m)
	if err != nil {
		return nil, err
	}
	return b, nil
}

func appendMessage(b []byte, m protoreflect.Message) ([]byte, error) {
	p := planFor(m.Descriptor())
	switch p.kind {
	case wktNone:
	case wktTimestamp:
		return appendTimestamp(b, m)
	case wktDuration:
		return appendDuration(b, m)
	case wktStruct:
		if s, ok := m.Interface().(*structpb.Struct); ok {
			return appendStruct(b, s)
		}
		fd := m.Descriptor().Fields().ByNumber(1)
		return appendMap(b, m.Get(fd).Map(), fd)
	case wktListValue:
		if l, ok := m.Interface().(*structpb.ListValue); ok {
			return appendListValue(b, l)
		}
		fd := m.Descriptor().Fields().ByNumber(1)
		return appendList(b, m.Get(fd).List(), fd)
	case wktValue:
		if v, ok := m.Interface().(*structpb.Value); ok {
			return appendStructValue(b, v)
		}
		return appendValue(b, m)
	case wktWrapper:
		// The wrapped value is written even when it is the zero value.
		fd := m.Descriptor().Fields().ByNumber(1)
		return appendSingular(b, m.Get(fd), fd)
	default:
		return b, errDirectUnsupported
	}
	b = append(b, '{')
	first := true
	var err error
	for _, f := range p.fields {
		// Has is protojson's notion of populated: implicit-presence scalars
		// that are zero, empty lists and maps and unset messages are
		// omitted; explicit-presence fields set to zero are not.
		if !m.Has(f.fd) {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, f.name...)
		switch {
		case f.fd.IsList():
			b, err = appendList(b, m.Get(f.fd).List(), f.fd)
		case f.fd.IsMap():
			b, err = appendMap(b, m.Get(f.fd).Map(), f.fd)
		default:
			b, err = appendSingular(b, m.Get(f.fd), f.fd)
		}
		if err != nil {
			return b, err
		}
	}
	return append(b, '}'), nil
}

func appendList(b []byte, l protoreflect.List, fd protoreflect.FieldDescriptor) ([]byte, error) {
	b = append(b, '[')
	var err error
	for i := range l.Len() {
		if i > 0 {
			b = append(b, ',')
		}
		if b, err = appendSingular(b, l.Get(i), fd); err != nil {
			return b, err
		}
	}
	return append(b, ']'), nil
}

// appendMap writes a map field (or a Struct's fields) as an object with its
// keys in JCS order. Non-string keys are named by their text form, as
// protojson names them.
func appendMap(b []byte, mp protoreflect.Map, fd protoreflect.FieldDescriptor) ([]byte, error) {
	type entry struct {
		k string
		v protoreflect.Value
	}
	var small [16]entry
	entries := small[:0]
	mp.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		entries = append(entries, entry{k.String(), v})
		return true
	})
	slices.SortFunc(entries, func(a, b entry) int { return compareJCS(a.k, b.k) })
	vfd := fd.MapValue()
	b = append(b, '{')
	var err error
	for i, e := range entries {
		if i > 0 {
			b = append(b, ',')
		}
		if b, err = appendString(b, e.k); err != nil {
			return b, err
		}
		b = append(b, ':')
		if b, err = appendSingular(b, e.v, vfd); err != nil {
			return b, err
		}
	}
	return append(b, '}'), nil
}

func appendSingular(b []byte, v protoreflect.Value, fd protoreflect.FieldDescriptor) ([]byte, error) {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return strconv.AppendBool(b, v.Bool()), nil
	case protoreflect.StringKind:
		return appendString(b, v.String())
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return strconv.AppendInt(b, v.Int(), 10), nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return strconv.AppendUint(b, v.Uint(), 10), nil
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		b = append(b, '"')
		b = strconv.AppendInt(b, v.Int(), 10)
		return append(b, '"'), nil
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		b = append(b, '"')
		b = strconv.AppendUint(b, v.Uint(), 10)
		return append(b, '"'), nil
	case protoreflect.FloatKind:
		f := v.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return appendNonFinite(b, f), nil
		}
		// protojson writes a float's shortest float32 decimal, which JCS
		// reads back as the nearest float64.
		f, err := strconv.ParseFloat(strconv.FormatFloat(f, 'g', -1, 32), 64)
		if err != nil {
			return b, errDirectInvalid
		}
		return appendNumber(b, f)
	case protoreflect.DoubleKind:
		f := v.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return appendNonFinite(b, f), nil
		}
		return appendNumber(b, f)
	case protoreflect.BytesKind:
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, v.Bytes())
		return append(b, '"'), nil
	case protoreflect.EnumKind:
		ed := fd.Enum()
		if ed.FullName() == "google.protobuf.NullValue" {
			return append(b, "null"...), nil
		}
		if ev := ed.Values().ByNumber(v.Enum()); ev != nil {
			b = append(b, '"')
			b = append(b, ev.Name()...)
			return append(b, '"'), nil
		}
		return strconv.AppendInt(b, int64(v.Enum()), 10), nil
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return appendMessage(b, v.Message())
	}
	return b, errDirectUnsupported
}

// appendNonFinite writes a float or double field's NaN or infinity the way
// protojson does: as a JSON string, which JCS keeps.
func appendNonFinite(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `"NaN"`...)
	case f > 0:
		return append(b, `"Infinity"`...)
	default:
		return append(b, `"-Infinity"`...)
	}
}

// appendNumber writes a finite number as JCS (ES6) formats it. Integers
// below 2^53 in magnitude, the common case, print as their digits in both
// ES6 and Go; everything else goes through jcs.NumberToJSON.
func appendNumber(b []byte, f float64) ([]byte, error) {
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		// -0 becomes 0, as in ES6.
		return strconv.AppendInt(b, int64(f), 10), nil
	}
	s, err := jcs.NumberToJSON(f)
	if err != nil {
		return b, errDirectInvalid
	}
	return append(b, s...), nil
}

// appendValue writes a google.protobuf.Value. A Value with no kind set or a
// non-finite number has no JSON form.
func appendValue(b []byte, m protoreflect.Message) ([]byte, error) {
	fd := m.WhichOneof(m.Descriptor().Oneofs().ByName("kind"))
	if fd == nil {
		return b, errDirectInvalid
	}
	v := m.Get(fd)
	if fd.Kind() == protoreflect.DoubleKind {
		if f := v.Float(); math.IsNaN(f) || math.IsInf(f, 0) {
			return b, errDirectInvalid
		}
	}
	return appendSingular(b, v, fd)
}

// appendStruct, appendListValue and appendStructValue are the generated
// Struct, ListValue and Value types written without reflection, which
// allocates for every map entry; request attributes are Structs.

func appendStruct(b []byte, s *structpb.Struct) ([]byte, error) {
	var small [16]string
	keys := small[:0]
	for k := range s.GetFields() {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareJCS)
	b = append(b, '{')
	var err error
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		if b, err = appendString(b, k); err != nil {
			return b, err
		}
		b = append(b, ':')
		if b, err = appendStructValue(b, s.Fields[k]); err != nil {
			return b, err
		}
	}
	return append(b, '}'), nil
}

func appendListValue(b []byte, l *structpb.ListValue) ([]byte, error) {
	b = append(b, '[')
	var err error
	for i, v := range l.GetValues() {
		if i > 0 {
			b = append(b, ',')
		}
		if b, err = appendStructValue(b, v); err != nil {
			return b, err
		}
	}
	return append(b, ']'), nil
}

// appendStructValue writes v; like protojson it fails on a Value with no
// kind (or a nil one) and on non-finite numbers.
func appendStructValue(b []byte, v *structpb.Value) ([]byte, error) {
	switch k := v.GetKind().(type) {
	case *structpb.Value_NullValue:
		return append(b, "null"...), nil
	case *structpb.Value_NumberValue:
		if math.IsNaN(k.NumberValue) || math.IsInf(k.NumberValue, 0) {
			return b, errDirectInvalid
		}
		return appendNumber(b, k.NumberValue)
	case *structpb.Value_StringValue:
		return appendString(b, k.StringValue)
	case *structpb.Value_BoolValue:
		return strconv.AppendBool(b, k.BoolValue), nil
	case *structpb.Value_StructValue:
		return appendStruct(b, k.StructValue)
	case *structpb.Value_ListValue:
		return appendListValue(b, k.ListValue)
	}
	return b, errDirectInvalid
}

// Range limits of protojson's Timestamp and Duration forms.
const (
	minTimestampSeconds = -62135596800 // 0001-01-01T00:00:00Z
	maxTimestampSeconds = 253402300799 // 9999-12-31T23:59:59Z
	maxDurationSeconds  = 315576000000
	maxNanos            = 999999999
)

// appendTimestamp writes RFC 3339 in UTC with 0, 3, 6 or 9 fractional
// digits, as protojson does.
func appendTimestamp(b []byte, m protoreflect.Message) ([]byte, error) {
	fds := m.Descriptor().Fields()
	secs, nanos := m.Get(fds.ByNumber(1)).Int(), m.Get(fds.ByNumber(2)).Int()
	if secs < minTimestampSeconds || secs > maxTimestampSeconds || nanos < 0 || nanos > maxNanos {
		return b, errDirectInvalid
	}
	b = append(b, '"')
	b = time.Unix(secs, 0).UTC().AppendFormat(b, "2006-01-02T15:04:05")
	b = appendNanos(b, nanos)
	return append(b, `Z"`...), nil
}

// appendDuration writes protojson's form: signed seconds, 0, 3, 6 or 9
// fractional digits and "s".
func appendDuration(b []byte, m protoreflect.Message) ([]byte, error) {
	fds := m.Descriptor().Fields()
	secs, nanos := m.Get(fds.ByNumber(1)).Int(), m.Get(fds.ByNumber(2)).Int()
	if secs < -maxDurationSeconds || secs > maxDurationSeconds || nanos < -maxNanos || nanos > maxNanos ||
		(secs > 0 && nanos < 0) || (secs < 0 && nanos > 0) {
		return b, errDirectInvalid
	}
	b = append(b, '"')
	if secs < 0 || nanos < 0 {
		b = append(b, '-')
		secs, nanos = -secs, -nanos
	}
	b = strconv.AppendInt(b, secs, 10)
	b = appendNanos(b, nanos)
	return append(b, `s"`...), nil
}

// appendNanos writes nanos (0 ≤ nanos < 1e9) as a fraction of a second with
// the fewest of 0, 3, 6 or 9 digits that represent it exactly.
func appendNanos(b []byte, nanos int64) []byte {
	digits := 9
	switch {
	case nanos == 0:
		return b
	case nanos%1e6 == 0:
		nanos, digits = nanos/1e6, 3
	case nanos%1e3 == 0:
		nanos, digits = nanos/1e3, 6
	}
	b = append(b, '.')
	var d [9]byte
	for i := digits - 1; i >= 0; i-- {
		d[i] = byte('0' + nanos%10)
		nanos /= 10
	}
	return append(b, d[:digits]...)
}

// appendString writes s as a JCS string: `"`, `\` and control characters
// escaped (\b \t \n \f \r, others as \u00xx), everything else raw UTF-8.
// protojson rejects invalid UTF-8, so it is an error here too.
func appendString(b []byte, s string) ([]byte, error) {
	if !utf8.ValidString(s) {
		return b, errDirectInvalid
	}
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, '\\', 'b')
		case '\t':
			b = append(b, '\\', 't')
		case '\n':
			b = append(b, '\\', 'n')
		case '\f':
			b = append(b, '\\', 'f')
		case '\r':
			b = append(b, '\\', 'r')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"'), nil
}

// compareJCS orders object member names as RFC 8785 does: by their UTF-16
// code units. That differs from byte (code point) order only where a
// character above U+FFFF, a surrogate pair starting 0xD800–0xDBFF, meets one
// in U+E000–U+FFFF. Both strings are valid UTF-8 (checked before writing).
func compareJCS(a, b string) int {
	for a != "" && b != "" {
		if a[0] < utf8.RuneSelf && b[0] < utf8.RuneSelf {
			if a[0] != b[0] {
				return int(a[0]) - int(b[0])
			}
			a, b = a[1:], b[1:]
			continue
		}
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra != rb {
			ua, ub := utf16First(ra), utf16First(rb)
			if ua != ub {
				return int(ua) - int(ub)
			}
			// Same high surrogate: the low surrogates order as the runes do.
			return int(ra) - int(rb)
		}
		a, b = a[na:], b[nb:]
	}
	return len(a) - len(b)
}

// utf16First is the first UTF-16 code unit of r.
func utf16First(r rune) rune {
	if r < 0x10000 {
		return r
	}
	return 0xD800 + (r-0x10000)>>10
}
