"""actnav: the adoptive cell therapy navigator (CAR-T, TIL and TCR-T).

Decision support for clinicians, not a replacement for them.
"""

__version__ = "0.1.0"
