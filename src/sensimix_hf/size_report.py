"""Storage size of a SensiMix model per part, against the FP32 size of the same architecture.

`size_report` accepts a loaded model (training or packed form) or a saved folder. For a folder it reads only the
safetensors headers, so that no weight is loaded. `format_size_report` renders the result as a markdown table.

Parts:

| part | stored tensors |
|---|---|
| word / position / token type embeddings | the embedding table, with its index range when quantized |
| 8-bit attention | Q, K, V and attention output weights of every encoder layer, with their index ranges |
| 8-bit FFN | both FFN weights of the 8-bit encoder layers, with their index ranges |
| 1-bit FFN | both FFN weights of the mixed-precision (MP) layers, with the row scales of the packed form |
| LayerNorms | weights and biases of every LayerNorm |
| biases | biases of the encoder linears (attention and FFN) |
| pooler, classifier | weights and biases of the heads |
| other | any tensor not listed above |

A part's weight count is the number of values that the same tensors hold in an FP32 model, so "bits per weight"
is the stored bits divided by that count. Index ranges and row scales add stored bytes but no weights.
"""

import json
import os
import struct
from dataclasses import dataclass

import torch
from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, logging

from .configuration_sensimix import SensiMixConfig
from .modeling_sensimix import SensiMixForSequenceClassification, SensiMixModel, SensiMixPreTrainedModel


logger = logging.get_logger(__name__)

WORD_EMBEDDINGS = "word embeddings"
POSITION_EMBEDDINGS = "position embeddings"
TOKEN_TYPE_EMBEDDINGS = "token type embeddings"
ATTENTION_8BIT = "8-bit attention"
FFN_8BIT = "8-bit FFN"
FFN_1BIT = "1-bit FFN"
LAYER_NORMS = "LayerNorms"
BIASES = "biases"
POOLER = "pooler"
CLASSIFIER = "classifier"
OTHER = "other"

PART_NAMES = (
    WORD_EMBEDDINGS,
    POSITION_EMBEDDINGS,
    TOKEN_TYPE_EMBEDDINGS,
    ATTENTION_8BIT,
    FFN_8BIT,
    FFN_1BIT,
    LAYER_NORMS,
    BIASES,
    POOLER,
    CLASSIFIER,
    OTHER,
)

MIB = 1024 * 1024
FP32_BYTES = 4

# Packed tensors that replace a float `weight` of the same module.
_PACKED_WEIGHT_SUFFIXES = ("weight_index", "weight_bits")
# Packed tensors that add bytes but hold no weight values.
_AUXILIARY_SUFFIXES = ("weight_min", "weight_max", "weight_scale")
_EMBEDDING_PARTS = {
    "word_embeddings": WORD_EMBEDDINGS,
    "position_embeddings": POSITION_EMBEDDINGS,
    "token_type_embeddings": TOKEN_TYPE_EMBEDDINGS,
}
_MODEL_CLASSES = {cls.__name__: cls for cls in (SensiMixModel, SensiMixForSequenceClassification)}

_TORCH_DTYPE_NAMES = {
    torch.bool: "BOOL",
    torch.uint8: "U8",
    torch.int8: "I8",
    torch.int16: "I16",
    torch.int32: "I32",
    torch.int64: "I64",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.float32: "F32",
    torch.float64: "F64",
}
_DTYPE_BITS = {"BOOL": 8, "U8": 8, "I8": 8, "I16": 16, "I32": 32, "I64": 64, "F16": 16, "BF16": 16, "F32": 32, "F64": 64}
# safetensors rejects headers above 100,000,000 bytes (MAX_HEADER_SIZE in its Rust source), so a larger length
# field means a damaged file.
_MAX_HEADER_BYTES = 100_000_000


@dataclass(frozen=True)
class SizePart:
    """Stored size of one part of the model.

    Attributes:
        name: one of `PART_NAMES`.
        num_weights: number of values that this part contains in the FP32 model of the same architecture.
        num_bytes: stored bytes of every tensor of this part, index ranges and row scales included.
        storage_bits: bit width of one stored weight value (8 for int8 indices, 1 for packed signs, 32 for float32),
            or None when the part is empty or its weight tensors use different widths.
        dtypes: safetensors dtype names of the stored tensors, for example `("F32", "I8")`.
    """

    name: str
    num_weights: int
    num_bytes: int
    storage_bits: int | None
    dtypes: tuple[str, ...]

    @property
    def bits_per_weight(self) -> float | None:
        """Stored bits divided by the weight count, overhead included, or None for an empty part."""
        if self.num_weights == 0:
            return None
        return 8 * self.num_bytes / self.num_weights

    @property
    def fp32_bytes(self) -> int:
        """Bytes of this part in the FP32 model of the same architecture."""
        return FP32_BYTES * self.num_weights


@dataclass(frozen=True)
class SizeReport:
    """Stored size of a SensiMix model per part, with the FP32 size of the same architecture.

    Attributes:
        source: the folder that was read, or the class name of the model.
        model_class: class name of the architecture, `SensiMixForSequenceClassification` or `SensiMixModel`.
        is_packed: whether the model is in its packed inference form.
        parts: one `SizePart` per name of `PART_NAMES`, in that order. Empty parts have zero weights and bytes.
        fp32_bytes: bytes of every tensor of the training-form model of the same config with float32 weights.
        file_bytes: total size of the safetensors files of a folder, or None for a model in memory.
        header_bytes: bytes of the safetensors headers (length fields included), or None for a model in memory.
    """

    source: str
    model_class: str
    is_packed: bool
    parts: tuple[SizePart, ...]
    fp32_bytes: int
    file_bytes: int | None = None
    header_bytes: int | None = None

    @property
    def total_weights(self) -> int:
        """Weight count of every part together."""
        return sum(part.num_weights for part in self.parts)

    @property
    def total_bytes(self) -> int:
        """Stored tensor bytes of every part together, without file headers."""
        return sum(part.num_bytes for part in self.parts)

    @property
    def bits_per_weight(self) -> float | None:
        """Stored bits of the whole model divided by its weight count."""
        if self.total_weights == 0:
            return None
        return 8 * self.total_bytes / self.total_weights

    @property
    def compression_ratio(self) -> float | None:
        """FP32 size of the same architecture divided by the stored size."""
        if self.total_bytes == 0:
            return None
        return self.fp32_bytes / self.total_bytes

    def part(self, name: str) -> SizePart:
        """Return the part called `name`, or raise `KeyError` that lists the known parts."""
        for part in self.parts:
            if part.name == name:
                return part
        raise KeyError(f"No part named {name!r}. Known parts: {', '.join(PART_NAMES)}.")


def size_report(model_or_folder) -> SizeReport:
    """Measure the stored size of a SensiMix model per part, from a loaded model or a saved folder.

    Args:
        model_or_folder: a `SensiMixModel` or `SensiMixForSequenceClassification` (training or packed form), or a
            local folder written by `save_pretrained`, with config.json and `model.safetensors` (or a sharded
            safetensors index).

    For a model, the tensors of `state_dict()` are measured in their current dtypes, which is what
    `save_pretrained` writes. For a folder, only config.json and the safetensors headers are read.

    Raises:
        TypeError: if `model_or_folder` is neither a SensiMix model nor a path.
        ValueError: if the folder is missing, contains no SensiMix config or safetensors weights, or has a damaged
            safetensors header.
    """
    if isinstance(model_or_folder, SensiMixPreTrainedModel):
        return _report_from_model(model_or_folder)
    if isinstance(model_or_folder, (str, os.PathLike)):
        return _report_from_folder(os.fspath(model_or_folder))
    raise TypeError(
        f"size_report expects a SensiMix model or the path of a saved SensiMix folder, but got "
        f"{type(model_or_folder).__name__}. Convert a BERT model first with "
        f"SensiMixForSequenceClassification.from_bert(...)."
    )


def _report_from_model(model: SensiMixPreTrainedModel) -> SizeReport:
    model_class = type(model).__name__
    tensors = {}
    for name, tensor in model.state_dict().items():
        dtype_name = _TORCH_DTYPE_NAMES.get(tensor.dtype)
        if dtype_name is None:
            raise ValueError(f"Tensor {name!r} has dtype {tensor.dtype}, which safetensors cannot store.")
        tensors[name] = (tuple(tensor.shape), dtype_name, tensor.numel() * tensor.element_size())
    return _build_report(tensors, model.config, _model_class_for(type(model)), model_class, model_class)


def _report_from_folder(folder: str) -> SizeReport:
    if not os.path.isdir(folder):
        raise ValueError(
            f"{folder!r} is not a local folder. Pass the folder written by save_pretrained (download a Hub model "
            f"first, for example with huggingface_hub.snapshot_download)."
        )
    config_path = os.path.join(folder, "config.json")
    if not os.path.isfile(config_path):
        raise ValueError(f"The folder {folder!r} has no config.json. Pass a folder written by save_pretrained.")
    with open(config_path, encoding="utf-8") as file:
        config_dict = json.load(file)
    if config_dict.get("model_type") != SensiMixConfig.model_type:
        raise ValueError(
            f"{config_path} has model_type={config_dict.get('model_type')!r}, but size_report measures SensiMix "
            f"models (model_type 'sensimix'). Convert the model with from_bert and save it first."
        )
    config = SensiMixConfig.from_pretrained(folder)
    architectures = config.architectures or []
    class_names = [name for name in architectures if name in _MODEL_CLASSES]
    if not class_names:
        raise ValueError(
            f"{config_path} lists architectures={architectures}, none of which is a SensiMix model class "
            f"({', '.join(_MODEL_CLASSES)}). Save the model with save_pretrained."
        )
    model_class = _MODEL_CLASSES[class_names[0]]

    files = _safetensors_files(folder)
    tensors = {}
    file_bytes = 0
    header_bytes = 0
    for path in files:
        header, header_size = read_safetensors_header(path)
        file_bytes += os.path.getsize(path)
        header_bytes += header_size
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            start, end = entry["data_offsets"]
            tensors[name] = (tuple(entry["shape"]), entry["dtype"], end - start)
    return _build_report(
        tensors, config, model_class, folder, model_class.__name__, file_bytes=file_bytes, header_bytes=header_bytes
    )


def read_safetensors_header(path: str) -> tuple[dict, int]:
    """Read the JSON header of a safetensors file without loading tensors.

    Returns the header (tensor name to `dtype`, `shape` and `data_offsets`, plus an optional `__metadata__`) and
    the header size in bytes, the 8-byte length field included.

    The header is parsed here because the `safetensors` package does not expose the data offsets nor the header
    length. The layout is fixed by the safetensors format: a little-endian unsigned 64-bit length N, then N bytes of
    JSON, then the tensor data.

    Raises:
        ValueError: if the file is shorter than its header or the header is not valid safetensors JSON.
    """
    file_size = os.path.getsize(path)
    with open(path, "rb") as file:
        length_field = file.read(8)
        if len(length_field) < 8:
            raise ValueError(
                f"The safetensors file {path} has {file_size} bytes, fewer than its 8-byte header length field. "
                f"The file is truncated. Save the model again."
            )
        (length,) = struct.unpack("<Q", length_field)
        if length > min(_MAX_HEADER_BYTES, file_size - 8):
            raise ValueError(
                f"The safetensors file {path} declares a header of {length} bytes, but the file has {file_size} "
                f"bytes. The file is truncated or corrupted. Save the model again."
            )
        raw_header = file.read(length)
    try:
        header = json.loads(raw_header.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(
            f"The safetensors file {path} has a header that is not valid JSON ({error}). The file is corrupted. "
            f"Save the model again."
        ) from error
    if not isinstance(header, dict):
        raise ValueError(f"The safetensors header of {path} is a {type(header).__name__}, not a JSON object.")

    data_size = file_size - 8 - length
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= set(entry):
            raise ValueError(
                f"The safetensors header of {path} describes tensor {name!r} without dtype, shape and data_offsets. "
                f"The file is corrupted. Save the model again."
            )
        start, end = entry["data_offsets"]
        if not 0 <= start <= end <= data_size:
            raise ValueError(
                f"Tensor {name!r} in {path} spans bytes {start}..{end} of the data, but the file contains only "
                f"{data_size} data bytes. The file is truncated. Save the model again."
            )
    return header, 8 + length


def _safetensors_files(folder: str) -> list[str]:
    single = os.path.join(folder, SAFE_WEIGHTS_NAME)
    if os.path.isfile(single):
        return [single]
    index_path = os.path.join(folder, SAFE_WEIGHTS_INDEX_NAME)
    if not os.path.isfile(index_path):
        raise ValueError(
            f"The folder {folder!r} has neither {SAFE_WEIGHTS_NAME} nor {SAFE_WEIGHTS_INDEX_NAME}. Save the model "
            f"with save_pretrained (safetensors is its default format)."
        )
    with open(index_path, encoding="utf-8") as file:
        shard_names = sorted(set(json.load(file)["weight_map"].values()))
    return [os.path.join(folder, name) for name in shard_names]


def _model_class_for(cls: type) -> type:
    for model_class in (SensiMixForSequenceClassification, SensiMixModel):
        if issubclass(cls, model_class):
            return model_class
    return cls


def _fp32_shapes(model_class: type, config: SensiMixConfig) -> dict[str, tuple[int, ...]]:
    """Return the tensor shapes of the training-form model of `config`, whose weights are all float."""
    training_config = config.__class__.from_dict({**config.to_dict(), "is_packed": False})
    # The meta device gives shapes without allocating or initializing any weight.
    with torch.device("meta"):
        model = model_class(training_config)
    return {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}


def _numel(shape: tuple[int, ...]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count


def _classify(name: str, num_8bit_layers: int) -> str:
    """Return the part of a state-dict tensor name, with or without the `bert.` prefix."""
    parts = name.split(".")
    if parts[0] == "bert":
        parts = parts[1:]
    if not parts:
        return OTHER
    module_names = parts[:-1]
    tensor_name = parts[-1]
    if parts[0] == "classifier":
        return CLASSIFIER
    if parts[0] == "pooler":
        return POOLER
    if "LayerNorm" in module_names:
        return LAYER_NORMS
    if parts[0] == "embeddings" and len(parts) >= 2:
        return _EMBEDDING_PARTS.get(parts[1], OTHER)
    if parts[0] != "encoder" or len(parts) < 4 or parts[1] != "layer" or not parts[2].isdigit():
        return OTHER
    if tensor_name == "bias":
        return BIASES
    if parts[3] == "attention":
        return ATTENTION_8BIT
    if parts[3] in ("intermediate", "output"):
        return FFN_8BIT if int(parts[2]) < num_8bit_layers else FFN_1BIT
    return OTHER


def _build_report(
    tensors: dict[str, tuple[tuple[int, ...], str, int]],
    config: SensiMixConfig,
    model_class: type,
    source: str,
    model_class_name: str,
    file_bytes: int | None = None,
    header_bytes: int | None = None,
) -> SizeReport:
    fp32_shapes = _fp32_shapes(model_class, config)
    num_weights = dict.fromkeys(PART_NAMES, 0)
    num_bytes = dict.fromkeys(PART_NAMES, 0)
    dtypes = {name: set() for name in PART_NAMES}
    weight_bits = {name: set() for name in PART_NAMES}

    for name, (shape, dtype_name, byte_count) in tensors.items():
        part = _classify(name, config.num_8bit_layers)
        module_name, _, tensor_name = name.rpartition(".")
        num_bytes[part] += byte_count
        dtypes[part].add(dtype_name)
        if tensor_name in _AUXILIARY_SUFFIXES:
            continue
        if tensor_name in _PACKED_WEIGHT_SUFFIXES:
            float_name = f"{module_name}.weight"
            bits = 1 if tensor_name == "weight_bits" else _DTYPE_BITS.get(dtype_name)
        else:
            float_name = name
            bits = _DTYPE_BITS.get(dtype_name)
        float_shape = fp32_shapes.get(float_name)
        if float_shape is None:
            # NOTE: a tensor that the architecture does not define counts by its stored element count.
            float_shape = shape
            if tensor_name in _PACKED_WEIGHT_SUFFIXES:
                logger.warning(f"Packed tensor {name!r} has no float counterpart in {model_class.__name__}.")
        num_weights[part] += _numel(float_shape)
        weight_bits[part].add(bits)

    parts = tuple(
        SizePart(
            name=name,
            num_weights=num_weights[name],
            num_bytes=num_bytes[name],
            storage_bits=next(iter(weight_bits[name])) if len(weight_bits[name]) == 1 else None,
            dtypes=tuple(sorted(dtypes[name])),
        )
        for name in PART_NAMES
    )
    fp32_bytes = FP32_BYTES * sum(_numel(shape) for shape in fp32_shapes.values())
    return SizeReport(
        source=source,
        model_class=model_class_name,
        is_packed=bool(config.is_packed),
        parts=parts,
        fp32_bytes=fp32_bytes,
        file_bytes=file_bytes,
        header_bytes=header_bytes,
    )


def _format_bits(bits: float | None) -> str:
    return "-" if bits is None else f"{bits:.3f}"


def format_size_report(report: SizeReport) -> str:
    """Render `report` as a markdown table, one row per non-empty part, then the totals and the FP32 comparison."""
    lines = [
        f"Size of {report.model_class} ({'packed' if report.is_packed else 'training form'}) from {report.source}",
        "",
        "| part | weights | stored bytes | bits per weight | weight bits | dtypes | FP32 bytes |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for part in report.parts:
        if part.num_bytes == 0 and part.num_weights == 0:
            continue
        storage_bits = "-" if part.storage_bits is None else str(part.storage_bits)
        lines.append(
            f"| {part.name} | {part.num_weights:,} | {part.num_bytes:,} | {_format_bits(part.bits_per_weight)} | "
            f"{storage_bits} | {', '.join(part.dtypes)} | {part.fp32_bytes:,} |"
        )
    lines.append(
        f"| total | {report.total_weights:,} | {report.total_bytes:,} | {_format_bits(report.bits_per_weight)} | - | - "
        f"| {FP32_BYTES * report.total_weights:,} |"
    )
    lines.append("")
    lines.append(f"Stored tensors: {report.total_bytes / MIB:.2f} MiB.")
    if report.file_bytes is not None:
        lines.append(
            f"Safetensors files: {report.file_bytes / MIB:.2f} MiB ({report.file_bytes:,} bytes, "
            f"{report.header_bytes:,} of them headers)."
        )
    ratio = report.compression_ratio
    ratio_text = "-" if ratio is None else f"{ratio:.2f}x"
    lines.append(
        f"FP32 model of the same architecture: {report.fp32_bytes / MIB:.2f} MiB, compression ratio {ratio_text}."
    )
    return "\n".join(lines) + "\n"


__all__ = [
    "PART_NAMES",
    "SizePart",
    "SizeReport",
    "format_size_report",
    "read_safetensors_header",
    "size_report",
]
