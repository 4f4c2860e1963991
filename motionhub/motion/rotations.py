"""Rotation helpers: quaternions (w, x, y, z), rotation matrices, axis-angle and 6D.

Every function is written once with torch, batched over any leading dims, and
accepts numpy arrays too: numpy in gives numpy out with the input's float dtype
(see :func:`numpy_compatible`).

Two 6D conventions are in use and they are *not* interchangeable:

* HumanML3D ``cont6d`` (263/251 features, ``[67:193]`` for t2m): the first two
  **columns** of the matrix, ``[R[:, 0], R[:, 1]]`` -> :func:`matrix_to_cont6d`.
* pytorch3d ``rotation_6d`` (272 features, ``[2:8]`` and ``[140:272]``): the
  first two **rows**, ``[R[0, :], R[1, :]]`` -> :func:`matrix_to_rotation_6d`.

``cont6d(R) == rotation_6d(R^T)``. Both decoders use the same Gram-Schmidt step.

Matrices act on column vectors (``v' = R @ v``); a quaternion and its matrix
describe the same rotation.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch

Array = TypeVar("Array", torch.Tensor, np.ndarray)
F = TypeVar("F", bound=Callable[..., Any])

_EPS = 1e-8


def numpy_compatible(fn: F) -> F:
    """Let a torch function take numpy arrays.

    When no argument is a tensor and at least one is an ``np.ndarray``, arrays
    are converted with ``torch.from_numpy`` (integer arrays become float64), the
    function runs, and tensor results (also inside tuples) come back as numpy
    arrays cast to the dtype of the first floating-point array argument (float64
    when every array is an integer one, e.g. joint parents).
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = list(args) + list(kwargs.values())
        if any(isinstance(v, torch.Tensor) for v in values):
            return fn(*args, **kwargs)
        arrays = [v for v in values if isinstance(v, np.ndarray)]
        if not arrays:
            return fn(*args, **kwargs)
        floating = [a.dtype for a in arrays if np.issubdtype(a.dtype, np.floating)]
        out_dtype = floating[0] if floating else np.dtype(np.float64)

        def to_torch(v: Any) -> Any:
            if not isinstance(v, np.ndarray):
                return v
            if not np.issubdtype(v.dtype, np.floating):
                v = v.astype(np.float64)
            return torch.from_numpy(np.require(v, requirements=["C", "W"]))

        def to_numpy(v: Any) -> Any:
            if isinstance(v, torch.Tensor):
                out = v.detach().cpu().numpy()
                return out.astype(out_dtype, copy=False) if out.dtype.kind == "f" else out
            if isinstance(v, tuple):
                return tuple(to_numpy(x) for x in v)
            return v

        result = fn(*(to_torch(a) for a in args), **{k: to_torch(v) for k, v in kwargs.items()})
        return to_numpy(result)

    return wrapper  # type: ignore[return-value]


def _check_last(x: torch.Tensor, size: int, name: str) -> None:
    if x.shape[-1] != size:
        raise ValueError(f"{name}: expected shape (..., {size}), got {tuple(x.shape)}")


def _check_matrix(m: torch.Tensor) -> None:
    if m.shape[-2:] != (3, 3):
        raise ValueError(f"expected rotation matrices of shape (..., 3, 3), got {tuple(m.shape)}")


@numpy_compatible
def quat_multiply(q: Array, r: Array) -> Array:
    """Hamilton product ``q * r`` of quaternions (…, 4); applying it rotates by r, then q."""
    _check_last(q, 4, "q")
    _check_last(r, 4, "r")
    w1, x1, y1, z1 = q.unbind(-1)
    w2, x2, y2, z2 = r.unbind(-1)
    return torch.stack(
        (
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ),
        dim=-1,
    )


@numpy_compatible
def quat_conjugate(q: Array) -> Array:
    """Conjugate (…, 4); the inverse of a unit quaternion."""
    _check_last(q, 4, "q")
    return torch.cat((q[..., :1], -q[..., 1:]), dim=-1)


@numpy_compatible
def quat_normalize(q: Array) -> Array:
    """Scale quaternions (…, 4) to unit norm."""
    _check_last(q, 4, "q")
    return q / q.norm(dim=-1, keepdim=True).clamp_min(_EPS)


@numpy_compatible
def quat_rotate(q: Array, v: Array) -> Array:
    """Rotate vectors v (…, 3) by unit quaternions q (…, 4); leading dims broadcast."""
    _check_last(q, 4, "q")
    _check_last(v, 3, "v")
    w, xyz = q[..., :1], q[..., 1:]
    xyz, v = torch.broadcast_tensors(xyz, v)
    uv = torch.linalg.cross(xyz, v, dim=-1)
    uuv = torch.linalg.cross(xyz, uv, dim=-1)
    return v + 2.0 * (w * uv + uuv)


@numpy_compatible
def quat_slerp(q0: Array, q1: Array, t: Array) -> Array:
    """Shortest-path spherical interpolation of unit quaternions q0, q1 (…, 4) at t (…, 1).

    ``q1`` is negated where ``q0 · q1 < 0``; nearly equal rotations (sin of the angle
    below 1e-6) are interpolated linearly. The result is normalised.
    """
    _check_last(q0, 4, "q0")
    _check_last(q1, 4, "q1")
    dot = (q0 * q1).sum(-1, keepdim=True)
    q1 = torch.where(dot < 0, -q1, q1)
    angle = torch.acos(dot.abs().clamp(0.0, 1.0))
    sin = torch.sin(angle)
    near = sin < 1e-6
    safe = torch.where(near, torch.ones_like(sin), sin)
    w0 = torch.where(near, 1.0 - t, torch.sin((1.0 - t) * angle) / safe)
    w1 = torch.where(near, t, torch.sin(t * angle) / safe)
    q = w0 * q0 + w1 * q1
    return q / q.norm(dim=-1, keepdim=True)


def _any_orthogonal(v: torch.Tensor) -> torch.Tensor:
    """A unit vector orthogonal to each v (…, 3)."""
    ex = torch.zeros_like(v)
    ex[..., 0] = 1.0
    ey = torch.zeros_like(v)
    ey[..., 1] = 1.0
    near_x = v[..., :1].abs() > 0.9 * v.norm(dim=-1, keepdim=True)
    axis = torch.linalg.cross(v, torch.where(near_x, ey, ex), dim=-1)
    return axis / axis.norm(dim=-1, keepdim=True).clamp_min(_EPS)


@numpy_compatible
def quat_between(v0: Array, v1: Array) -> Array:
    """Shortest-arc unit quaternion (…, 4) rotating direction v0 (…, 3) onto v1 (…, 3).

    ``w = |v0||v1| + v0·v1``, ``xyz = v0 × v1``, normalised (the construction
    HumanML3D uses, so ``w >= 0``). Opposite vectors get a half turn about an
    axis orthogonal to v0.
    """
    _check_last(v0, 3, "v0")
    _check_last(v1, 3, "v1")
    v0, v1 = torch.broadcast_tensors(v0, v1)
    w = v0.norm(dim=-1, keepdim=True) * v1.norm(dim=-1, keepdim=True) + (v0 * v1).sum(-1, keepdim=True)
    q = torch.cat((w, torch.linalg.cross(v0, v1, dim=-1)), dim=-1)
    norm = q.norm(dim=-1, keepdim=True)
    half_turn = torch.cat((torch.zeros_like(w), _any_orthogonal(v0)), dim=-1)
    return torch.where(norm > _EPS, q / norm.clamp_min(_EPS), half_turn)


@numpy_compatible
def quat_to_matrix(q: Array) -> Array:
    """Rotation matrices (…, 3, 3) from quaternions (…, 4); q need not be unit."""
    _check_last(q, 4, "q")
    w, x, y, z = q.unbind(-1)
    s = 2.0 / (q * q).sum(-1)
    rows = (
        1 - s * (y * y + z * z), s * (x * y - z * w), s * (x * z + y * w),
        s * (x * y + z * w), 1 - s * (x * x + z * z), s * (y * z - x * w),
        s * (x * z - y * w), s * (y * z + x * w), 1 - s * (x * x + y * y),
    )  # fmt: skip
    return torch.stack(rows, dim=-1).reshape(q.shape[:-1] + (3, 3))


@numpy_compatible
def matrix_to_quat(m: Array) -> Array:
    """Unit quaternions (…, 4) with ``w >= 0`` from rotation matrices (…, 3, 3)."""
    _check_matrix(m)
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # Four unnormalised candidates (4w·q, 4x·q, 4y·q, 4z·q); the one built from the
    # largest of w², x², y², z² is the best conditioned.
    candidates = torch.stack(
        (
            torch.stack((1 + m00 + m11 + m22, m21 - m12, m02 - m20, m10 - m01), -1),
            torch.stack((m21 - m12, 1 + m00 - m11 - m22, m01 + m10, m02 + m20), -1),
            torch.stack((m02 - m20, m01 + m10, 1 - m00 + m11 - m22, m12 + m21), -1),
            torch.stack((m10 - m01, m02 + m20, m12 + m21, 1 - m00 - m11 + m22), -1),
        ),
        dim=-2,
    )
    scores = torch.diagonal(candidates, dim1=-2, dim2=-1)
    best = scores.argmax(dim=-1, keepdim=True)
    q = torch.gather(candidates, -2, best[..., None].expand(best.shape[:-1] + (1, 4))).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)


@numpy_compatible
def axis_angle_to_quat(axis_angle: Array) -> Array:
    """Unit quaternions (…, 4) from axis-angle vectors (…, 3) (angle = norm, radians)."""
    _check_last(axis_angle, 3, "axis_angle")
    angle = axis_angle.norm(dim=-1, keepdim=True)
    # sin(angle/2)/angle written with the normalised sinc so that angle = 0 is exact.
    scale = 0.5 * torch.sinc(angle / (2 * torch.pi))
    return torch.cat((torch.cos(0.5 * angle), axis_angle * scale), dim=-1)


@numpy_compatible
def quat_to_axis_angle(q: Array) -> Array:
    """Axis-angle vectors (…, 3) with angle in [0, π] from quaternions (…, 4)."""
    _check_last(q, 4, "q")
    q = torch.where(q[..., :1] < 0, -q, q)
    sin_half = q[..., 1:].norm(dim=-1, keepdim=True)
    half = torch.atan2(sin_half, q[..., :1])
    small = sin_half < 1e-6
    # For tiny angles 2·half/sin(half) -> 2/w (first-order series).
    factor = torch.where(small, 2.0 / q[..., :1], 2.0 * half / torch.where(small, torch.ones_like(sin_half), sin_half))
    return q[..., 1:] * factor


@numpy_compatible
def axis_angle_to_matrix(axis_angle: Array) -> Array:
    """Rotation matrices (…, 3, 3) from axis-angle vectors (…, 3)."""
    return quat_to_matrix(axis_angle_to_quat(axis_angle))


@numpy_compatible
def matrix_to_axis_angle(m: Array) -> Array:
    """Axis-angle vectors (…, 3) from rotation matrices (…, 3, 3)."""
    return quat_to_axis_angle(matrix_to_quat(m))


@numpy_compatible
def yaw_to_matrix(angle: Array) -> Array:
    """Rotations about +Y by ``angle`` (…) radians -> (…, 3, 3) ``[[c,0,s],[0,1,0],[-s,0,c]]``."""
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    rows = (c, zero, s, zero, one, zero, -s, zero, c)
    return torch.stack(rows, dim=-1).reshape(angle.shape + (3, 3))


def _gram_schmidt(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Orthonormal frame (e1, e2, e3) from two vectors (…, 3): e1 ∥ a, e2 in span(a, b)."""
    e1 = a / a.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    e2 = b - (e1 * b).sum(-1, keepdim=True) * e1
    e2 = e2 / e2.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    return e1, e2, torch.linalg.cross(e1, e2, dim=-1)


@numpy_compatible
def matrix_to_cont6d(m: Array) -> Array:
    """HumanML3D cont6d (…, 6): the first two **columns** ``[R[:,0], R[:,1]]`` of (…, 3, 3)."""
    _check_matrix(m)
    return torch.cat((m[..., :, 0], m[..., :, 1]), dim=-1)


@numpy_compatible
def cont6d_to_matrix(d6: Array) -> Array:
    """Inverse of :func:`matrix_to_cont6d`: (…, 6) -> (…, 3, 3), columns via Gram-Schmidt."""
    _check_last(d6, 6, "cont6d")
    return torch.stack(_gram_schmidt(d6[..., :3], d6[..., 3:]), dim=-1)


@numpy_compatible
def matrix_to_rotation_6d(m: Array) -> Array:
    """pytorch3d / 272-dim 6D (…, 6): the first two **rows** ``[R[0,:], R[1,:]]`` of (…, 3, 3)."""
    _check_matrix(m)
    return m[..., :2, :].reshape(m.shape[:-2] + (6,))


@numpy_compatible
def rotation_6d_to_matrix(d6: Array) -> Array:
    """Inverse of :func:`matrix_to_rotation_6d`: (…, 6) -> (…, 3, 3), rows via Gram-Schmidt."""
    _check_last(d6, 6, "rotation_6d")
    return torch.stack(_gram_schmidt(d6[..., :3], d6[..., 3:]), dim=-2)
