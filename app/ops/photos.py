"""Uploaded photos: validate, clean and store them by content hash. Pure: no Flask, no database.

Every upload is decoded and re-encoded from its pixels, never stored as sent:

* **Accepted** are JPEG (including the multi-picture JPEGs some phones write), PNG and WebP,
  judged by the content, whatever the file is called; only those three parsers ever see
  the bytes. iPhones hand browsers HEIC photos as JPEG; a real HEIC, GIF, SVG, PDF or
  anything else is refused. Animated PNG / WebP keep their first frame.
* **Size**: at most ``max_bytes`` (10 MB) per file, checked before decoding; at most
  ``Image.MAX_IMAGE_PIXELS`` pixels (Pillow's decompression-bomb guard, kept, with its
  warning turned into a refusal), checked from the header before the pixels are decoded.
* **Cleaned**: the EXIF orientation is applied, the longest side scaled down to ``max_side``
  (LANCZOS), colours converted to sRGB when the file carries an ICC profile (the profile is
  then dropped; phones tag their photos Display P3, which looks washed out without it), and
  a fresh image is built from the pixels alone, so nothing else of the original survives:
  no EXIF (GPS position, camera, time), XMP, comments, PNG text chunks or ICC profile.
* **Encoded** as JPEG quality 85 when the image is opaque (an alpha channel that is opaque
  everywhere counts as none) and as PNG when it really has transparency: images with
  transparency are screenshots, stickers and marked-up pictures rather than camera photos;
  lossless keeps their sharp edges, PNG is readable by every client (mail, webhooks' chat
  apps, Open311 consumers) and such images are rare and small enough not to matter.

Files are named by the SHA-256 of the encoded bytes, ``<dir>/<first two hex>/<sha256>.<ext>``,
written to a temporary file in the same directory and linked into place, so a reader never
sees half a file, and the same photo is stored once (``Photo.created`` says whether this
call wrote it; only those files are removed again by ``discard``).
"""
from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from app.ops.errors import Invalid, TooLarge

MAX_PHOTOS = 3  # per report (issue #8); the caller enforces it, ingest_all takes any number
MAX_BYTES = 10 * 1024 * 1024
MAX_SIDE = 2048

# Pillow's names of the formats we read; MPO is a JPEG with extra pictures appended.
READ_FORMATS = ("JPEG", "PNG", "WEBP")
ACCEPTED = {"JPEG", "MPO", "PNG", "WEBP"}
# What we write: mime -> (Pillow format, file extension, encoder options).
OUTPUTS = {
    "image/jpeg": ("JPEG", "jpg", {"quality": 85, "optimize": True}),
    "image/png": ("PNG", "png", {"optimize": True}),
}
_SHA256 = re.compile(r"[0-9a-f]{64}")
_SRGB = ImageCms.createProfile("sRGB")


class PhotoRejected(Invalid):
    """An upload that is not a JPEG, PNG or WebP image (or is empty)."""

    code = "unsupported_image"

    def __init__(self, message: str):
        super().__init__(message, field="photos")


class PhotoUnreadable(PhotoRejected):
    """A JPEG, PNG or WebP that cannot be decoded: truncated or damaged."""

    code = "image_unreadable"


class PhotoTooLarge(PhotoRejected, TooLarge):
    """Too many bytes or too many pixels. Still a ``PhotoRejected`` (so one ``except`` catches
    every refused photo) but answered 413 like any other ``TooLarge``."""

    status, code = TooLarge.status, "image_too_large"


@dataclass(frozen=True)
class Photo:
    sha256: str
    mime: str
    width: int
    height: int
    size: int  # bytes of the stored file
    created: bool  # this call wrote the file (it was not already stored)


@dataclass(frozen=True)
class _Encoded:
    data: bytes
    mime: str
    width: int
    height: int


class PhotoStore:
    """The upload directory. ``max_pixels`` can lower Pillow's ``Image.MAX_IMAGE_PIXELS``."""

    def __init__(self, directory, max_bytes: int = MAX_BYTES, max_side: int = MAX_SIDE,
                 max_pixels: int | None = None):
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.max_side = max_side
        self.max_pixels = max_pixels

    def ingest_all(self, blobs: list[bytes]) -> list[Photo]:
        """Clean and store every blob, all or nothing: each is validated and encoded before
        any file is written, and if writing fails the files this call created are removed.
        Raises a ``PhotoRejected`` naming the first bad photo by its position (1-based)."""
        encoded = [self._encode(blob, position) for position, blob in enumerate(blobs, 1)]
        photos: list[Photo] = []
        try:
            for item in encoded:
                photos.append(self._write(item))
        except BaseException:
            self.discard(photos)
            raise
        return photos

    def discard(self, photos) -> None:
        """Remove the files that were created for ``photos`` (after the database write that was
        to reference them failed). Files that were already stored are someone else's: kept."""
        for photo in photos:
            if photo.created:
                self._path(photo.sha256, photo.mime).unlink(missing_ok=True)

    def open(self, sha256: str) -> tuple[Path, str] | None:
        """The stored file's path and mime type, or None (unknown, or not a lower-case hex
        SHA-256 — which also keeps any path trickery out of the file system)."""
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
            return None
        for mime in OUTPUTS:
            path = self._path(sha256, mime)
            if path.is_file():
                return path, mime
        return None

    def stored(self) -> list[Path]:
        """Every stored photo, relative to the directory (a backup's list): finished files only,
        never the temporary ``.upload-*`` file a request is still writing."""
        if not self.directory.is_dir():
            return []
        extensions = {ext for _, ext, _ in OUTPUTS.values()}
        return sorted(path.relative_to(self.directory) for path in self.directory.glob("??/*.*")
                      if path.is_file() and path.suffix[1:] in extensions and _SHA256.fullmatch(path.stem)
                      and path.parent.name == path.stem[:2])

    def _write(self, item: _Encoded) -> Photo:
        sha256 = hashlib.sha256(item.data).hexdigest()
        path = self._path(sha256, item.mime)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".upload-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(item.data)
                file.flush()
                os.fsync(file.fileno())  # photos survive a crash, not only a restart
            created = _place(temp, path)
        finally:
            Path(temp).unlink(missing_ok=True)
        return Photo(sha256, item.mime, item.width, item.height, len(item.data), created)

    def _path(self, sha256: str, mime: str) -> Path:
        return self.directory / sha256[:2] / f"{sha256}.{OUTPUTS[mime][1]}"

    def _encode(self, blob: bytes, position: int) -> _Encoded:
        name = f"photo {position}"
        if len(blob) > self.max_bytes:
            raise PhotoTooLarge(f"{name} is larger than {_amount(self.max_bytes)}")
        if not blob:
            raise PhotoRejected(f"{name} is empty")
        image = self._decode(blob, name)
        mime = "image/png" if image.mode == "RGBA" else "image/jpeg"
        # A fresh image from the pixels alone: nothing of the original's info (EXIF, XMP,
        # ICC, comments, text chunks) can reach the encoder.
        clean = Image.frombytes(image.mode, image.size, image.tobytes())
        out = io.BytesIO()
        pillow_format, _, options = OUTPUTS[mime]
        clean.save(out, pillow_format, **options)
        return _Encoded(out.getvalue(), mime, clean.width, clean.height)

    def _decode(self, blob: bytes, name: str) -> Image.Image:
        """The upright, downscaled RGB or RGBA pixels of an accepted image."""
        # Pillow's guard always applies (it reads the module global); max_pixels can only tighten it.
        limit = min((n for n in (self.max_pixels, Image.MAX_IMAGE_PIXELS) if n is not None), default=None)
        too_many_pixels = f"{name} has too many pixels (at most {limit or 0:,})"
        unsupported = f"{name} is not a JPEG, PNG or WebP image"
        try:
            with warnings.catch_warnings():
                # Pillow only warns between 1× and 2× its limit; here that refuses too. (The
                # filter is process-wide while it lasts; the explicit check below covers a
                # thread that restores the filters at the wrong moment.)
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(io.BytesIO(blob), formats=READ_FORMATS) as image:
                    if image.format not in ACCEPTED:
                        raise PhotoRejected(unsupported)
                    if limit is not None and image.width * image.height > limit:
                        raise PhotoTooLarge(too_many_pixels)
                    # JPEG only: decode at 1/2, 1/4 or 1/8 scale when still >= max_side.
                    image.draft(None, (self.max_side, self.max_side))
                    image.load()
                    icc = image.info.get("icc_profile")
                    upright = ImageOps.exif_transpose(image)
                    pixels = _to_rgb_or_rgba(upright)
                    pixels = _shrink(pixels, self.max_side)
                    return _to_srgb(pixels, icc) if icc else pixels
        except PhotoRejected:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise PhotoTooLarge(too_many_pixels) from None
        except UnidentifiedImageError:
            raise PhotoRejected(unsupported) from None
        except Exception:
            # Pillow's parsers answer hostile or damaged input with a zoo of exception types
            # (OSError, ValueError, SyntaxError, struct.error, EOFError, ...); whichever it is,
            # the upload is at fault, and it must come back as a 4xx, never a 500.
            raise PhotoUnreadable(
                f"{name} could not be read; the file is damaged or incomplete") from None


def _to_rgb_or_rgba(image: Image.Image) -> Image.Image:
    """RGBA when some pixel is not fully opaque, else RGB (8 bits per channel)."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        # 16-bit greyscale PNG: a plain convert would clip everything above 255 to white.
        image = image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        if rgba.getchannel("A").getextrema()[0] < 255:
            return rgba
    return image.convert("RGB")


def _place(temp: str, path: Path) -> bool:
    """Put the finished temporary file at ``path``; False when it was there already.

    A hard link never replaces an existing file, so of two requests storing the same photo at
    once exactly one is told it created it (and may ``discard`` it). File systems without hard
    links fall back to a check and an atomic ``os.replace``, which is as good unless racing."""
    try:
        os.link(temp, path)
        return True
    except FileExistsError:
        return False
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EXDEV):
            raise
    if path.exists():
        return False
    os.replace(temp, path)
    return True


def _shrink(image: Image.Image, max_side: int) -> Image.Image:
    longest = max(image.size)
    if longest <= max_side:
        return image
    scale = max_side / longest
    size = tuple(min(max_side, max(1, round(side * scale))) for side in image.size)
    return image.resize(size, Image.Resampling.LANCZOS)


def _to_srgb(image: Image.Image, icc: bytes) -> Image.Image:
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.profileToProfile(image, source, _SRGB, outputMode=image.mode)
    except (ImageCms.PyCMSError, OSError, ValueError):
        # A broken profile, or one for another colour space than the pixels: show the pixels
        # as sRGB, the way a browser would.
        return image


def _amount(size: int) -> str:
    megabytes, rest = divmod(size, 1024 * 1024)
    return f"{megabytes} MB" if megabytes and not rest else f"{size:,} bytes"
