"""``hf`` models on a tiny in-process BERT: its own tokenizer, or a grafted input embedding."""

import numpy as np
import pytest
import torch

import transformers

from embgraft.training import rundir  # noqa: E402
from embgraft.training.classifier import Classifier  # noqa: E402
from embgraft.training.config import TrainConfig  # noqa: E402
from embgraft.models.hf import HFClassifier, layer_list  # noqa: E402
from embgraft.training.loop import train  # noqa: E402

QUIET = dict(progress=False, log=lambda *a, **k: None)
CHARS = "球赛队员跑跳胜负冠军股市银行利率基金债券"


@pytest.fixture
def tiny_bert(tmp_path):
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(CHARS)
    tok = transformers.BertTokenizer(vocab={t: i for i, t in enumerate(vocab)})
    config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=3,
                                     num_attention_heads=2, intermediate_size=32, max_position_embeddings=64)
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(tmp_path / "bert")
    tok.save_pretrained(tmp_path / "bert")
    return tmp_path / "bert"


def cfg(task, bert, **kw):
    base = dict(train=str(task["train"]), dev=str(task["dev"]), test=str(task["test"]), model="hf",
                hf_model=str(bert), epochs=2, batch_size=16, lr=3e-3, patience=None, tensorboard="off")
    base.update(kw)
    return TrainConfig(**base)


def test_hf_own_tokenizer_trains_and_reloads_without_the_source(tiny_task, tiny_bert, tmp_path):
    run = train(cfg(tiny_task, tiny_bert, train_layers="last:1", layer_lr_decay=0.5),
                out=tmp_path / "run", **QUIET).out
    assert (run / "hf" / "config.json").is_file() and (run / "hf" / "tokenizer_config.json").is_file()
    import shutil

    shutil.rmtree(tiny_bert)  # the run must not need the checkpoint any more
    clf = Classifier.load(run)
    proba = clf.predict_proba(["球赛冠军", "银行利率"])
    assert proba.shape == (2, 2) and np.allclose(proba.sum(1), 1)
    state = rundir.load_model_state(run)
    assert "encoder.embeddings.word_embeddings.weight" in state


def test_no_progress_keeps_transformers_loading_bar_off(tiny_task, tiny_bert, capsys):
    from embgraft.training.prepare import prepare

    config = cfg(tiny_task, tiny_bert)
    prepare(config, log=QUIET["log"], progress=True)
    assert "Loading weights" in capsys.readouterr().err  # transformers' own bar, by default
    prepare(config, log=QUIET["log"], progress=False)  # train --no-progress
    assert "Loading weights" not in capsys.readouterr().err
    assert transformers.utils.logging.is_progress_bar_enabled()  # off for the load only


def test_train_layers_and_layer_wise_lr(tiny_bert):
    enc = transformers.AutoModel.from_pretrained(tiny_bert)
    model = HFClassifier(encoder=enc, n_classes=2, pad_id=0)
    model.configure_layers("last:1")
    layers = layer_list(enc)
    assert [all(p.requires_grad for p in layer.parameters()) for layer in layers] == [False, False, True]
    groups = model.param_groups(lr=1.0, embedding_lr=None, weight_decay=0.1, layer_lr_decay=0.5)["dense"]
    rate = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert rate[id(layers[2].attention.self.query.weight)] == 1.0
    assert rate[id(model.out.weight)] == 1.0
    assert rate[id(enc.embeddings.word_embeddings.weight)] == 0.5 ** 3
    assert id(layers[0].attention.self.query.weight) not in rate  # frozen layers get no optimiser state
    model.configure_layers("first:2")
    assert [all(p.requires_grad for p in layer.parameters()) for layer in layers] == [True, True, False]


def test_hf_with_a_grafted_input_embedding(tiny_task, tiny_bert, tmp_path):
    from embgraft.grafting.cascade import graft
    from embgraft.text.tokenize import Recipe
    from embgraft.text.vocab import Vocab

    # rows for the task's characters grafted from the tiny BERT itself: exactly its rows
    vocab = Vocab.from_corpus(tiny_task["train"], level="char")
    result = graft(vocab, str(tiny_bert))
    result.recipe = Recipe(level="char")
    gdir = result.save(tmp_path / "graft-bert")
    run = train(cfg(tiny_task, tiny_bert, graft=str(gdir), embedding="partial"), out=tmp_path / "run", **QUIET).out
    after = rundir.load_model_state(run)["embedding.weight"].numpy()
    found = result.found_mask()
    assert found.sum() > 5 and np.array_equal(after[found], result.weights[found])
    assert Classifier.load(run).predict(["球赛"])[0][0][0] in ("体育", "财经")
