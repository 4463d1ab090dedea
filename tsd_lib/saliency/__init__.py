"""Temporal saliency: window perturbations (TSD's core) and saliency maps for people.

Submodules: ``perturb`` (perturbations, distribution shift, teacher bank), ``maps``
(sliding-window saliency maps), ``gradients`` (gradient and integrated-gradient maps).
"""
