#!/usr/bin/env python3
"""Writes the small seed inputs of the safetensors and llama2c fuzz targets (each < 10 KB):
hand-made safetensors files and tiny llama2.c checkpoints in both export formats.
Run from the repository root: python3 fuzz/make_checkpoint_seeds.py"""
import json
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def safetensors(entries, metadata=None, pad=True):
    """entries: list of (name, dtype, shape, raw bytes), stored in that order."""
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in entries:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def f32(*v):
    return struct.pack("<%df" % len(v), *v)


def u16(*v):
    return struct.pack("<%dH" % len(v), *v)


write("safetensors_fuzz", "three_types.safetensors", safetensors(
    [("a", "F32", [2, 3], f32(1, 2, 3, 4, 5, 6)),
     ("b", "F16", [3], u16(0x3C00, 0xC000, 0x3800)),
     ("c", "BF16", [1, 2], u16(0x3F80, 0xBF00))], {"format": "pt"}))
write("safetensors_fuzz", "odd_header.safetensors", safetensors(
    [("x", "F16", [1], u16(0x3C00)), ("y", "F32", [2], f32(0.5, -1))], pad=False))
write("safetensors_fuzz", "scalar_empty.safetensors", safetensors(
    [("s", "F32", [], f32(2.5)), ("e", "BF16", [0, 4], b"")]))
write("safetensors_fuzz", "unsupported.safetensors", safetensors([("i", "I64", [1], b"\0" * 8)]))
write("safetensors_fuzz", "empty_header.safetensors", safetensors([], {}))


def llama2c(dim=4, hidden=6, layers=2, heads=2, kv_heads=1, vocab=5, seq=3, v1=False, shared=True):
    hs = dim // heads
    kv = hs * kv_heads
    floats = vocab * dim + layers * (2 * dim + 2 * dim * dim + 2 * dim * kv + 3 * dim * hidden) + dim
    if not v1:
        floats += seq * hs
    if not shared:
        floats += vocab * dim
    if v1:
        head = struct.pack("<Ii7iB", 0x616B3432, 1, dim, hidden, layers, heads, kv_heads, vocab, seq, int(shared))
        head += b"\0" * (256 - len(head))
    else:
        head = struct.pack("<7i", dim, hidden, layers, heads, kv_heads, vocab if shared else -vocab, seq)
    return head + struct.pack("<%df" % floats, *[(i % 17) * 0.125 - 1 for i in range(floats)])


write("llama2c_fuzz", "legacy_shared.bin", llama2c())
write("llama2c_fuzz", "legacy_unshared.bin", llama2c(shared=False))
write("llama2c_fuzz", "v1_shared.bin", llama2c(v1=True))
write("llama2c_fuzz", "v1_unshared.bin", llama2c(v1=True, shared=False, layers=1))
write("llama2c_fuzz", "v2_header.bin", struct.pack("<Ii7iB", 0x616B3432, 2, 4, 6, 1, 2, 1, 5, 3, 1).ljust(256, b"\0"))
