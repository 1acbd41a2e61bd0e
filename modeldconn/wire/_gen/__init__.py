"""Generated protobuf modules (do not edit; see tools/gen_proto.py)."""
