"""Configuration of SensiMix models: a BERT configuration plus the (a+b) layout and quantization options."""

from huggingface_hub.dataclasses import strict
from transformers import BertConfig
from transformers.utils import logging


logger = logging.get_logger(__name__)

# Version of the packed checkpoint layout written by this release. A loader rejects a larger
# number instead of misreading tensors whose meaning changed.
SENSIMIX_FORMAT_VERSION = 1

BINARY_SCALE_MODES = ("none", "row")
RANGE_GRANULARITIES = ("tensor", "channel")


@strict
class SensiMixConfig(BertConfig):
    r"""
    Configuration of a SensiMix BERT: `num_8bit_layers` bottom encoder layers quantized to 8-bit indices and
    `num_hidden_layers - num_8bit_layers` top "mixed precision" (MP) layers, whose self-attention stays 8-bit
    and whose feed-forward block (FFN) can run with 1-bit weights and 1-bit inputs.

    All BERT fields keep their meaning. SensiMix adds:

    num_8bit_layers (`int`, defaults to 3):
        Number of bottom encoder layers that are fully 8-bit ("a" in the "(a+b)" notation). The remaining
        `num_hidden_layers - num_8bit_layers` layers are MP layers ("b").
    binary_ffn_layers (`list[int]`, defaults to `[]`):
        Encoder layer indices whose FFN is 1-bit now; every index must be an MP layer. This is the training
        schedule's state. `SensiMixCallback` changes it, and the model saves and restores it.
    binarize_ffn_inputs (`bool`, defaults to `True`):
        Binarize the inputs of the 1-bit FFN linears as well as their weights, so that the products are
        XNOR-popcount. `False` keeps float inputs against 1-bit weights (no fast kernel then).
    binary_scale (`str`, defaults to `"row"`):
        Output scale of a 1-bit linear. `"none"` is the original SensiMix form `b(x) @ b(W).T + bias`.
        `"row"` multiplies each output by `mean(|W_row|) / sqrt(in_features)`, which keeps the 1-bit
        product on the scale of the residual stream. On MiniLM (6 x 384) fine-tuned on 1,000 movie-review
        sentences the unscaled form reached 78.1 % validation accuracy (one seed) against about 82 % for the
        scaled form and 81 % for FP32. So `"row"` is the default, and `docs/benchmarks.md` has the measurements.
    quantization_ranges (`str`, defaults to `"tensor"`):
        Granularity of the 8-bit index ranges: `"tensor"` (one min/max per tensor, as in SensiMix) or
        `"channel"` (one min/max per output row of a linear and per row of an embedding).
    quantize_embeddings (`bool`, defaults to `True`):
        Quantize the word and position embeddings to 8-bit indices. Token-type embeddings stay float.
    base_model_name_or_path (`str`, *optional*):
        The BERT checkpoint that the model was converted from, for model cards and reports.
    is_packed (`bool`, defaults to `False`):
        Whether the model holds packed integer buffers (inference form) instead of latent float weights
        (training form). Set by `model.pack()`.
    sensimix_format_version (`int`):
        Version of the packed checkpoint layout.

    Example:

    ```python
    >>> from sensimix_hf import SensiMixConfig, SensiMixForSequenceClassification

    >>> config = SensiMixConfig(num_hidden_layers=6, num_8bit_layers=3)
    >>> model = SensiMixForSequenceClassification(config)
    >>> model.mp_layer_indices
    [3, 4, 5]
    ```
    """

    model_type = "sensimix"

    num_hidden_layers: int = 6
    num_8bit_layers: int = 3
    binary_ffn_layers: list[int] | None = None
    binarize_ffn_inputs: bool = True
    binary_scale: str = "row"
    quantization_ranges: str = "tensor"
    quantize_embeddings: bool = True
    base_model_name_or_path: str | None = None
    is_packed: bool = False
    sensimix_format_version: int = SENSIMIX_FORMAT_VERSION

    def __post_init__(self, **kwargs):
        if self.binary_ffn_layers is None:
            self.binary_ffn_layers = []
        else:
            self.binary_ffn_layers = sorted(int(index) for index in self.binary_ffn_layers)
        super().__post_init__(**kwargs)
        # Checked here rather than in a `validate_*` hook so that callers get a plain ValueError.
        self.check_sensimix_layout()

    @property
    def num_mp_layers(self) -> int:
        """Number of mixed-precision layers ("b" in "(a+b)")."""
        return self.num_hidden_layers - self.num_8bit_layers

    @property
    def mp_layer_indices(self) -> list[int]:
        """Encoder layer indices of the mixed-precision layers, bottom to top."""
        return list(range(self.num_8bit_layers, self.num_hidden_layers))

    def check_sensimix_layout(self):
        """Raise `ValueError` if the (a+b) layout, the quantization options or the format version are invalid."""
        if not 0 <= self.num_8bit_layers <= self.num_hidden_layers:
            raise ValueError(
                f"num_8bit_layers={self.num_8bit_layers} is outside the allowed range 0..{self.num_hidden_layers} "
                f"(num_hidden_layers). Set num_8bit_layers to at most num_hidden_layers."
            )
        mp_layers = set(self.mp_layer_indices)
        invalid = [index for index in self.binary_ffn_layers if index not in mp_layers]
        if invalid:
            raise ValueError(
                f"binary_ffn_layers={self.binary_ffn_layers} contains {invalid}, which are not mixed-precision "
                f"layers. Allowed indices: {sorted(mp_layers)}."
            )
        if len(set(self.binary_ffn_layers)) != len(self.binary_ffn_layers):
            raise ValueError(f"binary_ffn_layers={self.binary_ffn_layers} contains duplicates.")
        _check_choice("binary_scale", self.binary_scale, BINARY_SCALE_MODES)
        _check_choice("quantization_ranges", self.quantization_ranges, RANGE_GRANULARITIES)
        if self.sensimix_format_version > SENSIMIX_FORMAT_VERSION:
            raise ValueError(
                f"This checkpoint uses SensiMix format version {self.sensimix_format_version}, but this release "
                f"of sensimix-hf reads versions up to {SENSIMIX_FORMAT_VERSION}. Upgrade sensimix-hf "
                f"(pip install --upgrade sensimix-hf)."
            )
        if self.is_packed and self.binarize_ffn_inputs and sorted(self.binary_ffn_layers) != self.mp_layer_indices:
            raise ValueError(
                f"A packed SensiMix model must have every MP FFN binarized, but binary_ffn_layers="
                f"{self.binary_ffn_layers} and the MP layers are {self.mp_layer_indices}."
            )
        if self.is_decoder or self.add_cross_attention:
            raise ValueError(
                f"SensiMix supports BERT encoders only, but is_decoder={self.is_decoder} and "
                f"add_cross_attention={self.add_cross_attention}. Set both to False."
            )


def _check_choice(name: str, value, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not supported. Allowed values: {', '.join(map(repr, allowed))}.")


__all__ = ["SensiMixConfig", "SENSIMIX_FORMAT_VERSION"]
