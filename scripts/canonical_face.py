#!/usr/bin/python3
"""Extracts MediaPipe's canonical face (468 vertices) from the npm @mediapipe/face_mesh package.

The package packs its assets into face_mesh_solution_packed_assets.data; the loader script lists
each file's byte range. geometry_pipeline_metadata_landmarks.binarypb is a protobuf
(GeometryPipelineMetadata): field 1 is the canonical Mesh3d, whose field 3 is the vertex buffer,
five floats per vertex (x, y, z, u, v). Writes one "x y z" line per vertex, in centimetres.
Usage: canonical_face.py PACKAGE_DIR OUT.txt
"""
import json
import os
import re
import struct
import sys

ASSET = "geometry_pipeline_metadata_landmarks.binarypb"
VERTICES = 468


def fail(msg):
    sys.exit("canonical_face: " + msg)


def asset_bytes(pkg):
    loader = open(os.path.join(pkg, "face_mesh_solution_packed_assets_loader.js")).read()
    m = re.search(r'loadPackage\((\{"files".*?\})\);', loader, re.S)
    if not m:
        fail("no file table in the loader script")
    for f in json.loads(m.group(1))["files"]:
        if f["filename"].endswith("/" + ASSET):
            data = open(os.path.join(pkg, "face_mesh_solution_packed_assets.data"), "rb").read()
            return data[f["start"]:f["end"]]
    fail(ASSET + " is not in the package")


def varint(buf, pos):
    val, shift = 0, 0
    while True:
        b = buf[pos]
        pos += 1
        val |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return val, pos


def fields(buf):
    """Yields (field number, wire type, value) of one protobuf message; value is bytes for len."""
    pos = 0
    while pos < len(buf):
        key, pos = varint(buf, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            val, pos = varint(buf, pos)
        elif wire == 1:
            val, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            n, pos = varint(buf, pos)
            val, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            val, pos = buf[pos:pos + 4], pos + 4
        else:
            fail("unexpected wire type %d" % wire)
        yield num, wire, val


def vertex_buffer(meta):
    for num, wire, mesh in fields(meta):
        if num == 1 and wire == 2:
            floats = []
            for n, w, v in fields(mesh):
                if n == 3 and w == 2:
                    floats += struct.unpack("<%df" % (len(v) // 4), v)
                elif n == 3 and w == 5:
                    floats += struct.unpack("<f", v)
            return floats
    fail("no canonical mesh in " + ASSET)


def main():
    if len(sys.argv) != 3:
        fail("usage: canonical_face.py PACKAGE_DIR OUT.txt")
    floats = vertex_buffer(asset_bytes(sys.argv[1]))
    if len(floats) != VERTICES * 5:
        fail("expected %d vertices, found %d floats" % (VERTICES, len(floats)))
    lines = ["%.6f %.6f %.6f\n" % tuple(floats[i * 5:i * 5 + 3]) for i in range(VERTICES)]
    tmp = sys.argv[2] + ".tmp"
    with open(tmp, "w") as f:
        f.writelines(lines)
    os.replace(tmp, sys.argv[2])


if __name__ == "__main__":
    main()
