"""Plain images: formats, bit depths, colour types, EXIF orientation, reduced decoding, scale, modality."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from io_helpers import photo, write_image
from engine.io import images
from engine.io.errors import CorruptFileError, ImageTooLargeError, UnsupportedFormatError


def _pil_save(path: Path, img: Image.Image, fmt: str, **kw) -> Path:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    path.write_bytes(buf.getvalue())
    return path


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".tif", ".bmp"])
def test_rgb_formats_keep_channel_order(tmp_path, frozen, suffix):
    rgb = photo()
    path = write_image(tmp_path / f"p{suffix}", rgb)
    check = frozen(tmp_path)
    out = images.read_image(path)
    check()
    assert out.shape == rgb.shape and out.dtype == np.uint8
    tolerance = 8 if suffix == ".jpg" else 0  # lossless formats exact; JPEG within its noise on a noisy photo
    assert np.abs(out.astype(int) - rgb).mean() <= tolerance
    assert out[5, 5, 1] > 200 and out[5, 5, 0] < 60  # green marker stays green: RGB, not BGR
    assert out[100, 100, 0] > out[100, 100, 2]  # reddish photo stays red


def test_grey_png_is_replicated_to_rgb_and_read_grey(tmp_path):
    grey = np.tile(np.arange(256, dtype=np.uint8), (10, 1))
    path = write_image(tmp_path / "g.png", grey)
    rgb = images.read_image(path)
    assert rgb.shape == (10, 256, 3) and (rgb[..., 0] == grey).all() and (rgb[..., 2] == grey).all()
    assert (images.read_image(path, grey=True) == grey).all()


def test_16_bit_png_uses_the_significant_bits_rule(tmp_path):
    twelve_bit = np.array([[0, 2048, 4095, 1000]], np.uint16)
    path = write_image(tmp_path / "12bit.png", twelve_bit)
    out = images.read_image(path, grey=True)
    assert out.dtype == np.uint8
    assert out.tolist() == [[0, 128, 255, round(1000 * 255 / 4095)]]
    full = write_image(tmp_path / "16bit.png", np.array([[0, 65535, 32768]], np.uint16))
    assert images.read_image(full, grey=True).tolist() == [[0, 255, 128]]
    small = write_image(tmp_path / "8in16.png", np.array([[0, 200, 17]], np.uint16))
    assert images.read_image(small, grey=True).tolist() == [[0, 200, 17]]  # fits in 8 bits: kept


def test_16_bit_rgb_tiff(tmp_path):
    rgb16 = (photo().astype(np.uint16) * 257)
    path = write_image(tmp_path / "rgb16.tif", rgb16)
    assert images.probe(path).bits == 16
    out = images.read_image(path)
    assert out.dtype == np.uint8 and np.abs(out.astype(int) - photo()).max() <= 1


def test_to_uint8_never_makes_floats_and_handles_volumes():
    vol = np.full((4, 5, 6), 4095, np.uint16)
    vol[1] = 0
    out = images.to_uint8(vol)
    assert out.dtype == np.uint8 and out.shape == vol.shape
    assert out[0].min() == 255 and out[1].max() == 0
    assert images.to_uint8(np.array([[-5, 300]], np.int16), bits=9).tolist() == [[0, 150]]
    with pytest.raises(UnsupportedFormatError, match="only integer"):
        images.to_uint8(np.zeros((2, 2), np.float32))


def test_rgba_is_composited_on_black(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = (200, 100, 50)
    rgba[:4, :, 3] = 255  # top half opaque
    rgba[4:, :, 3] = 0  # bottom half transparent
    path = _pil_save(tmp_path / "a.png", Image.fromarray(rgba, "RGBA"), "PNG")
    assert images.probe(path).alpha
    out = images.read_image(path)
    assert out.shape == (8, 8, 3)
    assert out[0, 0].tolist() == [200, 100, 50] and out[7, 7].tolist() == [0, 0, 0]


def test_palette_png_and_palette_with_transparency(tmp_path):
    rgb = photo((32, 48))
    pal = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    path = _pil_save(tmp_path / "p.png", pal, "PNG")
    info = images.probe(path)
    assert info.palette and not info.alpha
    out = images.read_image(path)
    assert out.shape == (32, 48, 3)
    assert np.abs(out.astype(int) - np.asarray(pal.convert("RGB"), int)).max() == 0
    pal.info["transparency"] = 0
    path_t = _pil_save(tmp_path / "pt.png", pal, "PNG", transparency=0)
    assert images.probe(path_t).alpha
    assert images.read_image(path_t).shape == (32, 48, 3)


@pytest.mark.parametrize("fmt,suffix", [("JPEG", ".jpg"), ("PNG", ".png")])
def test_exif_orientation_is_honoured(tmp_path, fmt, suffix):
    rgb = photo((60, 100))  # green marker top-left, landscape
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, to be shown rotated 90 degrees clockwise
    path = _pil_save(tmp_path / f"rot{suffix}", Image.fromarray(rgb), fmt, exif=exif.tobytes())
    out = images.read_image(path)
    assert out.shape == (100, 60, 3)  # portrait after rotation
    assert out[5, -6, 1] > 200  # the marker moved from top-left to top-right


def test_exif_orientation_on_the_alpha_path(tmp_path):
    rgba = np.zeros((60, 100, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[:20, :20, :3] = (0, 255, 0)
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 90 degrees counter-clockwise
    path = _pil_save(tmp_path / "rot.png", Image.fromarray(rgba, "RGBA"), "PNG", exif=exif.tobytes())
    out = images.read_image(path)
    assert out.shape == (100, 60, 3)
    assert out[-6, 5, 1] > 200  # top-left marker is now bottom-left


def test_cmyk_jpeg_reads_as_rgb(tmp_path):
    rgb = photo()
    path = _pil_save(tmp_path / "cmyk.jpg", Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=95)
    assert images.probe(path).channels == 4
    out = images.read_image(path)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - rgb).mean() < 12
    assert out[5, 5, 1] > 180 and out[100, 100, 0] > out[100, 100, 2]


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_reduced_jpeg_decoding_uses_libjpeg_scaling(tmp_path, factor):
    rgb = photo((250, 333))
    path = write_image(tmp_path / "r.jpg", rgb)
    out = images.read_image(path, reduce=factor)
    expected = (-(-250 // factor), -(-333 // factor))
    assert out.shape[:2] == expected
    flag = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}[factor]
    reference = cv2.cvtColor(cv2.imread(str(path), flag), cv2.COLOR_BGR2RGB)
    assert np.array_equal(out, reference)  # identical to OpenCV's reduced decode, not a resize of the full one
    grey = images.read_image(path, grey=True, reduce=factor)
    assert grey.shape == expected


def test_reduced_decoding_of_png_shrinks_by_area(tmp_path):
    path = write_image(tmp_path / "r.png", photo((101, 203)))
    assert images.read_image(path, reduce=4).shape == (26, 51, 3)
    with pytest.raises(ValueError, match="reduce"):
        images.read_image(path, reduce=3)


def test_reduction_for_picks_the_largest_factor_that_keeps_the_target():
    assert images.reduction_for((992, 512), (248, 128)) == 4
    assert images.reduction_for((992, 512), (256, 256)) == 2
    assert images.reduction_for((992, 512), (992, 512)) == 1
    assert images.reduction_for((4000, 4000), (256, 256)) == 8


def _png_with_phys(array: np.ndarray, px_per_metre: int) -> bytes:
    ok, buf = cv2.imencode(".png", array)
    data = buf.tobytes()
    payload = struct.pack(">IIB", px_per_metre, px_per_metre, 1)
    chunk = struct.pack(">I", len(payload)) + b"pHYs" + payload
    chunk += struct.pack(">I", zlib.crc32(b"pHYs" + payload) & 0xFFFFFFFF)
    return data[:33] + chunk + data[33:]  # right after IHDR


def test_physical_scale_only_from_a_fine_metric_resolution(tmp_path):
    fine = tmp_path / "fine.png"
    fine.write_bytes(_png_with_phys(photo((40, 50)), 100_000))  # 100 px/mm
    exam = images.load_image_exam(fine)
    assert exam.fundus_spacing is not None and exam.fundus_spacing.source == "file"
    assert exam.fundus_spacing.mm == pytest.approx((0.01, 0.01))
    screen = tmp_path / "screen.png"
    screen.write_bytes(_png_with_phys(photo((40, 50)), 2835))  # 72 dpi: a print setting, not a retina's scale
    assert images.load_image_exam(screen).fundus_spacing is None
    jpeg = write_image(tmp_path / "plain.jpg", photo())
    assert images.load_image_exam(jpeg).fundus_spacing is None


def test_modality_guess_and_forced_modality(tmp_path):
    colour = write_image(tmp_path / "colour.png", photo())
    assert images.load_image_exam(colour).modalities == ("fundus",)
    bscan = write_image(tmp_path / "scan.png", np.random.default_rng(0).integers(0, 255, (496, 768), np.uint8))
    exam = images.load_image_exam(bscan)
    assert exam.modalities == ("oct",) and exam.oct.shape == (1, 496, 768)
    assert exam.bscan_files == [str(bscan)]
    assert any("grey image read as one OCT B-scan" in n for n in exam.provenance.notes)
    big_grey = write_image(tmp_path / "redfree.png", np.full((1700, 1800), 90, np.uint8))
    assert images.load_image_exam(big_grey).modalities == ("fundus",)
    crop = write_image(tmp_path / "crop.png", np.full((100, 100), 90, np.uint8))
    assert images.load_image_exam(crop).modalities == ("fundus",)
    xray = images.load_image_exam(colour, modality="xray", exam_id="X1")
    assert xray.modalities == ("xray",) and xray.xray.shape == (240, 320) and xray.exam_id == "X1"
    assert xray.provenance.files[0].sha256 == images.sha256_bytes(colour.read_bytes())


def test_probe_reads_only_the_header_of_a_large_file(tmp_path):
    path = write_image(tmp_path / "big.png", np.zeros((1200, 1400, 3), np.uint8) + 7)
    info = images.probe(path)
    assert (info.width, info.height, info.format, info.channels, info.bits) == (1400, 1200, "PNG", 3, 8)


def test_unsupported_and_odd_formats_have_clear_messages(tmp_path):
    gif = _pil_save(tmp_path / "a.gif", Image.fromarray(photo((8, 8))), "GIF")
    with pytest.raises(UnsupportedFormatError, match="is a GIF image; only JPEG, PNG, TIFF and BMP"):
        images.read_image(gif)
    floating = _pil_save(tmp_path / "f.tif", Image.fromarray(np.ones((4, 4), np.float32)), "TIFF")
    with pytest.raises(UnsupportedFormatError, match="floating-point TIFF"):
        images.read_image(floating)
    folder = tmp_path / "dir.jpg"
    folder.mkdir()
    with pytest.raises(UnsupportedFormatError, match="is a folder"):
        images.read_image(folder)
    png_named_jpg = tmp_path / "really_png.jpg"
    png_named_jpg.write_bytes(write_image(tmp_path / "x.png", photo()).read_bytes())
    assert images.read_image(png_named_jpg).shape == (240, 320, 3)  # content decides, not the name


def test_jpeg_with_a_missing_end_marker_is_truncated(tmp_path):
    data = write_image(tmp_path / "ok.jpg", photo()).read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[:-2])
    with pytest.raises(CorruptFileError, match="truncated: the JPEG end-of-image marker is missing"):
        images.read_image(cut)


def test_the_pixel_cap_is_a_parameter(tmp_path):
    path = write_image(tmp_path / "p.png", photo((100, 100)))
    with pytest.raises(ImageTooLargeError, match="above the safety cap of 9,999"):
        images.read_image(path, max_pixels=9_999)
