"""Feature extraction (Sec. 3.2, Eq. 1-3): raw clips -> the MMSA pickle that ``mcihn.data`` loads.

    media.py      decoding with PyAV: evenly sampled frames, 16 kHz mono audio, sequence fitting
    features.py   the three frozen encoders (CLIP, BERT, wav2vec2) through transformers
    dataset.py    label.csv + Raw/<video>/<clip>.mp4 -> MMSA pickle (cache, resume, skip / fail)
    predict.py    one raw clip -> a sentiment score, with a trained checkpoint
    fixtures.py   tiny local encoders and generated clips (tests, notebook 01, ``bench --extract``)

Importing this package loads nothing heavy; transformers is imported by the modules that use it.
"""
