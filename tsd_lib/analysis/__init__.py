"""Analyses the chapters show, as tested functions: the data set and teacher views of chapter 1, logit
distillation (2), the feature baselines (3), temporal saliency (4), TSD (5), teachers against the
literature, the LSTM teacher's seed study, the epoch-budget study, the convergence audit, the ablations,
seed tables and each chapter's "What we saw" summary.

Import each name from its module (``from tsd_lib.analysis.logits import kd_table``): a chapter then loads,
and its fingerprint hashes, only the analyses it shows."""
