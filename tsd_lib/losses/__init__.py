"""Distillation losses: one pure function per method, a registry ``LOSSES`` and ``Objective``."""
