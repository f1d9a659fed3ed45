"""Size report of SensiMix models: per-part sums against the safetensors file and the FP32 architecture."""

import json
import math
import os
import struct

import pytest
import torch
from safetensors.torch import load_file
from transformers import BertConfig, BertForSequenceClassification, BertModel

from sensimix_hf import SensiMixConfig, SensiMixForSequenceClassification, SensiMixModel
from sensimix_hf.size_report import (
    PART_NAMES,
    format_size_report,
    read_safetensors_header,
    size_report,
)


HIDDEN = 32
INTERMEDIATE = 37
VOCAB = 99
POSITIONS = 64
LAYERS = 4
EIGHT_BIT_LAYERS = 2
TINY = dict(
    vocab_size=VOCAB,
    hidden_size=HIDDEN,
    num_hidden_layers=LAYERS,
    num_8bit_layers=EIGHT_BIT_LAYERS,
    num_attention_heads=4,
    intermediate_size=INTERMEDIATE,
    max_position_embeddings=POSITIONS,
    num_labels=2,
)
RANGE_BYTES = 2 * 4  # weight_min and weight_max, one float32 each per tensor


def tiny_model(pack: bool = True, model_class=SensiMixForSequenceClassification, **overrides):
    torch.manual_seed(0)
    model = model_class(SensiMixConfig(**{**TINY, **overrides})).eval()
    if pack:
        model.set_binary_ffn_layers(model.mp_layer_indices)
        model.pack()
    return model


@pytest.fixture(scope="module")
def packed_folder(tmp_path_factory):
    model = tiny_model()
    folder = tmp_path_factory.mktemp("size") / "sensimix-tiny"
    model.save_pretrained(folder)
    return model, folder


def fp32_parameter_count(num_labels: int | None = 2) -> int:
    """Count the parameters of the float BERT with the tiny layout, with transformers' own classes."""
    config = BertConfig(**{key: value for key, value in TINY.items() if key != "num_8bit_layers"})
    with torch.device("meta"):
        model = BertForSequenceClassification(config) if num_labels else BertModel(config)
    return model.num_parameters()


def test_folder_sums_match_file_size(packed_folder):
    _, folder = packed_folder
    path = folder / "model.safetensors"

    report = size_report(folder)

    assert report.file_bytes == path.stat().st_size
    assert report.total_bytes + report.header_bytes == report.file_bytes
    (header_length,) = struct.unpack("<Q", path.read_bytes()[:8])
    assert report.header_bytes == 8 + header_length
    stored = load_file(path)
    assert report.total_bytes == sum(tensor.numel() * tensor.element_size() for tensor in stored.values())


def test_model_and_folder_reports_agree(packed_folder):
    model, folder = packed_folder

    from_model = size_report(model)
    from_folder = size_report(folder)

    assert from_model.parts == from_folder.parts
    assert from_model.fp32_bytes == from_folder.fp32_bytes
    assert from_model.is_packed and from_folder.is_packed
    assert from_model.model_class == from_folder.model_class == "SensiMixForSequenceClassification"
    assert from_model.file_bytes is None
    assert from_model.header_bytes is None


def test_storage_bits_per_part(packed_folder):
    report = size_report(packed_folder[1])

    for name in ("word embeddings", "position embeddings", "8-bit attention", "8-bit FFN"):
        assert report.part(name).storage_bits == 8, name
    assert report.part("1-bit FFN").storage_bits == 1
    for name in ("token type embeddings", "LayerNorms", "biases", "pooler", "classifier"):
        assert report.part(name).storage_bits == 32, name
    assert report.part("other").num_bytes == 0
    assert report.part("other").storage_bits is None


def test_part_sizes_match_layout():
    report = size_report(tiny_model())
    mp_layers = LAYERS - EIGHT_BIT_LAYERS

    attention_weights = LAYERS * 4 * HIDDEN * HIDDEN
    attention = report.part("8-bit attention")
    assert attention.num_weights == attention_weights
    assert attention.num_bytes == attention_weights + LAYERS * 4 * RANGE_BYTES
    assert attention.bits_per_weight == 8 * attention.num_bytes / attention_weights

    ffn_weights = 2 * HIDDEN * INTERMEDIATE
    eight_bit_ffn = report.part("8-bit FFN")
    assert eight_bit_ffn.num_weights == EIGHT_BIT_LAYERS * ffn_weights
    assert eight_bit_ffn.num_bytes == EIGHT_BIT_LAYERS * (ffn_weights + 2 * RANGE_BYTES)

    # Sign bits are padded to whole bytes per output row, and each output row also stores a float32 scale.
    intermediate_bytes = INTERMEDIATE * math.ceil(HIDDEN / 8) + 4 * INTERMEDIATE
    output_bytes = HIDDEN * math.ceil(INTERMEDIATE / 8) + 4 * HIDDEN
    one_bit_ffn = report.part("1-bit FFN")
    assert one_bit_ffn.num_weights == mp_layers * ffn_weights
    assert one_bit_ffn.num_bytes == mp_layers * (intermediate_bytes + output_bytes)
    assert one_bit_ffn.dtypes == ("F32", "U8")

    word = report.part("word embeddings")
    assert word.num_weights == VOCAB * HIDDEN
    assert word.num_bytes == VOCAB * HIDDEN + RANGE_BYTES
    assert word.dtypes == ("F32", "I8")
    position = report.part("position embeddings")
    assert position.num_bytes == POSITIONS * HIDDEN + RANGE_BYTES
    assert report.part("token type embeddings").num_bytes == 4 * 2 * HIDDEN

    layer_norms = (1 + 2 * LAYERS) * 2 * HIDDEN
    assert report.part("LayerNorms").num_bytes == 4 * layer_norms
    encoder_biases = LAYERS * (4 * HIDDEN + INTERMEDIATE + HIDDEN)
    assert report.part("biases").num_bytes == 4 * encoder_biases
    assert report.part("pooler").num_bytes == 4 * (HIDDEN * HIDDEN + HIDDEN)
    assert report.part("classifier").num_bytes == 4 * (HIDDEN * 2 + 2)


def test_fp32_size_matches_bert_parameter_count():
    report = size_report(tiny_model())

    assert report.fp32_bytes == 4 * fp32_parameter_count()
    assert report.total_weights == fp32_parameter_count()
    assert sum(part.fp32_bytes for part in report.parts) == report.fp32_bytes
    assert report.compression_ratio == report.fp32_bytes / report.total_bytes
    assert report.compression_ratio > 3


def test_bare_encoder_has_no_classifier(tmp_path):
    model = tiny_model(model_class=SensiMixModel)
    model.save_pretrained(tmp_path)

    report = size_report(tmp_path)

    assert report.model_class == "SensiMixModel"
    assert report.part("classifier").num_bytes == 0
    assert report.part("classifier").bits_per_weight is None
    assert report.fp32_bytes == 4 * fp32_parameter_count(num_labels=None)
    assert report.total_bytes + report.header_bytes == report.file_bytes


def test_training_form_is_all_float32():
    model = tiny_model(pack=False)

    report = size_report(model)

    assert not report.is_packed
    for part in report.parts:
        if part.num_weights:
            assert part.storage_bits == 32, part.name
            assert part.bits_per_weight == 32, part.name
    assert report.total_bytes == report.fp32_bytes
    assert report.compression_ratio == 1


def test_float16_load_counts_half_precision(packed_folder):
    half = SensiMixForSequenceClassification.from_pretrained(packed_folder[1], dtype=torch.float16)

    report = size_report(half)

    assert report.part("LayerNorms").storage_bits == 16
    assert report.part("pooler").storage_bits == 16
    assert report.part("8-bit attention").storage_bits == 8
    assert report.part("1-bit FFN").storage_bits == 1


def test_sharded_folder_equals_single_file(packed_folder, tmp_path):
    model, folder = packed_folder
    model.save_pretrained(tmp_path, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").exists()

    sharded = size_report(tmp_path)
    single = size_report(folder)

    assert sharded.parts == single.parts
    shard_files = [name for name in os.listdir(tmp_path) if name.endswith(".safetensors")]
    assert len(shard_files) > 1
    assert sharded.file_bytes == sum((tmp_path / name).stat().st_size for name in shard_files)
    assert sharded.total_bytes + sharded.header_bytes == sharded.file_bytes


def test_format_lists_every_nonempty_part(packed_folder):
    report = size_report(packed_folder[1])

    text = format_size_report(report)

    lines = text.splitlines()
    assert lines[2] == "| part | weights | stored bytes | bits per weight | weight bits | dtypes | FP32 bytes |"
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| part")]
    names = [row.split("|")[1].strip() for row in rows]
    assert names == [name for name in PART_NAMES if name != "other"] + ["total"]
    one_bit = rows[names.index("1-bit FFN")].split("|")
    assert one_bit[5].strip() == "1"
    assert f"{report.part('1-bit FFN').num_bytes:,}" in one_bit[3]
    assert f"compression ratio {report.compression_ratio:.2f}x" in text
    assert f"{report.file_bytes:,} bytes" in text


def test_part_lookup_rejects_unknown_name(packed_folder):
    report = size_report(packed_folder[0])

    with pytest.raises(KeyError, match="embeddings"):
        report.part("attention")


@pytest.mark.parametrize("value", [42, None, BertModel], ids=["int", "none", "class"])
def test_rejects_other_objects(value):
    with pytest.raises(TypeError, match="SensiMix model"):
        size_report(value)


def test_rejects_float_bert_model():
    config = BertConfig(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=4)

    with pytest.raises(TypeError, match="from_bert"):
        size_report(BertModel(config))


def test_rejects_bad_folders(tmp_path):
    with pytest.raises(ValueError, match="not a local folder"):
        size_report(tmp_path / "missing")

    with pytest.raises(ValueError, match="no config.json"):
        size_report(tmp_path)

    bert_folder = tmp_path / "bert"
    BertModel(BertConfig(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=1, num_attention_heads=4)).save_pretrained(
        bert_folder
    )
    with pytest.raises(ValueError, match="model_type='bert'"):
        size_report(bert_folder)


def test_rejects_folder_without_weights(packed_folder, tmp_path):
    (tmp_path / "config.json").write_bytes((packed_folder[1] / "config.json").read_bytes())

    with pytest.raises(ValueError, match="model.safetensors"):
        size_report(tmp_path)


def test_header_reader_rejects_damaged_files(packed_folder, tmp_path):
    data = (packed_folder[1] / "model.safetensors").read_bytes()
    (header_length,) = struct.unpack("<Q", data[:8])
    cases = {
        "short.safetensors": (data[:5], "fewer than its 8-byte header length field"),
        "cut-header.safetensors": (data[: 8 + header_length // 2], "declares a header of"),
        "cut-data.safetensors": (data[: 8 + header_length + 10], "truncated"),
        "garbage.safetensors": (data[:8] + b"\xff" * header_length + data[8 + header_length :], "not valid JSON"),
    }
    for name, (content, fragment) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ValueError, match=fragment):
            read_safetensors_header(str(path))

    header, size = read_safetensors_header(str(packed_folder[1] / "model.safetensors"))
    assert size == 8 + header_length
    assert header["bert.encoder.layer.3.output.dense.weight_bits"]["dtype"] == "U8"
    assert json.loads(data[8 : 8 + header_length]) == header
