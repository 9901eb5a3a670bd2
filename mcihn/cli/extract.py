"""``extract`` (raw clips -> an MMSA pickle) and ``predict`` (the sentiment of one raw clip)."""
from __future__ import annotations

import json

from ..modalities import parse_modalities
from .options import COUNT, DATASET_CHOICES, POSITIVE_INT, add_threads_arg, modalities_arg


# ----------------------------------------------------------------------------- extract
def add_extract(sub):
    from ..extraction.features import DEFAULT_MODELS
    p = sub.add_parser("extract", help="raw clips (label.csv + Raw/<video>/<clip>.mp4) -> an MMSA pickle, "
                                       "with CLIP / BERT / wav2vec2")
    p.add_argument("--dataset-dir", required=True, help="folder with label.csv and Raw/ (the MMSA-FET layout)")
    p.add_argument("--modalities", type=modalities_arg, default="tav",
                   help="what to extract, a subset of t, a, v (default tav); t alone needs no Raw/ folder, only the "
                        "transcripts of label.csv")
    p.add_argument("--out", required=True, help="output pickle (train with: python -m mcihn train --data OUT)")
    p.add_argument("--language", default="en", choices=["en", "zh"], help="picks the default text and audio models")
    p.add_argument("--dataset", choices=DATASET_CHOICES, help="label range (default: sims when label_T/A/V exist)")
    p.add_argument("--vision-model", help=f"hub name or local folder (default {DEFAULT_MODELS['vision']['en']})")
    p.add_argument("--text-model", help="default bert-base-uncased (en), bert-base-chinese (zh)")
    p.add_argument("--audio-model", help=f"default {DEFAULT_MODELS['audio']['en']} (en), "
                                         f"{DEFAULT_MODELS['audio']['zh']} (zh)")
    p.add_argument("--frames", type=POSITIVE_INT, default=10, help="video frames sampled evenly per clip (T_v)")
    p.add_argument("--text-len", type=POSITIVE_INT, default=36, help="BERT tokens incl. [CLS]/[SEP] (T_t)")
    p.add_argument("--audio-len", type=POSITIVE_INT, default=128, help="wav2vec2 frames (T_a)")
    p.add_argument("--audio-layer", default="conv", choices=["conv", "transformer"],
                   help="conv: the 512-d feature encoder output (the paper's size); transformer: last hidden states")
    p.add_argument("--audio-fit", default="resample", choices=["resample", "truncate"],
                   help="audio longer than --audio-len: resample the whole clip, or keep the beginning")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    p.add_argument("--batch-size", type=POSITIVE_INT, default=16, help="clips per forward pass")
    p.add_argument("--workers", type=COUNT, default=2, help="threads decoding video / audio ahead of the encoders")
    p.add_argument("--on-error", default="fail", choices=["fail", "skip"],
                   help="a bad clip (missing/corrupt file, empty text) stops the run, or is reported and skipped")
    p.add_argument("--cache-dir", help="per-clip cache for resuming (default OUT.cache)")
    p.add_argument("--keep-cache", action="store_true", help="keep the per-clip cache after success")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_threads_arg(p)


def cmd_extract(a) -> int:
    from ..extraction.dataset import extract_dataset
    from ..extraction.features import ExtractionConfig
    from ..utils import check_writable, resolve_device

    check_writable(a.out, "--out", folder=False)
    if a.cache_dir:
        check_writable(a.cache_dir, "--cache-dir", folder=True)
    cfg = ExtractionConfig(language=a.language, vision_model=a.vision_model, text_model=a.text_model,
                           audio_model=a.audio_model, frames=a.frames, text_len=a.text_len, audio_len=a.audio_len,
                           audio_layer=a.audio_layer, audio_fit=a.audio_fit, batch_size=a.batch_size,
                           modalities=parse_modalities(a.modalities))
    s = extract_dataset(a.dataset_dir, a.out, cfg, device=resolve_device(a.device), dataset=a.dataset,
                        on_error=a.on_error, cache_dir=a.cache_dir, keep_cache=a.keep_cache, progress=not a.quiet,
                        workers=a.workers)
    rate = f", {s['clips_per_s']} clips/s" if s["clips_per_s"] else ""
    print(f"wrote {s['out']} ({s['dataset']}): " + ", ".join(f"{k} {v}" for k, v in s["splits"].items())
          + f"; {s['extracted']} extracted, {s['from_cache']} from the cache, {len(s['skipped'])} skipped"
          + f" in {s['seconds']:.1f} s{rate}")
    for kind in ("no_audio", "no_video"):
        if s[kind]:
            print(f"  {len(s[kind])} clip(s) without {kind[3:]} (zero features, length 0): {', '.join(s[kind][:10])}"
                  + (" ..." if len(s[kind]) > 10 else ""))
    for sk in s["skipped"]:
        print(f"  skipped {sk['id']} (label.csv line {sk['line']}): {sk['reason']}")
    return 0


# ----------------------------------------------------------------------------- predict
def add_predict(sub):
    p = sub.add_parser("predict", help="sentiment of one raw clip with a trained checkpoint")
    p.add_argument("--checkpoint", required=True, help="e.g. runs/mosi/seed_1111/best.pt")
    p.add_argument("--video", required=True, help="the clip (mp4 or any FFmpeg format)")
    p.add_argument("--text", required=True, help="its transcript")
    p.add_argument("--language", choices=["en", "zh"], help="default: the checkpoint's training data")
    p.add_argument("--vision-model", help="default: the encoder the training pickle records, else the paper's")
    p.add_argument("--text-model", help="as --vision-model (a fine-tuned checkpoint uses its own tokenizer)")
    p.add_argument("--audio-model", help="as --vision-model")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, auto")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_threads_arg(p)


def cmd_predict(a) -> int:
    from ..extraction.predict import predict_clip

    r = predict_clip(a.checkpoint, a.video, a.text, device=a.device, language=a.language,
                     vision_model=a.vision_model, text_model=a.text_model, audio_model=a.audio_model)
    if a.json:
        print(json.dumps(r, indent=2))
    else:
        print(f"{a.video}: sentiment {r['score']:+.3f} ({r['polarity']}; {r['dataset'].upper()} scale)")
    return 0
