"""Turn downloaded bytes into one normalised RGB JPEG.

Decoding is guarded (the pixel count is checked from the header, before any
pixel is decoded); EXIF orientation is applied; transparency is composited on
the background colour; CMYK, palette, grey and 16-bit images become RGB. Then
the image is resized by ``resize_mode`` and encoded as JPEG.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

RESIZE_MODES = ("pad", "keep_ratio", "center_crop", "none")
# download.resample: how an image is scaled. Pillow's filters (after JPEG draft
# decoding and, past 3x, an integer reduce()); "area": OpenCV's INTER_AREA (the
# mean of the source pixels each output pixel covers, img2dataset's choice for
# downscaling) and INTER_CUBIC to enlarge; "box": Pillow's area filter (the same
# averaging) and bicubic to enlarge. Speed and quality are measured in
# docs/performance.md (tests/tools/bench_resample.py).
PIL_FILTERS = {"lanczos": Image.Resampling.LANCZOS, "bicubic": Image.Resampling.BICUBIC,
               "bilinear": Image.Resampling.BILINEAR, "box": Image.Resampling.BOX}
RESAMPLE = ("area", "box", "bilinear", "bicubic", "lanczos")


class ImageError(Exception):
    """A body that is not a usable image; ``kind`` goes to the status file."""

    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


def _to_rgb(im: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode in ("P", "L", "RGB") and "transparency" in im.info)
    if has_alpha:
        rgba = im.convert("RGBA")
        out = Image.new("RGB", rgba.size, background)
        out.paste(rgba, mask=rgba.getchannel("A"))
        return out
    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit grey: scale to 8 bits instead of clipping at 255.
        im = im.point(lambda v: v / 256).convert("L")
    return im.convert("RGB")


def _draft_size(original: tuple[int, int], mode: str, size: int, resample: str) -> tuple[int, int]:
    """The least size to decode at. The area averages (box, area) ask for the
    output's own shape, so the decoder's scaling (itself an average of each
    8x8 block) does more of the work; the others keep the square of ``size``
    they always asked for (their bytes are those of earlier runs)."""
    if resample not in ("box", "area"):
        return size, size
    w, h = original
    side = min(w, h) if mode == "center_crop" else max(w, h)
    return max(1, -(-size * w // side)), max(1, -(-size * h // side))


def _scaled(im: Image.Image, new: tuple[int, int], resample: str) -> Image.Image:
    down = new[0] < im.size[0]
    if resample == "area":
        import cv2
        cv2.setNumThreads(1)     # one image per thread: the download's threads and processes use the cores
        arr = cv2.resize(np.asarray(im), new, interpolation=cv2.INTER_AREA if down else cv2.INTER_CUBIC)
        return Image.fromarray(arr)
    if resample == "box" and not down:
        resample = "bicubic"
    return im.resize(new, PIL_FILTERS[resample], reducing_gap=3.0 if down else None)


def _resize(im: Image.Image, mode: str, size: int, upscale: bool, resample: str) -> Image.Image:
    w, h = im.size
    if mode == "none":
        return im
    if mode == "center_crop":
        scale = size / min(w, h)
    else:
        scale = size / max(w, h)
    if scale > 1 and not upscale:
        scale = 1.0
    if scale != 1:
        im = _scaled(im, (max(1, round(w * scale)), max(1, round(h * scale))), resample)
    w, h = im.size
    if mode == "center_crop" and (w > size or h > size):
        left, top = (w - min(w, size)) // 2, (h - min(h, size)) // 2
        im = im.crop((left, top, left + min(w, size), top + min(h, size)))
    return im


def normalise(data: bytes, dc: dict) -> tuple[bytes, tuple[int, int], tuple[int, int]]:
    """bytes -> (JPEG bytes, original size, output size); raises ImageError."""
    mode = dc["resize_mode"]
    size = dc["image_size"]
    background = tuple(dc["background"])
    try:
        im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise ImageError("too_many_pixels", str(e)[:200]) from None
    except UnidentifiedImageError:
        raise ImageError("not_image", "no image format recognised") from None
    except Exception as e:  # a known format whose header is cut or broken
        raise ImageError("decode_error", f"{type(e).__name__}: {str(e)[:160]}") from None
    original = im.size
    if original[0] * original[1] > dc["max_pixels"]:
        raise ImageError("too_many_pixels", f"{original[0]}x{original[1]} over {dc['max_pixels']} pixels")
    try:
        if im.format == "JPEG" and mode != "none":
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale when that still covers
            # the target: the largest single speed-up for big photos.
            im.draft("RGB", _draft_size(original, mode, size, dc["resample"]))
        im.load()
        im = ImageOps.exif_transpose(im)
        im = _to_rgb(im, background)
        im = _resize(im, mode, size, dc["upscale"], dc["resample"])
        if mode == "pad" and im.size != (size, size) and max(im.size) <= size:
            canvas = Image.new("RGB", (size, size), background)
            canvas.paste(im, ((size - im.size[0]) // 2, (size - im.size[1]) // 2))
            im = canvas
        out = io.BytesIO()
        im.save(out, "JPEG", quality=dc["jpeg_quality"])
    except Image.DecompressionBombError as e:
        raise ImageError("too_many_pixels", str(e)[:200]) from None
    except Exception as e:  # truncated data, broken chunks, unsupported modes ...
        raise ImageError("decode_error", f"{type(e).__name__}: {str(e)[:160]}") from None
    return out.getvalue(), original, im.size
