"""SensiMix quantizers: 8-bit index quantization and 1-bit sign binarization, with straight-through gradients.

8-bit index quantization maps a tensor W with range [lo, hi] to 256 evenly spaced levels:

    Q     = round((W - lo) * 255 / (hi - lo)) - 128      # int8 index in [-128, 127]
    W_hat = (Q + 128) * (hi - lo) / 255 + lo             # de-quantized value

`round` is `torch.round` (halves to even). A constant tensor (hi == lo) maps to Q = -128 and back to lo
exactly, with no division by zero.

1-bit binarization is b(v) = +1 if v >= 0 else -1. Zero maps to +1 and NaN maps to -1, because
`NaN >= 0` is false. This is the sign convention of the packed bit layout as well.
"""

import torch


INDEX_LEVELS = 255  # number of steps between the 256 levels of an 8-bit index
INDEX_OFFSET = 128  # shifts the unsigned level number 0..255 to the int8 range -128..127


def index_ranges(weight: torch.Tensor, per_row: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the float32 (min, max) of `weight`, per tensor (0-dim) or per row (shape `[rows, 1]`)."""
    weight = weight.detach().float()
    if per_row:
        flat = weight.reshape(weight.shape[0], -1)
        return flat.amin(dim=1, keepdim=True), flat.amax(dim=1, keepdim=True)
    return weight.amin(), weight.amax()


def index_quantize(weight: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Quantize `weight` to int8 indices of 256 levels between `lo` and `hi`."""
    span = hi - lo
    # A zero span (constant tensor) would divide by zero: every element equals lo there, so any finite
    # divisor gives index -128.
    safe_span = torch.where(span > 0, span, torch.ones_like(span))
    levels = torch.round((weight.float() - lo) * (INDEX_LEVELS / safe_span))
    levels = levels.clamp_(0, INDEX_LEVELS)
    return (levels - INDEX_OFFSET).to(torch.int8)


def index_dequantize(
    index: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Map int8 indices back to their float levels between `lo` and `hi`, computed in float32."""
    lo = lo.float()
    span = hi.float() - lo
    values = (index.float() + INDEX_OFFSET) * (span / INDEX_LEVELS) + lo
    return values.to(dtype)


def fake_index_quantize(weight: torch.Tensor, per_row: bool = False) -> torch.Tensor:
    """Return `W_hat` of `weight` in its dtype, the value the packed model will use."""
    lo, hi = index_ranges(weight, per_row)
    return index_dequantize(index_quantize(weight, lo, hi), lo, hi, dtype=weight.dtype)


class _IndexFakeQuantize(torch.autograd.Function):
    """Forward: de-quantized 8-bit index value. Backward: identity straight-through estimator."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, per_row: bool) -> torch.Tensor:
        return fake_index_quantize(weight, per_row)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        return grad_output, None


class _StraightThrough(torch.autograd.Function):
    """Forward: `value`. Backward: the whole gradient goes to `source` (identity straight-through estimator)."""

    @staticmethod
    def forward(ctx, source: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        return value

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        return grad_output, None


def straight_through(source: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Return `value` in the forward pass and pass the gradient to `source` unchanged.

    Unlike `source + (value - source).detach()`, the forward result is `value` bit for bit.
    """
    return _StraightThrough.apply(source, value.detach())


def index_fake_quantize(weight: torch.Tensor, per_row: bool = False) -> torch.Tensor:
    """Quantize `weight` to 8-bit indices and back, passing the gradient straight through to `weight`."""
    return _IndexFakeQuantize.apply(weight, per_row)


def binarize(values: torch.Tensor) -> torch.Tensor:
    """Return b(values) in the dtype of `values`: +1 where values >= 0, else -1 (zero gives +1)."""
    positive = values >= 0
    return torch.where(positive, 1.0, -1.0).to(values.dtype)


class _BinarizeClipped(torch.autograd.Function):
    """Forward: b(v). Backward: dL/dv = dL/db(v) * 1{|v| <= 1}, the clipped straight-through estimator.

    The window is closed: the gradient passes at |v| == 1 and at v == 0, and is zero for |v| > 1.
    """

    @staticmethod
    def forward(ctx, values: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(values)
        return binarize(values)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (values,) = ctx.saved_tensors
        inside = values.abs() <= 1
        return grad_output * inside.to(grad_output.dtype)


def binarize_ste(values: torch.Tensor) -> torch.Tensor:
    """Binarize `values` out of place with the clipped straight-through gradient 1{|v| <= 1}.

    Used for both the 1-bit weights and the 1-bit inputs. The input tensor is never modified, so a residual
    branch that reads the same tensor gets the float values.
    """
    return _BinarizeClipped.apply(values)


class _SignOfActivation(torch.autograd.Function):
    """Forward: b(act(h)) computed as b(h). Backward: the clipped estimator of b applied to act(h).

    For a sign-preserving activation (GELU, SiLU) b(act(h)) equals b(h) mathematically, but in float GELU(h)
    rounds to -0.0 for h below about -5.5 (torch 2.13, float32), which `>= 0` would read as +1. Taking the sign from h keeps
    training equal to packed inference, where the activation is skipped.
    """

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, activation) -> torch.Tensor:
        ctx.save_for_backward(hidden)
        ctx.activation = activation
        return binarize(hidden)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (hidden,) = ctx.saved_tensors
        with torch.enable_grad():
            leaf = hidden.detach().requires_grad_(True)
            activated = ctx.activation(leaf)
            inside = (activated.detach().abs() <= 1).to(grad_output.dtype)
            (grad_hidden,) = torch.autograd.grad(activated, leaf, grad_output * inside)
        return grad_hidden, None


def binarize_activation_ste(hidden: torch.Tensor, activation) -> torch.Tensor:
    """Return b(activation(hidden)) for a sign-preserving activation, with its straight-through gradient."""
    return _SignOfActivation.apply(hidden, activation)


__all__ = [
    "binarize",
    "binarize_activation_ste",
    "binarize_ste",
    "fake_index_quantize",
    "index_dequantize",
    "index_fake_quantize",
    "index_quantize",
    "index_ranges",
    "straight_through",
]
