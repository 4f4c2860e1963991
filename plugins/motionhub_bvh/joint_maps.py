"""Joint maps: where each of the 22 SMPL body joints HumanML3D uses sits on another skeleton.

A map names, for every SMPL joint, one joint of the source skeleton or a weighted mix of several
(the weights are normalised to sum to 1), as YAML or JSON::

    pelvis: Hips
    spine2: {Spine: 0.5, Spine1: 0.5}   # between two source joints
    left_collar: {Spine1: 0.5, LeftArm: 0.5}

A mix places a joint the source skeleton lacks: a skeleton with fewer spine joints than SMPL's
three puts ``spine2`` between two of its spine joints, one without clavicles puts the collars
halfway from the upper spine to the shoulders. Only bone *directions* reach the 263 features
(``prepare`` redraws every bone with HumanML3D's own lengths), so a mix need only lie on the
right bone.

Shipped maps (``--joint-map NAME``): :data:`SHIPPED`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from motionhub.api import DataError, did_you_mean
from motionhub.motion.skeletons import T2M_SKELETON

SMPL_JOINTS = T2M_SKELETON.joint_names

CMU31 = {
    # PFNN's 31-joint CMU skeleton (Hips, LHipJoint, LeftUpLeg, ..., RThumb). LowerBack, Neck,
    # LHipJoint/RHipJoint, LeftShoulder/RightShoulder and the finger joints sit where their
    # parent is (zero OFFSETs), so the collars are placed halfway to the shoulders and the spine
    # between Spine and Spine1.
    "pelvis": "Hips",
    "left_hip": "LeftUpLeg", "right_hip": "RightUpLeg",
    "spine1": "Spine",
    "left_knee": "LeftLeg", "right_knee": "RightLeg",
    "spine2": {"Spine": 0.25, "Spine1": 0.75},
    "left_ankle": "LeftFoot", "right_ankle": "RightFoot",
    "spine3": "Spine1",
    "left_foot": "LeftToeBase", "right_foot": "RightToeBase",
    "neck": "Neck1",
    "left_collar": {"Spine1": 0.5, "LeftArm": 0.5}, "right_collar": {"Spine1": 0.5, "RightArm": 0.5},
    "head": "Head",
    "left_shoulder": "LeftArm", "right_shoulder": "RightArm",
    "left_elbow": "LeftForeArm", "right_elbow": "RightForeArm",
    "left_wrist": "LeftHand", "right_wrist": "RightHand",
}

SMPL22 = {name: name for name in SMPL_JOINTS}
"""Skeletons that use the SMPL joint names, e.g. the BVH files ``motionhub decode --format bvh`` writes."""

SHIPPED: dict[str, dict] = {"cmu31": CMU31, "pfnn": CMU31, "smpl22": SMPL22}
"""Maps by name: ``cmu31`` (= ``pfnn``): the CMU conversion PFNN uses; ``smpl22``: SMPL names."""

# Words that name an SMPL body part on other skeletons, most telling first, for suggestions.
SYNONYMS = {"pelvis": ("pelvis", "hips", "hip", "root"), "hip": ("upleg", "thigh", "hip"),
            "knee": ("knee", "shin", "calf", "leg"), "ankle": ("ankle", "foot"), "foot": ("toe", "ball", "foot"),
            "collar": ("collar", "clavicle", "shoulder"), "shoulder": ("upperarm", "arm", "shoulder"),
            "elbow": ("elbow", "forearm", "lowerarm"), "wrist": ("wrist", "hand"),
            "spine": ("spine", "back", "chest", "abdomen", "torso")}


@dataclass(frozen=True)
class JointMap:
    """A resolved map: ``weights`` (22, J_source) turns source joint positions into SMPL ones.

    Attributes:
        name: where it came from (a shipped name or a file path).
        weights: (22, J) rows summing to 1, in ``SMPL_JOINTS`` order.
        source_names: (J,) the source skeleton's joint names.
    """

    name: str
    weights: np.ndarray
    source_names: tuple[str, ...]

    def apply(self, positions: np.ndarray) -> np.ndarray:
        """SMPL joint positions (T, 22, 3) from source positions (T, J, 3)."""
        return np.einsum("sj,tjc->tsc", self.weights, positions)


def load_map_spec(spec: str) -> tuple[str, dict]:
    """The raw map of ``spec``: a shipped name or a .yaml/.yml/.json file; returns (label, mapping)."""
    if spec in SHIPPED:
        return spec, SHIPPED[spec]
    path = Path(spec)
    if not path.is_file():
        raise DataError(f"joint map '{spec}' is neither a shipped map nor a file{did_you_mean(spec, SHIPPED)} "
                        f"Shipped maps: {', '.join(SHIPPED)}; or give a .yaml/.json file mapping each of the 22 "
                        f"SMPL joints ({', '.join(SMPL_JOINTS)}) to a source joint or a weighted mix")
    text = path.read_text(encoding="utf-8")
    try:
        mapping = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise DataError(f"joint map {path} cannot be read: {exc}") from None
    if not isinstance(mapping, dict):
        raise DataError(f"joint map {path} must map SMPL joint names to source joints, found a "
                        f"{type(mapping).__name__}")
    return str(path), mapping


def resolve_joint_map(spec: str, source_names: Sequence[str], source: str = "the BVH skeleton") -> JointMap:
    """Check the map ``spec`` against ``source_names`` and return its weights.

    Raises :class:`DataError` naming the first problem: an SMPL joint the map lacks (with the
    source joints and the closest one), a key that is no SMPL joint, a source joint that
    ``source`` has not, or a weight that is not a positive number.
    """
    label, mapping = load_map_spec(spec)
    source_names = tuple(source_names)
    listing = f"{source} has joints {', '.join(source_names)}"
    unknown = [key for key in mapping if key not in SMPL_JOINTS]
    if unknown:
        key = str(unknown[0])
        raise DataError(f"joint map {label}: '{key}' is not one of the 22 SMPL joints"
                        f"{did_you_mean(key, SMPL_JOINTS) or '.'} SMPL joints: {', '.join(SMPL_JOINTS)}")
    index = {name: j for j, name in enumerate(source_names)}
    weights = np.zeros((len(SMPL_JOINTS), len(source_names)))
    for row, joint in enumerate(SMPL_JOINTS):
        if joint not in mapping:
            guess = closest_source_joint(joint, source_names)
            hint = f"; the closest source joint is '{guess}'" if guess else ""
            raise DataError(f"joint map {label} has no entry for SMPL joint '{joint}', which HumanML3D needs{hint}. "
                            f"{listing}. Add '{joint}: <source joint>' (or a weighted mix "
                            f"'{joint}: {{A: 0.5, B: 0.5}}') to the map")
        entry = mapping[joint]
        mix = {entry: 1.0} if isinstance(entry, str) else entry
        if not isinstance(mix, dict) or not mix:
            raise DataError(f"joint map {label}: '{joint}' must name a source joint or map source joints to "
                            f"weights, found {entry!r}")
        for name, weight in mix.items():
            if name not in index:
                raise DataError(f"joint map {label}: '{joint}' names source joint '{name}', which {source} has not"
                                f"{did_you_mean(str(name), source_names) or '.'} {listing}")
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
                raise DataError(f"joint map {label}: '{joint}' gives '{name}' the weight {weight!r}; weights are "
                                f"positive numbers")
            weights[row, index[name]] += float(weight)
    weights /= weights.sum(axis=1, keepdims=True)
    return JointMap(label, weights, source_names)


def closest_source_joint(smpl_joint: str, source_names: Sequence[str]) -> str | None:
    """The source joint whose name is closest to ``smpl_joint``, its side and body-part synonyms included."""
    side, _, part = smpl_joint.rpartition("_")
    part = re.sub(r"\d+$", "", part)
    words = SYNONYMS.get(part, (part,))
    sides = {"left": ("left", "l"), "right": ("right", "r")}.get(side, ("",))

    def score(name: str) -> tuple[int, int]:
        plain = re.sub(r"[^a-z]", "", name.lower())
        side_ok = not side or any(plain.startswith(s) for s in sides) or side in plain
        part_rank = next((rank for rank, word in enumerate(words) if word in plain), None)
        if part_rank is None or not side_ok:
            return (99, 0)
        return (part_rank, len(plain))

    best = min(source_names, key=score, default=None)
    if best is not None and score(best)[0] < 99:
        return best
    match = did_you_mean(smpl_joint, source_names)
    return match.split("'")[1] if match else None
