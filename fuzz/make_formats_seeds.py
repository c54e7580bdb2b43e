#!/usr/bin/env python3
"""Writes the seed inputs of the formats fuzz target: for a few type ids, a shape header and a
payload of floats (gaussian-ish, zeros, NaN/inf, huge) that is also whole blocks of bytes.
Run from the repository root: python3 fuzz/make_formats_seeds.py"""
import math
import os
import random
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "formats_fuzz")


def seed(name, type_id, ne, floats):
    os.makedirs(ROOT, exist_ok=True)
    data = bytes([type_id]) + struct.pack("<4i", *ne) + struct.pack("<%df" % len(floats), *floats)
    with open(os.path.join(ROOT, name), "wb") as f:
        f.write(data)


rng = random.Random(1)
gauss = [rng.gauss(0, 1) for _ in range(256)]
special = [0.0, -0.0, math.inf, -math.inf, math.nan, 1e30, -1e-30, 65504.0] * 32
for type_id, name in [(2, "q4_0"), (3, "q4_1"), (6, "q5_0"), (7, "q5_1"), (8, "q8_0"), (9, "q8_1"),
                      (10, "q2_K"), (11, "q3_K"), (12, "q4_K"), (13, "q5_K"), (14, "q6_K"),
                      (15, "q8_K"), (20, "iq4_nl"), (1, "f16"), (30, "bf16")]:
    seed(name + "_gauss", type_id, (256, 4, 1, 1), gauss)
# smelt's own types: byte 128 + (id - 1024), see formats_fuzz.cc.
for native, name in [(0, "i4s_g32"), (5, "i4a_g128"), (7, "i3s_g64"), (15, "i2a_g32"), (18, "nf4"),
                     (19, "f8e4m3_b32"), (20, "f8e5m2_b32"), (21, "pow2_b32"), (22, "i8_pc"),
                     (23, "w8a8"), (24, "i4s_pc"), (30, "km4_pc"), (32, "km2_pc"), (33, "q4_0_o8"),
                     (34, "i3s_g32_o8"), (35, "s24_q8"), (36, "s24_q4"), (37, "sp50_q8"), (38, "sp70_q8"),
                     (39, "sp50_w8a8"), (40, "sp70_w8a8"), (41, "s24_w4a8"), (42, "sp50_f16"),
                     (43, "sp70_f16"), (44, "sp70_w4a8")]:
    seed(name + "_gauss", 128 + native, (256, 2, 1, 1), gauss)
# Half zeros (what a pruned row looks like) for the sparse types.
pruned = [x if i % 2 else 0.0 for i, x in enumerate(gauss)]
for native, name in [(35, "s24_q8"), (36, "s24_q4"), (37, "sp50_q8"), (38, "sp70_q8"), (39, "sp50_w8a8"),
                     (40, "sp70_w8a8"), (41, "s24_w4a8"), (42, "sp50_f16"), (43, "sp70_f16"), (44, "sp70_w4a8")]:
    seed(name + "_pruned", 128 + native, (256, 1, 1, 1), pruned)
seed("f8e4m3_b32_special", 128 + 19, (256, 1, 1, 1), special)
seed("q4_K_special", 12, (255, 1, 1, 1), special)
seed("q6_K_special", 14, (-256, 2, 1, 1), special)
seed("iq4_nl_special", 20, (32, 1 << 30, 1 << 30, 3), special)
seed("q8_0_zero", 8, (0, 0, 0, 0), [0.0] * 64)
