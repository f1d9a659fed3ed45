"""Time the compiled XNOR-popcount CPU kernel against FP32 torch.nn.Linear.

Shapes are those of a MiniLM-sized 1-bit FFN (hidden 384, intermediate 1536) over 4096 tokens:
the intermediate linear (4096 x 384 -> 1536), the output linear (4096 x 1536 -> 384), and the whole
FFN. Every timed kernel call includes binarizing and packing its float input. The script prints a
markdown table of the median and minimum latencies after warm-up, and `--json FILE` also writes
them as JSON. On a shared machine the minimum is the steadier number.

Usage:
    python benchmarks/binary_ffn_kernel.py [--threads N] [--repeats R] [--tokens T] [--json FILE]
"""

import argparse
import json
import platform
import statistics
import time

import torch

from sensimix_hf.bitpacking import sign_bits
from sensimix_hf.xnor_kernel import (
    binary_ffn,
    binary_linear,
    cpu_kernel_variants,
    is_cpu_kernel_available,
    kernel_backend,
    prepare_weight,
)

# Private entry point: it runs one named CPU variant instead of the best one.
from sensimix_hf.xnor_kernel import _cpu_linear


HIDDEN_SIZE = 384
INTERMEDIATE_SIZE = 1536
WARMUP_RUNS = 3


def time_ms(function, repeats: int) -> dict:
    """Run `function` WARMUP_RUNS times, then return the median and minimum of `repeats` timed runs in ms."""
    for _ in range(WARMUP_RUNS):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000.0)
    return {"ms": statistics.median(times), "min_ms": min(times)}


def linear_rows(tokens: int, in_features: int, out_features: int, repeats: int) -> list[dict]:
    """Time nn.Linear and binary_linear for one shape; returns one row per implementation."""
    shape = f"{tokens} x {in_features} -> {out_features}"
    linear = torch.nn.Linear(in_features, out_features)
    x = torch.randn(tokens, in_features)
    weight = prepare_weight(sign_bits(linear.weight), in_features)
    scale = linear.weight.abs().mean(dim=1)
    bias = linear.bias

    rows = [{"shape": shape, "implementation": "FP32 nn.Linear", **time_ms(lambda: linear(x), repeats)}]
    with kernel_backend("cpu"):
        timing = time_ms(lambda: binary_linear(x, weight, in_features, scale, bias), repeats)
        rows.append({"shape": shape, "implementation": "binary_linear (auto variant)", **timing})
    for variant in cpu_kernel_variants():
        timing = time_ms(
            lambda variant=variant: _cpu_linear(
                x, weight, in_features, out_features, scale, bias, False, torch.float32, variant
            ),
            repeats,
        )
        rows.append({"shape": shape, "implementation": f"binary_linear ({variant})", **timing})
    return add_speedups(rows)


def ffn_rows(tokens: int, repeats: int) -> list[dict]:
    """Time a FP32 FFN (linear, GELU, linear) against the 1-bit FFN, fused and unfused."""
    shape = f"FFN {tokens} x {HIDDEN_SIZE} -> {INTERMEDIATE_SIZE} -> {HIDDEN_SIZE}"
    intermediate = torch.nn.Linear(HIDDEN_SIZE, INTERMEDIATE_SIZE)
    output = torch.nn.Linear(INTERMEDIATE_SIZE, HIDDEN_SIZE)
    x = torch.randn(tokens, HIDDEN_SIZE)
    weight1 = prepare_weight(sign_bits(intermediate.weight), HIDDEN_SIZE)
    weight2 = prepare_weight(sign_bits(output.weight), INTERMEDIATE_SIZE)
    scale1 = intermediate.weight.abs().mean(dim=1)
    scale2 = output.weight.abs().mean(dim=1)

    def float_ffn():
        return output(torch.nn.functional.gelu(intermediate(x)))

    def unfused_ffn():
        hidden = binary_linear(x, weight1, HIDDEN_SIZE, scale1, intermediate.bias)
        return binary_linear(hidden, weight2, INTERMEDIATE_SIZE, scale2, output.bias)

    def fused_ffn():
        return binary_ffn(x, weight1, weight2, scale1, intermediate.bias, scale2, output.bias)

    rows = [{"shape": shape, "implementation": "FP32 Linear + GELU + Linear", **time_ms(float_ffn, repeats)}]
    with kernel_backend("cpu"):
        rows.append({"shape": shape, "implementation": "2 x binary_linear (float between)", **time_ms(unfused_ffn, repeats)})
        rows.append({"shape": shape, "implementation": "binary_ffn (sign bits between)", **time_ms(fused_ffn, repeats)})
    return add_speedups(rows)


def add_speedups(rows: list[dict]) -> list[dict]:
    """Add the speed-up over the first row (the FP32 baseline), from medians and from minimums."""
    for row in rows:
        row["speedup"] = rows[0]["ms"] / row["ms"]
        row["speedup_min"] = rows[0]["min_ms"] / row["min_ms"]
    return rows


def cpu_name() -> str:
    """Return the CPU model name from /proc/cpuinfo where it exists, else the machine type."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| shape | implementation | median ms | min ms | speed-up (medians) | speed-up (minimums) |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['shape']} | {row['implementation']} | {row['ms']:.2f} | {row['min_ms']:.2f} | "
            f"{row['speedup']:.1f}x | {row['speedup_min']:.1f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default: 2)")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per measurement after warm-up (default: 20)")
    parser.add_argument("--tokens", type=int, default=4096, help="number of input rows (default: 4096)")
    parser.add_argument("--json", metavar="FILE", help="also write the results to FILE as JSON")
    args = parser.parse_args()
    if args.threads < 1 or args.repeats < 1 or args.tokens < 1:
        parser.error("--threads, --repeats and --tokens must be positive integers")
    if not is_cpu_kernel_available():
        raise SystemExit("The compiled CPU kernel is not available; see the log of sensimix_hf.xnor_kernel.")

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    with torch.no_grad():
        rows += linear_rows(args.tokens, HIDDEN_SIZE, INTERMEDIATE_SIZE, args.repeats)
        rows += linear_rows(args.tokens, INTERMEDIATE_SIZE, HIDDEN_SIZE, args.repeats)
        rows += ffn_rows(args.tokens, args.repeats)

    print(f"torch {torch.__version__}, {args.threads} threads, {args.repeats} timed runs, CPU {cpu_name()}")
    print(f"CPU kernel variants, fastest first: {', '.join(cpu_kernel_variants())}")
    print()
    print(markdown_table(rows))
    if args.json:
        result = {
            "torch": torch.__version__,
            "threads": args.threads,
            "repeats": args.repeats,
            "tokens": args.tokens,
            "cpu_variants": cpu_kernel_variants(),
            "rows": rows,
        }
        with open(args.json, "w", encoding="utf-8") as json_file:
            json.dump(result, json_file, indent=2)


if __name__ == "__main__":
    main()
