"""Networks of the paper: lean 3D U-Net and its multi-resolution variants A/B/C/D."""
from .config import LEVELS, PAPER_PARAMS, VARIANTS, NetConfig, preset, with_patch_size
from .network import MultiResolutionUNet, NetOutput, build_network, count_parameters, crop_skip, crop_skip_links

__all__ = ["LEVELS", "PAPER_PARAMS", "VARIANTS", "MultiResolutionUNet", "NetConfig", "NetOutput", "build_network",
           "count_parameters", "crop_skip", "crop_skip_links", "preset", "with_patch_size"]
