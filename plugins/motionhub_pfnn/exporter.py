"""The ``pfnn`` exporter: PFNN training data from any data set with joint positions.

Each clip of the source is resampled to ``fps``, scaled to PFNN units (about centimetres,
from the format's ``mm_per_unit``), cut into phase cycles and turned into PFNN rows by
:mod:`motionhub_pfnn.database`. Skeleton choices (facing joints, feet, their planted
heights, masked joints) come from the format's skeleton unless given.

Foot contacts (``contacts``) give Y's contact columns, the floor under each cycle and, with
the phase from contacts, the foot landings:

* ``speed``: a foot joint is in contact where its speed is below ``contact_speed`` and its
  height above the lowest point it reaches in the clip is below ``contact_height``. Both are
  stated in metres and converted to the data's units through the format's ``mm_per_unit``
  (KIT-ML positions are millimetres, HumanML3D's metres), so the same motion stored in
  either unit has the same contacts. The default speed, 0.9 m/s, is the one of HumanML3D's
  own contact features (a squared step below 0.002 m² at 20 fps), which test no height.
* ``format``: the landings come from the layout's own foot-contact features (its
  ``contacts`` slice: left feet, then right); Y's contacts and the floor by ``speed``.
* ``auto``: ``format`` for each clip whose contact features fire (each foot in contact in at
  least ``FIRING_SHARE`` of its frames), else ``speed``. KIT-ML's features were made with
  HumanML3D's threshold of 0.002 squared units per frame while its units are millimetres: a
  foot must move less than 0.045 mm a frame, so they mark (almost) no contact, no foot
  lands, no phase cycle starts and every clip would be skipped. MotionMillion's 272 layout
  has no contact features.
* ``pfnn``: Y's contacts and the floor by PFNN's own rule, a squared step to the next 60 fps
  frame below 0.02 PFNN units² (about 8.5 cm/s) with no height test; landings as ``auto``
  (from those contacts where the layout's features do not fire). It reproduces PFNN's data
  from its clean 120 fps captures, but misses the contacts of smoothed or sliding feet.

Phase:

* ``contacts``: the right foot landing starts a cycle (phase 0) and the left foot landing
  is phase 0.5; a landing is a contact after ``min_swing`` frames (5 at 60 fps) without.
* ``labels``: the data set's ``phase`` labels, with its ``footsteps`` labels (PFNN's
  ``_footsteps.txt``) selecting the cycles where it has them.

Gait: ``speed`` gives one-hot stand / walk / jog from the root speed; ``labels`` reads
the data set's ``gait`` labels (PFNN's 8 ``.gait`` columns are merged to 6). With
``crouch_head`` the crouch column is set from that joint's height, as PFNN does for its
flat-ground clips.

Joint rotations (the last Y block):

* ``source``: the data set's global joint rotations (BVH files have them).
* ``swing``: derived from positions alone. Joint j's rotation is the shortest arc that
  turns its rest bone direction (parent to j, the skeleton's unit rest offsets) onto its
  current direction; the root gets the yaw of its unsmoothed facing. This is used for
  HumanML3D-style layouts instead of their ``rotations_6d``: those are the same
  shortest-arc bone rotations, but stored relative to the previous bone of the same chain
  (the arm chains relative to the root), with a root rotation whose facing negates the
  hip term, is smoothed and is reset to identity at frame 0. Deriving them from the
  positions gives the bone rotations without those quirks, and works for every format
  whose skeleton has rest offsets.
* ``none``: no rotation block (``8 + 2 S + 6 J`` Y columns).
* ``auto``: ``source`` where the data set has rotations, else ``swing`` where the
  skeleton has rest offsets, else ``none``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Literal

import numpy as np

from motionhub.api import Bounds, Exporter, ExportResult, ExportSource, MotionFormat, MotionhubError, SourceClip
from motionhub.motion import skeletons
from motionhub.motion.rotations import quat_between, quat_to_matrix

from .database import (
    GAIT_NAMES,
    ColumnLayout,
    Footstep,
    PFNNConfig,
    PFNNDatabase,
    build_database,
    complete_cycles,
    concatenate_databases,
    cycles_from_phase,
    footstep_cycles,
    layouts,
    merge_gait_labels,
    pfnn_normalisation,
    prepare_clip,
    resample_times,
    save_database,
    write_normalisation,
)

PhaseFrom = Literal["contacts", "labels"]
GaitFrom = Literal["speed", "labels"]
RotationsFrom = Literal["auto", "source", "swing", "none"]
ContactsFrom = Literal["auto", "format", "speed", "pfnn"]

FIRING_SHARE = 0.1
"""Share of a clip's frames each foot must be in contact for ``--contacts auto`` to use the layout's
contact features. Walking or running feet are planted a third of the time or more; KIT-ML's features
mark about 2 % of all frames (its published mean), HumanML3D's about 85 %."""

PFNN_MM_PER_UNIT = 10.0
"""PFNN's units are about centimetres (CMU BVH units times 5.6444)."""
PFNN_UNITS_PER_METRE = 1000.0 / PFNN_MM_PER_UNIT

PLANTED_FOOT_HEIGHTS: dict[str, tuple[float, ...]] = {"t2m": (5.4, 1.0)}
"""Height (PFNN units) of each foot joint of one side when planted, by skeleton name.
t2m: median heights of the ankles and feet of HumanML3D clip 012314 (whose floor is
y = 0) while in PFNN contact, left and right averaged. They apply where the feet have as
many joints a side as measured (two); other skeletons with two foot joints a side get
PFNN's heel and toe heights (5, 4). Any other number of foot joints a side (one joint per
foot, say) has no default: the heights must be given."""

PFNN_FOOT_HEIGHTS = (5.0, 4.0)

LANDING_SOURCES = {"format": "the layout's contact features", "speed": "speed and height",
                   "pfnn": "PFNN's rule"}


def option(name: str) -> str:
    """How messages name the exporter's argument ``name``: its words and its command-line option,
    ``foot heights (--foot-heights)``, which reads right from the command line and from Python."""
    return f"{name.replace('_', ' ')} (--{name.replace('_', '-')})"


class SkipClip(Exception):
    """A clip that yields no rows; ``reason`` is a few words for the summary (clips are grouped by it)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class PFNNExporter(Exporter):
    """PFNN training data: database.npz (Xun, Yun, Pun and normalisation) and Xmean/Xstd/Ymean/Ystd.bin.

    Writes PFNN training data (Holden et al. 2017) of one split of a data set: database.npz
    (Xun, Yun, Pun and Xmean/Xstd/Ymean/Ystd) and PFNN's Xmean.bin, Xstd.bin, Ymean.bin and
    Ystd.bin next to it. The source is a run directory (the data set of the recipe it was
    trained with; the model is not needed for PFNN data) or a recipe file (its data section).

    Skeleton choices (facing joints, feet, their planted heights) come from the data format's
    skeleton unless given. Foot contacts: 'speed' marks a foot joint in contact when it moves slower
    than contact_speed and is less than contact_height above its lowest point in the clip (both in
    metres, converted through the format's mm_per_unit); 'format' takes the phase's landings from
    the layout's own contact features; 'auto' does so where they fire, else uses speed (KIT-ML's
    features, made with HumanML3D's metre threshold on millimetres, never do); 'pfnn' marks Y's
    contacts by PFNN's rule and finds landings as 'auto' does. Phase: 'contacts' starts a cycle at each right-foot landing; 'labels' reads the data
    set's phase labels (and footstep cycles), e.g. PFNN's .phase and _footsteps.txt next to BVH
    files.

    Joint rotations: 'auto' uses the data set's rotations where it has them (BVH), else derives
    them from positions ('swing'): each joint's rotation is the shortest arc turning its rest bone
    direction onto its current one, and the root gets its facing yaw. HumanML3D's 6D rotations are
    not used: they hold the same bone rotations, but relative to the previous bone of each chain,
    with arm chains relative to a quirky root rotation (negated hip term, smoothed, identity at
    frame 0).

    fps: frame rate of the rows (PFNN's window and thresholds are in frames of its 60 fps)
    facing: (left, right) joint pairs giving the across direction (default: the skeleton's hips and shoulders, where it names them)
    feet: foot joints whose contacts Y holds, the left ones then as many right ones (default: the skeleton's feet, where it names them)
    foot_heights: planted height of each foot joint of a side, PFNN units (about cm); default for 2 joints a side: 5.4,1.0 on t2m (measured), else PFNN's 5,4; none for 1 joint a side (or any other number): give them
    crouch_head: set the crouch gait from this joint's height, as PFNN does for flat-ground clips
    masked: joints whose inputs the normalisation switches off (std 1e10 times larger; PFNN masks 12 of its 31)
    phase_from: phase from foot contacts or from the data set's phase labels
    contacts: foot contacts: speed (slower than contact-speed and lower than contact-height), format (phase landings from the layout's contact features, HumanML3D/KIT-ML; Y's by speed), auto (format where those fire in a clip, else speed), pfnn (Y's contacts by PFNN's rule: squared step below 0.02 PFNN units² at 60 fps, no height test; landings as auto)
    contact_speed: speed in metres per second below which a foot joint is in contact (converted to the data's units through the format's mm_per_unit: KIT-ML is in mm, HumanML3D in m); 0.9 is HumanML3D's own contact speed
    contact_height: height in metres above the joint's lowest point in the clip below which a foot joint is in contact (converted like contact-speed)
    gait_from: one-hot stand/walk/jog from root speed or the data set's gait labels
    rotations: joint rotations: the data set's (source), derived from positions (swing), none, or auto
    """

    output = "pfnn database"

    def __init__(self, fps: Annotated[float, Bounds(low=0, low_open=True)] = 60.0,
                 facing: Sequence[str] | None = None, feet: Sequence[str] | None = None,
                 foot_heights: Sequence[float] | None = None, crouch_head: str | None = None,
                 masked: Sequence[str] = (), phase_from: PhaseFrom = "contacts", gait_from: GaitFrom = "speed",
                 rotations: RotationsFrom = "auto", contacts: ContactsFrom = "auto",
                 contact_speed: Annotated[float, Bounds(low=0, low_open=True)] = 0.9,
                 contact_height: Annotated[float, Bounds(low=0, low_open=True)] = 0.08):
        self.fps, self.facing, self.feet, self.foot_heights = fps, facing, feet, foot_heights
        self.crouch_head, self.masked = crouch_head, masked
        self.phase_from, self.gait_from, self.rotations = phase_from, gait_from, rotations
        self.contacts, self.contact_speed, self.contact_height = contacts, contact_speed, contact_height

    def export(self, source: ExportSource, out_path: Path) -> ExportResult:
        """Write ``out_path`` (a ``.npz``) and the four ``.bin`` files next to it (joint names refer to
        the format's skeleton)."""
        out_path = Path(out_path)
        if out_path.suffix != ".npz":
            raise MotionhubError(f"pfnn exporter: the output must be a .npz file, got {out_path}")
        fmt = source.format
        contact_rule = None if self.contacts == "pfnn" else (self.contact_speed, self.contact_height)
        config = pfnn_config(fmt, self.fps, self.facing, self.feet, self.foot_heights, self.crouch_head, self.masked,
                             contact_rule)
        phase_from, gait_from, crouch_head = self.phase_from, self.gait_from, self.crouch_head
        if self.contacts == "format" and "contacts" not in fmt.slices:
            raise MotionhubError(f"{option('contacts')} format: format '{fmt.name}' of {source.dataset.describe()} "
                                 f"has no foot-contact features (its slices: {', '.join(fmt.slices)}); use "
                                 f"--contacts speed (or auto)")
        rotations_from = resolve_rotations(self.rotations, source)
        x_lay, y_lay = layouts(fmt.skeleton.num_joints, config, rotations=rotations_from != "none")

        parts: list[PFNNDatabase] = []
        skipped: dict[str, list[str]] = {}
        landings_from: dict[str, int] = {}
        cycles = 0
        for clip in source:
            try:
                database, clip_cycles, landing = clip_rows(clip, fmt, config, phase_from, gait_from, rotations_from,
                                                           self.contacts)
            except SkipClip as skip:
                skipped.setdefault(skip.reason, []).append(clip.id)
                continue
            parts.append(database)
            cycles += clip_cycles
            if landing:
                landings_from[landing] = landings_from.get(landing, 0) + 1
        if not parts:
            reasons = "; ".join(f"{reason}: {len(ids)}" for reason, ids in skipped.items()) or "no clips"
            hint = ""
            if phase_from == "contacts" and self.contacts != "speed" and any("lands" in r for r in skipped):
                hint = (f"; with foot contacts from speed and height ({option('contacts')} speed, thresholds "
                        f"{option('contact_speed')} and {option('contact_height')}) more feet may land")
            raise MotionhubError(f"pfnn exporter: no rows from split '{source.split}' of "
                                 f"{source.dataset.describe()} ({reasons}){hint}")
        database = concatenate_databases(parts)
        normalisation = pfnn_normalisation(database, x_lay, y_lay, masked_joints=config.masked_joints)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        save_database(out_path, database, normalisation)
        write_normalisation(out_path.parent, normalisation)
        return ExportResult(
            files=[out_path, *(out_path.parent / f"{name}.bin" for name in ("Xmean", "Xstd", "Ymean", "Ystd"))],
            clips=len(parts),
            skipped=skipped,
            details={
                "rows": len(database),
                "cycles": cycles,
                "X columns": f"{x_lay.size}: {group_list(x_lay)}",
                "Y columns": f"{y_lay.size}: {group_list(y_lay)}",
                "frame rate": f"{config.fps:g} fps (source {fmt.fps:g} fps)",
                "units": f"source units x {config.unit_scale:g} ({fmt.mm_per_unit:g} mm per source unit; "
                         f"PFNN units are about cm)",
                "phase": phase_from + (f", landings from {landing_summary(landings_from)}" if landings_from else ""),
                "contacts": contact_summary(self.contacts, config, fmt),
                "contact share": contact_share(database, y_lay, fmt.skeleton.joint_names, config.feet),
                "gait": gait_from + (f", crouch from {crouch_head}" if crouch_head else ""),
                "rotations": rotations_from,
            },
        )


def group_list(layout: ColumnLayout) -> str:
    return ", ".join(f"{group.name} {group.size}" for group in layout.groups)


def landing_summary(counts: dict[str, int]) -> str:
    """``speed and height (10 clips)``: where the exported clips' landings came from."""
    return ", ".join(f"{LANDING_SOURCES[source]} ({n} clip{'s' if n != 1 else ''})" for source, n in counts.items())


def contact_summary(choice: str, config: PFNNConfig, fmt: MotionFormat) -> str:
    """How Y's contacts were found, with the thresholds in metres and in the data's units."""
    if config.contact_speed is None:
        return f"{choice}: squared step below {config.contact_threshold:g} PFNN units² per {config.fps:g} fps frame"
    to_metres = PFNN_MM_PER_UNIT / 1000.0
    to_source = 1.0 / config.unit_scale
    speed, height = config.contact_speed, config.contact_height
    return (f"{choice}: speed below {speed * to_metres:g} m/s and height below {height * to_metres:g} m above "
            f"each joint's lowest point ({speed * to_source:g} units/s and {height * to_source:g} units of the "
            f"data, {fmt.mm_per_unit:g} mm per unit)")


def contact_share(database: PFNNDatabase, y_lay: ColumnLayout, names: Sequence[str], feet: Sequence[int]) -> str:
    """Share of the rows in which each foot joint is in contact: ``left_ankle 0.41, ...``."""
    share = database.Yun[:, y_lay["contacts"]].mean(axis=0)
    return ", ".join(f"{names[joint]} {value:.2f}" for joint, value in zip(feet, share))


# ---------------------------------------------------------------------- configuration


def pfnn_config(fmt: MotionFormat, fps: float, facing: Sequence[str] | None, feet: Sequence[str] | None,
                foot_heights: Sequence[float] | None, crouch_head: str | None, masked: Sequence[str],
                contact_rule: tuple[float, float] | None = None) -> PFNNConfig:
    """The :class:`PFNNConfig` for ``fmt``: options where given, else the format's skeleton.

    ``contact_rule``: (speed in m/s, height in m) of the speed-and-height contacts, converted to
    PFNN units; None keeps PFNN's rule.
    """
    skeleton = fmt.skeleton
    if skeleton is None:
        raise MotionhubError(f"format '{fmt.name}' has no skeleton; the pfnn exporter needs joint names")
    names = skeleton.joint_names
    if feet:
        if len(feet) % 2:
            raise MotionhubError(f"{option('feet')}: give the left foot joints, then as many right ones; "
                                 f"got {len(feet)} names")
        indices = joint_indices(names, feet, option("feet"))
        left_feet, right_feet = tuple(indices[: len(feet) // 2]), tuple(indices[len(feet) // 2 :])
    else:
        left_feet, right_feet = tuple(skeleton.feet_left), tuple(skeleton.feet_right)
    if not left_feet:
        raise MotionhubError(f"skeleton '{skeleton.name}' names no feet; give them with {option('feet')}: the "
                             f"left foot joints, then as many right ones")
    if facing:
        if len(facing) % 2:
            raise MotionhubError(f"{option('facing')}: give (left, right) joint pairs; got {len(facing)} names")
        indices = joint_indices(names, facing, option("facing"))
        pairs = tuple(zip(indices[::2], indices[1::2]))
    elif skeleton.face_joints:
        r_hip, l_hip, r_shoulder, l_shoulder = skeleton.face_joints
        pairs = ((l_hip, r_hip), (l_shoulder, r_shoulder))
    else:
        raise MotionhubError(f"skeleton '{skeleton.name}' names no facing joints; give (left, right) joint pairs "
                             f"with {option('facing')}")
    heights = tuple(foot_heights) if foot_heights else default_foot_heights(skeleton.name, len(left_feet))
    if len(heights) != len(left_feet):
        raise MotionhubError(f"{option('foot_heights')}: {len(heights)} values for {len(left_feet)} foot "
                             f"joint{'s' if len(left_feet) != 1 else ''} a side; give one planted height per foot "
                             f"joint of a side")
    return PFNNConfig(
        root=0,
        facing_pairs=pairs,
        left_feet=left_feet,
        right_feet=right_feet,
        foot_heights=heights,
        head=joint_indices(names, [crouch_head], option("crouch_head"))[0] if crouch_head else None,
        masked_joints=tuple(joint_indices(names, masked, option("masked"))),
        unit_scale=fmt.mm_per_unit / PFNN_MM_PER_UNIT,
        fps=fps,
        contact_speed=contact_rule[0] * PFNN_UNITS_PER_METRE if contact_rule else None,
        contact_height=contact_rule[1] * PFNN_UNITS_PER_METRE if contact_rule else None,
    )


def default_foot_heights(skeleton_name: str, per_side: int) -> tuple[float, ...]:
    """Planted heights of ``per_side`` foot joints a side (see ``PLANTED_FOOT_HEIGHTS``)."""
    measured = PLANTED_FOOT_HEIGHTS.get(skeleton_name, ())
    if per_side == len(measured):
        return measured
    if per_side == len(PFNN_FOOT_HEIGHTS):
        return PFNN_FOOT_HEIGHTS
    joints = f"{per_side} foot joint{'s' if per_side != 1 else ''} a side"
    raise MotionhubError(f"no planted foot heights known for {joints} of skeleton '{skeleton_name}' (there are "
                         f"defaults for {len(PFNN_FOOT_HEIGHTS)} a side only); give {option('foot_heights')}: "
                         f"{per_side} value{'s' if per_side != 1 else ''}, PFNN units (about cm)")


def joint_indices(names: Sequence[str], wanted: Sequence[str], option: str) -> list[int]:
    """Indices of ``wanted`` joint names; an unknown name is an error listing the joints."""
    try:
        return skeletons.joint_indices(names, wanted, option)
    except ValueError as exc:
        raise MotionhubError(str(exc)) from None


def resolve_rotations(choice: RotationsFrom, source: ExportSource) -> str:
    """``source``, ``swing`` or ``none`` for ``choice`` (see the module docstring)."""
    has_rest = hasattr(source.format.skeleton, "raw_offsets_array")
    if choice == "auto":
        return "source" if source.has_rotations else "swing" if has_rest else "none"
    if choice == "source" and not source.has_rotations:
        raise MotionhubError(f"{option('rotations')}: {source.dataset.describe()} gives no joint rotations; "
                             f"use swing (from positions) or none")
    if choice == "swing" and not has_rest:
        raise MotionhubError(f"{option('rotations')}: skeleton '{source.format.skeleton.name}' has no rest offsets "
                             f"to derive rotations from; use none")
    return choice


# ------------------------------------------------------------------------------- clips


def clip_rows(clip: SourceClip, fmt: MotionFormat, config: PFNNConfig, phase_from: PhaseFrom, gait_from: GaitFrom,
              rotations_from: str, contacts: ContactsFrom = "auto") -> tuple[PFNNDatabase, int, str | None]:
    """PFNN rows of one clip, its number of cycles and where its landings came from (``format``,
    ``speed`` or ``pfnn``; None with phase labels); raises :class:`SkipClip` when it has no cycle."""
    positions = np.asarray(clip.positions, dtype=np.float64)
    frames = len(resample_times(len(positions), fmt.fps, config.fps))
    if frames < 2 * config.window + 2:
        raise SkipClip(f"shorter than {2 * config.window + 2} frames at {config.fps:g} fps")
    landing_contacts, landing = None, None
    if phase_from == "contacts":
        landing_contacts = landing_features(clip, fmt, contacts)
        landing = "format" if landing_contacts is not None else "pfnn" if contacts == "pfnn" else "speed"
    prepared = prepare_clip(
        positions,
        fmt.fps,
        config,
        rotations=clip_rotations(clip, fmt, config, rotations_from),
        phase=required_label(clip, "phase", f"{option('phase_from')} labels") if phase_from == "labels" else None,
        gait=gait_labels(clip) if gait_from == "labels" else None,
        phase_contacts=landing_contacts,
    )
    if phase_from == "labels" and "footsteps" in clip.labels:
        steps = [Footstep(int(start), int(middle) or None, bool(skip)) for start, middle, skip in clip.labels["footsteps"]]
        cycles = footstep_cycles(steps, fmt.fps, config.fps)
    else:
        cycles = cycles_from_phase(prepared.phase)
    if len(cycles) == 0:
        if phase_from == "labels":
            raise SkipClip("no phase cycle in its labels")
        raise SkipClip(f"the right foot lands fewer than twice (landings from {LANDING_SOURCES[landing]})")
    cycles = complete_cycles(cycles, prepared.num_frames, config)
    if len(cycles) == 0:
        raise SkipClip(f"no complete phase cycle {config.window} frames from both ends")
    return build_database(prepared, cycles, config), len(cycles), landing


def landing_features(clip: SourceClip, fmt: MotionFormat, contacts: ContactsFrom) -> np.ndarray | None:
    """The layout's contact features to find the clip's landings in, or None to find them in the
    clip's own contacts: with ``format`` always, with ``auto`` and ``pfnn`` where they fire
    (:func:`features_fire`)."""
    if contacts == "speed":
        return None
    features = layout_contacts(clip, fmt)
    if contacts != "format" and features is not None and not features_fire(features):
        return None
    return features


def features_fire(features: np.ndarray) -> bool:
    """Whether each foot of (T, 2 K) 0/1 contacts (left feet, then right) is in contact in at least
    :data:`FIRING_SHARE` of the frames (a foot is in contact where any of its joints is)."""
    contact = np.asarray(features) > 0.5
    half = contact.shape[1] // 2
    return bool(min(contact[:, :half].any(axis=1).mean(), contact[:, half:].any(axis=1).mean()) >= FIRING_SHARE)


def clip_rotations(clip: SourceClip, fmt: MotionFormat, config: PFNNConfig, rotations_from: str) -> np.ndarray | None:
    if rotations_from == "source":
        return clip.rotations
    if rotations_from == "swing":
        skeleton = fmt.skeleton
        return swing_rotations(clip.positions, skeleton.parents, skeleton.raw_offsets_array(), config.facing_pairs)
    return None


def required_label(clip: SourceClip, name: str, needed_by: str) -> np.ndarray:
    if name not in clip.labels:
        have = ", ".join(clip.labels) or "none"
        raise MotionhubError(f"clip '{clip.id}' has no {name} labels (labels it has: {have}); {needed_by} needs "
                             f"them for every clip")
    return clip.labels[name]


def gait_labels(clip: SourceClip) -> np.ndarray:
    """(T, 6) gait weights from the clip's ``gait`` labels (PFNN's 8 columns are merged)."""
    gait = required_label(clip, "gait", f"{option('gait_from')} labels")
    if gait.shape[-1] == 8:
        return merge_gait_labels(gait)
    if gait.shape[-1] != len(GAIT_NAMES):
        raise MotionhubError(f"clip '{clip.id}': gait labels have {gait.shape[-1]} columns; expected PFNN's 8 "
                             f"or {len(GAIT_NAMES)} ({', '.join(GAIT_NAMES)})")
    return gait


def layout_contacts(clip: SourceClip, fmt: MotionFormat) -> np.ndarray | None:
    """(T, K) foot contacts of the layout's ``contacts`` slice (left feet, then right), or None."""
    if "contacts" not in fmt.slices:
        return None
    return np.asarray(clip.features, dtype=np.float64).reshape(len(clip.features), -1)[:, fmt.slice("contacts")]


def swing_rotations(positions: np.ndarray, parents: Sequence[int], rest_directions: np.ndarray,
                    facing_pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    """Global joint rotations (T, J, 3, 3) from positions (T, J, 3) alone (see the module docstring).

    Joint j > root: the shortest arc from ``rest_directions[j]`` (J, 3) to its bone
    ``p_j - p_parent``, identity where either is zero. Root: the y-rotation turning +z
    onto the facing of the frame, ``across x up`` with across the summed left-minus-right
    vectors of ``facing_pairs``.
    """
    positions = np.asarray(positions, dtype=np.float64)
    parents = np.asarray(parents)
    rest = np.broadcast_to(np.asarray(rest_directions, dtype=np.float64), positions.shape)
    bones = positions - positions[:, np.maximum(parents, 0)]
    rotations = quat_to_matrix(quat_between(rest, bones))
    defined = (np.linalg.norm(rest, axis=-1) > 0) & (np.linalg.norm(bones, axis=-1) > 0)
    rotations[~defined] = np.eye(3)
    across = sum(positions[:, left] - positions[:, right] for left, right in facing_pairs)
    forward = np.cross(across, np.array([0.0, 1.0, 0.0]))
    forward /= np.linalg.norm(forward, axis=-1, keepdims=True)
    fx, fz = forward[:, 0], forward[:, 2]
    zero, one = np.zeros_like(fx), np.ones_like(fx)
    yaw = np.stack([np.stack([fz, zero, fx], -1), np.stack([zero, one, zero], -1), np.stack([-fx, zero, fz], -1)], -2)
    rotations[:, parents < 0] = yaw[:, None]
    return rotations
