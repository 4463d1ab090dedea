"""The book's teacher and student architectures: short labels, and a table of their sizes and
output shapes."""

from __future__ import annotations

import pandas as pd
import torch

from tsd_lib.data import Dataset
from tsd_lib.experiment import RunConfig
from tsd_lib.models import build_model, count_parameters

#: Short labels of the architectures, as the chapters write them.
ARCH = {"lstm_teacher": "LSTM 3×100", "lstm_teacher_chained": "chained LSTM 3×100", "lstm_student": "LSTM 1×16",
        "fcn": "FCN 128-256-128", "fcn_small": "small FCN 8-16-8", "resnet": "ResNet 64-128-128"}

#: The models chapter 1 compares and their role in the book.
ROLES = {"lstm_teacher": "paper's teacher", "lstm_student": "paper's student",
         "fcn": "alternative teacher", "fcn_small": "alternative student"}


def architecture_table(data: Dataset, config: RunConfig, profile_name: str, n: int = 4) -> pd.DataFrame:
    """Per model of :data:`ROLES` (index: its :data:`ARCH` label): its name in code, its role in the paper,
    its role in ``profile_name`` (``config``'s teacher or student, else empty), its parameter count and the
    shapes of its logits and features on ``n`` test series (fresh, untrained weights)."""
    x = torch.as_tensor(data.X_test[:n])
    rows = []
    for name, role in ROLES.items():
        model = build_model(name, data.n_channels, data.n_classes).eval()
        with torch.no_grad():
            logits, feats = model(x, return_features=True)
        rows.append({"model": ARCH[name], "name in code": name, "role in the book": role,
                     f"role in profile {profile_name}": {config.teacher: "teacher",
                                                         config.student: "student"}.get(name, ""),
                     "parameters": count_parameters(model), "logits (series, classes)": tuple(logits.shape),
                     "sequence features (series, D, T')": tuple(feats["sequence"].shape),
                     "embedding (series, D)": tuple(feats["embedding"].shape)})
    return pd.DataFrame(rows).set_index("model")


def pair_sizes(data: Dataset, config: RunConfig) -> tuple[int, int]:
    """Parameter counts of ``config``'s teacher and student on ``data``."""
    return tuple(count_parameters(build_model(m, data.n_channels, data.n_classes))  # type: ignore[return-value]
                 for m in (config.teacher, config.student))
