from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor
OMITEMPTY_FIELD_NUMBER: _ClassVar[int]
omitempty: _descriptor.FieldDescriptor
GO_TYPE_FIELD_NUMBER: _ClassVar[int]
go_type: _descriptor.FieldDescriptor
POINTER_FIELD_NUMBER: _ClassVar[int]
pointer: _descriptor.FieldDescriptor
GO_NAME_FIELD_NUMBER: _ClassVar[int]
go_name: _descriptor.FieldDescriptor
