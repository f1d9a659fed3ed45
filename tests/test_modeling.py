import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    BertConfig,
    BertForSequenceClassification,
    BertModel,
    GPT2Config,
    GPT2Model,
)

from sensimix_hf import SensiMixConfig, SensiMixForSequenceClassification, SensiMixModel
from sensimix_hf.index_linear import index_linear_backend
from sensimix_hf.layers import BinaryLinear, IndexQuantEmbedding, IndexQuantLinear
from sensimix_hf.xnor_kernel import kernel_backend


TINY = dict(
    vocab_size=99,
    hidden_size=32,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=64,
)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def tiny_config(**overrides) -> SensiMixConfig:
    values = dict(TINY, num_hidden_layers=4, num_8bit_layers=2, num_labels=2)
    values.update(overrides)
    return SensiMixConfig(**values)


def tiny_bert(num_hidden_layers: int = 5, num_labels: int = 3) -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(
        **TINY,
        num_hidden_layers=num_hidden_layers,
        num_labels=num_labels,
        id2label={0: "low", 1: "mid", 2: "high"},
        label2id={"low": 0, "mid": 1, "high": 2},
    )
    return BertForSequenceClassification(config).eval()


def batch(size: int = 3, length: int = 9, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(1, 99, (size, length), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, -3:] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask}


@pytest.mark.parametrize(
    "overrides, field",
    [
        (dict(num_8bit_layers=5), "num_8bit_layers"),
        (dict(num_8bit_layers=-1), "num_8bit_layers"),
        (dict(binary_ffn_layers=[1]), "binary_ffn_layers"),
        (dict(binary_scale="channel"), "binary_scale"),
        (dict(quantization_ranges="group"), "quantization_ranges"),
        (dict(sensimix_format_version=99), "format version"),
        (dict(is_decoder=True), "is_decoder"),
    ],
    ids=["too-many-8bit", "negative", "binary-not-mp", "bad-scale", "bad-ranges", "future-format", "decoder"],
)
def test_config_rejects_invalid_values(overrides, field):
    with pytest.raises(ValueError, match=field):
        tiny_config(**overrides)


def test_config_round_trips_through_dict():
    config = tiny_config(binary_ffn_layers=[3], binary_scale="none")
    restored = SensiMixConfig.from_dict(config.to_dict())
    assert restored.binary_ffn_layers == [3]
    assert restored.binary_scale == "none"
    assert restored.mp_layer_indices == [2, 3]
    assert restored.num_mp_layers == 2


def test_layout_places_quantized_modules():
    model = SensiMixModel(tiny_config())
    assert isinstance(model.embeddings.word_embeddings, IndexQuantEmbedding)
    assert isinstance(model.embeddings.position_embeddings, IndexQuantEmbedding)
    assert isinstance(model.embeddings.token_type_embeddings, torch.nn.Embedding)
    assert not isinstance(model.embeddings.token_type_embeddings, IndexQuantEmbedding)
    for index, layer in enumerate(model.encoder.layer):
        assert isinstance(layer.attention.self.query, IndexQuantLinear)
        assert isinstance(layer.attention.output.dense, IndexQuantLinear)
        ffn_class = IndexQuantLinear if index < 2 else BinaryLinear
        assert type(layer.intermediate.dense) is ffn_class
        assert type(layer.output.dense) is ffn_class
    assert type(model.pooler.dense) is torch.nn.Linear


def test_binary_ffn_state_switches_modules():
    model = SensiMixForSequenceClassification(tiny_config())
    assert model.binary_ffn_layers == []
    model.set_binary_ffn_layers([3])
    assert model.binary_ffn_layers == [3]
    assert model.config.binary_ffn_layers == [3]
    layers = model.bert.encoder.layer
    assert layers[3].intermediate.dense.binary and layers[3].output.dense.binary
    assert not layers[2].intermediate.dense.binary
    with pytest.raises(ValueError, match=r"\[1\]"):
        model.set_binary_ffn_layers([1, 3])


def test_binary_ffn_state_survives_save_and_load(tmp_path):
    model = SensiMixForSequenceClassification(tiny_config()).eval()
    model.set_binary_ffn_layers([3])
    inputs = batch()
    with torch.no_grad():
        expected = model(**inputs).logits
    model.save_pretrained(tmp_path)
    restored = SensiMixForSequenceClassification.from_pretrained(tmp_path).eval()
    assert restored.binary_ffn_layers == [3]
    assert restored.bert.encoder.layer[3].output.dense.binary
    with torch.no_grad():
        assert torch.equal(restored(**inputs).logits, expected)


@pytest.mark.parametrize("binary_layers", [[], [3], [2, 3]], ids=["none", "top", "all"])
def test_every_parameter_gets_a_gradient_in_every_stage(binary_layers):
    model = SensiMixForSequenceClassification(tiny_config()).train()
    model.set_binary_ffn_layers(binary_layers)
    model.abwr_weight = 1.0
    output = model(**batch(), labels=torch.tensor([0, 1, 1]))
    output.loss.backward()
    names = [name for name, _ in model.named_parameters()]
    assert names == [name for name, _ in SensiMixForSequenceClassification(tiny_config()).named_parameters()]
    missing = [name for name, parameter in model.named_parameters() if parameter.grad is None]
    assert missing == []
    assert all(torch.isfinite(parameter.grad).all() for parameter in model.parameters())


def test_binary_ffn_does_not_modify_residual_input():
    model = SensiMixModel(tiny_config()).eval()
    model.set_binary_ffn_layers([2, 3])
    layer = model.encoder.layer[3]
    hidden = torch.randn(2, 5, 32)
    before = hidden.clone()
    attention_output = layer.attention(hidden)[0]
    attention_before = attention_output.clone()
    layer.feed_forward_chunk(attention_output)
    assert torch.equal(hidden, before)
    assert torch.equal(attention_output, attention_before)


def test_abwr_loss_hand_value():
    model = SensiMixForSequenceClassification(tiny_config())
    with torch.no_grad():
        for index in model.mp_layer_indices:
            layer = model.bert.encoder.layer[index]
            layer.intermediate.dense.weight.fill_(0.5)
            layer.output.dense.weight.fill_(-2.0)
    # Per MP layer: (0.5 - 1)^2 + (2 - 1)^2 = 1.25; two MP layers.
    assert model.abwr_loss().item() == pytest.approx(2.5)


def test_abwr_enters_training_loss_only():
    model = SensiMixForSequenceClassification(tiny_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
    inputs = dict(batch(), labels=torch.tensor([0, 1, 0]))
    model.train()
    plain = model(**inputs).loss
    assert model.last_abwr_loss is None
    model.abwr_weight = 0.5
    regularized = model(**inputs).loss
    assert model.last_abwr_loss is not None
    assert regularized.item() == pytest.approx(plain.item() + 0.5 * model.abwr_loss().item(), rel=1e-6)
    model.eval()
    assert model(**inputs).loss.item() == pytest.approx(plain.item(), rel=1e-6)


@pytest.mark.parametrize(
    "num_labels, problem_type, labels",
    [
        (3, None, torch.tensor([0, 2, 1])),
        (3, "multi_label_classification", torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])),
        (1, None, torch.tensor([0.5, 1.5, -0.2])),
    ],
    ids=["single-label", "multi-label", "regression"],
)
def test_classification_heads(num_labels, problem_type, labels):
    config = tiny_config(num_labels=num_labels, problem_type=problem_type)
    model = SensiMixForSequenceClassification(config)
    model.set_binary_ffn_layers(model.mp_layer_indices)
    output = model(**batch(), labels=labels)
    assert output.logits.shape == (3, num_labels)
    assert torch.isfinite(output.loss)
    expected_type = problem_type or ("regression" if num_labels == 1 else "single_label_classification")
    assert model.config.problem_type == expected_type


def test_return_dict_false_gives_tuple():
    model = SensiMixForSequenceClassification(tiny_config())
    output = model(**batch(), labels=torch.tensor([0, 1, 0]), return_dict=False)
    assert isinstance(output, tuple)
    assert output[1].shape == (3, 2)


def test_auto_classes_resolve_to_sensimix():
    config = AutoConfig.for_model("sensimix", **TINY, num_hidden_layers=2, num_8bit_layers=1)
    assert isinstance(config, SensiMixConfig)
    assert type(AutoModelForSequenceClassification.from_config(config)) is SensiMixForSequenceClassification
    assert type(AutoModel.from_config(config)) is SensiMixModel


def test_from_bert_copies_tensors_exactly(tmp_path):
    bert = tiny_bert()
    bert.save_pretrained(tmp_path / "bert")
    model = SensiMixForSequenceClassification.from_bert(tmp_path / "bert", num_8bit_layers=2, num_mp_layers=2)
    assert model.config.num_hidden_layers == 4
    assert model.config.id2label == {0: "low", 1: "mid", 2: "high"}
    assert model.config.label2id == {"low": 0, "mid": 1, "high": 2}
    assert model.config.base_model_name_or_path == str(tmp_path / "bert")
    source = bert.state_dict()
    copied = model.state_dict()
    for key, value in copied.items():
        assert torch.equal(value, source[key]), key
    assert not any(key.startswith("bert.encoder.layer.4.") for key in copied)
    assert not model.training


def test_from_bert_accepts_loaded_models():
    bert = tiny_bert()
    from_task_model = SensiMixModel.from_bert(bert, num_8bit_layers=1, num_mp_layers=1)
    from_encoder = SensiMixModel.from_bert(bert.bert, num_8bit_layers=1, num_mp_layers=1)
    for key, value in from_task_model.state_dict().items():
        assert torch.equal(value, bert.bert.state_dict()[key])
        assert torch.equal(value, from_encoder.state_dict()[key])


def test_from_bert_applies_overrides():
    model = SensiMixForSequenceClassification.from_bert(
        tiny_bert(), num_8bit_layers=3, num_mp_layers=1, num_labels=2, binary_scale="none"
    )
    assert model.config.num_labels == 2
    assert model.config.binary_scale == "none"
    assert model.classifier.weight.shape == (2, 32)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_8bit_layers=3, num_mp_layers=3), "has only 5"),
        (dict(num_8bit_layers=0, num_mp_layers=0), "at least one"),
        (dict(num_8bit_layers=-1, num_mp_layers=2), "num_8bit_layers=-1"),
        (dict(num_8bit_layers=2, num_mp_layers=2, hidden_size=64), "hidden_size=64"),
        (dict(num_8bit_layers=2, num_mp_layers=2, num_hidden_layers=3), "num_hidden_layers"),
        (dict(num_8bit_layers=2, num_mp_layers=2, binary_scal="row"), "binary_scal"),
    ],
    ids=["too-many-layers", "no-layers", "negative", "architecture", "layout-field", "typo"],
)
def test_from_bert_rejects_bad_layouts(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SensiMixForSequenceClassification.from_bert(tiny_bert(), **kwargs)


def test_from_bert_rejects_other_architectures(tmp_path):
    GPT2Model(GPT2Config(n_layer=1, n_embd=32, n_head=4, vocab_size=99)).save_pretrained(tmp_path / "gpt2")
    with pytest.raises(ValueError, match="'gpt2'"):
        SensiMixModel.from_bert(tmp_path / "gpt2", num_8bit_layers=1, num_mp_layers=0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no config.json"):
        SensiMixModel.from_bert(tmp_path / "empty", num_8bit_layers=1, num_mp_layers=0)
    with pytest.raises(TypeError, match="dict"):
        SensiMixModel.from_bert({}, num_8bit_layers=1, num_mp_layers=0)


def test_from_bert_rejects_sensimix_model():
    model = SensiMixModel(tiny_config())
    with pytest.raises(ValueError, match="'sensimix'"):
        SensiMixModel.from_bert(model, num_8bit_layers=1, num_mp_layers=1)


def test_pack_needs_final_stage():
    model = SensiMixForSequenceClassification(tiny_config())
    model.set_binary_ffn_layers([3])
    with pytest.raises(ValueError, match=r"binary_ffn_layers=\[3\]"):
        model.pack()


def test_packed_model_rejects_schedule_changes():
    model = SensiMixForSequenceClassification(tiny_config())
    model.set_binary_ffn_layers(model.mp_layer_indices)
    model.pack()
    with pytest.raises(ValueError, match="packed"):
        model.set_binary_ffn_layers([3])
    with pytest.raises(ValueError, match="packed"):
        model.abwr_loss()


@pytest.mark.parametrize("device", DEVICES)
def test_bf16_autocast_training_step(device):
    model = SensiMixForSequenceClassification(tiny_config()).to(device).train()
    model.set_binary_ffn_layers(model.mp_layer_indices)
    model.abwr_weight = 1.0
    inputs = {key: value.to(device) for key, value in batch().items()}
    with torch.autocast(device_type=device, dtype=torch.bfloat16):
        output = model(**inputs, labels=torch.tensor([0, 1, 1], device=device))
    assert output.logits.dtype == torch.bfloat16
    assert torch.isfinite(output.loss)
    output.loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert parameter.grad.dtype in (torch.float32, torch.bfloat16), name
        assert torch.isfinite(parameter.grad).all(), name


@pytest.mark.parametrize("device", DEVICES)
def test_packed_model_runs_on_device(device):
    model = SensiMixForSequenceClassification(tiny_config()).eval()
    model.set_binary_ffn_layers(model.mp_layer_indices)
    inputs = batch()
    with torch.no_grad():
        expected = model(**inputs).logits
    model.pack().to(device)
    with torch.no_grad(), index_linear_backend("dequantized"):
        logits = model(**{key: value.to(device) for key, value in inputs.items()}).logits
    assert torch.allclose(logits.cpu(), expected, atol=1e-5)


@pytest.mark.slow
def test_minilm_conversion_keeps_hidden_states(minilm_path, movie_sentences):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    inputs = tokenizer(movie_sentences[:16], padding=True, truncation=True, max_length=64, return_tensors="pt")
    bert = BertModel.from_pretrained(minilm_path).eval()
    model = SensiMixModel.from_bert(minilm_path, num_8bit_layers=3, num_mp_layers=3)
    with torch.no_grad():
        reference = bert(**inputs).last_hidden_state
        hidden = model(**inputs).last_hidden_state
    mask = inputs["attention_mask"].bool()
    cosine = torch.nn.functional.cosine_similarity(reference[mask], hidden[mask], dim=-1)
    print(f"MiniLM (3+3), no FFN binarized: mean token cosine {cosine.mean():.4f}, min {cosine.min():.4f}")
    assert cosine.mean() > 0.95


@pytest.mark.slow
def test_minilm_binary_training_step(minilm_path, movie_sentences):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    inputs = tokenizer(movie_sentences[:8], padding=True, truncation=True, max_length=48, return_tensors="pt")
    model = SensiMixForSequenceClassification.from_bert(minilm_path, num_8bit_layers=3, num_mp_layers=3, num_labels=2)
    model.set_binary_ffn_layers(model.mp_layer_indices)
    model.train()
    model.abwr_weight = 1.0
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-5)
    output = model(**inputs, labels=torch.tensor([0, 1] * 4))
    assert torch.isfinite(output.loss)
    output.loss.backward()
    missing = [name for name, parameter in model.named_parameters() if parameter.grad is None]
    assert missing == []
    assert all(torch.isfinite(parameter.grad).all() for parameter in model.parameters())
    optimizer.step()


def test_packed_fast_path_matches_reference_kernel():
    model = SensiMixForSequenceClassification(tiny_config()).eval()
    model.set_binary_ffn_layers(model.mp_layer_indices)
    model.pack()
    inputs = batch(size=6)
    with torch.no_grad():
        with kernel_backend("reference"):
            reference = model(**inputs).logits
        fast = model(**inputs).logits
    assert torch.allclose(fast, reference, atol=1e-6)
    assert torch.equal(fast.argmax(-1), reference.argmax(-1))


@pytest.mark.slow
def test_minilm_fast_path_matches_reference_kernel(minilm_path, movie_sentences):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    inputs = tokenizer(movie_sentences[:32], padding=True, truncation=True, max_length=64, return_tensors="pt")
    torch.manual_seed(0)
    model = SensiMixForSequenceClassification.from_bert(minilm_path, num_8bit_layers=3, num_mp_layers=3, num_labels=2)
    model.set_binary_ffn_layers(model.mp_layer_indices)
    model.pack().eval()
    with torch.no_grad():
        with kernel_backend("reference"):
            reference = model(**inputs).logits
        fast = model(**inputs).logits
    print(f"MiniLM (3+3) packed: max |logit difference| compiled vs reference {(fast - reference).abs().max():.2e}")
    assert torch.allclose(fast, reference, atol=1e-4)
    assert torch.equal(fast.argmax(-1), reference.argmax(-1))
