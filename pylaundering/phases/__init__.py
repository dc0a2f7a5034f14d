"""The three phases of data laundering, one module each: placement -> layering -> integration. Each takes
its settings whole, as a frozen spec (``specs.py``)."""

from .integration import integrate
from .layering import layer
from .placement import place
from .specs import DistillSpec, IntegrationSpec, LayeringSpec, PlacementSpec, StudentSpec

__all__ = ["DistillSpec", "IntegrationSpec", "LayeringSpec", "PlacementSpec", "StudentSpec", "integrate", "layer",
           "place"]
