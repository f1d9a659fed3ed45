"""Train a tiny SensiMix model with SensiMixCallback under DDP and save this rank's result.

Run by tests/test_callback.py as
`python -m torch.distributed.run --nproc_per_node 2 tests/ddp_train_script.py OUTPUT_DIR` on CPU with gloo.
Each rank writes OUTPUT_DIR/rank{RANK}.pt with its final state dict and the 1-bit FFN layers after each
optimizer step, so that the test can check that the ranks agree.
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from transformers import Trainer, TrainingArguments

from sensimix_hf import SensiMixForSequenceClassification
from sensimix_hf.callback import SensiMixCallback
from tiny_models import RandomTokenDataset, StageRecorder, tiny_sensimix_config


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(f"usage: {sys.argv[0]} OUTPUT_DIR")
    output_dir = Path(sys.argv[1])
    rank = int(os.environ.get("RANK", "0"))

    # A different initialization per rank shows that DDP's broadcast at wrap time, not the seed, aligns the ranks.
    torch.manual_seed(rank)
    config = tiny_sensimix_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = SensiMixForSequenceClassification(config)

    # 20 examples over 2 ranks in batches of 2 give 5 micro-batches per rank and epoch, so with
    # accumulation 2 an epoch has 3 optimizer steps and the last one takes a single micro-batch.
    args = TrainingArguments(
        output_dir=str(output_dir / "run"),
        use_cpu=True,
        ddp_backend="gloo",
        # Every parameter takes part in every forward, so DDP needs no search for unused ones, and it
        # raises an error if that ever stops being true.
        ddp_find_unused_parameters=False,
        report_to=[],
        per_device_train_batch_size=2,
        gradient_accumulation_steps=2,
        num_train_epochs=3,
        learning_rate=1e-3,
        save_strategy="no",
        logging_strategy="steps",
        logging_steps=1,
        disable_tqdm=True,
        seed=0,
    )
    recorder = StageRecorder()
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=RandomTokenDataset(20),
        callbacks=[SensiMixCallback(), recorder],
    )
    trainer.train()

    state_dict = {name: value.detach().cpu().clone() for name, value in model.state_dict().items()}
    torch.save(
        {
            "state_dict": state_dict,
            "binary_layers_per_step": recorder.binary_layers_per_step,
            "final_binary_layers": model.binary_ffn_layers,
            "world_size": args.world_size,
        },
        output_dir / f"rank{rank}.pt",
    )


if __name__ == "__main__":
    main()
