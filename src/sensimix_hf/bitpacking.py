"""Portable bit layout for 1-bit (sign) tensors.

A sign tensor with last dimension K is stored as uint8 with last dimension `ceil(K / 8)`.
Element `k` goes to byte `k // 8`, bit `k % 8`, least significant bit first, and a set bit
means +1. The padding bits of the last byte are 0. This is the layout saved in checkpoints;
kernels may convert it into other layouts in memory, never on disk.

Binarization follows b(v) = +1 if v >= 0 else -1, so 0 and -0.0 map to +1 and NaN maps to -1
(because `NaN >= 0` is False).

This module imports only torch so that it can be copied into a model folder for
`trust_remote_code=True`.
"""

import torch


BITS_PER_BYTE = 8


def _num_bytes(num_bits: int) -> int:
    return (num_bits + BITS_PER_BYTE - 1) // BITS_PER_BYTE


def _bit_weights(device: torch.device) -> torch.Tensor:
    # Byte value contributed by bit position 0..7 (least significant bit first).
    return torch.tensor([1 << bit for bit in range(BITS_PER_BYTE)], dtype=torch.uint8, device=device)


def pack_bits(positive: torch.Tensor) -> torch.Tensor:
    """Pack a bool tensor `[..., K]` into uint8 `[..., ceil(K / 8)]` (True means +1).

    Element `k` goes to byte `k // 8`, bit `k % 8` (least significant bit first), and the
    padding bits of the last byte are 0.

    Example: the signs `[+1, -1, -1, +1, +1, +1, -1, -1, +1]` (K = 9) are the bools
    `[T, F, F, T, T, T, F, F, T]`. Byte 0 contains elements 0-7, read from bit 7 down to bit 0
    as `0b00111001` = 57, and byte 1 contains element 8 in bit 0: `0b00000001` = 1.

    >>> pack_bits(torch.tensor([True, False, False, True, True, True, False, False, True]))
    tensor([57,  1], dtype=torch.uint8)

    Raises:
        TypeError: if `positive` is not a bool tensor.
        ValueError: if `positive` is a 0-d tensor.
    """
    if not isinstance(positive, torch.Tensor):
        raise TypeError(f"pack_bits expects a torch.Tensor, got {type(positive).__name__}.")
    if positive.dtype != torch.bool:
        raise TypeError(
            f"pack_bits expects a bool tensor (True means +1), got dtype {positive.dtype}. "
            "Pass `values >= 0`, or call sign_bits(values)."
        )
    if positive.dim() == 0:
        raise ValueError("pack_bits expects a tensor with at least one dimension, got a 0-d tensor.")

    num_bits = positive.shape[-1]
    num_bytes = _num_bytes(num_bits)
    padding = num_bytes * BITS_PER_BYTE - num_bits
    bits = positive.to(torch.uint8)
    if padding:
        bits = torch.nn.functional.pad(bits, (0, padding))
    bits = bits.reshape(*positive.shape[:-1], num_bytes, BITS_PER_BYTE)
    # Each byte sums distinct powers of two, so the uint8 sum never exceeds 255.
    return (bits * _bit_weights(bits.device)).sum(dim=-1, dtype=torch.uint8)


def unpack_bits(packed: torch.Tensor, num_bits: int) -> torch.Tensor:
    """Unpack uint8 `[..., ceil(num_bits / 8)]` into a bool tensor `[..., num_bits]` (True means +1).

    This is the inverse of `pack_bits`. The padding bits of the last byte are ignored.

    Raises:
        ValueError: if `packed` is not uint8, or if `ceil(num_bits / 8)` differs from `packed.shape[-1]`.
        TypeError: if `num_bits` is not an int.
    """
    if not isinstance(packed, torch.Tensor):
        raise TypeError(f"unpack_bits expects a torch.Tensor, got {type(packed).__name__}.")
    if isinstance(num_bits, bool) or not isinstance(num_bits, int):
        raise TypeError(f"num_bits must be an int, got {num_bits!r} of type {type(num_bits).__name__}.")
    if packed.dtype != torch.uint8:
        raise ValueError(
            f"unpack_bits expects a uint8 tensor in the layout of pack_bits, got dtype {packed.dtype}. "
            "Pass the packed bytes, not the sign values."
        )
    if packed.dim() == 0:
        raise ValueError("unpack_bits expects a tensor with at least one dimension, got a 0-d tensor.")
    if num_bits < 0 or _num_bytes(num_bits) != packed.shape[-1]:
        raise ValueError(
            f"num_bits={num_bits} needs ceil({num_bits} / 8) = {_num_bytes(max(num_bits, 0))} bytes, but "
            f"packed.shape[-1] is {packed.shape[-1]}. Pass the number of elements that were packed, "
            f"between {max(8 * packed.shape[-1] - 7, 0)} and {8 * packed.shape[-1]} for this tensor."
        )

    shifts = torch.arange(BITS_PER_BYTE, dtype=torch.uint8, device=packed.device)
    bits = (packed.unsqueeze(-1) >> shifts) & 1
    bits = bits.reshape(*packed.shape[:-1], packed.shape[-1] * BITS_PER_BYTE)
    return bits[..., :num_bits].bool()


def sign_bits(x: torch.Tensor) -> torch.Tensor:
    """Binarize `x` with b(v) = +1 if v >= 0 else -1 and pack the result with `pack_bits`.

    0 and -0.0 map to +1 and NaN maps to -1.

    Raises:
        TypeError: if `x` is a bool or complex tensor, which has no sign in this sense.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"sign_bits expects a torch.Tensor, got {type(x).__name__}.")
    if x.dtype == torch.bool or x.is_complex():
        raise TypeError(f"sign_bits expects a real-valued tensor, got dtype {x.dtype}. Pass a bool tensor to pack_bits.")
    return pack_bits(x >= 0)


__all__ = ["pack_bits", "sign_bits", "unpack_bits"]
