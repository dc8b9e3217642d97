"""Text: tokenisation, a vocabulary built on the training split, unseen words -> <unk>."""

from __future__ import annotations

import pandas as pd
import torch

from lstmkit.data import TextDataModule
from lstmkit.data.vocab import Vocabulary, tokenize


def test_vocabulary_maps_unseen_and_rare_words_to_unk():
    vocab = Vocabulary.build([["a", "b", "a"], ["c", "a", "b"]], min_freq=2)
    assert vocab.itos == ["<pad>", "<unk>", "a", "b"]
    assert vocab.encode(["a", "zebra", "c", "b"]) == [2, 1, 1, 3]
    assert len(Vocabulary.build([["x", "y", "z", "y"]], max_size=3)) == 3
    assert Vocabulary(vocab.itos).stoi == vocab.stoi


def test_tokenize_levels():
    assert tokenize("Hi, you!", "word") == ["hi", ",", "you", "!"]
    assert tokenize("Ab", "char", lowercase=False) == ["A", "b"]


def _write(path, texts, labels):
    pd.DataFrame({"text": texts, "label": labels}).to_csv(path, index=False)


def test_datamodule_builds_the_vocabulary_on_train_only(tmp_path):
    texts = ["good fine", "bad awful", "fine good good", "awful bad"] * 10
    labels = ["pos", "neg", "pos", "neg"] * 10
    _write(tmp_path / "train.csv", texts, labels)
    _write(tmp_path / "test.csv", ["good unseenword", "", "bad"], ["pos", "neg", "neg"])
    dm = TextDataModule(
        str(tmp_path / "train.csv"), test_path=str(tmp_path / "test.csv"), missing="mask"
    )
    kw = dm.model_kwargs()
    assert kw == {"vocab_size": 6, "padding_idx": 0, "num_classes": 2, "per_step": False}
    assert "unseenword" not in dm.vocab.stoi
    x, y, lengths = dm.splits["test"].__getitems__([0, 1, 2])
    assert x[0].tolist() == [dm.vocab.stoi["good"], 1]  # unseen -> <unk>
    assert x[1].tolist() == [1, 0] and lengths.tolist() == [2, 1, 1]  # empty text -> [<unk>]
    assert y.tolist() == [1, 0, 0]
    state = dm.state_dict()
    assert state["vocabulary"][:2] == ["<pad>", "<unk>"] and state["class_names"] == ["neg", "pos"]
    restored = TextDataModule(str(tmp_path / "train.csv"), missing="mask")
    restored.load_state_dict(state)
    encoded = restored.encode_file(str(tmp_path / "test.csv"))
    torch.testing.assert_close(encoded.dataset.x, x)
