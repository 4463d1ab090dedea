"""Window perturbations, distribution shift and the teacher bank (tsd_lib.saliency.perturb)."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from tsd_lib.saliency.perturb import (
    BASELINES,
    TeacherBank,
    apply_windows,
    baseline_windows,
    distribution_shift,
    draw_donors,
    draw_starts,
    gather_windows,
    kl_terms,
    normalise_shift,
    perturb,
    perturbed_logits,
    prefix_forward,
    supports_prefix_sharing,
    target_shift,
)

FIXTURE = Path(__file__).parent / "fixtures" / "tsd_golden.json"


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _pool(n: int = 30, c: int = 1, t: int = 40, k: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Pool whose values identify the donor and the time step: ``X[j, ch, s] = 1000 j + 100 ch + s``."""
    j = torch.arange(n, dtype=torch.float32)[:, None, None]
    ch = torch.arange(c, dtype=torch.float32)[None, :, None]
    s = torch.arange(t, dtype=torch.float32)[None, None, :]
    return (1000 * j + 100 * ch + s).contiguous(), torch.arange(n) % k


# ----------------------------------------------------------------------------- starts
def test_starts_distinct_and_in_range() -> None:
    T, L, K = 100, 10, 50
    starts = draw_starts(64, K, T, L, _gen())
    assert starts.shape == (64, K) and starts.dtype == torch.long
    assert int(starts.min()) >= 0 and int(starts.max()) < T - L  # the authors' 0 <= t < T - L
    assert all(len(set(row.tolist())) == K for row in starts)
    # every admissible start is drawn somewhere, T - L never
    assert set(starts.flatten().tolist()) == set(range(T - L))


def test_starts_all_used_and_warns_when_too_many() -> None:
    T, L = 20, 5
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        starts = draw_starts(4, 100, T, L, _gen())
    assert any("using all 15 starts" in str(w.message) for w in caught)
    assert starts.shape == (4, T - L)
    for row in starts:
        assert sorted(row.tolist()) == list(range(T - L))


def test_starts_reproducible_and_bad_window() -> None:
    assert torch.equal(draw_starts(3, 5, 30, 4, _gen(7)), draw_starts(3, 5, 30, 4, _gen(7)))
    with pytest.raises(ValueError):
        draw_starts(3, 5, 8, 10, _gen())
    with pytest.raises(ValueError, match="shorter"):  # T = L leaves no start in 0 <= t < T - L
        draw_starts(3, 1, 10, 10, _gen())


# ----------------------------------------------------------------------------- donors
def test_donors_other_class_without_replacement() -> None:
    _, y_pool = _pool(60, k=3)  # 40 other-class donors per series
    y = torch.tensor([0, 1, 2, 1, 0])
    donors = draw_donors(y, y_pool, 30, generator=_gen())
    assert donors.shape == (5, 30)
    assert bool((y_pool[donors] != y[:, None]).all())
    assert all(len(set(row.tolist())) == 30 for row in donors)


def test_donors_with_replacement_when_too_few() -> None:
    _, y_pool = _pool(12, k=3)  # 8 other-class donors per series
    y = torch.tensor([0, 1, 2])
    donors = draw_donors(y, y_pool, 20, generator=_gen())
    assert donors.shape == (3, 20)
    assert bool((y_pool[donors] != y[:, None]).all())
    for b, row in enumerate(donors.tolist()):
        eligible = {j for j in range(12) if int(y_pool[j]) != int(y[b])}
        assert set(row[:8]) == eligible  # all eligible donors first, each once
        assert set(row) <= eligible


def test_donors_same_class_and_errors() -> None:
    _, y_pool = _pool(30, k=3)
    y = torch.tensor([0, 1, 2, 2])
    donors = draw_donors(y, y_pool, 5, same_class=True, generator=_gen())
    assert bool((y_pool[donors] == y[:, None]).all())
    with pytest.raises(ValueError, match="no other-class donor"):
        draw_donors(torch.tensor([0]), torch.zeros(5, dtype=torch.long), 3, generator=_gen())
    with pytest.raises(ValueError, match="no same-class donor"):
        draw_donors(torch.tensor([4]), y_pool, 3, same_class=True, generator=_gen())


# ----------------------------------------------------------------------------- perturbed copies
@pytest.mark.parametrize("C", [1, 3])
def test_perturbed_copies_take_the_donor_window(C: int) -> None:
    T, L, K = 40, 6, 12
    X_pool, y_pool = _pool(30, c=C, t=T, k=3)
    X = -torch.rand(5, C, T) - 1.0  # negative: distinguishable from the pool's values
    y = torch.tensor([0, 1, 2, 0, 1])
    copies, starts = perturb(X, y, X_pool, y_pool, n_windows=K, window=L, generator=_gen())
    assert copies.shape == (5 * K, C, T) and starts.shape == (5, K)
    assert copies.is_contiguous()
    for b in range(5):
        for k in range(K):
            row, t = copies[b * K + k], int(starts[b, k])
            inside = torch.zeros(T, dtype=torch.bool)
            inside[t : t + L] = True
            assert torch.equal(row[:, ~inside], X[b][:, ~inside])
            win = row[:, inside]
            donor = int(win[0, 0]) // 1000
            assert int(y_pool[donor]) != int(y[b])
            assert torch.equal(win, X_pool[donor, :, t : t + L])


def test_gather_and_apply_windows_agree_with_loops() -> None:
    X_pool, _ = _pool(10, c=2, t=25)
    starts = torch.tensor([[0, 15, 7], [3, 12, 1]])
    donors = torch.tensor([[1, 2, 3], [9, 0, 4]])
    vals = gather_windows(X_pool, donors, starts, 10)
    assert vals.shape == (2, 3, 2, 10)
    X = torch.randn(2, 2, 25)
    out = apply_windows(X, starts, vals, 10)
    for b in range(2):
        for k in range(3):
            t = int(starts[b, k])
            expected = X[b].clone()
            expected[:, t : t + 10] = X_pool[int(donors[b, k]), :, t : t + 10]
            assert torch.equal(vals[b, k], X_pool[int(donors[b, k]), :, t : t + 10])
            assert torch.equal(out[b * 3 + k], expected)


def test_simple_baselines() -> None:
    T, L, K, C = 50, 8, 40, 2
    X = torch.randn(4, C, T) * 3 + 5
    y = torch.zeros(4, dtype=torch.long)
    starts = draw_starts(4, K, T, L, _gen())
    zero = baseline_windows(X, y, None, None, starts, L, "zero")
    assert zero.shape == (4, K, C, L) and bool((zero == 0).all())
    mean = baseline_windows(X, y, None, None, starts, L, "mean")
    assert torch.allclose(mean, X.mean(-1)[:, None, :, None].expand_as(mean))
    noise = baseline_windows(X, y, None, None, starts, L, "noise", generator=_gen())
    assert noise.shape == (4, K, C, L)
    mu, sd = X.mean(-1), X.std(-1)
    # 40 windows x 8 steps = 320 draws per series and channel
    assert torch.allclose(noise.mean(dim=(1, 3)), mu, atol=0.5)
    assert torch.allclose(noise.std(dim=(1, 3)), sd, rtol=0.2)
    copies, starts = perturb(X, y, None, None, n_windows=K, window=L, baseline="zero", generator=_gen(1))
    for k in range(K):
        t = int(starts[2, k])
        assert bool((copies[2 * K + k, :, t : t + L] == 0).all())
        assert torch.equal(copies[2 * K + k, :, :t], X[2, :, :t])
        assert torch.equal(copies[2 * K + k, :, t + L :], X[2, :, t + L :])
    with pytest.raises(ValueError, match="unknown baseline"):
        baseline_windows(X, y, None, None, starts, L, "blur")
    assert set(BASELINES) == {"other_class", "zero", "mean", "noise", "same_class"}


def test_same_class_baseline() -> None:
    X_pool, y_pool = _pool(30, t=30, k=3)
    X = -torch.ones(3, 1, 30)
    y = torch.tensor([0, 1, 2])
    copies, starts = perturb(X, y, X_pool, y_pool, n_windows=5, window=4, baseline="same_class", generator=_gen())
    for b in range(3):
        for k in range(5):
            t = int(starts[b, k])
            donor = int(copies[b * 5 + k, 0, t]) // 1000
            assert int(y_pool[donor]) == b


# ----------------------------------------------------------------------------- distribution shift
def _hand_example() -> dict:
    """p = (1/4, 3/4); q_1 = (1/2, 1/2), q_2 = (3/4, 1/4) at tau = 2 (logits doubled)."""
    tau = 2.0
    logits = [[0.0, 2 * math.log(3.0)]]
    perturbed = [[0.0, 0.0], [2 * math.log(3.0), 0.0]]
    p = [0.25, 0.75]
    qs = [[0.5, 0.5], [0.75, 0.25]]
    raw = [[tau**2 * p[c] * (math.log(p[c]) - math.log(q[c])) for c in range(2)] for q in qs]
    pos = [v for row in raw for v in row if v > 0]
    none = [[v / (sum(pos) / len(pos) + 1e-8) for v in row] for row in raw]
    sums = [sum(row) for row in raw]
    total = [v / (sum(sums) / len(sums) + 1e-8) for v in sums]
    return {
        "tau": tau,
        "logits": logits,
        "logits_perturbed": perturbed,
        "raw_terms": [raw],
        "expected_none": [none],
        "expected_sum": [total],
    }


def _golden() -> dict:
    return json.loads(FIXTURE.read_text())


def test_distribution_shift_by_hand() -> None:
    ex = _hand_example()
    z = torch.tensor(ex["logits"], dtype=torch.float64)
    zp = torch.tensor(ex["logits_perturbed"], dtype=torch.float64)
    raw = kl_terms(z, zp, ex["tau"])
    assert raw.shape == (1, 2, 2)
    np.testing.assert_allclose(raw.numpy(), ex["raw_terms"], rtol=1e-12)
    # by hand: raw[0, 0] = tau^2 * 1/4 * log(1/2), raw[0, 1, 1] = tau^2 * 3/4 * log 3
    assert raw[0, 0, 0].item() == pytest.approx(4 * 0.25 * math.log(0.5))
    assert raw[0, 1, 1].item() == pytest.approx(4 * 0.75 * math.log(3.0))
    np.testing.assert_allclose(distribution_shift(z, zp, ex["tau"]).numpy(), ex["expected_none"], rtol=1e-12)
    np.testing.assert_allclose(
        distribution_shift(z, zp, ex["tau"], reduce="sum").numpy(), ex["expected_sum"], rtol=1e-12
    )


def test_target_shift_by_hand_is_the_authors_q_minus_p_at_temperature_one() -> None:
    # Target class 1. At temperature 1: p = softmax(0, log 3) = (1/4, 3/4); the perturbed logits
    # give q_y = 1/2, 9/10, 7/8, so q_y - p_y = -1/4, 3/20, 1/8: the window whose replacement
    # lowers the target probability is negative, and the normaliser is the mean of the two
    # positive entries, (3/20 + 1/8) / 2 = 11/80.
    z = torch.tensor([[0.0, math.log(3.0)]], dtype=torch.float64)
    zp = torch.tensor([[0.0, 0.0], [0.0, math.log(9.0)], [0.0, math.log(7.0)]], dtype=torch.float64)
    expected = [[-1 / 4 / (11 / 80 + 1e-8), 3 / 20 / (11 / 80 + 1e-8), 1 / 8 / (11 / 80 + 1e-8)]]
    np.testing.assert_allclose(target_shift(z, zp, torch.tensor([1])).numpy(), expected, rtol=1e-12)
    # no temperature: scaling the logits changes the probabilities, hence the score
    assert not torch.allclose(target_shift(2 * z, 2 * zp, torch.tensor([1])), target_shift(z, zp, torch.tensor([1])))
    with pytest.raises(TypeError):  # the old signature's positional tau must fail loudly
        target_shift(z, zp, torch.tensor([1]), 2.0)


def test_distribution_shift_golden_fixture() -> None:
    ex = _golden()["distribution_shift"]
    z = torch.tensor(ex["logits"], dtype=torch.float32)
    zp = torch.tensor(ex["logits_perturbed"], dtype=torch.float32)
    for reduce in ("none", "sum"):
        got = distribution_shift(z, zp, ex["tau"], reduce=reduce)
        np.testing.assert_allclose(got.numpy(), ex[f"expected_{reduce}"], rtol=1e-5, atol=1e-6)
    got = target_shift(z, zp, torch.tensor(ex["target"]))
    np.testing.assert_allclose(got.numpy(), ex["expected_target"], rtol=1e-5, atol=1e-6)


def test_normalisation_and_reduce_sum() -> None:
    g = _gen(3)
    z = torch.randn(8, 5, generator=g, dtype=torch.float64) * 3
    zp = z.repeat_interleave(6, 0) + torch.randn(48, 5, generator=g, dtype=torch.float64)
    s = distribution_shift(z, zp, 2.0)
    assert s.shape == (8, 6, 5)
    assert bool((s < 0).any())  # per-class terms can be negative
    assert s[s > 0].mean().item() == pytest.approx(1.0, abs=1e-6)
    # (B*K, k) and (B, K, k) inputs agree
    assert torch.equal(s, distribution_shift(z, zp.reshape(8, 6, 5), 2.0))
    raw = kl_terms(z, zp, 2.0)
    total = distribution_shift(z, zp, 2.0, reduce="sum")
    assert total.shape == (8, 6) and bool((total >= 0).all())
    assert torch.allclose(total, normalise_shift(raw.sum(-1)))
    assert total[total > 0].mean().item() == pytest.approx(1.0, abs=1e-6)
    # no positive entry: returned unchanged
    zeros = distribution_shift(z, z.repeat_interleave(6, 0), 2.0)
    assert torch.allclose(zeros, torch.zeros_like(zeros))


# ----------------------------------------------------------------------------- prefix sharing
@pytest.mark.parametrize(("C", "layers"), [(1, 1), (2, 3)])
def test_prefix_forward_equals_plain_forward_with_gradients(C: int, layers: int) -> None:
    from tsd_lib.models import build_model

    torch.manual_seed(0)
    model = build_model("lstm_teacher", C, 4, hidden=5, layers=layers).double()
    T, L, K = 30, 4, 9
    X = torch.randn(5, C, T, dtype=torch.float64)
    starts = draw_starts(5, K, T, L, _gen(2))
    starts[0, 0], starts[1, 0] = 0, T - L  # both ends
    copies = apply_windows(X, starts, torch.randn(5, K, C, L, dtype=torch.float64), L)
    assert supports_prefix_sharing(model)
    clean, pert = prefix_forward(model, X, copies, starts, n_buckets=4)
    (clean.sum() + (pert**2).sum()).backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    clean_ref, pert_ref = model(X), model(copies)
    (clean_ref.sum() + (pert_ref**2).sum()).backward()
    torch.testing.assert_close(clean, clean_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(pert, pert_ref, rtol=0, atol=1e-12)
    for g, p in zip(grads, model.parameters(), strict=True):
        torch.testing.assert_close(g, p.grad, rtol=1e-9, atol=1e-12)
    # the dispatcher: same numbers with and without prefix sharing
    a = perturbed_logits(model, X, copies, starts)
    b = perturbed_logits(model, X, copies, starts, prefix_sharing=False)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_prefix_sharing_only_for_lstm_classifiers() -> None:
    from tsd_lib.models import build_model

    assert not supports_prefix_sharing(build_model("fcn_small", 1, 2))
    chained = build_model("lstm_teacher_chained", 1, 2)  # layer 2 depends on layer 1's final state
    assert not supports_prefix_sharing(chained) and not hasattr(chained, "lstm")  # maps' LSTM engine needs .lstm
    assert not supports_prefix_sharing(build_model("lstm_student", 1, 2), device="cuda")


# ----------------------------------------------------------------------------- teacher bank
def _tiny_teacher(n_classes: int = 3) -> torch.nn.Module:
    from tsd_lib.models import build_model

    torch.manual_seed(0)
    return build_model("lstm_teacher", 1, n_classes, hidden=6, layers=2)


def test_bank_matches_fresh_recomputation() -> None:
    g = _gen(5)
    X_pool = torch.randn(14, 1, 30, generator=g)
    y_pool = torch.arange(14) % 3
    teacher = _tiny_teacher()
    bank = TeacherBank(teacher, X_pool, y_pool, bank_size=40, window=5, tau=4.0, n_windows=10, seed=1,
                       show_progress=False)
    assert bank.logits.shape == (14, 3) and bank.logits_perturbed.shape == (14, 40, 3)
    assert bank.precompute_seconds > 0 and not teacher.training
    # bank entries: 25 possible starts (0 <= t < 25), all of them in every row, other-class donors
    assert bool((y_pool[bank.donors] != y_pool[:, None]).all())
    assert all(set(row.tolist()) == set(range(25)) for row in bank.starts)
    index = torch.tensor([3, 0, 11, 7])
    starts, donors, terms = bank.sample(index, 10, _gen(9))
    assert starts.shape == donors.shape == (4, 10) and terms.shape == (4, 10, 3)
    assert all(len(set(row.tolist())) == 10 for row in starts)  # distinct starts per series
    assert bool((y_pool[donors] != y_pool[index][:, None]).all())
    copies = apply_windows(X_pool[index], starts, gather_windows(X_pool, donors, starts, 5), 5)
    with torch.no_grad():
        fresh = kl_terms(teacher(X_pool[index]), teacher(copies), 4.0)
    torch.testing.assert_close(terms, fresh, rtol=0, atol=1e-6)
    entries = bank.sample_entries(index, 10, _gen(9))
    assert torch.equal(bank.perturbed(X_pool[index], index, entries), copies)
    assert bank.to("cpu") is bank and bank.nbytes() > 0


def test_bank_zero_baseline_and_noise_refused() -> None:
    X_pool = torch.randn(6, 1, 20)
    y_pool = torch.tensor([0, 1, 2, 0, 1, 2])
    teacher = _tiny_teacher()
    bank = TeacherBank(teacher, X_pool, y_pool, bank_size=8, window=4, baseline="zero", show_progress=False)
    starts, donors, terms = bank.sample(torch.tensor([1, 2]), 5, _gen())
    assert bool((donors == -1).all())
    copies = perturb(X_pool[[1, 2]], y_pool[[1, 2]], None, None, n_windows=1, window=4, baseline="zero")[0]
    assert copies.shape == (2, 1, 20)
    rebuilt = apply_windows(X_pool[[1, 2]], starts, torch.zeros(2, 5, 1, 4), 4)
    with torch.no_grad():
        fresh = kl_terms(teacher(X_pool[[1, 2]]), teacher(rebuilt), 8.0)
    torch.testing.assert_close(terms, fresh, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="noise"):
        TeacherBank(teacher, X_pool, y_pool, bank_size=8, window=4, baseline="noise")


class _LinearTeacher(torch.nn.Module):
    """A cheap teacher for bank-layout tests (no prefix sharing, no BatchNorm)."""

    def __init__(self, length: int, n_classes: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.head = torch.nn.Linear(length, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x[:, 0])


def _repeats_per_row(donors: torch.Tensor) -> float:
    """Share of a row's entries whose donor already appeared earlier in the row."""
    return sum(len(r) - len(set(r)) for r in donors.tolist()) / donors.numel()


@pytest.mark.parametrize("class_sizes", [(80, 80), (70, 60)])  # 80 eligible donors; 60 and 70 (< T - L)
def test_bank_step_never_reuses_a_donor_when_k_donors_exist(class_sizes: tuple[int, ...]) -> None:
    # The quick profile's setting: T = 100, L = 10 (90 starts), M = 200, K = 50. A bank of
    # format 1 (donors drawn per row with replacement beyond the eligible count) reused a donor
    # for 16-30 % of a step's windows; now a step has K distinct starts and K distinct donors.
    T, L, M, K = 100, 10, 200, 50
    y_pool = torch.cat([torch.full((n,), c) for c, n in enumerate(class_sizes)])
    X_pool = torch.randn(len(y_pool), 1, T, generator=_gen(1))
    bank = TeacherBank(_LinearTeacher(T, len(class_sizes)), X_pool, y_pool, bank_size=M, window=L,
                       n_windows=K, show_progress=False)
    assert int(bank.starts.max()) < T - L and bank.max_block_k >= K
    for row in bank.starts.tolist():  # every start stored floor/ceil(M / 90) = 2 or 3 times
        assert set(torch.bincount(torch.tensor(row), minlength=T - L).tolist()) == {2, 3}
    gen = _gen(2)
    for _ in range(20):
        index = torch.randperm(len(y_pool), generator=gen)[:32]
        starts, donors, _ = bank.sample(index, K, gen)
        assert starts.shape == (32, K)
        assert all(len(set(r)) == K for r in starts.tolist())
        assert _repeats_per_row(donors) == 0.0
        assert bool((y_pool[donors] != y_pool[index][:, None]).all())


def test_bank_with_too_few_donors_spreads_them() -> None:
    # 8 other-class donors, K = 12: repeats are unavoidable; each donor is used at most twice
    X_pool = torch.randn(12, 1, 40, generator=_gen(3))
    y_pool = torch.arange(12) % 3
    bank = TeacherBank(_LinearTeacher(40, 3), X_pool, y_pool, bank_size=60, window=4, n_windows=12,
                       show_progress=False)
    starts, donors, _ = bank.sample(torch.arange(12), 12, _gen(4))
    assert all(len(set(r)) == 12 for r in starts.tolist())
    assert all(max(torch.bincount(torch.tensor(r)).tolist()) <= 2 for r in donors.tolist())
    assert all(len(set(r)) == 8 for r in donors.tolist())


def test_bank_sampler_distribution() -> None:
    # For one bank: a block uniformly among those of >= K entries, then K of its entries uniformly,
    # so entry e of block g is drawn with probability K / (n_valid_blocks * size_g).
    T, L, M, K = 20, 5, 40, 6  # 15 starts; 30 other-class donors: blocks [14, 13, 13]
    y_pool = torch.arange(45) % 3
    X_pool = torch.randn(45, 1, T, generator=_gen(5))
    bank = TeacherBank(_LinearTeacher(T, 3), X_pool, y_pool, bank_size=M, window=L, n_windows=K,
                       show_progress=False)
    blocks = bank.blocks
    assert torch.bincount(blocks).tolist() == [14, 13, 13]
    rows = 6000
    entries = bank.sample_entries(torch.zeros(rows, dtype=torch.long), K, _gen(6))
    assert all(len(set(blocks[r].tolist())) == 1 for r in entries)  # one block per step
    freq = torch.bincount(entries.flatten(), minlength=M).double() / rows
    size = torch.bincount(blocks).double()[blocks]
    torch.testing.assert_close(freq, K / (3 * size), rtol=0, atol=0.03)


def _ordered_pairs(rows: torch.Tensor, n: int) -> torch.Tensor:
    """``(n, n)`` counts of ordered pairs ``(row[a], row[b])``, ``a != b``, over all rows."""
    K = rows.shape[1]
    a, b = torch.meshgrid(torch.arange(K), torch.arange(K), indexing="ij")
    keep = a != b
    flat = rows[:, a[keep]] * n + rows[:, b[keep]]
    return torch.bincount(flat.flatten(), minlength=n * n).reshape(n, n).double()


def test_bank_matches_fresh_sampling_averaged_over_banks() -> None:
    # Over the bank's random construction, a step's starts are a uniform K-subset of the T - L
    # starts and its donors a uniform K-subset of the other-class series, as in fresh sampling.
    # The 4000 class-0 rows of one bank share their 4 eligible donors (class 1) and have
    # independent layouts: 4000 bank constructions for the price of one.
    T, L, M, K, n_rows = 12, 4, 10, 3, 4000  # 8 starts, blocks [5, 5]: rows cycle 4 donors
    y_pool = torch.cat([torch.zeros(n_rows, dtype=torch.long), torch.ones(4, dtype=torch.long)])
    X_pool = torch.randn(len(y_pool), 1, T, generator=_gen(7))
    bank = TeacherBank(_LinearTeacher(T, 2), X_pool, y_pool, bank_size=M, window=L, n_windows=K,
                       show_progress=False)
    index = torch.arange(n_rows).repeat(3)
    starts, donors, _ = bank.sample(index, K, _gen(8))
    assert all(len(set(r)) == K for r in donors.tolist())  # 4 donors >= K = 3: never repeated
    pairs = _ordered_pairs(starts, T - L)
    off = ~torch.eye(T - L, dtype=torch.bool)
    share = pairs[off] / pairs[off].mean()
    assert float(share.min()) > 0.85 and float(share.max()) < 1.15, share
    pairs = _ordered_pairs(donors - n_rows, 4)  # donors are pool rows n_rows .. n_rows + 3
    share = pairs[~torch.eye(4, dtype=torch.bool)] / pairs[~torch.eye(4, dtype=torch.bool)].mean()
    assert float(share.min()) > 0.9 and float(share.max()) < 1.1, share


def test_bank_warns_once_and_falls_back_for_a_larger_k() -> None:
    X_pool = torch.randn(30, 1, 30, generator=_gen(9))
    y_pool = torch.arange(30) % 3
    bank = TeacherBank(_LinearTeacher(30, 3), X_pool, y_pool, bank_size=40, window=5, n_windows=5,
                       show_progress=False)
    assert bank.max_block_k == 20  # blocks [20, 20]
    index = torch.tensor([0, 1, 2])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            entries = bank.sample_entries(index, 22, _gen())  # more than a block holds
            assert all(len(set(bank.starts[i][e].tolist())) == 22 for i, e in zip(index, entries, strict=True))
        for _ in range(3):
            assert bank.sample_entries(index, 40, _gen()).shape == (3, 25)  # capped at the 25 starts
    messages = [str(w.message) for w in caught]
    assert sum("rebuild the bank with n_windows" in m for m in messages) == 1
    assert sum("possible window starts" in m for m in messages) == 1


def test_bank_state_round_trip_and_old_format_refused() -> None:
    X_pool = torch.randn(9, 1, 20, generator=_gen(10))
    y_pool = torch.arange(9) % 3
    bank = TeacherBank(_LinearTeacher(20, 3), X_pool, y_pool, bank_size=12, window=4, n_windows=5,
                       show_progress=False)
    state = bank.state_dict()
    restored = TeacherBank.from_state(state, X_pool.numpy(), y_pool.numpy(), tau=8.0)
    index = torch.tensor([4, 2])
    assert torch.equal(bank.sample_entries(index, 5, _gen(1)), restored.sample_entries(index, 5, _gen(1)))
    assert restored.max_block_k == bank.max_block_k and restored.nbytes() == bank.nbytes()
    old = {k: v for k, v in state.items() if k not in ("format", "blocks", "n_windows")}
    with pytest.raises(ValueError, match="format 1"):
        TeacherBank.from_state(old, X_pool, y_pool)
