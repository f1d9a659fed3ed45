"""Loading a BERT checkpoint and deriving the SensiMix configuration for `from_bert`."""

import os

from transformers import AutoConfig, BertForSequenceClassification, BertModel, BertPreTrainedModel, PreTrainedModel

from .configuration_sensimix import SensiMixConfig


# Config fields that must match the BERT checkpoint, because they fix the shapes of the copied tensors.
ARCHITECTURE_FIELDS = (
    "vocab_size",
    "hidden_size",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
)
# Config fields that `from_bert` derives from its layout arguments.
LAYOUT_FIELDS = ("num_hidden_layers", "num_8bit_layers", "is_packed", "binary_ffn_layers", "sensimix_format_version")
# Keys of a BERT config that describe the saved file rather than the model.
_SOURCE_ONLY_KEYS = ("model_type", "architectures", "auto_map", "transformers_version", "_name_or_path", "dtype")


def load_bert_source(model_or_path) -> tuple[PreTrainedModel, str | None]:
    """Return a loaded BERT model (`BertModel` or `BertFor...`) and its name, from a path, a Hub id or a model."""
    if isinstance(model_or_path, (str, os.PathLike)):
        name = str(model_or_path)
        if os.path.isdir(name) and not os.path.isfile(os.path.join(name, "config.json")):
            raise ValueError(
                f"The folder {name!r} has no config.json, so it is not a transformers checkpoint. Pass the folder "
                f"that holds the BERT model's config.json and weights."
            )
        config = AutoConfig.from_pretrained(name)
        _check_is_bert(config.model_type, name)
        if "BertForSequenceClassification" in (config.architectures or []):
            return BertForSequenceClassification.from_pretrained(name), name
        return BertModel.from_pretrained(name), name
    if isinstance(model_or_path, PreTrainedModel):
        _check_is_bert(model_or_path.config.model_type, type(model_or_path).__name__)
        if isinstance(model_or_path, BertModel):
            return model_or_path, getattr(model_or_path.config, "_name_or_path", None) or None
        if isinstance(model_or_path, BertPreTrainedModel) and isinstance(getattr(model_or_path, "bert", None), BertModel):
            return model_or_path, getattr(model_or_path.config, "_name_or_path", None) or None
    raise TypeError(
        f"from_bert expects a folder, a Hub id, or a loaded BertModel / BertFor... model, but got "
        f"{type(model_or_path).__name__}."
    )


def _check_is_bert(model_type: str, name: str) -> None:
    if model_type != "bert":
        raise ValueError(
            f"{name!r} is a {model_type!r} model, but SensiMix converts BERT checkpoints (model_type 'bert'). "
            f"Pass a BERT checkpoint, or load an existing SensiMix model with from_pretrained."
        )


def sensimix_config_from_bert(
    bert_config, source_name: str | None, num_8bit_layers: int, num_mp_layers: int, overrides: dict
) -> SensiMixConfig:
    """Return the `SensiMixConfig` of an (a+b) model cut from `bert_config`, with `overrides` applied."""
    for name, value in (("num_8bit_layers", num_8bit_layers), ("num_mp_layers", num_mp_layers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name}={value!r} is invalid; it must be a non-negative integer.")
    total_layers = num_8bit_layers + num_mp_layers
    if total_layers < 1:
        raise ValueError("num_8bit_layers + num_mp_layers is 0; a SensiMix model needs at least one encoder layer.")
    if total_layers > bert_config.num_hidden_layers:
        raise ValueError(
            f"The layout ({num_8bit_layers}+{num_mp_layers}) needs {total_layers} encoder layers, but the BERT "
            f"checkpoint has only {bert_config.num_hidden_layers}. Choose num_8bit_layers + num_mp_layers <= "
            f"{bert_config.num_hidden_layers}."
        )

    allowed = set(SensiMixConfig.__dataclass_fields__) | {"num_labels"}
    for key, value in overrides.items():
        if key in LAYOUT_FIELDS:
            raise ValueError(
                f"{key} cannot be overridden in from_bert; it follows from num_8bit_layers and num_mp_layers."
            )
        if key in ARCHITECTURE_FIELDS and value != getattr(bert_config, key):
            raise ValueError(
                f"{key}={value!r} does not fit the BERT checkpoint, whose {key} is {getattr(bert_config, key)!r}. "
                f"Leave {key} out of the overrides."
            )
        if key not in allowed:
            raise ValueError(f"Unknown SensiMixConfig field {key!r}. Known fields: {', '.join(sorted(allowed))}.")

    values = {key: value for key, value in bert_config.to_dict().items() if key in allowed}
    for key in _SOURCE_ONLY_KEYS:
        values.pop(key, None)
    if "num_labels" in overrides and "id2label" not in overrides:
        source_labels = values.get("id2label") or {}
        if len(source_labels) != overrides["num_labels"]:
            values.pop("id2label", None)
            values.pop("label2id", None)
    values.update(overrides)
    values.update(
        num_hidden_layers=total_layers,
        num_8bit_layers=num_8bit_layers,
        base_model_name_or_path=source_name,
    )
    return SensiMixConfig(**values)
