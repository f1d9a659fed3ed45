"""Model cards for SensiMix models trained by `sensimix train`.

The card is a Jinja template (`templates/sensimix_model_card.md` in the package, linked from `model_cards/` at the
repository root) filled through
`huggingface_hub.ModelCard.from_template`. Its YAML header comes from `ModelCardData`, whose `eval_results` become the
`model-index` entry that the Hugging Face Hub reads for its evaluation widget.
"""

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from transformers.utils import logging

from .configuration_sensimix import SensiMixConfig
from .data import MOVIE_SENTIMENT_TASK, get_task_spec
from .size_report import MIB, SizeReport, format_size_report


logger = logging.get_logger(__name__)

TEMPLATE_NAME = "sensimix_model_card.md"
# The template ships inside the package (package data), so wheels have it; model_cards/ links to it.
DEFAULT_TEMPLATE_PATH = Path(__file__).resolve().parent / "templates" / TEMPLATE_NAME
MODEL_CARD_TAGS = ("sensimix", "quantization", "1-bit", "8-bit", "bert", "text-classification")
PIPELINE_TAG = "text-classification"
# Readable names of the metric keys of `sensimix_hf.metrics`, for the card's table and the model-index.
METRIC_DISPLAY_NAMES = {
    "accuracy": "Accuracy",
    "f1": "F1",
    "matthews_correlation": "Matthews correlation",
    "pearson": "Pearson correlation",
    "spearmanr": "Spearman correlation",
}
MOVIE_SENTIMENT_DATASET_NAME = "Movie review snippets (Hutto and Gilbert, ICWSM 2014)"


def find_model_card_template(template_path: str | os.PathLike | None = None) -> Path:
    """Return the path of the model card template; raise `FileNotFoundError` when it is missing."""
    path = Path(template_path) if template_path is not None else DEFAULT_TEMPLATE_PATH
    if not path.is_file():
        raise FileNotFoundError(
            f"The model card template {path} was not found. Pass an existing template file, or reinstall "
            f"sensimix-hf, whose package contains templates/{TEMPLATE_NAME}."
        )
    return path


def describe_dataset(
    task_name: str, train_file: str | None = None, validation_file: str | None = None
) -> dict[str, str | None]:
    """Return the `type`, `name`, `config` and `split` of a task's evaluation data, as the model-index names them.

    GLUE tasks loaded from the Hub are `nyu-mll/glue` with the task as config. Local files are described by the
    task name and the file name, because they have no Hub id.
    """
    spec = get_task_spec(task_name)
    if validation_file is not None:
        return {
            "type": spec.name,
            "name": f"{spec.name} ({Path(validation_file).name})",
            "config": None,
            "split": "validation",
        }
    if spec.name == MOVIE_SENTIMENT_TASK:
        name = MOVIE_SENTIMENT_DATASET_NAME
        if train_file is not None:
            name += f" from {Path(train_file).name}"
        return {"type": spec.name, "name": name, "config": None, "split": "validation"}
    return {
        "type": spec.hub_dataset,
        "name": f"GLUE {spec.name.upper()}",
        "config": spec.name,
        "split": spec.validation_splits[0],
    }


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _format_value(value: Any) -> str:
    return f"{value:.4f}" if _is_number(value) else "-"


def _layers_text(indices: list[int]) -> str:
    if not indices:
        return "none"
    if indices == list(range(indices[0], indices[-1] + 1)) and len(indices) > 1:
        return f"{indices[0]}-{indices[-1]}"
    return ", ".join(str(index) for index in indices)


def precision_table(config: SensiMixConfig) -> str:
    """Render the precision of each part of a SensiMix model as a markdown table."""
    all_layers = list(range(config.num_hidden_layers))
    eight_bit_layers = all_layers[: config.num_8bit_layers]
    mp_layers = config.mp_layer_indices
    ranges = "one range per row" if config.quantization_ranges == "channel" else "one range per tensor"
    index_8bit = f"8-bit index (int8 + float32 min/max, {ranges})"
    if config.binarize_ffn_inputs:
        binary = "1-bit weights and 1-bit inputs (XNOR-popcount)"
    else:
        binary = "1-bit weights, float inputs"
    if config.binary_scale == "row":
        binary += ", float32 output scale per row"
    embeddings = index_8bit if config.quantize_embeddings else "float32"
    rows = [
        ("word and position embeddings", "-", embeddings),
        ("token type embeddings, LayerNorms, biases", "-", "float32"),
        ("self-attention Q, K, V and output", _layers_text(all_layers), index_8bit),
        ("FFN intermediate and output", _layers_text(eight_bit_layers), index_8bit),
        ("FFN intermediate and output", _layers_text(mp_layers), binary),
        ("pooler and classifier", "-", "float32"),
    ]
    lines = ["| part | encoder layers | storage and arithmetic |", "|---|---|---|"]
    lines += [f"| {part} | {layers} | {storage} |" for part, layers, storage in rows if layers != "none"]
    return "\n".join(lines)


def results_table(metric_names: tuple[str, ...], results: Mapping[str, Any]) -> str:
    """Render the packed, unpacked and FP32 reference metrics of a run as a markdown table."""
    has_reference = any(f"fp32_eval_{name}" in results for name in metric_names)
    header = "| metric | SensiMix (packed) | SensiMix (before packing) |"
    separator = "|---|---:|---:|"
    if has_reference:
        header += " FP32 reference (same depth) | difference |"
        separator += "---:|---:|"
    lines = [header, separator]
    for name in metric_names:
        packed = results.get(f"eval_{name}")
        row = f"| {METRIC_DISPLAY_NAMES.get(name, name)} | {_format_value(packed)} | "
        row += f"{_format_value(results.get(f'unpacked_eval_{name}'))} |"
        if has_reference:
            reference = results.get(f"fp32_eval_{name}")
            difference = "-"
            if _is_number(packed) and _is_number(reference):
                difference = f"{100 * (packed - reference):+.2f} points"
            row += f" {_format_value(reference)} | {difference} |"
        lines.append(row)
    return "\n".join(lines)


def _eval_results(
    metric_names: tuple[str, ...], results: Mapping[str, Any], dataset: Mapping[str, str | None], task_name: str
) -> list[EvalResult]:
    eval_results = []
    for name in metric_names:
        value = results.get(f"eval_{name}")
        # The model-index has no way to state "undefined"; a nan correlation is left out.
        if not _is_number(value):
            continue
        eval_results.append(
            EvalResult(
                task_type=PIPELINE_TAG,
                task_name=f"Text classification ({task_name})",
                dataset_type=dataset["type"],
                dataset_name=dataset["name"],
                dataset_config=dataset.get("config"),
                dataset_split=dataset.get("split"),
                metric_type=name,
                metric_name=METRIC_DISPLAY_NAMES.get(name, name),
                metric_value=round(float(value), 6),
            )
        )
    return eval_results


def _recipe_lines(recipe: Mapping[str, Any]) -> str:
    return "\n".join(f"- `{key}`: {value}" for key, value in recipe.items() if value is not None)


def build_model_card(
    *,
    config: SensiMixConfig,
    task_name: str,
    dataset: Mapping[str, str | None],
    results: Mapping[str, Any],
    size: SizeReport | None,
    recipe: Mapping[str, Any],
    command: str | None,
    model_name: str,
    base_model_id: str | None = None,
    base_model_path: str | None = None,
    license: str = "apache-2.0",
    template_path: str | os.PathLike | None = None,
) -> ModelCard:
    """Build the model card of a trained SensiMix model from its config, results and size.

    Args:
        config: Config of the saved model.
        task_name: Task of `sensimix_hf.data.TASKS` the model was trained on.
        dataset: Evaluation data as returned by `describe_dataset`.
        results: The run's results (`all_results.json`): `eval_*` of the packed model, `unpacked_eval_*`, and
            `fp32_eval_*` of the FP32 reference when there is one.
        size: Size report of the saved model, or None to leave the size section out.
        recipe: Training hyper-parameters, shown as a list.
        command: Command line that trained the model, or None when it was trained from Python.
        model_name: Name of the model in the card's title and in the model-index.
        base_model_id: Hub id of the BERT checkpoint, written as `base_model` in the YAML header.
        base_model_path: Name or local path of the BERT checkpoint, shown in the card's text.
        license: License id of the YAML header.
        template_path: Jinja template to fill; by default the package's `templates/sensimix_model_card.md`.
    """
    spec = get_task_spec(task_name)
    metric_names = spec.metric_names
    datasets = [dataset["type"]] if dataset.get("type") else None
    card_data = ModelCardData(
        model_name=model_name,
        base_model=base_model_id,
        library_name="transformers",
        license=license,
        tags=list(MODEL_CARD_TAGS),
        datasets=datasets,
        metrics=list(metric_names),
        pipeline_tag=PIPELINE_TAG,
        eval_results=_eval_results(metric_names, results, dataset, spec.name) or None,
    )
    size_summary = None
    if size is not None:
        ratio = size.compression_ratio
        size_summary = (
            f"{size.total_bytes / MIB:.2f} MiB of stored tensors against {size.fp32_bytes / MIB:.2f} MiB for the "
            f"FP32 model of the same depth ({ratio:.2f}x smaller, {size.bits_per_weight:.2f} bits per weight)."
        )
    labels = [config.id2label[index] for index in range(config.num_labels)]
    return ModelCard.from_template(
        card_data,
        template_path=str(find_model_card_template(template_path)),
        model_name=model_name,
        base_model=base_model_id or base_model_path or config.base_model_name_or_path or "an unnamed BERT checkpoint",
        layout=f"({config.num_8bit_layers}+{config.num_mp_layers})",
        num_8bit_layers=config.num_8bit_layers,
        num_mp_layers=config.num_mp_layers,
        num_hidden_layers=config.num_hidden_layers,
        hidden_size=config.hidden_size,
        task_name=spec.name,
        dataset_name=dataset["name"],
        labels=", ".join(f"`{label}`" for label in labels),
        precision_table=precision_table(config),
        size_summary=size_summary,
        size_table=format_size_report(size).strip() if size is not None else None,
        results_table=results_table(metric_names, results),
        eval_samples=results.get("eval_samples"),
        has_reference=any(key.startswith("fp32_eval_") for key in results),
        recipe=_recipe_lines(recipe),
        command=command,
        binary_scale=config.binary_scale,
        format_version=config.sensimix_format_version,
    )


def write_model_card(output_dir: str | os.PathLike, *, model_name: str | None = None, **kwargs) -> Path:
    """Build the model card with `build_model_card` and save it as `README.md` in `output_dir`; return its path.

    `model_name` defaults to the name of `output_dir`.
    """
    output_dir = Path(output_dir)
    card = build_model_card(model_name=model_name or output_dir.resolve().name, **kwargs)
    path = output_dir / "README.md"
    card.save(path)
    return path


__all__ = [
    "MODEL_CARD_TAGS",
    "build_model_card",
    "describe_dataset",
    "find_model_card_template",
    "precision_table",
    "results_table",
    "write_model_card",
]
