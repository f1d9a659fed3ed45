"""Inference backends of the packed 8-bit index linear layer, chosen at one dispatch point.

A packed layer stores int8 indices Q and a range [lo, hi]; its weight is W_hat = (Q + 128) * s + lo with
s = (hi - lo) / 255. Backends:

- "dequantized": W_hat is computed once in the input dtype, cached, and multiplied with a float GEMM. The packed
  model then computes exactly what the training-form model computed.
- "on_the_fly": W_hat is rebuilt on every call. Only the int8 tensors stay resident (a quarter of the float
  memory) at the cost of speed.
- "int8": CPU only. Uses PyTorch's dynamic int8 GEMM (fbgemm) on the indices themselves, through the identity
  x @ W_hat.T = s * (x @ Q.T) + (128 * s + lo) * sum(x). The activations are quantized to 8 bits per batch,
  which the model never saw in training, so logits move and a few predictions change.
- "auto" (default): "dequantized", because a packed model should reproduce the accuracy that was measured before
  packing. `docs/benchmarks.md` has the speed and accuracy of each backend.
"""

import contextlib
import functools
import os
import warnings

import torch
import torch.nn.functional as F
from transformers.utils import logging

from .quantization import INDEX_LEVELS, INDEX_OFFSET, index_dequantize


logger = logging.get_logger(__name__)

INDEX_LINEAR_BACKENDS = ("auto", "dequantized", "on_the_fly", "int8")

_backend = None


def _validate(name: str) -> str:
    if name not in INDEX_LINEAR_BACKENDS:
        raise ValueError(
            f"Unknown 8-bit linear backend {name!r}. Allowed values: {', '.join(map(repr, INDEX_LINEAR_BACKENDS))}."
        )
    return name


def get_index_linear_backend() -> str:
    """Return the configured backend name; the environment variable SENSIMIX_INDEX_LINEAR sets the initial one."""
    global _backend
    if _backend is None:
        _backend = _validate(os.environ.get("SENSIMIX_INDEX_LINEAR", "auto"))
    return _backend


def set_index_linear_backend(name: str) -> None:
    """Select the backend of every packed 8-bit linear layer."""
    global _backend
    _backend = _validate(name)


@contextlib.contextmanager
def index_linear_backend(name: str):
    """Use backend `name` inside the `with` block and restore the previous one afterwards."""
    previous = get_index_linear_backend()
    set_index_linear_backend(name)
    try:
        yield
    finally:
        set_index_linear_backend(previous)


def is_int8_gemm_available() -> bool:
    """Return whether PyTorch has a quantized CPU engine with a dynamic int8 linear operator."""
    engines = torch.backends.quantized.supported_engines
    return hasattr(torch.ops.quantized, "linear_dynamic") and any(
        engine in engines for engine in ("x86", "fbgemm", "onednn")
    )


@functools.cache
def _int8_gemm_reduce_range() -> bool:
    """Whether the int8 GEMM must quantize activations to 7 bits to avoid int16 saturation.

    Without VNNI instructions, x86 int8 kernels sum pairs of u8 x s8 products in int16, which a full 8-bit range can
    overflow. CPUs with AVX-512 VNNI or AVX-VNNI accumulate in int32, so they keep the full range. The flags are
    read from /proc/cpuinfo; elsewhere the safe choice (7 bits) is kept.
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            flags = file.read()
    except OSError:
        return True
    return not ("avx512_vnni" in flags or "avx_vnni" in flags)


def resolve_backend(input: torch.Tensor) -> str:
    """Return the concrete backend for `input`, resolving "auto" and CUDA tensors."""
    name = get_index_linear_backend()
    if name == "auto":
        return "dequantized"
    if name == "int8" and input.device.type != "cpu":
        logger.warning_once("The int8 backend of 8-bit linears runs on CPU only; using 'dequantized' on this device.")
        return "dequantized"
    return name


class _WeightCache:
    """Derived copies of a packed weight, rebuilt when the indices, the range, the device or the dtype change.

    The copies are plain attributes, not buffers, so they are never saved and never seen by `_init_weights`.
    A tensor's version counter changes on every in-place write (`load_state_dict`, `copy_`).
    """

    def __init__(self):
        self.entries = {}

    def get(self, module, kind: str, dtype: torch.dtype, build):
        index = module.weight_index
        key = (index.device, dtype, index.data_ptr(), index._version, module.weight_min._version)
        entry = self.entries.get(kind)
        if entry is None or entry[0] != key:
            entry = (key, build())
            self.entries[kind] = entry
        return entry[1]

    def clear(self) -> None:
        self.entries.clear()


def _prepack_int8(module):
    lo = module.weight_min.float()
    step = (module.weight_max.float() - lo) / INDEX_LEVELS
    constant = step == 0
    # A quantized tensor cannot have scale 0. So a constant weight (step 0) is stored as a zero int8 matrix with
    # scale 1, and its value lo moves entirely into the offset term.
    safe_step = torch.where(constant, torch.ones_like(step), step)
    values = module.weight_index.float() * torch.where(constant, torch.zeros_like(step), step)
    with warnings.catch_warnings():
        # Quantized tensor constructors warn that they are deprecated; they are the only way to reach the int8
        # GEMM of PyTorch's CPU engines.
        warnings.simplefilter("ignore", UserWarning)
        if module.per_row:
            scales = safe_step.flatten().double()
            zero_points = torch.zeros(module.out_features, dtype=torch.long)
            quantized = torch.quantize_per_channel(values, scales, zero_points, 0, torch.qint8)
        else:
            quantized = torch.quantize_per_tensor(values, float(safe_step), 0, torch.qint8)
        packed = torch.ops.quantized.linear_prepack(quantized, None)
    offset = torch.where(constant, lo, step * INDEX_OFFSET + lo).flatten()
    return packed, offset


def index_linear(module, input: torch.Tensor) -> torch.Tensor:
    """Compute `input @ W_hat.T + bias` for a packed 8-bit index linear layer with the selected backend."""
    backend = resolve_backend(input)
    bias = None if module.bias is None else module.bias.to(input.dtype)
    if backend == "on_the_fly":
        weight = index_dequantize(module.weight_index, module.weight_min, module.weight_max, input.dtype)
        return F.linear(input, weight, bias)
    if backend == "int8" and input.dtype == torch.float32:
        packed, offset = module._weight_cache.get(module, "int8", torch.float32, lambda: _prepack_int8(module))
        flat = input.reshape(-1, module.in_features)
        output = torch.ops.quantized.linear_dynamic(flat, packed, _int8_gemm_reduce_range())
        output = output + flat.sum(dim=-1, keepdim=True) * offset
        if bias is not None:
            output = output + bias
        return output.reshape(*input.shape[:-1], module.out_features)
    weight = module._weight_cache.get(
        module,
        "dequantized",
        input.dtype,
        lambda: index_dequantize(module.weight_index, module.weight_min, module.weight_max, input.dtype),
    )
    return F.linear(input, weight, bias)


__all__ = [
    "INDEX_LINEAR_BACKENDS",
    "get_index_linear_backend",
    "index_linear",
    "index_linear_backend",
    "is_int8_gemm_available",
    "set_index_linear_backend",
]
