"""Sliding-window saliency maps (fast engines vs full recompute vs captum) and gradient maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tsd_lib.models import SMOKE_SETTINGS, build_model
from tsd_lib.saliency import _engines
from tsd_lib.saliency.gradients import gradient_map, integrated_gradients_map
from tsd_lib.saliency.maps import saliency_map, window_scores, window_starts, windows_to_map

C, T, K_CLASSES = 2, 37, 3


def _smoke(name: str, n_channels: int = C, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = build_model(name, n_channels, K_CLASSES, **SMOKE_SETTINGS[name]).eval()
    for m in model.modules():  # non-trivial BatchNorm statistics
        if isinstance(m, nn.BatchNorm1d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
    return model


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models: one torch thread avoids oversubscription on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "X": torch.randn(5, C, T, generator=g),
        "y": torch.tensor([0, 1, 2, 0, 1]),
        "X_pool": torch.randn(24, C, T, generator=g),
        "y_pool": torch.arange(24) % K_CLASSES,
    }


class WindowModel(nn.Module):
    """Logits depend only on ``x[..., 40:50]`` (linear, positive weights)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.linspace(0.5, 1.5, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (x[:, 0, 40:50] * self.w).sum(-1)
        return torch.stack([s, -s], dim=1)


class DilatedFCN(nn.Module):
    """Duck-typed FCN: ``nn.Conv1d(padding="same")`` with an even kernel and dilation, dropout."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            [
                nn.Sequential(nn.Conv1d(C, 4, 4, padding="same", dilation=2), nn.BatchNorm1d(4), nn.GELU()),
                nn.Sequential(nn.Conv1d(4, 3, 3, padding=1), nn.Dropout(0.5), nn.Tanh()),
            ]
        )
        self.head = nn.Linear(3, K_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for b in self.blocks:
            x = b(x)
        return self.head(x.mean(-1))


class PooledLSTM(nn.Module):
    """Has ``lstm`` and ``head`` but pools over time: the LSTM shortcut must not be used."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(C, 4, batch_first=True)
        self.head = nn.Linear(4, K_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x.transpose(1, 2))
        return self.head(out.mean(1))


# --------------------------------------------------------------------------- window geometry


def test_window_starts_follow_captum() -> None:
    assert window_starts(37, 6, 1).tolist() == list(range(32))
    assert window_starts(37, 6, 4).tolist() == list(range(0, 33, 4))  # ceil(31/4)+1, last cut off
    assert window_starts(37, 6, 31).tolist() == [0, 31]
    assert window_starts(10, 10, 3).tolist() == [0]
    assert window_starts(100, 10, 50).tolist() == [0, 50]  # stride > window: gaps
    with pytest.raises(ValueError):
        window_starts(10, 11)
    with pytest.raises(ValueError):
        window_starts(10, 3, 0)


def test_windows_to_map_means_and_gaps() -> None:
    m = windows_to_map(np.array([[1.0, 3.0]]), np.array([0, 2]), 6, 3)
    np.testing.assert_allclose(m, [[1, 1, 2, 3, 3, 0]])


# --------------------------------------------------------------------------- basic behaviour


@pytest.mark.parametrize("name", ["lstm_teacher", "fcn_small", "resnet"])
def test_shape_finite_and_mode_restored(name: str, data: dict) -> None:
    model = _smoke(name).train()
    frozen = next(m for m in model.modules() if m is not model)
    frozen.eval()  # mixed modes must come back as they were
    sal = saliency_map(model, data["X"].numpy(), data["y"].numpy(), X_pool=data["X_pool"], y_pool=data["y_pool"])
    assert sal.shape == (5, T) and sal.dtype == np.float32
    assert np.isfinite(sal).all() and (sal >= 0).all()  # KL >= 0
    assert model.training and not frozen.training


def test_planted_window_model() -> None:
    x = torch.rand(3, 1, 80) + 0.5
    L = 5
    for score in ("target_logit", "kl"):
        sal = saliency_map(WindowModel(), x, torch.zeros(3, dtype=torch.long), window=L, baseline="zero", score=score)
        outside = np.ones(80, dtype=bool)
        outside[40 - L + 1 : 50 + L - 1] = False
        assert np.abs(sal[:, outside]).max() < 1e-6
        assert (sal[:, 40 - L + 1 : 50 + L - 1] > 0).all()
        assert ((sal.argmax(1) >= 40) & (sal.argmax(1) < 50)).all()


def test_other_class_needs_pool(data: dict) -> None:
    with pytest.raises(ValueError, match="X_pool"):
        saliency_map(_smoke("fcn_small"), data["X"], data["y"])
    with pytest.raises(ValueError, match="score"):
        saliency_map(_smoke("fcn_small"), data["X"], baseline="zero", score="nope")
    with pytest.raises(ValueError, match="baseline"):
        saliency_map(_smoke("fcn_small"), data["X"], baseline="blur")


def test_generator_seed_reproducible_and_shared(data: dict) -> None:
    kw = dict(X_pool=data["X_pool"], y_pool=data["y_pool"], window=6)
    model = _smoke("lstm_student")
    a = saliency_map(model, data["X"], data["y"], generator=3, **kw)
    b = saliency_map(model, data["X"], data["y"], generator=torch.Generator().manual_seed(3), **kw)
    c = saliency_map(model, data["X"], data["y"], generator=4, **kw)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0

    seen: dict[str, list[torch.Tensor]] = {"teacher": [], "student": []}

    class Recorder(nn.Module):
        def __init__(self, inner: nn.Module, key: str) -> None:
            super().__init__()
            self.inner, self.key = inner, key

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen[self.key].append(x.clone())
            return self.inner(x)

    for key, name in (("teacher", "lstm_teacher"), ("student", "fcn_small")):
        saliency_map(Recorder(_smoke(name), key), data["X"], data["y"], generator=7, batch_size=16, **kw)
    assert len(seen["teacher"]) == len(seen["student"]) > 1
    for u, v in zip(seen["teacher"], seen["student"], strict=True):
        torch.testing.assert_close(u, v, rtol=0, atol=0)


def test_normalise_per_series(data: dict) -> None:
    kw = dict(X_pool=data["X_pool"], y_pool=data["y_pool"], score="target_logit")
    raw, starts = window_scores(_smoke("fcn_small"), data["X"], data["y"], **kw)
    s, _ = window_scores(_smoke("fcn_small"), data["X"], data["y"], normalise=True, **kw)
    assert s.shape == (5, len(starts))
    denom = np.array([row[row > 0].mean() for row in raw]) + 1e-8
    np.testing.assert_allclose(s, raw / denom[:, None], rtol=1e-6)


# --------------------------------------------------------------------------- fast engines


@pytest.mark.parametrize(
    ("name", "engine"),
    [("lstm_teacher", "lstm_engine"), ("lstm_student", "lstm_engine"), ("fcn", "conv_engine"),
     ("fcn_small", "conv_engine"), ("resnet", "generic_engine")],
)  # fmt: skip
def test_engine_selection(name: str, engine: str, data: dict) -> None:
    assert _engines.pick_engine(_smoke(name), data["X"], True).__name__ == engine


def test_duck_typed_models(data: dict) -> None:
    torch.manual_seed(0)
    assert _engines.pick_engine(DilatedFCN().eval(), data["X"], True) is _engines.conv_engine
    with pytest.warns(UserWarning, match="shortcut"):
        assert _engines.pick_engine(PooledLSTM().eval(), data["X"], True) is _engines.generic_engine
    batch_stats = DilatedFCN().eval()
    batch_stats.blocks[0][1] = nn.BatchNorm1d(4, track_running_stats=False)  # acts across the batch
    assert _engines.pick_engine(batch_stats, data["X"], True) is _engines.generic_engine


def test_float64_model_and_progress_bar(data: dict) -> None:
    model = _smoke("fcn_small").double()
    kw = dict(baseline="zero", score="kl", window=4, batch_size=8)
    a = saliency_map(model, data["X"].double(), progress=True, **kw)
    b = saliency_map(model, data["X"], fast=False, progress=False, **kw)
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.filterwarnings("ignore:.*shortcut")
@pytest.mark.parametrize("name", ["lstm_teacher", "lstm_student", "fcn", "fcn_small", "dilated", "pooled"])
@pytest.mark.parametrize("stride", [1, 4])
def test_fast_equals_generic(name: str, stride: int, data: dict) -> None:
    torch.manual_seed(1)
    model = {"dilated": DilatedFCN, "pooled": PooledLSTM}.get(name, lambda: _smoke(name))().eval()
    pool = dict(X_pool=data["X_pool"], y_pool=data["y_pool"])
    for baseline in ("zero", "mean", "other_class", "same_class", "noise"):
        for score in ("kl", "target_logit"):
            kw = dict(window=6, stride=stride, baseline=baseline, score=score, batch_size=16, generator=5, **pool)
            fast, _ = window_scores(model, data["X"], data["y"], **kw)
            slow, _ = window_scores(model, data["X"], data["y"], fast=False, **kw)
            np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-5, err_msg=f"{baseline} {score}")


def test_fast_paths_univariate_full_window() -> None:
    x = torch.randn(3, 1, 23)
    for name in ("lstm_teacher", "fcn"):
        model = _smoke(name, n_channels=1)
        for window in (1, 23):
            a = saliency_map(model, x[:, 0], window=window, baseline="zero", batch_size=7)
            b = saliency_map(model, x[:, 0], window=window, baseline="zero", batch_size=7, fast=False)
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- captum


@pytest.mark.parametrize("name", ["fcn", "lstm_teacher", "resnet"])
@pytest.mark.parametrize("stride", [1, 3])
def test_equals_captum_occlusion(name: str, stride: int, data: dict) -> None:
    from captum.attr import Occlusion

    model = _smoke(name)
    with torch.no_grad():
        pred = model(data["X"]).argmax(1)
    ours = saliency_map(model, data["X"], window=6, stride=stride, baseline="zero", score="target_logit")
    with torch.no_grad():
        ref = Occlusion(model).attribute(
            data["X"], sliding_window_shapes=(C, 6), strides=(1, stride), baselines=0, target=pred
        )
    for ch in range(C):
        np.testing.assert_allclose(ours, ref[:, ch].numpy(), rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- gradients


def test_gradient_map_linear_model() -> None:
    x = torch.randn(4, 1, 80)
    g = gradient_map(WindowModel(), x, torch.zeros(4, dtype=torch.long))
    assert g.shape == (4, 80)
    np.testing.assert_allclose(g[:, 40:50], np.tile(np.linspace(0.5, 1.5, 10), (4, 1)), rtol=1e-5)
    assert np.abs(g[:, :40]).max() == 0 and np.abs(g[:, 50:]).max() == 0
    signed = gradient_map(WindowModel(), x, torch.ones(4, dtype=torch.long), absolute=False)
    assert (signed[:, 40:50] < 0).all()


@pytest.mark.parametrize("name", ["lstm_teacher", "fcn_small"])
def test_integrated_gradients_completeness(name: str, data: dict) -> None:
    model = _smoke(name).train()
    X = data["X"]
    ig, delta = integrated_gradients_map(model, X, steps=64, return_delta=True)
    assert ig.shape == (5, T) and np.isfinite(ig).all() and model.training
    model.eval()
    with torch.no_grad():
        z = model(X)
        pred = z.argmax(1, keepdim=True)
        change = (z.gather(1, pred) - model(torch.zeros_like(X)).gather(1, pred)).squeeze(1).numpy()
    np.testing.assert_allclose(ig.sum(1), change, rtol=0.05, atol=0.05 * np.abs(change).max())
    np.testing.assert_allclose(delta, ig.sum(1) - change, atol=1e-4)
    mean_ig = integrated_gradients_map(model, X, baseline="mean", steps=8)
    assert mean_ig.shape == (5, T)
    assert gradient_map(model, X).shape == (5, T)
    with pytest.raises(ValueError, match="baseline"):
        integrated_gradients_map(model, X, baseline="blur")
