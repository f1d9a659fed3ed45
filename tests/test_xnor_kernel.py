import gc
import logging
import os
import re

import pytest
import torch

from sensimix_hf import xnor_kernel
from sensimix_hf.bitpacking import pack_bits, sign_bits, unpack_bits
from sensimix_hf.xnor_kernel import (
    BACKENDS,
    binary_ffn,
    binary_linear,
    binary_linear_from_bits,
    cpu_kernel_variants,
    get_kernel_backend,
    is_cpu_kernel_available,
    kernel_backend,
    prepare_weight,
    set_kernel_backend,
)


os.environ.setdefault("HF_HUB_OFFLINE", "1")

K_VALUES = [1, 7, 63, 64, 65, 127, 384, 1000]
N_VALUES = [1, 3, 17]
ROW_VALUES = [1, 5, 33]
LOW_PRECISION = [torch.float16, torch.bfloat16]


def _variants():
    # A C++ compiler exists where these tests run, so the extension must build: the variants are
    # listed here (and the suite fails) instead of being skipped.
    return cpu_kernel_variants() if is_cpu_kernel_available() else ["extension-missing"]


CPU_VARIANTS = _variants()


@pytest.fixture(autouse=True)
def restore_backend_state(monkeypatch):
    """Keep the default backend, the environment and the warn-once memory local to each test."""
    monkeypatch.delenv(xnor_kernel.ENV_VARIABLE, raising=False)
    monkeypatch.setattr(xnor_kernel, "_default_backend", None)
    monkeypatch.setattr(xnor_kernel, "_warned_messages", set())


def _random_case(rows, in_features, out_features, seed, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, in_features, generator=generator, dtype=torch.float64)
    # Exact zeros and negative zeros must count as +1.
    x[torch.rand(rows, in_features, generator=generator) < 0.15] = 0.0
    x[torch.rand(rows, in_features, generator=generator) < 0.15] = -0.0
    weight = torch.randn(out_features, in_features, generator=generator)
    return x.to(dtype), weight


def _signed_dot(x, weight):
    """Compute b(x) @ b(W).T in float64 straight from the float values, without any packing."""
    x_signs = torch.where(x.double() >= 0, 1.0, -1.0)
    w_signs = torch.where(weight.double() >= 0, 1.0, -1.0)
    return x_signs @ w_signs.T


def _cpu(x2d, weight_bits, in_features, scale, bias, bits_output, variant):
    return xnor_kernel._cpu_linear(
        x2d, weight_bits, in_features, weight_bits.shape[0], scale, bias, bits_output, x2d.dtype, variant
    )


# ---------------------------------------------------------------------------------------------
# Reference path


def test_reference_matches_float_product():
    x, weight = _random_case(9, 70, 6, seed=1)
    with kernel_backend("reference"):
        out = binary_linear(x, sign_bits(weight), 70)
    assert torch.equal(out, _signed_dot(x, weight))


def test_reference_zero_and_nan_inputs():
    weight = torch.randn(5, 11, generator=torch.Generator().manual_seed(2))
    weight_sum = torch.where(weight >= 0, 1.0, -1.0).sum(dim=1)
    with kernel_backend("reference"):
        zeros = binary_linear(torch.zeros(1, 11), sign_bits(weight), 11)
        negative_zeros = binary_linear(torch.full((1, 11), -0.0), sign_bits(weight), 11)
        nans = binary_linear(torch.full((1, 11), float("nan")), sign_bits(weight), 11)
    assert torch.equal(zeros[0], weight_sum)
    assert torch.equal(negative_zeros[0], weight_sum)
    assert torch.equal(nans[0], -weight_sum)


# ---------------------------------------------------------------------------------------------
# Compiled CPU kernel against the reference


def test_cpu_kernel_builds_here():
    assert is_cpu_kernel_available(), xnor_kernel._cpu_state.error
    assert "generic" in cpu_kernel_variants()


@pytest.mark.parametrize("variant", CPU_VARIANTS)
@pytest.mark.parametrize("in_features", K_VALUES, ids=lambda k: f"K={k}")
def test_cpu_kernel_exact_dot(variant, in_features):
    for out_features in N_VALUES:
        for rows in ROW_VALUES:
            x, weight = _random_case(rows, in_features, out_features, seed=in_features * 100 + out_features + rows)
            weight_bits = sign_bits(weight)
            out = _cpu(x, weight_bits, in_features, None, None, False, variant)
            case = f"rows={rows} N={out_features}"
            assert out.dtype == torch.float64, case
            assert torch.equal(out, _signed_dot(x, weight)), case


@pytest.mark.parametrize("variant", CPU_VARIANTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64], ids=str)
def test_cpu_kernel_scale_and_bias(variant, dtype):
    rows, in_features, out_features = 37, 130, 21
    x, weight = _random_case(rows, in_features, out_features, seed=3, dtype=dtype)
    generator = torch.Generator().manual_seed(4)
    scale = torch.rand(out_features, generator=generator) / 10
    bias = torch.randn(out_features, generator=generator)
    weight_bits = sign_bits(weight)

    out = _cpu(x, weight_bits, in_features, scale, bias, False, variant)
    with kernel_backend("reference"):
        expected = binary_linear(x, weight_bits, in_features, scale, bias)
    assert out.dtype == dtype
    # Both paths round once per operation in float32 (float64 for float64), so they agree exactly.
    assert torch.equal(out, expected)
    exact = _signed_dot(x, weight) * scale.double() + bias.double()
    tolerance = {torch.float16: 1e-2, torch.bfloat16: 1e-1}.get(dtype, 1e-5)
    torch.testing.assert_close(out.double(), exact, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("variant", CPU_VARIANTS)
def test_cpu_kernel_special_inputs(variant):
    in_features = 70
    weight = torch.randn(9, in_features, generator=torch.Generator().manual_seed(5))
    weight_sum = torch.where(weight >= 0, 1.0, -1.0).sum(dim=1)
    x = torch.stack(
        [
            torch.zeros(in_features),
            torch.full((in_features,), -0.0),
            torch.full((in_features,), float("nan")),
            torch.full((in_features,), float("-inf")),
        ]
    )
    for dtype in [torch.float32, torch.float16, torch.bfloat16, torch.float64]:
        out = _cpu(x.to(dtype), sign_bits(weight), in_features, None, None, False, variant)
        expected = torch.stack([weight_sum, weight_sum, -weight_sum, -weight_sum]).to(dtype)
        assert torch.equal(out, expected), str(dtype)


@pytest.mark.parametrize("variant", CPU_VARIANTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64], ids=str)
def test_cpu_bits_output_matches_sign_bits(variant, dtype):
    for in_features, out_features, rows in [(50, 21, 9), (384, 64, 6), (7, 1, 3), (65, 17, 33)]:
        x, weight = _random_case(rows, in_features, out_features, seed=in_features + out_features, dtype=dtype)
        generator = torch.Generator().manual_seed(6)
        scale = torch.randn(out_features, generator=generator)
        bias = torch.randn(out_features, generator=generator)
        weight_bits = sign_bits(weight)
        values = _cpu(x, weight_bits, in_features, scale, bias, False, variant)
        bits = _cpu(x, weight_bits, in_features, scale, bias, True, variant)
        assert bits.shape == (rows, (out_features + 7) // 8)
        assert torch.equal(bits, sign_bits(values)), f"K={in_features} N={out_features}"


@pytest.mark.parametrize("variant", CPU_VARIANTS)
@pytest.mark.parametrize("dtype", LOW_PRECISION, ids=str)
def test_bits_output_negative_zero_is_positive(variant, dtype):
    # With this scale every float32 output is a nonzero subnormal that rounds to +0.0 or -0.0 in
    # float16 and bfloat16, and b(-0.0) = +1.
    in_features, out_features = 64, 12
    x, weight = _random_case(5, in_features, out_features, seed=7, dtype=dtype)
    scale = torch.full((out_features,), 1e-43)
    bits = _cpu(x, sign_bits(weight), in_features, scale, None, True, variant)
    assert torch.equal(bits, pack_bits(torch.ones(5, out_features, dtype=torch.bool)))


@pytest.mark.parametrize("variant", CPU_VARIANTS)
def test_cpu_kernel_multithreaded_shape(variant):
    # Large enough for at::parallel_for to split the work over two threads.
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        x, weight = _random_case(515, 1000, 70, seed=8, dtype=torch.float32)
        out = _cpu(x, sign_bits(weight), 1000, None, None, False, variant)
    finally:
        torch.set_num_threads(previous_threads)
    assert torch.equal(out.double(), _signed_dot(x, weight))


def test_cpu_kernel_rejects_unknown_variant():
    x, weight = _random_case(2, 10, 3, seed=9, dtype=torch.float32)
    layout = xnor_kernel._cpu_weight_layout(sign_bits(weight), 10)
    ops = xnor_kernel._cpu_ops()
    with pytest.raises(RuntimeError, match="variant 7 is not supported"):
        ops.xnor_linear(x, layout, 10, 3, None, None, False, torch.float32, 7)


# ---------------------------------------------------------------------------------------------
# Public functions on the default backend


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_binary_linear_keeps_leading_dimensions(backend):
    x, weight = _random_case(6, 40, 5, seed=10, dtype=torch.float32)
    x3d = x.reshape(2, 3, 40)
    with kernel_backend(backend):
        out = binary_linear(x3d, sign_bits(weight), 40)
        bits = binary_linear(x3d, sign_bits(weight), 40, output="bits")
        empty = binary_linear(torch.zeros(0, 40), sign_bits(weight), 40)
    assert out.shape == (2, 3, 5)
    assert torch.equal(out.reshape(6, 5).double(), _signed_dot(x, weight))
    assert bits.shape == (2, 3, 1)
    assert torch.equal(bits, sign_bits(out))
    assert empty.shape == (0, 5)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_binary_linear_non_contiguous_input(backend):
    x, weight = _random_case(8, 33, 4, seed=11, dtype=torch.float32)
    strided = torch.cat([x, x], dim=1)[:, ::2]
    with kernel_backend(backend):
        out = binary_linear(strided, sign_bits(weight), 33)
    assert torch.equal(out.double(), _signed_dot(strided, weight))


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_from_bits_matches_float_input(backend):
    for in_features in [9, 64, 100]:
        x, weight = _random_case(7, in_features, 11, seed=in_features, dtype=torch.float32)
        scale = torch.rand(11)
        bias = torch.randn(11)
        x_bits = sign_bits(x)
        # Set padding bits must be ignored.
        if in_features % 8:
            x_bits[:, -1] |= 0xFF << (in_features % 8) & 0xFF
        with kernel_backend(backend):
            expected = binary_linear(x, sign_bits(weight), in_features, scale, bias)
            out = binary_linear_from_bits(x_bits, sign_bits(weight), in_features, scale, bias, dtype=torch.float32)
            bits = binary_linear_from_bits(x_bits, sign_bits(weight), in_features, scale, bias, output="bits")
        assert torch.equal(out, expected), f"K={in_features}"
        assert torch.equal(bits, sign_bits(expected)), f"K={in_features}"


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_weight_padding_bits_are_ignored(backend):
    x, weight = _random_case(4, 13, 6, seed=12, dtype=torch.float32)
    clean = sign_bits(weight)
    dirty = clean.clone()
    dirty[:, -1] |= 0b11100000
    with kernel_backend(backend):
        assert torch.equal(binary_linear(x, dirty, 13), binary_linear(x, clean, 13))


@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_binary_ffn_matches_two_linears(backend, dtype):
    hidden, intermediate, rows = 48, 100, 10
    x, weight1 = _random_case(rows, hidden, intermediate, seed=13, dtype=dtype)
    weight2 = torch.randn(hidden, intermediate, generator=torch.Generator().manual_seed(14))
    generator = torch.Generator().manual_seed(15)
    scale1, bias1 = torch.rand(intermediate, generator=generator), torch.randn(intermediate, generator=generator)
    scale2, bias2 = torch.rand(hidden, generator=generator), torch.randn(hidden, generator=generator)
    bits1, bits2 = sign_bits(weight1), sign_bits(weight2)
    with kernel_backend(backend):
        fused = binary_ffn(x, bits1, bits2, scale1, bias1, scale2, bias2)
        hidden_values = binary_linear(x, bits1, hidden, scale1, bias1)
        unfused = binary_linear(hidden_values, bits2, intermediate, scale2, bias2)
    assert fused.dtype == dtype
    assert torch.equal(fused, unfused)


def test_cpu_and_reference_agree_through_public_api():
    x, weight = _random_case(20, 200, 30, seed=16, dtype=torch.float16)
    scale, bias = torch.rand(30), torch.randn(30)
    with kernel_backend("cpu"):
        compiled = binary_linear(x, sign_bits(weight), 200, scale, bias)
    with kernel_backend("reference"):
        reference = binary_linear(x, sign_bits(weight), 200, scale, bias)
    assert torch.equal(compiled, reference)


def test_grad_request_warns_once(caplog):
    x, weight = _random_case(3, 16, 4, seed=17, dtype=torch.float32)
    x.requires_grad_(True)
    with caplog.at_level(logging.WARNING, logger=xnor_kernel.__name__):
        first = binary_linear(x, sign_bits(weight), 16)
        binary_linear(x, sign_bits(weight), 16)
    assert not first.requires_grad
    assert sum("inference kernel" in record.getMessage() for record in caplog.records) == 1


# ---------------------------------------------------------------------------------------------
# Argument checks


def test_binary_linear_rejects_bad_arguments():
    weight_bits = sign_bits(torch.randn(4, 10))
    x = torch.randn(2, 10)
    with pytest.raises(TypeError, match="float16, bfloat16, float32 or float64"):
        binary_linear(torch.ones(2, 10, dtype=torch.int32), weight_bits, 10)
    with pytest.raises(ValueError, match=r"\[\.\.\., 10\]"):
        binary_linear(torch.randn(2, 11), weight_bits, 10)
    with pytest.raises(ValueError, match="weight_bits"):
        binary_linear(x, weight_bits.to(torch.int32), 10)
    with pytest.raises(ValueError, match="weight_bits"):
        binary_linear(torch.randn(2, 17), weight_bits, 17)
    with pytest.raises(ValueError, match="in_features"):
        binary_linear(x, weight_bits, 0)
    with pytest.raises(ValueError, match=r"scale must have shape \[4\]"):
        binary_linear(x, weight_bits, 10, scale=torch.ones(5))
    with pytest.raises(TypeError, match="bias"):
        binary_linear(x, weight_bits, 10, bias=torch.ones(4, dtype=torch.int64))
    with pytest.raises(ValueError, match="output"):
        binary_linear(x, weight_bits, 10, output="signs")
    with pytest.raises(ValueError, match="meta"):
        binary_linear(x, weight_bits.to("meta"), 10)


def test_binary_linear_from_bits_rejects_bad_arguments():
    weight_bits = sign_bits(torch.randn(4, 10))
    with pytest.raises(ValueError, match="x_bits must be uint8"):
        binary_linear_from_bits(torch.randn(2, 10), weight_bits, 10)
    with pytest.raises(ValueError, match=r"\[\.\.\., 2\]"):
        binary_linear_from_bits(torch.zeros(2, 3, dtype=torch.uint8), weight_bits, 10)
    with pytest.raises(TypeError, match="dtype"):
        binary_linear_from_bits(torch.zeros(2, 2, dtype=torch.uint8), weight_bits, 10, dtype=torch.int32)


def test_prepared_weight_rejects_other_in_features():
    prepared = prepare_weight(sign_bits(torch.randn(4, 10)), 10)
    with pytest.raises(ValueError, match="prepared for in_features=10"):
        binary_linear_from_bits(torch.zeros(2, 2, dtype=torch.uint8), prepared, 9)


# ---------------------------------------------------------------------------------------------
# Weight layouts and their cache


def test_cpu_layout_interleaves_groups():
    in_features, out_features = 130, 19
    bits = sign_bits(torch.randn(out_features, in_features, generator=torch.Generator().manual_seed(18)))
    layout = xnor_kernel._cpu_weight_layout(bits, in_features)
    assert layout.dtype == torch.int64
    assert layout.shape == (4, 3, 8)
    positive = unpack_bits(bits, in_features)
    for row in [0, 7, 8, 18]:
        for word in range(3):
            value = int(layout[row // 8, word, row % 8]) & (2**64 - 1)
            expected = sum(1 << k for k in range(64) if word * 64 + k < in_features and positive[row, word * 64 + k])
            assert value == expected, f"row {row} word {word}"
    assert torch.count_nonzero(layout[2, :, 3:]) == 0
    assert torch.count_nonzero(layout[3]) == 0


def test_cuda_layout_gives_exact_dot():
    # Emulates the CUDA kernel's arithmetic on its int32 words, because no GPU runs here.
    in_features, out_features = 77, 10
    x, weight = _random_case(6, in_features, out_features, seed=19, dtype=torch.float32)
    weight_bits = sign_bits(weight)
    weight_bits[:, -1] |= 0b11100000
    x_words = xnor_kernel._to_words(sign_bits(x), in_features, 4, torch.int32)
    w_words = xnor_kernel._cuda_weight_layout(weight_bits, in_features)
    assert x_words.shape == (6, 3)
    assert w_words.shape == (out_features, 3)
    xor_bytes = (x_words.unsqueeze(1) ^ w_words.unsqueeze(0)).contiguous().view(torch.uint8)
    popcount = unpack_bits(xor_bytes, xor_bytes.shape[-1] * 8).sum(dim=-1)
    assert torch.equal((in_features - 2 * popcount).double(), _signed_dot(x, weight))


class _EmulatedCudaOps:
    """Stand-in for the compiled CUDA operator that computes on CPU with the same arguments."""

    def __init__(self):
        self.input_dtypes = []

    def xnor_linear(self, x, weight, in_features, out_features, scale, bias, bits_output, out_dtype):
        self.input_dtypes.append(x.dtype)
        opmath = torch.float64 if out_dtype == torch.float64 else torch.float32
        assert weight.dtype == torch.int32
        assert weight.shape == (out_features, (in_features + 31) // 32)
        assert scale is None or scale.dtype == opmath
        assert bias is None or bias.dtype == opmath
        if x.dtype == torch.int32:
            x_words = x
        else:
            x_words = xnor_kernel._to_words(sign_bits(x), in_features, 4, torch.int32)
        xor_bytes = (x_words.unsqueeze(1) ^ weight.unsqueeze(0)).contiguous().view(torch.uint8)
        popcount = unpack_bits(xor_bytes, xor_bytes.shape[-1] * 8).sum(dim=-1)
        values = (in_features - 2 * popcount).to(opmath)
        if scale is not None:
            values = values * scale
        if bias is not None:
            values = values + bias
        out = values.to(out_dtype)
        return sign_bits(out) if bits_output else out


def test_cuda_path_arguments_match_reference(monkeypatch):
    emulated = _EmulatedCudaOps()
    monkeypatch.setattr(xnor_kernel, "_cuda_ops", lambda: emulated)
    hidden, intermediate = 45, 70
    x, weight1 = _random_case(6, hidden, intermediate, seed=26, dtype=torch.bfloat16)
    weight2 = torch.randn(hidden, intermediate, generator=torch.Generator().manual_seed(27))
    scale1, bias1 = torch.rand(intermediate), torch.randn(intermediate)
    scale2, bias2 = torch.rand(hidden), torch.randn(hidden)
    arguments = (x, sign_bits(weight1), sign_bits(weight2), scale1, bias1, scale2, bias2)
    with kernel_backend("reference"):
        expected_linear = binary_linear(x, sign_bits(weight1), hidden, scale1, bias1)
        expected_ffn = binary_ffn(*arguments)
    monkeypatch.setattr(xnor_kernel, "_select_backend", lambda device: "cuda")
    assert torch.equal(binary_linear(x, sign_bits(weight1), hidden, scale1, bias1), expected_linear)
    assert torch.equal(binary_ffn(*arguments), expected_ffn)
    assert emulated.input_dtypes == [torch.bfloat16, torch.bfloat16, torch.int32]


def test_layout_cache_follows_in_place_changes():
    x, weight = _random_case(3, 20, 5, seed=20, dtype=torch.float32)
    weight_bits = sign_bits(weight)
    with kernel_backend("cpu"):
        before = binary_linear(x, weight_bits, 20)
        weight_bits.copy_(sign_bits(-weight))
        after = binary_linear(x, weight_bits, 20)
    assert torch.equal(before, _signed_dot(x, weight).float())
    assert torch.equal(after, -before)


def test_layout_cache_entry_dies_with_tensor():
    x, weight = _random_case(3, 20, 5, seed=21, dtype=torch.float32)
    weight_bits = sign_bits(weight)
    key = id(weight_bits)
    with kernel_backend("cpu"):
        binary_linear(x, weight_bits, 20)
    assert key in xnor_kernel._tensor_layouts
    del weight_bits
    gc.collect()
    assert key not in xnor_kernel._tensor_layouts


def test_prepared_weight_matches_plain_bits():
    x, weight = _random_case(4, 30, 9, seed=22, dtype=torch.float32)
    prepared = prepare_weight(sign_bits(weight), 30)
    with kernel_backend("cpu"):
        out = binary_linear(x, prepared, 30)
    assert torch.equal(out, binary_linear(x, sign_bits(weight), 30))
    assert "cpu" in repr(prepared)


# ---------------------------------------------------------------------------------------------
# Dispatch


def test_default_backend_is_auto():
    assert get_kernel_backend() == "auto"
    assert xnor_kernel._select_backend(torch.device("cpu")) == "cpu"


def test_env_variable_sets_backend(monkeypatch):
    monkeypatch.setenv(xnor_kernel.ENV_VARIABLE, "reference")
    assert get_kernel_backend() == "reference"
    assert xnor_kernel._select_backend(torch.device("cpu")) == "reference"


def test_env_variable_rejects_unknown_name(monkeypatch):
    monkeypatch.setenv(xnor_kernel.ENV_VARIABLE, "fast")
    with pytest.raises(ValueError, match="SENSIMIX_KERNEL") as error:
        get_kernel_backend()
    for name in BACKENDS:
        assert name in str(error.value)


def test_set_kernel_backend_rejects_unknown_name():
    with pytest.raises(ValueError, match="Allowed names: auto, reference, cpu, cuda"):
        set_kernel_backend("gpu")
    with pytest.raises(ValueError, match="Allowed names"):
        with kernel_backend("CPU"):
            pass


def test_kernel_backend_context_nests_and_restores():
    set_kernel_backend("cpu")
    with kernel_backend("reference"):
        assert get_kernel_backend() == "reference"
        with kernel_backend("auto"):
            assert get_kernel_backend() == "auto"
        assert get_kernel_backend() == "reference"
    assert get_kernel_backend() == "cpu"
    with pytest.raises(KeyError):
        with kernel_backend("reference"):
            raise KeyError("inside")
    assert get_kernel_backend() == "cpu"


def test_cpu_backend_rejects_cuda_tensors():
    with kernel_backend("cpu"):
        with pytest.raises(ValueError, match="CPU tensors only"):
            xnor_kernel._select_backend(torch.device("cuda", 0))


def test_auto_selects_cuda_kernel_for_cuda_tensors(monkeypatch):
    monkeypatch.setattr(xnor_kernel, "is_cuda_kernel_available", lambda: True)
    assert xnor_kernel._select_backend(torch.device("cuda", 0)) == "cuda"
    with kernel_backend("cuda"):
        assert xnor_kernel._select_backend(torch.device("cuda", 1)) == "cuda"


def test_missing_cuda_kernel_warns_once(monkeypatch, caplog):
    monkeypatch.setattr(xnor_kernel, "is_cuda_kernel_available", lambda: False)
    with caplog.at_level(logging.WARNING, logger=xnor_kernel.__name__):
        assert xnor_kernel._select_backend(torch.device("cuda", 0)) == "reference"
        assert xnor_kernel._select_backend(torch.device("cuda", 0)) == "reference"
        with kernel_backend("cuda"):
            assert xnor_kernel._select_backend(torch.device("cuda", 0)) == "reference"
    assert len([r for r in caplog.records if "CUDA XNOR kernel is not available" in r.getMessage()]) == 1


def test_cuda_backend_on_cpu_warns_once(caplog):
    x, weight = _random_case(2, 12, 3, seed=23, dtype=torch.float32)
    with caplog.at_level(logging.WARNING, logger=xnor_kernel.__name__), kernel_backend("cuda"):
        first = binary_linear(x, sign_bits(weight), 12)
        binary_linear(x, sign_bits(weight), 12)
    assert torch.equal(first.double(), _signed_dot(x, weight))
    assert len([r for r in caplog.records if "'cuda' was requested" in r.getMessage()]) == 1


def test_missing_cpu_kernel_warns_once(monkeypatch, caplog):
    monkeypatch.setattr(xnor_kernel, "is_cpu_kernel_available", lambda: False)
    x, weight = _random_case(2, 12, 3, seed=24, dtype=torch.float32)
    with caplog.at_level(logging.WARNING, logger=xnor_kernel.__name__):
        first = binary_linear(x, sign_bits(weight), 12)
        binary_linear(x, sign_bits(weight), 12)
    assert torch.equal(first.double(), _signed_dot(x, weight))
    assert len([r for r in caplog.records if "CPU XNOR kernel is not available" in r.getMessage()]) == 1


def test_cpu_backend_without_extension_raises(monkeypatch):
    state = xnor_kernel._ExtensionState()
    monkeypatch.setattr(xnor_kernel, "_cpu_state", state)
    monkeypatch.setenv("CXX", "/nonexistent/compiler-for-this-test")
    assert not xnor_kernel.is_cpu_kernel_available()
    assert "No C++ compiler was found" in state.error
    x, weight = _random_case(2, 12, 3, seed=25, dtype=torch.float32)
    with kernel_backend("cpu"):
        with pytest.raises(RuntimeError, match=re.escape("No C++ compiler")) as error:
            binary_linear(x, sign_bits(weight), 12)
    assert "set_kernel_backend('reference')" in str(error.value)
    assert "Build log" not in str(error.value)


def test_failed_build_writes_log(monkeypatch, tmp_path):
    state = xnor_kernel._ExtensionState()
    monkeypatch.setattr(xnor_kernel, "_cpu_state", state)
    monkeypatch.setattr(xnor_kernel, "CPU_SOURCE", "#error deliberately broken source for this test\n")
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    assert not xnor_kernel.is_cpu_kernel_available()
    assert state.log_path.startswith(str(tmp_path))
    with open(state.log_path, encoding="utf-8") as log_file:
        assert "deliberately broken source" in log_file.read()
    assert cpu_kernel_variants() == []
