"""Shape, feature, gradient and determinism checks for every registered model."""

from __future__ import annotations

import pytest
import torch

from tsd_lib.models import (
    FCN,
    MODELS,
    SMOKE_SETTINGS,
    ChainedLSTMClassifier,
    LSTMClassifier,
    ResNet,
    SameConv1d,
    build_model,
    count_parameters,
)

NAMES = sorted(MODELS)


def _smoke(name: str, n_channels: int, n_classes: int, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(name, n_channels, n_classes, **SMOKE_SETTINGS[name])


def test_smoke_settings_cover_registry() -> None:
    assert set(SMOKE_SETTINGS) == set(MODELS)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n_channels", [1, 3])
@pytest.mark.parametrize("length", [24, 100])
def test_output_and_feature_shapes(name: str, n_channels: int, length: int) -> None:
    model = _smoke(name, n_channels, 5).eval()
    assert (model.n_channels, model.n_classes) == (n_channels, 5)
    x = torch.randn(3, n_channels, length)
    with torch.no_grad():
        logits = model(x)
        logits2, feats = model(x, return_features=True)
    assert logits.shape == (3, 5)
    assert set(feats) == {"sequence", "embedding"}
    seq, emb = feats["sequence"], feats["embedding"]
    assert seq.shape[:2] == (3, model.feature_dim) and seq.dim() == 3
    assert seq.shape[2] == length  # no model here downsamples in time
    assert emb.shape == (3, model.feature_dim)
    torch.testing.assert_close(logits, logits2)
    with torch.no_grad():
        torch.testing.assert_close(model.head(emb), logits)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(name: str) -> None:
    model = _smoke(name, 2, 3).train()
    x = torch.randn(3, 2, 24)
    loss = torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2]))
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_init(name: str) -> None:
    a, b, c = _smoke(name, 1, 4, seed=7), _smoke(name, 1, 4, seed=7), _smoke(name, 1, 4, seed=8)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key])
    assert any(not torch.equal(sa[k], sc[k]) for k in sa if sa[k].is_floating_point())


def test_full_size_models() -> None:
    sizes = {name: count_parameters(build_model(name, 1, 10)) for name in NAMES}
    assert sizes["lstm_teacher"] > 10 * sizes["lstm_student"]
    # 3x100 LSTM: 4*100*(1+100) + 2*8*100*100... computed from the PyTorch formula.
    lstm = 4 * 100 * (1 + 100 + 2) + 2 * 4 * 100 * (100 + 100 + 2)
    assert sizes["lstm_teacher"] == lstm + 100 * 10 + 10
    assert sizes["lstm_student"] == 4 * 16 * (1 + 16 + 2) + 16 * 10 + 10
    assert 250_000 < sizes["fcn"] < 300_000  # ~266k for the classic FCN
    assert sizes["fcn_small"] < 2_000
    assert 450_000 < sizes["resnet"] < 550_000  # ~507k for the classic ResNet
    assert sizes["lstm_teacher_chained"] == sizes["lstm_teacher"]  # same weights, chained differently
    teacher = build_model("lstm_teacher", 1, 10)
    assert isinstance(teacher, LSTMClassifier) and teacher.lstm.num_layers == 3 and teacher.feature_dim == 100
    chained = build_model("lstm_teacher_chained", 1, 10)
    assert isinstance(chained, ChainedLSTMClassifier) and len(chained.lstms) == 3 and chained.feature_dim == 100
    student = build_model("lstm_student", 1, 10)
    assert student.lstm.num_layers == 1 and student.feature_dim == 16
    fcn = build_model("fcn", 1, 10)
    assert isinstance(fcn, FCN) and fcn.channels == (128, 256, 128) and fcn.kernels == (8, 5, 3)
    assert isinstance(build_model("resnet", 1, 10), ResNet)
    assert count_parameters(fcn, trainable_only=True) == sizes["fcn"]


def test_unknown_model_names_registry() -> None:
    with pytest.raises(ValueError, match="lstm_teacher"):
        build_model("nope", 1, 2)


def test_kwargs_override_defaults() -> None:
    model = build_model("lstm_teacher", 1, 2, hidden=8, layers=2)
    assert model.feature_dim == 8 and model.lstm.num_layers == 2


def test_wrong_channel_count_raises() -> None:
    model = _smoke("fcn", 2, 3)
    with pytest.raises(ValueError, match="channel"):
        model(torch.randn(3, 1, 24))


def test_lstm_prefix_sharing_matches_forward() -> None:
    """Running self.lstm on a prefix and resuming from its state equals the full forward."""
    model = _smoke("lstm_teacher", 2, 3).eval()
    x = torch.randn(3, 2, 30)
    with torch.no_grad():
        _, state = model.lstm(x[:, :, :12].transpose(1, 2))
        out, _ = model.lstm(x[:, :, 12:].transpose(1, 2), state)
        torch.testing.assert_close(model.head(out[:, -1]), model(x))


def test_fcn_receptive_field_crop_matches_full() -> None:
    """Blocks run on a crop padded by the receptive field reproduce the full map inside it."""
    torch.manual_seed(0)
    model = FCN(1, 3, channels=(4, 4, 4), kernels=(8, 5, 3)).eval()
    assert model.receptive_field == (3 + 2 + 1, 4 + 2 + 1)
    x = torch.randn(2, 1, 60)
    left, right = model.receptive_field
    with torch.no_grad():
        _, feats = model(x, return_features=True)
        for a, b in [(20, 30), (0, 10), (55, 60)]:
            lo, hi = max(a - left, 0), min(b + right, 60)
            h = x[:, :, lo:hi]
            for block in model.blocks:
                h = block(h)
            torch.testing.assert_close(h[:, :, a - lo : b - lo], feats["sequence"][:, :, a:b])


@pytest.mark.parametrize("k", [3, 5, 8])
def test_same_conv_matches_torch_same_padding(k: int) -> None:
    import warnings

    torch.manual_seed(0)
    ours = SameConv1d(2, 3, k)
    ref = torch.nn.Conv1d(2, 3, k, padding="same")
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(4, 2, 17)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.testing.assert_close(ours(x), ref(x))


def _lstm_by_hand(lstm: torch.nn.LSTM, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
    """One 1-layer LSTM unrolled step by step (PyTorch's gate order i, f, g, o); x is (B, T, C)."""
    w_ih, w_hh = lstm.weight_ih_l0.double(), lstm.weight_hh_l0.double()
    bias = (lstm.bias_ih_l0 + lstm.bias_hh_l0).double()
    outs = []
    for t in range(x.shape[1]):
        i, f, g, o = (x[:, t] @ w_ih.T + h @ w_hh.T + bias).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outs.append(h)
    return torch.stack(outs, dim=1), h, c


def test_chained_lstm_layers_start_from_the_final_state_below() -> None:
    model = _smoke("lstm_teacher_chained", 2, 3, seed=4).eval()
    x = torch.randn(5, 2, 17, dtype=torch.float64)
    with torch.no_grad():
        logits, feats = model.double()(x, return_features=True)
        out = x.transpose(1, 2)
        h = c = torch.zeros(5, model.hidden, dtype=torch.float64)
        for lstm in model.lstms:  # each layer from the final (h, c) of the layer below
            out, h, c = _lstm_by_hand(lstm, out, h, c)
        torch.testing.assert_close(feats["sequence"], out.transpose(1, 2), rtol=0, atol=1e-12)
        torch.testing.assert_close(logits, model.head(out[:, -1]), rtol=0, atol=1e-12)
        # not what zero initial states give (the stacked nn.LSTM of LSTMClassifier)
        zeros = torch.zeros(5, model.hidden, dtype=torch.float64)
        out0 = x.transpose(1, 2)
        for lstm in model.lstms:
            out0, _, _ = _lstm_by_hand(lstm, out0, zeros, zeros)
        assert (out0 - out).abs().max() > 1e-3
