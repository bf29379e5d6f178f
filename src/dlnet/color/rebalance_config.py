"""The parameters of :mod:`dlnet.color.rebalance`, importable without torch (the options need them)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["REBALANCE_BY_DEFAULT", "RebalanceConfig"]

# Whether colorize, the API and the server rebalance when not told: chosen by measurement
# (docs/RESULTS.md, benchmarks/rebalance_sweep.py).
REBALANCE_BY_DEFAULT = False


@dataclass(frozen=True)
class RebalanceConfig:
    """Parameters of :func:`dlnet.color.rebalance.rebalance`. Defaults chosen with ``benchmarks/rebalance_sweep.py`` on
    the validation photos of the DenseNet local-loss run (benchmarks/README.md, "rebalance"):
    gamma 0.8 brings colourfulness to 0.86x the truth's; k1 = 4 and a 5 px box are the cheapest
    smoothing that changes PSNR/SSIM by less than 0.001.

    Attributes:
        k1: colour clusters (stage 1).
        k2: spatial parts per colour cluster (stage 2); 1 = colour clusters only.
        kernel: box filter size in pixels at working size (odd); 1 = no smoothing.
        gamma: saturation exponent; < 1 saturates, 1 = none.
        ab_max: a*b* magnitude that maps to itself under the gamma curve.
        iters: Lloyd iterations of each k-means.
        points: pixels sampled per colour cluster for the stage-2 k-means.
        sample: colours sampled per image to fit the stage-1 centroids (all pixels are assigned).
        seed: k-means seed (the result is deterministic).
    """

    k1: int = 4
    k2: int = 2
    kernel: int = 5
    gamma: float = 0.8
    ab_max: float = 110.0
    iters: int = 10
    points: int = 1024
    sample: int = 4096
    seed: int = 0

    def __post_init__(self) -> None:
        if self.k1 < 1 or self.k2 < 1:
            raise ValueError(f"k1 and k2 must be >= 1, got {self.k1}, {self.k2}")
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ValueError(f"kernel must be an odd size >= 1, got {self.kernel}")
        if self.gamma <= 0 or self.ab_max <= 0:
            raise ValueError(f"gamma and ab_max must be > 0, got {self.gamma}, {self.ab_max}")
