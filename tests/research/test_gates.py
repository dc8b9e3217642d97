"""Gate inspection: cuDNN-trained weights recorded through the custom core, the callback and
``lstmkit-inspect``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from lstmkit.nn import GateTrace
from lstmkit.research.gates import gate_summary, record_task_gates, save_gate_report
from lstmkit.tasks import SequenceClassifier
from run_helpers import compose_config


def _trained(backend: str, **encoder) -> SequenceClassifier:
    """A classifier after a few optimizer steps on random data (weights away from init)."""
    torch.manual_seed(0)
    model = SequenceClassifier(
        {"backend": backend, "hidden_size": 12, "num_layers": 2, **encoder},
        num_classes=3,
        vocab_size=9,
        embedding_dim=5,
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = torch.randint(0, 9, (16, 11)), torch.randint(0, 3, (16,))
    lengths = torch.randint(3, 12, (16,))
    for _ in range(5):
        optimizer.zero_grad()
        model.compute_loss(model(x, lengths), y, lengths).backward()
        optimizer.step()
    return model.eval()


@pytest.mark.slow
@pytest.mark.parametrize("bidirectional", [False, True])
def test_cudnn_trained_gates_equal_the_custom_core(bidirectional):
    cudnn = _trained("cudnn", bidirectional=bidirectional)
    custom = SequenceClassifier(
        {"backend": "custom", "hidden_size": 12, "num_layers": 2, "bidirectional": bidirectional},
        num_classes=3,
        vocab_size=9,
        embedding_dim=5,
    ).eval()
    custom.load_state_dict(cudnn.state_dict())
    x, lengths = torch.randint(0, 9, (4, 11)), torch.tensor([11, 7, 3, 9])
    a = record_task_gates(cudnn, x, lengths)
    b = record_task_gates(custom, x, lengths)
    for name, value in a.as_dict().items():
        torch.testing.assert_close(value, getattr(b, name), atol=1e-6, rtol=1e-5, msg=name)
    # ... and the recording is what cuDNN computed: h at each sequence's last step is h_n
    with torch.no_grad():
        _, (h_n, _) = cudnn.encoder(cudnn.embedding(x), lengths=lengths)
    last = a.hidden[:, torch.arange(4), lengths - 1]  # (L*D, B, H)
    directions = 2 if bidirectional else 1
    forward_rows = torch.arange(0, h_n.shape[0], directions)
    torch.testing.assert_close(last[forward_rows], h_n[forward_rows], atol=1e-5, rtol=1e-5)
    assert a.forget_gate.shape == (2 * directions, 4, 11, 12)


def test_gate_summary_counts_saturation_over_valid_steps():
    gates = torch.full((1, 2, 4, 5), 0.5)
    gates[0, 0, :2] = 0.99  # sequence 0, steps 0-1: saturated
    gates[0, 1, 3] = 0.01  # sequence 1, step 3: past its length, must not count
    zeros = torch.zeros_like(gates)
    trace = GateTrace(gates, gates, zeros, gates, zeros, zeros)
    summary = gate_summary(trace, torch.tensor([4, 3]), threshold=0.1)
    assert summary["saturated_fraction"]["forget_gate"] == pytest.approx(2 / 7)
    assert summary["saturated_by_step"]["input_gate"].tolist() == [0.5, 0.5, 0.0, 0.0]
    assert torch.isnan(summary["forget_gate_mean"][1, 3])


@pytest.mark.slow
def test_save_gate_report_writes_pngs_and_json(tmp_path):
    model = _trained("cudnn")
    batch = (torch.randint(0, 9, (2, 8)), torch.zeros(2), torch.tensor([8, 5]))
    files = save_gate_report(model, batch, tmp_path, sample_ids=[4, 7])
    names = sorted(p.name for p in files)
    assert names == [
        "gate_summary.json",
        "gate_summary.png",
        "gates_sample4.png",
        "gates_sample7.png",
    ]
    payload = json.loads((tmp_path / "gate_summary.json").read_text())
    assert payload["samples"] == [4, 7] and payload["lengths"] == [8, 5]
    assert len(payload["forget_gate_mean_by_step"][1]) == 8
    assert payload["forget_gate_mean_by_step"][1][5] is None  # past the length


@pytest.mark.slow
def test_callback_through_lstmkit_train(cfg_factory):
    from lstmkit.cli.train import train

    cfg = cfg_factory("callbacks=gate_inspection", "data.seq_len=10", "plots=false")
    train(cfg)
    folder = Path(cfg.paths.output_dir) / "gates"
    assert {p.name for p in folder.iterdir()} == {
        "gate_summary.json",
        "gate_summary.png",
        "gates_sample0.png",
        "gates_sample1.png",
        "gates_sample2.png",
    }


@pytest.mark.slow
def test_lstmkit_inspect_on_a_finished_run(adding_run, tmp_path):
    from lstmkit.cli.inspect import inspect_gates
    from lstmkit.runtime.config_checks import ConfigError

    cfg = compose_config(
        tmp_path, [f"ckpt_path={adding_run}", "samples=[1,3]"], "inspect", shrink=False
    )
    result = inspect_gates(cfg)
    assert sorted(p.rsplit("/", 1)[-1] for p in result["files"]) == [
        "gate_summary.json",
        "gate_summary.png",
        "gates_sample1.png",
        "gates_sample3.png",
    ]
    assert 0.0 < result["summary"]["forget_gate_mean_overall"] < 1.0
    bad = compose_config(
        tmp_path, [f"ckpt_path={adding_run}", "samples=[100000]"], "inspect", False
    )
    with pytest.raises(ConfigError, match="samples"):
        inspect_gates(bad)
    GlobalHydra.instance().clear()


@pytest.mark.slow  # end to end through the configs; make test runs it
def test_gates_of_a_model_with_a_front_end_are_over_the_encoder_steps(tmp_path):
    """With a convolutional front end the encoder reads T' = front.output_length(T) steps: the
    recording, its last valid step (h_n) and the report use those steps and lengths."""
    torch.manual_seed(0)
    model = SequenceClassifier(
        {"backend": "cudnn", "hidden_size": 6}, num_classes=3, input_size=2,
        frontend={"channels": 4, "kernel_size": 5, "stride": 2, "num_layers": 2},
    ).eval()  # fmt: skip
    x, lengths = torch.randn(3, 30, 2), torch.tensor([30, 13, 4])
    trace = record_task_gates(model, x, lengths)
    steps = model.frontend.output_length(lengths)  # 30 -> 15 -> 8; 13 -> 7 -> 4; 4 -> 2 -> 1
    assert steps.tolist() == [8, 4, 1] and trace.forget_gate.shape == (1, 3, 8, 6)
    with torch.no_grad():
        y, short = model.frontend(x, lengths)
        _, (h_n, _) = model.encoder(y, lengths=short)
    torch.testing.assert_close(trace.hidden[0, torch.arange(3), steps - 1], h_n[0], atol=1e-5,
                               rtol=1e-5)  # fmt: skip
    save_gate_report(model, (x, torch.zeros(3), lengths), tmp_path)
    report = json.loads((tmp_path / "gate_summary.json").read_text())
    assert report["lengths"] == [8, 4, 1]
    assert [sum(v is not None for v in row) for row in report["forget_gate_mean_by_step"]] == [
        8, 4, 1
    ]  # fmt: skip
