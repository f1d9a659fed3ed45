"""Tests that run the scripts in examples/ as a user would, on a tiny random BERT and on the real MiniLM."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_models import save_tiny_bert


EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
TRAIN_SCRIPT = EXAMPLES_DIR / "train_with_trainer.py"
PREDICT_SCRIPT = EXAMPLES_DIR / "predict.py"
# Runs examples/predict.py in a process where `import sensimix_hf` raises ImportError.
WITHOUT_PACKAGE = (
    "import runpy, sys; sys.modules['sensimix_hf'] = None; "
    "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
)


def run_script(arguments: list[str], tmp_path: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    completed = subprocess.run(
        [sys.executable, *arguments], capture_output=True, text=True, env=environment, timeout=timeout
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed


def parse_predictions(stdout: str) -> list[tuple[str, dict[str, float], str]]:
    """Parse the `label<TAB>name=score  name=score<TAB>sentence` lines of examples/predict.py."""
    predictions = []
    for line in stdout.strip().splitlines():
        label, scores, sentence = line.split("\t")
        parsed = {name: float(value) for name, value in (item.split("=") for item in scores.split())}
        predictions.append((label, parsed, sentence))
    return predictions


def check_predictions(stdout: str, sentences: list[str]) -> None:
    predictions = parse_predictions(stdout)
    assert [sentence for _, _, sentence in predictions] == sentences
    for label, scores, _ in predictions:
        assert set(scores) == {"negative", "positive"}
        assert sum(scores.values()) == pytest.approx(1.0, abs=2e-3)
        # Scores are printed with 3 decimals, so two rounded scores can tie.
        assert scores[label] == max(scores.values())


@pytest.fixture(scope="module")
def tiny_example_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("examples_tiny")
    model_dir = save_tiny_bert(folder / "bert", num_hidden_layers=6)
    output_dir = folder / "packed"
    completed = run_script(
        [
            str(TRAIN_SCRIPT),
            "--model_name_or_path", str(model_dir),
            "--output_dir", str(output_dir),
            "--max_train_samples", "32",
            "--max_eval_samples", "16",
            "--num_train_epochs", "4",
            "--max_seq_length", "32",
        ],
        folder,
    )  # fmt: skip
    assert f"saved the packed model to {output_dir}" in completed.stdout
    return output_dir


def test_train_example_saves_packed_model(tiny_example_run):
    config = json.loads((tiny_example_run / "config.json").read_text(encoding="utf-8"))
    assert config["is_packed"] is True
    assert (config["num_8bit_layers"], config["num_hidden_layers"]) == (3, 6)
    assert config["binary_ffn_layers"] == [3, 4, 5]
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    assert (tiny_example_run / "model.safetensors").is_file()
    assert (tiny_example_run / "tokenizer.json").is_file()
    assert (tiny_example_run / "modeling_sensimix.py").is_file()


def test_predict_example_with_package(tiny_example_run, movie_sentences, tmp_path):
    sentences = movie_sentences[:3]
    completed = run_script([str(PREDICT_SCRIPT), str(tiny_example_run), *sentences], tmp_path)
    check_predictions(completed.stdout, sentences)


def test_predict_example_without_package(tiny_example_run, movie_sentences, tmp_path):
    sentences = movie_sentences[:2]
    completed = run_script(
        ["-I", "-c", WITHOUT_PACKAGE, str(PREDICT_SCRIPT), str(tiny_example_run), *sentences, "--trust_remote_code"],
        tmp_path,
    )
    check_predictions(completed.stdout, sentences)


def test_predict_example_same_scores_both_ways(tiny_example_run, movie_sentences, tmp_path):
    sentences = movie_sentences[3:5]
    with_package = run_script([str(PREDICT_SCRIPT), str(tiny_example_run), *sentences], tmp_path)
    without_package = run_script(
        ["-I", "-c", WITHOUT_PACKAGE, str(PREDICT_SCRIPT), str(tiny_example_run), *sentences, "--trust_remote_code"],
        tmp_path,
    )
    assert parse_predictions(with_package.stdout) == parse_predictions(without_package.stdout)


@pytest.mark.slow
def test_examples_on_minilm(minilm_path, movie_sentences, tmp_path):
    output_dir = tmp_path / "minilm"
    completed = run_script(
        [
            str(TRAIN_SCRIPT),
            "--model_name_or_path", minilm_path,
            "--output_dir", str(output_dir),
            "--max_train_samples", "32",
            "--max_eval_samples", "32",
            "--num_train_epochs", "4",
            "--max_seq_length", "32",
        ],
        tmp_path,
    )  # fmt: skip
    assert "packed model: {" in completed.stdout
    sentences = movie_sentences[:4]
    predicted = run_script(
        ["-I", "-c", WITHOUT_PACKAGE, str(PREDICT_SCRIPT), str(output_dir), *sentences, "--trust_remote_code"],
        tmp_path,
    )
    check_predictions(predicted.stdout, sentences)
