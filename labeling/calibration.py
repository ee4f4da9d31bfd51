"""Calibrating an AI labeler's confidence against human labels.

The labeler says P(A better) = p_a. We calibrate its *confidence* c = max(p_a, 1 - p_a)
against whether its preferred answer matched the human one, and map back to p_a
symmetrically, so calibrated(1 - p) = 1 - calibrated(p): a labeler has no reason to be
better calibrated for A than for B, and fitting on (confidence, correct) pairs halves the
parameters the data must pin down.

Calibration data must be a random sample of the stream: the *audit* samples (route reason
``audit``). Samples that went to humans because their confidence was low, or because the
judge disagreed, are selected on purpose and would bias the estimates; see
docs/routing-guarantee.md.

ECE uses equal-mass bins by default (each bin holds the same number of samples), because
confidences pile up near 0.5 and equal-width bins would leave most bins nearly empty.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

Method = Literal["temperature", "isotonic", "identity"]
Binning = Literal["equal_mass", "equal_width"]

# Confidences of exactly 1.0 have an infinite logit; clip just inside (0.5, 1).
_EPS = 1e-6


def confidence_of(p_a: np.ndarray | Sequence[float]) -> np.ndarray:
    p = np.asarray(p_a, dtype=float)
    return np.maximum(p, 1.0 - p)


def _logit(c: np.ndarray) -> np.ndarray:
    c = np.clip(c, 0.5, 1.0 - _EPS)
    return np.log(c) - np.log1p(-c)


class ConfidenceCalibrator(BaseModel):
    """A monotone map from raw confidence to the probability that the labeler is right.

    ``temperature``: sigmoid(logit(c) / T). ``isotonic``: a non-decreasing step-linear
    curve through (``knots_x``, ``knots_y``). ``identity``: no change (nothing fitted yet).
    """

    method: Method = "identity"
    temperature: float = Field(1.0, gt=0.0)
    knots_x: list[float] = Field(default_factory=list)
    knots_y: list[float] = Field(default_factory=list)
    n: int = 0

    def calibrate_confidence(self, confidence: np.ndarray | Sequence[float] | float) -> np.ndarray:
        c = np.clip(np.asarray(confidence, dtype=float), 0.5, 1.0)
        if self.method == "temperature":
            return 1.0 / (1.0 + np.exp(-_logit(c) / self.temperature))
        if self.method == "isotonic":
            return np.interp(c, self.knots_x, self.knots_y)
        return c

    def calibrate_p_a(self, p_a: np.ndarray | Sequence[float] | float) -> np.ndarray:
        """Calibrated P(A better); symmetric, so calibrate_p_a(1 - p) = 1 - calibrate_p_a(p)."""
        p = np.asarray(p_a, dtype=float)
        cal = self.calibrate_confidence(confidence_of(p))
        # p_a = 0.5 states no preference, and symmetry forces it to stay 0.5.
        return np.where(p > 0.5, cal, np.where(p < 0.5, 1.0 - cal, 0.5))


def fit_temperature(confidence: Sequence[float], correct: Sequence[bool]) -> float:
    """The temperature T minimising the log loss of sigmoid(logit(c) / T) for ``correct``."""
    from scipy.optimize import minimize_scalar

    z = _logit(np.asarray(confidence, dtype=float))
    y = np.asarray(correct, dtype=float)
    if not np.any(z > 0):
        return 1.0  # every confidence is 0.5: any temperature gives the same prediction

    def nll(log_t: float) -> float:
        s = z / math.exp(log_t)
        # log(1 + e^-s) for correct, log(1 + e^s) for wrong, computed stably.
        return float(np.sum(y * np.logaddexp(0.0, -s) + (1.0 - y) * np.logaddexp(0.0, s)))

    # Bounds T in [e^-5, e^7]: beyond them the calibrated confidence is flat at 0.5 or a step.
    res = minimize_scalar(nll, bounds=(-5.0, 7.0), method="bounded", options={"xatol": 1e-8})
    return float(math.exp(res.x))


def fit_isotonic(confidence: Sequence[float], correct: Sequence[bool]) -> tuple[list[float], list[float]]:
    """Knots of the non-decreasing least-squares fit of ``correct`` on confidence (PAV)."""
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    iso.fit(np.asarray(confidence, dtype=float), np.asarray(correct, dtype=float))
    return [float(x) for x in iso.X_thresholds_], [float(y) for y in iso.y_thresholds_]


def fit_calibrator(
    p_a: Sequence[float], human_prefers_a: Sequence[bool], method: Method = "isotonic"
) -> ConfidenceCalibrator:
    """Fit on (raw p_a, did the human prefer A) pairs from audit samples."""
    p = np.asarray(p_a, dtype=float)
    y = np.asarray(human_prefers_a, dtype=bool)
    if p.shape != y.shape:
        raise ValueError(f"p_a has {p.size} values but human_prefers_a has {y.size}: pass one per sample")
    if p.size == 0:
        raise ValueError("no calibration samples: collect audit labels first (route reason 'audit')")
    conf = confidence_of(p)
    correct = (p >= 0.5) == y
    if method == "temperature":
        return ConfidenceCalibrator(method="temperature", temperature=fit_temperature(conf, correct), n=p.size)
    if method == "isotonic":
        xs, ys = fit_isotonic(conf, correct)
        return ConfidenceCalibrator(method="isotonic", knots_x=xs, knots_y=ys, n=p.size)
    if method == "identity":
        return ConfidenceCalibrator(n=p.size)
    raise ValueError(f"unknown calibration method {method!r}: use 'temperature' or 'isotonic'")


def _bin_edges(confidence: np.ndarray, n_bins: int, binning: Binning) -> np.ndarray:
    if binning == "equal_width":
        return np.linspace(0.5, 1.0, n_bins + 1)
    if binning == "equal_mass":
        return np.quantile(confidence, np.linspace(0.0, 1.0, n_bins + 1))
    raise ValueError(f"unknown binning {binning!r}: use 'equal_mass' or 'equal_width'")


def reliability_bins(
    confidence: Sequence[float], correct: Sequence[bool], n_bins: int = 10, binning: Binning = "equal_mass"
) -> list[dict[str, float]]:
    """Per bin: sample count, mean confidence, accuracy. Empty bins are left out.

    A sample falls in the bin [lo, hi); the last bin also takes its upper edge.
    """
    c = np.asarray(confidence, dtype=float)
    y = np.asarray(correct, dtype=float)
    if c.size == 0:
        return []
    edges = _bin_edges(c, n_bins, binning)
    idx = np.clip(np.searchsorted(edges, c, side="right") - 1, 0, n_bins - 1)
    bins = []
    for b in range(n_bins):
        mask = idx == b
        if mask.any():
            bins.append({"n": int(mask.sum()), "confidence": float(c[mask].mean()), "accuracy": float(y[mask].mean())})
    return bins


def expected_calibration_error(
    confidence: Sequence[float], correct: Sequence[bool], n_bins: int = 10, binning: Binning = "equal_mass"
) -> float:
    """sum over bins of (n_bin / n) * |accuracy_bin - mean confidence_bin|."""
    bins = reliability_bins(confidence, correct, n_bins, binning)
    total = sum(b["n"] for b in bins)
    if total == 0:
        return float("nan")
    return float(sum(b["n"] / total * abs(b["accuracy"] - b["confidence"]) for b in bins))


def reliability_plot_path(data_dir: str | Path, thresholds_version: str) -> Path:
    """Where the recalibrate flow draws the reliability diagram of a thresholds version."""
    return Path(data_dir) / "calibration" / f"reliability-{thresholds_version}.png"


def plot_reliability(
    curves: dict[str, tuple[Sequence[float], Sequence[bool]]],
    path: str | Path,
    n_bins: int = 10,
    title: str = "Reliability",
) -> Path:
    """A reliability diagram (accuracy against confidence), one line per named curve, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0.5, 1.0], [0.5, 1.0], color="grey", linestyle="--", label="perfectly calibrated")
    for name, (conf, correct) in curves.items():
        bins = reliability_bins(conf, correct, n_bins)
        ece = expected_calibration_error(conf, correct, n_bins)
        ax.plot(
            [b["confidence"] for b in bins],
            [b["accuracy"] for b in bins],
            marker="o",
            label=f"{name} (ECE {ece:.3f})",
        )
    ax.set_xlabel("confidence (mean per equal-mass bin)")
    ax.set_ylabel("agreement with humans")
    ax.set_xlim(0.45, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_raw_and_calibrated(
    calibrator: ConfidenceCalibrator, confidence: Sequence[float], correct: Sequence[bool], path: str | Path
) -> Path:
    """The reliability diagram of a calibration: raw confidences against calibrated ones, on the same audits."""
    conf = np.asarray(confidence, dtype=float)
    curves = {"raw": (conf, correct), "calibrated": (calibrator.calibrate_confidence(conf), correct)}
    return plot_reliability(curves, path)
