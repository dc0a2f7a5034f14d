"""The three phases of data laundering, one module each: placement -> layering -> integration."""

from .integration import integrate
from .layering import layer
from .placement import place

__all__ = ["integrate", "layer", "place"]
