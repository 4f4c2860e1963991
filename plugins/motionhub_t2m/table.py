"""The text-to-motion table as a protocol (``motionhub eval RUN_DIR --protocol t2m``, a recipe's
``eval.protocols: [t2m]``) and as text: the papers' columns, units, split, repetitions, which
statistics normalised what, and every file's checksum."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

from motionhub.api import Bounds, Protocol

COLUMNS = (("top1", "Top-1 ↑"), ("top2", "Top-2 ↑"), ("top3", "Top-3 ↑"), ("fid", "FID ↓"),
           ("mm_dist", "MM-Dist ↓"), ("diversity", "Diversity →"))
UNITS = ("R-precision Top-k: share of captions whose own motion is among the k nearest of 32 (0-1); "
         "FID: squared distance in the evaluator's 512-d embedding space; MM-Dist and Diversity: "
         "Euclidean distance in that space (Diversity: closer to the real motion's is better)")


class T2MProtocol(Protocol):
    """The text-to-motion table of a tokenizer's reconstructions: R-precision top-1/2/3, FID, MM-Dist, Diversity.

    evaluator_dir: folder of the evaluator's files (finest.tar, mean.npy/std.npy, our_vab_*); null = $MOTIONHUB_EVALUATOR_DIR.
    split:         split evaluated; the papers report test.
    repeats:       repetitions (each re-draws order, captions and crops); the papers report 20.
    seed:          seed of the draws.
    batch_size:    clips per tokenizer and evaluator batch; the figures do not depend on it.
    """

    def __init__(self, evaluator_dir: Optional[str] = None, split: Literal["train", "val", "test"] = "test",
                 repeats: Annotated[int, Bounds(low=1)] = 20, seed: int = 0,
                 batch_size: Annotated[int, Bounds(low=1)] = 256):
        from .files import evaluator_dir as find_folder

        # where the files are is settled now, so a recipe that names no usable folder fails before training
        self.evaluator_dir = str(find_folder(evaluator_dir))
        self.split, self.repeats, self.seed, self.batch_size = split, repeats, seed, batch_size

    def evaluate(self, run, device: str | None = None, on_repeat=None) -> dict[str, Any]:
        from .evaluate import evaluate_t2m

        return evaluate_t2m(run, self.evaluator_dir, split=self.split, repeats=self.repeats, seed=self.seed,
                            device=device, batch_size=self.batch_size, on_repeat=on_repeat)

    def render(self, result: dict[str, Any]) -> str:
        return "\n".join([table(result), *summary_lines(result)])


def cell(entry: dict | None) -> str:
    """``0.511±.003``, the papers' style; ``-`` for a figure the row does not have."""
    if entry is None:
        return "-"
    ci = f"{entry['ci95']:.3f}"
    return f"{entry['mean']:.3f}±{ci[1:] if ci.startswith('0.') else ci}"


def table(result: dict) -> str:
    """The paper table as text: real motion, the reconstruction, and the published real figures where known."""
    rows = result["table"]
    lines = [("", *(label for _, label in COLUMNS)),
             ("Real motion", *(cell(rows["real"].get(key)) for key, _ in COLUMNS)),
             ("Reconstruction", *(cell(rows["reconstruction"].get(key)) for key, _ in COLUMNS))]
    published = result.get("published_real")
    if published:
        lines.append(("Real (published)", *(f"{published[key]:.3f}" if key in published else "-"
                                            for key, _ in COLUMNS)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    title = (f"text-to-motion evaluation: {result['dataset']} {result['split']} split, {result['repeats']} "
             f"repetitions (mean ± 1.96·σ/√{result['repeats']}), step {result['run']['step']}")
    if result.get("self_trained"):
        title += f"\n{result['self_trained']['note']}"
    body = ["  ".join([line[0].ljust(widths[0]), *(v.rjust(w) for v, w in zip(line[1:], widths[1:]))]).rstrip()
            for line in lines]
    return "\n".join([title, *body])


def summary_lines(result: dict) -> list[str]:
    items = result["items"]
    norm = result["normalisation"]
    skipped = ", ".join(f"{count} {reason}" for reason, count in items["skipped"].items()) or "none"
    trained = result.get("self_trained")
    lines = [f"evaluator: trained here ({trained['run']}, step {trained['step']}); NOT comparable with published "
             f"figures"] if trained else []
    lines += [
        f"units: {UNITS}",
        f"split: {result['split']} ({items['clips_in_split']} clips -> {items['items']} items: "
        f"{items['whole_clips']} whole clips, {items['sub_clips']} captioned sub-clips; skipped: {skipped}); "
        f"{items['pairs_per_repetition']} caption-motion pairs per repetition in groups of "
        f"{result['settings']['group']}; {result['repeats']} repetitions, seed {result['seed']}",
        f"normalisation: tokenizer input: {norm['tokenizer_input']}; evaluator input: {norm['evaluator_input']}; "
        f"reconstruction: {norm['reconstruction']}",
    ]
    for role, entry in result["files"].items():
        flag = f" ({'published file' if entry['published_sha256'] == 'same' else 'NOT the published file'})" \
            if "published_sha256" in entry else ""
        lines.append(f"{role}: {entry['path']} sha256 {entry['sha256']}{flag}")
    return lines
