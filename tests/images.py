"""Small images built in memory for the photo tests (unit, API, browser).

``make_jpeg_with_gps`` is the typical phone photo: EXIF with a camera name, a GPS position and
an orientation tag, plus XMP, a comment and an ICC profile. Every kind of metadata carries one of
the ``MARKERS`` so a test can check, on the raw bytes, that none of it survived.
"""
from __future__ import annotations

import io
import struct
import zlib

from PIL import ExifTags, Image, ImageCms, PngImagePlugin

RED, BLUE, GREEN = (220, 20, 20), (20, 20, 220), (20, 180, 20)
CAMERA = "YizhanTestCam"
XMP_MARKER = "yizhan-test-xmp"
COMMENT_MARKER = "yizhan-test-comment"
TEXT_MARKER = "yizhan-test-text-chunk"
MARKERS = (CAMERA.encode(), XMP_MARKER.encode(), COMMENT_MARKER.encode(), TEXT_MARKER.encode())
# 31°14'1.5"N 121°28'3"E, central Shanghai.
GPS = {ExifTags.GPS.GPSLatitudeRef: "N", ExifTags.GPS.GPSLatitude: (31.0, 14.0, 1.5),
       ExifTags.GPS.GPSLongitudeRef: "E", ExifTags.GPS.GPSLongitude: (121.0, 28.0, 3.0)}


def halves(width: int, height: int, left=RED, right=BLUE, mode: str = "RGB") -> Image.Image:
    """Left half one colour, right half another: shows which way an image was turned."""
    image = Image.new(mode, (width, height), left)
    image.paste(Image.new(mode, (width - width // 2, height), right), (width // 2, 0))
    return image


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def make_jpeg_with_gps(width: int = 64, height: int = 48, orientation: int = 6) -> bytes:
    """A JPEG (left half red, right half blue as stored) that a phone might send: EXIF with
    camera, GPS IFD and Orientation (6 = turn 90° clockwise to show), XMP, comment, ICC."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = CAMERA
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.IFD.GPSInfo] = dict(GPS)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    xmp = f'<x:xmpmeta xmlns:x="adobe:ns:meta/">{XMP_MARKER}</x:xmpmeta>'.encode()
    return encode(halves(width, height), "JPEG", quality=95, exif=exif, xmp=xmp,
                  comment=COMMENT_MARKER.encode(), icc_profile=srgb)


def make_png(width: int = 40, height: int = 30, alpha: bool = True, text: bool = True) -> bytes:
    """A PNG, transparent on its right half when ``alpha``, with a tEXt chunk when ``text``."""
    if alpha:
        image = halves(width, height, RED + (255,), (0, 0, 0, 0), mode="RGBA")
    else:
        image = halves(width, height, RED, GREEN)
    info = PngImagePlugin.PngInfo()
    if text:
        info.add_text("Comment", TEXT_MARKER)
    return encode(image, "PNG", pnginfo=info)


def make_webp(width: int = 40, height: int = 30, alpha: bool = False) -> bytes:
    if alpha:
        return encode(halves(width, height, GREEN + (255,), (0, 0, 0, 0), mode="RGBA"), "WEBP", lossless=True)
    return encode(halves(width, height, GREEN, BLUE), "WEBP", quality=90)


def make_noisy_jpeg(width: int = 200, height: int = 150, seed: int = 8) -> bytes:
    """A JPEG whose scan data is most of the file, so cutting it in half cuts the pixels."""
    image = Image.frombytes("RGB", (width, height), bytes(
        (i * 7919 + seed * 104729) % 251 for i in range(width * height * 3)))
    return encode(image, "JPEG", quality=95)


def make_png_header(width: int, height: int) -> bytes:
    """A PNG that only declares its size (no pixel data): a decompression bomb's calling card."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IEND", b""))


def leftover_metadata(data: bytes) -> list[str]:
    """The kinds of metadata an image file still carries (empty when clean)."""
    image = Image.open(io.BytesIO(data))
    found = [key for key in ("exif", "xmp", "XML:com.adobe.xmp", "comment", "icc_profile", "Comment")
             if key in image.info]
    if image.getexif():
        found.append("getexif")
    found += [marker.decode() for marker in MARKERS + (b"Exif",) if marker in data]
    return found


def make_icc_swapping_red_and_blue() -> bytes:
    """A minimal RGB display profile (ICC v2, matrix + gamma 2.2) whose red primary is sRGB's
    blue and vice versa: pixels tagged with it must change colour when converted to sRGB."""
    def s15(value):
        return struct.pack(">i", round(value * 65536))

    def xyz(x, y, z):
        return b"XYZ " + bytes(4) + s15(x) + s15(y) + s15(z)

    curve = b"curv" + bytes(4) + struct.pack(">IH", 1, round(2.2 * 256)) + bytes(2)
    red, green, blue = (0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141)
    desc = b"desc" + bytes(4) + struct.pack(">I", 5) + b"swap\x00" + bytes(12) + bytes(67)
    tags = [(b"desc", desc), (b"wtpt", xyz(0.9642, 1.0, 0.8249)), (b"rXYZ", xyz(*blue)),
            (b"gXYZ", xyz(*green)), (b"bXYZ", xyz(*red)), (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    offset = 128 + 4 + 12 * len(tags)
    table, body = [], b""
    for signature, data in tags:
        data += bytes(-len(data) % 4)
        table.append(signature + struct.pack(">II", offset + len(body), len(data)))
        body += data
    size = offset + len(body)
    header = (struct.pack(">I", size) + bytes(4) + bytes([2, 0x10, 0, 0]) + b"mntrRGB XYZ " + bytes(12)
              + b"acsp" + bytes(24) + bytes(4) + s15(0.9642) + s15(1.0) + s15(0.8249) + bytes(48))
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + b"".join(table) + body
