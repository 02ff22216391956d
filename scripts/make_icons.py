"""Draw the app icons (PNG, 192 and 512 px, plus a maskable 512) with the standard library only.

A white map pin with a drop of water on Yizhan green; run after changing the design:
    python scripts/make_icons.py
"""
import math
import os
import struct
import zlib

GREEN = (10, 125, 90)
WHITE = (255, 255, 255)
OUT = os.path.join(os.path.dirname(__file__), "..", "static", "icons")


def png(path, size, pixel):
    rows = []
    for y in range(size):
        row = bytearray([0])
        for x in range(size):
            row.extend(pixel((x + 0.5) / size, (y + 0.5) / size))
        rows.append(bytes(row))
    raw = zlib.compress(b"".join(rows), 9)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n")
        fh.write(chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)))
        fh.write(chunk(b"IDAT", raw))
        fh.write(chunk(b"IEND", b""))


def design(maskable):
    pad = 0.0 if maskable else 0.06
    radius = 0.0 if maskable else 0.2
    scale = 0.72 if maskable else 1.0  # keep the pin inside the maskable safe zone

    def pixel(u, v):
        # rounded-square background
        du, dv = max(abs(u - 0.5) - (0.5 - pad - radius), 0), max(abs(v - 0.5) - (0.5 - pad - radius), 0)
        if math.hypot(du, dv) > radius + 1e-9 and not maskable:
            return (0, 0, 0, 0)
        x, y = (u - 0.5) / scale, (v - 0.5) / scale
        # map pin: circle head plus a triangle tip
        head = math.hypot(x, y + 0.08) < 0.26
        tip = -0.02 < y < 0.36 and abs(x) < (0.36 - y) * 0.62
        hole = math.hypot(x, y + 0.08) < 0.11
        if (head or tip) and not hole:
            return (*WHITE, 255)
        return (*GREEN, 255)

    return pixel


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    png(os.path.join(OUT, "icon-192.png"), 192, design(False))
    png(os.path.join(OUT, "icon-512.png"), 512, design(False))
    png(os.path.join(OUT, "icon-maskable-512.png"), 512, design(True))
    print("icons written to", os.path.abspath(OUT))
