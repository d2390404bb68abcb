package audit

import (
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// Masked replaces the value at every configured mask path. A fixed marker
// rather than a salted hash: account numbers and similar values have so
// little entropy that a hash is reversible by enumeration unless its salt is a
// managed secret, and a marker keeps records comparable without one.
const Masked = "***MASKED***"

// masker replaces sensitive values in a DecideRequest. Paths use proto field
// names separated by dots and are checked against the schema when built:
// a path may end at a string field, at a key of a map<string,string> field
// (context.workflow_id) or anywhere inside a google.protobuf.Struct field
// (resource.attributes.bank.iban).
type masker struct {
	paths [][]string
}

func newMasker(paths []string) (*masker, error) {
	m := &masker{}
	desc := (&tollgatev1.DecideRequest{}).ProtoReflect().Descriptor()
	for _, p := range paths {
		segs := strings.Split(p, ".")
		if err := checkMaskPath(desc, segs); err != nil {
			return nil, fmt.Errorf("mask path %q: %w", p, err)
		}
		m.paths = append(m.paths, segs)
	}
	return m, nil
}

func checkMaskPath(desc protoreflect.MessageDescriptor, segs []string) error {
	for i, s := range segs {
		if s == "" {
			return fmt.Errorf("empty segment")
		}
		fd := desc.Fields().ByName(protoreflect.Name(s))
		if fd == nil {
			return fmt.Errorf("no field %q in %s", s, desc.FullName())
		}
		rest := segs[i+1:]
		switch {
		case fd.IsMap():
			if fd.MapValue().Kind() != protoreflect.StringKind || len(rest) != 1 {
				return fmt.Errorf("field %q: only map<string,string> keys can be masked", s)
			}
			return nil
		case fd.IsList():
			return fmt.Errorf("field %q: repeated fields cannot be masked", s)
		case fd.Kind() == protoreflect.MessageKind:
			if fd.Message().FullName() == "google.protobuf.Struct" {
				if len(rest) == 0 {
					return fmt.Errorf("field %q: name a key inside the struct", s)
				}
				return nil
			}
			if len(rest) == 0 {
				return fmt.Errorf("field %q is a message; name a field inside it", s)
			}
			desc = fd.Message()
		case fd.Kind() == protoreflect.StringKind:
			if len(rest) != 0 {
				return fmt.Errorf("field %q is a string with segments after it", s)
			}
			return nil
		default:
			return fmt.Errorf("field %q of kind %s cannot hold the mask", s, fd.Kind())
		}
	}
	return fmt.Errorf("empty path")
}

// masks says whether any path is masked, so whether mask changes a request.
func (m *masker) masks() bool { return len(m.paths) > 0 }

// mask replaces every present masked value of req by Masked, in place.
// Absent values stay absent.
func (m *masker) mask(req *tollgatev1.DecideRequest) {
	if req == nil {
		return
	}
	for _, segs := range m.paths {
		maskMessage(req.ProtoReflect(), segs)
	}
}

func maskMessage(msg protoreflect.Message, segs []string) {
	fd := msg.Descriptor().Fields().ByName(protoreflect.Name(segs[0]))
	if !msg.Has(fd) {
		return
	}
	rest := segs[1:]
	switch {
	case fd.IsMap():
		mp := msg.Mutable(fd).Map()
		k := protoreflect.ValueOfString(rest[0]).MapKey()
		if mp.Has(k) {
			mp.Set(k, protoreflect.ValueOfString(Masked))
		}
	case fd.Kind() == protoreflect.MessageKind:
		sub := msg.Mutable(fd).Message()
		if st, ok := sub.Interface().(*structpb.Struct); ok {
			maskStruct(st, rest)
			return
		}
		maskMessage(sub, rest)
	default:
		msg.Set(fd, protoreflect.ValueOfString(Masked))
	}
}

func maskStruct(st *structpb.Struct, segs []string) {
	v, ok := st.GetFields()[segs[0]]
	if !ok {
		return
	}
	if len(segs) == 1 {
		st.Fields[segs[0]] = structpb.NewStringValue(Masked)
		return
	}
	if sub := v.GetStructValue(); sub != nil {
		maskStruct(sub, segs[1:])
	}
}

// MaskedPaths returns the paths of req that hold Masked, in the syntax of
// Config.MaskPaths, sorted: in a logged request, the fields the writer
// masked (a caller sending the marker itself is indistinguishable). Replay
// evaluates the marker in their place, so a policy that reads one of them
// cannot be replayed exactly.
func MaskedPaths(req *tollgatev1.DecideRequest) []string {
	var out []string
	if req != nil {
		out = maskedIn(req.ProtoReflect(), "", out)
	}
	sort.Strings(out)
	return out
}

func maskedIn(msg protoreflect.Message, prefix string, out []string) []string {
	msg.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		path := prefix + string(fd.Name())
		switch {
		case fd.IsMap():
			if fd.MapValue().Kind() == protoreflect.StringKind {
				v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
					if mv.String() == Masked {
						out = append(out, path+"."+k.String())
					}
					return true
				})
			}
		case fd.IsList():
			// No mask path crosses a repeated field.
		case fd.Kind() == protoreflect.MessageKind:
			if st, ok := v.Message().Interface().(*structpb.Struct); ok {
				out = maskedInStruct(st, path+".", out)
			} else {
				out = maskedIn(v.Message(), path+".", out)
			}
		case fd.Kind() == protoreflect.StringKind:
			if v.String() == Masked {
				out = append(out, path)
			}
		}
		return true
	})
	return out
}

func maskedInStruct(st *structpb.Struct, prefix string, out []string) []string {
	for k, v := range st.GetFields() {
		switch {
		case v.GetStringValue() == Masked:
			out = append(out, prefix+k)
		case v.GetStructValue() != nil:
			out = maskedInStruct(v.GetStructValue(), prefix+k+".", out)
		}
	}
	return out
}
