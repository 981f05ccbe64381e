"""DDPG's losses as pure math on tensors (Lillicrap et al. 2015, arXiv:1509.02971, Algorithm 1).

The torch twin of :mod:`ddpgx.losses`; the two files can be read side by side. ``_tm1`` is the sampled time step
``t-1`` (state ``s_tm1``, action ``a_tm1``), ``_t`` the next one.

* Target:  ``y = r_t + discount_t * Q'(s_t, mu'(s_t))`` with ``discount_t = gamma * (1 - terminated_t)``. Only
  termination cuts the bootstrap; a time-limit truncation bootstraps (Pardo et al. 2018), a departure from the
  paper's episodic ``(1 - done)``.
* Critic:  ``L(phi) = mean((Q_phi(s_tm1, a_tm1) - y)^2)``, ``y`` held constant (``detach``). No 1/2 factor, as in
  skrl and SB3.
* Policy:  ``J(theta) = -mean(Q_phi(s_tm1, mu_theta(s_tm1)))``, the deterministic policy gradient (Silver et al.
  2014).

Losses are computed in float32 even under mixed precision: the networks may run in bf16/fp16, their outputs are
cast up before the mean.
"""

from __future__ import annotations

import torch


def td_target(r_t: torch.Tensor, discount_t: torch.Tensor, q_t: torch.Tensor) -> torch.Tensor:
    """The bootstrapped target ``r_t + discount_t * q_t``, detached from the graph."""
    return torch.addcmul(r_t, discount_t, q_t.float()).detach()


def critic_loss(q_tm1: torch.Tensor, target_tm1: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Mean squared TD error of the critic's predictions ``q_tm1`` against fixed targets.

    Returns:
      ``(loss, aux)`` with ``aux = {"q": q_tm1, "target": target_tm1}`` (both detached).
    """
    q_tm1 = q_tm1.float()
    target_tm1 = target_tm1.detach()
    loss = torch.nn.functional.mse_loss(q_tm1, target_tm1)  # mean((q - y)^2): one operation, one in backward
    return loss, {"q": q_tm1.detach(), "target": target_tm1}


def policy_loss(q_of_policy_tm1: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Negative mean critic value of the policy's own actions, ``-mean Q(s, mu(s))``.

    Returns:
      ``(loss, aux)`` with ``aux = {"q_policy": q_of_policy_tm1}`` (detached).
    """
    q = q_of_policy_tm1.float()
    return -torch.mean(q), {"q_policy": q.detach()}


# The losses' gradients with respect to the critic's values, for networks that pull gradients back themselves
# (ddpgx_torch.networks' value_and_pullback) instead of through autograd; the same numbers as autograd's backward
# of the functions above (mse_loss_backward is 2 (q - y) / n; the mean's is 1 / n).


def critic_loss_grad(q_tm1: torch.Tensor, target_tm1: torch.Tensor) -> torch.Tensor:
    """d critic_loss / d q_tm1 ``= 2 (q_tm1 - target_tm1) / n``."""
    q = q_tm1.float()
    return torch.ops.aten.mse_loss_backward(torch.ones((), dtype=q.dtype, device=q.device), q,
                                            target_tm1.detach(), 1)  # reduction 1: mean


def policy_loss_grad(q_of_policy_tm1: torch.Tensor) -> torch.Tensor:
    """d policy_loss / d q ``= -1 / n`` for each value."""
    q = q_of_policy_tm1.float()
    return torch.full_like(q, -1.0 / q.numel())

