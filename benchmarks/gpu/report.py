"""Puts puzzle_cuda_check's JSON beside the PyTorch anchor's and prints one table; with --md,
also writes it as Markdown with the date, card, driver and commit (for benchmarks/results/)."""
import argparse
import datetime
import json
import math
import os
import re


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", required=True, action="append", help="puzzle_cuda_check JSON (repeatable: the parts)")
    ap.add_argument("--torch")
    ap.add_argument("--md")
    ap.add_argument("--commit", default="")
    ap.add_argument("--smi", default="")
    ap.add_argument("--kernels", help="puzzle_cuda_check --kernels JSON: kernel breakdowns, beside PyTorch's")
    a = ap.parse_args()
    parts = [json.load(open(p)) for p in a.ours if os.path.exists(p)]
    if not parts:
        raise SystemExit("report.py: none of the --ours files exists")
    ours = dict(parts[0])
    ours["results"] = [r for p in parts for r in p["results"]]
    ours["checks"] = [c for p in parts for c in p.get("checks", [])]
    torch = json.load(open(a.torch)) if a.torch and os.path.exists(a.torch) else {"results": []}
    tmap = {r["name"]: r for r in torch["results"]}
    rows = []
    hdr = ["what", "puzzle ms (p10..p90)", "torch bf16 ms", "torch/puzzle", "puzzle", "torch", "floor"]
    for r in ours["results"]:
        t = tmap.get(re.sub(r" \[.*\]$", "", r["name"]))
        extra, textra, floor = "", "", ""
        for key, unit in (("TFLOPs", "TFLOP/s"), ("GBps", "GB/s"), ("tok_per_s", "tok/s")):
            if key in r:
                extra = f"{r[key]:.1f} {unit}"
            if t and key in t:
                textra = f"{t[key]:.1f} {unit}"
        if "x_copy_bw" in r:
            floor = f"{r['x_copy_bw']:.2f}x the copy-bandwidth time"
        if "bw_floor_ms" in r:
            floor = f"bw {r['bw_floor_ms']:.4f} ms, compute {r['compute_floor_ms']:.4f} ms -> {r['x_floor']:.2f}x"
        rows.append([r["name"], f"{r['median_ms']:.4f} ({r['p10_ms']:.4f}..{r['p90_ms']:.4f})",
                     f"{t['median_ms']:.4f}" if t else "-", f"{t['median_ms'] / r['median_ms']:.2f}" if t else "-",
                     extra, textra, floor])
        if r["group"] == "decode":
            e = tmap.get(re.sub(r" \[.*\]$", "", r["name"]) + " (eager)")
            if e:
                rows.append([r["name"] + " (torch eager)", "-", f"{e['median_ms']:.4f}",
                             f"{e['median_ms'] / r['median_ms']:.2f}", "", "", ""])
    widths = [max(len(str(x[i])) for x in rows + [hdr]) for i in range(len(hdr))]
    line = lambda x: "  ".join(str(v).ljust(w) for v, w in zip(x, widths))
    checks = ours.get("checks", [])
    failed = [c for c in checks if not c["pass"]]
    print()
    print(f"device {ours['device']} ({ours['sms']} SMs, driver {ours['driver']}), GEMM {ours['gemm']}; "
          f"torch {torch.get('torch', 'absent')}")
    print(f"CUDA vs CPU checks: {len(checks) - len(failed)} passed, {len(failed)} failed")
    for c in failed:
        print(f"  FAIL {c['name']}: err {c['err']:.2e} > tol {c['tol']:.0e}")
    print(line(hdr))
    for x in rows:
        print(line(x))
    cand_md = candidates(ours["results"], checks)
    print(cand_md)
    if a.md:
        with open(a.md, "w") as f:
            f.write(f"# GPU check, {datetime.date.today().isoformat()}\n\n")
            f.write(f"- card: {ours['device']} ({ours['sms']} SMs), driver {ours['driver']}\n")
            if a.smi:
                f.write(f"- nvidia-smi: {a.smi}\n")
            f.write(f"- commit: {a.commit}\n- puzzle GEMM path: {ours['gemm']}; PyTorch {torch.get('torch', 'absent')}\n")
            f.write(f"- command: `benchmarks/gpu/check.sh`\n\n")
            f.write(f"CUDA against CPU: {len(checks) - len(failed)} passed, {len(failed)} failed\n\n")
            for c in failed:
                f.write(f"- FAIL {c['name']}: err {c['err']:.2e} > tol {c['tol']:.0e}\n")
            f.write("\n| " + " | ".join(hdr) + " |\n|" + "---|" * len(hdr) + "\n")
            for x in rows:
                f.write("| " + " | ".join(str(v) for v in x) + " |\n")
            f.write("\n<details><summary>every check</summary>\n\n| check | rel. error | tolerance | |\n|---|---|---|---|\n")
            for c in checks:
                f.write(f"| {c['name']} | {c['err']:.2e} | {c['tol']:.0e} | {'ok' if c['pass'] else 'FAIL'} |\n")
            f.write("\n</details>\n")
            f.write(cand_md)
            kern = json.load(open(a.kernels)) if a.kernels and os.path.exists(a.kernels) else {}
            f.write(kernel_tables(kern.get("kernels", []), torch.get("kernels", [])))


TAG = re.compile(r" \[([a-z]+=[^\]]+|pdl)\]$")  # --tag of a candidate pass: [decode=mma], [pdl], [fuse=off], [gemm=own]


def row_key(name):
    """A row's name without its candidate tag and kernel-name brackets ([mma], [tensor-core]),
    keeping [bf16]: the key a candidate's row and the default one share."""
    name = TAG.sub("", name)
    return re.sub(r" \[(?!bf16\])[^\]]*\]", "", name)


def candidates(results, checks):
    """Markdown: each candidate pass (rows tagged by check.sh) against the default rows of the same
    names: default ms / candidate ms per row (above 1: the candidate is faster), and its checks. The
    verdict a default change needs: every check of the pass passed and no row slower than 0.97."""
    default = {row_key(r["name"]): r for r in results if not TAG.search(r["name"])}
    tags = sorted({TAG.search(r["name"]).group(1) for r in results if TAG.search(r["name"])})
    if not tags:
        return ""
    out = ["\n## Candidate paths against the defaults (default ms / candidate ms; above 1: faster)\n\n"
           "| candidate | rows | geometric mean | slowest row | fastest row | its checks | verdict |\n"
           "|---|---|---|---|---|---|---|\n"]
    for tag in tags:
        pairs = [(r["name"], default[row_key(r["name"])]["median_ms"] / r["median_ms"]) for r in results
                 if TAG.search(r["name"]) and TAG.search(r["name"]).group(1) == tag and row_key(r["name"]) in default]
        mine = [c for c in checks if c["name"].endswith(f" [{tag}]")]
        bad = [c for c in mine if not c["pass"]]
        if not pairs:
            out.append(f"| {tag} | 0 | - | - | - | {len(mine) - len(bad)} passed, {len(bad)} failed | no rows to compare |\n")
            continue
        geo = math.exp(sum(math.log(x) for _, x in pairs) / len(pairs))
        lo, hi = min(pairs, key=lambda p: p[1]), max(pairs, key=lambda p: p[1])
        if tag in ("gemm=own", "gemm=wmma"):  # our own GEMM against cuBLAS: the fallback of builds without it
            verdict = (f"{'with ' + str(len(bad)) + ' checks failed, ' if bad else ''}"
                       f"{geo:.2f}x cuBLAS's speed where cuBLAS is missing")
        elif bad or not mine:
            verdict = "keep off: " + (f"{len(bad)} checks failed" if bad else "no checks ran with it")
        elif lo[1] < 0.97:
            verdict = f"keep off: slower on {sum(1 for _, x in pairs if x < 0.97)} rows"
        else:
            verdict = "make it the default" if geo > 1.03 else "no gain either way"
        if tag.endswith("=off"):  # a pass with something switched off: the verdict is about that thing
            what = tag[:-len("=off")]
            verdict = (verdict.replace("make it the default", f"switch {what} off by default")
                       .replace("keep off", f"keep {what} on"))
        out.append(f"| {tag} | {len(pairs)} | {geo:.2f} | {lo[1]:.2f} ({row_key(lo[0])}) | {hi[1]:.2f} ({row_key(hi[0])}) | "
                   f"{len(mine) - len(bad)} passed, {len(bad)} failed | {verdict} |\n")
    return "".join(out)


def kernel_tables(ours, theirs, top=15):
    """Markdown: per workload, the kernels taking the most GPU time per step, ours then PyTorch's."""
    if not ours and not theirs:
        return ""
    tmap = {k["workload"]: k for k in theirs}
    out = ["\n## Where the time goes, kernel by kernel (CUPTI; per step)\n"]
    base = lambda w: re.sub(r" \[.*\]$", "", w["workload"])
    ours_bases = {base(o) for o in ours}
    groups = [(o["workload"], [("puzzle", o)] + ([("PyTorch", tmap[base(o)])] if base(o) in tmap else []))
              for o in ours]
    groups += [(t["workload"], [("PyTorch", t)]) for t in theirs if t["workload"] not in ours_bases]
    for title, pairs in groups:
        out.append(f"\n### {title}\n")
        for who, k in pairs:
            n = k["iters"]
            busy = sum(r["ms"] for r in k["rows"]) / n
            out.append(f"\n{who}: {k['step_ms']:.4f} ms a step by events, {busy:.4f} ms of it in kernels and copies "
                       f"({n} steps traced)\n\n| ms | share | calls | kernel |\n|---|---|---|---|\n")
            for r in k["rows"][:top]:
                out.append(f"| {r['ms'] / n:.4f} | {100 * r['ms'] / n / k['step_ms']:.1f}% | {r['calls'] / n:g} | "
                           f"`{r['name']}` |\n")
            rest = k["rows"][top:]
            if rest:
                out.append(f"| {sum(r['ms'] for r in rest) / n:.4f} | | {sum(r['calls'] for r in rest) / n:g} | "
                           f"{len(rest)} others |\n")
    return "".join(out)


if __name__ == "__main__":
    main()
