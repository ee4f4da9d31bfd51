"""Agreement statistics against published worked examples."""

from __future__ import annotations

import pytest

from labeling.labelstudio.agreement import cohens_kappa, krippendorff_alpha_nominal, percent_agreement


def test_cohens_kappa_textbook_example():
    # 50 items: yes/yes 20, yes/no 5, no/yes 10, no/no 15 -> p_o 0.7, p_e 0.5, kappa 0.4 (Wikipedia, "Cohen's kappa").
    a = ["y"] * 25 + ["n"] * 25
    b = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    assert percent_agreement(a, b) == pytest.approx(0.7)
    assert cohens_kappa(a, b) == pytest.approx(0.4)


def test_cohens_kappa_edge_cases():
    assert cohens_kappa([], []) is None
    assert cohens_kappa(["A", "A"], ["A", "A"]) is None  # both constant: chance agreement is 1
    assert cohens_kappa(["A", "B"], ["B", "A"]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="equally long"):
        percent_agreement(["A"], [])


def test_krippendorff_alpha_nominal_reference_example():
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", 4 coders x 12 units with
    # missing values; nominal alpha = 0.743.
    rows = [
        "1 2 3 3 2 1 4 1 2 * * *",
        "1 2 3 3 2 2 4 1 2 5 * 3",
        "* 3 3 3 2 3 4 2 2 5 1 *",
        "1 2 3 3 2 4 4 1 2 5 1 *",
    ]
    coders = [r.split() for r in rows]
    units = [[c[u] for c in coders if c[u] != "*"] for u in range(12)]
    assert krippendorff_alpha_nominal(units) == pytest.approx(0.743, abs=5e-4)


def test_krippendorff_alpha_extremes():
    assert krippendorff_alpha_nominal([["A", "A"], ["B", "B"]]) == pytest.approx(1.0)
    assert krippendorff_alpha_nominal([["A", "B"], ["A", "B"]]) == pytest.approx(-0.5)
    assert krippendorff_alpha_nominal([["A"], ["B"]]) is None  # no unit has two values
