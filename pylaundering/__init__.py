"""pylaundering: reproduce, measure and detect data laundering through knowledge distillation.

Submodules are imported lazily so that `import pylaundering.data` does not pay for the
compiled extension or transformers.
"""

__version__ = "0.1.0"
