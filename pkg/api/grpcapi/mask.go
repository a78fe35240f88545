package grpcapi

import (
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

// applyMask copies the fields named by mask from src into dst; a named field absent from src is
// cleared. An empty mask names every field populated in src. Paths are proto field names
// (snake_case) or their JSON names; nested paths are not supported (resources are flat).
func applyMask(dst, src proto.Message, mask *fieldmaskpb.FieldMask) error {
	d, s := dst.ProtoReflect(), src.ProtoReflect()
	fields := d.Descriptor().Fields()
	var fds []protoreflect.FieldDescriptor
	if len(mask.GetPaths()) == 0 {
		s.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
			fds = append(fds, fd)
			return true
		})
	}
	for _, p := range mask.GetPaths() {
		fd := fields.ByName(protoreflect.Name(p))
		if fd == nil {
			fd = fields.ByJSONName(p)
		}
		if fd == nil {
			return &registry.FieldError{Field: "update_mask", Reason: "unknown field " + p + " of " + string(d.Descriptor().Name())}
		}
		fds = append(fds, fd)
	}
	for _, fd := range fds {
		if s.Has(fd) {
			d.Set(fd, s.Get(fd))
		} else {
			d.Clear(fd)
		}
	}
	return nil
}
