"""Inference backends of the packed 8-bit index linear layer, chosen at one dispatch point.

A packed layer stores int8 indices Q and a range [lo, hi]; its weight is W_hat = (Q + 128) * s + lo with
s = (hi - lo) / 255. Backends:

- "dequantized": W_hat is computed once in the input dtype, cached, and multiplied with a float GEMM. Fastest on
  GPUs and exact to the training-form model; the cache costs a float copy of every 8-bit weight.
- "on_the_fly": W_hat is rebuilt on every call. Only the int8 tensors stay resident (a quarter of the float
  memory) at the cost of speed.
- "int8": CPU only. Uses PyTorch's dynamic int8 GEMM (fbgemm / oneDNN) on the indices themselves, through the
  identity x @ W_hat.T = s * (x @ Q.T) + (128 * s + lo) * sum(x); the activations are quantized per batch to
  8 bits, which adds a small error. About twice as fast as the float GEMM on AVX2 CPUs.
- "auto" (default): "int8" for CPU tensors when PyTorch's quantized engine is available, else "dequantized".

`benchmarks/inference.py` measures the backends; `docs/benchmarks.md` has the numbers behind the default.
"""

import contextlib
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
    """Whether PyTorch ships a quantized CPU engine with a dynamic int8 linear operator."""
    engines = torch.backends.quantized.supported_engines
    return hasattr(torch.ops.quantized, "linear_dynamic") and any(
        engine in engines for engine in ("x86", "fbgemm", "onednn")
    )


def resolve_backend(input: torch.Tensor) -> str:
    """Return the concrete backend for `input`, resolving "auto" and CUDA tensors."""
    name = get_index_linear_backend()
    if name == "auto":
        return "int8" if input.device.type == "cpu" and is_int8_gemm_available() else "dequantized"
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
    # A constant weight (step 0) is stored as a zero int8 matrix with scale 1, and its value lo moves entirely
    # into the offset term; a quantized tensor cannot have scale 0.
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
        output = torch.ops.quantized.linear_dynamic(flat, packed, True)
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
