"""Photo uploads: what is accepted, what comes out, and how files are stored. No database."""
import hashlib
import io
import warnings

import pytest
from PIL import ExifTags, Image

from app.ops.errors import Invalid, TooLarge
from app.ops.photos import PhotoRejected, PhotoStore, PhotoTooLarge, PhotoUnreadable
from tests.images import (BLUE, CAMERA, RED, encode, halves, leftover_metadata, make_icc_swapping_red_and_blue,
                          make_jpeg_with_gps, make_noisy_jpeg, make_png, make_png_header, make_webp)


@pytest.fixture
def photos(tmp_path):
    return PhotoStore(tmp_path / "uploads")


def stored(store, photo):
    path, mime = store.open(photo.sha256)
    return path.read_bytes(), mime


def decoded(data):
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def near(pixel, colour, tolerance=40):
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour))


def rejected(store, blobs):
    with pytest.raises(PhotoRejected) as caught:
        store.ingest_all(blobs)
    return caught.value


def files_under(directory):
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())


# --- what comes out ---------------------------------------------------------------------------

def test_phone_jpeg_loses_all_metadata_and_is_turned_upright(photos):
    original = make_jpeg_with_gps(64, 48, orientation=6)
    assert {"exif", "xmp", "comment", "icc_profile", "Exif", CAMERA} <= set(leftover_metadata(original))
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(ExifTags.IFD.GPSInfo)

    [photo] = photos.ingest_all([original])
    data, mime = stored(photos, photo)
    image = decoded(data)
    assert mime == photo.mime == "image/jpeg" and image.format == "JPEG"
    assert leftover_metadata(data) == []
    assert not image.getexif() and not image.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    assert b"Exif" not in data and b"GPS" not in data
    # Orientation 6: the stored 64×48 is shown turned a quarter clockwise, so it is 48×64 and
    # the stored left (red) half is now on top.
    assert (photo.width, photo.height) == image.size == (48, 64)
    assert near(image.getpixel((24, 8)), RED) and near(image.getpixel((24, 56)), BLUE)


def test_without_orientation_nothing_turns(photos):
    [photo] = photos.ingest_all([make_jpeg_with_gps(64, 48, orientation=1)])
    image = decoded(stored(photos, photo)[0])
    assert image.size == (64, 48)
    assert near(image.getpixel((8, 24)), RED) and near(image.getpixel((56, 24)), BLUE)


@pytest.mark.parametrize("size, expected", [((4000, 3000), (2048, 1536)), ((1000, 3000), (683, 2048)),
                                            ((2048, 100), (2048, 100)), ((64, 48), (64, 48))])
def test_longest_side_is_scaled_down_to_2048_never_up(photos, size, expected):
    [photo] = photos.ingest_all([encode(halves(*size), "JPEG")])
    assert (photo.width, photo.height) == decoded(stored(photos, photo)[0]).size == expected


def test_png_with_transparency_stays_png_and_keeps_its_alpha(photos):
    [photo] = photos.ingest_all([make_png(40, 30, alpha=True)])
    data, mime = stored(photos, photo)
    image = decoded(data)
    assert mime == photo.mime == "image/png" and image.format == "PNG" and image.mode == "RGBA"
    assert image.getpixel((5, 5)) == RED + (255,) and image.getpixel((35, 5))[3] == 0
    assert leftover_metadata(data) == []


def test_png_text_chunk_is_stripped(photos):
    original = make_png(40, 30, alpha=True, text=True)
    assert "Comment" in leftover_metadata(original)
    [photo] = photos.ingest_all([original])
    data, _ = stored(photos, photo)
    assert leftover_metadata(data) == [] and decoded(data).text == {}
    assert b"tEXt" not in data and b"iTXt" not in data and b"zTXt" not in data


@pytest.mark.parametrize("mode, fmt", [("RGB", "JPEG"), ("RGBA", "PNG")])
def test_colours_are_converted_to_srgb_and_the_profile_dropped(photos, mode, fmt):
    # Tagged with a profile whose "red" is blue: shown correctly, the pixels are blue.
    colour = (255, 0, 0, 128)[: len(mode)]
    original = encode(Image.new(mode, (16, 16), colour), fmt, icc_profile=make_icc_swapping_red_and_blue())
    [photo] = photos.ingest_all([original])
    data, _ = stored(photos, photo)
    image = decoded(data)
    assert near(image.getpixel((8, 8)), (0, 0, 255, 128)[: len(mode)], tolerance=10)
    assert leftover_metadata(data) == []


def test_a_broken_colour_profile_is_dropped_and_the_pixels_kept(photos):
    original = encode(Image.new("RGBA", (16, 16), RED + (128,)), "PNG", icc_profile=b"not a profile" * 20)
    [photo] = photos.ingest_all([original])
    data, _ = stored(photos, photo)
    assert decoded(data).getpixel((8, 8)) == RED + (128,) and leftover_metadata(data) == []


def test_opaque_png_and_webp_become_jpeg(photos):
    opaque_rgba = encode(Image.new("RGBA", (20, 10), RED + (255,)), "PNG")
    found = photos.ingest_all([make_png(alpha=False), make_webp(40, 30), opaque_rgba])
    assert [p.mime for p in found] == ["image/jpeg"] * 3
    assert [(p.width, p.height) for p in found] == [(40, 30), (40, 30), (20, 10)]


def test_webp_with_transparency_becomes_png(photos):
    [photo] = photos.ingest_all([make_webp(40, 30, alpha=True)])
    image = decoded(stored(photos, photo)[0])
    assert photo.mime == "image/png" and image.getpixel((35, 5))[3] == 0 and image.getpixel((5, 5))[3] == 255


def test_palette_png_with_transparent_colour_becomes_png(photos):
    image = Image.new("P", (10, 10), 0)
    image.putpalette([255, 0, 0, 0, 0, 255])
    image.paste(1, (5, 0, 10, 10))
    [photo] = photos.ingest_all([encode(image, "PNG", transparency=1)])
    out = decoded(stored(photos, photo)[0])
    assert photo.mime == "image/png" and out.getpixel((2, 2)) == (255, 0, 0, 255) and out.getpixel((7, 2))[3] == 0


def test_sixteen_bit_grey_png_is_scaled_not_clipped_to_white(photos):
    [photo] = photos.ingest_all([encode(Image.new("I;16", (8, 8), 40000), "PNG")])
    grey = decoded(stored(photos, photo)[0]).getpixel((4, 4))
    assert near(grey, (156, 156, 156), tolerance=3)  # 40000 / 256 ≈ 156


def test_cmyk_jpeg_and_multi_picture_jpeg_are_accepted(photos):
    cmyk = encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG")
    second = Image.new("RGB", (16, 16), BLUE)
    mpo = encode(Image.new("RGB", (16, 16), RED), "MPO", save_all=True, append_images=[second])
    assert Image.open(io.BytesIO(mpo)).format == "MPO"
    found = photos.ingest_all([cmyk, mpo])
    images = [decoded(stored(photos, p)[0]) for p in found]
    assert [(i.format, i.mode) for i in images] == [("JPEG", "RGB")] * 2
    assert near(images[0].getpixel((8, 8)), (255, 0, 0), tolerance=60)  # no ink in the cyan/black plates
    assert near(images[1].getpixel((8, 8)), RED)  # the first picture


def test_animated_webp_keeps_its_first_frame(photos):
    frames = [Image.new("RGB", (16, 16), RED), Image.new("RGB", (16, 16), BLUE)]
    animated = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    [photo] = photos.ingest_all([animated])
    assert near(decoded(stored(photos, photo)[0]).getpixel((8, 8)), RED)


# --- what is refused --------------------------------------------------------------------------

def _pdf():
    return encode(Image.new("RGB", (20, 20), RED), "PDF")


REFUSED = {
    "gif": lambda: encode(Image.new("RGB", (20, 20), RED), "GIF"),
    "bmp": lambda: encode(Image.new("RGB", (20, 20), RED), "BMP"),
    "tiff": lambda: encode(Image.new("RGB", (20, 20), RED), "TIFF"),
    "pdf": _pdf,
    "heic": lambda: b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(200),
    "svg": lambda: b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect/></svg>',
    "text": lambda: "就是一段文字 just some text\n".encode() * 20,
    "random": lambda: __import__("random").Random(8).randbytes(5000),
}


@pytest.mark.parametrize("kind", sorted(REFUSED))
def test_other_formats_are_refused_with_a_clear_message(photos, tmp_path, kind):
    error = rejected(photos, [make_png(), REFUSED[kind]()])
    assert type(error) is PhotoRejected and isinstance(error, Invalid)
    assert (error.status, error.code, error.field) == (400, "unsupported_image", "photos")
    assert error.message == "photo 2 is not a JPEG, PNG or WebP image"
    assert not (tmp_path / "uploads").exists() or files_under(tmp_path / "uploads") == []


def test_empty_file_is_refused(photos):
    error = rejected(photos, [b""])
    assert error.code == "unsupported_image" and error.message == "photo 1 is empty"


@pytest.mark.parametrize("make", [make_noisy_jpeg, lambda: make_png(200, 150, alpha=False, text=False)])
def test_truncated_file_is_unreadable(photos, make):
    whole = make()
    assert decoded(whole)  # the whole file is fine
    error = rejected(photos, [whole[: len(whole) // 2]])
    assert type(error) is PhotoUnreadable and error.status == 400 and error.code == "image_unreadable"
    assert error.message == "photo 1 could not be read; the file is damaged or incomplete"


def test_size_limit_is_checked_before_decoding(tmp_path):
    png = make_png(alpha=False, text=False)
    store = PhotoStore(tmp_path, max_bytes=len(png))
    assert len(store.ingest_all([png])) == 1  # exactly at the limit is fine
    # One byte over: refused as too large, not as unreadable garbage, so never decoded.
    error = rejected(store, [png, b"x" * (len(png) + 1)])
    assert type(error) is PhotoTooLarge and isinstance(error, TooLarge)
    assert (error.status, error.code) == (413, "image_too_large")
    assert error.message == f"photo 2 is larger than {len(png):,} bytes"


def test_default_limit_is_ten_megabytes(photos):
    error = rejected(photos, [b"\xff" * (10 * 1024 * 1024 + 1)])
    assert error.code == "image_too_large" and error.message == "photo 1 is larger than 10 MB"


def test_pixel_limit_is_checked_from_the_header_before_decoding(tmp_path):
    store = PhotoStore(tmp_path, max_pixels=100 * 100)
    assert len(store.ingest_all([encode(Image.new("RGB", (100, 100), RED), "PNG")])) == 1
    # The header alone says 101 × 100; there are no pixels to decode, so "too large" (not
    # "unreadable") shows the header was enough.
    error = rejected(store, [make_png_header(101, 100)])
    assert type(error) is PhotoTooLarge and error.code == "image_too_large"
    assert error.message == "photo 1 has too many pixels (at most 10,000)"


def test_default_pixel_limit_is_pillows(photos):
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # Pillow's default, not loosened anywhere
    error = rejected(photos, [make_png_header(10_000, 8_948)])  # 89,480,000 pixels
    assert error.message == "photo 1 has too many pixels (at most 89,478,485)"


@pytest.mark.parametrize("width, height", [(20000, 20000), (10000, 9000)])
def test_pillows_decompression_bomb_guard_is_kept_and_refuses(tmp_path, width, height):
    # Even a store allowing more pixels keeps Pillow's guard: 400 Mpx is beyond twice its
    # MAX_IMAGE_PIXELS (its error), 90 Mpx just above it (its warning, which must refuse too).
    store = PhotoStore(tmp_path, max_pixels=10**12)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        error = rejected(store, [make_png_header(width, height)])
    assert type(error) is PhotoTooLarge and error.status == 413
    assert error.message == "photo 1 has too many pixels (at most 89,478,485)"
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]


# --- storage ----------------------------------------------------------------------------------

def test_files_are_named_by_the_hash_of_what_is_stored(photos, tmp_path):
    found = photos.ingest_all([make_jpeg_with_gps(), make_png()])
    root = tmp_path / "uploads"
    assert files_under(root) == sorted(f"{p.sha256[:2]}/{p.sha256}.{ext}" for p, ext in zip(found, ["jpg", "png"]))
    for photo, ext in zip(found, ["jpg", "png"]):
        path, mime = photos.open(photo.sha256)
        assert (path, mime) == (root / photo.sha256[:2] / f"{photo.sha256}.{ext}", photo.mime)
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == photo.sha256 and len(data) == photo.size and photo.created


def test_same_photo_twice_is_stored_once(photos, tmp_path):
    jpeg = make_jpeg_with_gps()
    [first] = photos.ingest_all([jpeg])
    before = stored(photos, first)[0]
    [second] = photos.ingest_all([jpeg])
    assert second.sha256 == first.sha256 and (first.created, second.created) == (True, False)
    again = photos.ingest_all([make_png(), make_png()])
    assert again[0].sha256 == again[1].sha256 and [p.created for p in again] == [True, False]
    assert stored(photos, first)[0] == before
    assert len(files_under(tmp_path / "uploads")) == 2  # no temporary files left behind


def test_a_bad_photo_stores_none_of_the_batch(photos, tmp_path):
    error = rejected(photos, [make_jpeg_with_gps(), make_png(), b"not an image"])
    assert error.message == "photo 3 is not a JPEG, PNG or WebP image"
    assert not (tmp_path / "uploads").exists() or files_under(tmp_path / "uploads") == []


def test_a_failed_write_removes_what_this_call_created_and_keeps_the_rest(tmp_path):
    a, b, c = make_jpeg_with_gps(), make_png(), make_webp(alpha=True)
    probe = PhotoStore(tmp_path / "probe").ingest_all([a, b, c])
    assert len({p.sha256[:2] for p in probe}) == 3  # three different sub-directories
    store = PhotoStore(tmp_path / "uploads")
    [kept] = store.ingest_all([a])
    (tmp_path / "uploads" / probe[2].sha256[:2]).write_bytes(b"")  # c's directory cannot be made
    with pytest.raises(OSError):
        store.ingest_all([a, b, c])
    assert store.open(kept.sha256) is not None  # stored before this call: kept
    assert store.open(probe[1].sha256) is None  # created by this call: removed


def test_discard_removes_only_the_files_it_created(photos):
    [old] = photos.ingest_all([make_png()])
    batch = photos.ingest_all([make_png(), make_jpeg_with_gps()])
    assert [p.created for p in batch] == [False, True]
    photos.discard(batch)
    assert photos.open(old.sha256) is not None and photos.open(batch[1].sha256) is None
    photos.discard(batch)  # already gone: no error


@pytest.mark.parametrize("name", ["", "abc", "A" * 64, "g" * 64, "0" * 63, "0" * 65, "../" + "0" * 61,
                                  "0" * 62 + "/x", None, 42])
def test_open_refuses_anything_but_a_lower_case_sha256(photos, name):
    photos.ingest_all([make_png()])
    assert photos.open(name) is None


def test_open_unknown_hash_is_none(photos):
    [photo] = photos.ingest_all([make_png()])
    unknown = ("0" if photo.sha256[0] != "0" else "1") + photo.sha256[1:]
    assert photos.open(unknown) is None
    assert photos.open(photo.sha256.upper()) is None


def test_the_store_does_not_touch_the_disk_until_it_writes(tmp_path):
    PhotoStore(tmp_path / "uploads")
    with pytest.raises(PhotoRejected):
        PhotoStore(tmp_path / "uploads").ingest_all([b"nope"])
    assert not (tmp_path / "uploads").exists()
