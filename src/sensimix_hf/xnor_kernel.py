"""XNOR-popcount products of 1-bit inputs and 1-bit weights, with one dispatch point for the kernels.

`binary_linear(x, weight_bits, in_features, scale, bias)` returns `(b(x) @ b(W).T) * scale + bias`
with b(v) = +1 if v >= 0 else -1 (0 and -0.0 map to +1, NaN maps to -1). The integer product is
exact: `dot = K - 2 * popcount(bits(x) XOR bits(w))` over the K real bits. The affine step runs in
float32 (float64 for float64 inputs), one rounding per operation, and the result is rounded once to
the dtype of x. The tests check that the CPU kernel and the reference path agree bit for bit, and
the CUDA kernel follows the same rules.

Backends, chosen by `set_kernel_backend`, the `kernel_backend` context manager or the environment
variable `SENSIMIX_KERNEL` (read on first use):

- "auto" (default): "cuda" for CUDA tensors and "cpu" for CPU tensors when their extension builds,
  otherwise "reference" with one warning.
- "reference": PyTorch operations on unpacked +-1 float64 values. It is slow and serves to test
  the others.
- "cpu": a C++ extension compiled on first use with `torch.utils.cpp_extension.load_inline` and
  cached in the torch extension folder (`TORCH_EXTENSIONS_DIR` when set). It binarizes and packs
  x itself, runs on the threads of `torch.get_num_threads()`, and picks AVX-512 VPOPCNTDQ, AVX2
  or portable code at run time.
- "cuda": a CUDA extension compiled the same way.

The kernels are for inference: their outputs never require grad.

This module imports only torch and the standard library, so that it can be copied into a model
folder for `trust_remote_code=True`.
"""

import contextlib
import contextvars
import hashlib
import logging
import os
import shutil
import sys
import threading
import weakref
from collections.abc import Iterator

import torch

from .bitpacking import BITS_PER_BYTE, sign_bits, unpack_bits
from .xnor_kernel_sources import CPU_SOURCE, CUDA_BINDING_SOURCE, CUDA_SOURCE, NAMESPACE_PLACEHOLDER


logger = logging.getLogger(__name__)

BACKENDS = ("auto", "reference", "cpu", "cuda")
ENV_VARIABLE = "SENSIMIX_KERNEL"
OUTPUTS = ("float", "bits")

# Layout constants shared with the C++ source (kGroupRows, kTileGroups and the variant ids).
_CPU_GROUP_ROWS = 8
_CPU_TILE_GROUPS = 2
_CPU_WORD_BYTES = 8
_CUDA_WORD_BYTES = 4
_CPU_VARIANT_IDS = {"auto": 0, "generic": 1, "avx2": 2, "avx512": 3}
_CPU_VARIANT_NAMES = {value: name for name, value in _CPU_VARIANT_IDS.items()}

_FLOATING_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


# ---------------------------------------------------------------------------------------------
# Backend selection


_default_backend: str | None = None
_backend_override: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "sensimix_kernel_backend", default=None
)
_warned_messages: set[str] = set()


def _validate_backend(name, source: str) -> str:
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(f"Unknown kernel backend {name!r} from {source}. Allowed names: {', '.join(BACKENDS)}.")
    return name


def get_kernel_backend() -> str:
    """Return the requested backend name: the innermost `kernel_backend` context, else the default.

    The default is "auto" unless `set_kernel_backend` was called or the environment variable
    SENSIMIX_KERNEL was set when this function first ran.

    Raises:
        ValueError: if SENSIMIX_KERNEL contains an unknown name.
    """
    global _default_backend
    override = _backend_override.get()
    if override is not None:
        return override
    if _default_backend is None:
        value = os.environ.get(ENV_VARIABLE)
        if value is None or not value.strip():
            _default_backend = "auto"
        else:
            _default_backend = _validate_backend(value.strip(), f"the environment variable {ENV_VARIABLE}")
    return _default_backend


def set_kernel_backend(name: str) -> None:
    """Set the default backend of this process: "auto", "reference", "cpu" or "cuda".

    Raises:
        ValueError: if `name` is not one of these.
    """
    global _default_backend
    _default_backend = _validate_backend(name, "set_kernel_backend")


@contextlib.contextmanager
def kernel_backend(name: str) -> Iterator[None]:
    """Use backend `name` inside the `with` block, for the current thread or task only.

    Raises:
        ValueError: if `name` is not one of "auto", "reference", "cpu" or "cuda".
    """
    token = _backend_override.set(_validate_backend(name, "kernel_backend"))
    try:
        yield
    finally:
        _backend_override.reset(token)


def _warn_once(message: str) -> None:
    if message not in _warned_messages:
        _warned_messages.add(message)
        logger.warning(message)


def _failure_reason(state) -> str:
    if state.log_path is None:
        return state.error
    return f"{state.error} Build log: {state.log_path}."


def _select_backend(device: torch.device) -> str:
    """Resolve the requested backend for tensors on `device` into "reference", "cpu" or "cuda"."""
    requested = get_kernel_backend()
    if requested == "reference":
        return "reference"

    if requested == "cpu":
        if device.type != "cpu":
            raise ValueError(
                f"The kernel backend 'cpu' runs on CPU tensors only, but x is on {device}. "
                "Use the backend 'auto' or 'cuda', or move x to the CPU."
            )
        if not is_cpu_kernel_available():
            raise RuntimeError(
                f"The kernel backend 'cpu' was requested, but the C++ extension is not available: "
                f"{_failure_reason(_cpu_state)} Fall back with set_kernel_backend('reference') or "
                f"{ENV_VARIABLE}=reference (exact but slow), or use 'auto', which falls back by itself."
            )
        return "cpu"

    if device.type == "cuda":
        if is_cuda_kernel_available():
            return "cuda"
        _warn_once(
            f"The CUDA XNOR kernel is not available ({_failure_reason(_cuda_state)}), so "
            f"binary_linear runs the exact but slow reference path on {device.type}."
        )
        return "reference"

    if requested == "cuda":
        _warn_once(
            f"The kernel backend 'cuda' was requested for tensors on {device.type}, so binary_linear runs the "
            "exact but slow reference path there. Move the model to a CUDA device or use the backend 'auto'."
        )
        return "reference"

    if device.type == "cpu":
        if is_cpu_kernel_available():
            return "cpu"
        _warn_once(
            f"The compiled CPU XNOR kernel is not available ({_failure_reason(_cpu_state)}), so "
            "binary_linear runs the exact but slow reference path. Install a C++ compiler and ninja to build it."
        )
        return "reference"

    _warn_once(
        f"No compiled XNOR kernel exists for device type {device.type}, so binary_linear runs the reference path."
    )
    return "reference"


# ---------------------------------------------------------------------------------------------
# Building the extensions


class _ExtensionState:
    """Result of one build attempt: the operator namespace, or the reason why the build failed."""

    def __init__(self) -> None:
        self.attempted = False
        self.ops = None
        self.error: str | None = None
        self.log_path: str | None = None
        self.lock = threading.Lock()


_cpu_state = _ExtensionState()
_cuda_state = _ExtensionState()


def _extension_name(prefix: str, parts: list[str]) -> str:
    # The hash covers the sources, the flags and the torch and Python versions, so that any change
    # builds a new extension instead of loading a stale one from the cache.
    digest = hashlib.sha256("\0".join([*parts, torch.__version__, sys.version]).encode()).hexdigest()[:16]
    return f"{prefix}_{digest}"


def _build_directory(name: str) -> str:
    from torch.utils.cpp_extension import get_default_build_root

    root = os.environ.get("TORCH_EXTENSIONS_DIR") or get_default_build_root()
    return os.path.join(root, name)


def _torch_uses_openmp() -> bool:
    return "parallel backend: OpenMP" in torch.__config__.parallel_info()


def _missing_build_tool() -> str | None:
    from torch.utils.cpp_extension import is_ninja_available

    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        return f"No C++ compiler was found: {compiler!r} is not on PATH. Install one or set CXX to its path."
    if not is_ninja_available():
        return "The ninja build tool was not found. Install it with `pip install ninja`."
    return None


def _load_extension(state: _ExtensionState, name: str, **load_arguments) -> None:
    from torch.utils.cpp_extension import load_inline

    build_directory = _build_directory(name)
    try:
        os.makedirs(build_directory, exist_ok=True)
        if any(entry.endswith(".so") or entry.endswith(".pyd") for entry in os.listdir(build_directory)):
            logger.info("Loading the XNOR kernel extension %s from %s.", name, build_directory)
        else:
            logger.warning(
                "Compiling the XNOR kernel extension %s in %s. This happens once and can take a minute.",
                name,
                build_directory,
            )
        load_inline(
            name=name,
            build_directory=build_directory,
            is_python_module=False,
            no_implicit_headers=True,
            **load_arguments,
        )
        state.ops = getattr(torch.ops, name)
    # load_inline raises RuntimeError, CalledProcessError, OSError or ImportError, depending on the
    # step that failed. Each of them means "use another backend", so all are caught here.
    except Exception as error:  # noqa: BLE001
        state.error = f"building {name} failed with {type(error).__name__}."
        log_path = os.path.join(build_directory, "build_error.log")
        try:
            with open(log_path, "w", encoding="utf-8") as log_file:
                log_file.write(f"{type(error).__name__}: {error}\n")
            state.log_path = log_path
        except OSError:
            state.error += f" Details: {error}"
        logger.info("Building the XNOR kernel extension %s failed: %s", name, error)


def _cpu_ops():
    with _cpu_state.lock:
        if not _cpu_state.attempted:
            _cpu_state.attempted = True
            missing = _missing_build_tool()
            if sys.byteorder != "little":
                missing = "the compiled kernel reads packed bits as little-endian words, but this machine is big-endian."
            if missing is not None:
                _cpu_state.error = missing
            else:
                flags = ["-O3", "-ffp-contract=off"]
                ldflags = []
                # at::parallel_for is a header template that runs serially unless the extension
                # itself is compiled with OpenMP when torch uses the OpenMP backend.
                if _torch_uses_openmp() and sys.platform.startswith("linux"):
                    flags.append("-fopenmp")
                    ldflags.append("-fopenmp")
                name = _extension_name("sensimix_xnor_cpu", [CPU_SOURCE, *flags, *ldflags])
                _load_extension(
                    _cpu_state,
                    name,
                    cpp_sources=[CPU_SOURCE.replace(NAMESPACE_PLACEHOLDER, name)],
                    extra_cflags=flags,
                    extra_ldflags=ldflags,
                )
    return _cpu_state.ops


def _cuda_ops():
    with _cuda_state.lock:
        if not _cuda_state.attempted:
            _cuda_state.attempted = True
            from torch.utils.cpp_extension import CUDA_HOME

            if not torch.cuda.is_available():
                _cuda_state.error = "torch.cuda.is_available() is False."
            elif torch.version.hip is not None:
                # The kernel assumes 32-lane warps (__ballot_sync into 32-bit words), unlike AMD GPUs.
                _cuda_state.error = "the CUDA kernel is written for NVIDIA GPUs and does not support ROCm."
            elif CUDA_HOME is None:
                _cuda_state.error = "the CUDA toolkit (nvcc) was not found. Install it or set CUDA_HOME."
            else:
                missing = _missing_build_tool()
                if missing is not None:
                    _cuda_state.error = missing
                else:
                    flags = ["-O3"]
                    name = _extension_name("sensimix_xnor_cuda", [CUDA_BINDING_SOURCE, CUDA_SOURCE, *flags])
                    _load_extension(
                        _cuda_state,
                        name,
                        cpp_sources=[CUDA_BINDING_SOURCE.replace(NAMESPACE_PLACEHOLDER, name)],
                        cuda_sources=[CUDA_SOURCE],
                        extra_cflags=["-O3"],
                        extra_cuda_cflags=flags,
                        with_cuda=True,
                    )
    return _cuda_state.ops


def is_cpu_kernel_available() -> bool:
    """Return whether the compiled CPU kernel builds and loads here. The first call builds it."""
    return _cpu_ops() is not None


def is_cuda_kernel_available() -> bool:
    """Return whether the CUDA kernel builds and loads here. The first call with a GPU builds it."""
    return _cuda_ops() is not None


def cpu_kernel_variants() -> list[str]:
    """Return the CPU kernel variants this CPU supports, fastest first ([] without the extension).

    The names are "avx512" (AVX-512 with VPOPCNTDQ), "avx2" (AVX2 nibble-lookup popcount) and
    "generic" (portable C++). "auto" in the kernel picks the first.
    """
    ops = _cpu_ops()
    if ops is None:
        return []
    return [_CPU_VARIANT_NAMES[int(variant)] for variant in ops.supported_variants()]


# ---------------------------------------------------------------------------------------------
# Weight layouts


def _clear_padding_bits(bits: torch.Tensor, num_bits: int) -> torch.Tensor:
    # The kernels count every stored bit, so set padding bits (allowed by unpack_bits) must go.
    tail = num_bits % BITS_PER_BYTE
    if tail == 0:
        return bits
    cleared = bits.clone()
    cleared[..., -1] &= (1 << tail) - 1
    return cleared


def _to_words(bits: torch.Tensor, num_bits: int, word_bytes: int, dtype: torch.dtype) -> torch.Tensor:
    """Return packed rows `[rows, ceil(num_bits / 8)]` as little-endian words `[rows, num_words]`."""
    num_words = -(-num_bits // (word_bytes * BITS_PER_BYTE))
    padded = torch.nn.functional.pad(_clear_padding_bits(bits, num_bits), (0, num_words * word_bytes - bits.shape[-1]))
    return padded.contiguous().view(dtype)


def _cpu_weight_layout(weight_bits: torch.Tensor, in_features: int) -> torch.Tensor:
    """Return int64 `[padded_groups, words, 8]`: weight rows interleaved in groups of 8 per word index."""
    out_features = weight_bits.shape[0]
    groups = -(-out_features // _CPU_GROUP_ROWS)
    padded_groups = -(-groups // _CPU_TILE_GROUPS) * _CPU_TILE_GROUPS
    words = _to_words(weight_bits, in_features, _CPU_WORD_BYTES, torch.int64)
    # Zero weight rows fill the last tile, and the kernel never writes their outputs.
    words = torch.nn.functional.pad(words, (0, 0, 0, padded_groups * _CPU_GROUP_ROWS - out_features))
    return words.reshape(padded_groups, _CPU_GROUP_ROWS, -1).transpose(1, 2).contiguous()


def _cuda_weight_layout(weight_bits: torch.Tensor, in_features: int) -> torch.Tensor:
    """Return int32 `[out_features, ceil(in_features / 32)]` with the padding bits cleared."""
    return _to_words(weight_bits, in_features, _CUDA_WORD_BYTES, torch.int32)


_LAYOUT_BUILDERS = {"cpu": _cpu_weight_layout, "cuda": _cuda_weight_layout}


def _validate_weight_bits(weight_bits, in_features) -> None:
    if isinstance(in_features, bool) or not isinstance(in_features, int) or in_features < 1:
        raise ValueError(f"in_features must be a positive int, got {in_features!r}.")
    if not isinstance(weight_bits, torch.Tensor):
        raise TypeError(
            f"weight_bits must be a uint8 tensor or a PreparedWeight, got {type(weight_bits).__name__}."
        )
    expected_width = -(-in_features // BITS_PER_BYTE)
    if weight_bits.dtype != torch.uint8 or weight_bits.dim() != 2 or weight_bits.shape[1] != expected_width:
        raise ValueError(
            f"weight_bits must be uint8 [out_features, ceil(in_features / 8)] = [N, {expected_width}] for "
            f"in_features={in_features}, got dtype {weight_bits.dtype} and shape {tuple(weight_bits.shape)}. "
            "Pack the weight with pack_bits(weight >= 0)."
        )
    if weight_bits.shape[0] < 1:
        raise ValueError("weight_bits has no rows, but a linear layer needs at least one output feature.")


class PreparedWeight:
    """Packed sign bits of a weight together with the kernel layouts derived from them.

    Each backend builds its layout on first use and keeps it in memory, while the on-disk layout
    stays the uint8 `bits` tensor. A PreparedWeight does not notice later in-place changes of
    `bits`, so prepare the weight again after changing it. `binary_linear` also accepts the uint8 tensor
    itself and caches its layouts until the tensor is changed or freed.
    """

    def __init__(self, weight_bits: torch.Tensor, in_features: int) -> None:
        _validate_weight_bits(weight_bits, in_features)
        self.bits = weight_bits
        self.in_features = in_features
        self.out_features = weight_bits.shape[0]
        self._layouts: dict[str, torch.Tensor] = {}

    @property
    def device(self) -> torch.device:
        return self.bits.device

    def layout(self, backend: str) -> torch.Tensor:
        """Return the weight in the layout of `backend` ("cpu" or "cuda"), building it on first use."""
        if backend not in self._layouts:
            self._layouts[backend] = _LAYOUT_BUILDERS[backend](self.bits, self.in_features)
        return self._layouts[backend]

    def __repr__(self) -> str:
        return (
            f"PreparedWeight(out_features={self.out_features}, in_features={self.in_features}, "
            f"device={self.device}, layouts={sorted(self._layouts)})"
        )


def prepare_weight(weight_bits: torch.Tensor, in_features: int) -> PreparedWeight:
    """Wrap packed weight bits `[N, ceil(in_features / 8)]` so that their kernel layouts are cached.

    Raises:
        ValueError: if the shape or dtype does not match `in_features`.
    """
    return PreparedWeight(weight_bits, in_features)


# Layouts of plain uint8 weight tensors, keyed by id(tensor). Each entry keeps a weak reference to
# check identity and the tensor's version counter, which every in-place change (for example
# load_state_dict copying into a buffer) increments, so that a changed weight is prepared again.
_tensor_layouts: dict[int, tuple[weakref.ref, int, int, int, dict[str, torch.Tensor]]] = {}


def _forget_tensor(key: int) -> None:
    _tensor_layouts.pop(key, None)


def _weight_layout(weight, in_features: int, backend: str) -> torch.Tensor:
    if isinstance(weight, PreparedWeight):
        return weight.layout(backend)
    try:
        version = weight._version
    except RuntimeError:
        # Inference tensors have no version counter, so their layout cannot be cached safely.
        return _LAYOUT_BUILDERS[backend](weight, in_features)
    key = id(weight)
    entry = _tensor_layouts.get(key)
    if entry is None or entry[0]() is not weight or entry[1:4] != (version, weight.data_ptr(), in_features):
        entry = (
            weakref.ref(weight, lambda _, key=key: _forget_tensor(key)),
            version,
            weight.data_ptr(),
            in_features,
            {},
        )
        _tensor_layouts[key] = entry
    layouts = entry[4]
    if backend not in layouts:
        layouts[backend] = _LAYOUT_BUILDERS[backend](weight, in_features)
    return layouts[backend]


# ---------------------------------------------------------------------------------------------
# Argument checks


def _weight_parts(weight_bits, in_features: int, argument: str):
    """Return (weight, uint8 bits, out_features) after checking `weight_bits` against `in_features`."""
    if isinstance(weight_bits, PreparedWeight):
        if weight_bits.in_features != in_features:
            raise ValueError(
                f"{argument} was prepared for in_features={weight_bits.in_features}, but in_features={in_features}."
            )
        return weight_bits, weight_bits.bits, weight_bits.out_features
    try:
        _validate_weight_bits(weight_bits, in_features)
    except (TypeError, ValueError) as error:
        raise type(error)(f"{argument}: {error}") from error
    return weight_bits, weight_bits, weight_bits.shape[0]


def _check_vector(values, name: str, out_features: int, device: torch.device) -> None:
    if values is None:
        return
    if not isinstance(values, torch.Tensor) or not values.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor [out_features] or None, got {values!r:.80}.")
    if values.numel() != out_features or values.dim() != 1:
        raise ValueError(f"{name} must have shape [{out_features}] (out_features), got {tuple(values.shape)}.")
    if values.device != device:
        raise ValueError(f"{name} is on {values.device} but x is on {device}. Move both to one device.")


def _check_output(output) -> None:
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}.")


def _warn_if_grad_requested(*tensors) -> None:
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        _warn_once(
            "binary_linear is an inference kernel: its output does not require grad, so no gradient flows "
            "back to x, scale or bias. Train with the latent float weights instead."
        )


def _opmath_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


# ---------------------------------------------------------------------------------------------
# Backends


def _reference_linear(x2d, bits_input, weight_bits, in_features, scale, bias, bits_output, out_dtype):
    """Compute the product with unpacked +-1 float64 values, exact for in_features below 2**53."""
    weight_signs = unpack_bits(weight_bits, in_features).to(torch.float64) * 2 - 1
    if bits_input:
        x_signs = unpack_bits(x2d, in_features).to(torch.float64) * 2 - 1
    else:
        x_signs = torch.where(x2d >= 0, 1.0, -1.0).to(torch.float64)
    values = (x_signs @ weight_signs.T).to(_opmath_dtype(out_dtype))
    if scale is not None:
        values = values * scale.to(values.dtype)
    if bias is not None:
        values = values + bias.to(values.dtype)
    out = values.to(out_dtype)
    return sign_bits(out) if bits_output else out


def _cpu_linear(x2d, weight, in_features, out_features, scale, bias, bits_output, out_dtype, variant="auto"):
    ops = _cpu_ops()
    opmath = _opmath_dtype(out_dtype)
    return ops.xnor_linear(
        x2d,
        _weight_layout(weight, in_features, "cpu"),
        in_features,
        out_features,
        None if scale is None else scale.to(opmath).contiguous(),
        None if bias is None else bias.to(opmath).contiguous(),
        bits_output,
        out_dtype,
        _CPU_VARIANT_IDS[variant],
    )


def _cuda_linear(x2d, bits_input, weight, in_features, out_features, scale, bias, bits_output, out_dtype):
    ops = _cuda_ops()
    opmath = _opmath_dtype(out_dtype)
    if bits_input:
        x2d = _to_words(x2d, in_features, _CUDA_WORD_BYTES, torch.int32)
    return ops.xnor_linear(
        x2d,
        _weight_layout(weight, in_features, "cuda"),
        in_features,
        out_features,
        None if scale is None else scale.to(opmath).contiguous(),
        None if bias is None else bias.to(opmath).contiguous(),
        bits_output,
        out_dtype,
    )


def _run(x, bits_input, weight_bits, in_features, scale, bias, output, out_dtype):
    weight, bits, out_features = _weight_parts(weight_bits, in_features, "weight_bits")
    if bits.device != x.device:
        raise ValueError(f"weight_bits is on {bits.device} but x is on {x.device}. Move both to one device.")
    _check_vector(scale, "scale", out_features, x.device)
    _check_vector(bias, "bias", out_features, x.device)
    _check_output(output)
    _warn_if_grad_requested(x, scale, bias)

    bits_output = output == "bits"
    leading_shape = x.shape[:-1]
    x2d = x.reshape(-1, x.shape[-1]).contiguous()
    backend = _select_backend(x.device)
    with torch.no_grad():
        if backend == "cpu":
            out = _cpu_linear(x2d, weight, in_features, out_features, scale, bias, bits_output, out_dtype)
        elif backend == "cuda":
            out = _cuda_linear(x2d, bits_input, weight, in_features, out_features, scale, bias, bits_output, out_dtype)
        else:
            out = _reference_linear(x2d, bits_input, bits, in_features, scale, bias, bits_output, out_dtype)
    return out.reshape(*leading_shape, out.shape[-1])


# ---------------------------------------------------------------------------------------------
# Public products


def binary_linear(
    x: torch.Tensor,
    weight_bits,
    in_features: int,
    scale: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    *,
    output: str = "float",
) -> torch.Tensor:
    """Compute `(b(x) @ b(W).T) * scale + bias` with XNOR and popcount on the selected backend.

    Args:
        x: floating tensor `[..., in_features]` (float16, bfloat16, float32 or float64), on any device.
            It is binarized inside the kernel: b(v) = +1 if v >= 0 else -1, NaN maps to -1.
        weight_bits: uint8 `[N, ceil(in_features / 8)]` in the layout of `pack_bits`, or a
            `PreparedWeight` from `prepare_weight`.
        in_features: K, the number of real bits per weight row; must equal `x.shape[-1]`.
        scale: floating `[N]` multiplied into each output column, or None.
        bias: floating `[N]` added to each output column, or None.
        output: "float" returns x's dtype `[..., N]`. "bits" returns uint8 `[..., ceil(N / 8)]`,
            equal to `sign_bits(binary_linear(..., output="float"))` but without the float tensor;
            feed it to `binary_linear_from_bits`.

    Raises:
        TypeError: if x is not a floating tensor.
        ValueError: if shapes, devices or `output` do not match, or the backend "cpu" is set for a
            tensor on another device.
        RuntimeError: if the backend "cpu" is set and its extension cannot be built.
    """
    if not isinstance(x, torch.Tensor) or x.dtype not in _FLOATING_DTYPES:
        description = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(
            f"x must be a float16, bfloat16, float32 or float64 tensor, got {description}. "
            "For packed sign bits use binary_linear_from_bits."
        )
    _weight_parts(weight_bits, in_features, "weight_bits")
    if x.dim() < 1 or x.shape[-1] != in_features:
        raise ValueError(f"x must have shape [..., in_features] = [..., {in_features}], got {tuple(x.shape)}.")
    return _run(x, False, weight_bits, in_features, scale, bias, output, x.dtype)


def binary_linear_from_bits(
    x_bits: torch.Tensor,
    weight_bits,
    in_features: int,
    scale: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    output: str = "float",
) -> torch.Tensor:
    """Compute `binary_linear` for inputs that are already packed sign bits.

    Args:
        x_bits: uint8 `[..., ceil(in_features / 8)]` in the layout of `pack_bits`, for example the
            output of `binary_linear(..., output="bits")`. Padding bits are ignored.
        dtype: dtype of the float output; the affine step runs in float32, or float64 for float64.
        weight_bits, in_features, scale, bias, output: as in `binary_linear`.

    Raises:
        TypeError: if x_bits is not a tensor or `dtype` is not a floating dtype.
        ValueError: if x_bits is not uint8 or its last dimension does not match `in_features`.
    """
    if not isinstance(x_bits, torch.Tensor):
        raise TypeError(f"x_bits must be a uint8 tensor, got {type(x_bits).__name__}.")
    if dtype not in _FLOATING_DTYPES:
        raise TypeError(f"dtype must be one of {_FLOATING_DTYPES}, got {dtype!r}.")
    _weight_parts(weight_bits, in_features, "weight_bits")
    expected_width = -(-in_features // BITS_PER_BYTE)
    if x_bits.dtype != torch.uint8 or x_bits.dim() < 1 or x_bits.shape[-1] != expected_width:
        raise ValueError(
            f"x_bits must be uint8 [..., ceil(in_features / 8)] = [..., {expected_width}], got dtype "
            f"{x_bits.dtype} and shape {tuple(x_bits.shape)}. Pack the input with sign_bits(x)."
        )
    return _run(x_bits, True, weight_bits, in_features, scale, bias, output, dtype)


def binary_ffn(
    x: torch.Tensor,
    intermediate_weight_bits,
    output_weight_bits,
    intermediate_scale: torch.Tensor | None = None,
    intermediate_bias: torch.Tensor | None = None,
    output_scale: torch.Tensor | None = None,
    output_bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Compute a 1-bit feed-forward block, passing only sign bits between its two linear layers.

    With hidden size H and intermediate size I, this returns
    `binary_linear(b(h), output_weight_bits, I, output_scale, output_bias)` in x's dtype, where
    `h = binary_linear(x, intermediate_weight_bits, H, intermediate_scale, intermediate_bias)` is
    never stored as floats. There is no activation between the layers: b(GELU(h)) = b(h) is true in
    exact arithmetic, because GELU keeps the sign and GELU(0) = 0. In floating point it is not:
    `torch.nn.functional.gelu` (torch 2.13, CPU, float32) returns -0.0 for h below about -5.5, and
    b(-0.0) = +1 while b(h) = -1. A model matches this function only if it binarizes h itself.

    Args:
        x: floating `[..., H]`.
        intermediate_weight_bits: uint8 `[I, ceil(H / 8)]` or a PreparedWeight.
        output_weight_bits: uint8 `[H_out, ceil(I / 8)]` or a PreparedWeight.
        intermediate_scale, intermediate_bias: floating `[I]` or None.
        output_scale, output_bias: floating `[H_out]` or None.

    Raises:
        TypeError, ValueError, RuntimeError: as `binary_linear`.
    """
    if not isinstance(x, torch.Tensor) or x.dim() < 1:
        raise TypeError(f"x must be a floating tensor [..., hidden_size], got {x!r:.80}.")
    _, _, intermediate_size = _weight_parts(intermediate_weight_bits, x.shape[-1], "intermediate_weight_bits")
    hidden_bits = binary_linear(
        x, intermediate_weight_bits, x.shape[-1], intermediate_scale, intermediate_bias, output="bits"
    )
    return binary_linear_from_bits(
        hidden_bits, output_weight_bits, intermediate_size, output_scale, output_bias, dtype=x.dtype
    )


__all__ = [
    "BACKENDS",
    "ENV_VARIABLE",
    "PreparedWeight",
    "binary_ffn",
    "binary_linear",
    "binary_linear_from_bits",
    "cpu_kernel_variants",
    "get_kernel_backend",
    "is_cpu_kernel_available",
    "is_cuda_kernel_available",
    "kernel_backend",
    "prepare_weight",
    "set_kernel_backend",
]
