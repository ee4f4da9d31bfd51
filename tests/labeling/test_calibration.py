"""labeling/calibration.py against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from labeling.calibration import (
    ConfidenceCalibrator,
    expected_calibration_error,
    fit_calibrator,
    fit_temperature,
    plot_raw_and_calibrated,
    plot_reliability,
    reliability_bins,
)


def test_temperature_fit_matches_closed_form() -> None:
    # All confidences 0.9 (logit ln 9) and 3 of 4 correct: the optimum makes
    # sigmoid(ln 9 / T) = 0.75, i.e. ln 9 / T = ln 3, so T = 2.
    t = fit_temperature([0.9] * 4, [True, True, True, False])
    assert t == pytest.approx(2.0, rel=1e-4)
    cal = ConfidenceCalibrator(method="temperature", temperature=t)
    assert float(cal.calibrate_confidence(0.9)) == pytest.approx(0.75, rel=1e-4)


def test_isotonic_pools_adjacent_violators() -> None:
    # correct at 0.6: 0/1, 0.7: 1/1, 0.8: 0/1, 0.9: 1/1 -> PAV pools 0.7 and 0.8 to 0.5.
    cal = fit_calibrator(
        p_a=[0.6, 0.7, 0.2, 0.9],  # 0.2 is confidence 0.8 for B
        human_prefers_a=[False, True, True, True],  # labeler right at 0.7 and 0.9 only
        method="isotonic",
    )
    got = cal.calibrate_confidence([0.6, 0.7, 0.8, 0.9])
    assert got == pytest.approx([0.0, 0.5, 0.5, 1.0])


def test_calibration_is_symmetric_in_a_and_b() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 400)
    y = rng.uniform(0, 1, 400) < 0.5 + 0.6 * (p - 0.5)
    for method in ("temperature", "isotonic"):
        cal = fit_calibrator(p, y, method=method)
        grid = np.linspace(0.01, 0.99, 25)
        assert cal.calibrate_p_a(1 - grid) == pytest.approx(1 - cal.calibrate_p_a(grid))


def test_temperature_shrinks_overconfident_labeler() -> None:
    rng = np.random.default_rng(1)
    true_conf = rng.uniform(0.5, 0.8, 2000)
    correct = rng.uniform(0, 1, 2000) < true_conf
    # The labeler reports logits doubled: overconfident, so T should come out near 2.
    z = np.log(true_conf / (1 - true_conf)) * 2
    reported = 1 / (1 + np.exp(-z))
    assert fit_temperature(reported, correct) == pytest.approx(2.0, rel=0.15)


def test_ece_hand_example_equal_width() -> None:
    # Bins of width 0.1 on [0.5, 1]: [0.5,0.6): conf 0.55 x2, 1 correct -> |0.5-0.55| = 0.05;
    # [0.9,1.0]: conf 0.95 x2, both correct -> 0.05. ECE = 0.5*0.05 + 0.5*0.05 = 0.05.
    ece = expected_calibration_error(
        [0.55, 0.55, 0.95, 0.95], [True, False, True, True], n_bins=5, binning="equal_width"
    )
    assert ece == pytest.approx(0.05)


def test_ece_equal_mass_bins_hold_equal_counts() -> None:
    conf = np.linspace(0.5, 1.0, 100)
    bins = reliability_bins(conf, np.ones(100, bool), n_bins=4)
    assert [b["n"] for b in bins] == [25, 25, 25, 25]
    # Always right: each bin's gap is 1 - mean confidence.
    ece = expected_calibration_error(conf, np.ones(100, bool), n_bins=4)
    assert ece == pytest.approx(1 - conf.mean())


def test_reliability_png(tmp_path) -> None:
    rng = np.random.default_rng(2)
    c = rng.uniform(0.5, 1, 200)
    path = plot_reliability({"raw": (c, rng.uniform(0, 1, 200) < c)}, tmp_path / "rel.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_raw_and_calibrated_reliability_png(tmp_path) -> None:
    rng = np.random.default_rng(3)
    c = rng.uniform(0.5, 1, 200)
    correct = rng.uniform(0, 1, 200) < c - 0.1  # overconfident
    cal = fit_calibrator(c, correct, method="temperature")
    path = plot_raw_and_calibrated(cal, c.tolist(), correct.tolist(), tmp_path / "plots" / "rel.png")
    assert path == tmp_path / "plots" / "rel.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fit_rejects_mismatched_and_empty_input() -> None:
    with pytest.raises(ValueError, match="one per sample"):
        fit_calibrator([0.6, 0.7], [True])
    with pytest.raises(ValueError, match="audit labels"):
        fit_calibrator([], [])


def test_calibrator_roundtrips_through_json() -> None:
    cal = fit_calibrator([0.6, 0.9, 0.2, 0.3], [True, True, False, True], method="isotonic")
    again = ConfidenceCalibrator.model_validate_json(cal.model_dump_json())
    assert again.calibrate_p_a([0.7]) == pytest.approx(cal.calibrate_p_a([0.7]))
    assert math.isfinite(float(again.calibrate_confidence(1.0)))
