"""The SensiMix train and evaluate jobs behind `sensimix train` and `sensimix evaluate`.

`run_training` converts a BERT checkpoint with `from_bert` and trains it with `transformers.Trainer` and
`SensiMixCallback`. It then evaluates the final all-1-bit model, packs it and evaluates the packed model. The packed
model, its tokenizer, results files in transformers' conventions and a model card go to `output_dir`. With
`baseline=True` it also trains the FP32 BERT of the same depth with the same recipe, as the reference.

Everything that a user can get wrong (arguments, model folder, data, output folder) is checked before training and
raised as `UsageError`, so that a bad run fails in seconds instead of after an epoch.
"""

import dataclasses
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertForSequenceClassification,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
    set_seed,
)
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint
from transformers.utils import logging

from .callback import SensiMixCallback
from .data import (
    TASKS,
    TaskDataError,
    get_task_spec,
    load_local_split,
    load_task_datasets,
    select_prefix,
    tokenize_dataset,
)
from .index_linear import resolve_backend
from .metrics import build_compute_metrics
from .model_card import describe_dataset, find_model_card_template, write_model_card
from .modeling_sensimix import SensiMixForSequenceClassification
from .size_report import MIB, size_report


logger = logging.get_logger(__name__)

RUN_RECORD_NAME = "sensimix_run.json"
FP32_REFERENCE_DIR = "fp32_reference"
PREDICTIONS_NAME = "predict_results.txt"
# Files and folders that a train job writes into its output folder. With `overwrite_output_dir` they are removed
# first, so that no result of an earlier run survives next to the new ones (`all_results.json` is merged, not
# replaced, by `Trainer.save_metrics`). Other files in the folder are left alone.
RUN_OUTPUT_NAMES = (
    "all_results.json",
    "train_results.json",
    "eval_results.json",
    "test_results.json",
    "trainer_state.json",
    PREDICTIONS_NAME,
    "README.md",
    RUN_RECORD_NAME,
    FP32_REFERENCE_DIR,
)
# Fields that do not change what a run computes. A folder whose recorded run differs from the current one only in
# these contains the same run, so it can be resumed from its last checkpoint.
_RUN_IDENTITY_IGNORED_FIELDS = ("output_dir", "logging_dir", "resume_from_checkpoint", "overwrite_output_dir")
# Share of validation examples on which the packed and the unpacked final model may predict different classes before
# a warning. With the default 'dequantized' backend of the packed 8-bit linears the two agree exactly, but the opt-in
# 'int8' backend also quantizes the inputs of those linears.
PACKED_DISAGREEMENT_WARNING = 0.01
# Defaults of `sensimix train` that differ from the Trainer's; the user's options override them. Epochs and batch size
# follow the recipe of the SensiMix paper (Piao, Cho and Kang, PLOS ONE 2022: 6 epochs, batch 16). Its linear decay
# without warm-up, zero weight decay and gradient clipping at 1.0 are the Trainer's defaults already. The learning rate
# stays the Trainer's (5e-5) unless set; the paper used 3e-5 on MRPC and 2.5e-5 on SST-2.
TRAINING_DEFAULTS = {
    "eval_strategy": "epoch",
    "save_strategy": "no",
    "logging_steps": 10,
    "report_to": "none",
    "num_train_epochs": 6,
    "per_device_train_batch_size": 16,
}


class UsageError(ValueError):
    """Invalid argument, model folder, data or output folder of a job; raised before any training starts."""


@dataclass
class ModelArguments:
    """Arguments naming the model and tokenizer to start from."""

    model_name_or_path: str = field(
        metadata={
            "help": "For `train`: the BERT checkpoint to convert, a local folder or a Hub id. For `evaluate`: a "
            "folder saved by `sensimix train` (packed or not), or any sequence classifier that transformers loads."
        }
    )
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "Tokenizer folder or Hub id, if not the one of --model_name_or_path."}
    )
    cache_dir: str | None = field(
        default=None, metadata={"help": "Folder for models and data sets downloaded from the Hugging Face Hub."}
    )


@dataclass
class DataTrainingArguments:
    """Arguments naming the task and its data, with the names of transformers' `run_glue.py`."""

    task_name: str = field(
        default="movie_sentiment",
        metadata={"help": f"Task to train and evaluate on. Known tasks: {', '.join(sorted(TASKS))}."},
    )
    train_file: str | None = field(
        default=None,
        metadata={
            "help": "csv, tsv or json file of training examples with the task's text columns and `label`. For "
            "movie_sentiment alone, a movieReviewSnippets_GroundTruth.txt file is split into train, validation "
            "and test."
        },
    )
    validation_file: str | None = field(
        default=None, metadata={"help": "csv, tsv or json file of validation examples, same columns as --train_file."}
    )
    test_file: str | None = field(
        default=None,
        metadata={"help": "csv, tsv or json file of test examples; `label` is optional. Used with --do_predict."},
    )
    max_seq_length: int = field(
        default=128, metadata={"help": "Maximum tokens per example, special tokens included; longer ones are cut."}
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Train on a random sample of at most this many training examples."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Evaluate on a random sample of at most this many validation examples."}
    )
    split_seed: int = field(
        default=42,
        metadata={
            "help": "Seed of the movie_sentiment split and of the sampling for --max_train_samples and "
            "--max_eval_samples. Separate from --seed, so that runs with different training seeds see the same "
            "examples."
        },
    )


@dataclass
class SensiMixArguments:
    """Arguments of the SensiMix layout, its training schedule, the FP32 reference, the output folder and the card."""

    num_8bit_layers: int = field(
        default=3, metadata={"help": "Number of bottom encoder layers quantized to 8-bit indices ('a' in (a+b))."}
    )
    num_mp_layers: int = field(
        default=3,
        metadata={
            "help": "Number of mixed-precision layers on top ('b' in (a+b)): 8-bit attention and a 1-bit FFN. The "
            "model keeps the bottom a+b layers of the checkpoint."
        },
    )
    abwr_weight: float = field(
        default=1.0,
        metadata={"help": "Weight of the absolute binary weight regularization (ABWR) term; 0 turns ABWR off."},
    )
    prioritized_training: bool = field(
        default=True,
        metadata={"help": "Keep every MP FFN in full precision during the first stage (prioritized training)."},
    )
    inverse_layerwise: bool = field(
        default=True,
        metadata={
            "help": "Switch the MP FFNs to 1-bit one layer per stage from the top down (inverse layer-wise "
            "fine-tuning); without it they all switch at once."
        },
    )
    binary_scale: Literal["row", "none"] = field(
        default="row",
        metadata={
            "help": "Output scale of the 1-bit FFN linears: 'row' multiplies each output by mean(|W_row|) / "
            "sqrt(in_features); 'none' is the unscaled form of the SensiMix paper."
        },
    )
    stage_unit: Literal["epoch", "step"] = field(
        default="epoch",
        metadata={
            "help": "Unit of the training stages: one stage per epoch, or per --steps_per_stage optimizer steps. "
            "When the run is too short to reach the all-1-bit stage, the stages are spread over the optimizer "
            "steps."
        },
    )
    steps_per_stage: int | None = field(
        default=None,
        metadata={
            "help": "Optimizer steps per stage with --stage_unit step; by default the stages are spread evenly "
            "over the run."
        },
    )
    baseline: bool = field(
        default=False,
        metadata={
            "help": "Also train the FP32 BERT of the same depth (a+b layers of the same checkpoint) with the same "
            "recipe, and report its metrics beside SensiMix's. Its results go to fp32_reference/."
        },
    )
    save_fp32_weights: bool = field(
        default=False, metadata={"help": "With --baseline, also save the FP32 reference's weights in fp32_reference/."}
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Write into an --output_dir that already holds files. The results of an earlier run there are "
            "removed first; other files are kept."
        },
    )
    base_model_id: str | None = field(
        default=None,
        metadata={
            "help": "Hub id written as `base_model` in the model card. Defaults to --model_name_or_path when that "
            "is not a local folder; a local folder is named only in the card's text, because the Hub accepts "
            "only model ids there."
        },
    )
    license: str = field(default="apache-2.0", metadata={"help": "License written to the model card."})

    def __post_init__(self):
        for name in ("num_8bit_layers", "num_mp_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"--{name} must be a non-negative integer, got {value!r}.")
        if self.num_8bit_layers + self.num_mp_layers < 1:
            raise ValueError(
                "--num_8bit_layers + --num_mp_layers is 0; a SensiMix model needs at least one encoder layer."
            )
        if not math.isfinite(self.abwr_weight) or self.abwr_weight < 0:
            raise ValueError(f"--abwr_weight must be a finite number >= 0 (0 turns ABWR off), got {self.abwr_weight}.")
        if self.steps_per_stage is not None and self.stage_unit != "step":
            raise ValueError(
                f"--steps_per_stage {self.steps_per_stage} needs --stage_unit step; add it or drop --steps_per_stage."
            )
        if self.save_fp32_weights and not self.baseline:
            raise ValueError("--save_fp32_weights needs --baseline, which trains the FP32 reference; add --baseline.")


@dataclass
class EvaluationArguments:
    """Arguments of `sensimix evaluate` besides the model and the data."""

    output_dir: str | None = field(
        default=None,
        metadata={
            "help": "Folder to write eval_results.json to (an existing file of that name is replaced). By default "
            "the metrics are only printed."
        },
    )
    per_device_eval_batch_size: int = field(
        default=8,
        metadata={
            "help": "Evaluation batch size per device. The default is the Trainer's, so that the metrics of a "
            "`sensimix train` run are reproduced with the same batches."
        },
    )
    use_cpu: bool = field(default=False, metadata={"help": "Evaluate on the CPU even when a GPU is available."})

    def __post_init__(self):
        if self.per_device_eval_batch_size < 1:
            raise ValueError(f"--per_device_eval_batch_size must be at least 1, got {self.per_device_eval_batch_size}.")


# ---------------------------------------------------------------------------------------------
# Checks before training


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def check_bert_checkpoint(model_name_or_path: str, num_hidden_layers: int, cache_dir: str | None = None):
    """Load the config of `model_name_or_path` and raise `UsageError` unless it is a BERT with enough layers."""
    if os.path.isdir(model_name_or_path) and not os.path.isfile(os.path.join(model_name_or_path, "config.json")):
        raise UsageError(
            f"--model_name_or_path {model_name_or_path} has no config.json, so it is not a transformers "
            "checkpoint. Pass the folder that contains the BERT model's config.json and weights."
        )
    try:
        config = AutoConfig.from_pretrained(model_name_or_path, cache_dir=cache_dir)
    except (OSError, ValueError) as error:
        raise UsageError(
            f"Could not load the model config of --model_name_or_path {model_name_or_path}: {_one_line(error)}"
        ) from error
    if config.model_type != "bert":
        raise UsageError(
            f"--model_name_or_path {model_name_or_path} is a {config.model_type!r} model, but SensiMix converts BERT "
            "checkpoints (model_type 'bert'). Pass a BERT checkpoint."
        )
    if num_hidden_layers > config.num_hidden_layers:
        raise UsageError(
            f"The layout needs {num_hidden_layers} encoder layers (--num_8bit_layers + --num_mp_layers), but "
            f"{model_name_or_path} has {config.num_hidden_layers}. Use at most {config.num_hidden_layers} in total."
        )
    return config


def load_tokenizer(model_args: ModelArguments):
    """Load the tokenizer of the run; raise `UsageError` when it cannot be found."""
    name = model_args.tokenizer_name or model_args.model_name_or_path
    try:
        return AutoTokenizer.from_pretrained(name, cache_dir=model_args.cache_dir)
    except (OSError, ValueError, TypeError) as error:
        raise UsageError(
            f"Could not load a tokenizer from {name}: {_one_line(error)} Pass --tokenizer_name with a folder or "
            "Hub id that holds one."
        ) from error


def load_datasets(data_args: DataTrainingArguments, tokenizer, cache_dir: str | None = None, max_train_samples=None):
    """Load and tokenize the task's splits; raise `UsageError` for an unknown task or bad data."""
    if max_train_samples is None:
        max_train_samples = data_args.max_train_samples
    try:
        return load_task_datasets(
            data_args.task_name,
            tokenizer,
            data_args.max_seq_length,
            train_file=data_args.train_file,
            validation_file=data_args.validation_file,
            test_file=data_args.test_file,
            max_train_samples=max_train_samples,
            max_eval_samples=data_args.max_eval_samples,
            seed=data_args.split_seed,
            cache_dir=cache_dir,
        )
    except (TaskDataError, TypeError, OSError, ModuleNotFoundError) as error:
        raise UsageError(_one_line(error)) from error


def _run_identity(model_args, data_args, sensimix_args, training_args) -> dict[str, Any]:
    """Return the arguments that define what a run computes, as JSON values."""
    training = json.loads(training_args.to_json_string())
    identity = {
        "model": dataclasses.asdict(model_args),
        "data": dataclasses.asdict(data_args),
        "sensimix": dataclasses.asdict(sensimix_args),
        "training": training,
    }
    for section in identity.values():
        for name in _RUN_IDENTITY_IGNORED_FIELDS:
            section.pop(name, None)
    return json.loads(json.dumps(identity))


def _read_run_record(output_dir: Path) -> dict | None:
    path = output_dir / RUN_RECORD_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _list_entries(folder: Path, limit: int = 5) -> str:
    names = sorted(entry.name for entry in folder.iterdir())
    listed = ", ".join(names[:limit])
    return listed + (f" and {len(names) - limit} more" if len(names) > limit else "")


def check_output_dir(output_dir: str, overwrite: bool, identity: dict, resume_from_checkpoint) -> str | bool | None:
    """Check that a train job may write to `output_dir`, and return the checkpoint to resume from.

    An empty or missing folder is fine. A folder with files is accepted when `overwrite` is set, when the user
    passed `resume_from_checkpoint`, or when it contains an unfinished run with the same arguments and a Trainer
    checkpoint, which is then resumed (as transformers' `run_glue.py` does). Otherwise `UsageError` is raised and
    nothing in the folder is touched.
    """
    folder = Path(output_dir)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--output_dir {output_dir} is a file, not a folder. Choose a folder path.")
    if not folder.is_dir() or not any(folder.iterdir()) or overwrite:
        return resume_from_checkpoint
    if resume_from_checkpoint:
        return resume_from_checkpoint

    record = _read_run_record(folder)
    last_checkpoint = get_last_checkpoint(output_dir)
    same_run = record is not None and record.get("arguments") == identity
    if same_run and not record.get("finished") and last_checkpoint is not None:
        logger.warning(f"Resuming the unfinished run in {output_dir} from {last_checkpoint}.")
        return last_checkpoint
    if same_run and record.get("finished"):
        reason = "a finished run with the same arguments"
    elif record is not None:
        reason = "a run with different arguments"
    else:
        reason = f"other files ({_list_entries(folder)})"
    raise UsageError(
        f"--output_dir {output_dir} already contains {reason}. Pass --overwrite_output_dir to replace that run's "
        "results, or choose another --output_dir."
    )


def _remove_earlier_results(output_dir: Path) -> None:
    """Delete what an earlier train job wrote to `output_dir`, keeping any other file."""
    removed = []
    for name in RUN_OUTPUT_NAMES:
        path = output_dir / name
        if path.is_dir():
            shutil.rmtree(path)
            removed.append(name)
        elif path.exists():
            path.unlink()
            removed.append(name)
    # Checkpoints of the earlier run would be picked up by a later resume, as if they belonged to this one.
    for path in output_dir.glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
        if path.is_dir():
            shutil.rmtree(path)
            removed.append(path.name)
    if removed:
        logger.warning(f"--overwrite_output_dir: removed the earlier run's {', '.join(sorted(removed))} from {output_dir}.")


def _check_training_args(training_args: TrainingArguments) -> None:
    if training_args.eval_strategy == "no" and training_args.load_best_model_at_end:
        raise UsageError("--load_best_model_at_end needs evaluation during training; set --eval_strategy epoch.")


def _task_model_overrides(task) -> dict[str, Any]:
    return {
        "num_labels": task.num_labels,
        "id2label": task.id2label,
        "label2id": task.label2id,
        "problem_type": task.spec.problem_type,
    }


# ---------------------------------------------------------------------------------------------
# Train job


@dataclass
class _PreparedTraining:
    output_dir: Path
    tokenizer: Any
    task: Any
    model: SensiMixForSequenceClassification
    callback: SensiMixCallback
    resume_from_checkpoint: str | bool | None
    identity: dict[str, Any]


def prepare_training(
    model_args: ModelArguments,
    data_args: DataTrainingArguments,
    sensimix_args: SensiMixArguments,
    training_args: TrainingArguments,
) -> _PreparedTraining:
    """Check every input of a train job and build its model and data; raise `UsageError` on bad input.

    Nothing is written and nothing is deleted here.
    """
    _check_training_args(training_args)
    try:
        get_task_spec(data_args.task_name)
    except (TaskDataError, TypeError) as error:
        raise UsageError(_one_line(error)) from error
    try:
        callback = SensiMixCallback(
            abwr_weight=sensimix_args.abwr_weight,
            prioritized_training=sensimix_args.prioritized_training,
            inverse_layerwise=sensimix_args.inverse_layerwise,
            stage_unit=sensimix_args.stage_unit,
            steps_per_stage=sensimix_args.steps_per_stage,
        )
    except (TypeError, ValueError) as error:
        raise UsageError(_one_line(error)) from error

    identity = _run_identity(model_args, data_args, sensimix_args, training_args)
    resume = check_output_dir(
        training_args.output_dir, sensimix_args.overwrite_output_dir, identity, training_args.resume_from_checkpoint
    )
    num_layers = sensimix_args.num_8bit_layers + sensimix_args.num_mp_layers
    check_bert_checkpoint(model_args.model_name_or_path, num_layers, model_args.cache_dir)
    try:
        find_model_card_template()
    except FileNotFoundError as error:
        raise UsageError(_one_line(error)) from error
    tokenizer = load_tokenizer(model_args)
    task = load_datasets(data_args, tokenizer, model_args.cache_dir)

    # The classifier is initialized when the model is built, so the seed goes first for a reproducible run.
    set_seed(training_args.seed)
    try:
        model = SensiMixForSequenceClassification.from_bert(
            model_args.model_name_or_path,
            num_8bit_layers=sensimix_args.num_8bit_layers,
            num_mp_layers=sensimix_args.num_mp_layers,
            binary_scale=sensimix_args.binary_scale,
            **_task_model_overrides(task),
        )
    except (OSError, ValueError, TypeError) as error:
        raise UsageError(f"Could not convert {model_args.model_name_or_path} to SensiMix: {_one_line(error)}") from error
    return _PreparedTraining(
        output_dir=Path(training_args.output_dir),
        tokenizer=tokenizer,
        task=task,
        model=model,
        callback=callback,
        resume_from_checkpoint=resume,
        identity=identity,
    )


def _prefixed(metrics: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {f"{prefix}{key}": value for key, value in metrics.items()}


def _logits(predictions) -> np.ndarray:
    return np.asarray(predictions[0] if isinstance(predictions, tuple) else predictions)


def _compare_packed(
    unpacked_logits: np.ndarray, packed_logits: np.ndarray, is_regression: bool, backend: str
) -> dict[str, Any]:
    """Measure how far the packed model's outputs are from the unpacked final model's on the same examples."""
    difference = float(np.max(np.abs(packed_logits - unpacked_logits))) if packed_logits.size else 0.0
    comparison: dict[str, Any] = {
        "packed_max_abs_logit_difference": difference,
        "packed_index_linear_backend": backend,
    }
    if is_regression:
        return comparison
    agreement = float(np.mean(packed_logits.argmax(-1) == unpacked_logits.argmax(-1)))
    comparison["packed_prediction_agreement"] = agreement
    if 1 - agreement <= PACKED_DISAGREEMENT_WARNING:
        return comparison
    if backend == "int8":
        reason = (
            "The packed 8-bit linears ran the 'int8' backend, which also quantizes their inputs to 8 bits per batch; "
            "set SENSIMIX_INDEX_LINEAR=dequantized to compute exactly what the unpacked model computes."
        )
    else:
        reason = "Both should compute the same function; please report this with the command you ran."
    logger.warning(
        f"The packed model predicts a different class than the unpacked final model on {100 * (1 - agreement):.1f}% "
        f"of the validation examples (max logit difference {difference:.3g}). {reason}"
    )
    return comparison


def _write_predictions(path: Path, logits: np.ndarray, task) -> None:
    with path.open("w", encoding="utf-8") as file:
        file.write("index\tprediction\n")
        if task.spec.is_regression:
            for index, value in enumerate(logits.reshape(-1)):
                file.write(f"{index}\t{value:.6f}\n")
        else:
            for index, label_id in enumerate(logits.argmax(-1)):
                file.write(f"{index}\t{task.id2label[int(label_id)]}\n")


def _update_all_results(output_dir: Path, metrics: dict[str, Any]) -> dict[str, Any]:
    """Merge `metrics` into all_results.json, as `Trainer.save_metrics` does, and return the merged results."""
    path = output_dir / "all_results.json"
    results = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    results.update(metrics)
    path.write_text(json.dumps(results, indent=4, sort_keys=True) + "\n", encoding="utf-8")
    return results


def _write_run_record(output_dir: Path, identity: dict, command: str | None, finished: bool) -> None:
    record = {"arguments": identity, "command": command, "finished": finished}
    (output_dir / RUN_RECORD_NAME).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _recipe(training_args: TrainingArguments, sensimix_args: SensiMixArguments, data_args) -> dict[str, Any]:
    """Return the training hyper-parameters shown in the model card."""
    return {
        "learning_rate": training_args.learning_rate,
        "num_train_epochs": training_args.num_train_epochs,
        "max_steps": training_args.max_steps if training_args.max_steps > 0 else None,
        "per_device_train_batch_size": training_args.per_device_train_batch_size,
        "gradient_accumulation_steps": training_args.gradient_accumulation_steps,
        "lr_scheduler_type": str(getattr(training_args.lr_scheduler_type, "value", training_args.lr_scheduler_type)),
        "warmup_steps": training_args.warmup_steps,
        "weight_decay": training_args.weight_decay,
        "max_grad_norm": training_args.max_grad_norm,
        "optim": str(getattr(training_args.optim, "value", training_args.optim)),
        "seed": training_args.seed,
        "max_seq_length": data_args.max_seq_length,
        "max_train_samples": data_args.max_train_samples,
        "max_eval_samples": data_args.max_eval_samples,
        "abwr_weight": sensimix_args.abwr_weight,
        "prioritized_training": sensimix_args.prioritized_training,
        "inverse_layerwise": sensimix_args.inverse_layerwise,
        "stage_unit": sensimix_args.stage_unit,
        "steps_per_stage": sensimix_args.steps_per_stage,
    }


def _train_fp32_reference(
    model_args, sensimix_args, training_args, job: _PreparedTraining, compute_metrics
) -> dict[str, Any]:
    """Train and evaluate the FP32 BERT of the same depth with the same recipe; return its metrics."""
    reference_dir = job.output_dir / FP32_REFERENCE_DIR
    # The reference saves no checkpoints, so its FP32 weights reach the disk only with --save_fp32_weights.
    reference_args = dataclasses.replace(
        training_args,
        output_dir=str(reference_dir),
        save_strategy="no",
        load_best_model_at_end=False,
        push_to_hub=False,
        resume_from_checkpoint=None,
    )

    num_layers = sensimix_args.num_8bit_layers + sensimix_args.num_mp_layers
    logger.info(f"Training the FP32 reference: BertForSequenceClassification with the bottom {num_layers} layers.")
    set_seed(training_args.seed)
    # A BertForSequenceClassification source with another label count has a classifier of another shape, which is
    # then initialized anew, as from_bert does.
    reference = BertForSequenceClassification.from_pretrained(
        model_args.model_name_or_path,
        num_hidden_layers=num_layers,
        cache_dir=model_args.cache_dir,
        ignore_mismatched_sizes=True,
        **_task_model_overrides(job.task),
    )
    trainer = Trainer(
        model=reference,
        args=reference_args,
        train_dataset=job.task.train,
        eval_dataset=job.task.validation,
        processing_class=job.tokenizer,
        data_collator=DataCollatorWithPadding(job.tokenizer),
        compute_metrics=compute_metrics,
    )

    train_metrics = trainer.train().metrics
    train_metrics["train_samples"] = len(job.task.train)
    trainer.save_metrics("train", train_metrics)
    eval_metrics = trainer.evaluate(metric_key_prefix="eval")
    eval_metrics["eval_samples"] = len(job.task.validation)
    trainer.log_metrics("eval", eval_metrics)
    trainer.save_metrics("eval", eval_metrics)

    results = {**_prefixed(eval_metrics, "fp32_"), "fp32_train_loss": train_metrics.get("train_loss")}
    if sensimix_args.save_fp32_weights:
        trainer.save_model()
        results["fp32_model_file_bytes"] = os.path.getsize(reference_dir / "model.safetensors")
    return results


def run_training(
    model_args: ModelArguments,
    data_args: DataTrainingArguments,
    sensimix_args: SensiMixArguments,
    training_args: TrainingArguments,
    command: str | None = None,
) -> dict[str, Any]:
    """Convert, train, evaluate, pack and save a SensiMix model; return the run's results.

    The returned dict is the content of `all_results.json`. It has the `train_*` metrics, the `eval_*` metrics of the
    packed model (the one saved) and the `unpacked_eval_*` metrics of the final all-1-bit model before packing. It
    also has how well the two agree, sizes in bytes, and the `fp32_eval_*` metrics of the FP32 reference when
    `sensimix_args.baseline` is set. `command` is the command line shown in the model card.

    Raises:
        UsageError: for bad arguments, model, data or output folder, before any training.
    """
    job = prepare_training(model_args, data_args, sensimix_args, training_args)
    output_dir = job.output_dir
    model = job.model
    task = job.task
    output_dir.mkdir(parents=True, exist_ok=True)
    if sensimix_args.overwrite_output_dir:
        _remove_earlier_results(output_dir)
    _write_run_record(output_dir, job.identity, command, finished=False)

    compute_metrics = build_compute_metrics(task.spec.name)
    layout = f"({sensimix_args.num_8bit_layers}+{sensimix_args.num_mp_layers})"
    logger.info(
        f"Training SensiMix {layout} from {model_args.model_name_or_path} on {task.spec.name}: "
        f"{len(task.train)} training and {len(task.validation)} validation examples."
    )
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=task.train,
        eval_dataset=task.validation,
        processing_class=job.tokenizer,
        data_collator=DataCollatorWithPadding(job.tokenizer),
        compute_metrics=compute_metrics,
        callbacks=[job.callback],
    )
    job.callback.attach(trainer)
    train_result = trainer.train(resume_from_checkpoint=job.resume_from_checkpoint)
    train_metrics = dict(train_result.metrics)
    train_metrics["train_samples"] = len(task.train)
    trainer.log_metrics("train", train_metrics)
    trainer.save_metrics("train", train_metrics)
    trainer.save_state()

    # The callback ends training in the final stage; this also covers a best checkpoint loaded at the end.
    model.set_binary_ffn_layers(model.mp_layer_indices)
    logger.info(f"Evaluating the final model (1-bit FFN in layers {model.binary_ffn_layers}) before packing.")
    unpacked = trainer.predict(task.validation, metric_key_prefix="eval")
    logger.info("Packing the model: int8 indices for the 8-bit parts, sign bits for the 1-bit FFNs.")
    model.pack()
    logger.info("Evaluating the packed model.")
    packed = trainer.predict(task.validation, metric_key_prefix="eval")

    eval_metrics = dict(packed.metrics)
    eval_metrics["eval_samples"] = len(task.validation)
    eval_metrics.update(_prefixed(unpacked.metrics, "unpacked_"))
    backend = resolve_backend(torch.empty(0, device=model.device))
    eval_metrics.update(
        _compare_packed(_logits(unpacked.predictions), _logits(packed.predictions), task.spec.is_regression, backend)
    )
    for split_name, dataset in task.extra_validation.items():
        eval_metrics.update(trainer.evaluate(dataset, metric_key_prefix=f"eval_{split_name}"))
    trainer.log_metrics("eval", eval_metrics)
    trainer.save_metrics("eval", eval_metrics)

    if training_args.do_predict and task.test is not None:
        logger.info(f"Predicting the {len(task.test)} test examples with the packed model.")
        test = trainer.predict(task.test, metric_key_prefix="test")
        _write_predictions(output_dir / PREDICTIONS_NAME, _logits(test.predictions), task)
        if test.metrics and "labels" in task.test.column_names:
            trainer.save_metrics("test", test.metrics)

    trainer.save_model()
    # Sizes are read back from the saved safetensors headers, so they are what a user downloads.
    report = size_report(output_dir)
    size_metrics = {
        "model_file_bytes": report.file_bytes,
        "packed_tensor_bytes": report.total_bytes,
        "fp32_tensor_bytes": report.fp32_bytes,
        "compression_ratio": report.compression_ratio,
        "bits_per_weight": report.bits_per_weight,
    }
    results = _update_all_results(output_dir, size_metrics)
    if sensimix_args.baseline:
        fp32_results = _train_fp32_reference(model_args, sensimix_args, training_args, job, compute_metrics)
        results = _update_all_results(output_dir, fp32_results)

    base_model_id = sensimix_args.base_model_id
    if base_model_id is None and not os.path.isdir(model_args.model_name_or_path):
        base_model_id = model_args.model_name_or_path
    write_model_card(
        output_dir,
        config=model.config,
        task_name=task.spec.name,
        dataset=describe_dataset(task.spec.name, data_args.train_file, data_args.validation_file),
        results=results,
        size=report,
        recipe=_recipe(training_args, sensimix_args, data_args),
        command=command,
        base_model_id=base_model_id,
        base_model_path=model_args.model_name_or_path,
        license=sensimix_args.license,
    )
    _write_run_record(output_dir, job.identity, command, finished=True)
    logger.info(f"Saved the packed model, tokenizer, results and model card to {output_dir}.")
    return results


def format_training_summary(results: dict[str, Any], task_name: str, output_dir: str) -> str:
    """Render the final summary of a train job: metrics against the FP32 reference, and sizes."""
    spec = get_task_spec(task_name)
    lines = [f"SensiMix results on {spec.name} ({results.get('eval_samples', '?')} validation examples):"]
    for metric in spec.metric_names:
        packed = results.get(f"eval_{metric}")
        unpacked = results.get(f"unpacked_eval_{metric}")
        reference = results.get(f"fp32_eval_{metric}")
        line = f"  {metric}: packed {_number(packed)}, unpacked {_number(unpacked)}"
        if reference is not None:
            line += f", FP32 reference {_number(reference)} ({_points(packed, reference)})"
        lines.append(line)
    if "packed_prediction_agreement" in results:
        lines.append(
            f"  packed and unpacked predictions agree on {100 * results['packed_prediction_agreement']:.1f}% "
            f"(8-bit linear backend {results.get('packed_index_linear_backend', '?')})"
        )
    if results.get("model_file_bytes") is not None:
        lines.append(
            f"  size: packed {results['model_file_bytes'] / MIB:.2f} MiB, FP32 of the same depth "
            f"{results['fp32_tensor_bytes'] / MIB:.2f} MiB, ratio {results['compression_ratio']:.2f}x "
            f"({results['bits_per_weight']:.2f} bits per weight)"
        )
    lines.append(f"  saved to {output_dir}")
    return "\n".join(lines)


def _number(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def _points(value, reference) -> str:
    if value is None or reference is None:
        return "-"
    return f"{100 * (value - reference):+.2f} points"


# ---------------------------------------------------------------------------------------------
# Evaluate job


def _load_validation_split(data_args: DataTrainingArguments, tokenizer, cache_dir: str | None):
    """Return the task spec and the tokenized validation split that a train job with the same arguments used."""
    if data_args.validation_file is not None and data_args.train_file is None:
        try:
            spec = get_task_spec(data_args.task_name)
            dataset = load_local_split(data_args.validation_file, spec, "validation", cache_dir=cache_dir)
            # A train job shuffles a local validation file with the split seed before it takes a prefix.
            dataset = select_prefix(dataset, data_args.max_eval_samples, data_args.split_seed)
            return spec, tokenize_dataset(dataset, tokenizer, spec, data_args.max_seq_length)
        except (TaskDataError, TypeError, OSError) as error:
            raise UsageError(_one_line(error)) from error
    # Only the validation split is needed; one training example keeps the tokenization of the train split short.
    task = load_datasets(data_args, tokenizer, cache_dir, max_train_samples=1)
    return task.spec, task.validation


def _check_model_labels(model_config, spec, model_name: str) -> None:
    if model_config.num_labels != spec.num_labels:
        raise UsageError(
            f"{model_name} has {model_config.num_labels} output labels but task {spec.name!r} has "
            f"{spec.num_labels}. Evaluate it on a task with the labels it was trained for."
        )
    names = [model_config.id2label[index] for index in range(model_config.num_labels)]
    default_names = [f"LABEL_{index}" for index in range(model_config.num_labels)]
    if not spec.is_regression and names not in (list(spec.label_names), default_names):
        logger.warning(
            f"{model_name} has the labels {names}, task {spec.name!r} has {list(spec.label_names)}; the metrics "
            "compare them by label id."
        )


def run_evaluation(
    model_args: ModelArguments, data_args: DataTrainingArguments, eval_args: EvaluationArguments
) -> dict[str, Any]:
    """Evaluate a saved model (SensiMix packed or not, or any sequence classifier) on a task's validation split.

    Returns the `eval_*` metrics, and writes them to `eval_args.output_dir`/eval_results.json when that is set.

    Raises:
        UsageError: for a missing or unsuitable model, a model whose label count does not fit the task, or bad data.
    """
    name = model_args.model_name_or_path
    try:
        model = AutoModelForSequenceClassification.from_pretrained(name, cache_dir=model_args.cache_dir)
    except (OSError, ValueError, KeyError) as error:
        raise UsageError(f"Could not load a sequence classification model from {name}: {_one_line(error)}") from error
    tokenizer = load_tokenizer(model_args)
    spec, validation = _load_validation_split(data_args, tokenizer, model_args.cache_dir)
    _check_model_labels(model.config, spec, name)

    output_dir = eval_args.output_dir
    with_output = output_dir is not None
    if with_output and Path(output_dir).exists() and not Path(output_dir).is_dir():
        raise UsageError(f"--output_dir {output_dir} is a file, not a folder. Choose a folder path.")
    is_packed = bool(getattr(model.config, "is_packed", False))
    logger.info(f"Evaluating {name} ({'packed' if is_packed else 'not packed'}) on {len(validation)} {spec.name} examples.")
    # The Trainer creates its output folder when it is built, although evaluation writes nothing there.
    with tempfile.TemporaryDirectory(prefix="sensimix_evaluate_") as trainer_dir:
        training_args = TrainingArguments(
            output_dir=trainer_dir,
            per_device_eval_batch_size=eval_args.per_device_eval_batch_size,
            use_cpu=eval_args.use_cpu,
            report_to="none",
        )
        trainer = Trainer(
            model=model,
            args=training_args,
            processing_class=tokenizer,
            data_collator=DataCollatorWithPadding(tokenizer),
            compute_metrics=build_compute_metrics(spec.name),
        )
        metrics = trainer.evaluate(validation, metric_key_prefix="eval")
    # The Trainer reports the epoch of its training state, which means nothing for a model evaluated alone.
    metrics.pop("epoch", None)
    metrics["eval_samples"] = len(validation)
    if with_output:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        path = Path(output_dir) / "eval_results.json"
        path.write_text(json.dumps(metrics, indent=4, sort_keys=True) + "\n", encoding="utf-8")
        logger.info(f"Wrote {path}.")
    return metrics


__all__ = [
    "DataTrainingArguments",
    "EvaluationArguments",
    "ModelArguments",
    "SensiMixArguments",
    "TRAINING_DEFAULTS",
    "UsageError",
    "format_training_summary",
    "prepare_training",
    "run_evaluation",
    "run_training",
]
