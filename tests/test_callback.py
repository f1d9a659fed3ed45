"""Tests of SensiMixCallback: stage schedule, resume, gradient accumulation, ABWR logging and DDP."""

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from torch.utils.data import IterableDataset
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    Trainer,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)

from sensimix_hf import SensiMixConfig, SensiMixForSequenceClassification
from sensimix_hf.callback import (
    SensiMixCallback,
    SensiMixStage,
    binary_layers_for_stage_index,
    final_stage_index,
)
from tiny_models import RandomTokenDataset, StageRecorder, tiny_sensimix_config


CALLBACK_LOGGER = "sensimix_hf.callback"
LOG_KEYS = ("abwr_loss", "sensimix_stage", "num_binary_ffn_layers")
DDP_SCRIPT = Path(__file__).with_name("ddp_train_script.py")

NONE: list[int] = []
TOP: list[int] = [3]
BOTH: list[int] = [2, 3]


@pytest.fixture(autouse=True)
def single_torch_thread():
    # Tiny models gain nothing from intra-op threads, and on a busy machine idle worker threads
    # slowed these tests about tenfold.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def tiny_config(num_hidden_layers: int = 4, num_8bit_layers: int = 2) -> SensiMixConfig:
    # Dropout is off so that an interrupted and an uninterrupted run compute the same weights.
    return tiny_sensimix_config(
        num_hidden_layers=num_hidden_layers,
        num_8bit_layers=num_8bit_layers,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )


def tiny_model(**config_kwargs) -> SensiMixForSequenceClassification:
    torch.manual_seed(0)
    return SensiMixForSequenceClassification(tiny_config(**config_kwargs))





class LogRecorder(TrainerCallback):
    """Record the logs that `on_log` receives, as a `report_to` integration would."""

    def __init__(self):
        self.logs: list[dict] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logs.append(dict(logs))


class StopAfterSteps(TrainerCallback):
    def __init__(self, num_steps: int):
        self.num_steps = num_steps

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.num_steps:
            control.should_training_stop = True


def make_trainer(
    output_dir: Path,
    model,
    callbacks: list[TrainerCallback],
    num_examples: int = 8,
    **training_kwargs,
) -> Trainer:
    settings = {
        "output_dir": str(output_dir),
        "use_cpu": True,
        "report_to": [],
        "per_device_train_batch_size": 4,
        "num_train_epochs": 4,
        "learning_rate": 1e-3,
        "lr_scheduler_type": "constant",
        "save_strategy": "no",
        "logging_strategy": "no",
        "disable_tqdm": True,
        "seed": 0,
        "data_seed": 0,
    }
    settings.update(training_kwargs)
    return Trainer(
        model=model,
        args=TrainingArguments(**settings),
        train_dataset=RandomTokenDataset(num_examples),
        callbacks=callbacks,
    )


def train_and_record(output_dir: Path, callback: SensiMixCallback, model=None, **kwargs):
    model = tiny_model() if model is None else model
    recorder = StageRecorder()
    trainer = make_trainer(output_dir, model, [callback, recorder], **kwargs)
    trainer.train()
    return trainer, recorder


# ---- schedule function --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prioritized_training", "inverse_layerwise", "expected"),
    [
        (
            True,
            True,
            [
                (SensiMixStage.PRIORITIZED, []),
                (SensiMixStage.INVERSE_LAYERWISE, [5]),
                (SensiMixStage.INVERSE_LAYERWISE, [4, 5]),
                (SensiMixStage.FINAL, [3, 4, 5]),
                (SensiMixStage.FINAL, [3, 4, 5]),
            ],
        ),
        (
            False,
            True,
            [
                (SensiMixStage.INVERSE_LAYERWISE, [5]),
                (SensiMixStage.INVERSE_LAYERWISE, [4, 5]),
                (SensiMixStage.FINAL, [3, 4, 5]),
                (SensiMixStage.FINAL, [3, 4, 5]),
                (SensiMixStage.FINAL, [3, 4, 5]),
            ],
        ),
        (
            True,
            False,
            [
                (SensiMixStage.PRIORITIZED, []),
                (SensiMixStage.FINAL, [3, 4, 5]),
                (SensiMixStage.FINAL, [3, 4, 5]),
                (SensiMixStage.FINAL, [3, 4, 5]),
                (SensiMixStage.FINAL, [3, 4, 5]),
            ],
        ),
        (False, False, [(SensiMixStage.FINAL, [3, 4, 5])] * 5),
    ],
    ids=["pt-ilf", "ilf-only", "pt-only", "neither"],
)
def test_schedule_for_three_mp_layers(prioritized_training, inverse_layerwise, expected):
    stages = [
        binary_layers_for_stage_index(index, [3, 4, 5], prioritized_training, inverse_layerwise)
        for index in range(5)
    ]
    assert stages == expected
    first_final = next(index for index, (stage, _) in enumerate(expected) if stage is SensiMixStage.FINAL)
    assert final_stage_index(3, prioritized_training, inverse_layerwise) == first_final


def test_schedule_sorts_unordered_layers():
    assert binary_layers_for_stage_index(1, [5, 3, 4], True, True) == (SensiMixStage.INVERSE_LAYERWISE, [5])


def test_schedule_without_mp_layers_is_final():
    assert binary_layers_for_stage_index(0, [], True, True) == (SensiMixStage.FINAL, [])
    assert final_stage_index(0, True, True) == 0


@pytest.mark.parametrize(
    ("stage_index", "mp_layer_indices", "error"),
    [
        (-1, [2, 3], ValueError),
        (1.0, [2, 3], TypeError),
        (True, [2, 3], TypeError),
        (0, [2, 2], ValueError),
        (0, [-1, 3], ValueError),
        (0, "23", TypeError),
    ],
    ids=["negative-stage", "float-stage", "bool-stage", "repeated-layer", "negative-layer", "string-layers"],
)
def test_schedule_rejects_invalid_input(stage_index, mp_layer_indices, error):
    with pytest.raises(error):
        binary_layers_for_stage_index(stage_index, mp_layer_indices, True, True)


# ---- constructor --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"abwr_weight": -0.5}, ValueError, "abwr_weight"),
        ({"abwr_weight": float("nan")}, ValueError, "abwr_weight"),
        ({"abwr_weight": "1"}, TypeError, "abwr_weight"),
        ({"abwr_weight": True}, TypeError, "abwr_weight"),
        ({"stage_unit": "epochs"}, ValueError, "stage_unit"),
        ({"stage_unit": "step", "steps_per_stage": 0}, ValueError, "steps_per_stage must be >= 1"),
        ({"stage_unit": "step", "steps_per_stage": 2.5}, TypeError, "steps_per_stage"),
        ({"steps_per_stage": 10}, ValueError, "stage_unit='step'"),
        ({"prioritized_training": 1}, TypeError, "prioritized_training"),
        ({"inverse_layerwise": None}, TypeError, "inverse_layerwise"),
    ],
    ids=[
        "negative-abwr",
        "nan-abwr",
        "string-abwr",
        "bool-abwr",
        "unknown-unit",
        "zero-steps",
        "float-steps",
        "steps-with-epoch-unit",
        "int-pt",
        "none-ilf",
    ],
)
def test_constructor_rejects_invalid_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        SensiMixCallback(**kwargs)


def test_constructor_accepts_abwr_off():
    callback = SensiMixCallback(abwr_weight=0, stage_unit="step", steps_per_stage=5)
    assert callback.abwr_weight == 0.0
    assert callback.steps_per_stage == 5


# ---- stage sequence in training -----------------------------------------------------------


@pytest.mark.parametrize(
    ("prioritized_training", "inverse_layerwise", "expected"),
    [
        (True, True, [NONE, NONE, TOP, TOP, BOTH, BOTH, BOTH, BOTH]),
        (False, True, [TOP, TOP, BOTH, BOTH, BOTH, BOTH, BOTH, BOTH]),
        (True, False, [NONE, NONE, BOTH, BOTH, BOTH, BOTH, BOTH, BOTH]),
        (False, False, [BOTH] * 8),
    ],
    ids=["pt-ilf", "ilf-only", "pt-only", "neither"],
)
def test_epoch_stages_per_optimizer_step(tmp_path, prioritized_training, inverse_layerwise, expected):
    callback = SensiMixCallback(prioritized_training=prioritized_training, inverse_layerwise=inverse_layerwise)
    trainer, recorder = train_and_record(tmp_path, callback)

    assert recorder.binary_layers_per_step == expected
    assert trainer.model.binary_ffn_layers == BOTH
    assert trainer.model.abwr_weight == 0.0


def test_step_unit_boundaries(tmp_path):
    callback = SensiMixCallback(stage_unit="step", steps_per_stage=3)
    _, recorder = train_and_record(tmp_path, callback, max_steps=9)

    assert recorder.binary_layers_per_step == [NONE] * 3 + [TOP] * 3 + [BOTH] * 3


def test_step_unit_without_steps_per_stage_spreads(tmp_path, caplog):
    callback = SensiMixCallback(stage_unit="step")
    with caplog.at_level(logging.WARNING, logger=CALLBACK_LOGGER):
        _, recorder = train_and_record(tmp_path, callback, max_steps=6)

    assert recorder.binary_layers_per_step == [NONE, NONE, TOP, TOP, BOTH, BOTH]
    assert not [record for record in caplog.records if "spread evenly" in record.getMessage()]


def test_short_epoch_run_spreads_to_final(tmp_path, caplog):
    # PT and ILF on a (2+2) model need 3 epochs, so 2 epochs of 3 steps each get 3 stages of 2 steps.
    callback = SensiMixCallback()
    with caplog.at_level(logging.WARNING, logger=CALLBACK_LOGGER):
        _, recorder = train_and_record(tmp_path, callback, num_examples=12, num_train_epochs=2)

    assert recorder.binary_layers_per_step == [NONE, NONE, TOP, TOP, BOTH, BOTH]
    spread_warnings = [record for record in caplog.records if "spread evenly" in record.getMessage()]
    assert len(spread_warnings) == 1


def test_short_step_run_spreads_to_final(tmp_path, caplog):
    # 4 steps per stage would reach FINAL at step 8, after the last of 6 steps.
    callback = SensiMixCallback(stage_unit="step", steps_per_stage=4)
    with caplog.at_level(logging.WARNING, logger=CALLBACK_LOGGER):
        _, recorder = train_and_record(tmp_path, callback, max_steps=6)

    assert recorder.binary_layers_per_step == [NONE, NONE, TOP, TOP, BOTH, BOTH]
    assert len([record for record in caplog.records if "spread evenly" in record.getMessage()]) == 1


class RandomTokenStream(IterableDataset):
    def __init__(self, num_examples: int):
        self.examples = RandomTokenDataset(num_examples)

    def __iter__(self):
        return (self.examples[index] for index in range(len(self.examples)))


def test_epoch_unit_without_length_spreads(tmp_path, caplog):
    model = tiny_model()
    recorder = StageRecorder()
    trainer = make_trainer(tmp_path, model, [SensiMixCallback(), recorder], max_steps=6)
    trainer.train_dataset = RandomTokenStream(24)
    with caplog.at_level(logging.WARNING, logger=CALLBACK_LOGGER):
        trainer.train()

    assert recorder.binary_layers_per_step == [NONE, NONE, TOP, TOP, BOTH, BOTH]
    assert len([record for record in caplog.records if "without length" in record.getMessage()]) == 1


def test_fewer_steps_than_stages_ends_final(tmp_path):
    # A (1+5) model with PT and ILF has 6 stages. With 2 steps the last one must still be FINAL.
    model = tiny_model(num_hidden_layers=6, num_8bit_layers=1)
    callback = SensiMixCallback(stage_unit="step")
    _, recorder = train_and_record(tmp_path, callback, model=model, max_steps=2)

    assert recorder.binary_layers_per_step[-1] == [1, 2, 3, 4, 5]
    assert len(recorder.binary_layers_per_step) == 2


def test_early_stop_warns_and_ends_final(tmp_path, caplog):
    model = tiny_model()
    callback = SensiMixCallback()
    trainer = make_trainer(tmp_path, model, [callback, StopAfterSteps(1)])
    with caplog.at_level(logging.WARNING, logger=CALLBACK_LOGGER):
        trainer.train()

    assert trainer.state.global_step == 1
    assert model.binary_ffn_layers == BOTH
    assert model.abwr_weight == 0.0
    assert any("before FINAL" in record.getMessage() for record in caplog.records)


def test_stage_changes_logged_at_info(tmp_path, caplog):
    callback = SensiMixCallback()
    with caplog.at_level(logging.INFO, logger=CALLBACK_LOGGER):
        train_and_record(tmp_path, callback)

    messages = [record.getMessage() for record in caplog.records]
    stage_lines = [message for message in messages if message.startswith("SensiMix stage")]
    assert len(stage_lines) == 3
    assert "PRIORITIZED" in stage_lines[0]
    assert "INVERSE_LAYERWISE" in stage_lines[1]
    assert "[3]" in stage_lines[1]
    assert "FINAL" in stage_lines[2]
    assert "[2, 3]" in stage_lines[2]


def test_stage_changes_printed_without_info_logging(tmp_path, capsys):
    train_and_record(tmp_path, SensiMixCallback())

    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("SensiMix stage")]
    assert len(printed) == 3
    assert "FINAL" in printed[-1]


def test_rejects_model_without_sensimix_layout(tmp_path):
    config = BertConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
        num_labels=2,
    )
    trainer = make_trainer(tmp_path, BertForSequenceClassification(config), [SensiMixCallback()])
    with pytest.raises(TypeError, match="SensiMix model"):
        trainer.train()


# ---- resume -------------------------------------------------------------------------------


def test_resume_reproduces_stages_and_weights(tmp_path):
    full_dir = tmp_path / "full"
    full_trainer, full_recorder = train_and_record(full_dir, SensiMixCallback(), save_strategy="epoch")
    full_weights = {name: value.clone() for name, value in full_trainer.model.state_dict().items()}

    # Step 4 is the end of the second epoch. A copy of its checkpoint keeps the first run's files untouched.
    checkpoint = tmp_path / "checkpoint-4"
    shutil.copytree(full_dir / "checkpoint-4", checkpoint)
    resumed_model = tiny_model()
    resumed_recorder = StageRecorder()
    resumed_trainer = make_trainer(tmp_path / "resumed", resumed_model, [SensiMixCallback(), resumed_recorder])
    resumed_trainer.train(resume_from_checkpoint=str(checkpoint))

    assert resumed_recorder.binary_layers_per_step == full_recorder.binary_layers_per_step[4:]
    assert resumed_model.binary_ffn_layers == BOTH
    resumed_weights = resumed_model.state_dict()
    assert resumed_weights.keys() == full_weights.keys()
    max_difference = max((resumed_weights[name] - full_weights[name]).abs().max().item() for name in full_weights)
    assert max_difference <= 1e-4


# ---- gradient accumulation ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("callback_kwargs", "expected_per_step"),
    [
        ({}, [NONE] * 3 + [TOP] * 3 + [BOTH] * 3),
        ({"stage_unit": "step", "steps_per_stage": 1}, [NONE, TOP] + [BOTH] * 7),
    ],
    ids=["epoch-unit", "step-unit"],
)
def test_accumulation_window_has_one_stage(tmp_path, callback_kwargs, expected_per_step):
    # 10 examples in batches of 2 give 5 micro-batches per epoch, so with accumulation 2 the optimizer
    # steps take 2, 2 and 1 micro-batches.
    model = tiny_model()
    callback = SensiMixCallback(**callback_kwargs)
    trainer = make_trainer(
        tmp_path,
        model,
        [callback],
        num_examples=10,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=2,
        num_train_epochs=3,
    )
    forwards: list[tuple[int, tuple[int, ...]]] = []

    def record_forward(module, args, kwargs):
        forwards.append((trainer.state.global_step, tuple(module.binary_ffn_layers)))

    model.register_forward_pre_hook(record_forward, with_kwargs=True)
    trainer.train()

    layers_by_step: dict[int, set[tuple[int, ...]]] = {}
    micro_batches_by_step: dict[int, int] = {}
    for step, layers in forwards:
        layers_by_step.setdefault(step, set()).add(layers)
        micro_batches_by_step[step] = micro_batches_by_step.get(step, 0) + 1

    assert [micro_batches_by_step[step] for step in range(9)] == [2, 2, 1] * 3
    assert all(len(layer_sets) == 1 for layer_sets in layers_by_step.values())
    assert [list(next(iter(layers_by_step[step]))) for step in range(9)] == expected_per_step


# ---- ABWR and logs ------------------------------------------------------------------------


def mean_distance_from_one(model: SensiMixForSequenceClassification) -> float:
    distances = []
    for layer_index in model.mp_layer_indices:
        layer = model.bert.encoder.layer[layer_index]
        for linear in (layer.intermediate.dense, layer.output.dense):
            distances.append((linear.weight.detach().abs() - 1).abs().mean())
    return torch.stack(distances).mean().item()


def test_abwr_logged_and_falls(tmp_path):
    model = tiny_model()
    distance_before = mean_distance_from_one(model)
    trainer, _ = train_and_record(
        tmp_path,
        SensiMixCallback(),
        model=model,
        logging_strategy="steps",
        logging_steps=1,
        learning_rate=1e-2,
        num_examples=16,
    )

    train_logs = [record for record in trainer.state.log_history if "loss" in record]
    assert len(train_logs) == 16
    assert all(key in record for record in train_logs for key in LOG_KEYS)
    assert train_logs[-1]["abwr_loss"] < 0.8 * train_logs[0]["abwr_loss"]
    assert mean_distance_from_one(model) < distance_before
    assert [record["sensimix_stage"] for record in train_logs] == [0] * 4 + [1] * 4 + [2] * 8
    assert [record["num_binary_ffn_layers"] for record in train_logs] == [0] * 4 + [1] * 4 + [2] * 8
    assert all(isinstance(record["sensimix_stage"], int) for record in train_logs)
    # The ABWR term enters the logged loss, so the loss exceeds it.
    assert all(record["loss"] > record["abwr_loss"] for record in train_logs)


def test_abwr_averaged_between_logs(tmp_path):
    model = tiny_model()
    terms: list[float] = []

    class TermRecorder(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            terms.append(model.last_abwr_loss.item())

    trainer = make_trainer(
        tmp_path,
        model,
        [SensiMixCallback(), TermRecorder()],
        logging_strategy="steps",
        logging_steps=2,
        num_train_epochs=2,
    )
    trainer.train()

    train_logs = [record for record in trainer.state.log_history if "loss" in record]
    assert len(train_logs) == 2
    assert train_logs[0]["abwr_loss"] == pytest.approx((terms[0] + terms[1]) / 2, rel=1e-6)
    assert train_logs[1]["abwr_loss"] == pytest.approx((terms[2] + terms[3]) / 2, rel=1e-6)


def test_abwr_off_keeps_term_out_of_loss(tmp_path):
    model = tiny_model()
    trainer, _ = train_and_record(
        tmp_path,
        SensiMixCallback(abwr_weight=0.0),
        model=model,
        logging_strategy="steps",
        logging_steps=1,
    )

    train_logs = [record for record in trainer.state.log_history if "loss" in record]
    assert all("abwr_loss" in record for record in train_logs)
    assert model.last_abwr_loss is None
    # Cross-entropy of two classes starts near log(2) = 0.69, far below the ABWR term of about 3.9.
    assert train_logs[0]["loss"] < 1.5
    assert train_logs[0]["abwr_loss"] > 3.0


def test_logs_reach_callbacks_before_attached_callback(tmp_path):
    model = tiny_model()
    callback = SensiMixCallback()
    integration = LogRecorder()
    # Integrations come before user callbacks in the Trainer's list, and this recorder takes that place.
    trainer = make_trainer(
        tmp_path, model, [integration, callback], logging_strategy="steps", logging_steps=1, num_train_epochs=1
    )
    callback.attach(trainer)
    callbacks = trainer.callback_handler.callbacks
    assert callbacks[0] is callback
    assert sum(entry is callback for entry in callbacks) == 1
    trainer.train()

    train_logs = [logs for logs in integration.logs if "loss" in logs]
    assert len(train_logs) == 2
    assert all(key in logs for logs in train_logs for key in LOG_KEYS)
    history = [record for record in trainer.state.log_history if "loss" in record]
    assert [record["abwr_loss"] for record in history] == [logs["abwr_loss"] for logs in train_logs]


def test_logs_without_attach_reach_history_only(tmp_path):
    model = tiny_model()
    integration = LogRecorder()
    trainer = make_trainer(
        tmp_path,
        model,
        [integration, SensiMixCallback()],
        logging_strategy="steps",
        logging_steps=1,
        num_train_epochs=1,
    )
    trainer.train()

    history = [record for record in trainer.state.log_history if "loss" in record]
    assert all(key in record for record in history for key in LOG_KEYS)
    train_logs = [logs for logs in integration.logs if "loss" in logs]
    assert not any("abwr_loss" in logs for logs in train_logs)


def test_unattached_with_integrations_warns(tmp_path, caplog):
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=["tensorboard"])
    callback = SensiMixCallback()
    with caplog.at_level(logging.WARNING, logger=CALLBACK_LOGGER):
        state = TrainerState(max_steps=4, num_train_epochs=4)
        callback.on_train_begin(args, state, TrainerControl(), model=tiny_model())

    assert any("attach(trainer)" in record.getMessage() for record in caplog.records)


def test_eval_logs_untouched(tmp_path):
    model = tiny_model()
    trainer = Trainer(
        model=model,
        args=TrainingArguments(
            output_dir=str(tmp_path),
            use_cpu=True,
            report_to=[],
            per_device_train_batch_size=4,
            num_train_epochs=1,
            eval_strategy="epoch",
            logging_strategy="epoch",
            disable_tqdm=True,
        ),
        train_dataset=RandomTokenDataset(8),
        eval_dataset=RandomTokenDataset(4, seed=1),
        callbacks=[SensiMixCallback()],
    )
    trainer.train()

    eval_logs = [record for record in trainer.state.log_history if "eval_loss" in record]
    assert len(eval_logs) == 1
    assert not any(key in eval_logs[0] for key in LOG_KEYS)


# ---- mixed precision and DDP --------------------------------------------------------------


def test_bf16_training_ends_final(tmp_path):
    model = tiny_model()
    trainer, recorder = train_and_record(
        tmp_path,
        SensiMixCallback(),
        model=model,
        bf16=True,
        num_train_epochs=3,
        logging_strategy="steps",
        logging_steps=1,
    )

    assert recorder.binary_layers_per_step == [NONE, NONE, TOP, TOP, BOTH, BOTH]
    train_logs = [record for record in trainer.state.log_history if "loss" in record]
    assert all(torch.isfinite(torch.tensor(record["loss"])) for record in train_logs)
    assert all(torch.isfinite(torch.tensor(record["abwr_loss"])) for record in train_logs)
    assert model.binary_ffn_layers == BOTH


def test_ddp_ranks_end_with_identical_weights(tmp_path):
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        # --standalone runs a local rendezvous on a free loopback port.
        "--standalone",
        "--nproc_per_node",
        "2",
        str(DDP_SCRIPT),
        str(tmp_path),
    ]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, env=environment)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    rank_results = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)]
    assert [entry["world_size"] for entry in rank_results] == [2, 2]
    first, second = (entry["state_dict"] for entry in rank_results)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)
    expected = [NONE] * 3 + [TOP] * 3 + [BOTH] * 3
    assert rank_results[0]["binary_layers_per_step"] == expected
    assert rank_results[1]["binary_layers_per_step"] == expected
    assert rank_results[0]["final_binary_layers"] == BOTH
