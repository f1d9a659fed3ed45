"""Checks of a packed SensiMix checkpoint's tensors against the model that its config describes.

transformers casts a loaded tensor to the dtype of the model's buffer, so a float tensor stored where an int8
index belongs would load as wrong numbers without an error. These checks read only the safetensors headers,
before any weight is loaded.
"""

import json
import os

import torch
from safetensors import SafetensorError, safe_open
from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, cached_file


_SAFETENSORS_DTYPES = {
    "BOOL": torch.bool,
    "U8": torch.uint8,
    "I8": torch.int8,
    "I16": torch.int16,
    "I32": torch.int32,
    "I64": torch.int64,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F32": torch.float32,
    "F64": torch.float64,
}
# Non-persistent buffers that some older BERT checkpoints still contain.
_IGNORED_SUFFIXES = (".position_ids", ".token_type_ids")
_MAX_LISTED = 10


def _resolve_files(path, kwargs: dict) -> list[str]:
    hub_kwargs = {
        key: kwargs[key]
        for key in ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder")
        if key in kwargs
    }
    single = cached_file(path, SAFE_WEIGHTS_NAME, _raise_exceptions_for_missing_entries=False, **hub_kwargs)
    if single is not None:
        return [single]
    index_file = cached_file(path, SAFE_WEIGHTS_INDEX_NAME, _raise_exceptions_for_missing_entries=False, **hub_kwargs)
    if index_file is None:
        raise ValueError(
            f"{path!r} contains no {SAFE_WEIGHTS_NAME} (nor a sharded index). A packed SensiMix checkpoint is stored in "
            f"safetensors; save it with model.save_pretrained(folder)."
        )
    with open(index_file, encoding="utf-8") as file:
        shard_names = sorted(set(json.load(file)["weight_map"].values()))
    return [cached_file(path, name, **hub_kwargs) for name in shard_names]


def _read_headers(files: list[str]) -> dict[str, tuple[tuple[int, ...], str]]:
    tensors = {}
    for path in files:
        try:
            with safe_open(path, framework="pt") as handle:
                for key in handle.keys():
                    tensor_slice = handle.get_slice(key)
                    tensors[key] = (tuple(tensor_slice.get_shape()), tensor_slice.get_dtype())
        except (SafetensorError, OSError, ValueError) as error:
            size = os.path.getsize(path) if os.path.exists(path) else "unknown"
            raise ValueError(
                f"Cannot read the safetensors file {path} ({size} bytes): {error}. The file is truncated or "
                f"corrupted; download it again or save the model again."
            ) from error
    return tensors


def _strip_prefix(names: dict, prefix: str) -> dict:
    return {key[len(prefix) :]: value for key, value in names.items() if key.startswith(prefix)}


def expected_packed_tensors(model_class, config) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Return the name, shape and dtype of every tensor a packed model of `model_class` and `config` stores."""
    with torch.device("meta"):
        model = model_class(config)
    return {key: (tuple(value.shape), value.dtype) for key, value in model.state_dict().items()}


def check_packed_checkpoint(model_class, config, path, kwargs: dict) -> None:
    """Raise `ValueError` if the packed checkpoint at `path` does not match the packed model of `config`."""
    expected = expected_packed_tensors(model_class, config)
    found = _read_headers(_resolve_files(path, kwargs))
    found = {key: value for key, value in found.items() if not key.endswith(_IGNORED_SUFFIXES)}

    prefix = f"{model_class.base_model_prefix}."
    file_has_prefix = any(key.startswith(prefix) for key in found)
    model_has_prefix = any(key.startswith(prefix) for key in expected)
    if file_has_prefix and not model_has_prefix:
        # A task model's checkpoint loaded into the bare encoder: its head is not needed.
        found = _strip_prefix(found, prefix)
    elif model_has_prefix and not file_has_prefix:
        # A bare encoder's checkpoint loaded into a task model: the head starts from its initialization.
        expected = _strip_prefix(expected, prefix)

    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing and unexpected:
        # Tensors both absent and extra mean that the config describes another (a+b) layout than the weights,
        # typically an edited config.json, rather than a truncated file.
        raise ValueError(
            f"The config's layout (num_8bit_layers={config.num_8bit_layers}, num_hidden_layers="
            f"{config.num_hidden_layers}, quantization_ranges={config.quantization_ranges!r}, binary_scale="
            f"{config.binary_scale!r}) disagrees with the weights of the packed checkpoint at {path!r}: the config "
            f"requires {len(missing)} tensor(s) that the file lacks, for example {missing[:_MAX_LISTED]}, and the "
            f"file has {len(unexpected)} tensor(s) that the config does not describe, for example "
            f"{unexpected[:_MAX_LISTED]}. Use the config.json saved with these weights."
        )
    if missing:
        raise ValueError(
            f"The packed checkpoint at {path!r} lacks {len(missing)} tensor(s) that its config requires, for "
            f"example {missing[:_MAX_LISTED]}. The file is incomplete or was saved with another layout; save the "
            f"packed model again."
        )
    if unexpected:
        raise ValueError(
            f"The packed checkpoint at {path!r} has {len(unexpected)} tensor(s) that its config does not describe, "
            f"for example {unexpected[:_MAX_LISTED]}. The config's layout (num_8bit_layers="
            f"{config.num_8bit_layers}, num_hidden_layers={config.num_hidden_layers}, quantization_ranges="
            f"{config.quantization_ranges!r}, binary_scale={config.binary_scale!r}) disagrees with the weights."
        )
    for key, (expected_shape, expected_dtype) in expected.items():
        shape, dtype_name = found[key]
        dtype = _SAFETENSORS_DTYPES.get(dtype_name)
        if shape != expected_shape:
            raise ValueError(
                f"Tensor {key!r} in the packed checkpoint at {path!r} has shape {list(shape)}, but the config "
                f"requires {list(expected_shape)}. The config and the weights come from different models."
            )
        integer_expected = not expected_dtype.is_floating_point
        if integer_expected and dtype != expected_dtype:
            raise ValueError(
                f"Tensor {key!r} in the packed checkpoint at {path!r} has dtype {dtype_name}, but a packed SensiMix "
                f"model stores it as {expected_dtype}. Loading it would change its values; save the packed model "
                f"again."
            )
        if not integer_expected and (dtype is None or not dtype.is_floating_point):
            raise ValueError(
                f"Tensor {key!r} in the packed checkpoint at {path!r} has dtype {dtype_name}, but a float tensor "
                f"is required there."
            )
