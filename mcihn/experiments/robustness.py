"""Missing-modality robustness of a trained model: whole modalities dropped, and a growing share
of time steps missing.

Two tests, both at evaluation time on a trained model (nothing is retrained):

* **drop a modality**: every time step of modality m is missing; one score per modality.
* **missing rate r**: every real time step of every modality is missing independently with
  probability r, for r from 0 to 1 (the random-missing protocol of EMT-DLFR and of
  MultiBench's robustness curves). The metric is plotted against r and summarised by the area
  under that curve (trapezoid rule; rates from 0 to 1 make it the curve's average height).

"Missing" means the feature vector of that step is replaced by 0, which after the training-split
normalisation is the training mean. The validity masks are left as they are, so the model is not
told which steps are missing (as with a sensor that drops out). At rate 0 nothing changes, so the
curve starts exactly at the plain evaluation; at rate 1 every input is at its mean.

Each rate is drawn ``repeats`` times with different random masks (seeded: the same call gives the
same curve) and the metrics are averaged over the draws. :func:`summarize_curves` gathers one model's
curves over seeds.

Why MCIHN trained on complete data degrades: :func:`code_report` measures where its encoders put an
all-missing input against the codes of real clips (``benchmarks/missing_remedy.py`` and notebook 08 use it).

From a notebook::

    from mcihn.experiments.robustness import evaluate_robustness, plot_robustness
    res = evaluate_robustness("runs/t2/tfn/seed_1111/best.pt")   # the data it was trained on
    res["auc"]["MAE"], res["dropped"]["text"]["MAE"]
    plot_robustness({"TFN": res}, metric="MAE")
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ..metrics import METRIC_KEYS, evaluate as evaluate_metrics
from ..training.trainer import predict

#: Missing rates 0, 0.1, ..., 1.
DEFAULT_RATES = tuple(round(0.1 * i, 1) for i in range(11))


def mask_time_steps(tensors: dict, rate: float, modalities=None, generator: torch.Generator | None = None,
                    tokens: dict | None = None) -> dict:
    """A copy of ``tensors`` where each real time step of ``modalities`` (default: all present) is
    set to 0 with probability ``rate``; padding stays 0, masks and labels are unchanged.

    tensors: m -> (N, T_m, D_m), m + "_mask" -> (N, T_m), "label" -> (N,), as ``SplitData.to_tensors``.

    A model that fine-tunes its own text encoder reads ``"text_bert"`` (N, 3, L) token ids instead of text
    features. Its missing text follows LNLN: each real token (attention mask 1, not a special token such as
    [CLS] or [SEP]) is replaced, with probability ``rate``, by the tokenizer's [UNK] id. ``tokens`` gives
    {"unk_id": int, "special_ids": [int, ...]} (:func:`token_spec` reads them from a tokenizer); masking text
    without it, when the tensors hold token ids, is refused rather than leaving the text complete.
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"missing rate must be in [0, 1], got {rate}")
    present = [k for k in tensors if k + "_mask" in tensors]
    modalities = present if modalities is None else list(modalities)
    unknown = [m for m in modalities if m not in present]
    if unknown:
        raise ValueError(f"no modality {unknown} in these tensors (they hold {present})")
    out = dict(tensors)
    for m in modalities:
        x = tensors[m]
        if rate == 0.0:
            continue
        if rate == 1.0:
            keep = torch.zeros(x.shape[:2], dtype=torch.bool, device=x.device)
        else:
            u = torch.rand(x.shape[:2], generator=generator)  # (N, T_m), drawn on CPU: same numbers on any device
            keep = (u >= rate).to(x.device)
        out[m] = x * keep[..., None].to(x.dtype)  # (N, T_m, 1) broadcast over the features
    if "text" in modalities and "text_bert" in tensors and rate > 0.0:  # after the features: their draws unchanged
        if tokens is None:
            raise ValueError("these tensors hold token ids (text_bert) for a fine-tuned text encoder: missing text "
                             "replaces tokens by [UNK] (LNLN), so give tokens={'unk_id': ..., 'special_ids': [...]} "
                             "(robustness.token_spec(tokenizer))")
        out["text_bert"] = _mask_tokens(tensors["text_bert"], rate, tokens, generator)
    return out


def _mask_tokens(text_bert: torch.Tensor, rate: float, tokens: dict, generator) -> torch.Tensor:
    """text_bert (N, 3, L): ids / attention mask / segments -> the same with missing real tokens set to [UNK]."""
    ids, attention, segments = text_bert.unbind(dim=1)  # 3 x (N, L)
    special = torch.tensor(list(tokens.get("special_ids", ())), dtype=ids.dtype, device=ids.device)
    real = attention.bool() & ~torch.isin(ids, special)  # (N, L): words, not [CLS] / [SEP] / [PAD]
    if rate < 1.0:
        u = torch.rand(ids.shape, generator=generator)  # (N, L), on CPU as above
        real = real & (u < rate).to(ids.device)
    ids = torch.where(real, torch.full_like(ids, int(tokens["unk_id"])), ids)
    return torch.stack([ids, attention, segments], dim=1)  # (N, 3, L)


def token_spec(tokenizer) -> dict:
    """What :func:`mask_time_steps` needs to hide tokens: the tokenizer's [UNK] id and its special ids."""
    if tokenizer.unk_token_id is None:
        raise ValueError(f"the tokenizer {type(tokenizer).__name__} has no unknown token: missing text cannot be "
                         "written as [UNK]")
    return {"unk_id": int(tokenizer.unk_token_id),
            "special_ids": sorted({int(i) for i in tokenizer.all_special_ids} - {int(tokenizer.unk_token_id)})}


def drop_modality(tensors: dict, modality: str, tokens: dict | None = None) -> dict:
    """Every time step of ``modality`` missing (its features all 0, its mask unchanged; token ids: [UNK])."""
    return mask_time_steps(tensors, 1.0, [modality], tokens=tokens)


def area_under_curve(rates, values) -> float | None:
    """Trapezoid area of ``values`` over ``rates``; None when a value is undefined (e.g. Corr of a
    constant prediction)."""
    v = np.asarray([np.nan if x is None else x for x in values], dtype=float)
    if not np.all(np.isfinite(v)):
        return None
    r = np.asarray(rates, dtype=float)
    return float(np.sum((r[1:] - r[:-1]) * (v[1:] + v[:-1]) / 2.0))


def _metrics(model, tensors: dict, dataset: str, batch_size: int) -> dict:
    pred, _ = predict(model, tensors, batch_size)
    return evaluate_metrics(pred.numpy(), tensors["label"].cpu().numpy(), dataset)


def robustness_curve(model, tensors: dict, dataset: str, rates=DEFAULT_RATES, repeats: int = 3, seed: int = 0,
                     modalities=None, batch_size: int = 256, tokens: dict | None = None) -> dict:
    """Metrics of ``model`` on ``tensors`` (normalised, on the model's device) under missing data.
    ``tokens``: for a model with a fine-tuned text encoder, how missing tokens are written (:func:`token_spec`).

    Returns {"rates": [...], "metrics": {key: [mean over repeats, per rate]}, "std": {key: [...]},
    "auc": {key: area or None}, "full": metrics without anything missing, "dropped": {m: metrics with
    modality m missing}, "repeats", "seed", "modalities"}. ``modalities`` limits the random missing
    steps to some modalities (default: all the model uses).
    """
    rates = [float(r) for r in rates]
    if not rates or any(not 0 <= r <= 1 for r in rates) or rates != sorted(rates):
        raise ValueError(f"rates must be increasing numbers in [0, 1], got {rates}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    used = list(getattr(model, "modalities", [k for k in tensors if k + "_mask" in tensors]))
    modalities = used if modalities is None else list(modalities)
    keys = METRIC_KEYS["sims" if dataset == "sims" else "mosi"]
    full = _metrics(model, tensors, dataset, batch_size)
    gen = torch.Generator().manual_seed(seed)
    per_rate = []  # per rate: {key: [value per draw]}
    for r in rates:
        draws = [full] if r == 0.0 else [
            _metrics(model, mask_time_steps(tensors, r, modalities, gen, tokens), dataset, batch_size)
            for _ in range(1 if r == 1.0 else repeats)]  # rate 0 and 1 are not random
        per_rate.append({k: [d[k] for d in draws] for k in keys})

    def stat(fn, vals):
        vals = [np.nan if v is None else v for v in vals]
        out = float(fn(vals))
        return None if math.isnan(out) else out

    curve = {k: [stat(np.mean, p[k]) for p in per_rate] for k in keys}
    return {
        "rates": rates, "metrics": curve,
        "std": {k: [stat(np.std, p[k]) for p in per_rate] for k in keys},
        "auc": {k: area_under_curve(rates, curve[k]) for k in keys},
        "full": full,
        "dropped": {m: _metrics(model, drop_modality(tensors, m, tokens), dataset, batch_size) for m in used},
        "repeats": repeats, "seed": seed, "modalities": modalities,
    }


def evaluate_robustness(checkpoint, data=None, split: str = "test", dataset: str | None = None,
                        rates=DEFAULT_RATES, repeats: int = 3, seed: int = 0, device="cpu") -> dict:
    """:func:`robustness_curve` of a saved model (any kind) on one split.

    data: an MMSA pickle path or a MultimodalData; None = the embedded synthetic data, allowed only
    when the checkpoint was trained on it. The checkpoint's own normaliser is applied. The result
    also names the checkpoint, model kind, variant, dataset and split, and holds the metrics of the mean
    predictor on that split ("mean_predictor": always the training split's mean label), the level a model
    should fall back to when nothing is left of its input. A model with a fine-tuned text encoder (``train
    --text-encoder``) reads token ids; its missing words are the tokenizer's [UNK] (LNLN's protocol), so the
    tokenizer must load from the name it was trained with.
    """
    from ..model.text_encoder import load_pretrained
    from ..training.runner import check_fits_checkpoint, load_model, model_tensors, prepare_inputs
    from ..utils import resolve_device

    model, cfg, normalizer, ck = load_model(checkpoint)
    data = prepare_inputs(_data_for(ck, checkpoint, data, dataset), cfg)  # with an encoder: its token ids
    check_fits_checkpoint(data, split, cfg, ck)
    tokens = None
    if getattr(cfg, "text_encoder", None) and "text" in cfg.modalities:  # missing words become [UNK] (LNLN)
        tokens = token_spec(load_pretrained(cfg.text_encoder, "tokenizer"))
    device = resolve_device(device) if isinstance(device, str) else device
    model.to(device)
    tensors = {k: v.to(device) for k, v in model_tensors(normalizer.transform(data[split]), cfg).items()}
    res = robustness_curve(model, tensors, data.dataset, rates=rates, repeats=repeats, seed=seed, tokens=tokens)
    labels = data[split].labels
    mean_predictor = {k: None if isinstance(v, float) and math.isnan(v) else v  # Corr of a constant: undefined
                      for k, v in evaluate_metrics(np.full_like(labels, float(data["train"].labels.mean())), labels,
                                                   data.dataset).items()}
    return {"checkpoint": str(checkpoint), "model": ck.get("model_kind", "mcihn"), "variant": cfg.variant,
            "dataset": data.dataset, "data_source": data.source, "synthetic": data.synthetic, "split": split, **res,
            "mean_predictor": mean_predictor}


def combine_seeds(results: list) -> dict:
    """EMT-DLFR's AUILC protocol over seeds: one result of :func:`evaluate_robustness` per seed (the same kind of
    model on the same data, split and rates) -> one result of the same shape, averaged over the seeds.

    "metrics" / "full" / "dropped" hold the means over seeds, "std" / "full_std" / "dropped_std" the population
    standard deviations over seeds (of the per-seed means over random draws); "auc" is the mean of the seeds'
    areas under the curve (AUILC: the trapezoid area over r = 0..1, which for evenly spaced rates from 0 to 1 is
    the curve's average height) and "auc_std" their spread; "per_seed" keeps each seed's checkpoint, full-data
    metrics and areas. A value undefined for one seed (Corr of a constant prediction) is undefined (None) in
    the mean. Refuses results that are not comparable (other model, data, split or rates).
    """
    if not results:
        raise ValueError("combine_seeds: no results")
    first = results[0]
    for key in ("model", "variant", "dataset", "data_source", "split", "rates", "repeats", "seed"):
        values = {str(r.get(key)) for r in results}
        if len(values) > 1:
            raise ValueError(f"combine_seeds: the results differ in {key!r} ({sorted(values)}): "
                             "combine seeds of one model on one data set, split and set of rates")

    def mean_std(values):
        if any(v is None for v in values):
            return None, None
        return float(np.mean(values)), float(np.std(values))

    keys = list(first["metrics"])
    metrics, std = {}, {}
    for k in keys:
        pairs = [mean_std([r["metrics"][k][i] for r in results]) for i in range(len(first["rates"]))]
        metrics[k], std[k] = [p[0] for p in pairs], [p[1] for p in pairs]
    auc = {k: mean_std([r["auc"][k] for r in results]) for k in keys}
    full = {k: mean_std([r["full"][k] for r in results]) for k in keys}
    dropped = {m: {k: mean_std([r["dropped"][m][k] for r in results]) for k in keys} for m in first["dropped"]}
    return {**{k: first[k] for k in ("model", "variant", "dataset", "data_source", "synthetic", "split", "rates",
                                     "repeats", "seed", "modalities") if k in first},
            "seeds": len(results), "checkpoints": [r.get("checkpoint") for r in results],
            "metrics": metrics, "std": std,
            "auc": {k: v[0] for k, v in auc.items()}, "auc_std": {k: v[1] for k, v in auc.items()},
            "full": {k: v[0] for k, v in full.items()}, "full_std": {k: v[1] for k, v in full.items()},
            "dropped": {m: {k: v[0] for k, v in d.items()} for m, d in dropped.items()},
            "dropped_std": {m: {k: v[1] for k, v in d.items()} for m, d in dropped.items()},
            "mean_predictor": first.get("mean_predictor"),
            "per_seed": [{"checkpoint": r.get("checkpoint"), "full": r["full"], "auc": r["auc"]} for r in results]}


def _data_for(ck: dict, checkpoint, data, dataset):
    from ..data import MultimodalData
    from ..training.runner import load_data_for

    if isinstance(data, MultimodalData):
        return data
    if data is not None:
        return load_data_for(checkpoint, ck, data, dataset)
    source = str(ck.get("data_source", ""))
    if source.startswith("SYNTHETIC"):
        from ..data import synthetic_data
        embedded = synthetic_data(kind=ck.get("dataset", "mosi"), seed=0)
        if embedded.source == source:
            return embedded
    raise ValueError(f"{checkpoint}: trained on {source or 'unknown data'}, which is not the embedded synthetic "
                     "set: pass the data (--data PATH.pkl)")


def plot_robustness(results: dict, metric: str = "MAE", ax=None, path=None):
    """Plot ``metric`` against the missing rate, with the mean predictor's level as a dashed line when the
    results hold it (:func:`evaluate_robustness` does). ``results``: one result of :func:`robustness_curve` /
    :func:`evaluate_robustness`, or {name: result} to compare models. Returns the matplotlib figure;
    with ``path`` it is also saved there (atomically). matplotlib is imported only here."""
    import matplotlib.pyplot as plt  # headless machines fall back to the Agg backend by themselves

    curves = {results.get("variant", "model"): results} if "rates" in results else results
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 3.5))
    else:
        fig = ax.figure
    for name, res in curves.items():
        if metric not in res["metrics"]:
            raise ValueError(f"no metric {metric!r}; have {sorted(res['metrics'])}")
        y = [np.nan if v is None else v for v in res["metrics"][metric]]
        auc = res["auc"][metric]
        line, = ax.plot(res["rates"], y, marker="o", label=f"{name} (AUC {auc:.3f})" if auc is not None else name)
        if res.get("seeds", 1) > 1:  # combine_seeds: one standard deviation over seeds, shaded
            s = np.array([np.nan if v is None else v for v in res["std"][metric]], dtype=float)
            ax.fill_between(res["rates"], np.array(y, dtype=float) - s, np.array(y, dtype=float) + s,
                            color=line.get_color(), alpha=0.2, linewidth=0)
    floor = next((res["mean_predictor"].get(metric) for res in curves.values() if res.get("mean_predictor")), None)
    if floor is not None:  # the same split for every curve: one line
        ax.axhline(floor, color="0.4", linestyle="--", linewidth=1, label=f"mean predictor ({floor:.3f})")
    ax.set_xlabel("missing rate (share of time steps set to 0)")
    ax.set_ylabel(metric + (" (lower is better)" if metric == "MAE" else ""))
    ax.set_xlim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    if path is not None:
        import io

        from ..utils import atomic_write_bytes
        buf = io.BytesIO()
        fig.savefig(buf, format=Path(path).suffix.lstrip(".") or "png", dpi=120)
        atomic_write_bytes(path, buf.getvalue())
    return fig


# ------------------------------------------------------------------------------------------ the cause (MCIHN)
@torch.no_grad()
def code_report(model, train: dict, test: dict, batch_size: int = 256, codes: bool = False) -> dict:
    """Where the encoders of an MCIHN ``model`` put an all-missing input, against the codes of real clips.

    train, test: normalised tensors of two splits (``analysis.model_inputs``), on the model's device. The
    all-missing input is ``mask_time_steps(test, 1.0)``: every step 0 (the training mean), masks unchanged,
    what the model sees at missing rate 1. Each code S^m (L, d) is flattened to one vector per clip.

    Returns {"modalities": {m: {"norm real", "norm missing" (mean vector norms of the real test codes and of the
    all-missing codes), "nearest real, real test clips (median)" / "(95th pct)" (each real test code's distance
    to its nearest training code: what a real clip's neighbourhood looks like), "nearest real, all-missing
    (median)", "to the mean real code, real (median)", "to the mean real code, all-missing (median)",
    "spread of the all-missing codes (median to their mean)", "distance ratio" (all-missing median over the
    real test clips' median: above 1, the all-missing input lies farther from the training codes than a
    real clip does)}}, "r=1": {"prediction mean", "prediction std", "training mean label", "MAE", "mean
    predictor MAE"}}; with ``codes=True`` also "codes": {"train", "test", "missing"} -> {m: (N, L*d) arrays}.
    """
    from ..training.trainer import iterate_batches

    model.eval()
    missing = mask_time_steps(test, 1.0)

    def encode(tensors):
        parts: dict = {}
        for batch in iterate_batches(tensors, batch_size):
            for m, s in model.encode(batch).items():
                parts.setdefault(m, []).append(s.flatten(1).float().cpu())
        return {m: torch.cat(v) for m, v in parts.items()}  # m -> (N, L*d)

    enc = {"train": encode(train), "test": encode(test), "missing": encode(missing)}
    out: dict = {"modalities": {}}
    for m in enc["train"]:
        tr, te, mi = enc["train"][m], enc["test"][m], enc["missing"][m]
        nn_te = torch.cdist(te, tr).min(dim=1).values
        nn_mi = torch.cdist(mi, tr).min(dim=1).values
        centre = tr.mean(dim=0)
        out["modalities"][m] = {
            "norm real": float(te.norm(dim=1).mean()), "norm missing": float(mi.norm(dim=1).mean()),
            "nearest real, real test clips (median)": float(nn_te.median()),
            "nearest real, real test clips (95th pct)": float(torch.quantile(nn_te, 0.95)),
            "nearest real, all-missing (median)": float(nn_mi.median()),
            "to the mean real code, real (median)": float((te - centre).norm(dim=1).median()),
            "to the mean real code, all-missing (median)": float((mi - centre).norm(dim=1).median()),
            "spread of the all-missing codes (median to their mean)": float((mi - mi.mean(dim=0)).norm(dim=1).median()),
            "distance ratio": float(nn_mi.median() / nn_te.median().clamp_min(1e-12)),
        }
    pred, _ = predict(model, missing, batch_size)
    pred = pred.float().cpu()
    y = test["label"].float().cpu()
    mean_label = float(train["label"].float().mean())
    out["r=1"] = {"prediction mean": float(pred.mean()), "prediction std": float(pred.std()),
                  "training mean label": mean_label, "MAE": float((pred - y).abs().mean()),
                  "mean predictor MAE": float((mean_label - y).abs().mean())}
    if codes:
        out["codes"] = {k: {m: v.numpy() for m, v in e.items()} for k, e in enc.items()}
    return out


def summarize_curves(results, metric: str = "MAE") -> dict:
    """One model's :func:`robustness_curve` results over seeds (a list, one per seed), for ``metric``, kept
    per seed (what :func:`mcihn.notebook.analysis.spread_verdict` compares); :func:`combine_seeds` gives the
    means and spreads of every metric instead, for the command line and the tables.

    Returns {"rates", "per_seed": [[value per rate] per seed], "mean", "std" (population std over seeds,
    per rate), "auc": [area per seed], "full": [complete-data value per seed], "last": [value at the last
    rate per seed] and "dropped": {m: [value with m dropped, per seed]}}. The rates must agree."""
    results = list(results)
    if not results:
        raise ValueError("summarize_curves: no results")
    rates = results[0]["rates"]
    if any(r["rates"] != rates for r in results):
        raise ValueError("summarize_curves: the results were measured at different rates")
    per_seed = np.asarray([[np.nan if v is None else v for v in r["metrics"][metric]] for r in results], dtype=float)
    return {"rates": list(rates), "per_seed": per_seed.tolist(), "mean": per_seed.mean(axis=0).tolist(),
            "std": per_seed.std(axis=0).tolist(), "auc": [r["auc"][metric] for r in results],
            "full": [r["full"][metric] for r in results], "last": per_seed[:, -1].tolist(),
            "dropped": {m: [r["dropped"][m][metric] for r in results] for m in results[0]["dropped"]}}
