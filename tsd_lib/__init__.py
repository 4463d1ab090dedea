"""tsd_lib: Temporal Saliency Distillation (TSD) for time-series classification.

Companion library of the TSD Book. Reproduces "Learning to Reason: Temporal Saliency
Distillation for Interpretable Knowledge Transfer" (Hewa Dehigahawattage, Nandakishor,
Palaniswami; ECAI 2025, arXiv 2601.04263).
"""

__version__ = "0.1.0"
