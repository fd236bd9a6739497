#!/usr/bin/env python3
"""Read an ISO9660 image with pycdlib (an independent reader) and print what
test_iso.c compares: the volume id, then for every file in the root, by its
Rock Ridge name and its Joliet name, "name sha256".

usage: iso_check.py IMAGE"""
import hashlib
import io
import sys

import pycdlib


def main(path):
    iso = pycdlib.PyCdlib()
    iso.open(path)
    print("volid", iso.pvd.volume_identifier.decode().rstrip())
    print("rr", 1 if iso.has_rock_ridge() else 0)
    print("joliet", 1 if iso.has_joliet() else 0)
    for kind in ("rr_path", "joliet_path"):
        root = "/"
        for child in iso.list_children(**{kind: root}):
            if child.is_dot() or child.is_dotdot():
                continue
            if kind == "rr_path":
                name = child.rock_ridge.name().decode()
            else:
                name = child.file_identifier().decode("utf-16_be")
            out = io.BytesIO()
            iso.get_file_from_iso_fp(out, **{kind: "/" + name})
            print(kind.split("_")[0], name, hashlib.sha256(out.getvalue()).hexdigest())
    iso.close()


if __name__ == "__main__":
    main(sys.argv[1])
