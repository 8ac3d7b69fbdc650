"""The terminal summary table: per model, the headline figures of the tiers that ran and its gates."""
from __future__ import annotations

from maskpro_eval.gating.gates import format_number


def _fid(q: dict) -> str:
    text = ("" if q.get("fid") is None else
            f"{format_number(q['fid'], 4)} (N={q.get('fid_n')}{', biased' if q.get('fid_biased') else ''})")
    if q.get("kid_mean") is not None:
        text += f" / KID {format_number(q['kid_mean'], 3)}"
    pr = q.get("prdc") or {}
    if pr.get("precision") is not None:
        text += (" / " if text else "") + (f"P {pr['precision']:.2f} R {pr['recall']:.2f} (N={pr['n_fake']}"
                                           f"{', small N' if pr.get('small_n') else ''})")
    return text


def _latency(m: dict) -> str:
    lat = m.get("cpu_forward_latency") or m.get("latency")
    if not lat:
        return ""
    text = f"{format_number(lat['median_ms'], 3)} ms"
    if lat.get("iqr_ms") is not None:
        text += f" +-{format_number(lat['iqr_ms'] / 2, 2)}"
    return text + (" CONTENDED" if lat.get("contended") else "")


def model_rows(results: dict) -> list[tuple[str, ...]]:
    """Header and one row per model: model, role, N:M compliance, sparsity, FID/KID, latency, gates."""
    gates_by_model: dict[str, list[dict]] = {}
    for g in results.get("gates", []):
        gates_by_model.setdefault(g["model"], []).append(g)
    ungated = {u["model"] for u in results.get("ungated", [])}
    rows = [("model", "role", "N:M compl.", "sparsity", "FID / KID / prec. rec.", "latency", "gates")]
    for name, m in results.get("models", {}).items():
        nm, sp = m.get("nm", {}), m.get("sparsity", {})
        gs = gates_by_model.get(name, [])
        failed = [g["metric"] for g in gs if not g["passed"]]
        verdict = (f"FAIL {', '.join(failed)}" if failed else f"PASS {len(gs)}/{len(gs)}" if gs
                   else "ungated" if name in ungated or m.get("role", "model") == "model" else "-")
        compl = "" if nm.get("compliance") is None else f"{nm['compliance']:.4f} ({nm.get('n')}:{nm.get('m')})"
        rows.append((name, m.get("role", "model"), compl,
                     "" if sp.get("masked_layers") is None else f"{sp['masked_layers']:.4f}",
                     _fid(m.get("quality", {})), _latency(m), verdict))
    return rows


def model_table(results: dict) -> list[str]:
    """:func:`model_rows` as the lines of a fixed-width table."""
    rows = model_rows(results)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def loader_notes(results: dict) -> list[str]:
    """What the loader decided, per model: format, resolved base, remapped class paths, mask disagreements."""
    lines = []
    for name, m in results.get("models", {}).items():
        notes = list(m.get("notes", []))
        dis = {k: v for k, v in (m.get("mask_disagreements") or {}).items() if v}
        if dis:
            worst = max(dis, key=dis.get)
            notes.append(f"current_mask disagrees with the final mask in {len(dis)} layer(s) "
                         f"(worst {worst}: {dis[worst]:.2%} of entries)")
        if notes:
            lines.append(f"{name} ({m.get('format', '?')}):")
            lines += [f"  - {n}" for n in notes]
    return lines


def reference_lines(results: dict) -> list[str]:
    """The FID reference set of the run and what was done to it (conversions, assumptions)."""
    proto = results.get("protocol", {})
    if not proto.get("reference"):
        return []
    lines = [f"reference: {proto['reference']} (N={proto.get('reference_n')}, {proto.get('reference_kind')})"]
    return lines + [f"  - {n}" for n in proto.get("reference_notes", [])]
