import pytest
import torch
import torch.nn.functional as F

from sensimix_hf.index_linear import index_linear_backend
from sensimix_hf.layers import BinaryLinear, IndexQuantEmbedding, IndexQuantLinear
from sensimix_hf.quantization import (
    binarize,
    binarize_activation_ste,
    binarize_ste,
    fake_index_quantize,
    index_dequantize,
    index_fake_quantize,
    index_quantize,
    index_ranges,
)


BOUNDARY_POINTS = [-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0]
BOUNDARY_MASK = [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]


def test_index_quantize_hand_values():
    weight = torch.tensor([-1.0, 0.0, 0.5, 1.0])
    lo, hi = index_ranges(weight)
    index = index_quantize(weight, lo, hi)
    # (W + 1) * 255 / 2 = [0, 127.5, 191.25, 255]; 127.5 rounds half to even -> 128.
    assert index.dtype == torch.int8
    assert index.tolist() == [-128, 0, 63, 127]
    restored = index_dequantize(index, lo, hi)
    expected = torch.tensor([0.0, 128.0, 191.0, 255.0]) * (2.0 / 255) - 1.0
    assert torch.equal(restored, expected)


@pytest.mark.parametrize("shape", [(1,), (3, 4), (2, 1, 5)], ids=["single", "matrix", "3d"])
def test_constant_tensor_round_trips_exactly(shape):
    weight = torch.full(shape, 0.3)
    lo, hi = index_ranges(weight)
    index = index_quantize(weight, lo, hi)
    assert torch.equal(index, torch.full(shape, -128, dtype=torch.int8))
    restored = index_dequantize(index, lo, hi)
    assert torch.isfinite(restored).all()
    assert torch.equal(restored, weight)


def test_per_row_ranges_use_each_row():
    weight = torch.tensor([[0.0, 1.0, 2.0], [5.0, 5.0, 5.0]])
    lo, hi = index_ranges(weight, per_row=True)
    assert lo.shape == (2, 1)
    assert torch.equal(lo.flatten(), torch.tensor([0.0, 5.0]))
    assert torch.equal(hi.flatten(), torch.tensor([2.0, 5.0]))
    restored = fake_index_quantize(weight, per_row=True)
    assert torch.equal(restored[0], torch.tensor([0.0, 128.0 * 2 / 255, 2.0]))
    assert torch.equal(restored[1], weight[1])


def test_index_error_within_half_step():
    torch.manual_seed(0)
    weight = torch.randn(64, 48)
    restored = fake_index_quantize(weight)
    step = (weight.max() - weight.min()) / 255
    assert (restored - weight).abs().max() <= step / 2 + 1e-6


def test_index_fake_quantize_passes_gradient_straight_through():
    weight = torch.randn(5, 4, requires_grad=True)
    upstream = torch.randn(5, 4)
    (index_fake_quantize(weight) * upstream).sum().backward()
    assert torch.equal(weight.grad, upstream)


def test_binarize_maps_zero_to_plus_one():
    values = torch.tensor([-2.0, -1e-30, -0.0, 0.0, 1e-30, 3.0, float("nan")])
    assert binarize(values).tolist() == [-1.0, -1.0, 1.0, 1.0, 1.0, 1.0, -1.0]


def test_binarize_ste_gradient_window_is_closed():
    values = torch.tensor(BOUNDARY_POINTS, requires_grad=True)
    output = binarize_ste(values)
    assert output.tolist() == [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0, 1.0]
    output.backward(torch.full_like(output, 3.0))
    assert values.grad.tolist() == [3.0 * mask for mask in BOUNDARY_MASK]


def test_binarize_ste_leaves_input_unchanged():
    values = torch.randn(4, 6)
    before = values.clone()
    binarize_ste(values)
    assert torch.equal(values, before)


def test_sign_of_gelu_uses_sign_of_input():
    hidden = torch.tensor([-10.0, -6.0, -1.0, -0.0, 0.0, 0.3, 4.0], requires_grad=True)
    # Float GELU underflows to -0.0 for very negative inputs, which `>= 0` would read as +1.
    assert binarize(F.gelu(torch.tensor([-10.0]))).item() == 1.0
    output = binarize_activation_ste(hidden, F.gelu)
    assert output.tolist() == [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0, 1.0]

    output.backward(torch.ones_like(output))
    reference = hidden.detach().clone().requires_grad_(True)
    activated = F.gelu(reference)
    inside = (activated.detach().abs() <= 1).float()
    (expected,) = torch.autograd.grad(activated, reference, inside)
    assert torch.allclose(hidden.grad, expected)
    # GELU(4) = 3.9999 is outside the window, so its gradient is cut.
    assert hidden.grad[-1].item() == 0.0


@pytest.mark.parametrize("scale_mode", ["none", "row"])
def test_binary_linear_matches_formula(scale_mode):
    torch.manual_seed(1)
    layer = BinaryLinear(10, 3, scale_mode=scale_mode)
    layer.binary = True
    inputs = torch.randn(4, 10)
    inputs[0, 0] = 0.0
    signs_x = torch.where(inputs >= 0, 1.0, -1.0)
    signs_w = torch.where(layer.weight >= 0, 1.0, -1.0)
    expected = signs_x @ signs_w.T
    if scale_mode == "row":
        expected = expected * (layer.weight.abs().mean(dim=1) / 10**0.5)
    expected = expected + layer.bias
    assert torch.allclose(layer(inputs), expected, atol=1e-6)


def test_binary_linear_full_precision_equals_linear():
    layer = BinaryLinear(6, 2)
    inputs = torch.randn(3, 6)
    assert torch.equal(layer(inputs), F.linear(inputs, layer.weight, layer.bias))


def test_binary_linear_weight_gradient_is_clipped():
    layer = BinaryLinear(7, 1, bias=False, scale_mode="none")
    layer.binary = True
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([BOUNDARY_POINTS]))
    inputs = torch.ones(1, 7)
    layer(inputs).sum().backward()
    assert layer.weight.grad.flatten().tolist() == BOUNDARY_MASK


def test_binary_linear_input_gradient_is_clipped():
    layer = BinaryLinear(7, 1, bias=False, scale_mode="none")
    layer.binary = True
    with torch.no_grad():
        layer.weight.fill_(0.5)
    inputs = torch.tensor([BOUNDARY_POINTS], requires_grad=True)
    layer(inputs).sum().backward()
    assert inputs.grad.flatten().tolist() == BOUNDARY_MASK


def test_index_quant_linear_uses_quantized_weight():
    torch.manual_seed(2)
    layer = IndexQuantLinear(8, 4)
    inputs = torch.randn(2, 8)
    expected = F.linear(inputs, fake_index_quantize(layer.weight), layer.bias)
    assert torch.equal(layer(inputs), expected)
    layer(inputs).sum().backward()
    assert layer.weight.grad is not None


def test_index_quant_embedding_uses_quantized_table():
    torch.manual_seed(3)
    embedding = IndexQuantEmbedding(11, 4, padding_idx=0)
    ids = torch.tensor([[0, 3, 10]])
    expected = fake_index_quantize(embedding.weight)[ids]
    assert torch.equal(embedding(ids), expected)


def test_packed_linear_equals_training_form():
    torch.manual_seed(4)
    layer = IndexQuantLinear(9, 5, per_row=True)
    inputs = torch.randn(3, 9)
    packed = layer.pack()
    assert packed.weight_index.dtype == torch.int8
    with index_linear_backend("dequantized"):
        assert torch.equal(packed(inputs), layer(inputs))


def test_packed_embedding_equals_training_form():
    torch.manual_seed(5)
    embedding = IndexQuantEmbedding(13, 6, per_row=True)
    ids = torch.tensor([[1, 2, 12], [0, 0, 5]])
    packed = embedding.pack()
    assert torch.equal(packed(ids), embedding(ids))


def test_packed_binary_linear_equals_training_form():
    torch.manual_seed(6)
    layer = BinaryLinear(37, 5)
    layer.binary = True
    inputs = torch.randn(4, 37)
    packed = layer.pack()
    assert packed.weight_bits.dtype == torch.uint8
    assert packed.weight_bits.shape == (5, 5)
    assert torch.allclose(packed(inputs), layer(inputs), atol=1e-5)


def test_pack_of_full_precision_binary_linear_raises():
    layer = BinaryLinear(4, 2)
    with pytest.raises(ValueError, match="binary=False"):
        layer.pack()
