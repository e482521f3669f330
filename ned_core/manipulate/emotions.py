"""Emotions as mixes of FACS action units (the default rig's recipe; also what metrics measure).

Weights are relative contributions of each AU at full intensity of the emotion. The mixes follow the
prototypes of EMFACS (Friesen & Ekman) as DESIGN.md lists them.
"""

from __future__ import annotations

from ned_core import EMOTIONS

ACTION_UNITS: dict[str, str] = {
    "AU1": "inner brow raiser",
    "AU2": "outer brow raiser",
    "AU4": "brow lowerer",
    "AU5": "upper lid raiser",
    "AU6": "cheek raiser",
    "AU7": "lid tightener",
    "AU9": "nose wrinkler",
    "AU12": "lip corner puller",
    "AU15": "lip corner depressor",
    "AU16": "lower lip depressor",
    "AU20": "lip stretcher",
    "AU23": "lip tightener",
}

EMOTION_AUS: dict[str, dict[str, float]] = {
    "neutral": {},
    "angry": {"AU4": 1.0, "AU5": 0.6, "AU7": 0.8, "AU23": 0.8},
    "disgusted": {"AU9": 1.0, "AU15": 0.7, "AU16": 0.5},
    "fear": {"AU1": 0.8, "AU2": 0.6, "AU4": 0.5, "AU5": 1.0, "AU20": 0.8},
    "happy": {"AU6": 1.0, "AU12": 1.0},
    "sad": {"AU1": 1.0, "AU4": 0.6, "AU15": 1.0},
    "surprised": {"AU1": 1.0, "AU2": 1.0, "AU5": 1.0},
}

assert tuple(EMOTION_AUS) == EMOTIONS, "EMOTION_AUS must follow NED's label order"
