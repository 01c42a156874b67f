"""Reading images: the Dataset that feeds the DataLoaders, with a clear error on a bad file."""
from __future__ import annotations

from PIL import Image
from torch.utils.data import Dataset

from ..errors import CorruptImageError


def read_image(path: str) -> Image.Image:
    """The image at ``path`` as RGB, fully decoded; CorruptImageError naming the file otherwise."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError:
        raise CorruptImageError(f"image {path} does not exist (was the dataset changed while "
                                "the run was going?)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise CorruptImageError(f"cannot read image {path} ({exc}); the file is damaged or not "
                                "an image: replace it with a good copy, or delete it") from None


class ImageDataset(Dataset):
    """items: tuples (path, label, camid[, index]); returns (image tensor, label, camid, index).

    ``index`` is the item's 4th field when present (the position in the full training list,
    kept for inspection), else its position here.
    """

    def __init__(self, items, transform):
        self.items = list(items)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        item = self.items[i]
        img = read_image(item[0])
        if self.transform is not None:
            img = self.transform(img)
        index = item[3] if len(item) > 3 else i
        return img, int(item[1]), int(item[2]), int(index)
