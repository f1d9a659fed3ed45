import pytest
import torch
import torch.nn.functional as F

from sensimix_hf.index_linear import (
    get_index_linear_backend,
    index_linear_backend,
    is_int8_gemm_available,
    resolve_backend,
    set_index_linear_backend,
)
from sensimix_hf.layers import IndexQuantLinear


def packed_layer(per_row: bool, seed: int = 0, constant: bool = False):
    torch.manual_seed(seed)
    layer = IndexQuantLinear(48, 20, per_row=per_row)
    if constant:
        with torch.no_grad():
            layer.weight.fill_(0.125)
    return layer, layer.pack()


@pytest.mark.parametrize("per_row", [False, True], ids=["tensor", "channel"])
def test_on_the_fly_equals_dequantized(per_row):
    _, packed = packed_layer(per_row)
    inputs = torch.randn(2, 7, 48)
    with index_linear_backend("dequantized"):
        expected = packed(inputs)
    with index_linear_backend("on_the_fly"):
        assert torch.equal(packed(inputs), expected)


@pytest.mark.skipif(not is_int8_gemm_available(), reason="PyTorch has no quantized CPU engine here")
@pytest.mark.parametrize("per_row", [False, True], ids=["tensor", "channel"])
@pytest.mark.parametrize("constant", [False, True], ids=["random", "constant"])
def test_int8_backend_is_close_to_float(per_row, constant):
    layer, packed = packed_layer(per_row, constant=constant)
    inputs = torch.randn(3, 5, 48)
    with torch.no_grad():
        expected = layer(inputs)
    with index_linear_backend("int8"):
        output = packed(inputs)
    assert output.shape == expected.shape
    # The activations are quantized to 8 bits per batch, so the error is a small fraction of the output scale.
    relative = (output - expected).norm() / expected.norm()
    assert relative < 0.02


def test_cache_follows_loaded_weights():
    _, packed = packed_layer(False)
    _, other = packed_layer(False, seed=1)
    inputs = torch.randn(4, 48)
    with index_linear_backend("dequantized"):
        packed(inputs)
        packed.load_state_dict(other.state_dict())
        assert torch.equal(packed(inputs), other(inputs))


def test_backend_names_are_validated():
    with pytest.raises(ValueError, match="'gpu'"):
        set_index_linear_backend("gpu")
    with pytest.raises(ValueError, match="'fast'"):
        with index_linear_backend("fast"):
            pass


def test_backend_context_restores_previous():
    before = get_index_linear_backend()
    with index_linear_backend("on_the_fly"):
        assert get_index_linear_backend() == "on_the_fly"
    assert get_index_linear_backend() == before


def test_auto_resolves_to_exact_backend():
    with index_linear_backend("auto"):
        assert resolve_backend(torch.zeros(1, 4)) == "dequantized"
        assert resolve_backend(torch.zeros(1, 4, device="meta")) == "dequantized"


def test_int8_backend_falls_back_off_cpu():
    with index_linear_backend("int8"):
        assert resolve_backend(torch.zeros(1, 4, device="meta")) == "dequantized"


def test_int8_backend_keeps_float_path_for_half_inputs():
    layer, packed = packed_layer(False)
    inputs = torch.randn(2, 48, dtype=torch.bfloat16)
    with index_linear_backend("int8"):
        output = packed(inputs)
    assert output.dtype == torch.bfloat16
    expected = F.linear(inputs, packed.dequantized_weight(torch.bfloat16), packed.bias.to(torch.bfloat16))
    assert torch.equal(output, expected)
