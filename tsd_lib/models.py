"""Time-series classifiers used as teachers and students (architecture only, no training).

Every model takes input shaped ``(batch, channels, length)`` and follows one contract:

* ``model(x)`` returns logits ``(B, n_classes)``;
* ``model(x, return_features=True)`` returns ``(logits, {"sequence": (B, D, T'),
  "embedding": (B, D)})`` where ``sequence`` is the last temporal feature map and
  ``embedding`` is the vector the linear head ``model.head`` reads, so
  ``model.head(features["embedding"])`` reproduces the logits;
* attributes ``feature_dim`` (= D), ``n_channels`` and ``n_classes``.

Models
------
``lstm_teacher`` / ``lstm_student``
    :class:`LSTMClassifier`; 3x100 and 1x16 LSTM classifying from the last time step, as in
    the TSD paper's scripts (Hewa Dehigahawattage et al., ECAI 2025).
``lstm_teacher_chained``
    :class:`ChainedLSTMClassifier`, 3x100: the teacher of the authors' ``teacher_main.py``,
    three 1-layer LSTMs, each starting from the final state of the layer below.
``fcn`` / ``fcn_small``
    :class:`FCN`, the fully convolutional baseline of Wang et al. (2017), 128-256-128 filters
    with kernels 8-5-3; the small variant has 8-16-8 filters with kernels 5-5-3 (the kernel
    sizes the TSD authors' small FCN uses).
``resnet``
    :class:`ResNet`, the 3-block residual baseline of Wang et al. (2017) / Ismail Fawaz
    et al. (2019).

Build one with :func:`build_model`; ``SMOKE_SETTINGS[name]`` holds tiny keyword arguments
for fast tests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "FCN",
    "ChainedLSTMClassifier",
    "MODELS",
    "SMOKE_SETTINGS",
    "LSTMClassifier",
    "ResNet",
    "SameConv1d",
    "build_model",
    "count_parameters",
]

Features = dict[str, torch.Tensor]


def _check_input(x: torch.Tensor, n_channels: int) -> torch.Tensor:
    """Accept ``(B, C, T)`` (or ``(B, T)`` when univariate) and validate the channel count."""
    if x.dim() == 2 and n_channels == 1:
        x = x.unsqueeze(1)
    if x.dim() != 3:
        raise ValueError(f"expected input shaped (batch, channels, length), got {tuple(x.shape)}")
    if x.shape[1] != n_channels:
        raise ValueError(
            f"model expects {n_channels} channel(s), input has {x.shape[1]} (shape {tuple(x.shape)})"
        )
    return x


class SameConv1d(nn.Conv1d):
    """Stride-1 ``Conv1d`` with "same" padding: left ``(k-1)//2``, right ``k//2`` zeros.

    Identical to ``nn.Conv1d(..., padding="same")`` (and TensorFlow's "same") but pads the
    extra right zero of an even kernel explicitly, avoiding PyTorch's warning for even kernels.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding=(kernel_size - 1) // 2)
        self.extra_right = 1 - kernel_size % 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.extra_right:
            x = F.pad(x, (0, self.extra_right))
        return super().forward(x)


class LSTMClassifier(nn.Module):
    """Stacked LSTM that classifies from the top layer's hidden state at the last time step.

    ``logits = head(h_T)`` with ``h_T`` the top-layer output at step ``T``.

    Layout (relied upon by saliency helpers): the recurrence is a single
    ``nn.LSTM(batch_first=True)`` stored as ``self.lstm`` (it reads ``(B, T, C)``, so
    ``forward`` transposes the ``(B, C, T)`` input) and the classifier is ``self.head``
    (``nn.Linear(hidden, n_classes)``). Because the LSTM is causal, a helper can run
    ``self.lstm`` on a shared prefix ``x[:, :, :t]``, keep the returned ``(h, c)`` state and
    resume from it on each perturbed suffix (prefix sharing), then apply ``self.head`` to the
    last output; the result equals ``forward`` on the full series.

    Note: the TSD authors' ``teacher_main.py`` chains three 1-layer LSTMs, each initialised
    from the previous layer's final state (:class:`ChainedLSTMClassifier`,
    ``lstm_teacher_chained``); this class is a standard stacked ``nn.LSTM`` (zero initial state
    in every layer), the teacher their student code loads.
    """

    def __init__(self, n_channels: int, n_classes: int, hidden: int = 100, layers: int = 3) -> None:
        super().__init__()
        self.n_channels = int(n_channels)
        self.n_classes = int(n_classes)
        self.hidden = int(hidden)
        self.layers = int(layers)
        self.feature_dim = self.hidden
        self.lstm = nn.LSTM(self.n_channels, self.hidden, num_layers=self.layers, batch_first=True)
        self.head = nn.Linear(self.hidden, self.n_classes)

    def forward(
        self, x: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, Features]:
        """Logits ``(B, n_classes)``; with ``return_features`` also the hidden states."""
        x = _check_input(x, self.n_channels)
        out, _ = self.lstm(x.transpose(1, 2))  # (B, T, H)
        embedding = out[:, -1]
        logits = self.head(embedding)
        if not return_features:
            return logits
        return logits, {"sequence": out.transpose(1, 2), "embedding": embedding}


class ChainedLSTMClassifier(nn.Module):
    """Single-layer LSTMs in a chain, each starting from the final state of the layer below.

    Layer 1 reads the series from a zero state; layer ``l > 1`` reads layer ``l-1``'s outputs
    ``h^{(l-1)}_{1..T}`` starting from that layer's *final* state,
    ``(h^{(l)}_0, c^{(l)}_0) = (h^{(l-1)}_T, c^{(l-1)}_T)``, instead of zeros; ``logits =
    head(h^{(top)}_T)``. This is the teacher of the TSD authors' ``teacher_main.py``
    (``LSTMClassifierTeacherUnrolled``; three layers of 100 units). Same feature contract as
    :class:`LSTMClassifier`: ``sequence`` the top layer's outputs ``(B, H, T)``, ``embedding``
    its last step. The layers are ``self.lstms`` (``nn.ModuleList`` of 1-layer
    ``nn.LSTM(batch_first=True)``); the model has no ``lstm`` attribute, so the prefix-sharing
    shortcuts for :class:`LSTMClassifier` never apply to it. They would be wrong: a window
    changes layer 1's final state, hence every step of layer 2.
    """

    def __init__(self, n_channels: int, n_classes: int, hidden: int = 100, layers: int = 3) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        self.n_channels = int(n_channels)
        self.n_classes = int(n_classes)
        self.hidden = int(hidden)
        self.layers = int(layers)
        self.feature_dim = self.hidden
        sizes = [self.n_channels] + [self.hidden] * (self.layers - 1)
        self.lstms = nn.ModuleList(nn.LSTM(size, self.hidden, batch_first=True) for size in sizes)
        self.head = nn.Linear(self.hidden, self.n_classes)

    def forward(
        self, x: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, Features]:
        """Logits ``(B, n_classes)``; with ``return_features`` also the top layer's hidden states."""
        out = _check_input(x, self.n_channels).transpose(1, 2)  # (B, T, C)
        state = None
        for lstm in self.lstms:
            out, state = lstm(out, state)
        embedding = out[:, -1]
        logits = self.head(embedding)
        if not return_features:
            return logits
        return logits, {"sequence": out.transpose(1, 2), "embedding": embedding}


class _PooledConvNet(nn.Module):
    """Shared forward of the conv nets: ``blocks`` in order, global average pooling, ``head``."""

    blocks: nn.ModuleList
    head: nn.Linear
    n_channels: int

    def forward(
        self, x: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, Features]:
        """Logits ``(B, n_classes)``; with ``return_features`` also the last block's output."""
        h = _check_input(x, self.n_channels)
        for block in self.blocks:
            h = block(h)
        embedding = h.mean(dim=-1)
        logits = self.head(embedding)
        if not return_features:
            return logits
        return logits, {"sequence": h, "embedding": embedding}


class FCN(_PooledConvNet):
    """Fully convolutional network for time-series classification (Wang et al., 2017).

    Blocks ``SameConv1d -> BatchNorm1d -> ReLU``, then global average pooling over time and a
    linear head: ``logits = head(mean_t(blocks(x)))``.

    Layout (relied upon by saliency helpers): the blocks are ``self.blocks``
    (``nn.ModuleList`` of ``nn.Sequential(conv, bn, relu)``) and the head ``self.head``.
    Convolutions (:class:`SameConv1d`) use "same" padding with stride 1, so every block keeps
    the length; an even kernel (8) is padded asymmetrically (left ``(k-1)//2`` = 3, right
    ``k//2`` = 4), exactly as PyTorch's and TensorFlow's ``padding="same"``. A timestep
    ``t`` of the output therefore depends on input steps ``[t - sum((k-1)//2), t + sum(k//2)]``
    (see :attr:`receptive_field`): running the blocks on the crop ``x[..., a - left : b + right]``
    (clipped to the series) reproduces the full-series block outputs at steps ``[a, b)``
    exactly, provided BatchNorm is in eval mode.
    """

    def __init__(
        self,
        n_channels: int,
        n_classes: int,
        channels: Sequence[int] = (128, 256, 128),
        kernels: Sequence[int] = (8, 5, 3),
    ) -> None:
        super().__init__()
        if len(channels) != len(kernels) or not channels:
            raise ValueError(
                f"channels {tuple(channels)} and kernels {tuple(kernels)} must have equal length"
            )
        self.n_channels = int(n_channels)
        self.n_classes = int(n_classes)
        self.channels = tuple(int(c) for c in channels)
        self.kernels = tuple(int(k) for k in kernels)
        self.feature_dim = self.channels[-1]
        blocks = []
        c_in = self.n_channels
        for c_out, k in zip(self.channels, self.kernels, strict=True):
            blocks.append(
                nn.Sequential(
                    SameConv1d(c_in, c_out, k),
                    nn.BatchNorm1d(c_out),
                    nn.ReLU(),
                )
            )
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Linear(self.feature_dim, self.n_classes)

    @property
    def receptive_field(self) -> tuple[int, int]:
        """Input steps to the (left, right) of an output step that influence it."""
        return sum((k - 1) // 2 for k in self.kernels), sum(k // 2 for k in self.kernels)



class _ResidualBlock(nn.Module):
    """Three ``Conv-BN`` layers (ReLU after the first two), a shortcut, then ReLU.

    ``y = relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + shortcut(x))`` with the
    shortcut ``BN(Conv1x1(x))`` when the channel count changes and ``BN(x)`` otherwise, as in
    Ismail Fawaz et al. (2019).
    """

    def __init__(self, c_in: int, c_out: int, kernels: Sequence[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = c_in
        for i, k in enumerate(kernels):
            layers += [SameConv1d(c, c_out, k), nn.BatchNorm1d(c_out)]
            if i < len(kernels) - 1:
                layers.append(nn.ReLU())
            c = c_out
        self.body = nn.Sequential(*layers)
        if c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv1d(c_in, c_out, kernel_size=1), nn.BatchNorm1d(c_out))
        else:
            self.shortcut = nn.Sequential(nn.BatchNorm1d(c_out))
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class ResNet(_PooledConvNet):
    """Residual network for time-series classification (Wang et al., 2017; Ismail Fawaz et al., 2019).

    ``len(channels)`` residual blocks (default 64-128-128 filters), each with convolutions of
    kernel sizes ``kernels`` (default 8-5-3, ``padding="same"``), then global average pooling
    and a linear head. The blocks are ``self.blocks`` (``nn.ModuleList``), the head
    ``self.head``.
    """

    def __init__(
        self,
        n_channels: int,
        n_classes: int,
        channels: Sequence[int] = (64, 128, 128),
        kernels: Sequence[int] = (8, 5, 3),
    ) -> None:
        super().__init__()
        if not channels or not kernels:
            raise ValueError("channels and kernels must be non-empty")
        self.n_channels = int(n_channels)
        self.n_classes = int(n_classes)
        self.channels = tuple(int(c) for c in channels)
        self.kernels = tuple(int(k) for k in kernels)
        self.feature_dim = self.channels[-1]
        blocks = []
        c_in = self.n_channels
        for c_out in self.channels:
            blocks.append(_ResidualBlock(c_in, c_out, self.kernels))
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Linear(self.feature_dim, self.n_classes)



#: Registry: name -> class or factory called as ``factory(n_channels, n_classes, **kw)``.
MODELS: dict[str, Callable[..., nn.Module]] = {
    "lstm_teacher": partial(LSTMClassifier, hidden=100, layers=3),
    "lstm_student": partial(LSTMClassifier, hidden=16, layers=1),
    "lstm_teacher_chained": partial(ChainedLSTMClassifier, hidden=100, layers=3),
    "fcn": partial(FCN, channels=(128, 256, 128), kernels=(8, 5, 3)),
    "fcn_small": partial(FCN, channels=(8, 16, 8), kernels=(5, 5, 3)),
    "resnet": partial(ResNet, channels=(64, 128, 128), kernels=(8, 5, 3)),
}

#: Tiny keyword arguments per model so tests run in milliseconds.
SMOKE_SETTINGS: dict[str, dict] = {
    "lstm_teacher": {"hidden": 4, "layers": 3},
    "lstm_student": {"hidden": 4, "layers": 1},
    "lstm_teacher_chained": {"hidden": 4, "layers": 3},
    "fcn": {"channels": (4, 4, 4)},
    "fcn_small": {"channels": (4, 4, 4)},
    "resnet": {"channels": (4, 8, 8)},
}


def build_model(name: str, n_channels: int, n_classes: int, **kw) -> nn.Module:
    """Build registered model ``name``; ``kw`` override its default hyper-parameters."""
    try:
        factory = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; registered models (MODELS): {sorted(MODELS)}") from None
    return factory(n_channels, n_classes, **kw)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (scalars) in ``model``; only those with ``requires_grad`` if asked."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
