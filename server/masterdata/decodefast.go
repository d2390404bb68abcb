package masterdata

import (
	"encoding/json"
	"unicode/utf8"
)

// decodeFast decodes the common form of a change-event line without reflection, to the same Event that
// encoding/json gives (records as map[string]any, []any, string, bool, json.Number and nil). It accepts
// only a strict subset of JSON on which the two cannot differ: the six members spelled exactly, once
// each; strings without escapes or control characters, in valid UTF-8; a version of plain digits that
// fits uint64; nesting at most maxFastDepth deep; nothing after the object. On anything else it reports
// false and decodeEvent asks encoding/json, which then also gives the error and its wording.
//
// It exists because encoding/json spent about 7 µs and 50 allocations on a typical line, the largest
// share of a 1,000,000-record load after the memdb inserts.
func decodeFast(b []byte) (Event, bool) {
	var p fastParser
	return p.decode(b)
}

// decode is decodeFast reusing p's buffer between lines.
func (p *fastParser) decode(b []byte) (Event, bool) {
	p.b, p.i, p.members = b, 0, p.members[:0]
	var ev Event
	p.space()
	if !p.consume('{') {
		return Event{}, false
	}
	p.space()
	if p.consume('}') {
		return ev, p.end()
	}
	var seen [6]bool
	for {
		p.space()
		name, ok := p.rawString()
		if !ok || !p.colon() {
			return Event{}, false
		}
		member := -1
		switch string(name) {
		case "event_id":
			member = 0
		case "kind":
			member = 1
		case "key":
			member = 2
		case "version":
			member = 3
		case "op":
			member = 4
		case "record":
			member = 5
		}
		if member < 0 || seen[member] {
			return Event{}, false // unknown, spelled otherwise or repeated: encoding/json decides
		}
		seen[member] = true
		if !p.member(&ev, member) {
			return Event{}, false
		}
		p.space()
		if p.consume('}') {
			return ev, p.end()
		}
		if !p.consume(',') {
			return Event{}, false
		}
	}
}

// member reads the value of member m of an event (decodeFast's numbering) into ev.
func (p *fastParser) member(ev *Event, m int) bool {
	switch m {
	case 3:
		v, ok := p.uint64()
		ev.Version = v
		return ok
	case 5:
		if p.literal("null") {
			return true
		}
		r, ok := p.object(1)
		ev.Record = r
		return ok
	}
	s, ok := p.rawString()
	if !ok {
		return false
	}
	switch m {
	case 0:
		ev.EventID = string(s)
	case 1:
		ev.Kind = Kind(p.share(s, false).(string))
	case 2:
		ev.Key = string(s)
	case 4:
		ev.Op = Op(p.share(s, false).(string))
	}
	return true
}

// maxFastDepth bounds the nesting decodeFast handles itself; records nest two or three levels.
const maxFastDepth = 32

// fastParser reads the JSON subset of decodeFast from b at i. Every method reports false where the subset
// ends, whether or not the input is valid JSON. Its zero value is ready; one parser may read many lines,
// one at a time.
type fastParser struct {
	b       []byte
	i       int
	members []fastMember // of the objects being read, innermost last
	// strings and numbers hold the strings (member names and values) and numbers this parser has read,
	// to hand out again: the records of a file repeat the same field names, kinds, ops and enum values,
	// and a million-record load made (and kept, in Record.Fields) a string and an interface for each of
	// them per record. Each holds at most maxShared, so unique values (keys, amounts) only fill it up.
	strings map[string]any
	numbers map[string]any
}

// maxShared bounds fastParser.strings and numbers: enough for the names and enum values of every kind.
const maxShared = 4096

// share returns the string (or with number, the json.Number) text, the one read before if any.
func (p *fastParser) share(text []byte, number bool) any {
	seen := &p.strings
	if number {
		seen = &p.numbers
	}
	if v, ok := (*seen)[string(text)]; ok {
		return v
	}
	var v any = string(text)
	if number {
		v = json.Number(string(text))
	}
	if len(*seen) < maxShared {
		if *seen == nil {
			*seen = make(map[string]any)
		}
		(*seen)[string(text)] = v
	}
	return v
}

func (p *fastParser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// end reports whether only white space is left, and moves there.
func (p *fastParser) end() bool {
	p.space()
	return p.i == len(p.b)
}

func (p *fastParser) consume(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *fastParser) colon() bool {
	p.space()
	if !p.consume(':') {
		return false
	}
	p.space()
	return true
}

func (p *fastParser) literal(s string) bool {
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

// rawString reads a string without escapes or control characters in valid UTF-8, which encoding/json
// returns unchanged. The result aliases b.
func (p *fastParser) rawString() ([]byte, bool) {
	if !p.consume('"') {
		return nil, false
	}
	start, ascii := p.i, true
	for ; p.i < len(p.b); p.i++ {
		switch c := p.b[p.i]; {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			return s, ascii || utf8.Valid(s)
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

// number reads a number in JSON's grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func (p *fastParser) number() ([]byte, bool) {
	start := p.i
	p.consume('-')
	switch {
	case p.consume('0'):
	case p.i < len(p.b) && p.b[p.i] >= '1' && p.b[p.i] <= '9':
		p.digits()
	default:
		return nil, false
	}
	if p.consume('.') && !p.digits() {
		return nil, false
	}
	if p.consume('e') || p.consume('E') {
		if !p.consume('+') {
			p.consume('-')
		}
		if !p.digits() {
			return nil, false
		}
	}
	return p.b[start:p.i], true
}

// digits reads one or more decimal digits.
func (p *fastParser) digits() bool {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	return p.i > start
}

// uint64 reads a number of plain digits that fits uint64, what encoding/json stores in a uint64 field.
func (p *fastParser) uint64() (uint64, bool) {
	n, ok := p.number()
	if !ok {
		return 0, false
	}
	var v uint64
	for _, c := range n {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// value reads any value, as encoding/json decodes into an interface with UseNumber.
func (p *fastParser) value(depth int) (any, bool) {
	if p.i >= len(p.b) {
		return nil, false
	}
	switch c := p.b[p.i]; {
	case c == '"':
		s, ok := p.rawString()
		if !ok {
			return nil, false
		}
		return p.share(s, false), true
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == 't' && p.literal("true"):
		return true, true
	case c == 'f' && p.literal("false"):
		return false, true
	case c == 'n' && p.literal("null"):
		return nil, true
	}
	n, ok := p.number()
	if !ok {
		return nil, false
	}
	return p.share(n, true), true
}

// object reads an object; a repeated name keeps its last value, as in encoding/json. Members are read
// into p.members first, so that the map is made at its size: a record of more than eight fields grown one
// field at a time rehashed once per record.
func (p *fastParser) object(depth int) (map[string]any, bool) {
	if depth > maxFastDepth || !p.consume('{') {
		return nil, false
	}
	p.space()
	if p.consume('}') {
		return make(map[string]any), true
	}
	base := len(p.members)
	defer func() { p.members = p.members[:base] }()
	for {
		p.space()
		name, ok := p.rawString()
		if !ok || !p.colon() {
			return nil, false
		}
		v, ok := p.value(depth)
		if !ok {
			return nil, false
		}
		p.members = append(p.members, fastMember{name: name, value: v})
		p.space()
		if p.consume('}') {
			break
		}
		if !p.consume(',') {
			return nil, false
		}
	}
	m := make(map[string]any, len(p.members)-base)
	for _, mb := range p.members[base:] {
		m[p.share(mb.name, false).(string)] = mb.value
	}
	return m, true
}

// fastMember is a member of an object being read.
type fastMember struct {
	name  []byte
	value any
}

// array reads an array; an empty one is an empty, non-nil slice, as in encoding/json.
func (p *fastParser) array(depth int) ([]any, bool) {
	if depth > maxFastDepth || !p.consume('[') {
		return nil, false
	}
	l := make([]any, 0)
	p.space()
	if p.consume(']') {
		return l, true
	}
	for {
		p.space()
		v, ok := p.value(depth)
		if !ok {
			return nil, false
		}
		l = append(l, v)
		p.space()
		if p.consume(']') {
			return l, true
		}
		if !p.consume(',') {
			return nil, false
		}
	}
}
