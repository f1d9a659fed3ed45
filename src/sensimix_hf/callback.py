"""Training schedule of SensiMix as a `transformers` `TrainerCallback`.

SensiMix trains the 1-bit FFNs of the mixed precision (MP) encoder layers with three methods:

- ABWR (absolute binary weight regularization) adds `abwr_weight * model.abwr_loss()` to the task
  loss, which pulls the latent MP FFN weights towards |w| = 1.
- PT (prioritized training) keeps every MP FFN in full precision during the first stage while the
  8-bit parts already train quantization-aware.
- ILF (inverse layer-wise fine-tuning) switches the MP FFNs to 1-bit from the top layer down, one
  more layer per stage.

The schedule is a pure function of the stage index (`binary_layers_for_stage_index`), and the
callback derives the stage index from `TrainerState` alone, so a run resumed from a checkpoint
with a fresh callback repeats the stages of an uninterrupted run.
"""

import enum
import math
import numbers
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm
from transformers import TrainerCallback
from transformers.trainer_utils import has_length
from transformers.utils import logging


logger = logging.get_logger(__name__)

STAGE_UNITS = ("epoch", "step")

# Keys that the callback adds to every training log record of the Trainer.
ABWR_LOSS_LOG_KEY = "abwr_loss"
STAGE_LOG_KEY = "sensimix_stage"
NUM_BINARY_LAYERS_LOG_KEY = "num_binary_ffn_layers"


class SensiMixStage(enum.Enum):
    """Training stage of the MP FFNs.

    The values are the numbers logged under `sensimix_stage`, because several `report_to`
    integrations (TensorBoard, for one) accept only numbers as scalars.
    """

    PRIORITIZED = 0
    """Every MP FFN runs in full precision."""

    INVERSE_LAYERWISE = 1
    """The top k MP FFNs run in 1-bit, and k grows by one per stage."""

    FINAL = 2
    """Every MP FFN runs in 1-bit."""


def binary_layers_for_stage_index(
    stage_index: int,
    mp_layer_indices: Sequence[int],
    prioritized_training: bool,
    inverse_layerwise: bool,
) -> tuple[SensiMixStage, list[int]]:
    """Compute the stage and the sorted encoder layers with a 1-bit FFN for one stage index.

    With b MP layers:

    - PT and ILF: stage 0 keeps every MP FFN in full precision, stage e < b makes the top e MP FFNs
      1-bit, and every stage e >= b is FINAL.
    - ILF without PT: stage e makes the top e + 1 MP FFNs 1-bit, so FINAL starts at stage b - 1.
    - PT without ILF: stage 0 keeps every MP FFN in full precision, and every later stage is FINAL.
    - neither: FINAL from stage 0.

    A model without MP layers is FINAL in every stage, with no 1-bit FFN.

    Example for a (2+2) model with PT and ILF: stage 0 -> (PRIORITIZED, []),
    stage 1 -> (INVERSE_LAYERWISE, [3]), stage 2 and later -> (FINAL, [2, 3]).
    """
    if isinstance(stage_index, bool) or not isinstance(stage_index, numbers.Integral):
        raise TypeError(f"stage_index must be an int, got {stage_index!r} of type {type(stage_index).__name__}.")
    if stage_index < 0:
        raise ValueError(f"stage_index must be >= 0, got {stage_index}.")
    mp_layers = _validate_mp_layer_indices(mp_layer_indices)
    num_mp_layers = len(mp_layers)

    if inverse_layerwise:
        num_binary = stage_index if prioritized_training else stage_index + 1
    elif prioritized_training and stage_index == 0:
        num_binary = 0
    else:
        num_binary = num_mp_layers

    if num_binary >= num_mp_layers:
        return SensiMixStage.FINAL, mp_layers
    if num_binary == 0:
        return SensiMixStage.PRIORITIZED, []
    return SensiMixStage.INVERSE_LAYERWISE, mp_layers[num_mp_layers - num_binary :]


def _validate_mp_layer_indices(mp_layer_indices: Sequence[int]) -> list[int]:
    if isinstance(mp_layer_indices, (str, bytes)) or not isinstance(mp_layer_indices, Sequence):
        raise TypeError(f"mp_layer_indices must be a sequence of ints, got {mp_layer_indices!r}.")
    for index in mp_layer_indices:
        if isinstance(index, bool) or not isinstance(index, numbers.Integral) or index < 0:
            raise ValueError(f"mp_layer_indices must contain non-negative ints, got {list(mp_layer_indices)!r}.")
    if len(set(mp_layer_indices)) != len(mp_layer_indices):
        raise ValueError(f"mp_layer_indices must not repeat a layer, got {list(mp_layer_indices)!r}.")
    return sorted(int(index) for index in mp_layer_indices)


def final_stage_index(num_mp_layers: int, prioritized_training: bool, inverse_layerwise: bool) -> int:
    """Return the first stage index whose stage is FINAL for a model with `num_mp_layers` MP layers."""
    if num_mp_layers == 0:
        return 0
    if inverse_layerwise:
        return num_mp_layers if prioritized_training else num_mp_layers - 1
    return 1 if prioritized_training else 0


class SensiMixCallback(TrainerCallback):
    """Run the SensiMix training schedule (ABWR, PT, ILF) inside a `transformers.Trainer`.

    The model must be a SensiMix model: it exposes `mp_layer_indices`, `binary_ffn_layers`,
    `set_binary_ffn_layers(indices)`, `abwr_weight`, `abwr_loss()` and `last_abwr_loss`, and its
    forward adds `abwr_weight * abwr_loss()` to the loss in training mode.

    Args:
        abwr_weight: Weight lambda of the ABWR term added to the task loss. 0 turns ABWR off.
        prioritized_training: Keep every MP FFN in full precision during the first stage.
        inverse_layerwise: Switch the MP FFNs to 1-bit one layer per stage from the top down.
            When False, all MP FFNs switch at once.
        stage_unit: `"epoch"` starts a stage at each epoch, as the original SensiMix schedule does.
            `"step"` starts a stage every `steps_per_stage` optimizer steps, for runs set by `max_steps`.
        steps_per_stage: Optimizer steps per stage with `stage_unit="step"`. When None, the
            stage boundaries are spread evenly over `max_steps` so that the last stage is FINAL.

    Stage switches:
        The stage is derived at `on_step_begin`, which the Trainer calls once per optimizer step
        before the first micro-batch of a gradient-accumulation window, so all micro-batches of
        one optimizer step run in the same stage. With `stage_unit="epoch"` the stage index is
        `floor(state.epoch)`. The Trainer (transformers 5.25) sets `state.epoch` to a whole number
        after the last optimizer step of an epoch and to a fraction below the next whole number
        inside it. With `stage_unit="step"` the stage index is `state.global_step // steps_per_stage`.
        Neither uses a counter kept in the callback, so resuming from a checkpoint reproduces the
        stages.

    Training always ends in FINAL:
        If the last optimizer step would not reach FINAL (for example a (3+3) model with PT
        and ILF needs 4 stages but is trained for 3 epochs), the callback logs one warning and
        spreads the stage boundaries evenly over `state.max_steps` instead, so that the last
        stage is FINAL and contains at least one optimizer step. With fewer optimizer steps than
        stages, some middle stages are skipped. `on_train_end` switches the model to FINAL
        and sets `model.abwr_weight` back to 0, so the saved and evaluated model is the
        all-1-bit one, and it warns when training stopped early before reaching FINAL.

    Logs:
        Every training log record (the ones with `loss`) gets `abwr_loss` (the unweighted ABWR
        term averaged over the optimizer steps since the last log), `sensimix_stage` (0
        PRIORITIZED, 1 INVERSE_LAYERWISE, 2 FINAL) and `num_binary_ffn_layers`. With ABWR off,
        `abwr_loss` is computed from the weights at the start of each step without entering
        the loss. The callback adds the values in `on_log`, both to the `logs` dict and to the
        record that `Trainer.log` has just appended to `state.log_history`. Callbacks that run
        after this one, such as the progress bar, see the values. The `report_to` integrations
        run earlier, because the Trainer places them before the user callbacks, so call
        `attach(trainer)` to move this callback ahead of them. Stage changes are logged at
        info level and, when info logging is off, printed with `tqdm.write` on the main process.
    """

    def __init__(
        self,
        abwr_weight: float = 1.0,
        prioritized_training: bool = True,
        inverse_layerwise: bool = True,
        stage_unit: str = "epoch",
        steps_per_stage: int | None = None,
    ):
        if isinstance(abwr_weight, bool) or not isinstance(abwr_weight, numbers.Real):
            raise TypeError(f"abwr_weight must be a float, got {abwr_weight!r}.")
        if not math.isfinite(abwr_weight) or abwr_weight < 0:
            raise ValueError(f"abwr_weight must be a finite number >= 0 (0 turns ABWR off), got {abwr_weight!r}.")
        for name, value in (("prioritized_training", prioritized_training), ("inverse_layerwise", inverse_layerwise)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be True or False, got {value!r}.")
        if stage_unit not in STAGE_UNITS:
            raise ValueError(f"stage_unit must be one of {STAGE_UNITS}, got {stage_unit!r}.")
        if steps_per_stage is not None:
            if stage_unit == "epoch":
                raise ValueError(
                    f"steps_per_stage={steps_per_stage!r} is only used with stage_unit='step'. "
                    "Pass stage_unit='step' or drop steps_per_stage."
                )
            if isinstance(steps_per_stage, bool) or not isinstance(steps_per_stage, numbers.Integral):
                raise TypeError(f"steps_per_stage must be an int, got {steps_per_stage!r}.")
            if steps_per_stage < 1:
                raise ValueError(f"steps_per_stage must be >= 1, got {steps_per_stage}.")

        self.abwr_weight = float(abwr_weight)
        self.prioritized_training = prioritized_training
        self.inverse_layerwise = inverse_layerwise
        self.stage_unit = stage_unit
        self.steps_per_stage = None if steps_per_stage is None else int(steps_per_stage)

        self._attached = False
        self._reset_run_state()

    def _reset_run_state(self) -> None:
        self._mp_layer_indices: list[int] = []
        self._spread_over_max_steps = False
        self._stage: SensiMixStage | None = None
        self._binary_layers: list[int] = []
        self._abwr_sum: torch.Tensor | None = None
        self._abwr_count = 0

    def attach(self, trainer) -> None:
        """Move this callback to the front of `trainer`'s callbacks, adding it when missing.

        The Trainer runs the `report_to` integrations before the callbacks passed to it, and
        they have already received a log record when this callback's `on_log` runs. Running
        first lets the integrations receive `abwr_loss`, `sensimix_stage` and
        `num_binary_ffn_layers` too.
        """
        callbacks = trainer.callback_handler.callbacks
        if any(callback is self for callback in callbacks):
            trainer.remove_callback(self)
        # The Trainer has no public method to insert at a position, and callbacks are run in
        # the order of this list.
        callbacks.insert(0, self)
        self._attached = True

    # ---- training events -------------------------------------------------------------

    def on_train_begin(self, args, state, control, model=None, train_dataloader=None, **kwargs):
        model = self._validate_model(model)
        self._reset_run_state()
        self._mp_layer_indices = list(model.mp_layer_indices)
        model.abwr_weight = self.abwr_weight

        if args.report_to and not self._attached:
            logger.warning(
                f"SensiMixCallback: the report_to integrations {list(args.report_to)} run before this callback, "
                "so they do not receive abwr_loss, sensimix_stage and num_binary_ffn_layers (state.log_history "
                "does). Call `callback.attach(trainer)` before `trainer.train()` to send these values to them."
            )
        if args.load_best_model_at_end:
            logger.warning(
                "SensiMixCallback: with load_best_model_at_end=True the best checkpoint may come from a stage "
                "with full-precision MP FFNs. The model is switched to FINAL (all MP FFNs 1-bit) at the end anyway."
            )

        self._spread_over_max_steps = self._needs_spread(state, train_dataloader)
        self._apply_stage(state, model)

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        self._apply_stage(state, model)
        if self.abwr_weight == 0:
            with torch.no_grad():
                self._add_abwr_term(model.abwr_loss())

    def on_step_end(self, args, state, control, model=None, **kwargs):
        last_abwr_loss = getattr(model, "last_abwr_loss", None)
        if self.abwr_weight > 0 and last_abwr_loss is not None:
            self._add_abwr_term(last_abwr_loss)

    def on_log(self, args, state, control, logs=None, model=None, **kwargs):
        # Only the training records carry `loss`; evaluation and the final summary do not.
        if logs is None or "loss" not in logs or STAGE_LOG_KEY in logs:
            return
        values = self._pop_log_values(model)
        # `Trainer.log` appends a copy of `logs` (plus `step`) right before calling `on_log`.
        last_record = state.log_history[-1] if state.log_history else None
        # The copy shares the value objects, so identity also matches a NaN loss.
        is_same_record = (
            last_record is not None
            and last_record.get("step") == state.global_step
            and last_record.get("loss") is logs["loss"]
        )
        logs.update(values)
        if is_same_record:
            last_record.update(values)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        model = self._validate_model(model)
        if self._stage is not SensiMixStage.FINAL:
            logger.warning(
                f"SensiMixCallback: training stopped at step {state.global_step} of {state.max_steps} in stage "
                f"{self._stage.name if self._stage else 'None'}, before FINAL. The model is switched to FINAL "
                "(all MP FFNs 1-bit) without any optimizer step in that state."
            )
        model.set_binary_ffn_layers(list(model.mp_layer_indices))
        self._stage = SensiMixStage.FINAL
        self._binary_layers = sorted(model.mp_layer_indices)
        model.abwr_weight = 0.0

    # ---- schedule --------------------------------------------------------------------

    def _final_stage_index(self) -> int:
        return final_stage_index(len(self._mp_layer_indices), self.prioritized_training, self.inverse_layerwise)

    def _needs_spread(self, state, train_dataloader) -> bool:
        """Decide whether the planned schedule misses FINAL at the last optimizer step, and warn once if so."""
        final_index = self._final_stage_index()
        if final_index == 0:
            return False
        if self.stage_unit == "step":
            if self.steps_per_stage is None:
                return True
            last_index = (state.max_steps - 1) // self.steps_per_stage
            planned = f"{self.steps_per_stage} steps per stage over {state.max_steps} optimizer steps"
        elif train_dataloader is not None and not has_length(train_dataloader):
            # Without a dataloader length the Trainer cannot count epochs, so the whole run is one epoch.
            last_index = 0
            planned = "an epoch schedule over a dataloader without length"
        else:
            # The Trainer (transformers 5.25) rounds num_train_epochs up, so its last optimizer step is
            # in epoch num_train_epochs - 1.
            last_index = state.num_train_epochs - 1
            planned = f"{state.num_train_epochs} epochs"
        if last_index >= final_index:
            return False
        logger.warning(
            f"SensiMixCallback: the schedule needs {final_index + 1} stages to reach FINAL but {planned} give "
            f"{last_index + 1}. The stage boundaries are spread evenly over the {state.max_steps} optimizer "
            "steps instead, so that the last stage is FINAL."
        )
        return True

    def _stage_index(self, state) -> int:
        if self._spread_over_max_steps:
            num_stages = self._final_stage_index() + 1
            max_steps = max(state.max_steps, 1)
            # ceil((g + 1) * S / m) - 1 starts at stage 0 when m >= S, skips no stage, and puts the
            # last step (g = m - 1) in stage S - 1.
            index = ((state.global_step + 1) * num_stages + max_steps - 1) // max_steps - 1
            return min(index, num_stages - 1)
        if self.stage_unit == "step":
            return state.global_step // self.steps_per_stage
        # NOTE: after an epoch cut short by `control.should_epoch_stop`, `state.epoch` stays fractional
        # until the next optimizer step ends, so that first step of the next epoch runs in the old stage.
        return int(math.floor(state.epoch or 0))

    def _apply_stage(self, state, model) -> None:
        stage, layers = binary_layers_for_stage_index(
            self._stage_index(state), self._mp_layer_indices, self.prioritized_training, self.inverse_layerwise
        )
        if sorted(model.binary_ffn_layers) != layers:
            model.set_binary_ffn_layers(layers)
        if stage is self._stage and layers == self._binary_layers:
            return
        self._stage = stage
        self._binary_layers = layers
        message = (
            f"SensiMix stage {stage.name} from optimizer step {state.global_step} (epoch {state.epoch or 0:.2f}): "
            f"1-bit FFN in layers {layers if layers else 'none'}"
        )
        logger.info(message)
        # This logger follows Python's logging configuration, whose default level (WARNING) hides
        # info records, and one line per stage change is worth showing beside the progress bar.
        if state.is_world_process_zero and not logger.isEnabledFor(logging.INFO):
            tqdm.write(message)

    # ---- logging ---------------------------------------------------------------------

    def _add_abwr_term(self, term: torch.Tensor) -> None:
        # Summing on the device avoids a host synchronization per step, so `.item()` runs once per log.
        term = term.detach().float()
        self._abwr_sum = term if self._abwr_sum is None else self._abwr_sum + term
        self._abwr_count += 1

    def _pop_log_values(self, model) -> dict[str, float | int]:
        values: dict[str, float | int] = {}
        if self._abwr_count > 0:
            values[ABWR_LOSS_LOG_KEY] = self._abwr_sum.item() / self._abwr_count
        self._abwr_sum = None
        self._abwr_count = 0
        if self._stage is not None:
            values[STAGE_LOG_KEY] = self._stage.value
        if model is not None:
            values[NUM_BINARY_LAYERS_LOG_KEY] = len(model.binary_ffn_layers)
        return values

    @staticmethod
    def _validate_model(model):
        required = ("mp_layer_indices", "binary_ffn_layers", "set_binary_ffn_layers", "abwr_weight", "abwr_loss")
        missing = [name for name in required if not hasattr(model, name)]
        if model is None or missing:
            raise TypeError(
                f"SensiMixCallback needs a SensiMix model, got {type(model).__name__} without {missing}. "
                "Train a SensiMixForSequenceClassification or remove the callback."
            )
        return model
