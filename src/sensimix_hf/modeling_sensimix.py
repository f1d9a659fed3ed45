"""SensiMix BERT models: transformers' BERT with 8-bit index layers and switchable 1-bit FFNs in the top layers.

The models subclass transformers' BERT classes and only swap the linear and embedding modules for the quantized
ones of `layers.py`, so that BERT checkpoints, BERT's forward and BERT's heads are reused unchanged.
"""

import os

import torch
from torch import nn
from transformers import BertForSequenceClassification, BertModel, BertPreTrainedModel, PreTrainedModel
from transformers.models.bert.modeling_bert import BertIntermediate
from transformers.utils import can_return_tuple, logging

from .configuration_sensimix import SensiMixConfig
from .layers import (
    BinaryLinear,
    IndexQuantEmbedding,
    IndexQuantLinear,
    PackedBinaryLinear,
    PackedIndexEmbedding,
    PackedIndexLinear,
)
from .packed_checkpoint import check_packed_checkpoint
from .quantization import binarize_activation_ste


logger = logging.get_logger(__name__)

# Activations with act(h) >= 0 exactly when h >= 0, so that b(act(h)) == b(h) and the activation between two
# 1-bit linears can be skipped at inference. ReLU is not among them: ReLU(h) = 0 maps negative h to +1.
SIGN_PRESERVING_ACTIVATIONS = frozenset(
    {"gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh", "gelu_accurate", "gelu_python", "quick_gelu", "silu", "swish"}
)

AUTO_MAP = {
    "AutoConfig": "configuration_sensimix.SensiMixConfig",
    "AutoModel": "modeling_sensimix.SensiMixModel",
    "AutoModelForSequenceClassification": "modeling_sensimix.SensiMixForSequenceClassification",
}


class SensiMixIntermediate(BertIntermediate):
    """BERT's FFN intermediate block whose activation can be folded into the following 1-bit input.

    When the FFN runs in 1-bit and the activation preserves signs, the output linear only reads b(act(h)) = b(h).
    In training this returns b(h) with the straight-through gradient of b(act(h)). In the packed form it returns the
    sign bits of h packed in uint8, which the packed output layer consumes, so the activation is skipped at inference.
    """

    def __init__(self, config: SensiMixConfig, dense: nn.Module):
        super().__init__(config)
        self.dense = dense
        self.folds_activation = (
            config.binarize_ffn_inputs
            and isinstance(config.hidden_act, str)
            and config.hidden_act in SIGN_PRESERVING_ACTIVATIONS
        )

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.folds_activation and isinstance(self.dense, PackedBinaryLinear):
            # The output linear only needs b(h), so the packed sign bits go to it directly.
            return self.dense(hidden_states, output="bits")
        hidden_states = self.dense(hidden_states)
        if not self.folds_activation:
            return self.intermediate_act_fn(hidden_states)
        if self.dense.binary:
            return binarize_activation_ste(hidden_states, self.intermediate_act_fn)
        return self.intermediate_act_fn(hidden_states)


def _index_linear(linear: nn.Linear, config: SensiMixConfig) -> nn.Module:
    per_row = config.quantization_ranges == "channel"
    has_bias = linear.bias is not None
    if config.is_packed:
        return PackedIndexLinear(
            linear.in_features, linear.out_features, has_bias, per_row, device=linear.weight.device
        )
    return IndexQuantLinear(
        linear.in_features, linear.out_features, has_bias, per_row, device=linear.weight.device, dtype=linear.weight.dtype
    )


def _binary_linear(linear: nn.Linear, config: SensiMixConfig) -> nn.Module:
    has_bias = linear.bias is not None
    if config.is_packed:
        return PackedBinaryLinear(
            linear.in_features,
            linear.out_features,
            has_bias,
            config.binarize_ffn_inputs,
            config.binary_scale,
            device=linear.weight.device,
        )
    return BinaryLinear(
        linear.in_features,
        linear.out_features,
        has_bias,
        config.binarize_ffn_inputs,
        config.binary_scale,
        device=linear.weight.device,
        dtype=linear.weight.dtype,
    )


def _index_embedding(embedding: nn.Embedding, config: SensiMixConfig) -> nn.Module:
    per_row = config.quantization_ranges == "channel"
    if config.is_packed:
        return PackedIndexEmbedding(
            embedding.num_embeddings,
            embedding.embedding_dim,
            per_row,
            embedding.padding_idx,
            device=embedding.weight.device,
        )
    return IndexQuantEmbedding(
        embedding.num_embeddings,
        embedding.embedding_dim,
        per_row,
        padding_idx=embedding.padding_idx,
        device=embedding.weight.device,
        dtype=embedding.weight.dtype,
    )


def _install_sensimix_modules(model: BertModel, config: SensiMixConfig) -> None:
    """Replace the float linears and embeddings of a freshly built `BertModel` by SensiMix modules."""
    embeddings = model.embeddings
    if config.quantize_embeddings:
        embeddings.word_embeddings = _index_embedding(embeddings.word_embeddings, config)
        embeddings.position_embeddings = _index_embedding(embeddings.position_embeddings, config)
    for layer_index, layer in enumerate(model.encoder.layer):
        self_attention = layer.attention.self
        self_attention.query = _index_linear(self_attention.query, config)
        self_attention.key = _index_linear(self_attention.key, config)
        self_attention.value = _index_linear(self_attention.value, config)
        layer.attention.output.dense = _index_linear(layer.attention.output.dense, config)
        if layer_index < config.num_8bit_layers:
            layer.intermediate.dense = _index_linear(layer.intermediate.dense, config)
            layer.output.dense = _index_linear(layer.output.dense, config)
        else:
            layer.intermediate = SensiMixIntermediate(config, _binary_linear(layer.intermediate.dense, config))
            layer.output.dense = _binary_linear(layer.output.dense, config)


class SensiMixPreTrainedModel(BertPreTrainedModel):
    """Base class of SensiMix models: schedule state, ABWR, packing, conversion from BERT and loading checks."""

    config_class = SensiMixConfig
    config: SensiMixConfig
    base_model_prefix = "bert"

    # Runtime training state set by `SensiMixCallback`; neither is saved.
    abwr_weight: float = 0.0
    last_abwr_loss: torch.Tensor | None = None

    @property
    def mp_layer_indices(self) -> list[int]:
        """Encoder layer indices of the mixed-precision (MP) layers."""
        return self.config.mp_layer_indices

    @property
    def binary_ffn_layers(self) -> list[int]:
        """Sorted encoder layer indices whose FFN runs in 1-bit now."""
        return list(self.config.binary_ffn_layers)

    @property
    def is_packed(self) -> bool:
        """Whether the model contains packed integer buffers (inference form) instead of latent float weights."""
        return bool(self.config.is_packed)

    def _mp_ffn_linears(self, layer_index: int) -> tuple[nn.Module, nn.Module]:
        layer = self.base_model.encoder.layer[layer_index]
        return layer.intermediate.dense, layer.output.dense

    def set_binary_ffn_layers(self, indices) -> None:
        """Run the FFNs of the MP layers in `indices` in 1-bit and the other MP FFNs in full precision.

        Raises `ValueError` for an index that is not an MP layer, and for any change to a packed model,
        whose FFNs are always 1-bit.
        """
        requested = sorted({int(index) for index in indices})
        invalid = [index for index in requested if index not in self.mp_layer_indices]
        if invalid:
            raise ValueError(
                f"Layer indices {invalid} are not mixed-precision layers; binary FFN layers must be among "
                f"{self.mp_layer_indices} (num_8bit_layers={self.config.num_8bit_layers}, "
                f"num_hidden_layers={self.config.num_hidden_layers})."
            )
        if self.is_packed:
            if requested != self.mp_layer_indices:
                raise ValueError(
                    f"A packed model runs every MP FFN in 1-bit ({self.mp_layer_indices}); it cannot switch to "
                    f"{requested}. Load the training checkpoint to change the schedule state."
                )
            return
        for layer_index in self.mp_layer_indices:
            binary = layer_index in requested
            for linear in self._mp_ffn_linears(layer_index):
                linear.binary = binary
        self.config.binary_ffn_layers = requested

    def abwr_loss(self) -> torch.Tensor:
        """Return the absolute binary weight regularization term of the MP FFNs.

        The term is the sum over MP layers of mean((|W_intermediate| - 1)^2) + mean((|W_output| - 1)^2), computed
        from the latent float weights. It pulls the latent weights towards +-1 so that binarizing them loses little.
        """
        if self.is_packed:
            raise ValueError("abwr_loss() needs the latent float weights, but this model is packed.")
        total = None
        for layer_index in self.mp_layer_indices:
            for linear in self._mp_ffn_linears(layer_index):
                term = (linear.weight.abs() - 1).pow(2).mean()
                total = term if total is None else total + term
        if total is None:
            return torch.zeros((), device=self.device)
        return total

    @torch.no_grad()
    def pack(self) -> "SensiMixPreTrainedModel":
        """Convert the model in place to its packed inference form and return it.

        8-bit parts become int8 indices plus float32 ranges and 1-bit FFN weights become sign bits packed 8 per
        uint8. No latent float weight matrix remains. Every MP FFN must be 1-bit first.
        """
        if self.is_packed:
            return self
        if self.config.binarize_ffn_inputs and self.binary_ffn_layers != self.mp_layer_indices:
            raise ValueError(
                f"pack() needs every MP FFN in 1-bit, but binary_ffn_layers={self.binary_ffn_layers} and the MP "
                f"layers are {self.mp_layer_indices}. Finish the training schedule, or call "
                f"model.set_binary_ffn_layers(model.mp_layer_indices) and evaluate that state before packing."
            )
        for parent in list(self.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, (IndexQuantLinear, IndexQuantEmbedding)):
                    setattr(parent, name, child.pack())
                elif isinstance(child, BinaryLinear):
                    if not child.binary:
                        child.binary = True
                    setattr(parent, name, child.pack())
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        self.config.binary_ffn_layers = self.mp_layer_indices
        self.config.is_packed = True
        return self

    @classmethod
    def from_bert(
        cls,
        model_or_path,
        num_8bit_layers: int,
        num_mp_layers: int,
        **config_overrides,
    ) -> "SensiMixPreTrainedModel":
        """Build a SensiMix model from the bottom `num_8bit_layers + num_mp_layers` encoder layers of a BERT.

        Args:
            model_or_path: a folder or Hub id of a BERT checkpoint, or a loaded `BertModel` or `BertFor...` model.
            num_8bit_layers: number of bottom 8-bit encoder layers ("a").
            num_mp_layers: number of mixed-precision layers on top ("b").
            config_overrides: other `SensiMixConfig` fields, for example `num_labels`, `id2label`,
                `binary_scale` or dropout rates. Architecture fields must match the checkpoint.

        The embeddings, the first a + b encoder layers and the pooler are copied. A sequence classifier is copied
        too when the source has one of the same shape. Labels (`id2label`, `label2id`) are kept unless overridden.
        The model is returned in eval mode with every MP FFN in full precision.
        """
        from .conversion import load_bert_source, sensimix_config_from_bert

        source, source_name = load_bert_source(model_or_path)
        config = sensimix_config_from_bert(
            source.config, source_name, num_8bit_layers, num_mp_layers, config_overrides
        )
        model = cls(config)
        bert = source.bert if hasattr(source, "bert") else source
        total_layers = config.num_hidden_layers
        kept = {}
        for key, value in bert.state_dict().items():
            if key.startswith("encoder.layer."):
                layer_index = int(key.split(".")[2])
                if layer_index >= total_layers:
                    continue
            kept[key] = value
        missing, unexpected = model.base_model.load_state_dict(kept, strict=False)
        if unexpected:
            raise ValueError(f"The BERT checkpoint has tensors that SensiMix does not know: {unexpected}.")
        missing = [key for key in missing if not key.startswith("pooler.")]
        if missing:
            raise ValueError(f"The BERT checkpoint lacks tensors that SensiMix needs: {missing}.")
        if bert.pooler is None and model.base_model.pooler is not None:
            logger.warning("The BERT checkpoint has no pooler; the SensiMix pooler keeps its random initialization.")
        classifier = getattr(source, "classifier", None)
        target_classifier = getattr(model, "classifier", None)
        if isinstance(classifier, nn.Linear) and isinstance(target_classifier, nn.Linear):
            if classifier.weight.shape == target_classifier.weight.shape:
                target_classifier.load_state_dict(classifier.state_dict())
        return model.eval()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """Load a SensiMix checkpoint, training or packed, checking a packed one's tensors before loading them.

        A packed checkpoint is built directly in its packed form. Its tensors are first checked for missing keys,
        shapes and dtypes, so that a damaged or mismatched file raises a clear error instead of loading wrong
        values.
        """
        config = kwargs.get("config")
        if not isinstance(config, SensiMixConfig):
            config_kwargs = {
                key: kwargs[key]
                for key in ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder")
                if key in kwargs
            }
            config = cls.config_class.from_pretrained(pretrained_model_name_or_path, **config_kwargs)
        if not config.is_packed:
            return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        check_packed_checkpoint(cls, config, pretrained_model_name_or_path, kwargs)
        loaded = super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        # The loader creates every float parameter with requires_grad=True, but a packed model cannot be trained
        # (its kernels return no gradient), so it comes back frozen as `pack()` leaves it.
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        model.requires_grad_(False)
        return loaded

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs):
        """Save like any transformers model, with an `auto_map` that names every SensiMix auto class.

        The code files are copied beside the weights, so `from_pretrained(folder, trust_remote_code=True)` works
        without sensimix-hf installed, for `AutoModel` and `AutoModelForSequenceClassification` alike.
        """
        self.config.auto_map = dict(AUTO_MAP)
        return super().save_pretrained(save_directory, *args, **kwargs)


class SensiMixModel(SensiMixPreTrainedModel, BertModel):
    """The bare SensiMix BERT encoder: BERT's embeddings, encoder and pooler with SensiMix's quantized modules."""

    def post_init(self):
        _install_sensimix_modules(self, self.config)
        self.set_binary_ffn_layers(self.config.binary_ffn_layers)
        super().post_init()


class SensiMixForSequenceClassification(SensiMixPreTrainedModel, BertForSequenceClassification):
    """SensiMix BERT with BERT's sequence classification head (single-label, multi-label or regression).

    While training with labels, `abwr_weight * abwr_loss()` is added to the loss when `abwr_weight > 0`, so a plain
    `Trainer` back-propagates the ABWR term. `last_abwr_loss` keeps its detached value for logging.
    """

    # The forward takes **kwargs but averages its loss over the batch itself and ignores `num_items_in_batch`, so
    # the Trainer must scale the loss for gradient accumulation and multi-process training as usual.
    accepts_loss_kwargs = False

    def __init__(self, config: SensiMixConfig):
        # BertForSequenceClassification.__init__ would build a float BertModel; only the encoder class differs.
        PreTrainedModel.__init__(self, config)
        self.num_labels = config.num_labels
        self.config = config
        self.bert = SensiMixModel(config)
        classifier_dropout = (
            config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        )
        self.dropout = nn.Dropout(classifier_dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ):
        outputs = super().forward(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            labels=labels,
            **kwargs,
        )
        self.last_abwr_loss = None
        if labels is not None and self.training and self.abwr_weight > 0:
            abwr = self.abwr_loss()
            outputs.loss = outputs.loss + self.abwr_weight * abwr.to(outputs.loss.dtype)
            self.last_abwr_loss = abwr.detach()
        return outputs


__all__ = [
    "SensiMixForSequenceClassification",
    "SensiMixModel",
    "SensiMixPreTrainedModel",
]
