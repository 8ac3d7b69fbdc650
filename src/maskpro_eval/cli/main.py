"""Console command ``maskpro-eval``: ``inspect`` a checkpoint, ``run`` the suite with presets."""
from __future__ import annotations

import argparse
import json
import sys


def _inspect(args) -> int:
    from maskpro_eval.errors import MaskProEvalError
    from maskpro_eval.checkpoints import describe_checkpoint, load_checkpoint
    from maskpro_eval.analysis.nm import parse_nm
    from maskpro_eval.checkpoints.zoo import resolve_model_spec

    path = resolve_model_spec(args.path)
    try:
        info = describe_checkpoint(path)
    except MaskProEvalError as exc:
        print(f"maskpro-eval inspect: {exc}", file=sys.stderr)
        return 2
    out = {"path": str(path), "description": info}
    try:
        loaded = load_checkpoint(path, base_model=resolve_model_spec(args.base_model) if args.base_model else None,
                                 trust_pickle=args.trust_pickle)
    except MaskProEvalError as exc:
        from maskpro_eval.errors import BaseModelNotFoundError, PickleNotTrustedError
        out["loadable"] = False
        out["load_error"] = str(exc)
        # a file that only needs an option the user can give is not a failure of inspect
        out["fixable_by_options"] = isinstance(exc, (PickleNotTrustedError, BaseModelNotFoundError))
    else:
        from maskpro_eval.analysis.sparsity import analyze_checkpoint
        result = analyze_checkpoint(loaded, parse_nm(args.nm) if args.nm else None, args.exclude_layers)
        rep, n, m = result.report, result.n, result.m
        out.update({
            "loadable": True, "format": loaded.format,
            "parameters": {"total": rep.parameters_total, "nonzero": rep.parameters_nonzero},
            "global_sparsity": rep.global_sparsity, "masked_layers_sparsity": rep.masked_layers_sparsity,
            "masked_layer_count": rep.masked_layer_count, "masked_layers_from": result.masked_layers_from,
            "nm_judged": f"{n}:{m}", "nm_declared": None if loaded.nm is None else f"{loaded.nm[0]}:{loaded.nm[1]}",
            "nm_compliance_row": rep.nm_compliance, "nm_compliance_channel": rep.nm_compliance_channel,
            "best_fit_pattern": rep.best_fit, "masks_known": len(loaded.masks),
            "notes": loaded.notes,
        })
    needed = []
    if info.get("needs_trust_pickle") and not args.trust_pickle:
        needed.append("--trust-pickle")
    if info.get("needs_base_model") and not args.base_model:
        needed.append("--base-model PATH")
    ok = out.get("loadable") or (out.get("fixable_by_options") and bool(needed))
    out["options_needed"] = needed
    if args.json:
        print(json.dumps(out, indent=2, default=str))
        return 0 if ok else 1
    for k, v in info.items():
        print(f"{k + ':':<22}{v if not isinstance(v, (list, tuple)) else ', '.join(map(str, v[:40])) + (' ...' if len(v) > 40 else '')}")
    if needed:
        print(f"{'options needed:':<22}{' '.join(needed)}")
    elif out.get("loadable"):
        print(f"{'options needed:':<22}none beyond those given")
    else:
        print(f"{'options needed:':<22}none would help: the file itself cannot be loaded (see why)")
    if out.get("loadable"):
        print(f"{'format:':<22}{out['format']}")
        print(f"{'parameters:':<22}{out['parameters']['total']:,} total, {out['parameters']['nonzero']:,} non-zero")
        print(f"{'sparsity:':<22}global {out['global_sparsity']:.4f}, masked layers {out['masked_layers_sparsity']:.4f} "
              f"({out['masked_layer_count']} layers, from the {out['masked_layers_from']})")
        print(f"{'N:M:':<22}judged {out['nm_judged']} (declared {out['nm_declared']}), compliance row-major "
              f"{out['nm_compliance_row']:.4f}, channel {out['nm_compliance_channel']:.4f}, best fit {out['best_fit_pattern']}")
        for note in out["notes"]:
            print(f"{'note:':<22}{note}")
        return 0
    if ok:
        print(f"{'loads:':<22}with {' '.join(needed)} (add them to the pytest or maskpro-eval command)")
        print(f"{'why:':<22}{out['load_error']}")
        return 0
    print(f"{'loads:':<22}no")
    print(f"{'why:':<22}{out['load_error']}")
    return 1


def _fid_stats(args) -> int:
    """Reference statistics of an image set under one FID protocol -> OUT.npz (mu, sigma, n, meta)."""
    from pathlib import Path

    from maskpro_eval.errors import MaskProEvalError
    from maskpro_eval.metrics.inception import get_extractor
    from maskpro_eval.metrics.reference import load_reference

    try:
        ext = get_extractor(args.inception_weights, device=args.device, protocol=args.fid_protocol)
        ref = load_reference(args.images, ext, split=args.split, batch_size=args.batch_size,
                             use_cache=not args.no_cache, store_features=False, progress=not args.no_progress)
        if ref.kind == "stats-npz":
            raise MaskProEvalError(f"{args.images}: already mu/sigma statistics; expected images (an .npz of "
                                   "uint8 images, an image folder or cifar-10-batches-py). Fix: pass the images")
        out = ref.save_npz(Path(args.out))
    except MaskProEvalError as exc:
        print(f"maskpro-eval fid-stats: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}: mu {ref.mu.shape}, sigma {ref.sigma.shape}, N={ref.n}, protocol {ref.protocol}, "
          f"Inception sha256 {ref.weights_sha256[:12]}...")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="maskpro-eval", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("inspect", help="show a checkpoint's format, keys, sizes, N:M pattern and the options it needs")
    p.add_argument("path", help="checkpoint file or folder (or demo:NAME)")
    p.add_argument("--base-model", default=None)
    p.add_argument("--trust-pickle", action="store_true")
    p.add_argument("--nm", default=None)
    p.add_argument("--exclude-layers", action="append", default=None)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_inspect)
    p = sub.add_parser("fid-stats", help="write FID reference statistics (mu, sigma, n, protocol) of an image set")
    p.add_argument("images", help=".npz of uint8 images, image folder, or cifar-10-batches-py folder")
    p.add_argument("out", help="output .npz (pytorch-fid compatible keys mu/sigma, plus n and meta)")
    p.add_argument("--fid-protocol", choices=("standard", "pytorch-fid", "clean"), default="standard")
    p.add_argument("--split", choices=("train", "test", "all"), default="train", help="CIFAR-10 split")
    p.add_argument("--inception-weights", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--no-cache", action="store_true", help="do not read/write the statistics cache")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_fid_stats)
    try:
        from maskpro_eval.cli.run import add_run_parser
    except ImportError:
        pass
    else:
        add_run_parser(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
