"""Tests for the offline GLUE metrics, checked against values computed by hand."""

import math
import warnings

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import BertConfig, BertForSequenceClassification, EvalPrediction, Trainer, TrainingArguments

from sensimix_hf.metrics import build_compute_metrics, compute_glue_metrics


def test_mrpc_f1_differs_from_accuracy():
    references = [1, 1, 1, 1, 0, 0]
    predictions = [1, 1, 0, 0, 1, 0]
    # TP = 2, FN = 2, FP = 1, TN = 1.
    # accuracy = (TP + TN) / 6 = 3 / 6, and F1 = 2 TP / (2 TP + FP + FN) = 4 / 7.
    results = compute_glue_metrics("mrpc", predictions, references)

    assert results["accuracy"] == pytest.approx(0.5)
    assert results["f1"] == pytest.approx(4 / 7)
    assert results["combined_score"] == pytest.approx((0.5 + 4 / 7) / 2)
    assert set(results) == {"accuracy", "f1", "combined_score"}


def test_qqp_all_negative_f1_is_zero():
    references = [1, 0, 1, 0]
    predictions = [0, 0, 0, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        results = compute_glue_metrics("qqp", predictions, references)

    assert results["f1"] == 0.0
    assert results["accuracy"] == pytest.approx(0.5)


def test_f1_without_any_positive_is_zero():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        results = compute_glue_metrics("mrpc", [0, 0, 0], [0, 0, 0])

    assert results["f1"] == 0.0
    assert results["accuracy"] == 1.0


def test_cola_matthews_by_hand():
    references = [1, 1, 1, 0, 0, 0]
    predictions = [1, 1, 0, 0, 0, 1]
    # TP = 2, TN = 2, FP = 1, FN = 1.
    # MCC = (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (4 - 1) / sqrt(3*3*3*3) = 1/3.
    results = compute_glue_metrics("cola", predictions, references)

    assert results["matthews_correlation"] == pytest.approx(1 / 3)
    assert set(results) == {"matthews_correlation"}


def test_cola_constant_prediction_gives_zero():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mixed = compute_glue_metrics("cola", [1, 1, 1, 1], [1, 0, 1, 0])
        single_class = compute_glue_metrics("cola", [1, 1, 1], [1, 1, 1])

    assert mixed["matthews_correlation"] == 0.0
    assert single_class["matthews_correlation"] == 0.0


def test_stsb_pearson_spearman_by_hand():
    predictions = [0.5, 2.0, 1.5, 4.0]
    references = [1.0, 2.0, 3.0, 5.0]
    # Pearson: prediction deviations from 2.0 are (-1.5, 0, -0.5, 2); reference deviations from
    # 2.75 are (-1.75, -0.75, 0.25, 2.25). Sxy = 2.625 + 0 - 0.125 + 4.5 = 7,
    # Sxx = 2.25 + 0 + 0.25 + 4 = 6.5, Syy = 3.0625 + 0.5625 + 0.0625 + 5.0625 = 8.75.
    pearson = 7 / math.sqrt(6.5 * 8.75)
    # Spearman: ranks (1, 3, 2, 4) against (1, 2, 3, 4), sum of squared rank differences 2,
    # rho = 1 - 6 * 2 / (4 * (16 - 1)) = 0.8.
    results = compute_glue_metrics("stsb", predictions, references)

    assert results["pearson"] == pytest.approx(pearson)
    assert results["spearmanr"] == pytest.approx(0.8)
    assert results["combined_score"] == pytest.approx((pearson + 0.8) / 2)


def test_stsb_constant_prediction_gives_nan():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        results = compute_glue_metrics("stsb", [2.0, 2.0, 2.0], [1.0, 2.0, 4.0])

    assert math.isnan(results["pearson"])
    assert math.isnan(results["spearmanr"])
    assert math.isnan(results["combined_score"])


@pytest.mark.parametrize(
    ("task_name", "predictions", "references", "accuracy"),
    [
        ("sst2", [1, 0, 1, 1], [1, 0, 0, 1], 0.75),
        ("movie_sentiment", [0, 0, 1], [0, 1, 1], 2 / 3),
        ("mnli", [0, 1, 2, 2], [0, 1, 1, 2], 0.75),
        ("qnli", [0, 1], [1, 0], 0.0),
        ("rte", [1, 1], [1, 1], 1.0),
        ("wnli", [0, 1, 0, 1, 0], [0, 1, 1, 1, 1], 0.6),
    ],
    ids=["sst2", "movie_sentiment", "mnli", "qnli", "rte", "wnli"],
)
def test_accuracy_only_tasks(task_name, predictions, references, accuracy):
    results = compute_glue_metrics(task_name, predictions, references)

    assert results == {"accuracy": pytest.approx(accuracy)}


def test_build_compute_metrics_takes_argmax():
    compute_metrics = build_compute_metrics("mrpc")
    logits = np.array([[0.1, 0.9], [2.0, -1.0], [0.3, 0.2], [-1.0, 1.0]], dtype=np.float32)
    labels = np.array([1, 0, 1, 1])
    # argmax gives (1, 0, 0, 1): TP = 2, FN = 1, FP = 0, TN = 1, so F1 = 4 / 5.
    results = compute_metrics(EvalPrediction(predictions=logits, label_ids=labels))

    assert results["accuracy"] == pytest.approx(0.75)
    assert results["f1"] == pytest.approx(0.8)


def test_build_compute_metrics_tuple_output():
    compute_metrics = build_compute_metrics("sst2")
    logits = np.array([[1.0, 0.0], [0.0, 1.0]])
    hidden = np.zeros((2, 3, 4))
    results = compute_metrics(EvalPrediction(predictions=(logits, hidden), label_ids=np.array([0, 0])))

    assert results == {"accuracy": 0.5}


def test_build_compute_metrics_regression_squeeze():
    compute_metrics = build_compute_metrics("stsb")
    scores = np.array([[0.5], [2.0], [1.5], [4.0]], dtype=np.float32)
    labels = np.array([1.0, 2.0, 3.0, 5.0], dtype=np.float32)
    results = compute_metrics(EvalPrediction(predictions=scores, label_ids=labels))

    assert results["pearson"] == pytest.approx(7 / math.sqrt(6.5 * 8.75), rel=1e-6)
    assert results["spearmanr"] == pytest.approx(0.8)


def test_build_compute_metrics_unknown_task():
    with pytest.raises(ValueError, match="'glue_x'.*Known tasks:.*mrpc"):
        build_compute_metrics("glue_x")


def test_metrics_reject_length_mismatch():
    with pytest.raises(ValueError, match="same length, got 3 and 2"):
        compute_glue_metrics("sst2", [0, 1, 1], [0, 1])


def test_metrics_reject_logits():
    with pytest.raises(ValueError, match=r"shape \(2, 2\).*argmax"):
        compute_glue_metrics("sst2", [[0.2, 0.8], [0.6, 0.4]], [1, 0])


def test_metrics_reject_hidden_test_labels():
    with pytest.raises(ValueError, match=r"class ids \[-1\] outside 0 to 1"):
        compute_glue_metrics("rte", [0, 1], [-1, -1])


def test_metrics_reject_fractional_class_ids():
    with pytest.raises(ValueError, match="must be class ids.*0.5"):
        compute_glue_metrics("sst2", [0.5, 1.0], [0, 1])


def test_metrics_reject_empty_inputs():
    with pytest.raises(ValueError, match="zero examples"):
        compute_glue_metrics("cola", [], [])


def test_build_compute_metrics_needs_labels():
    compute_metrics = build_compute_metrics("sst2")
    with pytest.raises(ValueError, match="has no labels"):
        compute_metrics(EvalPrediction(predictions=np.zeros((2, 2)), label_ids=None))


def test_trainer_evaluate_reports_keys(tmp_path):
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, num_labels=2
    )
    model = BertForSequenceClassification(config)
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(1, 99, (12, 7), generator=generator)
    labels = torch.tensor([0, 1] * 6)
    dataset = Dataset.from_dict({"input_ids": input_ids.tolist(), "labels": labels.tolist()})
    arguments = TrainingArguments(output_dir=str(tmp_path), per_device_eval_batch_size=4, report_to=[], use_cpu=True)
    trainer = Trainer(model=model, args=arguments, eval_dataset=dataset, compute_metrics=build_compute_metrics("mrpc"))

    results = trainer.evaluate()
    with torch.no_grad():
        predicted = model(input_ids=input_ids).logits.argmax(dim=-1).numpy()
    expected = compute_glue_metrics("mrpc", predicted, labels.numpy())

    assert results["eval_accuracy"] == pytest.approx(expected["accuracy"])
    assert results["eval_f1"] == pytest.approx(expected["f1"])
    assert results["eval_combined_score"] == pytest.approx(expected["combined_score"])
