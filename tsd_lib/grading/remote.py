"""The channel between the grader and a notebook it executes: student code runs there, checks here.

While ``tsd grade`` executes a notebook, a check cell (``check_kd_loss(my_kd_loss)``) does not
run the check in the notebook's process: it connects to the grader's Unix socket
(``$TSD_GRADE_SOCKET``) and names the check and its arguments (functions and models as handles,
data as values). The grader runs the check in its own process (:func:`serve`). Every call of a
student function there becomes a request with grader-chosen inputs (pickled: the notebook trusts
the grader), answered with the function's outputs as JSON holding numbers only (the grader never
unpickles what the notebook sends); a backward pass through a student's output asks the notebook
for the gradients of the inputs. The grader keeps the check's result; the notebook only prints
it. A notebook can give wrong answers, but cannot write a score.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import pickle
import secrets
import socket
import struct
import sys
import time
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional  # noqa: F401

# What the checks compare against, imported before any submission runs: a submission can rewrite
# files on disk, not the memory of this process.
import tsd_lib.data  # noqa: F401
import tsd_lib.losses.logit  # noqa: F401
import tsd_lib.losses.tsd  # noqa: F401
import tsd_lib.metrics  # noqa: F401
import tsd_lib.saliency.maps  # noqa: F401
import tsd_lib.saliency.perturb  # noqa: F401
import tsd_lib.train  # noqa: F401
from tsd_lib.grading import feedback
from tsd_lib.grading.feedback import CHECKS, POINTS, SOCKET_ENV, CheckResult, StudentError, _short, _Stop

#: The largest message the grader reads from a notebook (bytes).
MAX_MESSAGE = 64 * 1024 * 1024

_HEADER = struct.Struct(">Q")
_DTYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "float16", "float32", "float64"}


# ============================================================================ framing


def _send(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(_HEADER.pack(len(payload)) + payload)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            raise ConnectionError("the other side closed the connection")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _recv(sock: socket.socket, limit: int | None = None) -> bytes:
    (n,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size))
    if limit is not None and n > limit:
        raise ConnectionError(f"a message of {n} bytes, more than the limit of {limit}")
    return _recv_exact(sock, n)


# ============================================================================ values as JSON


def encode(obj: Any, handles: list[Any] | None = None, depth: int = 0) -> Any:
    """``obj`` as JSON-ready data: numbers, strings, arrays (base64), lists, dicts, frames, objects.

    With ``handles``, callables (functions, models) become handles appended to that list.
    Anything else becomes an opaque marker naming its type.
    """
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if depth > 8:
        return {"t": "x", "n": type(obj).__name__}
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().resolve_conj().resolve_neg()
        if t.dtype not in (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
                           torch.float16, torch.float32, torch.float64):
            t = t.double() if t.is_floating_point() else t.long()
        return {**_array(t.numpy()), "torch": True}
    if isinstance(obj, np.generic):
        return obj.item() if obj.dtype.kind in "biuf" else {"t": "x", "n": type(obj).__name__}
    if isinstance(obj, np.ndarray):
        return _array(obj) if obj.dtype.kind in "biuf" else {"t": "l", "v": encode(obj.tolist(), None, depth + 1)["v"]}
    if handles is not None and callable(obj):
        handles.append(obj)
        return {"t": "c", "h": len(handles) - 1, "n": type(obj).__name__}
    if isinstance(obj, (list, tuple)):
        return {"t": "l" if isinstance(obj, list) else "u", "v": [encode(v, handles, depth + 1) for v in obj]}
    if isinstance(obj, Mapping):
        return {"t": "d", "k": [encode(k, None, depth + 1) for k in obj],
                "v": [encode(v, handles, depth + 1) for v in obj.values()]}
    if type(obj).__name__ == "DataFrame" and hasattr(obj, "to_dict"):
        split = obj.to_dict(orient="split")
        return {"t": "f", "c": encode(list(split["columns"]), None, depth + 1),
                "i": encode(list(split["index"]), None, depth + 1), "v": encode(split["data"], None, depth + 1)}
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        return {"t": "o", "n": type(obj).__name__, "v": encode(dict(vars(obj)), handles, depth + 1)}
    return {"t": "x", "n": type(obj).__name__}


def _array(a: np.ndarray) -> dict[str, Any]:
    a = np.array(a, order="C", copy=True)
    return {"t": "a", "dtype": a.dtype.name, "shape": list(a.shape), "data": base64.b64encode(a.tobytes()).decode()}


class Opaque:
    """A value the notebook could not send (its type name only)."""


def _opaque(name: Any) -> Opaque:
    clean = "".join(ch for ch in str(name) if ch.isalnum() or ch == "_")[:60] or "object"
    return type(clean, (Opaque,), {})()


def decode(obj: Any, session: Session | None = None) -> Any:
    """The value :func:`encode` wrote (callables become :class:`RemoteFunction` of ``session``)."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if not isinstance(obj, dict):
        raise ValueError("malformed value")
    kind = obj.get("t")
    if kind == "a":
        dtype, shape = str(obj["dtype"]), [int(n) for n in obj["shape"]]
        if dtype not in _DTYPES or any(n < 0 for n in shape):
            raise ValueError(f"unsupported array type {dtype!r}")
        raw = base64.b64decode(str(obj["data"]), validate=True)
        a = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
        return torch.from_numpy(a) if obj.get("torch") else a
    if kind in ("l", "u"):
        items = [decode(v, session) for v in obj["v"]]
        return items if kind == "l" else tuple(items)
    if kind == "d":
        keys = [decode(k) for k in obj["k"]]
        return dict(zip(keys, (decode(v, session) for v in obj["v"]), strict=True))
    if kind == "f":
        return pd.DataFrame(decode(obj["v"]), index=decode(obj["i"]), columns=decode(obj["c"]))
    if kind == "o":
        attrs = decode(obj["v"], session)
        return types.SimpleNamespace(**{str(k): v for k, v in attrs.items() if str(k).isidentifier()})
    if kind == "c" and session is not None:
        return RemoteFunction(session, int(obj["h"]))
    return _opaque(obj.get("n"))


# ============================================================================ arguments sent to the notebook


class _GeneratorState:
    """A ``torch.Generator`` in transit (generators do not pickle)."""

    def __init__(self, state: torch.Tensor) -> None:
        self.state = state


def _pack(value: Any) -> Any:
    if isinstance(value, torch.Generator):
        return _GeneratorState(value.get_state())
    if isinstance(value, torch.Tensor):
        return value.detach().clone().requires_grad_(value.requires_grad)
    return value


def _unpack(value: Any) -> Any:
    if isinstance(value, _GeneratorState):
        g = torch.Generator()
        g.set_state(value.state)
        return g
    return value


def _tensors(args: Sequence[Any], kwargs: Mapping[str, Any]) -> list[torch.Tensor]:
    """Every tensor of a call, in order: tensor arguments and the parameters of model arguments."""
    out: list[torch.Tensor] = []
    for value in [*args, *kwargs.values()]:
        if isinstance(value, torch.Tensor):
            out.append(value)
        elif isinstance(value, torch.nn.Module):
            out.extend(value.parameters())
    return out


# ============================================================================ the notebook's side


def request_check(name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> CheckResult | None:
    """Have the grader run check ``name`` on these arguments; its result, or None if no grader answers."""
    path = os.environ.get(SOCKET_ENV, "")
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
    except OSError as err:
        print(f"(no grader at {path!r}: {err}; checking here, without points)", file=sys.stderr)
        return None
    handles: list[Any] = []
    calls: dict[int, tuple[torch.Tensor, list[torch.Tensor]]] = {}
    hello = {"op": "check", "name": name, "args": [encode(a, handles) for a in args],
             "kwargs": {str(k): encode(v, handles) for k, v in kwargs.items()}}
    with sock:
        try:
            _send(sock, json.dumps(hello).encode())
            while True:
                msg = pickle.loads(_recv(sock))
                if msg["op"] == "done":
                    return CheckResult.from_dict(msg["result"])
                reply = _answer_call(handles, calls, msg) if msg["op"] == "call" else _answer_backward(calls, msg)
                _send(sock, json.dumps(reply).encode())
        except (OSError, EOFError, pickle.UnpicklingError) as err:
            print(f"(the grader stopped answering: {err})", file=sys.stderr)
            return None


def _failure(err: BaseException) -> dict[str, Any]:
    return {"ok": False, "ename": type(err).__name__, "evalue": _short(str(err), 2000)}


def _answer_call(handles: list[Any], calls: dict, msg: Mapping[str, Any]) -> dict[str, Any]:
    args = [_unpack(a) for a in msg["args"]]
    kwargs = {k: _unpack(v) for k, v in msg["kwargs"].items()}
    target = handles[msg["target"]]
    try:
        out = _run_model(target, args) if isinstance(target, torch.nn.Module) else target(*args, **kwargs)
    except BaseException as err:  # student code may raise anything, SystemExit included
        return _failure(err)
    tensors = _tensors(args, kwargs)
    requires_grad = isinstance(out, torch.Tensor) and out.requires_grad
    if requires_grad:
        calls[msg["call"]] = (out, [t for t in tensors if t.requires_grad])
    return {"ok": True, "out": encode(out), "requires_grad": requires_grad, "after": [encode(t) for t in tensors]}


def _run_model(model: torch.nn.Module, args: Sequence[Any]) -> Any:
    """A model's logits in eval mode, without gradients, on its own device, returned on the CPU."""
    device = next(iter(model.parameters()), torch.empty(0)).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(*[torch.as_tensor(np.asarray(a), dtype=torch.float32).to(device) for a in args])
    finally:
        model.train(was_training)
    return out.cpu() if isinstance(out, torch.Tensor) else out


def _answer_backward(calls: dict, msg: Mapping[str, Any]) -> dict[str, Any]:
    try:
        out, leaves = calls[msg["call"]]
        grads = torch.autograd.grad(out, leaves, msg["grad"], retain_graph=True, allow_unused=True)
    except BaseException as err:
        return _failure(err)
    return {"ok": True, "grads": [None if g is None else encode(g) for g in grads]}


# ============================================================================ the grader's side


class Session:
    """One check cell's connection, seen from the grader; answers must arrive before ``deadline``."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock, self.deadline, self.n_calls = sock, deadline, 0

    def receive(self) -> Any:
        self.sock.settimeout(max(0.05, self.deadline - time.monotonic()))
        return json.loads(_recv(self.sock, MAX_MESSAGE))

    def ask(self, msg: Mapping[str, Any]) -> dict[str, Any]:
        try:
            _send(self.sock, pickle.dumps(dict(msg)))
            reply = self.receive()
        except TimeoutError:
            raise _Stop("your notebook did not answer before the time limit") from None
        except (OSError, ValueError) as err:
            raise _Stop(f"your notebook's process stopped answering the grader ({_short(str(err), 120)})") from None
        if not isinstance(reply, dict):
            raise _Stop("your notebook sent the grader a malformed answer")
        if not reply.get("ok"):
            ename, evalue = str(reply.get("ename", "Exception")), str(reply.get("evalue", ""))
            if ename == "NotImplementedError":
                raise NotImplementedError(evalue)
            raise StudentError(ename, evalue)
        return reply

    def call(self, handle: int, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        """Call the notebook's callable ``handle``; mirror in-place changes of the inputs; link gradients."""
        self.n_calls += 1
        call_id = self.n_calls
        reply = self.ask({"op": "call", "target": handle, "call": call_id, "args": [_pack(a) for a in args],
                          "kwargs": {k: _pack(v) for k, v in kwargs.items()}})
        try:
            tensors = _tensors(args, kwargs)
            for t, new in zip(tensors, reply.get("after", []), strict=False):
                new = decode(new)
                if isinstance(new, torch.Tensor) and new.shape == t.shape and not torch.equal(new.to(t.dtype), t):
                    with torch.no_grad():
                        t.copy_(new)
            out = decode(reply.get("out"))
        except (ValueError, KeyError, TypeError) as err:
            raise _Stop(f"your notebook sent the grader a malformed answer ({_short(str(err), 120)})") from None
        leaves = [t for t in tensors if t.requires_grad]
        if reply.get("requires_grad") and isinstance(out, torch.Tensor) and out.is_floating_point() and leaves:
            return _RemoteGrad.apply(self, call_id, out, *leaves)
        return out

    def backward(self, call_id: int, grad: torch.Tensor, like: Sequence[torch.Tensor]) -> list[torch.Tensor | None]:
        reply = self.ask({"op": "backward", "call": call_id, "grad": grad.detach().clone()})
        grads: list[torch.Tensor | None] = []
        for g, leaf in zip(reply.get("grads", []), like, strict=False):
            value = decode(g)
            ok = isinstance(value, torch.Tensor) and value.shape == leaf.shape
            grads.append(value.to(leaf.dtype) if ok else None)
        return grads + [None] * (len(like) - len(grads))


class RemoteFunction:
    """A function or model of the notebook, called by the grader with its own inputs."""

    def __init__(self, session: Session, handle: int) -> None:
        self.session, self.handle = session, handle

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.session.call(self.handle, args, kwargs)


class _RemoteGrad(torch.autograd.Function):
    """Joins a notebook's output to the grader's inputs: backward asks the notebook for the gradients."""

    @staticmethod
    def forward(ctx: Any, session: Session, call_id: int, value: torch.Tensor, *leaves: torch.Tensor) -> torch.Tensor:
        ctx.session, ctx.call_id = session, call_id
        ctx.like = [torch.empty(leaf.shape, dtype=leaf.dtype) for leaf in leaves]
        return value.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        return (None, None, None, *ctx.session.backward(ctx.call_id, grad, ctx.like))


#: Arguments of result checks the grader supplies itself when it knows the assignment's data:
#: check name -> (argument position, 0 for the dataset or 1 for the planted-window masks).
GRADER_DATA = {"check_trained_student": (1, 0), "check_synthetic_validation": (1, 1)}


def serve(sock: socket.socket, deadline: float, data: Callable[[], tuple] | None = None) -> CheckResult | None:
    """Run the check a notebook asks for, in this process, on the notebook's functions; its result.

    Function checks draw fresh random inputs (a new seed offset per check). With ``data`` (the
    ``(dataset, masks)`` of the notebook's variant, see :func:`~tsd_lib.grading.assignment_dataset`)
    the checks in :data:`GRADER_DATA` judge the notebook's model or maps on the grader's own copy
    of the data, not on the data the notebook passes. The result goes back to the notebook for
    display and is returned to the grader, the only place points count.
    """
    session = Session(sock, deadline)
    try:
        hello = session.receive()
        name = str(hello["name"])
        check = CHECKS[name]
        args = [decode(a, session) for a in hello["args"]]
        kwargs = {str(k): decode(v, session) for k, v in hello["kwargs"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if data is not None and name in GRADER_DATA and len(args) > GRADER_DATA[name][0]:
        position, which = GRADER_DATA[name]
        with contextlib.suppress(Exception):  # the data cannot be loaded here: judge what was passed
            value = data()[which]
            args[position] = args[position] if value is None else value
    feedback.INPUT_SEED = secrets.randbelow(2**31)
    try:
        result = check(*args, **kwargs)
    except Exception as err:  # e.g. the check cell passed the wrong number of arguments
        max_points = next((table[name] for table in POINTS.values() if name in table), 0.0)
        assignment = next((a for a, table in POINTS.items() if name in table), 0)
        result = CheckResult(name, 0.0, max_points, [], [f"the check could not run: {type(err).__name__}: "
                                                         f"{_short(str(err), 200)}"], ["all cases"], assignment)
    finally:
        feedback.INPUT_SEED = 0
    with contextlib.suppress(OSError):
        _send(sock, pickle.dumps({"op": "done", "result": result.to_dict()}))
    return result
