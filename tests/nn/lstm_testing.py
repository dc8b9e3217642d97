"""Helpers for the ``lstmkit.nn`` tests: configurations, input forms, and a parity driver.

The driver runs one of our cores and a *reference* module (``torch.nn.LSTM`` unless told
otherwise) on the same data, with a random upstream gradient on ``output``, ``h_n`` and ``c_n``,
and compares the forward values and the gradients of the input, the initial state and every
parameter (matched by name).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from lstmkit.nn import CudnnLSTM, CustomLSTM

# Tolerances: float64 must agree to round-off, float32 to 1e-5.
TOL = {
    torch.float64: {"atol": 1e-10, "rtol": 1e-10},
    torch.float32: {"atol": 1e-5, "rtol": 1e-5},
}
DTYPE_IDS = {torch.float64: "f64", torch.float32: "f32"}

# "fused"/"reference" are CustomLSTM's implementations; "cudnn" is CudnnLSTM.
OUR_BACKENDS = ("fused", "reference", "cudnn")

# Small sizes keep the grid affordable on 2 CPU cores.
SEQ, BATCH, INPUT, HIDDEN = 6, 4, 3, 4


def make_ours(backend: str, *args, **kwargs) -> nn.Module:
    """Build one of our cores: ``"cudnn"`` -> CudnnLSTM, else CustomLSTM(implementation=backend)."""
    if backend == "cudnn":
        return CudnnLSTM(*args, **kwargs)
    return CustomLSTM(*args, implementation=backend, **kwargs)


@dataclass(frozen=True)
class Cfg:
    """One torch.nn.LSTM configuration plus whether an initial state is passed."""

    num_layers: int = 1
    bidirectional: bool = False
    batch_first: bool = False
    proj_size: int = 0
    bias: bool = True
    init_state: bool = False

    @property
    def id(self) -> str:
        parts = [f"L{self.num_layers}", "bidir" if self.bidirectional else "uni"]
        parts.append("bf" if self.batch_first else "tf")
        parts.append(f"proj{self.proj_size}" if self.proj_size else "noproj")
        parts.append("bias" if self.bias else "nobias")
        parts.append("h0" if self.init_state else "noh0")
        return "-".join(parts)

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    def lstm_kwargs(self) -> dict:
        return {
            "num_layers": self.num_layers,
            "bias": self.bias,
            "batch_first": self.batch_first,
            "bidirectional": self.bidirectional,
            "proj_size": self.proj_size,
        }


def randn(gen: torch.Generator, *shape: int, dtype=torch.float64, device="cpu") -> Tensor:
    return torch.randn(*shape, generator=gen, dtype=dtype).to(device)


def random_state(
    cfg: Cfg,
    batch: int | None,
    gen: torch.Generator,
    dtype=torch.float64,
    device="cpu",
    hidden: int = HIDDEN,
) -> tuple[Tensor, Tensor]:
    """A random ``(h_0, c_0)``; ``batch=None`` gives the unbatched shapes."""
    rows = cfg.num_layers * cfg.directions
    lead = (rows,) if batch is None else (rows, batch)
    h_size = cfg.proj_size or hidden
    return (
        randn(gen, *lead, h_size, dtype=dtype, device=device),
        randn(gen, *lead, hidden, dtype=dtype, device=device),
    )


# ---------------------------------------------------------------------- input forms
@dataclass(frozen=True)
class Form:
    """How the input is given: a plain tensor, unbatched, packed, or padded with ``lengths=``."""

    name: str
    kind: str  # "tensor" | "unbatched" | "packed" | "lengths"
    lengths: tuple[int, ...] | None = None
    enforce_sorted: bool = False
    lengths_as_tensor: bool = False

    def lengths_arg(self) -> Sequence[int] | Tensor:
        assert self.lengths is not None
        if self.lengths_as_tensor:
            return torch.tensor(self.lengths, dtype=torch.int64)
        return list(self.lengths)


FORMS = (
    Form("unbatched", "unbatched"),
    Form("packed_sorted", "packed", (6, 5, 3, 1), enforce_sorted=True),
    Form("packed_unsorted", "packed", (3, 6, 1, 5)),
    Form("lengths_list_unsorted", "lengths", (3, 6, 1, 5)),
    Form("lengths_tensor_unsorted", "lengths", (5, 1, 6, 3), lengths_as_tensor=True),
    Form("lengths_equal_short", "lengths", (4, 4, 4, 4), lengths_as_tensor=True),
    Form("lengths_all_full", "lengths", (6, 6, 6, 6)),
    Form("lengths_all_one", "lengths", (1, 1, 1, 1)),
)
assert all(f.lengths is None or (len(f.lengths) == BATCH and max(f.lengths) <= SEQ) for f in FORMS)
TENSOR_FORM = Form("tensor", "tensor")


def valid_mask(
    lengths: Sequence[int], seq: int, batch_first: bool, device="cpu"
) -> Tensor:  # (T, B, 1) or (B, T, 1) bool
    steps = torch.arange(seq).unsqueeze(1)
    mask = steps < torch.tensor(list(lengths)).unsqueeze(0)  # (T, B)
    if batch_first:
        mask = mask.t()
    return mask.unsqueeze(-1).to(device)


def call(
    module: nn.Module,
    x: Tensor,
    hx: tuple[Tensor, Tensor] | None,
    form: Form,
    batch_first: bool,
    *,
    is_reference: bool,
) -> tuple[Tensor, PackedSequence | None, Tensor, Tensor]:
    """Run ``module`` on ``x`` given in ``form``.

    Returns ``(output_tensor, packed_output_or_None, h_n, c_n)``; for ``lengths`` the reference
    (torch.nn.LSTM) runs on the packed input and its output is padded back to ``x``'s length.
    """
    if form.kind in ("tensor", "unbatched"):
        out, (h_n, c_n) = module(x, hx)
        return out, None, h_n, c_n
    seq = x.shape[1] if batch_first else x.shape[0]
    if form.kind == "packed" or is_reference:
        packed = pack_padded_sequence(
            x,
            torch.tensor(form.lengths),
            batch_first=batch_first,
            enforce_sorted=form.enforce_sorted if form.kind == "packed" else False,
        )
        out, (h_n, c_n) = module(packed, hx)
        assert isinstance(out, PackedSequence), type(out)
        if form.kind == "packed":
            return out.data, out, h_n, c_n
        padded, _ = pad_packed_sequence(out, batch_first=batch_first, total_length=seq)
        return padded, None, h_n, c_n
    out, (h_n, c_n) = module(x, hx, lengths=form.lengths_arg())
    return out, None, h_n, c_n


def make_input(cfg: Cfg, form: Form, gen, dtype, device="cpu", input_size=INPUT) -> Tensor:
    if form.kind == "unbatched":
        return randn(gen, SEQ, input_size, dtype=dtype, device=device)
    shape = (BATCH, SEQ, input_size) if cfg.batch_first else (SEQ, BATCH, input_size)
    return randn(gen, *shape, dtype=dtype, device=device)


def forward_backward(
    module: nn.Module,
    x: Tensor,
    hx: tuple[Tensor, Tensor] | None,
    form: Form,
    batch_first: bool,
    upstream: dict[str, Tensor] | None,
    gen: torch.Generator,
    *,
    is_reference: bool,
):
    """Forward, then backward a random linear functional of (output, h_n, c_n).

    Returns ``(values, grads, upstream, packed)``: ``values`` maps output/h_n/c_n to tensors,
    ``grads`` maps "input", "h_0", "c_0" and every parameter name to its gradient.
    """
    x = x.detach().clone().requires_grad_(True)
    leaves = {"input": x}
    if hx is not None:
        hx = tuple(t.detach().clone().requires_grad_(True) for t in hx)
        leaves["h_0"], leaves["c_0"] = hx
    out, packed, h_n, c_n = call(module, x, hx, form, batch_first, is_reference=is_reference)
    values = {"output": out, "h_n": h_n, "c_n": c_n}
    if upstream is None:
        upstream = {
            k: torch.randn(v.shape, generator=gen, dtype=v.dtype).to(v.device)
            for k, v in values.items()
        }
    loss = sum((values[k] * upstream[k]).sum() for k in values)
    params = dict(module.named_parameters())
    wrt = list(leaves.values()) + list(params.values())
    grad_list = torch.autograd.grad(loss, wrt)
    grads = dict(zip(list(leaves) + list(params), grad_list, strict=True))
    return {k: v.detach() for k, v in values.items()}, grads, upstream, packed


def assert_close(actual: Tensor, expected: Tensor, dtype, what: str) -> None:
    torch.testing.assert_close(actual, expected, **TOL[dtype], msg=lambda m: f"{what}: {m}")


def check_against_reference(
    ours: nn.Module,
    ref: nn.Module,
    x: Tensor,
    hx: tuple[Tensor, Tensor] | None,
    form: Form,
    batch_first: bool,
    dtype,
    *,
    seed: int = 1234,
) -> None:
    """Compare values and all gradients of ``ours`` with ``ref`` (torch.nn.LSTM semantics)."""
    gen = torch.Generator().manual_seed(seed)
    ref_vals, ref_grads, upstream, ref_packed = forward_backward(
        ref, x, hx, form, batch_first, None, gen, is_reference=True
    )
    our_vals, our_grads, _, our_packed = forward_backward(
        ours, x, hx, form, batch_first, upstream, gen, is_reference=False
    )
    for key in ("output", "h_n", "c_n"):
        assert our_vals[key].shape == ref_vals[key].shape, (
            key,
            our_vals[key].shape,
            ref_vals[key].shape,
        )
        assert_close(our_vals[key], ref_vals[key], dtype, key)
    if form.kind == "packed":
        assert our_packed is not None and ref_packed is not None
        assert torch.equal(our_packed.batch_sizes, ref_packed.batch_sizes)
        for attr in ("sorted_indices", "unsorted_indices"):
            a, b = getattr(our_packed, attr), getattr(ref_packed, attr)
            assert (a is None) == (b is None), attr
            if a is not None:
                assert torch.equal(a.cpu(), b.cpu()), attr
    if form.kind == "lengths":
        seq = x.shape[1] if batch_first else x.shape[0]
        mask = valid_mask(form.lengths, seq, batch_first, device=x.device)
        padded = our_vals["output"].masked_select(~mask)
        assert torch.equal(padded, torch.zeros_like(padded)), "padded output positions not zero"
    assert set(our_grads) == set(ref_grads), (sorted(our_grads), sorted(ref_grads))
    for name, g in ref_grads.items():
        assert_close(our_grads[name], g, dtype, f"grad of {name}")


def copy_weights(src: nn.Module, dst: nn.Module) -> None:
    """``dst.load_state_dict(src.state_dict())`` (strict: the keys must be identical)."""
    dst.load_state_dict(src.state_dict())


def randomize_parameters(module: nn.Module, gen: torch.Generator, scale: float = 0.5) -> None:
    """Random values for every parameter (gains of layer norm around 1), so that variant
    parameters with a neutral default (zero peepholes, unit gains) are exercised."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device)
            if "layer_norm" in name and "weight" in name:
                p.copy_(1.0 + 0.3 * noise)
            else:
                p.copy_(scale * noise)
