import doctest
import os

import pytest
import torch

from sensimix_hf import bitpacking
from sensimix_hf.bitpacking import pack_bits, sign_bits, unpack_bits


os.environ.setdefault("HF_HUB_OFFLINE", "1")


def test_pack_bits_worked_example():
    signs = torch.tensor([+1, -1, -1, +1, +1, +1, -1, -1, +1])
    packed = pack_bits(signs > 0)
    assert packed.dtype == torch.uint8
    assert packed.tolist() == [0b00111001, 0b00000001]
    assert packed.tolist() == [57, 1]


def test_docstring_examples_run():
    result = doctest.testmod(bitpacking, extraglobs={"torch": torch})
    assert result.attempted >= 1
    assert result.failed == 0


def test_pack_bits_bit_order():
    for k in range(20):
        positive = torch.zeros(20, dtype=torch.bool)
        positive[k] = True
        expected = [0, 0, 0]
        expected[k // 8] = 1 << (k % 8)
        assert pack_bits(positive).tolist() == expected, f"element {k}"


def test_pack_bits_padding_is_zero():
    assert pack_bits(torch.ones(9, dtype=torch.bool)).tolist() == [255, 1]
    assert pack_bits(torch.ones(1, dtype=torch.bool)).tolist() == [1]
    assert pack_bits(torch.ones(15, dtype=torch.bool)).tolist() == [255, 127]


@pytest.mark.parametrize(
    "shape",
    [(9,), (1,), (8,), (16,), (1, 13), (13, 1), (4, 7), (3, 5, 13), (2, 3, 64), (2, 1, 1)],
    ids=lambda shape: "x".join(map(str, shape)),
)
def test_pack_unpack_round_trip(shape):
    generator = torch.Generator().manual_seed(sum(shape))
    positive = torch.rand(shape, generator=generator) > 0.5
    packed = pack_bits(positive)
    assert packed.shape == (*shape[:-1], (shape[-1] + 7) // 8)
    assert torch.equal(unpack_bits(packed, shape[-1]), positive)


def test_pack_unpack_empty_last_dimension():
    positive = torch.zeros(3, 0, dtype=torch.bool)
    packed = pack_bits(positive)
    assert packed.shape == (3, 0)
    assert unpack_bits(packed, 0).shape == (3, 0)


def test_unpack_ignores_padding_bits():
    packed = torch.tensor([[57, 0b11111111]], dtype=torch.uint8)
    expected = torch.tensor([[True, False, False, True, True, True, False, False, True]])
    assert torch.equal(unpack_bits(packed, 9), expected)


def test_pack_bits_rejects_non_bool():
    with pytest.raises(TypeError, match="bool tensor"):
        pack_bits(torch.tensor([1.0, -1.0]))
    with pytest.raises(TypeError, match="torch.Tensor"):
        pack_bits([True, False])
    with pytest.raises(ValueError, match="0-d"):
        pack_bits(torch.tensor(True))


def test_unpack_bits_rejects_bad_dtype():
    with pytest.raises(ValueError, match="uint8"):
        unpack_bits(torch.tensor([57, 1], dtype=torch.int32), 9)
    with pytest.raises(ValueError, match="uint8"):
        unpack_bits(torch.tensor([57.0, 1.0]), 9)


@pytest.mark.parametrize("num_bits", [0, 8, 17, 100, -1], ids=lambda n: f"num_bits={n}")
def test_unpack_bits_rejects_bad_num_bits(num_bits):
    packed = torch.zeros(2, dtype=torch.uint8)
    with pytest.raises(ValueError, match=f"num_bits={num_bits}"):
        unpack_bits(packed, num_bits)


def test_unpack_bits_rejects_non_int_num_bits():
    packed = torch.zeros(2, dtype=torch.uint8)
    with pytest.raises(TypeError, match="num_bits"):
        unpack_bits(packed, 9.0)
    with pytest.raises(TypeError, match="num_bits"):
        unpack_bits(packed, True)


def test_sign_bits_special_values():
    x = torch.tensor([0.0, -0.0, float("nan"), float("inf"), float("-inf"), 1e-30, -1e-30, 2.0, -2.0])
    expected = torch.tensor([True, True, False, True, False, True, False, True, False])
    assert torch.equal(unpack_bits(sign_bits(x), 9), expected)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int32])
def test_sign_bits_matches_pack_of_comparison(dtype):
    x = torch.randn(4, 19, generator=torch.Generator().manual_seed(0)).mul(3).to(dtype)
    x[0, :3] = 0
    assert torch.equal(sign_bits(x), pack_bits(x >= 0))


def test_sign_bits_rejects_bool_and_complex():
    with pytest.raises(TypeError, match="real-valued"):
        sign_bits(torch.tensor([True]))
    with pytest.raises(TypeError, match="real-valued"):
        sign_bits(torch.tensor([1 + 1j]))
