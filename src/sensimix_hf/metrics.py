"""GLUE metrics computed offline with scikit-learn and SciPy.

The keys and definitions match the `glue` module of the `evaluate` library, which cannot be
used here because `evaluate.load` downloads the module from the Hugging Face Hub:

- accuracy for every classification task;
- "f1", the F1 score of class 1, for MRPC and QQP, next to accuracy;
- "matthews_correlation" for CoLA;
- "pearson" and "spearmanr" for STS-B.

A task with more than one metric also gets "combined_score", their mean, as in transformers'
`run_glue.py` example.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef
from transformers import EvalPrediction
from transformers.utils import logging

from .data import TaskSpec, get_task_spec


logger = logging.get_logger(__name__)


def _as_1d_array(values: Any, name: str, task_name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(
            f"{name} for task {task_name!r} must be one value per example, got shape {array.shape}. "
            "Pass class ids or scores, or use build_compute_metrics, which takes the argmax of logits."
        )
    return array


def _as_class_ids(values: np.ndarray, name: str, spec: TaskSpec) -> np.ndarray:
    if values.dtype.kind == "f":
        if not np.all(np.isfinite(values)) or not np.all(values == np.round(values)):
            raise ValueError(
                f"{name} for classification task {spec.name!r} must be class ids, got non-integer values "
                f"such as {values[values != np.round(values)][:5].tolist()}. Take the argmax of the logits first."
            )
        values = values.astype(np.int64)
    elif values.dtype.kind not in "iub":
        raise ValueError(f"{name} for task {spec.name!r} must be numeric class ids, got dtype {values.dtype}.")
    outside = np.unique(values[(values < 0) | (values >= spec.num_labels)])
    if outside.size:
        raise ValueError(
            f"{name} for task {spec.name!r} contains class ids {outside[:10].tolist()} outside 0 to "
            f"{spec.num_labels - 1}. Remove unlabeled examples (GLUE test labels are -1) before scoring."
        )
    return values


def _correlation(kind: str, predictions: np.ndarray, references: np.ndarray) -> float:
    # A correlation is undefined when either side is constant. SciPy would warn at every call,
    # so the nan is returned here and logged once.
    if predictions.size < 2 or np.ptp(predictions) == 0 or np.ptp(references) == 0:
        logger.warning_once(
            f"{kind} correlation is undefined for constant predictions or references (or fewer than 2 "
            "examples), so nan is reported."
        )
        return float("nan")
    function = pearsonr if kind == "Pearson" else spearmanr
    return float(function(predictions, references)[0])


def compute_glue_metrics(task_name: str, predictions: Any, references: Any) -> dict[str, float]:
    """Compute the GLUE metrics of a task from predicted class ids (or scores) and references.

    Args:
        task_name: A task of `sensimix_hf.data.TASKS`. movie_sentiment gets accuracy.
        predictions: One class id per example, or one score for STS-B.
        references: The true class ids or scores, same length.

    Returns:
        The metrics named by the task's `metric_names`, as Python floats, plus "combined_score"
        (their mean) when there is more than one. F1 is 0.0 when no example is predicted or
        labeled 1. Matthews correlation is 0.0 for a constant prediction (scikit-learn's
        convention). Pearson and Spearman are nan when predictions or references are constant,
        because a correlation is then undefined, and so is a combined_score that includes them.

    Raises:
        ValueError: for empty inputs, different lengths, logits instead of ids, or class ids
            outside the task's labels.
    """
    spec = get_task_spec(task_name)
    predictions = _as_1d_array(predictions, "predictions", spec.name)
    references = _as_1d_array(references, "references", spec.name)
    if predictions.shape != references.shape:
        raise ValueError(
            f"predictions and references for task {spec.name!r} must have the same length, got "
            f"{predictions.shape[0]} and {references.shape[0]}."
        )
    if predictions.size == 0:
        raise ValueError(f"Cannot compute metrics for task {spec.name!r} on zero examples.")

    if spec.is_regression:
        predictions = predictions.astype(np.float64)
        references = references.astype(np.float64)
    else:
        predictions = _as_class_ids(predictions, "predictions", spec)
        references = _as_class_ids(references, "references", spec)

    results: dict[str, float] = {}
    for metric_name in spec.metric_names:
        if metric_name == "accuracy":
            results[metric_name] = float(accuracy_score(references, predictions))
        elif metric_name == "f1":
            results[metric_name] = float(f1_score(references, predictions, pos_label=1, zero_division=0))
        elif metric_name == "matthews_correlation":
            # scikit-learn warns when only one class occurs in both inputs, although the result
            # (0.0) is defined, and the warning would repeat at every evaluation.
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="A single label was found", category=UserWarning)
                results[metric_name] = float(matthews_corrcoef(references, predictions))
        elif metric_name == "pearson":
            results[metric_name] = _correlation("Pearson", predictions, references)
        elif metric_name == "spearmanr":
            results[metric_name] = _correlation("Spearman", predictions, references)
        else:
            raise ValueError(f"Task {spec.name!r} names an unknown metric {metric_name!r}.")

    if len(results) > 1:
        results["combined_score"] = float(np.mean(list(results.values())))
    return results


def build_compute_metrics(task_name: str) -> Callable[[EvalPrediction], dict[str, float]]:
    """Build a `compute_metrics` function for `transformers.Trainer` on a task.

    The returned function takes an `EvalPrediction`, turns logits into class ids by argmax over
    the last axis (or squeezes the single regression output), and calls `compute_glue_metrics`.
    The Trainer prefixes the keys with "eval_".
    """
    spec = get_task_spec(task_name)

    def compute_metrics(prediction: EvalPrediction) -> dict[str, float]:
        logits = prediction.predictions
        # Models that return extra outputs give a tuple whose first item is the logits.
        if isinstance(logits, tuple):
            logits = logits[0]
        logits = np.asarray(logits)
        if prediction.label_ids is None:
            raise ValueError(
                f"The evaluation data of task {spec.name!r} has no labels, so metrics cannot be computed. "
                "Evaluate on a labeled split."
            )
        # Regression logits of shape (n, 1) are squeezed by compute_glue_metrics.
        predicted = logits if spec.is_regression else logits.argmax(axis=-1)
        return compute_glue_metrics(spec.name, predicted, prediction.label_ids)

    return compute_metrics
