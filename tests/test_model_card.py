"""Tests of the model card: YAML header, model-index, and the tables filled into the template."""

import math

import pytest
import yaml
from huggingface_hub import ModelCard

from sensimix_hf import SensiMixConfig, SensiMixForSequenceClassification
from sensimix_hf.model_card import (
    MODEL_CARD_TAGS,
    build_model_card,
    describe_dataset,
    find_model_card_template,
    precision_table,
    results_table,
    write_model_card,
)
from sensimix_hf.size_report import size_report


RESULTS = {
    "eval_accuracy": 0.8125,
    "eval_samples": 64,
    "unpacked_eval_accuracy": 0.8125,
    "fp32_eval_accuracy": 0.84375,
}
RECIPE = {"learning_rate": 5e-5, "num_train_epochs": 4, "abwr_weight": 1.0, "max_steps": None}


def tiny_config(**overrides) -> SensiMixConfig:
    values = {
        "vocab_size": 99,
        "hidden_size": 32,
        "num_hidden_layers": 4,
        "num_8bit_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 64,
        "max_position_embeddings": 64,
        "id2label": {0: "negative", 1: "positive"},
        "label2id": {"negative": 0, "positive": 1},
        "base_model_name_or_path": "/models/tiny-bert",
    }
    values.update(overrides)
    return SensiMixConfig(**values)


@pytest.fixture(scope="module")
def packed_model():
    model = SensiMixForSequenceClassification(tiny_config())
    model.set_binary_ffn_layers(model.mp_layer_indices)
    return model.pack()


def _card_arguments(model, **overrides) -> dict:
    arguments = {
        "config": model.config,
        "task_name": "movie_sentiment",
        "dataset": describe_dataset("movie_sentiment"),
        "results": RESULTS,
        "size": size_report(model),
        "recipe": RECIPE,
        "command": "sensimix train --model_name_or_path /models/tiny-bert --output_dir out",
        "base_model_id": "google/bert_uncased_L-4_H-256_A-4",
        "base_model_path": "/models/tiny-bert",
    }
    arguments.update(overrides)
    return arguments


def _yaml_header(text: str) -> dict:
    assert text.startswith("---\n")
    header, _ = text[len("---\n") :].split("\n---\n", 1)
    return yaml.safe_load(header)


def test_card_yaml_header_fields(packed_model, tmp_path):
    path = write_model_card(tmp_path, model_name="sensimix-tiny", **_card_arguments(packed_model))
    header = _yaml_header(path.read_text(encoding="utf-8"))
    assert header["library_name"] == "transformers"
    assert header["base_model"] == "google/bert_uncased_L-4_H-256_A-4"
    assert header["license"] == "apache-2.0"
    assert header["tags"] == list(MODEL_CARD_TAGS)
    assert header["datasets"] == ["movie_sentiment"]
    assert header["pipeline_tag"] == "text-classification"


def test_card_model_index_metrics(packed_model, tmp_path):
    path = write_model_card(tmp_path, model_name="sensimix-tiny", **_card_arguments(packed_model))
    model_index = _yaml_header(path.read_text(encoding="utf-8"))["model-index"]
    assert len(model_index) == 1
    assert model_index[0]["name"] == "sensimix-tiny"
    result = model_index[0]["results"][0]
    assert result["task"]["type"] == "text-classification"
    assert result["dataset"]["type"] == "movie_sentiment"
    assert result["dataset"]["name"] == "Movie review snippets (Hutto and Gilbert, ICWSM 2014)"
    assert result["dataset"]["split"] == "validation"
    assert result["metrics"] == [{"type": "accuracy", "value": 0.8125, "name": "Accuracy"}]


def test_card_loads_with_hub_parser(packed_model, tmp_path):
    path = write_model_card(tmp_path, model_name="sensimix-tiny", **_card_arguments(packed_model))
    card = ModelCard.load(path)
    assert card.data.eval_results[0].metric_value == 0.8125
    assert card.data.eval_results[0].task_type == "text-classification"
    assert card.data.base_model == "google/bert_uncased_L-4_H-256_A-4"


def test_card_body_contents(packed_model, tmp_path):
    text = write_model_card(tmp_path, model_name="sensimix-tiny", **_card_arguments(packed_model)).read_text(
        encoding="utf-8"
    )
    assert "# sensimix-tiny" in text
    assert "A SensiMix (2+2) compression of google/bert_uncased_L-4_H-256_A-4" in text
    assert "Labels: `negative`, `positive`." in text
    assert "| Accuracy | 0.8125 | 0.8125 | 0.8438 | -3.12 points |" in text
    assert "| 1-bit FFN |" in text
    assert "- `learning_rate`: 5e-05" in text
    # A recipe entry without a value is left out.
    assert "max_steps" not in text
    assert "sensimix train --model_name_or_path /models/tiny-bert --output_dir out" in text
    assert "{{" not in text


def test_card_size_summary_uses_report(packed_model, tmp_path):
    report = size_report(packed_model)
    text = write_model_card(tmp_path, model_name="m", **_card_arguments(packed_model)).read_text(encoding="utf-8")
    assert f"({report.compression_ratio:.2f}x smaller, {report.bits_per_weight:.2f} bits per weight)" in text


def test_card_without_reference_command_or_size(packed_model, tmp_path):
    arguments = _card_arguments(
        packed_model,
        results={"eval_accuracy": 0.75, "unpacked_eval_accuracy": 0.75},
        command=None,
        size=None,
        base_model_id=None,
    )
    path = write_model_card(tmp_path, model_name="m", **arguments)
    text = path.read_text(encoding="utf-8")
    header = _yaml_header(text)
    assert "base_model" not in header
    assert "FP32 reference (same depth)" not in text
    assert "trained from Python with `sensimix_hf.training.run_training`" in text
    assert "## Size" not in text
    # Without a Hub id, the text names the local checkpoint.
    assert "compression of /models/tiny-bert" in text


def test_card_license_override(packed_model, tmp_path):
    path = write_model_card(tmp_path, model_name="m", license="mit", **_card_arguments(packed_model))
    assert _yaml_header(path.read_text(encoding="utf-8"))["license"] == "mit"


def test_card_glue_dataset_and_metrics(packed_model, tmp_path):
    results = {"eval_accuracy": 0.75, "eval_f1": 0.8, "eval_combined_score": 0.775}
    arguments = _card_arguments(packed_model, task_name="mrpc", dataset=describe_dataset("mrpc"), results=results)
    path = write_model_card(tmp_path, model_name="m", **arguments)
    header = _yaml_header(path.read_text(encoding="utf-8"))
    assert header["datasets"] == ["nyu-mll/glue"]
    assert header["metrics"] == ["accuracy", "f1"]
    result = header["model-index"][0]["results"][0]
    assert result["dataset"] == {"name": "GLUE MRPC", "type": "nyu-mll/glue", "config": "mrpc", "split": "validation"}
    assert [(metric["type"], metric["value"]) for metric in result["metrics"]] == [("accuracy", 0.75), ("f1", 0.8)]


def test_card_skips_nan_metric(packed_model, tmp_path):
    config = tiny_config(num_labels=1, id2label={0: "LABEL_0"}, label2id={"LABEL_0": 0})
    model = SensiMixForSequenceClassification(config)
    results = {"eval_pearson": math.nan, "eval_spearmanr": 0.5}
    arguments = _card_arguments(
        model, config=config, task_name="stsb", dataset=describe_dataset("stsb"), results=results, size=None
    )
    path = write_model_card(tmp_path, model_name="m", **arguments)
    metrics = _yaml_header(path.read_text(encoding="utf-8"))["model-index"][0]["results"][0]["metrics"]
    assert [metric["type"] for metric in metrics] == ["spearmanr"]
    assert "| Pearson correlation | - | - |" in path.read_text(encoding="utf-8")


def test_describe_dataset_local_files():
    described = describe_dataset("mrpc", train_file="/data/train.tsv", validation_file="/data/dev.tsv")
    assert described == {"type": "mrpc", "name": "mrpc (dev.tsv)", "config": None, "split": "validation"}


def test_describe_dataset_movie_ground_truth_file():
    described = describe_dataset("movie_sentiment", train_file="/data/movieReviewSnippets_GroundTruth.txt")
    assert described["name"].endswith("from movieReviewSnippets_GroundTruth.txt")
    assert described["type"] == "movie_sentiment"


def test_precision_table_rows():
    table = precision_table(tiny_config())
    assert "| self-attention Q, K, V and output | 0-3 | 8-bit index" in table
    assert "| FFN intermediate and output | 0-1 | 8-bit index" in table
    assert "| FFN intermediate and output | 2-3 | 1-bit weights and 1-bit inputs (XNOR-popcount), float32 output" in table


def test_precision_table_without_mp_layers():
    table = precision_table(tiny_config(num_8bit_layers=4, quantize_embeddings=False, binary_scale="none"))
    assert "1-bit" not in table
    assert "| word and position embeddings | - | float32 |" in table


def test_precision_table_single_mp_layer():
    table = precision_table(tiny_config(num_8bit_layers=3, quantization_ranges="channel"))
    assert "| FFN intermediate and output | 3 | 1-bit" in table
    assert "one range per row" in table


def test_results_table_without_reference():
    table = results_table(("accuracy",), {"eval_accuracy": 0.5, "unpacked_eval_accuracy": 0.5})
    assert table.splitlines() == [
        "| metric | SensiMix (packed) | SensiMix (before packing) |",
        "|---|---:|---:|",
        "| Accuracy | 0.5000 | 0.5000 |",
    ]


def test_missing_template_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="model card template"):
        find_model_card_template(tmp_path / "missing.md")


def test_build_model_card_custom_template(packed_model, tmp_path):
    template = tmp_path / "template.md"
    template.write_text("---\n{{ card_data }}\n---\n\n# {{ model_name }} {{ layout }}\n", encoding="utf-8")
    card = build_model_card(model_name="custom", template_path=template, **_card_arguments(packed_model))
    assert card.text.strip() == "# custom (2+2)"
    assert card.data.license == "apache-2.0"
