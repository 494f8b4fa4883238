"""Images for vision models: decoded, checked and resized with Pillow (CPU: run in a thread)."""

from __future__ import annotations

import io
import warnings
from typing import Any

from app.errors import INVALID_PAYLOAD, AppError
from app.llm.base import ImagePart

MAX_SIDE = 2048  # longest side sent to a model, in pixels
MAX_PIXELS = 80_000_000  # larger decoded images are refused (decompression bombs)
JPEG_QUALITY = 85


def prepare_image(data: bytes, filename: str, max_side: int = MAX_SIDE) -> ImagePart:
    """The image re-encoded (PNG when it has transparency or was PNG/GIF, else JPEG),
    shrunk so its longest side is at most `max_side`; `invalid_payload` naming the file
    when it cannot be read.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as opened:
                if opened.width * opened.height > MAX_PIXELS:
                    raise AppError(
                        INVALID_PAYLOAD,
                        f"{filename}: the image is too large ({opened.width}x{opened.height} px)",
                    )
                source_format = (opened.format or "").upper()
                opened.seek(0)  # the first frame of an animation
                image = ImageOps.exif_transpose(opened)
                image.load()
    except AppError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError,
            Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise AppError(INVALID_PAYLOAD, f"{filename}: not a readable image ({exc})") from exc
    except Exception as exc:  # a decoder's other failures on hostile input
        raise AppError(INVALID_PAYLOAD, f"{filename}: not a readable image ({exc})") from exc
    try:
        return _encode(image, source_format, max_side)
    except Exception as exc:  # an odd mode or a truncated frame found while re-encoding
        raise AppError(INVALID_PAYLOAD, f"{filename}: not a readable image ({exc})") from exc


def _encode(image: Any, source_format: str, max_side: int) -> ImagePart:
    from PIL import Image

    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    keep_png = source_format in ("PNG", "GIF") or image.mode in ("RGBA", "LA", "P", "PA")
    out = io.BytesIO()
    if keep_png:
        if image.mode not in ("RGB", "RGBA", "L", "LA"):
            image = image.convert("RGBA")
        image.save(out, "PNG", optimize=False)
        return ImagePart("image/png", out.getvalue())
    if image.mode != "RGB":
        image = image.convert("RGB")
    image.save(out, "JPEG", quality=JPEG_QUALITY)
    return ImagePart("image/jpeg", out.getvalue())
