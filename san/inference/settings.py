"""How a prediction run is made (its own module: the prediction and its report both read it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PredictionSettings:
    """How to predict: test-time augmentation, the uncertainty threshold, batch size, strictness."""

    tta: bool = False
    threshold: float = 0.5
    batch_size: int = 64
    strict: bool = False
    seed: int = 0
    progress: bool = True
    quantifier: str = "auto"  # see san.inference.report.resolve_quantifier
    draws: int | None = None  # bootstrap draws of the assemblage intervals; None: ASSEMBLAGE_DRAWS

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be a probability in [0, 1], got {self.threshold}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {self.batch_size}")
        if self.draws is not None and self.draws < 1:
            raise ValueError(f"bootstrap draws must be >= 1, got {self.draws}")
