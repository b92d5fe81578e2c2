"""Entry point of the fmcore-datasets package."""

from fmcore import hookimpl
from fmcore_datasets.digits import Digits, DigitsFeatures
from fmcore_datasets.file import FileDataset
from fmcore_datasets.gaussian_mixture import GaussianMixtureData
from fmcore_datasets.image_folder import ImageFolder
from fmcore_datasets.pairs import PairsDataset
from fmcore_datasets.shards import Shards
from fmcore_datasets.toy2d import Checkerboard, Circles, EightGaussians, Moons, Spirals


@hookimpl
def register_datasets(register):
    register("moons", Moons)
    register("8gaussians", EightGaussians)
    register("checkerboard", Checkerboard)
    register("circles", Circles)
    register("spirals", Spirals)
    register("file", FileDataset)
    register("digits", Digits)
    register("image_folder", ImageFolder)
    register("shards", Shards)
    register("gaussian_mixture", GaussianMixtureData)
    register("pairs", PairsDataset)


@hookimpl
def register_features(register):
    register("digits", DigitsFeatures)
