"""Classify sentences with a packed SensiMix model folder and print the label names and scores.

    python examples/predict.py sensimix-minilm "a gripping, beautifully acted film" "two hours I will never get back"

By default the model loads through sensimix-hf, which registers the SensiMix model type with transformers' Auto
classes. With --trust_remote_code it loads without sensimix-hf, from the code files saved beside the weights.
"""

import argparse

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_path", help="Folder written by `sensimix train` or `model.save_pretrained`.")
    parser.add_argument("sentences", nargs="+", help="Sentences to classify.")
    parser.add_argument(
        "--trust_remote_code",
        action="store_true",
        help="Load the model from the code files in its folder instead of importing sensimix_hf.",
    )
    return parser.parse_args()


def main() -> None:
    arguments = parse_arguments()
    if not arguments.trust_remote_code:
        import sensimix_hf  # noqa: F401 - registers the SensiMix model type with the Auto classes

    # The tokenizer reads the model's config.json too, whose auto_map names the saved code files.
    tokenizer = AutoTokenizer.from_pretrained(arguments.model_path, trust_remote_code=arguments.trust_remote_code)
    model = AutoModelForSequenceClassification.from_pretrained(
        arguments.model_path, trust_remote_code=arguments.trust_remote_code
    )
    model.eval()

    inputs = tokenizer(arguments.sentences, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        probabilities = model(**inputs).logits.softmax(dim=-1)

    labels = [model.config.id2label[index] for index in range(model.config.num_labels)]
    for sentence, scores in zip(arguments.sentences, probabilities.tolist()):
        best = max(range(len(scores)), key=scores.__getitem__)
        score_text = "  ".join(f"{label}={score:.3f}" for label, score in zip(labels, scores))
        print(f"{labels[best]}\t{score_text}\t{sentence}")


if __name__ == "__main__":
    main()
