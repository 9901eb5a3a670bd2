"""A text encoder fine-tuned inside the model (Sec. 4.3): data checks, parameter groups, learning,
checkpoints without the original folder, and the CLI. Tiny random BERTs made with save_pretrained."""
import dataclasses
import shutil

import numpy as np
import pytest
import torch

from conftest import SMALL_DIMS
from mcihn.cli import main
from mcihn.data import from_mmsa_dict, make_synthetic, write_synthetic
from mcihn.extraction.fixtures import make_tiny_bert
from mcihn.model.config import MCIHNConfig
from mcihn.model.text_encoder import TEXT_LR, TextEncoderError, WithTextEncoder
from mcihn.training import Trainer, load_model, run_seed
from mcihn.training.registry import make_config
from mcihn.training.runner import input_dims, model_tensors, prepare_inputs

pytestmark = pytest.mark.usefixtures("torch_single_thread")
SPLITS = {"train": 96, "valid": 32, "test": 32}
QUIET = dict(progress=False, log=lambda *a, **k: None)


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return make_tiny_bert(tmp_path_factory.mktemp("enc") / "tiny_bert", hidden=16, layers=1)


def worded(seed=0, keep_ids=False) -> dict:
    """Synthetic data whose transcripts say the label's sign ("great fun" / "awful boring"): text alone
    predicts it, through the encoder only (the frozen text features are noise for that)."""
    obj = make_synthetic("mosi", splits=dict(SPLITS), dims=dict(SMALL_DIMS), seed=seed)
    for s in ("train", "valid", "test"):
        y = obj[s]["regression_labels"]
        obj[s]["raw_text"] = ["great fun really good" if v > 0.5 else "awful boring bad" if v < -0.5 else "the movie"
                              for v in y]
        obj[s]["text"] = np.zeros_like(obj[s]["text"]) + np.random.default_rng(1).normal(size=obj[s]["text"].shape)
        if not keep_ids:
            del obj[s]["text_bert"]
    return obj


def text_cfg(bert, **kw):
    return MCIHNConfig.tiny(modalities="t", text_encoder=bert, **{"epochs": 6, **kw})


def test_ids_from_another_vocabulary_are_refused_before_training(bert):
    data = from_mmsa_dict(worded(keep_ids=True), source="x.pkl")  # ids up to 30000, the tiny vocab has ~110
    with pytest.raises(TextEncoderError, match=r"x\.pkl: split 'train', field 'text_bert', sample \d+: token id .* "
                                               r"outside the encoder's vocabulary"):
        prepare_inputs(data, text_cfg(bert))


def test_neither_ids_nor_raw_text_is_refused(bert):
    obj = worded()
    for s in ("train", "valid", "test"):
        obj[s].pop("raw_text")
    with pytest.raises(TextEncoderError, match="x.pkl: split 'train' has neither 'text_bert'.*nor 'raw_text'"):
        prepare_inputs(from_mmsa_dict(obj, source="x.pkl"), text_cfg(bert))


def test_an_encoder_that_cannot_be_found_offline_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    data = from_mmsa_dict(worded(), source="x.pkl")
    with pytest.raises(TextEncoderError, match="--text-encoder 'no-such/encoder-xyz': cannot load"):
        prepare_inputs(data, text_cfg("no-such/encoder-xyz"))
    with pytest.raises(TextEncoderError, match="cannot load"):  # a folder that holds no model
        prepare_inputs(data, text_cfg(str(tmp_path)))


def test_the_encoder_joins_only_the_task_phase_at_its_own_learning_rate(bert):
    data = prepare_inputs(from_mmsa_dict(worded(), source="x"), text_cfg(bert))
    cfg = MCIHNConfig.tiny(modalities="ta", text_encoder=bert, text_lr=3e-5)
    tr = Trainer(cfg, input_dims(data, cfg))
    assert isinstance(tr.model, WithTextEncoder) and tr.model.dims["text"] == (50, 16)  # (ids' length, width)
    enc = {id(p) for p in tr.model.encoder.parameters()}
    for phase in tr.phases:
        groups = tr.opt[phase.key].param_groups
        in_phase = {id(p) for g in groups for p in g["params"]}
        if phase.key == "main":
            # the model's weight matrices and its 1-d parameters (no weight decay), then the encoder at its own rate
            assert [g["lr"] for g in groups] == [cfg.lr, cfg.lr, 3e-5] and {id(p) for p in groups[-1]["params"]} == enc
        else:  # reconstruction / adversarial phases read the encoder's states without gradients
            assert not in_phase & enc
    assert MCIHNConfig.tiny().text_lr == TEXT_LR == 2e-5


@pytest.mark.parametrize("kind", ["mcihn", "tfn"])
def test_fine_tuning_learns_the_words_and_checkpoints_stand_alone(kind, bert, tmp_path):
    local = shutil.copytree(bert, tmp_path / "enc")
    data = from_mmsa_dict(worded(), source="worded")
    cfg = make_config(kind, "tiny", modalities="t", text_encoder=str(local), epochs=20, patience=20, lr=3e-3,
                      text_lr=1e-3)
    out = tmp_path / "run"
    res = run_seed(data, cfg, 1, out_dir=out, device="cpu", **QUIET)
    y = data["train"].labels
    floor = np.abs(data["valid"].labels - np.median(y)).mean()
    assert res["valid"]["MAE"] < 0.8 * floor, (res["valid"]["MAE"], floor)
    assert not (out / "last.pt").exists() and (out / "best.pt").exists()  # only the weights are kept
    resumed = run_seed(data, cfg, 1, out_dir=out, device="cpu", resume=True, **QUIET)  # finished: read back
    assert resumed["test"] == res["test"] and "model" not in resumed
    shutil.rmtree(local)  # the checkpoint rebuilds the encoder from its own config
    model, cfg2, normalizer, ck = load_model(out / "best.pt")
    assert ck["text_encoder"]["name"] == str(local)
    # the copied folder is gone: the test split's ids from the fixture's tokenizer (the same vocabulary)
    ids = prepare_inputs(data, dataclasses.replace(cfg, text_encoder=bert))
    t = model_tensors(normalizer.transform(ids["test"]), cfg2)
    with torch.no_grad():
        assert torch.allclose(model(t).pred, res["model"].eval()(t).pred, atol=1e-6)


def test_train_command_with_a_text_encoder(bert, tmp_path, capsys):
    import pickle
    obj = worded()
    data = tmp_path / "w.pkl"
    data.write_bytes(pickle.dumps(obj, protocol=4))
    out = tmp_path / "out"
    assert main(["train", "--data", str(data), "--preset", "tiny", "--modalities", "t", "--text-encoder", bert,
                 "--epochs", "1", "--seeds", "3", "--out", str(out), "--quiet"]) == 0
    assert (out / "seed_3" / "best.pt").exists() and not (out / "seed_3" / "last.pt").exists()
    bad = tmp_path / "s.pkl"
    write_synthetic(bad, splits=dict(SPLITS), dims=dict(SMALL_DIMS))  # random ids of a 30k vocabulary
    assert main(["train", "--data", str(bad), "--preset", "tiny", "--text-encoder", bert, "--epochs", "1",
                 "--out", str(tmp_path / "o2"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "field 'text_bert'" in err and "vocabulary" in err and "Traceback" not in err


def test_text_only_extraction_needs_no_media_and_trains(bert, tmp_path):
    """extract --modalities t: a label.csv with transcripts is a dataset; the pickle trains text-only."""
    from mcihn.data import load_mmsa
    from mcihn.extraction.fixtures import make_clip_folder

    folder = make_clip_folder(tmp_path / "ds", n_clips=9, seconds=0.3)
    shutil.rmtree(folder / "Raw")  # no media at all
    out = tmp_path / "text.pkl"
    assert main(["extract", "--dataset-dir", str(folder), "--out", str(out), "--modalities", "t",
                 "--text-model", bert, "--device", "cpu", "--quiet"]) == 0
    data = load_mmsa(out)
    assert set(data.dims) == {"text"} and data["train"].text_bert.shape[1] == 3
    assert data.meta["extraction"]["modalities"] == ["text"] or tuple(data.meta["extraction"]["modalities"]) == ("text",)
    assert main(["train", "--data", str(out), "--preset", "tiny", "--modalities", "t", "--epochs", "1", "--seeds", "1",
                 "--out", str(tmp_path / "r"), "--quiet"]) == 0
    assert main(["train", "--data", str(out), "--preset", "tiny", "--epochs", "1", "--seeds", "1",
                 "--out", str(tmp_path / "r2"), "--quiet"]) == 2  # tav asked, the file has text only


def test_missing_text_tokens_become_unk_as_in_lnln():
    """A fine-tuned encoder reads token ids: a missing word is the tokenizer's [UNK]; [CLS], [SEP], padding and
    the attention mask stay; the features of the other modalities are zeroed as before."""
    from mcihn.experiments.robustness import mask_time_steps, token_spec

    ids = torch.tensor([[101, 7, 8, 9, 102, 0], [101, 5, 102, 0, 0, 0]])  # (N=2, L=6): [CLS] words [SEP] [PAD]
    att = (ids != 0).long()
    tensors = {"text_bert": torch.stack([ids, att, torch.zeros_like(ids)], dim=1),
               "text": torch.ones(2, 6, 4), "text_mask": att.bool(), "label": torch.zeros(2)}
    tokens = {"unk_id": 100, "special_ids": [0, 101, 102]}
    all_gone = mask_time_steps(tensors, 1.0, tokens=tokens)["text_bert"]
    assert all_gone[:, 0].tolist() == [[101, 100, 100, 100, 102, 0], [101, 100, 102, 0, 0, 0]]
    assert torch.equal(all_gone[:, 1:], tensors["text_bert"][:, 1:]), "attention mask and segments unchanged"
    assert torch.equal(mask_time_steps(tensors, 0.0, tokens=tokens)["text_bert"], tensors["text_bert"])
    g = torch.Generator().manual_seed(0)
    many = {**tensors, "text_bert": tensors["text_bert"].repeat(500, 1, 1), "text": torch.ones(1000, 6, 4),
            "text_mask": att.bool().repeat(500, 1)}
    half = mask_time_steps(many, 0.5, generator=g, tokens=tokens)["text_bert"][:, 0]
    words = torch.isin(many["text_bert"][:, 0], torch.tensor([5, 7, 8, 9]))
    assert 0.45 < (half[words] == 100).float().mean() < 0.55
    assert torch.equal(half[~words], many["text_bert"][:, 0][~words]), "only words are hidden"
    with pytest.raises(ValueError, match=r"\[UNK\]"):
        mask_time_steps(tensors, 0.5)  # token ids without a way to write a missing token: refused
    assert mask_time_steps(tensors, 0.5, modalities=[], tokens=None)["text_bert"] is tensors["text_bert"]

    class Tok:
        unk_token_id, all_special_ids = 100, [0, 100, 101, 102, 103]
    assert token_spec(Tok()) == {"unk_id": 100, "special_ids": [0, 101, 102, 103]}


def test_robustness_of_a_fine_tuned_encoder_hides_words(bert, tmp_path):
    from mcihn.data import load_mmsa
    from mcihn.experiments.robustness import evaluate_robustness
    import pickle

    path = tmp_path / "worded.pkl"
    path.write_bytes(pickle.dumps(worded(seed=3)))
    data = load_mmsa(path)
    run_seed(data, text_cfg(bert, epochs=4), 1111, out_dir=tmp_path / "run", device="cpu", **QUIET)
    res = evaluate_robustness(tmp_path / "run" / "best.pt", path, rates=(0.0, 1.0), repeats=1)
    full, gone = res["metrics"]["MAE"]
    assert full == pytest.approx(res["full"]["MAE"]) and full < gone, "without its words the model predicts worse"
    assert res["dropped"]["text"]["MAE"] == pytest.approx(gone)  # one modality: dropping it is r = 1
    from mcihn.training.runner import evaluate_checkpoint
    assert evaluate_checkpoint(tmp_path / "run" / "best.pt", path) == res["full"], "evaluate reads the ids too"
