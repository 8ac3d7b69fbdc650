"""Short table of whatever results a GPU suite stage left in a folder (printed last by run_gpu_suite.sh)."""
from __future__ import annotations

import json
import sys
from pathlib import Path


def _load(p: Path):
    try:
        return json.loads(p.read_text())
    except Exception:  # noqa: BLE001
        return None


def main(folder: str) -> None:
    d = Path(folder)
    lines = []
    env = _load(d / "env.json")
    if env:
        di = env.get("device_info", {})
        lines.append(f"device {di.get('device')} | torch {di.get('torch')} cuda {di.get('cuda')} | diffusers "
                     f"{di.get('diffusers')} | bf16 matmul {env.get('bf16_matmul', {}).get('tflops', 0):.0f} TFLOP/s | "
                     f"fp32 strict {env.get('fp32_matmul_strict', {}).get('tflops', 0):.1f} | copy "
                     f"{env.get('copy_bandwidth_gbs', 0):.0f} GB/s | flops/img-step {env['flops']['flops'] / 1e9:.2f} G")
    for name in ("precision_b1024.json", "precision_b2048.json"):
        pr = _load(d / name)
        if pr:
            for r in pr["rows"]:
                if "error" in r:
                    lines.append(f"{name[:-5]} {r['mode']:<22} ERROR {r['error'][:90]}")
                else:
                    lines.append(f"{name[:-5]} {r['mode']:<22} {r['img_steps_per_s']:>9.0f} img-steps/s "
                                 f"{r['tflops']:>6.1f} TFLOP/s first call {r['first_call_s']:.1f}s")
    recs = _load(d / "forward_records_gpu.json")
    if recs:
        for r in recs:
            if r.get("median_ms"):
                lines.append(f"forward {r['model']:<6} B={r['batch']:<5} {r['median_ms']:8.2f} ms {r['images_per_s']:9.0f} "
                             f"img/s {r.get('tflops') or 0:6.1f} TFLOP/s peak {r.get('peak_memory_mib') or 0:8.0f} MiB")
    sp = _load(d / "sparse24_m24.json")
    if sp:
        s, e = sp["summary"], sp["end_to_end"]
        lines.append(f"2:4 B={sp['batch']}: eligible FLOP share {s['eligible_flop_share']:.3f} Amdahl(2x) "
                     f"{s['amdahl_bound_2x']:.3f} | layer graph speedup geomean {s['layer_speedup_graph_geomean']:.2f} "
                     f"[{s['layer_speedup_graph_min']:.2f}..{s['layer_speedup_graph_max']:.2f}] gemm "
                     f"{s['layer_speedup_gemm_graph_geomean']:.2f} eager {s['layer_speedup_eager_geomean']:.2f} | e2e "
                     f"graph {e['speedup_graph']:.3f} eager {e['speedup_eager']:.3f} predicted "
                     f"{s['e2e_predicted_from_layers']:.3f}")
    an = _load(d / "anchor.json")
    if an:
        lines.append(f"anchor DDIMPipeline fp32: {an['images_per_s']:.2f} img/s on {an['n']} -> 50k in "
                     f"{an['extrapolated_50k_minutes']:.1f} min")
    ref = _load(d / "reference.json")
    if ref:
        lines.append(f"reference seed1 n={ref['n']}: sampling {ref['sampling_gpu_s']:.1f}s features "
                     f"{ref['features_img_per_s_strict_fp32']:.0f} img/s strict fp32")
        tc = ref.get("tf32_check")
        if tc:
            lines.append(f"  tf32 check n={tc['n']}: strict {tc['img_per_s_strict']:.0f} img/s, tf32 {tc['img_per_s_tf32']:.0f}"
                         f" img/s, feature rel diff {tc['feature_rel_diff_tf32_vs_strict']:.2e}, FID rel diff "
                         f"{tc['fid_rel_diff']:.2e}, rerun max diff {tc['strict_rerun_max_abs_diff']:.1e}")
    for name in ("fast50k", "fast50k_s3"):  # session 1 (call2) and session 2 (s3) timed runs
        f50 = _load(d / f"{name}.json")
        if f50:
            wall = (_load(d / f"{name}_wall.json") or {}).get("process_wall_s")
            wall = "n/a" if wall is None else f"{wall:.1f}s"
            lines.append(f"{name} {f50['num_samples']} x {f50['steps']} steps {f50['dtype']} B={f50['batch_size']}: "
                         f"process wall {wall} (main {f50['wall_seconds']:.1f}s, "
                         f"warm-up/compile {f50['warmup_seconds_rank0']:.1f}s, work {f50['work_seconds']:.1f}s: "
                         f"sampling GPU {f50['rank0_sampling_gpu_s']:.1f}s, features GPU "
                         f"{f50['rank0_features_gpu_s']:.1f}s), FID {f50['fid']} ({f50['fid_seconds']:.1f}s)")
    prof = _load(d / "profile_compile_b1024.json")
    if prof:
        shares = ", ".join(f"{k.split(' ')[0]} {v:.1%}" for k, v in prof["kinds_share"].items())
        lines.append(f"profile B={prof['batch']}: {prof['gpu_us_per_call'] / 1e3:.1f} ms GPU per call ({shares})")
    for f in sorted(d.glob("sweep_*.json")):
        r = _load(f)
        if r:
            lines.append(f"sweep {r['variant']:<28} B={r['batch']:<5} compile {r['compile_s']:5.1f}s "
                         f"{r['img_steps_per_s']:>8.0f} img-steps/s (whole batch {r['img_steps_per_s_whole_batch']:.0f})")
    for f in sorted(d.glob("trained_fidelity*.json")):
        tf = _load(f)
        for ref, t in ((tf or {}).get("fid_tables") or {}).items():
            diffs = "; ".join(f"{k[:-len('_minus_fp32_same_seed')]} {[round(v, 4) for v in t[k]]}"
                              for k in t if k.endswith("_minus_fp32_same_seed"))
            lines.append(f"{f.stem} vs {ref}: fp32 seed std {t['fp32_seed_std']:.4f} | minus fp32: {diffs}")
    inc = _load(d / "inception_speed.json")
    for r in (inc or {}).get("rows", []):
        lines.append(f"inception {r['mode']:<28} {r['img_per_s']:7.0f} img/s rel diff {r['rel_feature_diff_vs_strict']:.1e}")
    for name in ("stdpath_a.json", "stdpath_b.json"):
        s = _load(d / name)
        if s:
            lines.append(f"{name[:-5]}: made {s['samples_made_this_call']} in {s['sampling_s_this_call']:.1f}s "
                         f"({s['sampling_img_per_s'] or 0:.2f} img/s) complete={s['complete']} features "
                         f"{s.get('features_img_per_s', 0) or 0:.0f} img/s")
    fi = _load(d / "fidelity.json")
    if fi:
        lines.append(f"fidelity n={fi['n_same_seeds']}: FID fp32 {fi['fid_fp32_standard']:.4f} bf16 {fi['fid_bf16_fast']:.4f}"
                     f" | subsets({fi['subset_n']}) fp32 std {fi['fp32_spread_std_over_subsets']} max|diff| "
                     f"{fi['max_abs_subset_diff']} | bf16 sets of n {fi['bf16_disjoint_sets_of_n']}")
        for k, v in fi.get("pixels_vs_fp32_standard", {}).items():
            lines.append(f"  pixels {k}: identical {v['identical_fraction']:.4f}, mean|d| {v['mean_abs_diff']:.3f}, "
                         f"max {v['max_abs_diff']}, identical images {v['images_identical']}/{v['n']}")
    for stage in ("x2a", "x2b"):
        one, two = _load(d / f"{stage}_1gpu.json"), _load(d / f"{stage}_2gpu.json")
        for lab, r in (("1gpu", one), ("2gpu", two)):
            if r:
                lines.append(f"{stage} {lab}: {r['num_samples']} samples {r['throughput_img_per_s']:.1f} img/s (work "
                             f"{r['work_seconds']:.1f}s, warm-up {r['warmup_seconds_rank0']:.1f}s) FID {r['fid']} sha "
                             f"{r['features_sha256'][:12]}")
        if one and two:
            lines.append(f"{stage} scaling 2 vs 1 GPU: {two['throughput_img_per_s'] / one['throughput_img_per_s']:.3f}x; "
                         f"features identical: {one['features_sha256'] == two['features_sha256']}; FID equal: "
                         f"{one['fid'] == two['fid']}")
    steps = d / "steps.txt"
    if steps.is_file():
        lines.append("steps: " + " | ".join(steps.read_text().split("\n")))
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
