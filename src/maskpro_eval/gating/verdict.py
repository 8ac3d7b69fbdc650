"""A run's verdict from its gates, and which (model, tier) pairs ended without any gate.

``pass``: every gate passed and every model that a tier evaluated met at least one gate there.
``error``: a test errored (an exception, a failed setup): the run's figures cannot be trusted, whatever
the gates say. ``fail``: a gate (or a test's own check) failed. ``ungated``: nothing failed, but some model ended a tier with no gate applied,
so the run did not judge it (``--require-gates`` makes that a failing exit). One rule for the JSON,
the Markdown summary, the HTML report and the terminal.
"""
from __future__ import annotations

#: Tiers whose tests judge a model (``gpu``/``bench`` measure speed; their gates are opt-in).
GATED_TIERS = ("quick", "full", "compare", "workflow")


#: The "model" of tests that judge no single model (a comparison, a baseline check).
RUN = "(run)"


def ungated(ran: list[dict], gates: list[dict]) -> list[dict]:
    """``ran``: ``{"model", "tier"}`` of every evaluation test that ran; the pairs with no gate recorded.

    A model under test is ungated in a tier when none of its tests there recorded a gate; a tier whose
    tests judge no single model (compare mode) is ungated when it recorded no gate at all."""
    gated = {(g["model"], g.get("tier")) for g in gates}
    gated_tiers = {g.get("tier") for g in gates}
    seen, out = set(), []
    for r in ran:
        key = (r["model"], r["tier"])
        if r["model"] == RUN and r["tier"] in gated_tiers:
            continue
        if r["tier"] in GATED_TIERS and key not in gated and key not in seen:
            seen.add(key)
            out.append({"model": r["model"], "tier": r["tier"]})
    return out


def verdict(gates: list[dict], ungated_pairs: list[dict], problems: list[dict] = ()) -> str:
    """``problems``: ``{"kind": "error"|"failed", ...}`` of tests that failed outside a gate."""
    if any(p["kind"] == "error" for p in problems):
        return "error"
    if any(not g["passed"] for g in gates) or problems:
        return "fail"
    return "ungated" if ungated_pairs or not gates else "pass"


def ungated_message(pairs: list[dict]) -> str:
    names = ", ".join(f"{p['model']} ({p['tier']})" for p in pairs)
    return (f"UNGATED: no gate judged {names}: the run cannot fail for them. Set thresholds (--thresholds, "
            f"--max-fid, ...) or add --require-gates to make this a failing exit")
