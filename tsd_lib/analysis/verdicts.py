"""The claims engine: every verdict on the paper's four claims comes from a dataset-level test that
can come out either way (datasets are the unit of replication, :mod:`tsd_lib.analysis.stats`).

Runs of the validation-selected setting (``select(df, "auc_pr", by="val")``) are averaged over
seeds per (dataset, method); a comparison reads the datasets where both of its methods exist. A
verdict is one of :data:`VERDICTS`: "too few datasets" when even the best outcome on these datasets
could not reach ``alpha`` (the smallest attainable p, Holm-adjusted over the claim's tests), else
"supported" / "contradicted" when the Holm-adjusted p < ``alpha`` in / against the paper's
direction, else "inconclusive". Differences smaller than ``resolution`` are ties, never "better".
(dataset, seed) counts are reported as consistency within these datasets, never as evidence.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from tsd_lib.analysis.stats import (
    WilcoxonResult,
    bootstrap_ci,
    friedman,
    holm,
    min_attainable_p,
    paired_effect,
    tolerant_ranks,
    wilcoxon_paired,
)
from tsd_lib.report import order_methods, select

SUPPORTED, CONTRADICTED, INCONCLUSIVE, TOO_FEW = "supported", "contradicted", "inconclusive", "too few datasets"
VERDICTS = (SUPPORTED, CONTRADICTED, INCONCLUSIVE, TOO_FEW)
PAIRS: tuple[tuple[str, str], ...] = (("ce", "tsd"), ("kd", "kd+tsd"), ("dkd", "dkd+tsd"))
OBJECTIVE = "the quantity TSD optimises (same perturbation as the loss) — not independent evidence"
CONSISTENCY = "consistency within these datasets, not generalisation"
EXISTENTIAL = frozenset({"1"})  # "a TSD variant ...": one supported variant supports the claim


@dataclass(frozen=True)
class _Metric:
    column: str
    label: str
    higher: bool
    decides: bool = True
    note: str = ""


AUC = _Metric("auc_pr", "macro AUC-PR", True)
FIDELITY = (_Metric("agreement", "teacher-student agreement", True),
            _Metric("kl_teacher_student", "KL(teacher || student)", False))
SALIENCY = (_Metric("saliency_spearman", "saliency Spearman (occlusion)", True, False, OBJECTIVE),
            _Metric("faith_student_teacher_deletion", "deletion area, teacher's ranking", False),
            _Metric("faith_student_teacher_insertion", "insertion area, teacher's ranking", True),
            _Metric("grad_saliency_spearman", "integrated-gradients saliency Spearman", True),
            _Metric("planted_auprc", "saliency AUPRC vs planted truth", True))


@dataclass(frozen=True)
class Effect:
    """An effect size, its value and bootstrap interval over datasets."""

    name: str
    value: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class Claim:
    """One tested comparison of one claim. ``decides`` is False for rows that report but do not decide
    the claim's summary (the Friedman/Nemenyi row, the objective-reusing saliency Spearman)."""

    claim: str
    statement: str
    comparison: str
    test: str
    metric: str
    n_datasets: int
    statistic: float
    p: float
    p_adjusted: float
    effect: Effect
    verdict: str
    consistency: str
    note: str = ""
    decides: bool = True


@dataclass
class _Test:
    comparison: str
    metric: _Metric
    n: int
    result: WilcoxonResult | None  # None: not measured
    effect: Effect
    consistency: str
    note: str


def _is_tsd(method: str) -> bool:
    return "tsd" in str(method).split("+")


def _verdict(p_adj: float, direction: int, bound: float, alpha: float) -> str:
    if bound >= alpha:
        return TOO_FEW
    if p_adj < alpha:
        return SUPPORTED if direction > 0 else CONTRADICTED
    return INCONCLUSIVE


def _holm_bound(n: int, others: Sequence[int], m: int) -> float:
    """A lower bound of the smallest Holm-adjusted p this test could reach (exact when every test of
    the family reads the same number of datasets): max(p_min(n), m min_j p_min(n_j))."""
    return min(1.0, max(min_attainable_p(n), m * min(min_attainable_p(k) for k in others)))


def _nan_effect(name: str) -> Effect:
    return Effect(name, math.nan, math.nan, math.nan)


def _mean_effect(name: str, values: pd.Series) -> Effect:
    return Effect(name, float(values.mean()), *bootstrap_ci(values, np.mean))


def _agree(d: pd.Series, resolution: float, what: str) -> str:
    """What share of (dataset, seed) pairs go the paper's way (``d`` oriented, ties below resolution)."""
    better, ties = int((d >= resolution).sum()), int((d.abs() < resolution).sum())
    return (f"{what} on {better} of {len(d)} (dataset, seed) pairs ({ties} ties, {len(d) - better - ties} "
            f"the other way) — {CONSISTENCY}")


def _tables(chosen: pd.DataFrame, column: str) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Datasets x methods (mean over seeds) and (dataset, seed) x methods; None when not measured."""
    if column not in chosen or chosen[column].isna().all():
        return None
    pivot = chosen.pivot_table(index=["dataset", "seed"], columns="method", values=column, aggfunc="mean")
    pivot = pivot[order_methods(pivot.columns)]
    return pivot.groupby(level="dataset").mean(), pivot


def _decide(claim: str, statement: str, test: str, tests: list[_Test], alpha: float) -> list[Claim]:
    """Holm over the measured tests of one claim, then a verdict per test."""
    measured = [t for t in tests if t.result is not None]
    adjusted = iter(holm([t.result.p for t in measured]))  # in the order of ``tests``
    out = []
    for t in tests:
        r = t.result
        if r is None:
            out.append(Claim(claim, statement, t.comparison, test, t.metric.label, 0, math.nan, math.nan,
                             math.nan, t.effect, TOO_FEW, t.consistency, t.note, t.metric.decides))
            continue
        bound = _holm_bound(t.n, [u.n for u in measured], len(measured))
        p_adj = float(next(adjusted))
        out.append(Claim(claim, statement, t.comparison, test, t.metric.label, t.n, r.statistic, r.p, p_adj,
                         t.effect, _verdict(p_adj, r.direction, bound, alpha), t.consistency, t.note,
                         t.metric.decides))
    return out


def _pair_test(chosen: pd.DataFrame, base: str, plus: str, metric: _Metric, resolution: float,
               relative: bool, published_gain: float | None) -> _Test:
    """One (base, base+TSD) comparison on one metric, oriented so that d > 0 is the paper's direction."""
    comparison = f"{plus} vs {base}"
    name = "median relative change %" if relative else f"median change ({plus} − {base})"
    tables = _tables(chosen, metric.column)
    if tables is None or not {base, plus} <= set(tables[0].columns):
        what = "not measured" if tables is None else f"{plus} or {base} not in these runs"
        return _Test(comparison, metric, 0, None, _nan_effect(name), "", "; ".join(filter(None, [what, metric.note])))
    means, seeds = (t[[plus, base]].dropna() for t in tables)
    sign = 1.0 if metric.higher else -1.0
    result = wilcoxon_paired(sign * means[plus], sign * means[base], resolution=resolution)
    effect = Effect(name, *paired_effect(means[plus], means[base], relative=relative))
    note = metric.note
    if relative and published_gain is not None and len(means):
        mean = paired_effect(means[plus], means[base], relative=True, stat=np.mean)
        inside = [f"{'inside' if lo <= published_gain <= hi else 'outside'} the {stat}'s"
                  for stat, (lo, hi) in (("median", (effect.ci_low, effect.ci_high)), ("mean", mean[1:]))]
        note = (f"mean {mean[0]:+.2f}% (95% CI {mean[1]:+.2f} to {mean[2]:+.2f}); the paper's "
                f"+{published_gain:g}% lies {inside[0]} and {inside[1]} interval")
    consistency = _agree(sign * (seeds[plus] - seeds[base]), resolution, f"{plus} better than {base}")
    return _Test(comparison, metric, len(means), result, effect, consistency, note)


def _pair_claim(claim: str, statement: str, chosen: pd.DataFrame, pairs: Sequence[tuple[str, str]],
                metrics: Sequence[_Metric], resolution: float, alpha: float, relative: bool = False,
                published_gain: float | None = None) -> list[Claim]:
    tests = [_pair_test(chosen, base, plus, m, resolution, relative, published_gain)
             for base, plus in pairs for m in metrics]
    n = sum(t.result is not None for t in tests)
    return _decide(claim, statement, f"Wilcoxon signed-rank, Holm over {n}", tests, alpha)


def _friedman_row(statement: str, matrix: pd.DataFrame, ranks: pd.DataFrame, tsd_ahead: pd.Series,
                  variants: list[str], others: list[str], resolution: float, alpha: float) -> Claim:
    """The omnibus row of claim 1 (reported, not deciding): Friedman / Iman-Davenport over every
    method, and Nemenyi's test of the best TSD variant's average rank against the best other's."""
    n, k = matrix.shape
    fr = friedman(matrix, alpha, resolution=resolution) if n >= 2 else None
    mean = ranks.mean()
    best_tsd, best_other = mean[variants].idxmin(), mean[others].idxmin()
    effect = _mean_effect(f"mean rank lead of {best_tsd} over {best_other}", ranks[best_other] - ranks[best_tsd])
    if fr is None or fr.cd >= k - 1:  # no rank difference can exceed the critical difference
        return Claim("1", statement, f"all {k} methods", "Friedman (Iman-Davenport F), Nemenyi CD", AUC.label, n,
                     math.nan, math.nan, math.nan, effect, TOO_FEW, "", "", False)
    rejects = fr.f_p < alpha
    verdict = (SUPPORTED if rejects and effect.value > fr.cd else
               CONTRADICTED if rejects and effect.value < -fr.cd else INCONCLUSIVE)
    avg = ", ".join(f"{m} {r:.2f}" for m, r in mean.sort_values().items())
    return Claim("1", statement, f"all {k} methods", "Friedman (Iman-Davenport F), Nemenyi CD", AUC.label, n,
                 fr.f, fr.f_p, fr.f_p, effect, verdict,
                 _agree(tsd_ahead, resolution, "a TSD variant above every non-TSD method"),
                 f"chi2 {fr.chi2:.2f} (p {fr.p:.3g}), Nemenyi CD {fr.cd:.2f}; average ranks: {avg}; "
                 "the per-variant rows decide the claim", False)


def _rank_claim(statement: str, chosen: pd.DataFrame, resolution: float, alpha: float) -> list[Claim]:
    """Claim 1: the Friedman row, then each TSD variant against every non-TSD method (one Holm family
    over all variant x method pairs): supported when the Friedman test rejects and the variant beats
    every one significantly, contradicted when one is significantly better than it."""
    means, seeds = _tables(chosen, AUC.column) or (pd.DataFrame(), pd.DataFrame())
    variants = [m for m in means.columns if _is_tsd(m)]
    others = [m for m in means.columns if not _is_tsd(m)]
    if not variants or not others or means[variants + others].dropna().empty:
        return _decide("1", statement, "Friedman, Wilcoxon", [_Test(
            "TSD variants vs non-TSD methods", AUC, 0, None, _nan_effect("mean rank lead"), "",
            "no dataset holds a TSD variant and a non-TSD method")], alpha)
    matrix = means[variants + others].dropna()
    seeds = seeds.loc[seeds.index.get_level_values("dataset").isin(matrix.index), variants + others].dropna()
    ranks = pd.DataFrame(tolerant_ranks(matrix.to_numpy(), resolution), matrix.index, matrix.columns)
    top_other = seeds[others].max(axis=1)
    omnibus = _friedman_row(statement, matrix, ranks, seeds[variants].max(axis=1) - top_other, variants, others,
                            resolution, alpha)
    rejects = omnibus.verdict != TOO_FEW and omnibus.p < alpha
    best_other = ranks[others].mean().idxmin()
    pairs = [(v, o) for v in variants for o in others]
    results = {pair: wilcoxon_paired(matrix[pair[0]], matrix[pair[1]], resolution=resolution) for pair in pairs}
    adjusted = dict(zip(pairs, holm([r.p for r in results.values()]), strict=True))
    bound = _holm_bound(len(matrix), [len(matrix)], len(pairs))
    rows = [omnibus]
    for v in variants:
        mine = {o: (adjusted[v, o], results[v, o]) for o in others}
        against = [o for o, (p, r) in mine.items() if p < alpha and r.direction < 0]
        beats = all(p < alpha and r.direction > 0 for p, r in mine.values())
        verdict = (TOO_FEW if bound >= alpha else CONTRADICTED if against else
                   SUPPORTED if beats and rejects else INCONCLUSIVE)
        key = (min(against, key=lambda o: mine[o][0]) if against else
               max(others, key=lambda o: (mine[o][0], mine[o][1].p)))  # the weakest win decides
        p_adj, r = mine[key]
        note = f"Holm-adjusted p per method ({v} above / below / tied): " + ", ".join(
            f"{o} {p:.3g} {'above' if r.direction > 0 else 'below' if r.direction < 0 else 'tied'}"
            for o, (p, r) in mine.items()) + ("; the Friedman test does not reject" if beats and not rejects else "")
        rows.append(Claim("1", statement, f"{v} vs each non-TSD method (decisive: {key})",
                          f"Wilcoxon signed-rank, Holm over {len(pairs)}", AUC.label, len(matrix), r.statistic,
                          r.p, p_adj, _mean_effect(f"mean rank lead over {best_other} (best non-TSD)",
                                                   ranks[best_other] - ranks[v]), verdict,
                          _agree(seeds[v] - top_other, resolution, f"{v} above every non-TSD method"), note))
    return rows


def statements(published_gain: float = 3.7) -> dict[str, str]:
    """Claim id -> the paper's statement."""
    return {"1": "1. a TSD variant ranks first in macro AUC-PR among distillation methods",
            "2": f"2. adding TSD to a base method raises macro AUC-PR (paper: about +{published_gain:g}%)",
            "3": "3. TSD students' predictions are closer to the teacher's (agreement up, KL down)",
            "4": "4. TSD students share the teacher's reasoning (saliency)"}


def claims(df: pd.DataFrame, *, resolution: float = 0.001, alpha: float = 0.05, published_gain: float = 3.7,
           pairs: Sequence[tuple[str, str]] = PAIRS) -> list[Claim]:
    """Every tested comparison of claims 1-4 on the ``records_to_frame`` runs of one (teacher, student)
    arm. Each claim's tests form one Holm family (claim 1: every TSD variant x non-TSD method; the
    objective-reusing saliency Spearman included). ``resolution``: differences below it are ties;
    ``published_gain``: the paper's overall AUC-PR gain (%), placed against claim 2's intervals;
    ``pairs``: the (base, base+TSD) comparisons of claims 2-4 (a pair not in the runs: "not measured")."""
    if not resolution > 0 or not 0 < alpha < 1:
        raise ValueError(f"resolution must be > 0 and alpha in (0, 1), got {resolution} and {alpha}")
    arms = df[[c for c in ("teacher", "student") if c in df]].drop_duplicates()
    if len(arms) > 1:
        raise ValueError(f"the runs hold {len(arms)} (teacher, student) arms: use claims_by_arm")
    chosen = select(df, "auc_pr", by="val")
    said = statements(published_gain)
    return [*_rank_claim(said["1"], chosen, resolution, alpha),
            *_pair_claim("2", said["2"], chosen, pairs, [AUC], resolution, alpha, True, published_gain),
            *_pair_claim("3", said["3"], chosen, pairs, FIDELITY, resolution, alpha),
            *_pair_claim("4", said["4"], chosen, pairs, SALIENCY, resolution, alpha)]


def claims_by_arm(df: pd.DataFrame, **kwargs: Any) -> dict[str, list[Claim]]:
    """:func:`claims` per (teacher, student) arm, keyed "teacher -> student" (in the frame's order)."""
    if not {"teacher", "student"} <= set(df.columns):
        return {"all runs": claims(df, **kwargs)}
    groups = df.groupby(["teacher", "student"], sort=False)
    return {f"{t} -> {s}": claims(part, **kwargs) for (t, s), part in groups}


def verdict_summary(found: Sequence[Claim]) -> pd.Series:
    """One verdict per claim statement from its deciding rows (``decides``, measured). Claim 1 ("a TSD
    variant"): supported if some variant is, contradicted if every variant is. Claims 2-4: supported
    if every row is, contradicted if some row is and none supported. All too few: too few datasets;
    anything else (mixed) inconclusive."""
    out = {}
    for statement in dict.fromkeys(c.statement for c in found):
        rows = [c for c in found if c.statement == statement]
        words = [c.verdict for c in rows if c.decides and c.n_datasets > 0]
        some = rows[0].claim in EXISTENTIAL
        if not words or all(w == TOO_FEW for w in words):
            out[statement] = TOO_FEW
        elif (any if some else all)(w == SUPPORTED for w in words):
            out[statement] = SUPPORTED
        elif (all(w == CONTRADICTED for w in words) if some else
              CONTRADICTED in words and SUPPORTED not in words):
            out[statement] = CONTRADICTED
        else:
            out[statement] = INCONCLUSIVE
    return pd.Series(out, name="verdict", dtype=object)


def _finite(x: object) -> object:
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x


def claims_json(found: Sequence[Claim]) -> list[dict]:
    """The claims as JSON-ready dicts (non-finite numbers as null)."""
    out = []
    for c in found:
        row = {k: _finite(v) for k, v in asdict(c).items() if k != "effect"}
        row["effect"] = {k: _finite(v) for k, v in asdict(c.effect).items()}
        out.append(row)
    return out


COLUMNS = {"claim": "claim", "statement": "statement", "comparison": "comparison", "test": "test",
           "metric": "metric", "n_datasets": "datasets", "statistic": "statistic", "p": "p",
           "p_adjusted": "p (Holm)", "effect_name": "effect", "effect_value": "effect value",
           "effect_ci_low": "95% CI low", "effect_ci_high": "95% CI high", "verdict": "verdict",
           "consistency": "consistency (dataset, seed)", "note": "note", "decides": "decides the claim"}


def claims_frame(found: Sequence[Claim]) -> pd.DataFrame:
    """One row per tested comparison, human column names."""
    rows = [{**{k: v for k, v in asdict(c).items() if k != "effect"},
             **{f"effect_{k}" if k != "name" else "effect_name": v for k, v in asdict(c.effect).items()}}
            for c in found]
    return pd.DataFrame(rows, columns=list(COLUMNS)).rename(columns=COLUMNS)


def _num(x: float, fmt: str) -> str:
    return "—" if not math.isfinite(x) else format(x, fmt)


def claims_text(found: Sequence[Claim]) -> str:
    """A readable table: per claim its statement and summary verdict, then a line per comparison."""
    summary, lines = verdict_summary(found), []
    for statement, verdict in summary.items():
        lines.append(f"\n{statement}\n  => {verdict.upper()}")
        for c in (c for c in found if c.statement == statement):
            e = c.effect
            lines.append(f"  - {c.comparison} | {c.metric} | {c.n_datasets} datasets | {c.test} | "
                         f"p {_num(c.p, '.3g')}, Holm {_num(c.p_adjusted, '.3g')} | {e.name} {_num(e.value, '+.3g')} "
                         f"[{_num(e.ci_low, '+.3g')}, {_num(e.ci_high, '+.3g')}] | {c.verdict}"
                         + ("" if c.decides else " (does not decide)"))
            lines += [f"      {text}" for text in (c.consistency, c.note) if text]
    return "\n".join(lines).lstrip("\n")
