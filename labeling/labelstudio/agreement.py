"""Agreement between humans and machines, and among humans.

- human vs AI labeler and human vs judge: percent agreement and Cohen's kappa (chance-corrected),
  on samples with a human final label;
- inter-annotator: Krippendorff's alpha, nominal, over samples with 2+ counted annotations
  (Krippendorff 2011, "Computing Krippendorff's Alpha-Reliability");
- audit: share of randomly audited, judge-accepted samples where the human disagreed with the judge.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from itertools import permutations
from typing import Any

from labeling.audit_design import drawn_for_audit
from labeling.schemas import LabelSource


def percent_agreement(a: Sequence[str], b: Sequence[str]) -> float | None:
    if len(a) != len(b):
        raise ValueError(f"percent_agreement needs two equally long label lists, got {len(a)} and {len(b)}")
    return sum(x == y for x, y in zip(a, b)) / len(a) if a else None


def cohens_kappa(a: Sequence[str], b: Sequence[str]) -> float | None:
    """(p_o - p_e) / (1 - p_e); None when undefined (no items, or both raters constant and equal)."""
    p_o = percent_agreement(a, b)
    if p_o is None:
        return None
    n = len(a)
    ca, cb = Counter(a), Counter(b)
    p_e = sum(ca[k] * cb[k] for k in ca) / (n * n)
    if p_e == 1.0:
        return None
    return (p_o - p_e) / (1.0 - p_e)


def krippendorff_alpha_nominal(units: Sequence[Sequence[str]]) -> float | None:
    """Alpha for nominal data; each unit is the list of values its annotators gave (missing ones left out).

    Units with fewer than two values carry no pairing information and are dropped.
    """
    coincidence: Counter[tuple[str, str]] = Counter()
    for values in units:
        m = len(values)
        if m < 2:
            continue
        for i, j in permutations(range(m), 2):
            coincidence[(values[i], values[j])] += 1.0 / (m - 1)
    n_total = sum(coincidence.values())
    if n_total == 0:
        return None
    marginals: Counter[str] = Counter()
    for (c, _k), w in coincidence.items():
        marginals[c] += w
    observed = sum(w for (c, k), w in coincidence.items() if c != k)
    expected = sum(marginals[c] * marginals[k] for c in marginals for k in marginals if c != k) / (n_total - 1)
    if expected == 0:
        return None  # every value identical: agreement is perfect but alpha is undefined
    return 1.0 - observed / expected


def _pair_stats(human: list[str], other: list[str]) -> dict[str, Any]:
    return {"n": len(human), "percent": percent_agreement(human, other), "kappa": cohens_kappa(human, other)}


def agreement_report(store: Any) -> dict[str, Any]:
    """All the agreement figures over every sample that has a Label Studio task in the store."""
    ids = sorted(store.get_human_tasks())
    human_labels = store.get_human_labels(ids)
    finals = store.get_final_labels(ids)
    ai = store.get_ai_labels(ids)
    verdicts = store.get_verdicts(ids)
    routes = store.get_routes(ids)

    human_final = {s: f.preferred for s, f in finals.items()
                   if f.source in (LabelSource.human, LabelSource.human_over_judge)}
    vs_ai = [(h, ai[s].preferred) for s, h in human_final.items() if s in ai]
    vs_judge = [(h, verdicts[s].preferred) for s, h in human_final.items()
                if s in verdicts and verdicts[s].preferred is not None]
    units = [[lab.choice for lab in labels if not lab.cancelled] for labels in human_labels.values()]
    overlapping = [u for u in units if len(u) >= 2]
    audited = [s for s in human_final
               if drawn_for_audit(routes.get(s, {}))
               and s in verdicts and verdicts[s].preferred is not None]
    audit_disagree = sum(human_final[s] != verdicts[s].preferred for s in audited)
    return {
        "human_vs_labeler": _pair_stats([h for h, _ in vs_ai], [o for _, o in vs_ai]),
        "human_vs_judge": _pair_stats([h for h, _ in vs_judge], [o for _, o in vs_judge]),
        "inter_annotator": {"n_units": len(overlapping), "krippendorff_alpha": krippendorff_alpha_nominal(overlapping)},
        "audit": {"n": len(audited), "disagreement_rate": audit_disagree / len(audited) if audited else None},
        "n_tasks": len(ids),
        "n_human_final": len(human_final),
    }


def agreement_table(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report as rows for a Prefect table artifact or a rich table."""
    def fmt(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.3f}"

    return [
        {"metric": "human vs AI labeler", "n": report["human_vs_labeler"]["n"],
         "agreement": fmt(report["human_vs_labeler"]["percent"]), "chance-corrected": fmt(report["human_vs_labeler"]["kappa"]),
         "statistic": "Cohen's kappa"},
        {"metric": "human vs judge", "n": report["human_vs_judge"]["n"],
         "agreement": fmt(report["human_vs_judge"]["percent"]), "chance-corrected": fmt(report["human_vs_judge"]["kappa"]),
         "statistic": "Cohen's kappa"},
        {"metric": "inter-annotator", "n": report["inter_annotator"]["n_units"], "agreement": "",
         "chance-corrected": fmt(report["inter_annotator"]["krippendorff_alpha"]), "statistic": "Krippendorff's alpha (nominal)"},
        {"metric": "audit disagreement", "n": report["audit"]["n"], "agreement": fmt(report["audit"]["disagreement_rate"]),
         "chance-corrected": "", "statistic": "share of audited judge labels a human overturned"},
    ]
