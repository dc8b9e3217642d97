"""The fast paths' one settings object: read from the environment in one place, switched for a
block by ``flags``, restored afterwards; the kept workspace bounded by it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lstmkit.nn import CustomLSTM
from lstmkit.nn.fastpath import fused
from lstmkit.nn.settings import ENVIRONMENT, FastPathSettings, flags, from_environment, settings


def test_environment_is_read_into_typed_fields():
    read = from_environment(
        {
            "LSTMKIT_NATIVE": "0",
            "LSTMKIT_NATIVE_LOOP": "false",
            "LSTMKIT_NATIVE_GEMM": "1",
            "LSTMKIT_TRITON": "off",
            "LSTMKIT_WORKSPACE_LIMIT_MB": "64",
            "LSTMKIT_CACHE_DIR": "/tmp/kernels",
        }
    )
    assert read.native is False and read.native_loop is False and read.own_gemm is True
    assert read.triton is False and read.workspace_limit_mb == 64
    assert read.cache_dir == Path("/tmp/kernels")
    assert from_environment({}) == FastPathSettings()  # unset: the defaults


@pytest.mark.parametrize(
    ("variable", "value", "phrase"),
    [("LSTMKIT_NATIVE", "maybe", "use 1 or 0"), ("LSTMKIT_WORKSPACE_LIMIT_MB", "lots", "integer")],
)
def test_a_bad_environment_value_names_the_variable(variable, value, phrase):
    with pytest.raises(ValueError, match=f"{variable}=.*{phrase}"):
        from_environment({variable: value})


def test_every_variable_is_in_the_docs_table():
    table = (Path(__file__).resolve().parents[2] / "docs" / "cores.md").read_text()
    for name, variable in ENVIRONMENT.items():
        assert f"`{name}` | `{variable}`" in table, name


def test_flags_switch_for_a_block_and_restore_even_on_error():
    before = (settings.native, settings.onednn_min_macs)
    with pytest.raises(RuntimeError, match="inside"), flags(native=False, onednn_min_macs=0):
        assert settings.native is False and settings.onednn_min_macs == 0
        raise RuntimeError("inside")
    assert (settings.native, settings.onednn_min_macs) == before
    with pytest.raises(TypeError, match="unknown fast-path setting"), flags(nativ=False):
        pass


def test_kept_workspace_is_bounded_and_released():
    torch.manual_seed(0)
    model = CustomLSTM(4, 6, layer_norm=True)
    x = torch.randn(7, 3, 4, requires_grad=True)
    fused.release_workspace()
    with flags(workspace_limit_mb=0):
        model(x)[0].sum().backward()
    assert not getattr(fused._WORKSPACE, "buffers", {})  # nothing kept over the bound
    model(x)[0].sum().backward()
    assert fused._WORKSPACE.buffers  # kept under the default bound
    fused.release_workspace()
    assert not hasattr(fused._WORKSPACE, "buffers")
