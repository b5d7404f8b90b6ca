"""The element-wise map protocol: a monotone scalar map per feature, parameterised from outside."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["ElementwiseMap"]


class ElementwiseMap(nn.Module):
    r"""A monotone scalar map :math:`z_d = \tau(x_d; \theta_d)` applied to each feature, with its inverse.

    A map holds no learned weights: a *conditioner* network (or a free parameter, see
    :class:`flowkit.bijectors.Elementwise`) predicts :math:`\theta` of shape ``(..., D, num_params)``
    in unconstrained form, and the map turns it into a valid (strictly increasing) transform.
    Structures such as :class:`flowkit.bijectors.MaskedAutoregressive` and
    :class:`flowkit.bijectors.Coupling` take any map, so the network and the map vary independently.

    Both directions return the output and the **element-wise** log-derivative
    :math:`\log|\partial\,\mathrm{output}_d / \partial\,\mathrm{input}_d|`, shape ``(..., D)``;
    the structure sums it into the ``(B,)`` log-det of the contract.

    Subclasses set:

    - ``num_params``: parameters per feature ``P``;
    - ``volume_preserving``: the log-derivative is exactly zero;

    and implement :meth:`forward` and :meth:`inverse`. All-zero parameters give the identity in
    flowkit's maps, so a structure whose conditioner ends in a zero-initialised layer starts as the
    identity map.
    """

    num_params: int = 0
    volume_preserving: bool = False

    def guided_params(self, guide_what: str) -> tuple[int, ...]:
        r"""Indices of the parameters that classifier-free guidance extrapolates for ``guide_what``.

        Guidance combines *unconstrained* parameters, :math:`\theta \leftarrow \theta + w(\theta -
        \theta_u)`, before the map constrains them. By default any non-empty ``guide_what`` guides
        all of them (e.g. a spline's widths, heights and derivatives together); the affine maps
        name theirs (``"a"``, ``"b"``).
        """
        return tuple(range(self.num_params)) if guide_what else ()

    def forward(self, x: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
        """``(z, log|dz/dx|)`` for ``x`` of shape ``(..., D)`` and ``params`` of shape ``(..., D, P)``."""
        raise NotImplementedError

    def inverse(self, z: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
        """``(x, log|dx/dz|)``: the inverse of :meth:`forward` at the same ``params``."""
        raise NotImplementedError

