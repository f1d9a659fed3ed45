"""The `sensimix` command line: `train`, `evaluate` and `inspect` SensiMix models.

`sensimix train` parses its options with `transformers.HfArgumentParser`, so every `TrainingArguments` option of the
Trainer works next to the SensiMix ones. User errors (a bad option, model folder, data file or output folder) end
the command with exit code 2 and a one-line message on stderr, before any training starts.
"""

import argparse
import json
import logging
import shlex
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm
from transformers import HfArgumentParser, TrainingArguments

from . import __version__
from .callback import SensiMixStage
from .configuration_sensimix import SensiMixConfig
from .size_report import MIB, format_size_report, size_report
from .training import (
    TRAINING_DEFAULTS,
    DataTrainingArguments,
    EvaluationArguments,
    ModelArguments,
    SensiMixArguments,
    UsageError,
    format_training_summary,
    run_evaluation,
    run_training,
)


PROGRAM = "sensimix"
USAGE_ERROR_EXIT_CODE = 2
INTERRUPTED_EXIT_CODE = 130
# Result keys that measure speed on the machine of the run, not the model; `inspect` leaves them out.
_TIMING_SUFFIXES = ("_runtime", "_per_second", "_preparation_time")


class _TqdmLoggingHandler(logging.Handler):
    """Log handler that writes through `tqdm.write`, so that log lines do not break a progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - a log handler must not raise, as in logging.StreamHandler
            self.handleError(record)


class _LevelPrefixFormatter(logging.Formatter):
    """Formatter that prints info lines as they are and prefixes warnings and errors with their level."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        if record.levelno >= logging.WARNING:
            return f"[{PROGRAM}] {record.levelname}: {message}"
        return f"[{PROGRAM}] {message}"


def configure_logging() -> None:
    """Show the info logs of `sensimix_hf` (job steps, training stage changes) on stderr.

    Only the package's own loggers change; transformers keeps its verbosity, which `--log_level` sets.
    """
    package_logger = logging.getLogger("sensimix_hf")
    package_logger.setLevel(logging.INFO)
    if not any(isinstance(handler, _TqdmLoggingHandler) for handler in package_logger.handlers):
        handler = _TqdmLoggingHandler()
        handler.setFormatter(_LevelPrefixFormatter("%(message)s"))
        package_logger.addHandler(handler)
    # torch warns at every DataLoader built on a machine without an accelerator, because the Trainer's default
    # requests pinned memory. The run is correct, and the warning would repeat at every evaluation.
    warnings.filterwarnings("ignore", message=".*'pin_memory' argument is set as true but no accelerator", category=UserWarning)


def _usage_failure(command: str, error: BaseException) -> int:
    message = " ".join(str(error).split())
    print(f"{PROGRAM} {command}: error: {message}", file=sys.stderr)
    return USAGE_ERROR_EXIT_CODE


def _mark_default(parser: argparse.ArgumentParser, name: str, value: Any) -> None:
    action = parser._option_string_actions[f"--{name}"]
    action.help = f"[{PROGRAM} train default: {value}] {action.help or ''}"


def build_train_parser() -> HfArgumentParser:
    """Build the parser of `sensimix train`: the SensiMix options plus every `TrainingArguments` option."""
    parser = HfArgumentParser(
        (ModelArguments, DataTrainingArguments, SensiMixArguments, TrainingArguments),
        prog=f"{PROGRAM} train",
        # argparse would list all of the Trainer's options in the usage line of every error message.
        usage=f"{PROGRAM} train --model_name_or_path BERT --output_dir FOLDER [options]",
        description=(
            "Convert a BERT checkpoint to SensiMix (a+b), train it with the Trainer and the SensiMix schedule "
            "(ABWR, prioritized training, inverse layer-wise fine-tuning), evaluate it before and after packing, "
            "and save the packed model, tokenizer, results and a model card to --output_dir. Options of "
            "transformers' TrainingArguments work too; the defaults marked '[sensimix train default: ...]' differ "
            "from the Trainer's. The learning rate keeps the Trainer's default unless set (the SensiMix paper "
            "used 2.5e-5 to 3e-5). The job always trains and evaluates, so --do_train and --do_eval change "
            "nothing; --do_predict also labels the test split with the packed model (predict_results.txt). Pass a "
            "single .json file instead of options to read them from it."
        ),
    )
    parser.set_defaults(**TRAINING_DEFAULTS)
    for name, value in TRAINING_DEFAULTS.items():
        _mark_default(parser, name, value)
    parser._option_string_actions["--output_dir"].required = True
    return parser


def build_evaluate_parser() -> HfArgumentParser:
    """Build the parser of `sensimix evaluate`."""
    return HfArgumentParser(
        (ModelArguments, DataTrainingArguments, EvaluationArguments),
        prog=f"{PROGRAM} evaluate",
        usage=f"{PROGRAM} evaluate --model_name_or_path FOLDER [--task_name TASK] [options]",
        description=(
            "Evaluate a saved model (a folder written by `sensimix train`, packed or not) on the validation split "
            "of a task and print its metrics. With the data options of the train run, it uses the same validation "
            "examples."
        ),
    )


def build_inspect_parser() -> argparse.ArgumentParser:
    """Build the parser of `sensimix inspect`."""
    parser = argparse.ArgumentParser(
        prog=f"{PROGRAM} inspect",
        description=(
            "Describe a saved SensiMix model: its (a+b) layout, 1-bit FFN layers and training stage, packed or not, "
            "format version, size per part against FP32, base model and labels."
        ),
    )
    parser.add_argument("model_path", help="Folder written by `sensimix train` or `save_pretrained`.")
    parser.add_argument("--json", action="store_true", help="Print the description as JSON.")
    return parser


def _parse_dataclasses(parser: HfArgumentParser, argv: list[str]) -> tuple:
    if len(argv) == 1 and argv[0].endswith(".json"):
        return parser.parse_json_file(json_file=argv[0])
    return parser.parse_args_into_dataclasses(args=argv)


def train_command(argv: list[str]) -> int:
    """Run `sensimix train` with the options in `argv`; return the exit code."""
    parser = build_train_parser()
    try:
        model_args, data_args, sensimix_args, training_args = _parse_dataclasses(parser, argv)
    except (ValueError, OSError) as error:
        return _usage_failure("train", error)
    command = shlex.join([PROGRAM, "train", *argv])
    try:
        results = run_training(model_args, data_args, sensimix_args, training_args, command=command)
    except UsageError as error:
        return _usage_failure("train", error)
    print(format_training_summary(results, data_args.task_name, training_args.output_dir))
    return 0


def evaluate_command(argv: list[str]) -> int:
    """Run `sensimix evaluate` with the options in `argv`; return the exit code."""
    parser = build_evaluate_parser()
    try:
        model_args, data_args, eval_args = _parse_dataclasses(parser, argv)
    except (ValueError, OSError) as error:
        return _usage_failure("evaluate", error)
    try:
        metrics = run_evaluation(model_args, data_args, eval_args)
    except UsageError as error:
        return _usage_failure("evaluate", error)
    print(f"Metrics of {model_args.model_name_or_path} on {data_args.task_name}:")
    for key in sorted(metrics):
        print(f"  {key} = {_format_metric(metrics[key])}")
    return 0


def _format_metric(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _training_stage(config: SensiMixConfig) -> str:
    binary = sorted(config.binary_ffn_layers)
    if binary == config.mp_layer_indices:
        return SensiMixStage.FINAL.name
    if not binary:
        return SensiMixStage.PRIORITIZED.name
    return SensiMixStage.INVERSE_LAYERWISE.name


def describe_saved_model(model_path: str) -> dict[str, Any]:
    """Describe a saved SensiMix folder as a dict: layout, schedule state, format, sizes per part, base model, labels.

    Raises:
        UsageError: if `model_path` is not a folder with a SensiMix config.json.
    """
    folder = Path(model_path)
    config_path = folder / "config.json"
    if not folder.is_dir():
        raise UsageError(f"{model_path} is not a folder. Pass a folder written by `sensimix train` or save_pretrained.")
    if not config_path.is_file():
        raise UsageError(f"{model_path} has no config.json. Pass a folder written by `sensimix train` or save_pretrained.")
    try:
        model_type = json.loads(config_path.read_text(encoding="utf-8")).get("model_type")
    except (OSError, json.JSONDecodeError) as error:
        raise UsageError(f"Could not read {config_path}: {error}") from error
    if model_type != SensiMixConfig.model_type:
        raise UsageError(
            f"{model_path} contains a {model_type!r} model, but `sensimix inspect` describes SensiMix models "
            f"(model_type {SensiMixConfig.model_type!r}). Convert a BERT model with `sensimix train` first."
        )
    try:
        config = SensiMixConfig.from_pretrained(model_path)
    except (OSError, ValueError, TypeError) as error:
        raise UsageError(f"Invalid SensiMix config in {config_path}: {error}") from error

    description: dict[str, Any] = {
        "path": str(folder),
        "layout": f"({config.num_8bit_layers}+{config.num_mp_layers})",
        "num_hidden_layers": config.num_hidden_layers,
        "num_8bit_layers": config.num_8bit_layers,
        "num_mp_layers": config.num_mp_layers,
        "hidden_size": config.hidden_size,
        "mp_layer_indices": config.mp_layer_indices,
        "binary_ffn_layers": sorted(config.binary_ffn_layers),
        "training_stage": _training_stage(config),
        "is_packed": bool(config.is_packed),
        "sensimix_format_version": config.sensimix_format_version,
        "binary_scale": config.binary_scale,
        "binarize_ffn_inputs": config.binarize_ffn_inputs,
        "quantization_ranges": config.quantization_ranges,
        "quantize_embeddings": config.quantize_embeddings,
        "base_model": config.base_model_name_or_path,
        "architectures": config.architectures,
        "problem_type": config.problem_type,
        "labels": {str(index): label for index, label in sorted(config.id2label.items())},
    }
    try:
        report = size_report(model_path)
    except ValueError as error:
        # A folder with a config but without weights (or with damaged ones) is still described.
        description["size_error"] = str(error)
    else:
        description["size"] = {
            "parts": [
                {
                    "name": part.name,
                    "num_weights": part.num_weights,
                    "num_bytes": part.num_bytes,
                    "storage_bits": part.storage_bits,
                    "bits_per_weight": part.bits_per_weight,
                }
                for part in report.parts
                if part.num_bytes or part.num_weights
            ],
            "total_bytes": report.total_bytes,
            "file_bytes": report.file_bytes,
            "fp32_bytes": report.fp32_bytes,
            "compression_ratio": report.compression_ratio,
            "bits_per_weight": report.bits_per_weight,
        }
        description["size_table"] = format_size_report(report)
    results_path = folder / "all_results.json"
    if results_path.is_file():
        results = json.loads(results_path.read_text(encoding="utf-8"))
        description["results"] = {
            key: value
            for key, value in results.items()
            if key.startswith(("eval_", "unpacked_eval_", "fp32_eval_"))
            and not key.endswith(_TIMING_SUFFIXES)
            and isinstance(value, (int, float))
        }
    return description


def format_description(description: dict[str, Any]) -> str:
    """Render the output of `describe_saved_model` as text."""
    mp_layers = description["mp_layer_indices"]
    binary = description["binary_ffn_layers"]
    labels = ", ".join(f"{index}={label}" for index, label in description["labels"].items())
    lines = [
        f"SensiMix model in {description['path']}",
        f"  layout: {description['layout']}: {description['num_8bit_layers']} 8-bit layers, "
        f"{description['num_mp_layers']} mixed-precision layers {mp_layers}, hidden size {description['hidden_size']}",
        f"  1-bit FFN layers: {binary if binary else 'none'} (training stage {description['training_stage']})",
        f"  packed: {'yes' if description['is_packed'] else 'no (training form with latent float weights)'}",
        f"  format version: {description['sensimix_format_version']}",
        f"  1-bit output scale: {description['binary_scale']}, 1-bit inputs: {description['binarize_ffn_inputs']}, "
        f"8-bit ranges per {description['quantization_ranges']}, 8-bit embeddings: {description['quantize_embeddings']}",
        f"  base model: {description['base_model'] or 'unknown'}",
        f"  labels: {labels} ({description['problem_type'] or 'problem type not set'})",
    ]
    if "size" in description:
        size = description["size"]
        lines.append(
            f"  size: {size['total_bytes'] / MIB:.2f} MiB of tensors, FP32 of the same architecture "
            f"{size['fp32_bytes'] / MIB:.2f} MiB, ratio {size['compression_ratio']:.2f}x"
        )
        lines.append("")
        lines.append(description["size_table"].rstrip())
    else:
        lines.append(f"  size: not available ({description['size_error']})")
    if description.get("results"):
        lines.append("")
        lines.append("Results recorded by the train run:")
        lines += [f"  {key} = {_format_metric(value)}" for key, value in sorted(description["results"].items())]
    return "\n".join(lines)


def inspect_command(argv: list[str]) -> int:
    """Run `sensimix inspect` with the options in `argv`; return the exit code."""
    arguments = build_inspect_parser().parse_args(argv)
    try:
        description = describe_saved_model(arguments.model_path)
    except UsageError as error:
        return _usage_failure("inspect", error)
    if arguments.json:
        description.pop("size_table", None)
        print(json.dumps(description, indent=2))
    else:
        print(format_description(description))
    return 0


COMMANDS = {
    "train": (train_command, "convert a BERT checkpoint to SensiMix, train, evaluate, pack and save it"),
    "evaluate": (evaluate_command, "evaluate a saved model on a task's validation split"),
    "inspect": (inspect_command, "describe a saved SensiMix model: layout, stage, format, size per part"),
}


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser, which lists the commands; each command parses its own options."""
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="SensiMix mixed 8-bit / 1-bit quantization of BERT models for Hugging Face Transformers.",
        epilog=f"Run '{PROGRAM} COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"{PROGRAM} {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_text) in COMMANDS.items():
        subparsers.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `sensimix` command line with `argv` (default: `sys.argv[1:]`); return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        # Prints the help, the version, or an error naming the known commands, and exits.
        build_parser().parse_args(argv)
        return USAGE_ERROR_EXIT_CODE
    configure_logging()
    command, _ = COMMANDS[argv[0]]
    try:
        return command(argv[1:])
    except KeyboardInterrupt:
        print(f"{PROGRAM} {argv[0]}: interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT_CODE


__all__ = ["build_parser", "describe_saved_model", "format_description", "main"]
