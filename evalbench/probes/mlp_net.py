"""A stack of G MLP candidates of one shape, evaluated as one batched computation.

The MLP probe (:mod:`evalbench.probes.mlp`) trains several candidate
configurations at once.  Candidates with the same shape — hidden layers
``h ∈ {0, 1, 2}`` and width ``w`` — have parameter tensors of the same size, so
they are held as *stacked* tensors whose first axis is the candidate, and one
forward pass is one matrix product per layer for all candidates (the first
layer's over the shared input, ``torch.baddbmm`` for later layers).  The
computation of candidate ``k`` is exactly that of the network HEAR's
hear-eval-kit builds (docs/protocol.md §3), ``torch.nn.Sequential`` of, per hidden
layer, ``Linear → BatchNorm1d → Dropout → ReLU``, then ``Linear(·, C)``:

- **BatchNorm1d**, per candidate and feature: in training the batch mean and
  biased variance normalise; the running mean and the running *unbiased*
  variance move with momentum 0.1 (eps 1e-5); evaluation uses the running
  statistics, as ``torch.nn.BatchNorm1d`` does (Ioffe & Szegedy, ICML 2015).
- **Dropout**, per-candidate probability ``p``: the mask is
  ``bernoulli(1 − p) / (1 − p)``, drawn from the candidate's own generator
  (the draw ``torch.nn.Dropout`` makes on CPU from the global generator).
- **Initialisation** (HEAR's choice between ``xavier_uniform`` and
  ``xavier_normal``, Glorot & Bengio, AISTATS 2010): gain ``√2`` (ReLU) for
  hidden layers and 1 (linear) for the output layer, biases zero, BatchNorm
  scale 1 and shift 0.

Each candidate draws its initial weights and its dropout masks from generators
seeded by ``random_state`` and its architecture (:meth:`Candidate.seed`), so a
candidate trains the same whichever group or search it is part of, and
candidates differing only in learning rate, weight decay or dropout start from
the same weights (common random numbers, as the linear probe's grid).
``tests/unit/test_mlp_net.py`` checks the stack against separate
``torch.nn.Sequential`` networks.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from evalbench.utils.hashing import sha256_json

INITS = ("xavier_uniform", "xavier_normal")
BN_MOMENTUM = 0.1  # torch.nn.BatchNorm1d's defaults
BN_EPS = 1e-5


@dataclass(frozen=True)
class Candidate:
    """One MLP configuration: architecture and optimiser settings.

    Attributes:
        hidden_layers: Hidden layers (0: a linear head).
        width: Units per hidden layer (irrelevant without hidden layers).
        lr: Adam learning rate.
        weight_decay: Adam L2 weight decay.
        dropout: Dropout probability after each hidden BatchNorm.
        init: ``xavier_uniform`` or ``xavier_normal``.
    """

    hidden_layers: int
    width: int
    lr: float
    weight_decay: float
    dropout: float
    init: str

    def __post_init__(self) -> None:
        if self.hidden_layers < 0 or self.width < 1:
            raise ValueError(f"mlp candidate: hidden_layers {self.hidden_layers} / width {self.width} out of range")
        if self.init not in INITS:
            raise ValueError(f"mlp candidate: init '{self.init}' is not one of {', '.join(INITS)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"mlp candidate: dropout {self.dropout} is not in [0, 1)")

    @property
    def shape(self) -> tuple[int, int]:
        """``(hidden_layers, width)``, width 0 without hidden layers: candidates of one shape stack."""
        return (self.hidden_layers, self.width if self.hidden_layers else 0)

    def params(self) -> dict[str, Any]:
        """The configuration as plain values (the probe's fixed-candidate keyword arguments)."""
        return asdict(self)

    def seed(self, random_state: int) -> int:
        """Seed of this candidate's initialisation and dropout generators: ``random_state`` and the architecture."""
        arch = {"hidden_layers": self.hidden_layers, "width": self.shape[1], "init": self.init}
        key = int(sha256_json(arch)[:15], 16)
        return int(np.random.SeedSequence([int(random_state), key]).generate_state(1, np.uint64)[0] >> 1)


def layer_gain(layer: int, hidden_layers: int) -> float:
    """Xavier gain of linear layer ``layer``: ReLU's √2 before a hidden nonlinearity, 1 for the output layer."""
    return math.sqrt(2.0) if layer < hidden_layers else 1.0


class StackedMLP:
    """G candidates of one shape; every tensor has the candidate as its first axis.

    Build one with :meth:`initialise` (fresh candidates) or :meth:`stack`
    (saved candidate states).  ``tensors`` holds, per hidden layer ``i``,
    ``w{i}`` ``(G, w, in)`` (``nn.Linear``'s layout), ``b{i}``, ``gamma{i}``,
    ``beta{i}``, ``mean{i}``, ``var{i}`` ``(G, w)``, and the output layer
    ``w_out`` ``(G, C, in)``, ``b_out`` ``(G, C)``.

    Hidden activations are held batch-major, ``(B, G·w)`` with the candidate
    as the slower feature axis: the first layer of every candidate is one
    matrix product of the shared input with the candidates' weights stacked
    along the outputs (``(G·w, D)``, a view), the ``G × w`` (candidate,
    feature) pairs are exactly the channels of one native
    ``torch.nn.functional.batch_norm`` call over the batch (``nn.BatchNorm1d``'s
    own layout, running statistics updated in place), and each candidate's
    dropout mask is a contiguous-row ``(B, w)`` slice.  Later layers are one
    ``torch.baddbmm`` over candidates reading ``(B, G·w)`` in place.

    Args:
        tensors: The named stacked tensors.
        dropout: ``(G,)`` dropout probabilities.
        generators: Per-candidate dropout-mask generators (None: no dropout draws).
    """

    def __init__(
        self, tensors: dict[str, torch.Tensor], dropout: torch.Tensor, generators: list[torch.Generator] | None = None
    ) -> None:
        self.tensors = tensors
        self.hidden_layers = sum(1 for k in tensors if k.startswith("gamma"))
        self.dropout = dropout
        self.generators = generators

    @classmethod
    def initialise(
        cls,
        candidates: list[Candidate],
        n_in: int,
        n_out: int,
        random_state: int,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ) -> StackedMLP:
        """Fresh candidates (module docstring): Xavier weights drawn in float32 on CPU, then cast.

        Raises:
            ValueError: Candidates of different shapes.
        """
        shapes = {c.shape for c in candidates}
        if len(shapes) != 1:
            raise ValueError(f"stacked MLP: candidates of one shape only, got {sorted(shapes)}")
        hidden, width = shapes.pop()
        dims = [n_in] + [width] * hidden + [n_out]
        draws: list[list[torch.Tensor]] = [[] for _ in range(hidden + 1)]
        for cand in candidates:
            gen = torch.Generator().manual_seed(cand.seed(random_state))
            init = getattr(torch.nn.init, f"{cand.init}_")
            for i in range(hidden + 1):
                w = torch.empty(dims[i + 1], dims[i])  # nn.Linear's (out, in) layout and draw order
                init(w, gain=layer_gain(i, hidden), generator=gen)
                draws[i].append(w)
        g = len(candidates)

        def zeros(n: int) -> torch.Tensor:
            return torch.zeros(g, n, dtype=dtype, device=device)

        tensors: dict[str, torch.Tensor] = {}
        for i in range(hidden):
            tensors |= {f"w{i}": torch.stack(draws[i]).to(device, dtype), f"b{i}": zeros(width)}
            tensors |= {f"gamma{i}": zeros(width) + 1, f"beta{i}": zeros(width)}
            tensors |= {f"mean{i}": zeros(width), f"var{i}": zeros(width) + 1}
        tensors |= {"w_out": torch.stack(draws[hidden]).to(device, dtype), "b_out": zeros(n_out)}
        gens = [torch.Generator().manual_seed(c.seed(random_state)) for c in candidates]
        dropout = torch.tensor([c.dropout for c in candidates], dtype=dtype, device=device)
        net = cls(tensors, dropout, gens)
        for p in net.parameters():
            p.requires_grad_(True)
        return net

    @classmethod
    def stack(cls, states: list[dict[str, torch.Tensor]], dropout: list[float]) -> StackedMLP:
        """A stack of saved single-candidate states (:meth:`snapshot`), for evaluation."""
        tensors = {k: torch.stack([s[k] for s in states]) for k in states[0]}
        return cls(tensors, torch.tensor(dropout, dtype=tensors["w_out"].dtype, device=tensors["w_out"].device))

    def __len__(self) -> int:
        return int(self.tensors["w_out"].shape[0])

    def parameters(self) -> list[torch.Tensor]:
        """The trainable tensors (weights, biases, BatchNorm scale and shift), in a fixed order."""
        return [v for k, v in self.tensors.items() if not k.startswith(("mean", "var"))]

    def snapshot(self, k: int) -> dict[str, torch.Tensor]:
        """A detached copy of candidate ``k``'s state (parameters and running statistics)."""
        return {name: t[k].detach().clone() for name, t in self.tensors.items()}

    def select(self, keep: list[int]) -> None:
        """Keep only the candidates at positions ``keep`` (frozen candidates leave the computation)."""
        index = torch.as_tensor(keep, device=self.dropout.device)
        for name, t in self.tensors.items():
            self.tensors[name] = t.detach()[index].requires_grad_(t.requires_grad)  # indexing copies
        self.dropout = self.dropout[index]
        if self.generators is not None:
            self.generators = [self.generators[k] for k in keep]

    def _batch_norm(self, i: int, h: torch.Tensor, training: bool) -> torch.Tensor:
        """Per-candidate BatchNorm1d of ``h`` ``(B, G·w)``: one channel per (candidate, feature)."""
        t = self.tensors
        return F.batch_norm(
            h, t[f"mean{i}"].view(-1), t[f"var{i}"].view(-1), t[f"gamma{i}"].view(-1), t[f"beta{i}"].view(-1),
            training, BN_MOMENTUM, BN_EPS,
        )  # fmt: skip

    def _dropout(self, h: torch.Tensor) -> torch.Tensor:
        """Per-candidate dropout of ``h`` ``(B, G·w)``; masks drawn as ``nn.Dropout`` draws them on ``(B, w)``.

        Candidate ``k``'s mask is drawn into the ``(B, w)`` slice ``[:, k]`` of a ``(B, G, w)`` buffer: a
        row-strided view is filled in its logical (row-major) order, the order of a contiguous ``(B, w)`` draw,
        so the draws are ``torch.nn.Dropout``'s; one generator per candidate keeps the loop over candidates.
        """
        probs = self.dropout.tolist()
        if self.generators is None or not any(p > 0 for p in probs):
            return h
        b, gw = h.shape
        masks = torch.empty(b, len(probs), gw // len(probs), dtype=h.dtype)
        for k, (p, gen) in enumerate(zip(probs, self.generators, strict=True)):
            if p > 0:  # torch.nn.Dropout on CPU: bernoulli(1 - p), divided by 1 - p
                masks[:, k].bernoulli_(1 - p, generator=gen).div_(1 - p)
            else:
                masks[:, k].fill_(1)
        return h * masks.view(b, gw).to(h.device)

    def forward(self, x: torch.Tensor, training: bool = False, first_grad: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(G, B, C)`` of every candidate for the shared inputs ``x`` ``(B, D)``.

        Args:
            x: Inputs, shared by the candidates.
            training: Batch statistics (and running-statistic updates) and dropout, or running statistics.
            first_grad: A tensor of the first layer's weight shape into which the backward pass writes that
                weight's gradient (it is the gradient returned): a buffer reused from step to step rather than
                a fresh one (4 × 1024 × 3072 floats, 50 MB, are past glibc's mmap threshold: page faults).
        """
        t, g, b = self.tensors, len(self), x.shape[0]
        layers = [(f"w{i}", f"b{i}") for i in range(self.hidden_layers)] + [("w_out", "b_out")]
        h = x
        for i, (w_name, b_name) in enumerate(layers):
            if i == 0:  # (B, D) @ (D, G·out): one GEMM over the shared input, viewed as (G, B, out)
                out = _SharedInputLinear.apply(x, t[w_name], t[b_name], first_grad).view(b, g, -1).transpose(0, 1)
            else:  # (G, B, w) @ (G, w, out), reading (B, G·w) in place
                out = torch.baddbmm(t[b_name].unsqueeze(1), h.view(b, g, -1).transpose(0, 1), t[w_name].transpose(1, 2))
            if i == self.hidden_layers:
                return out
            h = out.transpose(0, 1).reshape(b, -1)  # (B, G·w): a view after the first layer, a copy after the others
            h = self._batch_norm(i, h, training)
            if training:
                h = self._dropout(h)
            h = torch.relu_(h)  # in place: neither batch_norm's nor dropout's backward needs its output
        raise AssertionError("unreachable: the output layer returns")


class _SharedInputLinear(torch.autograd.Function):
    """``x @ W.view(G·out, D).T + b``: the first linear layer of G candidates as one GEMM over their shared input.

    The gradients are those of ``torch.addmm(b.view(-1), x, W.view(G·out, D).T)`` (``gW = g.T @ x``,
    ``gb = g.sum(0)``), with ``gW`` written into ``out`` when one is given.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor, out: torch.Tensor | None
    ) -> torch.Tensor:
        ctx.save_for_backward(x, w)
        ctx.out = out
        return torch.addmm(bias.view(-1), x, w.view(-1, w.shape[2]).T)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        x, w = ctx.saved_tensors
        flat = (w.shape[0] * w.shape[1], w.shape[2])
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = torch.mm(grad, w.view(flat))
        if ctx.needs_input_grad[1]:
            gw = (torch.mm(grad.T, x) if ctx.out is None else torch.mm(grad.T, x, out=ctx.out.view(flat))).view(w.shape)
        if ctx.needs_input_grad[2]:
            gb = grad.sum(0).view(w.shape[:2])
        return gx, gw, gb, None


__all__ = ["INITS", "Candidate", "StackedMLP", "layer_gain"]
