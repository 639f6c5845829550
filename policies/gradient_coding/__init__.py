"""Gradient coding: coded data-parallel training and sequential gradient coding.

Pure parts: :mod:`.codes` (encoding matrices and decoders) and :mod:`.sequential` (SR-SGC and
M-SGC schedules, load formulas). Policies: :mod:`.coded_training` (``gc_uncoded``,
``gc_ignore_stragglers``, ``gc_fractional``, ``gc_cyclic``, ``gc_approx``) and
:mod:`.sequential_policy` (``gc_sequential``, ``sr_sgc``, ``m_sgc``). See
docs/methods/gradient-coding.md.
"""

from policies.gradient_coding import coded_training, sequential_policy  # noqa: F401  (registers)
