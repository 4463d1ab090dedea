"""Golden-value tests for tsd_lib.metrics (values computed by hand, cross-checked with sklearn)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.stats import entropy
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score

from tsd_lib import metrics as M

# Hand-made 3-class example (see the per-class rankings in the comments below).
Y3 = np.array([0, 0, 1, 1, 2, 2])
P3 = np.array(
    [
        [0.7, 0.2, 0.1],
        [0.3, 0.4, 0.3],
        [0.2, 0.6, 0.2],
        [0.5, 0.1, 0.4],
        [0.1, 0.2, 0.7],
        [0.2, 0.2, 0.6],
    ]
)


@pytest.fixture(autouse=True)
def _no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def test_softmax() -> None:
    z = np.array([[0.0, math.log(3.0)], [1000.0, 1000.0]])
    np.testing.assert_allclose(M.softmax(z), [[0.25, 0.75], [0.5, 0.5]])
    np.testing.assert_allclose(M.softmax(np.array([0.0, 2 * math.log(3.0)]), tau=2.0), [0.25, 0.75])
    np.testing.assert_allclose(M.softmax(torch.tensor([[1.0, 2.0, 3.0]])).sum(), 1.0)


def test_perfect_predictions() -> None:
    y = np.array([0, 1, 2, 0, 2])
    p = np.eye(3)[y]
    out = M.classification_metrics(y, p)
    assert out == {"accuracy": 1.0, "auc_pr": 1.0, "auc_pr_trapezoid": 1.0, "roc_auc": 1.0, "ap_micro": 1.0}
    assert M.auc_pr(y, p, method="trapezoid") == pytest.approx(1.0)


def test_hand_made_three_class_example() -> None:
    # arg-max: 0, 1, 1, 0, 2, 2 -> rows 0, 2, 4, 5 correct
    assert M.accuracy(Y3, P3) == pytest.approx(4 / 6)
    # class 0 ranking: r0(+) r3 r1(+) ... -> AP = (1/1 + 2/3) / 2 = 5/6
    # class 1 ranking: r2(+) r1 {r0 r4 r5} r3(+) -> AP = (1/1 + 2/6) / 2 = 2/3
    # class 2 ranking: r4(+) r5(+) ... -> AP = 1
    per_class = average_precision_score(np.eye(3)[Y3], P3, average=None)
    np.testing.assert_allclose(per_class, [5 / 6, 2 / 3, 1.0])
    assert M.auc_pr(Y3, P3) == pytest.approx((5 / 6 + 2 / 3 + 1) / 3)
    # one-vs-rest ROC: class 0 7/8, class 1 4/8, class 2 8/8
    assert M.roc_auc(Y3, P3) == pytest.approx((7 / 8 + 1 / 2 + 1) / 3)
    assert M.roc_auc(Y3, P3) == pytest.approx(roc_auc_score(Y3, P3, multi_class="ovr"))
    assert M.average_precision_micro(Y3, P3) == pytest.approx(
        average_precision_score(np.eye(3)[Y3], P3, average="micro")
    )
    trapezoid = np.mean([auc(*precision_recall_curve(np.equal(Y3, c), P3[:, c])[1::-1]) for c in range(3)])
    assert M.auc_pr(Y3, P3, method="trapezoid") == pytest.approx(trapezoid)
    assert M.classification_metrics(Y3, P3)["auc_pr_trapezoid"] == pytest.approx(trapezoid)


def test_binary_and_torch_inputs() -> None:
    y = np.array([0, 1, 1, 0, 1])
    p1 = np.array([0.2, 0.9, 0.4, 0.6, 0.8])
    p = np.stack([1 - p1, p1], axis=1)
    assert M.roc_auc(y, p) == pytest.approx(roc_auc_score(y, p1))
    assert M.roc_auc(torch.tensor(y), torch.tensor(p)) == pytest.approx(roc_auc_score(y, p1))
    assert M.roc_auc(y, p1) == pytest.approx(roc_auc_score(y, p1))  # 1-D = P(class 1)
    # macro AP over both classes (as the TSD authors' one-hot evaluation does)
    expected = (average_precision_score(y, p1) + average_precision_score(1 - y, 1 - p1)) / 2
    assert M.auc_pr(y, p) == pytest.approx(expected)


def test_absent_classes_are_skipped() -> None:
    y = np.array([0, 1, 0, 1])
    p = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.6, 0.2, 0.2], [0.3, 0.5, 0.2]])
    assert M.roc_auc(y, p) == pytest.approx(1.0)
    assert M.auc_pr(y, p) == pytest.approx(1.0)
    single = np.zeros(4, dtype=int)
    assert math.isnan(M.roc_auc(single, p))
    assert not math.isnan(M.auc_pr(single, p))


def test_fidelity_identical_and_disjoint() -> None:
    p = M.softmax(np.random.default_rng(0).normal(size=(20, 4)))
    out = M.fidelity_metrics(p, p)
    assert out["agreement"] == 1.0
    assert out["kl_teacher_student"] == pytest.approx(0.0, abs=1e-12)
    assert out["js_teacher_student"] == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(out["ece"])
    a, b = np.eye(3)[[0, 1, 2]], np.eye(3)[[1, 2, 0]]
    assert M.agreement(a, b) == 0.0
    js = M.js_teacher_student(a, b)
    assert js <= math.log(2) + 1e-12
    assert js == pytest.approx(math.log(2))
    assert np.isfinite(M.kl_teacher_student(a, b))


def test_kl_hand_computed() -> None:
    p, q = np.array([[0.5, 0.5]]), np.array([[0.25, 0.75]])
    expected = 0.5 * math.log(2) + 0.5 * math.log(2 / 3)
    assert M.kl_teacher_student(p, q) == pytest.approx(expected)
    assert M.kl_teacher_student(p, q) == pytest.approx(entropy(p[0], q[0]))
    m = (p + q) / 2
    assert M.js_teacher_student(p, q) == pytest.approx(0.5 * entropy(p[0], m[0]) + 0.5 * entropy(q[0], m[0]))


def test_ece() -> None:
    # perfectly calibrated: confidence 0.75 with 3/4 correct, confidence 0.5 with 1/2 correct
    y = np.array([0, 0, 0, 1, 0, 1])
    p = np.array([[0.75, 0.25]] * 4 + [[0.5, 0.5]] * 2)
    assert M.ece(y, p) == pytest.approx(0.0, abs=1e-12)
    # hand case: two at conf 0.85 (1 of 2 correct), two at conf 0.65 (both correct)
    y = np.array([0, 1, 1, 1])
    p = np.array([[0.85, 0.15], [0.85, 0.15], [0.35, 0.65], [0.35, 0.65]])
    assert M.ece(y, p, n_bins=10) == pytest.approx(0.5 * 0.35 + 0.5 * 0.35)
    assert M.ece(y, p) == pytest.approx(0.35)
    curve = M.reliability_curve(y, p, n_bins=10)
    assert curve.counts.tolist() == [0, 0, 0, 0, 0, 0, 2, 0, 2, 0]
    np.testing.assert_allclose(curve.confidence[[6, 8]], [0.65, 0.85])
    np.testing.assert_allclose(curve.accuracy[[6, 8]], [1.0, 0.5])
    assert np.isnan(curve.accuracy[0])
    assert M.fidelity_metrics(p, p, y)["ece"] == pytest.approx(0.35)


def test_validation_errors() -> None:
    with pytest.raises(ValueError, match="rows"):
        M.accuracy(np.array([0, 1]), P3)
    with pytest.raises(ValueError, match="same shape"):
        M.kl_teacher_student(P3, P3[:3])
    with pytest.raises(ValueError, match="softmax"):
        M.js_teacher_student(P3 * 3, P3)
    with pytest.raises(ValueError, match="labels"):
        M.accuracy(np.array([0, 1, 5, 0, 1, 2]), P3)
    with pytest.raises(ValueError, match="same shape"):
        M.saliency_similarity(np.zeros((2, 5)), np.zeros((2, 6)))
    with pytest.raises(ValueError, match="same shape"):
        M.saliency_precision(np.zeros((2, 5)), np.zeros((3, 5)))


def test_saliency_similarity() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 30))
    assert M.saliency_similarity(a, a) == pytest.approx({"spearman": 1.0, "cosine": 1.0, "topk_iou": 1.0})
    ramp = np.arange(10.0)
    out = M.saliency_similarity(ramp, ramp[::-1].copy(), k=3)
    assert out["spearman"] == pytest.approx(-1.0)
    assert out["topk_iou"] == 0.0
    # constant map: spearman 0 and no warning (the autouse fixture turns warnings into errors)
    assert M.saliency_similarity(np.ones(10), ramp)["spearman"] == 0.0
    # top-3 {0,1,2} vs {1,2,3}: IoU 2/4; orthogonal maps: cosine 0
    x = np.array([5.0, 4, 3, 0, 0, 0])
    z = np.array([0.0, 4, 3, 5, 0, 0])
    assert M.saliency_similarity(x, z, k=3)["topk_iou"] == pytest.approx(0.5)
    assert M.saliency_similarity([1.0, 0, 0], [0.0, 1, 0])["cosine"] == 0.0
    per = M.saliency_similarity(a, -a, per_series=True)
    np.testing.assert_allclose(per["spearman"], -1.0)
    assert per["cosine"].shape == (4,)


def test_saliency_precision() -> None:
    mask = np.zeros((3, 20), dtype=bool)
    mask[0, 2:7] = mask[1, 10:15] = mask[2, 15:20] = True
    assert M.saliency_precision(mask.astype(float), mask) == 1.0
    assert M.saliency_precision(torch.tensor(mask, dtype=torch.float32), torch.tensor(mask)) == 1.0
    elsewhere = np.roll(mask, 5, axis=1).astype(float)  # windows shifted by their own size
    assert M.saliency_precision(elsewhere, mask) == 0.0
    # constant map -> chance level window / length
    assert M.saliency_precision(np.ones((3, 20)), mask) == pytest.approx(5 / 20)
    # explicit k: the 2 largest values of row 0 are step 3 (in window) and step 9 (outside)
    s = np.zeros(20)
    s[3], s[9] = 2.0, 1.0
    assert M.saliency_precision(s, mask[0], k=2) == pytest.approx(0.5)
    # (n, 1, length) masks and maps are flattened to (n, length)
    assert M.saliency_precision(mask[:, None].astype(float), mask[:, None]) == 1.0
    assert math.isnan(M.saliency_precision(np.ones(5), np.zeros(5)))
