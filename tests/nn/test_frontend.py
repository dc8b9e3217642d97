"""ConvFrontEnd: output lengths by the conv formula, padding invariance, gradients, checks."""

from __future__ import annotations

import pytest
import torch

from lstmkit.nn import ConvFrontEnd, build_frontend


@pytest.mark.parametrize(
    ("kwargs", "steps", "lengths", "expected_steps", "expected_lengths"),
    [
        # k=5, p=2, s=2, two blocks: 150 -> floor(149/2)+1 = 75 -> floor(74/2)+1 = 38;
        # 120 -> 60 -> 30; 33 -> 17 -> 9; 1 -> 1 -> 1
        ({"kernel_size": 5, "stride": 2, "num_layers": 2}, 150, [150, 120, 33, 1], 38,
         [38, 30, 9, 1]),
        # k=8, p=4, s=3, one block: 100 -> floor(100/3)+1 = 34; 10 -> 4; 2 -> 1; 1 -> 1
        ({"kernel_size": 8, "stride": 3, "num_layers": 1}, 100, [100, 10, 2, 1], 34,
         [34, 4, 1, 1]),
        # k=3, p=1, s=1: the length is kept
        ({"kernel_size": 3, "stride": 1, "num_layers": 3}, 7, [7, 6, 2, 1], 7, [7, 6, 2, 1]),
        # k=4, p=2, s=4, two blocks: 64 -> floor(64/4)+1 = 17 -> floor(17/4)+1 = 5;
        # 5 -> 2 -> 1
        ({"kernel_size": 4, "stride": 4, "num_layers": 2}, 64, [64, 5, 3, 1], 5, [5, 1, 1, 1]),
    ],
)  # fmt: skip
def test_output_steps_and_lengths_follow_the_conv_formula(
    kwargs, steps, lengths, expected_steps, expected_lengths
):
    front = ConvFrontEnd(3, channels=4, **kwargs)
    y, out_lengths = front(torch.randn(4, steps, 3), torch.tensor(lengths))
    assert y.shape == (4, expected_steps, 4)
    assert out_lengths.dtype == torch.int64
    assert out_lengths.tolist() == expected_lengths
    assert front.output_length(steps) == expected_steps
    assert front.output_length(torch.tensor(lengths)).tolist() == expected_lengths
    y_full, none = front(torch.randn(4, steps, 3))
    assert y_full.shape == (4, expected_steps, 4) and none is None


@pytest.mark.parametrize("norm", [True, False])
def test_a_sequence_gives_the_same_outputs_alone_and_in_a_padded_batch(norm):
    """Padded steps hold garbage (even NaN and inf); each sequence's valid outputs equal its
    outputs alone, whatever the batch's padding."""
    torch.manual_seed(0)
    front = ConvFrontEnd(2, channels=5, kernel_size=5, stride=2, num_layers=3, norm=norm)
    front = front.double().eval()
    lengths = torch.tensor([41, 17, 1, 30, 8])
    x = torch.randn(5, 45, 2, dtype=torch.float64) * 100  # 4+ padded steps for every row
    for i, n in enumerate(lengths.tolist()):
        x[i, n:] = torch.tensor([float("nan"), float("inf")], dtype=torch.float64)
    y, out_lengths = front(x, lengths)
    assert torch.isfinite(y).all()
    for i, n in enumerate(lengths.tolist()):
        alone, alone_lengths = front(x[i : i + 1, :n], lengths[i : i + 1])
        m = int(out_lengths[i])
        assert alone_lengths.tolist() == [m] and alone.shape[1] == m
        # equal up to the convolution kernels' summation order for another T (~1e-16)
        torch.testing.assert_close(y[i, :m], alone[0], rtol=0, atol=1e-12)
        assert (y[i, m:] == 0).all()  # zero past each output length
        # without lengths (a full sequence) the same as with lengths == T
        torch.testing.assert_close(front(x[i : i + 1, :n])[0], alone, rtol=0, atol=0)


def test_gradients_reach_every_parameter_and_no_padded_input():
    torch.manual_seed(0)
    front = ConvFrontEnd(3, channels=6, kernel_size=5, stride=2, num_layers=2)
    x = torch.randn(3, 20, 3, requires_grad=True)
    lengths = torch.tensor([20, 11, 4])
    y, _ = front(x, lengths)
    y.square().sum().backward()
    for name, param in front.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert x.grad[0].abs().sum() > 0
    assert (x.grad[1, 11:] == 0).all() and (x.grad[2, 4:] == 0).all()
    assert x.grad[1, :11].abs().sum() > 0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"channels": 0}, ValueError, r"channels=0: must be an integer >= 1"),
        ({"kernel_size": 2.5}, TypeError, r"kernel_size=2.5: must be an integer"),
        ({"stride": 0}, ValueError, r"stride=0: must be an integer >= 1"),
        ({"num_layers": True}, TypeError, r"num_layers=True"),
        ({"norm": "yes"}, TypeError, r"norm='yes': must be true or false"),
        ({"dropout": 1.0}, ValueError, r"dropout=1.0: must lie in \[0.0, 1.0\)"),
    ],
)
def test_bad_arguments_are_refused_by_name(kwargs, error, match):
    with pytest.raises(error, match=match):
        ConvFrontEnd(2, **kwargs)


def test_bad_inputs_are_refused_with_the_expected_shapes():
    front = ConvFrontEnd(2, channels=4)
    with pytest.raises(ValueError, match=r"x has shape \(3, 7\), expected \(batch, time, "):
        front(torch.randn(3, 7))
    with pytest.raises(ValueError, match=r"input_size=2"):
        front(torch.randn(3, 7, 5))
    with pytest.raises(ValueError, match=r"lengths has shape \(2,\), expected \(batch,\) = \(3,\)"):
        front(torch.randn(3, 7, 2), torch.tensor([7, 3]))
    for bad in ([7, 0, 3], [8, 7, 3]):  # a length of 0 or past T: refused, not clamped
        with pytest.raises(ValueError, match=r"lengths must lie in \[1, T=7\]"):
            front(torch.randn(3, 7, 2), torch.tensor(bad))


def test_build_frontend_from_a_config():
    assert build_frontend(3, None) is None
    front = build_frontend(3, {"channels": 8, "stride": 3, "_target_": "ignored"})
    assert isinstance(front, ConvFrontEnd)
    assert (front.channels, front.stride, front.kernel_size, front.num_layers) == (8, 3, 5, 2)
    assert isinstance(build_frontend(3, {}), ConvFrontEnd)  # every option at its default
    with pytest.raises(ValueError, match=r"chanels=8: not a front-end option; the options are"):
        build_frontend(3, {"chanels": 8})
    with pytest.raises(TypeError, match=r"frontend='conv': must be a mapping"):
        build_frontend(3, "conv")
