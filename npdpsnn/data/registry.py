"""What each dataset is made of: names, file names, pinned checksums, mirrors.

Everything that identifies a dataset on disk or on the network lives here, so
the loaders and the downloader share one source of truth.
"""

from __future__ import annotations

from dataclasses import dataclass

from npdpsnn.errors import UserError

__all__ = [
    "DATASETS",
    "IdxFileSpec",
    "IdxDatasetSpec",
    "IDX_DATASETS",
    "YALEB_DIRNAME",
    "YALEB_MAT_NAME",
    "YALEB_PGM_DIRNAME",
    "YALEB_NUM_SUBJECTS",
    "YALEB_IMAGE_SIZE",
    "YALEB_TEST_FRACTION",
]

#: Valid dataset names for :func:`npdpsnn.data.load_dataset`.
DATASETS: tuple[str, ...] = ("mnist", "fashion-mnist", "yaleb")


@dataclass(frozen=True)
class IdxFileSpec:
    """One gzip-compressed IDX file: its original name, sha256 and item count."""

    filename: str
    sha256: str
    count: int


@dataclass(frozen=True)
class IdxDatasetSpec:
    """An IDX dataset (MNIST layout): four files, a mirror and fixed statistics."""

    name: str
    dirname: str
    train_images: IdxFileSpec
    train_labels: IdxFileSpec
    test_images: IdxFileSpec
    test_labels: IdxFileSpec
    image_shape: tuple[int, int]
    num_classes: int
    mean: float
    std: float
    mirror_env: str
    default_mirror: str

    @property
    def files(self) -> tuple[IdxFileSpec, ...]:
        """The four files in a fixed order: train images, train labels, test images, test labels."""
        return (self.train_images, self.train_labels, self.test_images, self.test_labels)


_MNIST = IdxDatasetSpec(
    name="mnist",
    dirname="mnist",
    train_images=IdxFileSpec(
        "train-images-idx3-ubyte.gz",
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        60000,
    ),
    train_labels=IdxFileSpec(
        "train-labels-idx1-ubyte.gz",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        60000,
    ),
    test_images=IdxFileSpec(
        "t10k-images-idx3-ubyte.gz",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        10000,
    ),
    test_labels=IdxFileSpec(
        "t10k-labels-idx1-ubyte.gz",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        10000,
    ),
    image_shape=(28, 28),
    num_classes=10,
    mean=0.1307,
    std=0.3081,
    mirror_env="NPDPSNN_MNIST_MIRROR",
    default_mirror="https://ossci-datasets.s3.amazonaws.com/mnist/",
)

_FASHION_MNIST = IdxDatasetSpec(
    name="fashion-mnist",
    dirname="fashion-mnist",
    train_images=IdxFileSpec(
        "train-images-idx3-ubyte.gz",
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        60000,
    ),
    train_labels=IdxFileSpec(
        "train-labels-idx1-ubyte.gz",
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        60000,
    ),
    test_images=IdxFileSpec(
        "t10k-images-idx3-ubyte.gz",
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        10000,
    ),
    test_labels=IdxFileSpec(
        "t10k-labels-idx1-ubyte.gz",
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        10000,
    ),
    image_shape=(28, 28),
    num_classes=10,
    mean=0.2860,
    std=0.3530,
    mirror_env="NPDPSNN_FASHION_MNIST_MIRROR",
    default_mirror="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
)

#: The IDX datasets by name.
IDX_DATASETS: dict[str, IdxDatasetSpec] = {s.name: s for s in (_MNIST, _FASHION_MNIST)}

#: Extended Yale B: never downloaded; these are the places looked at inside the data dir.
YALEB_DIRNAME = "yaleb"
YALEB_MAT_NAME = "YaleB_32x32.mat"
YALEB_PGM_DIRNAME = "CroppedYale"
YALEB_NUM_SUBJECTS = 38
YALEB_IMAGE_SIZE = (32, 32)
#: Fraction of each subject's images that goes to the test split (rounded half up).
YALEB_TEST_FRACTION = 0.2


def class_names(dataset: str) -> tuple[str, ...]:
    """The names of ``dataset``'s classes, in label order (Fashion-MNIST: Xiao et
    al. 2017; Yale B: the subjects in the order of our split's labels)."""
    if dataset == "mnist":
        return tuple(str(d) for d in range(10))
    if dataset == "fashion-mnist":
        return ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                "Ankle boot")
    if dataset == "yaleb":
        return tuple(f"subject {i + 1}" for i in range(YALEB_NUM_SUBJECTS))
    raise UserError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
