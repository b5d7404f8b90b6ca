r"""Element-wise maps: monotone scalar transforms parameterised by a conditioner.

A map takes unconstrained parameters ``(..., D, num_params)`` and an input ``(..., D)`` and
returns the output and the element-wise log-derivative ``(..., D)``; the structures in
:mod:`flowkit.bijectors` (autoregressive, coupling) sum it into the log-det.
"""

from .affine import AffineMap, ShiftMap
from .base import ElementwiseMap
from .spline import RQSplineMap

__all__ = ["AffineMap", "ElementwiseMap", "RQSplineMap", "ShiftMap"]
