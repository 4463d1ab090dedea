"""Build the course assignments from one source: student and solution notebooks and the book pages.

Each assignment is a list of cells; a ``todo`` cell has a student version (with ``TODO`` and
``raise NotImplementedError``) and a solution version. Running this script writes, for every
assignment ``assignments/NN_name/``:

* ``student.ipynb``  -- the notebook students fill in (TODO cells tagged ``todo``);
* ``solution.ipynb`` -- the reference solution (same cells, solutions tagged ``solution``);
* ``page.md``        -- a MyST page for the book: the task, with every solution in a dropdown.

Notebooks carry ``metadata.tsd_assignment = N``, kernel ``python3``, no outputs, and exactly one
cell tagged ``parameters`` (papermill). Edit the cells here, then run::

    python assignments/build_assignments.py          # write the files
    python assignments/build_assignments.py --check  # fail if the committed files are stale
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent


@dataclass
class Cell:
    kind: str  # "md", "code", "params", "todo", "todo_md"
    source: str
    solution: str = ""


def md(text: str) -> Cell:
    return Cell("md", text.strip("\n"))


def code(text: str) -> Cell:
    return Cell("code", text.strip("\n"))


def params(text: str) -> Cell:
    return Cell("params", text.strip("\n"))


def todo(student: str, solution: str) -> Cell:
    return Cell("todo", student.strip("\n"), solution.strip("\n"))


def todo_md(student: str, solution: str) -> Cell:
    return Cell("todo_md", student.strip("\n"), solution.strip("\n"))


@dataclass
class Assignment:
    number: int
    folder: str
    title: str
    cells: list[Cell] = field(default_factory=list)


# ============================================================================ assignment 1

A1 = Assignment(1, "01_kd_loss", "Hinton KD loss and temperature", [
    md(r"""
# Assignment 1: Hinton KD loss and temperature

This assignment follows Chapter 2 (*Logit distillation*). You will write the temperature
softmax and the knowledge-distillation loss of Hinton, Vinyals and Dean from scratch, check them
against the library, and explore what the temperature $\tau$ does to a teacher's soft targets and
to the distillation signal.

**How this notebook works.** Cells marked `# TODO` are yours: replace
`raise NotImplementedError  # TODO` with your code. After each task a *check* cell tests your
function against `tsd_lib`'s reference implementation on random inputs and edge cases, prints
what passed, what failed and why, and the points earned. Run the notebook top to bottom; do not
edit the check cells or the `parameters` cell (your instructor may give you other values).

| Task | Check | Points |
|---|---|---|
| 1. Temperature softmax | `check_temperature_softmax` | 2 |
| 2. Hinton KD loss | `check_kd_loss` | 8 |
| 3. Entropy of the soft targets | `check_soft_target_entropy` | 2 |
| 4. Exploring the temperature (ungraded) | | |
"""),
    params('''
dataset = "synthetic"  # "synthetic" (planted patterns) or an offline UCR set, e.g. "GunPoint"
seed = 0
epochs = 15
'''),
    code('''
%matplotlib inline
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F  # noqa: F401  (for your code)

from tsd_lib.grading import (
    assignment_dataset,
    check_kd_loss,
    check_soft_target_entropy,
    check_temperature_softmax,
    show_score,
)
from tsd_lib.models import build_model
from tsd_lib.train import TrainConfig, fit, predict_logits
from tsd_lib.utils import set_seed

warnings.filterwarnings("ignore")
torch.set_num_threads(1)
set_seed(seed)
data, _ = assignment_dataset(dataset, seed=seed)
data
'''),
    md(r"""
## Task 1: the temperature softmax

A classifier turns logits $z \in \mathbb{R}^k$ into probabilities with a softmax; a temperature
$\tau > 0$ divides the logits first:

$$
p_c^{\tau} = \frac{\exp(z_c / \tau)}{\sum_{c'} \exp(z_{c'} / \tau)} .
$$

Write `my_softmax_t(logits, tau)` for a batch of logits shaped `(B, k)` (one row per series).
Do not call `torch.softmax` or `F.softmax`: use `exp` and a sum. Beware of overflow: `exp(1000)`
is infinite in floating point, but subtracting each row's maximum first does not change the
result.
"""),
    todo('''
def my_softmax_t(logits: torch.Tensor, tau: float) -> torch.Tensor:
    """Softmax of logits / tau over the last dimension: (B, k) -> (B, k), rows sum to one."""
    raise NotImplementedError  # TODO
''', '''
def my_softmax_t(logits: torch.Tensor, tau: float) -> torch.Tensor:
    """Softmax of logits / tau over the last dimension: (B, k) -> (B, k), rows sum to one."""
    z = logits / tau
    z = z - z.max(dim=-1, keepdim=True).values  # a shift leaves the softmax unchanged, exp cannot overflow
    e = z.exp()
    return e / e.sum(dim=-1, keepdim=True)
'''),
    code("check_temperature_softmax(my_softmax_t);"),
    md(r"""
## Task 2: the KD loss

The student is trained to match the teacher's softened distribution. With
$p_T = \mathrm{softmax}(z_T/\tau)$ and $p_S = \mathrm{softmax}(z_S/\tau)$,

$$
\mathcal{L}_{KD} = \tau^2 \, \frac{1}{B} \sum_{b=1}^{B} \mathrm{KL}\big(p_{T,b} \,\|\, p_{S,b}\big),
\qquad \mathrm{KL}(p \,\|\, q) = \sum_c p_c \left(\log p_c - \log q_c\right).
$$

Write `my_kd_loss(logits_s, logits_t, tau)`: student logits first, teacher logits second, one
number (the batch mean) as the result. Points to get right: the **direction** of the KL (teacher
first), the **reduction** (sum over classes, mean over the batch), the $\tau^2$ **factor**, and
numerical stability (compute log-probabilities with `F.log_softmax`, not `log(softmax(...))`).
Gradients must flow to the student's logits.
"""),
    todo('''
def my_kd_loss(logits_s: torch.Tensor, logits_t: torch.Tensor, tau: float = 4.0) -> torch.Tensor:
    """Hinton KD: tau^2 * mean over the batch of KL(softmax(z_t / tau) || softmax(z_s / tau))."""
    raise NotImplementedError  # TODO
''', '''
def my_kd_loss(logits_s: torch.Tensor, logits_t: torch.Tensor, tau: float = 4.0) -> torch.Tensor:
    """Hinton KD: tau^2 * mean over the batch of KL(softmax(z_t / tau) || softmax(z_s / tau))."""
    log_p_s = F.log_softmax(logits_s / tau, dim=-1)
    log_p_t = F.log_softmax(logits_t / tau, dim=-1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=-1)  # KL(p_T || p_S) of every series
    return tau**2 * kl.mean()
'''),
    code("check_kd_loss(my_kd_loss);"),
    md(r"""
## Task 3: how soft are the soft targets?

The entropy $H(p) = -\sum_c p_c \log p_c$ (in nats) measures how spread out a distribution is:
0 for a one-hot vector, $\log k$ for the uniform distribution over $k$ classes. Write
`my_soft_target_entropy(logits, tau)`, the entropy of $\mathrm{softmax}(z/\tau)$ for every row,
shape `(B,)`. A probability can underflow to exactly 0, and `0 * log 0` is NaN in floating
point: use log-probabilities.
"""),
    todo('''
def my_soft_target_entropy(logits: torch.Tensor, tau: float) -> torch.Tensor:
    """Entropy in nats of softmax(logits / tau), one value per row: (B, k) -> (B,)."""
    raise NotImplementedError  # TODO
''', '''
def my_soft_target_entropy(logits: torch.Tensor, tau: float) -> torch.Tensor:
    """Entropy in nats of softmax(logits / tau), one value per row: (B, k) -> (B,)."""
    log_p = F.log_softmax(logits / tau, dim=-1)
    return -(log_p.exp() * log_p).sum(dim=-1)
'''),
    code("check_soft_target_entropy(my_soft_target_entropy);"),
    md(r"""
## Task 4: exploring the temperature (ungraded)

Now use your functions on a real teacher. We train a fully convolutional teacher (FCN) for a few
epochs, then look at its soft targets on the test series.
"""),
    code('''
set_seed(seed)
teacher = build_model("fcn", data.n_channels, data.n_classes, channels=(16, 32, 16))
fit(teacher, data, config=TrainConfig(epochs=epochs, patience=epochs, seed=seed, device="cpu", progress=False))
z_teacher = torch.from_numpy(predict_logits(teacher, data.X_test, device="cpu"))
print(f"teacher test accuracy: {(z_teacher.argmax(1).numpy() == data.y_test).mean():.3f}")

taus = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
i = 0  # one test series
fig, axes = plt.subplots(1, 2, figsize=(11, 3.2), layout="constrained")
width = 0.8 / len(taus)
for j, tau in enumerate(taus):
    probs = my_softmax_t(z_teacher[i : i + 1], tau)[0].numpy()
    axes[0].bar(np.arange(data.n_classes) + (j - len(taus) / 2 + 0.5) * width, probs, width=width,
                color=plt.cm.viridis(j / (len(taus) - 1)), label=f"tau = {tau:g}")
axes[0].set(xlabel="class", ylabel="teacher probability", title=f"soft targets of test series {i}")
axes[0].legend(fontsize=7)
entropy = [my_soft_target_entropy(z_teacher, tau).mean().item() for tau in taus]
axes[1].semilogx(taus, entropy, marker="o")
axes[1].axhline(np.log(data.n_classes), color="0.5", ls=":", label="log k (uniform)")
axes[1].set(xlabel="tau", ylabel="mean entropy (nats)", title="teacher soft targets on the test split")
axes[1].legend()
plt.show()
'''),
    md(r"""
Why the $\tau^2$ factor? The gradient of the KL with respect to the student's logits is
$(p_S - p_T)/\tau$, and the difference of two softened distributions itself shrinks like
$1/\tau$. The table compares the gradient norm of the plain KL and of your loss (which has the
factor) for an untrained student.
"""),
    code('''
set_seed(seed)
untrained = build_model("fcn_small", data.n_channels, data.n_classes)
z_s = torch.from_numpy(predict_logits(untrained, data.X_test, device="cpu"))
rows = []
for tau in taus:
    z = z_s.clone().requires_grad_(True)
    (g_kd,) = torch.autograd.grad(my_kd_loss(z, z_teacher, tau), z)
    rows.append({"tau": tau, "|grad KL|": g_kd.norm().item() / tau**2, "|grad tau^2 KL|": g_kd.norm().item()})
pd.DataFrame(rows).set_index("tau")
'''),
    md(r"""
Finally, train two small students with cross-entropy plus **your** KD loss, one at $\tau = 1$
and one at $\tau = 8$, and compare their accuracy and their agreement with the teacher. `fit`
calls `objective(model, x, y)` for every batch and expects `(loss, {name: float})` back.
"""),
    todo('''
def kd_objective(tau: float):
    """An objective for `fit`: cross-entropy on the labels + my_kd_loss towards the teacher."""

    def objective(model, x, y):
        # TODO: student logits z_s = model(x); teacher logits under torch.no_grad();
        # loss = F.cross_entropy(z_s, y) + my_kd_loss(z_s, z_t, tau); return loss, {"ce": ..., "kd": ...}
        raise NotImplementedError  # TODO

    return objective
''', '''
def kd_objective(tau: float):
    """An objective for `fit`: cross-entropy on the labels + my_kd_loss towards the teacher."""

    def objective(model, x, y):
        z_s = model(x)
        with torch.no_grad():
            z_t = teacher(x)
        ce = F.cross_entropy(z_s, y)
        kd = my_kd_loss(z_s, z_t, tau)
        return ce + kd, {"ce": ce.item(), "kd": kd.item()}

    return objective
'''),
    code('''
teacher_pred = z_teacher.argmax(1).numpy()
rows = []
for tau in (1.0, 8.0):
    set_seed(seed)
    student = build_model("fcn_small", data.n_channels, data.n_classes)
    config = TrainConfig(epochs=epochs, patience=epochs, seed=seed, device="cpu", progress=False)
    fit(student, data, kd_objective(tau), config)
    pred = predict_logits(student, data.X_test, device="cpu").argmax(1)
    rows.append({"tau": tau, "accuracy": (pred == data.y_test).mean(),
                 "agreement with teacher": (pred == teacher_pred).mean()})
pd.DataFrame(rows).set_index("tau")
'''),
    todo_md(r"""
**Questions** (write your answers here; ungraded).

1. What happens to the soft targets when $\tau \to 0$ and when $\tau \to \infty$?
2. Without the $\tau^2$ factor, how would the gradient norm change from $\tau = 1$ to $\tau = 32$?
3. Did the student at $\tau = 8$ agree more with the teacher than the one at $\tau = 1$? One seed
   is not enough to be sure: what would you run to find out?
""", r"""
**Questions** (model answers).

1. As $\tau \to 0$ the softmax tends to a one-hot vector on the largest logit (entropy 0); as
   $\tau \to \infty$ it tends to the uniform distribution (entropy $\log k$). In between, the
   relative sizes of the small probabilities (the "dark knowledge") become visible.
2. The plain KL's gradient shrinks roughly like $1/\tau^2$ (about a thousandfold from $\tau = 1$
   to $\tau = 32$); with the factor it stays of the same order, so the distillation term keeps a
   weight comparable to the cross-entropy at any temperature.
3. It depends on the data and the seed; differences of a few test series are within seed noise.
   To find out, repeat both trainings over several seeds (and teacher seeds) and compare the mean
   agreement with its standard deviation, choosing $\tau$ on validation data, not test data.
"""),
    code("show_score(1);"),
])


# ============================================================================ assignment 2

A2 = Assignment(2, "02_window_saliency", "Window-perturbation saliency", [
    md(r"""
# Assignment 2: Window-perturbation saliency

This assignment follows Chapter 4 (*Temporal saliency*). You will build TSD's saliency from
scratch: replace a window of a series with the same window of another series, measure how far
the model's predictive distribution moves, and turn the window scores into a map over time.
Then you validate the map where the right answer is known: on the planted-pattern set, where
the class is decided only inside a short window, a good map must point at that window.

Cells marked `# TODO` are yours; the check cells print feedback and points. Do not edit the check
cells or the `parameters` cell.

| Task | Check | Points |
|---|---|---|
| 1. Perturbing windows | `check_apply_windows` | 3 |
| 2. The saliency map | `check_window_saliency` | 4 |
| 3. A detector with a known answer | `check_planted_saliency` | 3 |
| 4. Validation on the planted set | `check_synthetic_validation` | 2 |
"""),
    params('''
dataset = "synthetic"  # the planted-pattern set: "synthetic" (2 classes) or "synthetic3" (3 classes)
seed = 0
epochs = 15
window = 8  # window length L of the saliency
'''),
    code('''
%matplotlib inline
import warnings

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F  # noqa: F401  (for your code)

from tsd_lib.grading import (
    assignment_dataset,
    check_apply_windows,
    check_planted_saliency,
    check_synthetic_validation,
    check_window_saliency,
    show_score,
)
from tsd_lib.metrics import saliency_precision  # noqa: F401  (for your code)
from tsd_lib.models import build_model
from tsd_lib.train import TrainConfig, fit, predict_logits
from tsd_lib.utils import set_seed

warnings.filterwarnings("ignore")
torch.set_num_threads(1)
set_seed(seed)
data, truth = assignment_dataset(dataset, seed=seed)
assert truth is not None, "this assignment needs the planted-pattern set: dataset = 'synthetic'"
data
'''),
    md(r"""
## Task 1: perturbing windows

Take a batch `X` of `B` series shaped `(B, C, T)` and, for each series, `K` window starts
`starts[b, k]`. The perturbed copy of series `b` for window `k` equals `X[b]` except on the steps
$[t, t + L)$, $t$ = `starts[b, k]`, where it takes the values `values[b, k]` (shape `(C, L)`).
Return all copies as one tensor shaped `(B * K, C, T)`, **series-major**: row `b * K + k` holds
series `b` with its `k`-th window replaced. Do not modify `X` in place. Loops are fine.
"""),
    todo('''
def my_apply_windows(X: torch.Tensor, starts: torch.Tensor, values: torch.Tensor, window: int) -> torch.Tensor:
    """Copies of X with window k replaced: X (B, C, T), starts (B, K), values (B, K, C, L) -> (B*K, C, T)."""
    raise NotImplementedError  # TODO
''', '''
def my_apply_windows(X: torch.Tensor, starts: torch.Tensor, values: torch.Tensor, window: int) -> torch.Tensor:
    """Copies of X with window k replaced: X (B, C, T), starts (B, K), values (B, K, C, L) -> (B*K, C, T)."""
    B, C, T = X.shape
    K = starts.shape[1]
    out = X[:, None].repeat(1, K, 1, 1)  # (B, K, C, T), a copy
    for b in range(B):
        for k in range(K):
            t = int(starts[b, k])
            out[b, k, :, t : t + window] = values[b, k]
    return out.reshape(B * K, C, T)
'''),
    code("check_apply_windows(my_apply_windows);"),
    md(r"""
## Task 2: the saliency map

For a model with logits $z(\cdot)$, a series $x$ and a **donor** series $x'$, perturb every
window start $t = 0, \dots, T - L$: the copy $\tilde x^{(t)}$ takes the donor's values on
$[t, t+L)$. With $p = \mathrm{softmax}(z(x)/\tau)$ and $q_t = \mathrm{softmax}(z(\tilde x^{(t)})/\tau)$,
the score of window $t$ is TSD's distribution shift

$$
s(x, t) = \tau^2 \, \mathrm{KL}\left(p \,\|\, q_t\right),
$$

and the map gives every time step $j$ the **mean** score of the windows that cover it,
$S_j = \operatorname{mean}\{ s(x, t) : t \le j < t + L \}$.

Write `my_saliency_map(model, X, X_donor, window, tau)`: `X` and `X_donor` are `(n, C, T)`
(donor `i` serves series `i` for every window), the result is an array `(n, T)`. Use your
`my_apply_windows`, run the model in eval mode under `torch.no_grad()`, and compute the KL from
log-probabilities (float64 helps: the KL of two nearly equal distributions is a small
difference of larger numbers).
"""),
    todo('''
def my_saliency_map(model, X, X_donor, window: int, tau: float = 8.0) -> np.ndarray:
    """Occlusion map (n, T): mean tau^2 KL(p || q_t) of the windows covering each step."""
    raise NotImplementedError  # TODO
''', '''
def my_saliency_map(model, X, X_donor, window: int, tau: float = 8.0) -> np.ndarray:
    """Occlusion map (n, T): mean tau^2 KL(p || q_t) of the windows covering each step."""
    X = torch.as_tensor(X)
    X_donor = torch.as_tensor(X_donor, dtype=X.dtype)
    n, C, T = X.shape
    K = T - window + 1  # every start
    starts = torch.arange(K).repeat(n, 1)  # (n, K)
    values = torch.stack([X_donor[:, :, t : t + window] for t in range(K)], dim=1)  # (n, K, C, L)
    copies = my_apply_windows(X, starts, values, window)  # (n*K, C, T)
    model.eval()
    with torch.no_grad():
        log_p = F.log_softmax(model(X).double() / tau, dim=-1)[:, None, :]  # (n, 1, k)
        log_q = F.log_softmax(model(copies).double() / tau, dim=-1).reshape(n, K, -1)  # (n, K, k)
    scores = tau**2 * (log_p.exp() * (log_p - log_q)).sum(dim=-1)  # (n, K)
    total = torch.zeros(n, T, dtype=torch.float64)
    count = torch.zeros(T, dtype=torch.float64)
    for t in range(K):
        total[:, t : t + window] += scores[:, t : t + 1]
        count[t : t + window] += 1
    return (total / count).numpy()
'''),
    code("check_window_saliency(my_saliency_map);"),
    md(r"""
## Task 3: a detector with a known answer

Before trusting a map on a trained network, test it on a model whose reasoning you know. The
check builds a *matched filter* for the planted patterns (its logit for class $c$ is the best
match of pattern $c$ anywhere in the series) and gives your function pattern-free noise as
donors. Replacing the planted window removes the evidence; replacing any other window changes
almost nothing. So your map must peak inside the planted window, and its **saliency precision**
(the share of the $L$ most salient steps that lie in the planted window) must be well above the
chance level $L/T$. Nothing to write: if Task 2 is right, this passes.
"""),
    code("check_planted_saliency(my_saliency_map);"),
    md(r"""
## Task 4: validation on the planted set

Now a trained model. We train a small FCN on the planted-pattern set (each series is noise plus
a class pattern inside a window at a random position; `truth` marks that window for every test
series).
"""),
    code('''
set_seed(seed)
model = build_model("fcn_small", data.n_channels, data.n_classes)
fit(model, data, config=TrainConfig(epochs=epochs, patience=epochs, seed=seed, device="cpu", progress=False))
accuracy = (predict_logits(model, data.X_test, device="cpu").argmax(1) == data.y_test).mean()
print(f"test accuracy: {accuracy:.3f}")
'''),
    md(r"""
Compute the saliency maps of all test series with your `my_saliency_map`, using as donor for
each test series a **training series of another class** (TSD's choice: the window then looks
like the other class), and their saliency precision against `truth` with
`tsd_lib.metrics.saliency_precision`. Use `np.random.default_rng(seed)` for the donor draws.
"""),
    todo('''
maps = None  # TODO: saliency maps of data.X_test, shape (n_test, T), other-class training donors
precision = None  # TODO: saliency_precision(maps, truth)
chance = truth.sum(1).mean() / data.length
''', '''
rng = np.random.default_rng(seed)
donors = np.array([rng.choice(np.flatnonzero(data.y_train != c)) for c in data.y_test])
maps = my_saliency_map(model, data.X_test, data.X_train[donors], window, tau=8.0)
precision = saliency_precision(maps, truth)
chance = truth.sum(1).mean() / data.length
'''),
    code("check_synthetic_validation(maps, truth, precision);"),
    code('''
print(f"saliency precision {precision:.3f} (chance {chance:.3f})")
fig, axes = plt.subplots(3, 1, figsize=(9, 6), sharex=True, layout="constrained")
for ax, i in zip(axes, range(3), strict=True):
    on = np.flatnonzero(truth[i])
    ax.plot(data.X_test[i, 0], color="0.3", lw=1, label="series")
    ax.axvspan(on[0], on[-1] + 1, color="tab:green", alpha=0.2, label="planted window")
    ax2 = ax.twinx()
    ax2.plot(maps[i], color="tab:red", label="saliency")
    ax.set_title(f"test series {i} (class {data.y_test[i]})", fontsize=9, loc="left")
axes[0].legend(loc="upper left", fontsize=7)
axes[-1].set_xlabel("time step")
plt.show()
'''),
    todo_md(r"""
**Questions** (write your answers here; ungraded).

1. Why are other-class donors a sharper test than zeros or noise for a *trained* model?
2. Your map of the matched filter used noise donors. What could go wrong with other-class
   donors there? (Hint: where is the donor's own pattern?)
3. How would the precision change with `window = 4` or `window = 16`? Try it.
""", r"""
**Questions** (model answers).

1. Zeros or noise push the series off the data the model was trained on, so the map may measure
   the model's reaction to artefacts. An other-class window is plausible data that carries the
   *other* class's evidence: it asks whether this stretch decides the class.
2. The donor's own planted pattern sits at its own random position. A window that covers it
   copies (part of) the other class's pattern into the series, the matched filter for that class
   fires and the prediction moves although the window held no evidence of the true class: a
   spurious peak away from the planted window.
3. A window much shorter than the pattern only removes part of it, so scores are smaller and the
   peak can sit at the pattern's edge; a window much longer than the pattern blurs the map over
   $L$ steps, so precision (measured on the pattern's $L$ steps) drops. A window close to the
   pattern length works best.
"""),
    code("show_score(2);"),
])


# ============================================================================ assignment 3

A3 = Assignment(3, "03_tsd_loss", "The TSD loss, a student and one ablation", [
    md(r"""
# Assignment 3: The TSD loss, a student and one ablation

This assignment follows Chapters 5 (*Temporal Saliency Distillation*) and 8 (*Ablations*). You
will write TSD's normalised distribution shift and the TSD loss, train a student with it, and
run one ablation of your choice.

Cells marked `# TODO` are yours; the check cells print feedback and points. Do not edit the check
cells or the `parameters` cell.

| Task | Check | Points |
|---|---|---|
| 1. The normalised distribution shift | `check_distribution_shift` | 4 |
| 2. The TSD loss | `check_tsd_loss` | 6 |
| 3. Training a student | `check_trained_student` | 3 |
| 4. One ablation | `check_ablation` | 2 |
"""),
    params('''
dataset = "synthetic"  # "synthetic" (planted patterns) or an offline UCR set, e.g. "GunPoint"
seed = 0
epochs = 15
n_windows = 10  # K perturbed copies per series and step (the paper: 50)
window = 8  # window length L (the paper: 10 on series of length 100)
tau = 8.0
w_tsd = 1.0  # weight of the TSD term
'''),
    code('''
%matplotlib inline
import warnings

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from tsd_lib.grading import (
    assignment_dataset,
    check_ablation,
    check_distribution_shift,
    check_trained_student,
    check_tsd_loss,
    show_score,
)
from tsd_lib.losses import kd_loss
from tsd_lib.metrics import saliency_similarity
from tsd_lib.models import build_model
from tsd_lib.saliency import perturb  # noqa: F401  (for your code)
from tsd_lib.saliency.maps import saliency_map
from tsd_lib.train import TrainConfig, fit, predict_logits
from tsd_lib.utils import set_seed

warnings.filterwarnings("ignore")
torch.set_num_threads(1)
set_seed(seed)
data, _ = assignment_dataset(dataset, seed=seed)
data
'''),
    md(r"""
## Task 1: the normalised distribution shift

For a batch of $B$ series with clean logits $z$ (shape `(B, k)`) and the logits of $K$ perturbed
copies per series (shape `(B * K, k)`, series-major), let $p = \mathrm{softmax}(z/\tau)$ and
$q_t = \mathrm{softmax}(z(\tilde x^{(t)})/\tau)$. TSD keeps one term per class,

$$
s_c(x, t) = \tau^2 \, p_c \left(\log p_c - \log q_{t,c}\right),
$$

a tensor `(B, K, k)` (with `reduce="sum"`: summed over classes, `(B, K)`, i.e.
$\tau^2 \mathrm{KL}(p \| q_t)$), and divides the **whole** tensor by the mean of its strictly
positive entries plus $10^{-8}$. When no entry is positive (nothing moved), return the tensor
unchanged: the mean of an empty set is NaN. Gradients must flow to both inputs.
"""),
    todo('''
def my_distribution_shift(logits, logits_perturbed, tau: float, reduce: str = "none") -> torch.Tensor:
    """Normalised per-class shift (B, K, k), or (B, K) with reduce="sum"."""
    raise NotImplementedError  # TODO
''', '''
def my_distribution_shift(logits, logits_perturbed, tau: float, reduce: str = "none") -> torch.Tensor:
    """Normalised per-class shift (B, K, k), or (B, K) with reduce="sum"."""
    B, k = logits.shape
    log_p = F.log_softmax(logits / tau, dim=-1)[:, None, :]  # (B, 1, k)
    log_q = F.log_softmax(logits_perturbed.reshape(B, -1, k) / tau, dim=-1)  # (B, K, k)
    s = tau**2 * log_p.exp() * (log_p - log_q)
    if reduce == "sum":
        s = s.sum(dim=-1)
    positive = s > 0
    if not positive.any():
        return s
    return s / (s[positive].mean() + 1e-8)
'''),
    code("check_distribution_shift(my_distribution_shift);"),
    md(r"""
## Task 2: the TSD loss

TSD asks the student to react to each perturbation the way the teacher does. For a batch
`(X, y)`:

1. draw the perturbed copies **once**:
   `copies, starts = perturb(X, y, X_pool, y_pool, n_windows=n_windows, window=window, generator=generator)`
   (window $[t, t+L)$ replaced by the same window of a training series of another class);
2. the teacher's shift $\hat s_T$ on the clean batch and the copies, under `torch.no_grad()`
   (put the teacher in eval mode);
3. the student's shift $\hat s_S$ on the **same** copies, with gradients through both of its
   forward passes;
4. $\mathcal{L}_{TSD} = \mathrm{SmoothL1}(\hat s_S, \hat s_T)$, mean over all entries
   (`F.smooth_l1_loss`, student first).

Use your `my_distribution_shift` with `reduce="none"`.
"""),
    todo('''
def my_tsd_loss(student, teacher, X, y, X_pool, y_pool, *, n_windows=50, window=10, tau=8.0, generator=None):
    """TSD loss: SmoothL1 between the student's and the teacher's normalised shifts on the same copies."""
    raise NotImplementedError  # TODO
''', '''
def my_tsd_loss(student, teacher, X, y, X_pool, y_pool, *, n_windows=50, window=10, tau=8.0, generator=None):
    """TSD loss: SmoothL1 between the student's and the teacher's normalised shifts on the same copies."""
    copies, _ = perturb(X, y, X_pool, y_pool, n_windows=n_windows, window=window, generator=generator)
    teacher.eval()
    with torch.no_grad():
        s_t = my_distribution_shift(teacher(X), teacher(copies), tau)
    s_s = my_distribution_shift(student(X), student(copies), tau)
    return F.smooth_l1_loss(s_s, s_t)
'''),
    code("check_tsd_loss(my_tsd_loss);"),
    md(r"""
## Task 3: training a student

A fully convolutional teacher (FCN, 16-32-16 filters) and a small FCN student (8-16-8). The
student's objective is the paper's
$\mathcal{L} = \mathrm{CE} + \tau^2 \mathrm{KL}(p_T \| p_S) + w_{tsd}\, \mathcal{L}_{TSD}$, with
**your** TSD loss and fresh perturbations at every step. `fit` records every term the objective
returns (`train_ce`, `train_kd`, `train_tsd` in the history).
"""),
    code('''
set_seed(seed)
teacher = build_model("fcn", data.n_channels, data.n_classes, channels=(16, 32, 16))
fit(teacher, data, config=TrainConfig(epochs=epochs, patience=epochs, seed=seed, device="cpu", progress=False))
teacher.eval()
z_teacher = predict_logits(teacher, data.X_test, device="cpu")
print(f"teacher test accuracy: {(z_teacher.argmax(1) == data.y_test).mean():.3f}")

X_pool, y_pool = torch.as_tensor(data.X_train), torch.as_tensor(data.y_train)


def tsd_objective(weight: float, *, n_windows: int = n_windows, window: int = window, tau: float = tau):
    """CE + KD + weight * TSD (your loss), with its own seeded generator for the perturbations."""
    generator = torch.Generator().manual_seed(seed)

    def objective(model, x, y):
        z_s = model(x)
        with torch.no_grad():
            z_t = teacher(x)
        ce = F.cross_entropy(z_s, y)
        kd = kd_loss(z_s, z_t, tau=tau)
        loss, terms = ce + kd, {"ce": ce.item(), "kd": kd.item()}
        if weight > 0:
            tsd = my_tsd_loss(model, teacher, x, y, X_pool, y_pool, n_windows=n_windows, window=window, tau=tau,
                              generator=generator)
            loss = loss + weight * tsd
            terms["tsd"] = tsd.item()
        return loss, terms

    return objective


def train_student(weight: float = w_tsd, **settings):
    set_seed(seed)
    model = build_model("fcn_small", data.n_channels, data.n_classes)
    config = TrainConfig(epochs=epochs, patience=epochs, seed=seed, device="cpu", progress=False)
    history = fit(model, data, tsd_objective(weight, **settings), config)
    return model, history


student, history = train_student()
pd.DataFrame(history.epochs)[["epoch", "train_ce", "train_kd", "train_tsd", "val_loss", "val_accuracy"]].tail(3)
'''),
    code("check_trained_student(student, data, history);"),
    md(r"""
To judge a student beyond accuracy we use three numbers on the test split: accuracy, agreement
with the teacher's predictions, and the Spearman correlation between the student's and the
teacher's saliency maps (the library's `saliency_map`, same donors for both).
"""),
    code('''
X_eval, y_eval = data.X_test[:30], data.y_test[:30]


def maps_of(model, window: int = window, tau: float = tau) -> np.ndarray:
    return saliency_map(model, X_eval, y_eval, X_pool=data.X_train, y_pool=data.y_train, window=window, tau=tau,
                        generator=0, device="cpu")


teacher_maps = maps_of(teacher)


def evaluate(model) -> dict[str, float]:
    """Test accuracy, agreement with the teacher, saliency Spearman with the teacher."""
    pred = predict_logits(model, data.X_test, device="cpu").argmax(1)
    return {
        "accuracy": float((pred == data.y_test).mean()),
        "agreement": float((pred == z_teacher.argmax(1)).mean()),
        "saliency_spearman": saliency_similarity(teacher_maps, maps_of(model))["spearman"],
    }


main_result = evaluate(student)
main_result
'''),
    md(r"""
## Task 4: one ablation

Pick **one** knob and change only that one: the TSD weight (e.g. `train_student(0.0)`: KD
without TSD), the window length (`train_student(window=4)`), the number of windows
(`train_student(n_windows=3)`) or the temperature (`train_student(tau=2.0)`). Train the variant,
evaluate it with `evaluate`, and put both settings in a table `ablation` with one row per setting
and at least the columns `setting`, `value` and `accuracy` (add the other metrics). Then write a
short `conclusion`: what changed, and is the difference larger than what a different seed alone
could cause?
"""),
    todo('''
ablation = pd.DataFrame(columns=["setting", "value", "accuracy"])  # TODO: one row per setting
conclusion = "TODO"  # TODO: a few sentences
''', '''
variant, _ = train_student(0.0)  # the ablation: no TSD term (KD only)
ablation = pd.DataFrame([
    {"setting": "w_tsd", "value": w_tsd, **main_result},
    {"setting": "w_tsd", "value": 0.0, **evaluate(variant)},
])
with_tsd, without = ablation.iloc[0], ablation.iloc[1]
conclusion = (
    f"Removing the TSD term changed test accuracy from {with_tsd.accuracy:.3f} to {without.accuracy:.3f} and the "
    f"saliency Spearman with the teacher from {with_tsd.saliency_spearman:.3f} to {without.saliency_spearman:.3f}. "
    "This is one seed and one short training run, so differences of a few test series are within seed noise; "
    "repeating over several seeds and comparing with the seed-to-seed spread would be needed to claim an effect."
)
print(conclusion)
ablation
'''),
    code("check_ablation(ablation, conclusion);"),
    code("show_score(3);"),
])

ASSIGNMENT_LIST = [A1, A2, A3]


# ============================================================================ writers


def _notebook(a: Assignment, version: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
        "tsd_assignment": a.number,
        "tsd_version": version,
    }
    cells = []
    for i, c in enumerate(a.cells):
        cid = f"a{a.number}-{i:02d}"
        solution = version == "solution"
        if c.kind == "md":
            cells.append(nbformat.v4.new_markdown_cell(c.source, id=cid))
        elif c.kind == "todo_md":
            cell = nbformat.v4.new_markdown_cell(c.solution if solution else c.source, id=cid)
            cell.metadata["tags"] = ["solution" if solution else "todo"]
            cells.append(cell)
        else:
            text = c.solution if (c.kind == "todo" and solution) else c.source
            cell = nbformat.v4.new_code_cell(text, id=cid)
            if c.kind == "params":
                cell.metadata["tags"] = ["parameters"]
            elif c.kind == "todo":
                cell.metadata["tags"] = ["solution" if solution else "todo"]
            cells.append(cell)
    nb.cells = cells
    return nb


def _page_code(src: str) -> str:
    """Code as shown on the page: no IPython magics (they do not lex as Python), no lint pragmas."""
    lines = [line for line in src.splitlines() if not line.startswith("%")]
    return "\n".join(lines).replace("# noqa: F401  (for your code)", "# for your code").strip("\n")


def _page(a: Assignment) -> str:
    """A MyST page: the task, starter code, and every solution in a dropdown (nothing executed)."""
    label = f"assignment-{a.folder.replace('_', '-')}"
    out = [f"({label})="]
    for c in a.cells:
        if c.kind == "md":
            out.append(c.source)
        elif c.kind == "params":
            out.append("Parameters of the notebook (an instructor can set others with papermill, e.g. "
                       "`-p seed 3`):\n\n```python\n" + _page_code(c.source) + "\n```")
        elif c.kind == "code":
            out.append("```python\n" + _page_code(c.source) + "\n```")
        elif c.kind == "todo":
            out.append("```python\n" + _page_code(c.source) + "\n```")
            out.append(":::{admonition} Solution\n:class: dropdown\n\n```python\n" + _page_code(c.solution)
                       + "\n```\n:::")
        elif c.kind == "todo_md":
            out.append(c.source)
            out.append(":::{admonition} Model answers\n:class: dropdown\n\n" + c.solution + "\n:::")
    out.append(
        "## Getting and grading the notebook\n\n"
        f"The notebooks are `assignments/{a.folder}/student.ipynb` (with the TODO cells) and "
        f"`assignments/{a.folder}/solution.ipynb`. Every check cell prints its feedback and points while "
        "you work. An instructor grades a submission, or a folder of them, with\n\n"
        f"```bash\ntsd grade submissions/ --assignment {a.number} --timeout 300 --memory-mb 4096 --out grades/\n```\n\n"
        "which runs each notebook in a separate, time- and memory-limited process (see `assignments/README.md`; "
        "grading runs student code, so use a sandbox for untrusted submissions)."
    )
    return "\n\n".join(out) + "\n"


def outputs() -> dict[Path, str]:
    """Every generated file and its content."""
    files: dict[Path, str] = {}
    for a in ASSIGNMENT_LIST:
        folder = ROOT / a.folder
        for version in ("student", "solution"):
            files[folder / f"{version}.ipynb"] = nbformat.writes(_notebook(a, version)) + "\n"
        files[folder / "page.md"] = _page(a)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a generated file is missing or stale")
    args = parser.parse_args(argv)
    stale = []
    for path, text in outputs().items():
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT.parent)}")
    if stale:
        print("stale (run python assignments/build_assignments.py):", *map(str, stale), sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
