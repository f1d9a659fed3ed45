"""Packed SensiMix checkpoints: packing, exact reloads (installed and remote code), damaged files and the Hub folder."""

import ast
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from huggingface_hub import HfApi, ModelCard
from safetensors.torch import load_file, save_file
from transformers import AutoModel, AutoModelForSequenceClassification, BertTokenizer, PreTrainedModel
from transformers.utils.hub import PushToHubMixin

import sensimix_hf
from sensimix_hf import SensiMixForSequenceClassification, SensiMixModel
from sensimix_hf.bitpacking import unpack_bits
from sensimix_hf.layers import (
    BinaryLinear,
    IndexQuantEmbedding,
    IndexQuantLinear,
    PackedBinaryLinear,
    PackedIndexEmbedding,
    PackedIndexLinear,
)
from sensimix_hf.size_report import read_safetensors_header
from tiny_models import tiny_sensimix_config as tiny_config


PACKED_MODULES = (PackedIndexLinear, PackedIndexEmbedding, PackedBinaryLinear)
TRAINING_MODULES = (IndexQuantLinear, IndexQuantEmbedding, BinaryLinear)
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")
PACKAGE_DIR = Path(sensimix_hf.__file__).parent
REPO_SRC = str(PACKAGE_DIR.parent)
EXPECTED_AUTO_MAP = {
    "AutoConfig": "configuration_sensimix.SensiMixConfig",
    "AutoModel": "modeling_sensimix.SensiMixModel",
    "AutoModelForSequenceClassification": "modeling_sensimix.SensiMixForSequenceClassification",
}
MIB = 1024 * 1024
# Size of the FP32 MiniLM (6 x 384) model.safetensors.
MINILM_FP32_MIB = 86.7


def packed_tiny_model(seed: int = 0, **overrides) -> SensiMixForSequenceClassification:
    torch.manual_seed(seed)
    model = SensiMixForSequenceClassification(tiny_config(**overrides)).eval()
    model.set_binary_ffn_layers(model.mp_layer_indices)
    return model.pack()


def tiny_batch(seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(1, 99, (3, 11), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, -4:] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask}


@torch.no_grad()
def logits_of(model, batch: dict) -> torch.Tensor:
    return model(**batch).logits


@pytest.fixture(scope="module")
def saved_packed(tmp_path_factory):
    """A packed tiny classifier, its reference outputs, and the folder it was saved to."""
    model = packed_tiny_model()
    folder = tmp_path_factory.mktemp("packed") / "sensimix-tiny"
    model.save_pretrained(folder)
    batch = tiny_batch()
    with torch.no_grad():
        hidden = model.bert(**batch).last_hidden_state
    return SimpleNamespace(model=model, folder=folder, batch=batch, logits=logits_of(model, batch), hidden=hidden)


def copy_folder(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


# ---------------------------------------------------------------------------------------------
# Packing


def test_pack_leaves_no_float_weight_matrix():
    model = packed_tiny_model()

    assert model.is_packed
    assert model.config.is_packed
    assert not any(isinstance(module, TRAINING_MODULES) for module in model.modules())
    packed_modules = [module for module in model.modules() if isinstance(module, PACKED_MODULES)]
    # 2 embeddings + 4 layers x 4 attention linears + 2 x 2 8-bit FFN linears + 2 x 2 1-bit FFN linears.
    assert len(packed_modules) == 2 + 16 + 4 + 4
    for module in packed_modules:
        local_names = [name for name, _ in module.named_parameters(recurse=False)]
        local_names += [name for name, _ in module.named_buffers(recurse=False)]
        assert "weight" not in local_names, type(module).__name__
        assert not list(module.parameters(recurse=False))
        if isinstance(module, PackedBinaryLinear):
            assert module.weight_bits.dtype == torch.uint8
        else:
            assert module.weight_index.dtype == torch.int8

    float_matrices = {
        name for name, tensor in model.state_dict().items() if tensor.is_floating_point() and tensor.dim() == 2
    }
    assert float_matrices == {
        "bert.embeddings.token_type_embeddings.weight",
        "bert.pooler.dense.weight",
        "classifier.weight",
    }


def test_pack_freezes_every_parameter():
    model = packed_tiny_model()

    assert all(not parameter.requires_grad for parameter in model.parameters())
    assert model.binary_ffn_layers == model.mp_layer_indices


def test_pack_requires_final_stage_state():
    torch.manual_seed(0)
    model = SensiMixForSequenceClassification(tiny_config()).eval()
    model.set_binary_ffn_layers([3])

    with pytest.raises(ValueError, match="binary_ffn_layers"):
        model.pack()


# ---------------------------------------------------------------------------------------------
# Exact reloads with sensimix_hf installed


def test_auto_classifier_reload_is_exact(saved_packed):
    loaded = AutoModelForSequenceClassification.from_pretrained(saved_packed.folder).eval()

    assert isinstance(loaded, SensiMixForSequenceClassification)
    assert loaded.is_packed
    assert torch.equal(logits_of(loaded, saved_packed.batch), saved_packed.logits)


def test_auto_model_reload_gives_packed_encoder(saved_packed):
    encoder = AutoModel.from_pretrained(saved_packed.folder).eval()

    assert type(encoder) is SensiMixModel
    assert encoder.is_packed
    assert any(isinstance(module, PackedBinaryLinear) for module in encoder.modules())
    with torch.no_grad():
        hidden = encoder(**saved_packed.batch).last_hidden_state
    assert torch.equal(hidden, saved_packed.hidden)


def test_packed_reload_is_frozen(saved_packed):
    loaded = SensiMixForSequenceClassification.from_pretrained(saved_packed.folder)

    assert all(not parameter.requires_grad for parameter in loaded.parameters())


def test_loading_keeps_every_saved_tensor(saved_packed):
    stored = load_file(saved_packed.folder / "model.safetensors")
    classifier = SensiMixForSequenceClassification.from_pretrained(saved_packed.folder)
    encoder = SensiMixModel.from_pretrained(saved_packed.folder)

    classifier_state = classifier.state_dict()
    assert set(classifier_state) == set(stored)
    for name, tensor in classifier_state.items():
        assert tensor.dtype == stored[name].dtype, name
        assert torch.equal(tensor, stored[name]), name
    encoder_state = encoder.state_dict()
    assert set(encoder_state) == {name.removeprefix("bert.") for name in stored if name.startswith("bert.")}
    for name, tensor in encoder_state.items():
        assert torch.equal(tensor, stored[f"bert.{name}"]), name


def test_float16_load_keeps_integer_buffers(saved_packed):
    half = AutoModelForSequenceClassification.from_pretrained(saved_packed.folder, dtype=torch.float16).eval()

    for name, buffer in half.named_buffers():
        if name.endswith("weight_index"):
            assert buffer.dtype == torch.int8, name
        if name.endswith("weight_bits"):
            assert buffer.dtype == torch.uint8, name
    assert half.classifier.weight.dtype == torch.float16
    logits = logits_of(half, saved_packed.batch)
    assert logits.dtype == torch.float16
    assert torch.isfinite(logits).all()
    # float16 rounds the activations, so a 1-bit input close to zero may flip its sign.
    torch.testing.assert_close(logits.float(), saved_packed.logits, rtol=0.05, atol=2e-3)


def test_training_checkpoint_reload_restores_binary_layers(tmp_path):
    torch.manual_seed(1)
    model = SensiMixForSequenceClassification(tiny_config()).eval()
    model.set_binary_ffn_layers([3])
    model.save_pretrained(tmp_path)
    batch = tiny_batch(seed=1)

    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()

    assert not loaded.is_packed
    assert loaded.binary_ffn_layers == [3]
    layers = loaded.bert.encoder.layer
    assert layers[2].intermediate.dense.binary is False
    assert layers[2].output.dense.binary is False
    assert layers[3].intermediate.dense.binary is True
    assert layers[3].output.dense.binary is True
    assert not any(isinstance(module, PACKED_MODULES) for module in loaded.modules())
    assert torch.equal(logits_of(loaded, batch), logits_of(model, batch))


@pytest.mark.parametrize("intermediate_size", [37, 1], ids=["in-37-not-multiple-of-8", "one-row-one-column"])
@pytest.mark.parametrize("seed", [0, 1])
def test_sign_bits_survive_pack_save_load(tmp_path, intermediate_size, seed):
    torch.manual_seed(seed)
    model = SensiMixForSequenceClassification(tiny_config(intermediate_size=intermediate_size)).eval()
    model.set_binary_ffn_layers(model.mp_layer_indices)
    latent = {}
    with torch.no_grad():
        for layer_index in model.mp_layer_indices:
            layer = model.bert.encoder.layer[layer_index]
            for name, linear in (("intermediate", layer.intermediate.dense), ("output", layer.output.dense)):
                # Signed zeros must map to +1 like any other zero.
                linear.weight.view(-1)[0] = 0.0
                linear.weight.view(-1)[-1] = -0.0
                latent[layer_index, name] = (linear.weight >= 0).clone()
    model.pack().save_pretrained(tmp_path)

    loaded = AutoModel.from_pretrained(tmp_path)

    for (layer_index, name), expected in latent.items():
        layer = loaded.encoder.layer[layer_index]
        linear = layer.intermediate.dense if name == "intermediate" else layer.output.dense
        assert isinstance(linear, PackedBinaryLinear)
        assert expected.view(-1)[0]
        assert expected.view(-1)[-1]
        unpacked = unpack_bits(linear.weight_bits, linear.in_features)
        assert unpacked.shape == expected.shape
        assert torch.equal(unpacked, expected), (layer_index, name)


# ---------------------------------------------------------------------------------------------
# Exact reload through trust_remote_code, without sensimix_hf


REMOTE_CODE_CHILD = textwrap.dedent(
    """
    import os
    import sys

    sys.modules["sensimix_hf"] = None  # makes `import sensimix_hf` raise ImportError in this process
    # An editable install puts the repository's src folder on sys.path through a .pth file, so drop it.
    sys.path[:] = [entry for entry in sys.path if not os.path.isdir(os.path.join(entry, "sensimix_hf"))]

    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification

    try:
        import sensimix_hf  # noqa: F401
    except ImportError:
        blocked = True
    else:
        blocked = False

    folder, batch_path, output_path = sys.argv[1:4]
    batch = torch.load(batch_path)
    classifier = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True).eval()
    encoder = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    with torch.no_grad():
        logits = classifier(**batch).logits
        hidden = encoder(**batch).last_hidden_state
    torch.save(
        {
            "logits": logits,
            "hidden": hidden,
            "blocked": blocked,
            "classifier_module": type(classifier).__module__,
            "encoder_class": type(encoder).__name__,
            "is_packed": bool(classifier.config.is_packed and encoder.config.is_packed),
            "sensimix_modules": sorted(name for name, module in sys.modules.items()
                                       if name.startswith("sensimix_hf") and module is not None),
            "sys_path": list(sys.path),
        },
        output_path,
    )
    """
)


def run_remote_code_child(folder: Path, batch: dict, work_dir: Path) -> dict:
    """Load `folder` with trust_remote_code in a fresh isolated interpreter and return what it computed."""
    script = work_dir / "load_remote_code.py"
    script.write_text(REMOTE_CODE_CHILD)
    batch_path = work_dir / "batch.pt"
    torch.save(batch, batch_path)
    output_path = work_dir / "outputs.pt"
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    environment.update(HF_MODULES_CACHE=str(work_dir / "modules"), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    # -I: isolated mode, so neither PYTHONPATH, the user site folder nor the script's folder reach sys.path.
    completed = subprocess.run(
        [sys.executable, "-I", str(script), str(folder), str(batch_path), str(output_path)],
        cwd=work_dir,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    return torch.load(output_path)


@pytest.mark.parametrize("folder_name", ["sensimix-tiny", "sensimix-mrpc-v1.0"])
def test_remote_code_reload_is_exact(saved_packed, tmp_path, folder_name):
    folder = copy_folder(saved_packed.folder, tmp_path / folder_name)
    work_dir = tmp_path / "child"
    work_dir.mkdir()

    outputs = run_remote_code_child(folder, saved_packed.batch, work_dir)

    assert outputs["blocked"]
    assert outputs["sensimix_modules"] == []
    assert REPO_SRC not in outputs["sys_path"]
    assert outputs["classifier_module"].startswith("transformers_modules.")
    assert outputs["encoder_class"] == "SensiMixModel"
    assert outputs["is_packed"]
    assert torch.equal(outputs["logits"], saved_packed.logits)
    assert torch.equal(outputs["hidden"], saved_packed.hidden)


# ---------------------------------------------------------------------------------------------
# Damaged or mismatched checkpoints


def rewrite_tensors(folder: Path, change) -> None:
    path = folder / "model.safetensors"
    tensors = load_file(path)
    change(tensors)
    save_file(tensors, path, metadata={"format": "pt"})


def truncate_file(folder: Path) -> None:
    path = folder / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def corrupt_header(folder: Path) -> None:
    path = folder / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[8:24] = b"\xff" * 16
    path.write_bytes(bytes(data))


QUERY_INDEX = "bert.encoder.layer.0.attention.self.query.weight_index"
FFN_BITS = "bert.encoder.layer.3.output.dense.weight_bits"


def wrong_shape(folder: Path) -> None:
    rewrite_tensors(folder, lambda tensors: tensors.update({QUERY_INDEX: tensors[QUERY_INDEX][:, :16].contiguous()}))


def wrong_dtype(folder: Path) -> None:
    rewrite_tensors(folder, lambda tensors: tensors.update({QUERY_INDEX: tensors[QUERY_INDEX].float()}))


def missing_key(folder: Path) -> None:
    rewrite_tensors(folder, lambda tensors: tensors.pop(FFN_BITS))


def edit_config(folder: Path, **changes) -> None:
    path = folder / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def layout_disagrees(folder: Path) -> None:
    edit_config(folder, num_8bit_layers=3, binary_ffn_layers=[3])


def future_format(folder: Path) -> None:
    edit_config(folder, sensimix_format_version=2)


@pytest.mark.parametrize(
    "damage, expected_fragments",
    [
        (truncate_file, ["model.safetensors", "truncated"]),
        (corrupt_header, ["model.safetensors", "corrupted"]),
        (wrong_shape, [QUERY_INDEX, "shape [32, 16]", "[32, 32]"]),
        (wrong_dtype, [QUERY_INDEX, "dtype F32", "torch.int8"]),
        (missing_key, [FFN_BITS, "lacks 1 tensor"]),
        (layout_disagrees, ["num_8bit_layers=3", "layer.2.intermediate.dense.weight_bits"]),
        (future_format, ["format version 2", "Upgrade sensimix-hf"]),
    ],
    ids=["truncated", "corrupted-header", "wrong-shape", "wrong-dtype", "missing-key", "layout", "future-version"],
)
def test_damaged_checkpoint_raises_clear_error(saved_packed, tmp_path, damage, expected_fragments):
    folder = copy_folder(saved_packed.folder, tmp_path / "damaged")
    damage(folder)

    with pytest.raises(ValueError) as error:
        AutoModelForSequenceClassification.from_pretrained(folder)

    message = str(error.value)
    for fragment in expected_fragments:
        assert fragment in message, message


# ---------------------------------------------------------------------------------------------
# The folder to upload to the Hub


def tiny_tokenizer() -> BertTokenizer:
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"word{index}" for index in range(94)]
    return BertTokenizer(vocab={word: index for index, word in enumerate(words)})


README_TEXT = "---\nlibrary_name: transformers\nlicense: apache-2.0\n---\n\n# Tiny packed SensiMix test model\n"


def relative_import_closure(folder: Path, start: list[str]) -> set[str]:
    """Return the file names of `start` and of every module they import relatively, recursively."""
    seen = set()
    pending = list(start)
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        tree = ast.parse((folder / name).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module is None:
                    pending.extend(f"{alias.name}.py" for alias in node.names)
                else:
                    pending.append(f"{node.module}.py")
    return seen


@pytest.fixture
def hub_folder(tmp_path):
    model = packed_tiny_model()
    tokenizer = tiny_tokenizer()
    folder = tmp_path / "hub"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "README.md").write_text(README_TEXT)
    return SimpleNamespace(model=model, tokenizer=tokenizer, folder=folder)


def test_hub_folder_is_complete(hub_folder):
    folder = hub_folder.folder
    config = json.loads((folder / "config.json").read_text())
    code_files = relative_import_closure(folder, ["configuration_sensimix.py", "modeling_sensimix.py"])

    assert config["auto_map"] == EXPECTED_AUTO_MAP
    assert config["is_packed"] is True
    assert config["sensimix_format_version"] == sensimix_hf.SENSIMIX_FORMAT_VERSION
    assert {"bitpacking.py", "layers.py", "xnor_kernel.py"} <= code_files
    for name in code_files:
        assert (folder / name).read_bytes() == (PACKAGE_DIR / name).read_bytes(), name
    expected = code_files | {"config.json", "model.safetensors", "README.md", "tokenizer.json", "tokenizer_config.json"}
    assert set(os.listdir(folder)) == expected


def test_push_to_hub_uploads_the_complete_folder(hub_folder, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the test tried to open a network connection")

    uploads = {}
    created = []

    def fake_create_repo(self, repo_id, **kwargs):
        created.append(repo_id)
        return SimpleNamespace(repo_id=repo_id)

    def fake_create_commit(self, repo_id, operations, **kwargs):
        # The operations point into a temporary folder that push_to_hub deletes on return.
        for operation in operations:
            with open(operation.path_or_fileobj, "rb") as file:
                uploads[operation.path_in_repo] = file.read()
        return SimpleNamespace(repo_id=repo_id)

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(HfApi, "create_repo", fake_create_repo)
    monkeypatch.setattr(HfApi, "create_commit", fake_create_commit)
    monkeypatch.setattr(HfApi, "create_branch", no_network)
    monkeypatch.setattr(ModelCard, "load", classmethod(lambda cls, *args, **kwargs: ModelCard(README_TEXT)))

    model, tokenizer, folder = hub_folder.model, hub_folder.tokenizer, hub_folder.folder
    # The standard upload path: PreTrainedModel's tag-adding wrapper around PushToHubMixin.push_to_hub.
    assert isinstance(model, PushToHubMixin)
    assert type(model).push_to_hub is PreTrainedModel.push_to_hub
    assert not [cls for cls in type(model).__mro__ if cls.__module__.startswith("sensimix_hf") and "push_to_hub" in vars(cls)]
    assert type(tokenizer).push_to_hub.__code__ is PushToHubMixin.push_to_hub.__code__

    model.push_to_hub("someone/sensimix-tiny")
    model_files = set(uploads)
    tokenizer.push_to_hub("someone/sensimix-tiny")

    assert created == ["someone/sensimix-tiny", "someone/sensimix-tiny"]
    assert set(uploads) == set(os.listdir(folder))
    assert not {"tokenizer.json", "tokenizer_config.json"} & model_files
    for name in uploads:
        if name != "README.md":
            assert uploads[name] == (folder / name).read_bytes(), name
    assert b"# Tiny packed SensiMix test model" in uploads["README.md"]


# ---------------------------------------------------------------------------------------------
# The real MiniLM, (3+3)


MEMORY_CHILD = textwrap.dedent(
    """
    import json
    import resource
    import sys


    def status_kib(field):
        try:
            with open("/proc/self/status") as status:
                for line in status:
                    if line.startswith(field + ":"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None


    def reset_peak():
        # Writing 5 to clear_refs resets VmHWM to the current RSS (Linux 4.0 and later).
        try:
            with open("/proc/self/clear_refs", "w") as clear_refs:
                clear_refs.write("5")
            return True
        except OSError:
            return False


    kind, folder = sys.argv[1:3]
    import torch  # noqa: F401
    # Importing the modeling code costs about 130 MiB, and both runs pay it before the first measurement.
    from transformers import AutoModel, AutoModelForSequenceClassification, BertModel  # noqa: F401

    if kind == "packed":
        import sensimix_hf  # noqa: F401

        load = AutoModelForSequenceClassification.from_pretrained
    else:
        load = AutoModel.from_pretrained
    if status_kib("VmHWM") is not None and reset_peak():
        # Linux keeps the parent's ru_maxrss across fork and exec, so VmHWM of this address space is used instead.
        source = "VmHWM"
        before = status_kib("VmRSS")
        model = load(folder)
        after = status_kib("VmHWM")
    else:
        source = "ru_maxrss"
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        model = load(folder)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    resident = status_kib("VmRSS")
    # from_pretrained may leave the weights in the memory-mapped file until first use, so run one forward pass.
    with torch.no_grad():
        model(input_ids=torch.ones(1, 8, dtype=torch.long))
    if source == "VmHWM":
        peak_after_forward = status_kib("VmHWM")
    else:
        peak_after_forward = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"before_kib": before, "peak_kib": after, "resident_kib": resident, "source": source,
                      "forward_peak_kib": peak_after_forward, "class": type(model).__name__}))
    """
)


@pytest.fixture(scope="module")
def packed_minilm(minilm_path, movie_sentences, tmp_path_factory):
    model = SensiMixForSequenceClassification.from_bert(
        minilm_path,
        num_8bit_layers=3,
        num_mp_layers=3,
        num_labels=2,
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
    )
    model.set_binary_ffn_layers(model.mp_layer_indices)
    model.pack()
    folder = tmp_path_factory.mktemp("minilm") / "sensimix-minilm-v1.0"
    model.save_pretrained(folder)
    tokenizer = BertTokenizer.from_pretrained(minilm_path)
    batch = dict(tokenizer(movie_sentences[:16], padding=True, truncation=True, max_length=64, return_tensors="pt"))
    return SimpleNamespace(model=model, folder=folder, batch=batch, logits=logits_of(model, batch))


@pytest.mark.slow
def test_minilm_packed_reload_is_exact(packed_minilm, tmp_path):
    loaded = AutoModelForSequenceClassification.from_pretrained(packed_minilm.folder).eval()
    assert torch.equal(logits_of(loaded, packed_minilm.batch), packed_minilm.logits)

    work_dir = tmp_path / "child"
    work_dir.mkdir()
    outputs = run_remote_code_child(packed_minilm.folder, packed_minilm.batch, work_dir)
    assert outputs["blocked"]
    assert outputs["sensimix_modules"] == []
    assert torch.equal(outputs["logits"], packed_minilm.logits)
    with torch.no_grad():
        hidden = packed_minilm.model.bert(**packed_minilm.batch).last_hidden_state
    assert torch.equal(outputs["hidden"], hidden)


@pytest.mark.slow
def test_minilm_packed_file_size(packed_minilm, minilm_path):
    path = packed_minilm.folder / "model.safetensors"
    size_mib = path.stat().st_size / MIB
    fp32_mib = Path(minilm_path, "model.safetensors").stat().st_size / MIB
    print(
        f"\npacked MiniLM (3+3) model.safetensors: {size_mib:.2f} MiB; {MINILM_FP32_MIB} MiB / packed = "
        f"{MINILM_FP32_MIB / size_mib:.2f}x; FP32 MiniLM file on disk: {fp32_mib:.2f} MiB"
    )
    assert size_mib <= 21

    header, _ = read_safetensors_header(str(path))
    large_floats = {
        name: entry["shape"]
        for name, entry in header.items()
        if name != "__metadata__" and entry["dtype"] in FLOAT_DTYPES and torch.Size(entry["shape"]).numel() > 200_000
    }
    assert large_floats == {}


@pytest.mark.slow
def test_minilm_load_peak_memory(packed_minilm, minilm_path, tmp_path):
    script = tmp_path / "measure_load.py"
    script.write_text(MEMORY_CHILD)
    environment = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    results = {}
    for kind, folder in (("packed", packed_minilm.folder), ("fp32", minilm_path)):
        completed = subprocess.run(
            [sys.executable, str(script), kind, str(folder)],
            env=environment,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert completed.returncode == 0, completed.stderr[-4000:]
        results[kind] = json.loads(completed.stdout.strip().splitlines()[-1])
    for kind, result in results.items():
        growth_mib = (result["peak_kib"] - result["before_kib"]) / 1024
        resident = "unknown" if result["resident_kib"] is None else f"{result['resident_kib'] / 1024:.1f} MiB"
        print(
            f"\n{kind} ({result['class']}): RSS {result['before_kib'] / 1024:.1f} MiB before from_pretrained, peak "
            f"({result['source']}) {result['peak_kib'] / 1024:.1f} MiB during it (+{growth_mib:.1f} MiB), "
            f"resident after: {resident}; peak after one forward pass "
            f"{result['forward_peak_kib'] / 1024:.1f} MiB (+{(result['forward_peak_kib'] - result['before_kib']) / 1024:.1f} MiB)"
        )
    assert results["packed"]["class"] == "SensiMixForSequenceClassification"
