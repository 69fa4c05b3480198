"""What the page says about a job and a model, in a photographer's words (figures kept beside them).

The thresholds are the measures' own: a CIEDE2000 difference of 1 is the smallest colour difference
an eye notices side by side, 2-3 one a careful look finds; back-projection PSNR (the output shrunk back
to the original's size, against the original) above 40 dB is a difference no one sees, under 30 dB one
that shows.
"""

from __future__ import annotations

from typing import Any


def fidelity_lines(figures: dict[str, Any], guard: bool) -> list[str]:
    """Sentences for engine/fidelity.py's figures (``colour_shift_mean``/``_max`` in dE00,
    ``backprojection_psnr_db``, ``anchor_max_correction`` 0..1 when the run recorded it)."""
    lines = []
    if "unmeasured" in figures:
        lines.append(f"Not measured: {figures['unmeasured']}.")
    if "colour_shift_mean" in figures:
        mean, most = figures["colour_shift_mean"], figures["colour_shift_max"]
        if mean < 1:
            verdict = "no colour change you could see"
        elif mean < 2.5:
            verdict = "a slight colour change, visible only side by side"
        else:
            verdict = "a visible colour change"
        if figures.get("colour_shift_against") == "noisy input":
            # measured against the noisy original, the noise removed counts as a shift (1-3 dE for a
            # correct denoise): say so rather than alarm
            verdict += "; measured against the noisy original, so the noise removed counts in it"
        lines.append(f"Colours: {verdict} (average shift {mean:.2f} ΔE; 1 is the smallest difference an eye "
                     f"notices). The largest, in one small area: {most:.1f} ΔE.")
    if "backprojection_psnr_db" in figures:
        db = figures["backprojection_psnr_db"]
        if db >= 40:
            verdict = "the same picture: nothing was invented that contradicts the original"
        elif db >= 30:
            verdict = "very close to the original; fine detail differs slightly"
        else:
            verdict = "noticeably different from the original"
        lines.append(f"Shrunk back to the original's size, the result is {verdict} ({db:.1f} dB).")
    if "anchor_max_correction" in figures:
        moved = figures["anchor_max_correction"] * 100
        lines.append(f"The colour guard pulled local colours back by at most {moved:.1f}% of full scale "
                     f"where the network had drifted." if moved >= 0.05 else
                     "The colour guard had nothing to correct.")
    elif guard:
        lines.append("The colour guard was on: every small area of the result keeps the original's average "
                     "colour (by how much it corrected this photo is not kept with the job).")
    else:
        lines.append("The colour guard was off for this recipe: colours were not held to the original.")
    return lines


def quality_lines(metrics: dict[str, Any]) -> list[str]:
    """The manifest's measured quality (``[models.metrics.SET]`` tables), one line per test set."""
    lines = []
    for name, table in metrics.items():
        if not isinstance(table, dict):
            continue
        if "psnr_y" in table and "bicubic_psnr_y" in table:
            gain = table["psnr_y"] - table["bicubic_psnr_y"]
            lines.append(f"{name}: {table['psnr_y']:.2f} dB, {gain:+.2f} dB over a plain bicubic enlargement")
            continue
        figures = [f"{k.replace('_', ' ')} {v:g}" for k, v in table.items()
                   if isinstance(v, int | float) and not isinstance(v, bool) and k != "images"][:4]
        if figures:
            images = f" ({table['images']} images)" if "images" in table else ""
            lines.append(f"{name}{images}: {', '.join(figures)}")
    return lines
