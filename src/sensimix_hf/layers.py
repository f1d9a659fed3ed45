"""Quantized layers of SensiMix, each in two forms.

Training form: subclasses of `nn.Linear` / `nn.Embedding` that keep latent float weights (so BERT state dicts load
into them unchanged) and quantize on the fly with straight-through gradients.

Packed form: plain modules with integer buffers for inference. A training module turns into its packed form
through `pack()`. Loading a packed checkpoint builds the packed modules directly from its config.

Stored tensors of the packed forms (all in the safetensors checkpoint):

| module | tensor | dtype | shape |
|---|---|---|---|
| PackedIndexLinear | `weight_index` | int8 | `[out_features, in_features]` |
| PackedIndexLinear | `weight_min`, `weight_max` | float32 | `[]`, or `[out_features, 1]` per channel |
| PackedIndexEmbedding | `weight_index` | int8 | `[num_embeddings, embedding_dim]` |
| PackedIndexEmbedding | `weight_min`, `weight_max` | model dtype (float32 by default) | `[]`, or `[num_embeddings, 1]` per channel |
| PackedBinaryLinear | `weight_bits` | uint8 | `[out_features, ceil(in_features / 8)]`, layout of `bitpacking.pack_bits` |
| PackedBinaryLinear | `weight_scale` | model dtype (float32 by default) | `[out_features]`, only with `binary_scale="row"` |
| PackedIndexLinear | `bias` | float32 | `[out_features]` |
| PackedBinaryLinear | `bias` | model dtype (float32 by default) | `[out_features]` |
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from .bitpacking import pack_bits, unpack_bits
from .index_linear import _WeightCache, index_linear
from .quantization import (
    binarize,
    binarize_ste,
    index_dequantize,
    index_fake_quantize,
    index_quantize,
    index_ranges,
    straight_through,
)


def _range_shape(rows: int, per_row: bool) -> tuple[int, ...]:
    return (rows, 1) if per_row else ()


def _store_index_weight(packed: nn.Module, weight: torch.Tensor, per_row: bool) -> None:
    """Write the int8 indices and the range of `weight` into the buffers of a packed module."""
    lo, hi = index_ranges(weight, per_row)
    packed.weight_index.copy_(index_quantize(weight, lo, hi))
    packed.weight_min.copy_(lo)
    packed.weight_max.copy_(hi)


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
        _store_index_weight(packed, self.weight, self.per_row)
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
        rows = F.embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type, self.scale_grad_by_freq)
        # The range comes from the whole table, but only the looked-up rows are quantized: on a 30k-row
        # vocabulary this gives the same values as quantizing the table at a fraction of the cost.
        lo, hi = index_ranges(self.weight, self.per_row)
        if self.per_row:
            lo = F.embedding(input, lo)
            hi = F.embedding(input, hi)
        quantized = index_dequantize(index_quantize(rows, lo, hi), lo, hi, dtype=rows.dtype)
        return straight_through(rows, quantized)

    @torch.no_grad()
    def pack(self) -> "PackedIndexEmbedding":
        """Return the packed inference form of this embedding table."""
        if self.max_norm is not None:
            raise ValueError(f"Packing an embedding with max_norm={self.max_norm} is not supported; use max_norm=None.")
        packed = PackedIndexEmbedding(
            self.num_embeddings,
            self.embedding_dim,
            self.per_row,
            self.padding_idx,
            device=self.weight.device,
            dtype=self.weight.dtype,
        )
        _store_index_weight(packed, self.weight, self.per_row)
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


class PackedIndexLinear(nn.Module):
    """Linear layer with an int8 index weight (packed form).

    The product runs on the backend selected in `index_linear` ("auto" by default: PyTorch's int8 GEMM on CPU,
    a cached float copy of the weight elsewhere).
    """

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
        self._weight_cache = _WeightCache()

    def dequantized_weight(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Return the float weight `W_hat` that this layer represents."""
        return index_dequantize(self.weight_index, self.weight_min, self.weight_max, dtype)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return index_linear(self, input)

    def _apply(self, fn, recurse=True):
        self._weight_cache.clear()
        return super()._apply(fn, recurse)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bits=8, per_row={self.per_row}"


class PackedIndexEmbedding(nn.Module):
    """Embedding table of int8 indices (packed form); only the looked-up rows are de-quantized."""

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        per_row: bool = False,
        padding_idx: int | None = None,
        device=None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.per_row = per_row
        self.padding_idx = padding_idx
        self.register_buffer(
            "weight_index", torch.zeros(num_embeddings, embedding_dim, dtype=torch.int8, device=device)
        )
        # The range uses the model's float dtype: torch's default dtype for `dtype=None`, which
        # `from_pretrained(dtype=...)` sets while it builds the model. The looked-up rows come out in this dtype,
        # and the LayerNorm that follows requires it.
        range_shape = _range_shape(num_embeddings, per_row)
        self.register_buffer("weight_min", torch.zeros(range_shape, dtype=dtype, device=device))
        self.register_buffer("weight_max", torch.zeros(range_shape, dtype=dtype, device=device))

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        rows = F.embedding(input, self.weight_index)
        lo, hi = self.weight_min, self.weight_max
        if self.per_row:
            lo = F.embedding(input, lo)
            hi = F.embedding(input, hi)
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
            self.register_buffer("weight_scale", torch.zeros(out_features, device=device))
        else:
            self.weight_scale = None
        if bias:
            self.register_buffer("bias", torch.zeros(out_features, device=device))
        else:
            self.bias = None

    def signed_weight(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Return b(W) as a +-1 tensor of `dtype`."""
        positive = unpack_bits(self.weight_bits, self.in_features)
        return binarize(positive.to(dtype) - 0.5)

    def forward(self, input: torch.Tensor, output: str = "float") -> torch.Tensor:
        """Return the layer's output as floats, or with `output="bits"` as packed sign bits of it (uint8).

        A uint8 `input` is read as packed sign bits, in the form the previous 1-bit layer returns with
        `output="bits"`. The activations between the two 1-bit FFN linears then never exist as floats.
        """
        # Imported here so that the package imports without building or loading the compiled kernel.
        from .xnor_kernel import binary_linear, binary_linear_from_bits

        if input.dtype == torch.uint8:
            float_buffer = self.bias if self.bias is not None else self.weight_scale
            dtype = float_buffer.dtype if float_buffer is not None else torch.get_default_dtype()
            return binary_linear_from_bits(
                input, self.weight_bits, self.in_features, self.weight_scale, self.bias, dtype=dtype, output=output
            )
        if self.binarize_inputs:
            return binary_linear(input, self.weight_bits, self.in_features, self.weight_scale, self.bias, output=output)
        if output != "float":
            raise ValueError(f"output={output!r} needs binarize_inputs=True; this layer multiplies float inputs.")
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
