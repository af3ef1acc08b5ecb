"""Make the fixed-size SCRFD onnx graph accept any input size that is a multiple of 32, and any batch size.

The exported graph declares a 1x3x640x640 input, and its two FPN upsampling `Resize` nodes carry constant target
sizes (40x40, 80x80) instead of a scale. Everything else (convolutions, `Reshape` to (1, -1, k)) works at any
size. This module rewrites the serialized model in memory, without the `onnx` package, by editing the protobuf
wire format directly (field numbers from onnx.proto):

- the input's batch, height and width become symbolic; the outputs' anchor dimension becomes symbolic;
- each `Resize` with a constant `sizes` input gets a constant `scales` input of (1, 1, 2, 2) instead;
- the stored intermediate shapes (`value_info`, all fixed at 640) are dropped; onnxruntime infers them again.

At 640x640 the patched graph computes exactly what the original does (a test holds it to that).
"""

from __future__ import annotations

import struct

from preprocessing.faces.base import FaceError

# onnx.proto field numbers
_MODEL_GRAPH = 7
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_INPUT, _GRAPH_OUTPUT, _GRAPH_VALUE_INFO = 1, 5, 11, 12, 13
_NODE_INPUT, _NODE_OP_TYPE = 1, 4
_TENSOR_DIMS, _TENSOR_DATA_TYPE, _TENSOR_NAME, _TENSOR_RAW_DATA = 1, 2, 8, 9
_VALUE_INFO_NAME, _VALUE_INFO_TYPE = 1, 2
_TYPE_TENSOR, _TENSOR_TYPE_SHAPE, _SHAPE_DIM = 1, 2, 1
_DIM_VALUE, _DIM_PARAM = 1, 2
_FLOAT = 1

Field = tuple[int, int, object]  # (field number, wire type, int for varint / bytes otherwise)


class OnnxPatchError(FaceError):
    """The onnx file does not have the structure the SCRFD patch expects."""


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise OnnxPatchError("truncated varint in the onnx protobuf")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # protobuf encodes negative int64 as 10-byte two's complement
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def parse_message(buf: bytes) -> list[Field]:
    """Split one serialized protobuf message into its fields, in order (unknown fields kept as they are)."""
    fields: list[Field] = []
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos)
            fields.append((number, wire, value))
        elif wire == 2:
            length, pos = _read_varint(buf, pos)
            fields.append((number, wire, buf[pos : pos + length]))
            pos += length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            fields.append((number, wire, buf[pos : pos + size]))
            pos += size
        else:
            raise OnnxPatchError(f"unsupported protobuf wire type {wire} in the onnx file")
    return fields


def serialize_message(fields: list[Field]) -> bytes:
    """Inverse of `parse_message`."""
    out = bytearray()
    for number, wire, value in fields:
        out += _varint((number << 3) | wire)
        if wire == 0:
            assert isinstance(value, int)
            out += _varint(value)
        elif wire == 2:
            assert isinstance(value, bytes)
            out += _varint(len(value)) + value
        else:
            assert isinstance(value, bytes)
            out += value
    return bytes(out)


def _strings(fields: list[Field], number: int) -> list[str]:
    return [v.decode() for n, w, v in fields if n == number and w == 2 and isinstance(v, bytes)]


def _replace_sub(fields: list[Field], number: int, edit) -> list[Field]:
    return [(n, w, serialize_message(edit(parse_message(v))) if n == number and w == 2 else v) for n, w, v in fields]


def _symbolic_dims(value_info: bytes, names: dict[int, str]) -> bytes:
    """Replace the dims at the given positions of a ValueInfoProto's tensor shape by named symbolic dims."""

    def edit_shape(shape: list[Field]) -> list[Field]:
        out: list[Field] = []
        k = 0
        for n, w, v in shape:
            if n == _SHAPE_DIM:
                if k in names:
                    v = serialize_message([(_DIM_PARAM, 2, names[k].encode())])
                k += 1
            out.append((n, w, v))
        return out

    def edit_tensor(tensor: list[Field]) -> list[Field]:
        return _replace_sub(tensor, _TENSOR_TYPE_SHAPE, edit_shape)

    def edit_type(typ: list[Field]) -> list[Field]:
        return _replace_sub(typ, _TYPE_TENSOR, edit_tensor)

    return serialize_message(_replace_sub(parse_message(value_info), _VALUE_INFO_TYPE, edit_type))


def make_scrfd_dynamic(model: bytes) -> bytes:
    """The SCRFD onnx model with a dynamic batch/height/width input (see the module docstring).

    Args:
        model: the serialized ModelProto as read from the .onnx file.

    Returns:
        The serialized, patched ModelProto.

    Raises:
        OnnxPatchError: the graph has no Resize with constant sizes, or is not a 4-D single-input graph.
    """
    top = parse_message(model)
    graphs = [v for n, w, v in top if n == _MODEL_GRAPH and w == 2]
    if len(graphs) != 1 or not isinstance(graphs[0], bytes):
        raise OnnxPatchError("the onnx file holds no graph")
    graph = parse_message(graphs[0])
    initializer_names = {
        (_strings(parse_message(v), _TENSOR_NAME) or [""])[0]
        for n, w, v in graph
        if n == _GRAPH_INITIALIZER and isinstance(v, bytes)
    }
    scales_name = "bdca_resize_scales_x2"
    size_inputs: set[str] = set()
    patched_resizes = 0
    new_graph: list[Field] = []
    inputs_seen = 0
    for n, w, v in graph:
        if n == _GRAPH_VALUE_INFO:
            continue
        if n == _GRAPH_NODE and isinstance(v, bytes):
            node = parse_message(v)
            ins = _strings(node, _NODE_INPUT)
            if _strings(node, _NODE_OP_TYPE) == ["Resize"] and len(ins) == 4 and ins[3] in initializer_names:
                keep = [f for f in node if f[0] != _NODE_INPUT]
                new_ins = [ins[0], ins[1], scales_name]
                size_inputs.add(ins[3])
                v = serialize_message([(_NODE_INPUT, 2, s.encode()) for s in new_ins] + keep)
                patched_resizes += 1
        elif n == _GRAPH_INPUT and isinstance(v, bytes):
            if _strings(parse_message(v), _VALUE_INFO_NAME)[0] not in initializer_names:
                v = _symbolic_dims(v, {0: "batch", 2: "height", 3: "width"})
                inputs_seen += 1
        elif n == _GRAPH_OUTPUT and isinstance(v, bytes):
            v = _symbolic_dims(v, {1: "anchors"})
        new_graph.append((n, w, v))
    if patched_resizes == 0 or inputs_seen != 1:
        raise OnnxPatchError(
            f"unexpected graph: {patched_resizes} constant-size Resize nodes and {inputs_seen} data inputs "
            "(expected SCRFD's 2 and 1)"
        )
    scales = serialize_message(
        [
            (_TENSOR_DIMS, 0, 4),
            (_TENSOR_DATA_TYPE, 0, _FLOAT),
            (_TENSOR_NAME, 2, scales_name.encode()),
            (_TENSOR_RAW_DATA, 2, struct.pack("<4f", 1.0, 1.0, 2.0, 2.0)),
        ]
    )
    # The constant sizes are unused now; drop them so onnxruntime does not warn about them.
    new_graph = [
        f
        for f in new_graph
        if not (f[0] == _GRAPH_INITIALIZER and _strings(parse_message(f[2]), _TENSOR_NAME)[0] in size_inputs)  # type: ignore[arg-type]
    ]
    new_graph.append((_GRAPH_INITIALIZER, 2, scales))
    return serialize_message([(n, w, serialize_message(new_graph) if n == _MODEL_GRAPH else v) for n, w, v in top])
