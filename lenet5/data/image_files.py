"""Reading a user's image file (PNG, JPEG, BMP, PGM, anything Pillow opens) as a 2-D greyscale
array, for `lenet5.data.digits`. Pillow is the optional `[images]` extra.

Memory stays bounded whatever the file claims: only a regular file is opened (a FIFO would
block forever); the size in the header is checked before any pixel is decoded (over
MAX_PIXELS: a one-line error, where Pillow would only warn); a JPEG is decoded at a reduced
scale (`draft`); everything else is reduced to at most MAX_SIDE pixels a side right after
decoding, by box averaging (`reduce`, the same area averaging `digit_from_ink` does), before
any float copy is made. The digit ends up 20 pixels tall, so nothing it needs is lost.
"""
import re
import warnings

import numpy as np

from ..errors import Lenet5Error
from ..files import UnreadableFile, open_regular

NEEDS_PILLOW = 'needs Pillow to read images: pip install -e ".[images]"'
MAX_PIXELS = 40_000_000  # the largest image decoded at full size (e.g. 8000 x 5000)
MAX_SIDE = 2048  # longer side an image is reduced to before any float copy


def pillow_image(command="lenet5 predict"):
    """PIL.Image, or Lenet5Error naming the `[images]` extra."""
    try:
        from PIL import Image, ImageOps  # noqa: F401
    except ImportError:
        raise Lenet5Error(f"{command} {NEEDS_PILLOW}") from None
    return Image


def read_grayscale(path, command="lenet5 predict"):
    """The image at `path` as a 2-D array, at most MAX_SIDE pixels a side: uint8 for 8-bit
    images, float 0..1 for 16-bit and float ones (stretched between their darkest and lightest
    pixel). The camera's EXIF rotation is applied; a transparent background counts as white
    paper. Lenet5Error (the reason, without the path) if unreadable or too large."""
    Image = pillow_image(command)
    from PIL import UnidentifiedImageError

    try:
        with open_regular(path) as f, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(f) as img:
                return _decode(img, Image)
    except UnreadableFile as e:
        raise Lenet5Error(str(e)) from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        pixels = re.search(r"\((\d+) pixels\)", str(e))
        claims = f"{int(pixels[1]) / 1e6:.1f} million pixels" if pixels else "too many pixels"
        raise Lenet5Error(f"the image claims {claims}; lenet5 reads images of at most "
                          f"{MAX_PIXELS / 1e6:.0f} million pixels: scale it down first") from None
    except UnidentifiedImageError:
        raise Lenet5Error("not an image file Pillow can read (unknown format, or corrupt)") from None
    except Lenet5Error:
        raise
    except MemoryError:
        raise Lenet5Error("not enough memory to decode the image") from None
    except Exception as e:  # Pillow reports bad data through many types (OSError, ValueError, ...)
        raise Lenet5Error(f"cannot read it as an image ({type(e).__name__}: {e})") from None


def _decode(img, Image):
    """An opened image -> the 2-D array read_grayscale returns, reduced before float copies."""
    orientation = img.getexif().get(0x0112)  # EXIF orientation, read before any copy drops it
    if img.format == "JPEG":
        img.draft("L", (MAX_SIDE, MAX_SIDE))  # decode at 1/2, 1/4 or 1/8 scale when that suffices
    if img.width * img.height > MAX_PIXELS:
        raise Lenet5Error(f"the image is {img.width} x {img.height} = {img.width * img.height / 1e6:.1f} "
                          f"million pixels; lenet5 reads images of at most {MAX_PIXELS / 1e6:.0f} "
                          "million pixels: scale it down first")
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        a = np.asarray(_reduced(img.convert("F") if img.mode != "F" else img), dtype=np.float64)
        a = _oriented(a, orientation)
        span = a.max() - a.min()
        return (a - a.min()) / span if span > 0 else np.zeros_like(a)
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info:
        # premultiplied grey + alpha, averaged, then laid on white paper: L*a + 255*(1 - a)
        with_alpha = img if img.mode in ("RGBA", "LA") else img.convert("RGBA")  # (P, tRNS, ...)
        grey_alpha = with_alpha if with_alpha.mode == "LA" else with_alpha.convert("LA")
        del with_alpha
        la = np.asarray(_reduced(grey_alpha.convert("La")), dtype=np.uint16)
        grey = (la[..., 0] + 255 - la[..., 1]).clip(0, 255).astype(np.uint8)
        return _oriented(grey, orientation)
    return _oriented(np.asarray(_reduced(img.convert("L"))), orientation)


def _reduced(img):
    """`img` shrunk by a whole factor (box average) so its longer side is at most MAX_SIDE."""
    factor = -(-max(img.size) // MAX_SIDE)
    return img.reduce(factor) if factor > 1 else img


# EXIF orientation -> the transpose ImageOps.exif_transpose applies, on the array
_ORIENT = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: a.T, 6: lambda a: np.rot90(a, -1), 7: lambda a: a.T[::-1, ::-1],
           8: lambda a: np.rot90(a)}


def _oriented(a, orientation):
    turn = _ORIENT.get(orientation)
    return np.ascontiguousarray(turn(a)) if turn else a
