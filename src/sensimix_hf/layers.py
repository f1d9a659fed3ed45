"""Quantized layers of SensiMix, each in two forms.

Training form: subclasses of `nn.Linear` / `nn.Embedding` that keep latent float weights (so BERT state dicts load
into them unchanged) and quantize on the fly with straight-through gradients.

Packed form: plain modules with integer buffers for inference. A training module turns into its packed form
through `pack()`; the packed modules are also built directly from a config when a packed checkpoint is loaded.

Stored tensors of the packed forms (all in the safetensors checkpoint):

| module | tensor | dtype | shape |
|---|---|---|---|
| PackedIndexLinear | `weight_index` | int8 | `[out_features, in_features]` |
| PackedIndexLinear | `weight_min`, `weight_max` | float32 | `[]`, or `[out_features, 1]` per channel |
| PackedIndexEmbedding | `weight_index` | int8 | `[num_embeddings, embedding_dim]` |
| PackedIndexEmbedding | `weight_min`, `weight_max` | float32 | `[]`, or `[num_embeddings, 1]` per channel |
| PackedBinaryLinear | `weight_bits` | uint8 | `[out_features, ceil(in_features / 8)]`, layout of `bitpacking.pack_bits` |
| PackedBinaryLinear | `weight_scale` | float32 | `[out_features]`, only with `binary_scale="row"` |
| all linears | `bias` | float32 | `[out_features]` |
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from .bitpacking import pack_bits, unpack_bits
from .quantization import (
    binarize,
    binarize_ste,
    index_dequantize,
    index_fake_quantize,
    index_quantize,
    index_ranges,
)


def _range_shape(rows: int, per_row: bool) -> tuple[int, ...]:
    return (rows, 1) if per_row else ()


class IndexQuantLinear(nn.Linear):
    """`nn.Linear` whose weight is 8-bit index quantized in the forward pass (training form)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, per_row: bool = False, **kwargs):
        super().__init__(in_features, out_features, bias=bias, **kwargs)
        self.per_row = per_row

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return F.linear(input, index_fake_quantize(self.weight, self.per_row), self.bias)

    @torch.no_grad()
    def pack(self) -> "PackedIndexLinear":
        """Return the packed inference form of this layer: int8 indices plus the float32 range."""
        packed = PackedIndexLinear(
            self.in_features, self.out_features, self.bias is not None, self.per_row, device=self.weight.device
        )
        lo, hi = index_ranges(self.weight, self.per_row)
        packed.weight_index.copy_(index_quantize(self.weight, lo, hi))
        packed.weight_min.copy_(lo)
        packed.weight_max.copy_(hi)
        if self.bias is not None:
            packed.bias.copy_(self.bias.float())
        return packed

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, bits=8, per_row={self.per_row}"


class IndexQuantEmbedding(nn.Embedding):
    """`nn.Embedding` whose table is 8-bit index quantized in the forward pass (training form)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, per_row: bool = False, **kwargs):
        super().__init__(num_embeddings, embedding_dim, **kwargs)
        self.per_row = per_row

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        weight = index_fake_quantize(self.weight, self.per_row)
        return F.embedding(input, weight, self.padding_idx, self.max_norm, self.norm_type, self.scale_grad_by_freq)

    @torch.no_grad()
    def pack(self) -> "PackedIndexEmbedding":
        """Return the packed inference form of this embedding table."""
        if self.max_norm is not None:
            raise ValueError(f"Packing an embedding with max_norm={self.max_norm} is not supported; use max_norm=None.")
        packed = PackedIndexEmbedding(
            self.num_embeddings, self.embedding_dim, self.per_row, self.padding_idx, device=self.weight.device
        )
        lo, hi = index_ranges(self.weight, self.per_row)
        packed.weight_index.copy_(index_quantize(self.weight, lo, hi))
        packed.weight_min.copy_(lo)
        packed.weight_max.copy_(hi)
        return packed

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, bits=8, per_row={self.per_row}"


class BinaryLinear(nn.Linear):
    """`nn.Linear` of a mixed-precision FFN that runs in full precision or with 1-bit weights (training form).

    With `binary=True` the forward is `(b(x) @ b(W).T) * scale + bias` where b(v) = +1 if v >= 0 else -1,
    `x` is binarized only when `binarize_inputs` is set, and `scale` is `mean(|W_row|) / sqrt(in_features)`
    for `scale_mode="row"` or 1 for `scale_mode="none"`.

    Gradients (straight-through estimators):
    - weights: dL/dW = dL/db(W) * 1{|W| <= 1}, plus the gradient through the row scale;
    - inputs: dL/dx = dL/db(x) * 1{|x| <= 1}.
    Both windows are closed: the gradient passes at |v| == 1 and at v == 0. The input is binarized out of
    place, so the residual branch that reads the same tensor keeps the float values.

    `binary` is schedule state, not a parameter: both modes use the same `weight` and `bias`, so the
    parameter set never changes.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        binarize_inputs: bool = True,
        scale_mode: str = "row",
        **kwargs,
    ):
        super().__init__(in_features, out_features, bias=bias, **kwargs)
        self.binarize_inputs = binarize_inputs
        self.scale_mode = scale_mode
        self.binary = False

    def row_scale(self) -> torch.Tensor | None:
        """Return the per-row output scale `mean(|W_row|) / sqrt(in_features)`, or None without scaling."""
        if self.scale_mode == "none":
            return None
        return self.weight.abs().mean(dim=1) / math.sqrt(self.in_features)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not self.binary:
            return F.linear(input, self.weight, self.bias)
        if self.binarize_inputs:
            input = binarize_ste(input)
        output = F.linear(input, binarize_ste(self.weight))
        scale = self.row_scale()
        if scale is not None:
            output = output * scale.to(output.dtype)
        if self.bias is not None:
            output = output + self.bias.to(output.dtype)
        return output

    @torch.no_grad()
    def pack(self) -> "PackedBinaryLinear":
        """Return the packed inference form: sign bits of the weight, the row scale and the bias."""
        if not self.binary:
            raise ValueError(
                "Cannot pack a BinaryLinear that runs in full precision (binary=False): a packed FFN is always "
                "1-bit. Binarize every MP FFN first (model.set_binary_ffn_layers(model.mp_layer_indices))."
            )
        packed = PackedBinaryLinear(
            self.in_features,
            self.out_features,
            self.bias is not None,
            self.binarize_inputs,
            self.scale_mode,
            device=self.weight.device,
        )
        packed.weight_bits.copy_(pack_bits(self.weight >= 0))
        scale = self.row_scale()
        if scale is not None:
            packed.weight_scale.copy_(scale.float())
        if self.bias is not None:
            packed.bias.copy_(self.bias.float())
        return packed

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, binary={self.binary}, scale_mode={self.scale_mode!r}"


class _DequantizedWeightCache:
    """Float copy of an int8 weight, rebuilt when the indices, the device or the dtype change.

    The copy is a plain attribute, not a buffer, so it is never saved and never seen by `_init_weights`.
    The version counter of the index buffer changes on every in-place write (`load_state_dict`, `copy_`).
    """

    def __init__(self):
        self.key = None
        self.value = None

    def get(self, module, dtype: torch.dtype) -> torch.Tensor:
        index = module.weight_index
        key = (index.device, dtype, index.data_ptr(), index._version, module.weight_min._version)
        if self.key != key:
            self.value = index_dequantize(index, module.weight_min, module.weight_max, dtype)
            self.key = key
        return self.value

    def clear(self) -> None:
        self.key = None
        self.value = None


class PackedIndexLinear(nn.Module):
    """Linear layer with an int8 index weight (packed form).

    By default the weight is de-quantized once to the input dtype and cached, which runs as fast as the
    float layer. With `cache_dequantized = False` it is de-quantized on every call instead, which keeps only
    the int8 tensor resident at the cost of speed.
    """

    cache_dequantized = True

    def __init__(self, in_features: int, out_features: int, bias: bool = True, per_row: bool = False, device=None):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.per_row = per_row
        self.register_buffer("weight_index", torch.zeros(out_features, in_features, dtype=torch.int8, device=device))
        range_shape = _range_shape(out_features, per_row)
        self.register_buffer("weight_min", torch.zeros(range_shape, dtype=torch.float32, device=device))
        self.register_buffer("weight_max", torch.zeros(range_shape, dtype=torch.float32, device=device))
        if bias:
            self.register_buffer("bias", torch.zeros(out_features, dtype=torch.float32, device=device))
        else:
            self.bias = None
        self._cache = _DequantizedWeightCache()

    def dequantized_weight(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Return the float weight `W_hat` that this layer multiplies by."""
        if self.cache_dequantized:
            return self._cache.get(self, dtype)
        return index_dequantize(self.weight_index, self.weight_min, self.weight_max, dtype)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(input.dtype)
        return F.linear(input, self.dequantized_weight(input.dtype), bias)

    def _apply(self, fn, recurse=True):
        self._cache.clear()
        return super()._apply(fn, recurse)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bits=8, per_row={self.per_row}"


class PackedIndexEmbedding(nn.Module):
    """Embedding table of int8 indices (packed form); only the looked-up rows are de-quantized."""

    def __init__(
        self, num_embeddings: int, embedding_dim: int, per_row: bool = False, padding_idx: int | None = None, device=None
    ):
        super().__init__()
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.per_row = per_row
        self.padding_idx = padding_idx
        self.register_buffer(
            "weight_index", torch.zeros(num_embeddings, embedding_dim, dtype=torch.int8, device=device)
        )
        range_shape = _range_shape(num_embeddings, per_row)
        self.register_buffer("weight_min", torch.zeros(range_shape, dtype=torch.float32, device=device))
        self.register_buffer("weight_max", torch.zeros(range_shape, dtype=torch.float32, device=device))

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        rows = F.embedding(input, self.weight_index)
        lo, hi = self.weight_min, self.weight_max
        if self.per_row:
            lo = F.embedding(input, lo)
            hi = F.embedding(input, hi)
        # The float buffers follow the model's dtype (float16 after `from_pretrained(dtype=torch.float16)`).
        return index_dequantize(rows, lo, hi, dtype=self.weight_min.dtype)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, bits=8, per_row={self.per_row}"


class PackedBinaryLinear(nn.Module):
    """1-bit linear layer (packed form): sign bits of the weight, computed with XNOR-popcount.

    The output is `(b(x) @ b(W).T) * weight_scale + bias`. With `binarize_inputs=False` the float input is
    multiplied by the +-1 weight instead, without the XNOR kernel.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        binarize_inputs: bool = True,
        scale_mode: str = "row",
        device=None,
    ):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.binarize_inputs = binarize_inputs
        self.scale_mode = scale_mode
        packed_width = (in_features + 7) // 8
        self.register_buffer("weight_bits", torch.zeros(out_features, packed_width, dtype=torch.uint8, device=device))
        if scale_mode == "row":
            self.register_buffer("weight_scale", torch.zeros(out_features, dtype=torch.float32, device=device))
        else:
            self.weight_scale = None
        if bias:
            self.register_buffer("bias", torch.zeros(out_features, dtype=torch.float32, device=device))
        else:
            self.bias = None

    def signed_weight(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Return b(W) as a +-1 tensor of `dtype`."""
        positive = unpack_bits(self.weight_bits, self.in_features)
        return binarize(positive.to(dtype) - 0.5)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if self.binarize_inputs:
            # Imported here so that the package imports without building or loading the compiled kernel.
            from .xnor_kernel import binary_linear

            return binary_linear(input, self.weight_bits, self.in_features, self.weight_scale, self.bias)
        output = F.linear(input, self.signed_weight(input.dtype))
        if self.weight_scale is not None:
            output = output * self.weight_scale.to(output.dtype)
        if self.bias is not None:
            output = output + self.bias.to(output.dtype)
        return output

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bits=1, "
            f"binarize_inputs={self.binarize_inputs}, scale_mode={self.scale_mode!r}"
        )


__all__ = [
    "BinaryLinear",
    "IndexQuantEmbedding",
    "IndexQuantLinear",
    "PackedBinaryLinear",
    "PackedIndexEmbedding",
    "PackedIndexLinear",
]
