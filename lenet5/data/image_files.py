"""Reading a user's image file (PNG, JPEG, BMP, PGM, anything Pillow opens) as a 2-D greyscale
array, for `lenet5.data.digits`. Pillow is the optional `[images]` extra."""
import numpy as np

from ..errors import Lenet5Error

NEEDS_PILLOW = 'needs Pillow to read images: pip install -e ".[images]"'


def pillow_image(command="lenet5 predict"):
    """PIL.Image, or Lenet5Error naming the `[images]` extra."""
    try:
        from PIL import Image, ImageOps  # noqa: F401
    except ImportError:
        raise Lenet5Error(f"{command} {NEEDS_PILLOW}") from None
    return Image


def read_grayscale(path, command="lenet5 predict"):
    """The image at `path` as a 2-D array: uint8 for 8-bit images, float 0..1 for 16-bit and
    float ones (stretched between their darkest and lightest pixel). The camera's EXIF rotation
    is applied; a transparent background counts as white paper. Lenet5Error if unreadable."""
    Image = pillow_image(command)
    from PIL import ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
                a = np.asarray(img, dtype=np.float64)
                span = a.max() - a.min()
                return (a - a.min()) / span if span > 0 else np.zeros_like(a)
            if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
                rgba = img.convert("RGBA")
                img = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
            return np.asarray(img.convert("L"))
    except FileNotFoundError:
        raise Lenet5Error("no such file") from None
    except IsADirectoryError:
        raise Lenet5Error("is a folder, not an image") from None
    except UnidentifiedImageError:
        raise Lenet5Error("not an image file Pillow can read (unknown format, or corrupt)") from None
    except Exception as e:  # Pillow reports bad data through many types (OSError, ValueError, ...)
        raise Lenet5Error(f"cannot read it as an image ({type(e).__name__}: {e})") from None
